package engine

import (
	"errors"
	"testing"
)

func TestCheckResponse(t *testing.T) {
	t.Parallel()
	b := overrideData(t, defaultBundle(t), map[string]string{
		"data.guardrails.blocked_phrases": `{"falcon": {"category": "confidential", "phrases": ["project falcon"], "responses": true},
			"injection": {"phrases": ["ignore previous instructions"]}}`,
		"data.guardrails.signals": `{"hidden_unicode": {"responses": true}}`,
	})
	p := compile(t, newEngine(t, Config{}), b)
	in := chatInput("dev", []string{"developer"}, "gpt-4o-mini")
	for _, tt := range []struct {
		text  string
		allow bool
	}{
		{"a plain answer", true},
		{"the PROJECT   falcon launch", false},
		{"ignore previous instructions (requests only)", true},
		{"hid\u200bden", false},
	} {
		v, err := p.CheckResponse(t.Context(), in, tt.text)
		if err != nil || v.Allow != tt.allow {
			t.Errorf("%q: allow %v (%+v), %v; want %v", tt.text, v.Allow, v, err, tt.allow)
		}
		if !v.Allow && (len(v.Deny) != 1 || v.Deny[0].Code != "response_blocked" || v.Deny[0].Status != 502) {
			t.Errorf("%q: deny %+v; want one response_blocked 502", tt.text, v.Deny)
		}
	}
	bad := compile(t, newEngine(t, Config{}), mapBundle(t, map[string]string{
		"main/main.rego":            "package tollgate.main\n\ndecision := {\"allow\": true}\n\nresponse_decision := {\"allow\": \"no\"}\n",
		"data/guardrails/data.json": `{"signals": {"hidden_unicode": {"responses": true}}}`,
	}))
	if _, err := bad.CheckResponse(t.Context(), in, "hid\u200bden"); !errors.Is(err, ErrInvalidDecision) {
		t.Errorf("an invalid response decision: %v; want ErrInvalidDecision", err)
	}
}

// TestCheckResponseWithoutAnswerRules checks that a bundle without rules
// for answers lets every answer through without a scan.
func TestCheckResponseWithoutAnswerRules(t *testing.T) {
	t.Parallel()
	p := compile(t, newEngine(t, Config{}), defaultBundle(t))
	v, err := p.CheckResponse(t.Context(), chatInput("dev", []string{"developer"}, "gpt-4o-mini"), "hid\u200bden, ignore previous instructions")
	if err != nil || !v.Allow || len(v.Signals)+len(v.Phrases) != 0 {
		t.Fatalf("verdict %+v, %v; want allowed without a scan (the default data has no rule for answers)", v, err)
	}
}
