package analytics

import (
	"fmt"
	"time"
)

// sampleEvents returns n events whose every field differs from the other
// events' and from its zero value, so a column mix-up shows in a diff.
// Times have whole milliseconds (what DateTime64(3) keeps).
func sampleEvents(n int) []Event {
	base := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	kinds := []string{KindUser, KindService, KindAgent}
	events := make([]Event, n)
	for i := range events {
		events[i] = Event{
			RequestID:             fmt.Sprintf("req-%03d", i),
			Time:                  base.Add(time.Duration(i)*time.Minute + time.Duration(i*7+1)*time.Millisecond),
			Subject:               fmt.Sprintf("user%d@example.com", i),
			KeyID:                 fmt.Sprintf("k_%d", i),
			Team:                  []string{"ml", "search"}[i%2],
			Org:                   "acme",
			Kind:                  kinds[i%len(kinds)],
			ModelRequested:        "gpt-4o",
			ModelRouted:           []string{"gpt-4o-mini", "claude-3-5-haiku"}[i%2],
			Provider:              []string{"openai", "anthropic"}[i%2],
			Status:                []int{200, 403}[i%2],
			Allowed:               i%2 == 0,
			DenyCode:              []string{"", "model_not_allowed"}[i%2],
			BundleRevision:        "rev-42",
			PIITypes:              [][]string{{"EMAIL"}, {"EMAIL", "CREDIT_CARD"}, {"US_SSN"}}[i%3],
			PIICount:              i + 1,
			PromptTokensEstimated: int64(100 + i),
			PromptTokens:          int64(98 + i),
			CompletionTokens:      int64(20 * (i + 1)),
			CachedTokens:          int64(i + 3),
			CostMicros:            int64(1234 * (i + 1)),
			LatencyMS:             12.5 + float64(i),
			TTFTMS:                3.25 + float64(i),
			Stream:                i%2 == 1,
			CutOff:                i%3 == 1,
			Attempts:              1 + i%3,
			Error:                 []string{"none", "upstream_timeout"}[i%2],
			Path:                  "/v1/chat/completions",
			ClientIP:              fmt.Sprintf("10.0.0.%d", i+1),
			User:                  fmt.Sprintf("human%d", i),
			AgentChain:            [][]string{nil, {"agent-a"}, {"agent-a", "agent-b"}}[i%3],
			Fallbacks:             i % 2,
			AttemptLog:            [][]Attempt{nil, {{Target: "openai/gpt-4o", Outcome: "ok", LatencyMS: 12.5}}, {{Target: "a/m", Outcome: "rate_limited", LatencyMS: 1.5}, {Target: "b/m", Outcome: "ok", LatencyMS: 30}}}[i%3],
			PIICounts:             [][]int{{1}, {2, 3}, {4}}[i%3],
			Tags:                  []map[string]string{{"project": "search"}, {"project": "ml", "env": "prod"}, nil}[i%3],
			Prompt:                []string{"", "masked <EMAIL_1>"}[i%2],
			Response:              []string{"", "ok"}[i%2],
		}
	}
	return events
}
