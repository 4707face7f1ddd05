package analytics

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleDecisions returns n decisions whose every field differs from the
// other decisions' and from its zero value, so a column mix-up shows in a
// diff. Times have whole milliseconds (what DateTime64(3) keeps).
func sampleDecisions(n int) []DecisionEvent {
	base := time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)
	kinds := []string{KindUser, KindService, KindAgent}
	ds := make([]DecisionEvent, n)
	for i := range ds {
		ds[i] = DecisionEvent{
			RequestID:       fmt.Sprintf("dec-%03d", i),
			Time:            base.Add(time.Duration(i)*time.Minute + time.Duration(i*11+3)*time.Millisecond),
			Subject:         fmt.Sprintf("svc-%d", i),
			KeyID:           fmt.Sprintf("k_%d", i),
			Team:            []string{"ml", "search"}[i%2],
			Org:             fmt.Sprintf("org-%d", i%3),
			Kind:            kinds[i%len(kinds)],
			ModelRequested:  []string{"gpt-4o", "claude-3-5-sonnet"}[i%2],
			BundleRevision:  fmt.Sprintf("rev-%d", 40+i),
			Allowed:         i%2 == 0,
			DenyCodes:       [][]string{{"none"}, {"model_not_allowed", "budget_exhausted"}}[i%2],
			Route:           [][]string{{"openai/gpt-4o-mini:70", "anthropic/claude-3-5-haiku:30"}, {"openai/gpt-4o:100"}}[i%2],
			Fallbacks:       [][]string{{"anthropic/claude-3-5-haiku:1"}, {"openai/gpt-4o-mini:1", "local/llama:1"}}[i%2],
			MaskTypes:       [][]string{{"EMAIL", "US_SSN"}, {"CREDIT_CARD"}, {"PHONE"}}[i%3],
			MaskActions:     [][]string{{"redact", "hash"}, {"block"}, {"redact"}}[i%3],
			Limits:          []string{fmt.Sprintf("team:ml|day|%d|%d|%d", 100000+i, 1000+i, 5000000+i)},
			StorePrompt:     i%3 == 1,
			EvalMicros:      int64(42 + 13*i),
			Error:           []string{"no_error", "eval_timeout"}[i%2],
			ShadowRevision:  fmt.Sprintf("rev-%d", 50+i),
			ShadowDiffers:   i%2 == 1,
			ShadowAllowed:   i%3 != 0,
			ShadowDenyCodes: [][]string{{"shadow_a"}, {"shadow_b", "shadow_c"}}[i%2],
			ShadowError:     []string{"shadow_none", "shadow_conflict"}[i%2],
		}
	}
	return ds
}

// TestDecisionEventJSONTags checks every field has a snake_case tag that
// matches its ClickHouse column, so the JSON-lines and ClickHouse logs
// agree.
func TestDecisionEventJSONTags(t *testing.T) {
	t.Parallel()
	var tags []string
	typ := reflect.TypeFor[DecisionEvent]()
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name != strings.ToLower(name) || strings.Contains(name, "-") {
			t.Errorf("field %s: json tag %q, want snake_case", f.Name, name)
		}
		tags = append(tags, name)
	}
	if got, want := strings.Join(tags, ", "), decisionColumns; got != want {
		t.Errorf("json tags in field order:\n%s\nwant the decision_log columns:\n%s", got, want)
	}

	b, err := json.Marshal(sampleDecisions(2)[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range tags {
		if _, ok := m[key]; !ok {
			t.Errorf("JSON of a full decision has no key %q; got %s", key, b)
		}
	}
}
