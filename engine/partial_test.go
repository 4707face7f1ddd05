package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tollgate/tollgate/bundles"
)

// overrideData replaces, in b's data, the value at each path (dot-separated
// keys below data) with the JSON given.
func overrideData(t testing.TB, b *bundles.Bundle, values map[string]string) *bundles.Bundle {
	t.Helper()
	for path, raw := range values {
		var v any
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber() // as the bundle loader reads data
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("override %s: %v", path, err)
		}
		keys := strings.Split(path, ".")
		node := b.Data
		for _, k := range keys[:len(keys)-1] {
			next, ok := node[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				node[k] = next
			}
			node = next
		}
		node[keys[len(keys)-1]] = v
	}
	return b
}

// richData turns on everything the default data leaves off: routing with
// tiers and model splits, budgets for keys, users, teams and "*", per-key
// rates, team model lists, per-team PII actions and log settings, guardrail
// limits per team, log-only and team-scoped phrase rules.
var richData = map[string]string{
	"data.routing": `{"enabled": true, "auto_models": ["auto"], "timeout_ms": 30000, "retries": 1,
		"preferences": {"cost": -1, "latency": -1, "quality": 1, "balanced": 0, "odd": "x"},
		"tiers": [
			{"name": "small", "below": 0.3,
			 "targets": [{"provider": "openai", "model": "gpt-4o-mini", "weight": 90}, {"provider": "anthropic", "model": "claude-3-5-haiku", "weight": 10}],
			 "fallbacks": [{"provider": "vertex", "model": "gemini-2.0-flash"}, {"provider": "openai", "model": "gpt-4o"}]},
			{"name": "medium", "below": 0.7, "timeout_ms": 45000, "targets": [{"provider": "openai", "model": "gpt-4.1"}],
			 "fallbacks": [{"provider": "openai", "model": "gpt-4o-mini"}]},
			{"name": "large", "targets": [{"provider": "openai", "model": "gpt-4o", "weight": 1}], "retries": 3}],
		"models": {"gpt-4o": {"targets": [{"provider": "openai", "model": "gpt-4o", "weight": 80}, {"provider": "azure", "model": "gpt-4o", "weight": 20}],
		                      "fallbacks": [{"provider": "anthropic", "model": "claude-3-5-sonnet"}], "retries": 2},
		           "echo": {"targets": [{"provider": "sim", "model": "echo"}]}}}`,
	"data.budgets": `{"stream_cutoff": true,
		"keys": {"k_ana": {"minute": {"tokens": 1000, "requests": 10}, "day": {"usd": 2.5}}, "k_big": {"minute": {"tokens": 900000}}, "*": {"hour": {"requests": 500}}},
		"users": {"ana": {"day": {"tokens": 50000}}, "*": {"month": {"usd": 20}}},
		"teams": {"ml": {"day": {"tokens": 2000000, "usd": 50}, "month": {"usd": 1000}}, "finance": {"hour": {"requests": 0, "tokens": -5}, "fortnight": {"tokens": 5}, "day": {"tokens": "lots"}}}}`,
	"data.quota.keys":                       `{"k_small": {"tokens_per_minute": 50}, "k_zero": {"tokens_per_minute": 0}, "k_ana": {"tokens_per_minute": 5000}, "k_note": {"owner": "x"}}`,
	"data.access.teams":                     `{"finance": {"model_groups": ["small", "auto"]}, "locked": {"model_groups": []}, "billing": {"service_model_groups": ["large"]}}`,
	"data.access.model_groups.auto":         `["auto"]`,
	"data.access.roles.bigonly":             `{"model_groups": ["large", "auto"], "permissions": ["keys:*"]}`,
	"data.pii.teams":                        `{"support": {"EMAIL": "placeholder", "PHONE": "hash"}, "finance": {"CREDIT_CARD": "block"}}`,
	"data.pii.response":                     `{"default": false, "teams": {"support": true, "ml": "yes"}}`,
	"data.log":                              `{"store_prompt": {"default": true, "teams": {"finance": false}}, "label_tags": ["cost_center", "project"], "teams": {"ml": {"cost_center": "cc-ml", "unit": "research", "bad": 7}}}`,
	"data.guardrails.max_prompt_tokens":     `{"default": 1000, "teams": {"finance": 100, "research": 0}}`,
	"data.guardrails.max_completion_tokens": `{"teams": {"finance": 256}}`,
	"data.guardrails.blocked_phrases": `{
		"prompt_injection": {"category": "prompt injection", "phrases": ["ignore previous instructions"], "message": "remove the override", "exempt_teams": ["redteam"]},
		"weapons": {"category": "topic", "phrases": ["build a bomb"]},
		"competitors": {"category": "topic", "phrases": ["acme corp"], "mode": "log", "teams": ["sales", "support"]},
		"salaries": {"phrases": ["salary of"], "mode": "typo", "teams": ["support"]}}`,
}

// decisionInputs are varied requests: every kind of principal, roles that
// grant much, little or nothing, teams with and without data, routed and
// unrouted models, PII, guardrail signals, preferences and labels.
func decisionInputs() []*Input {
	temp := 0.7
	type principal struct {
		subject, kind, key, team string
		roles                    []string
	}
	principals := []principal{
		{"ana", "user", "k_ana", "ml", []string{"developer"}},
		{"bo", "user", "k_small", "finance", []string{"admin"}},
		{"cy", "agent", "k_big", "support", []string{"analyst", "auditor"}},
		{"di", "user", "", "locked", []string{"admin"}},
		{"ed", "user", "k_zero", "", []string{}},
		{"fa", "user", "k_note", "sales", []string{"intern"}},
		{"svc-a", "service", "k_svc", "billing", []string{}},
		{"svc-b", "service", "k_svc2", "ml", []string{"admin"}},
		{"gu", "agent", "k_gu", "redteam", []string{"bigonly"}},
	}
	type request struct {
		model   string
		pii     []string
		prompt  int
		max     int
		phrases []string
		pref    string
		score   float64
		labels  map[string]string
	}
	requests := []request{
		{model: "gpt-4o-mini", pii: []string{"EMAIL"}, prompt: 20},
		{model: "gpt-4o", pii: []string{"CREDIT_CARD", "EMAIL", "PHONE", "US_SSN"}, prompt: 900, max: 300},
		{model: "auto", prompt: 50, score: 0.1, labels: map[string]string{"project": "search", "owner": "x"}},
		{model: "auto", prompt: 50, score: 0.5, pref: " Quality "},
		{model: "auto", prompt: 50, score: 0.9, pref: "cost"},
		{model: "auto", prompt: 50, score: 0.9, pref: "fastest"},
		{model: "auto", prompt: 50, score: 0.5, pref: "odd"},
		{model: "echo", pii: []string{"SOMETHING_NEW", "PHONE"}, prompt: 200000, max: 100000, phrases: []string{"prompt_injection"}},
		{model: "gpt-4.1", prompt: 10, phrases: []string{"competitors", "salaries", "weapons", "gone"}, labels: map[string]string{"cost_center": "cc-key"}},
		{model: "unknown-model", prompt: 1, max: 1, phrases: []string{"competitors"}},
	}
	var ins []*Input
	for _, pr := range principals {
		for i, rq := range requests {
			in := &Input{
				Request: RequestInfo{
					ID: fmt.Sprintf("req_%s_%d", pr.subject, i), Path: "/v1/chat/completions", Stream: i%2 == 0,
					ReceivedAt: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), ClientIP: "127.0.0.1",
				},
				Identity:   Identity{Subject: pr.subject, Kind: pr.kind, Auth: "api_key", KeyID: pr.key, Team: pr.team, Roles: pr.roles, Labels: rq.labels},
				Model:      ModelInfo{Requested: rq.model},
				Params:     Params{MaxTokens: rq.max, Messages: 2},
				Tokens:     Tokens{Prompt: rq.prompt, MaxCompletion: max(rq.max, DefaultMaxCompletion), EstimatedTotal: rq.prompt + max(rq.max, DefaultMaxCompletion)},
				Complexity: Complexity{Score: rq.score, Turns: 2},
				Signals:    Signals{MatchedPhrases: rq.phrases},
			}
			if i%3 == 1 {
				in.Params.Temperature = &temp
			}
			if rq.pref != "" {
				in.Request.Headers = map[string]string{"x-tollgate-preference": rq.pref}
			}
			for _, typ := range rq.pii {
				in.PII.Types = append(in.PII.Types, typ)
				in.PII.Findings = append(in.PII.Findings, PIIFinding{Type: typ, Count: 1, Role: "user", Where: "content"})
			}
			ins = append(ins, in)
		}
	}
	return append(ins, smokeInput())
}

// TestPartialEvaluationDecidesAsPlain checks that the query Eval runs,
// prepared from the library's partial evaluation, returns the same decision
// document as the entrypoint prepared as written, for the default data and
// for data that turns every feature on (routing included).
func TestPartialEvaluationDecidesAsPlain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data map[string]string
	}{
		{"default data", nil},
		{"rich data", richData},
		{"routing on, default tiers", map[string]string{"data.routing.enabled": "true"}},
		{"budgets only for users", map[string]string{"data.budgets.users": `{"*": {"day": {"usd": 10}}}`}},
	}
	ctx := context.Background()
	inputs := decisionInputs()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := compile(t, newEngine(t, Config{}), overrideData(t, defaultBundle(t), tt.data))
			if !p.partial {
				t.Fatal("Compile did not prepare the library from its partial evaluation")
			}
			allowed, routed := 0, 0
			for _, in := range inputs {
				// Eval gives the partial result only the fields it reads.
				partialMu.RLock()
				want, wantErr := p.query.Eval(ctx, rego.EvalParsedInput(in.Value()))
				got, gotErr := p.eval.Eval(ctx, rego.EvalParsedInput(in.valueOf(p.fields)))
				partialMu.RUnlock()
				if (gotErr == nil) != (wantErr == nil) {
					t.Fatalf("input %s: error %v, want %v", in.Request.ID, gotErr, wantErr)
				}
				if diff := cmp.Diff(resultValue(want), resultValue(got)); diff != "" {
					t.Errorf("input %s (%s %v, model %s): partial decision differs from plain (-plain +partial):\n%s",
						in.Request.ID, in.Identity.Kind, in.Identity.Roles, in.Model.Requested, diff)
					continue
				}
				if d, err := decodeDecision(resultValue(got)); err == nil {
					if d.Allow {
						allowed++
					}
					if d.Route != nil {
						routed++
					}
				} else {
					t.Errorf("input %s: %v", in.Request.ID, err)
				}
			}
			// The inputs must exercise both outcomes, and routes when the
			// data routes.
			if allowed == 0 || allowed == len(inputs) {
				t.Errorf("%d of %d inputs allowed; want some allowed and some denied", allowed, len(inputs))
			}
			if tt.data["data.routing"] != "" && routed == 0 {
				t.Error("the data routes, but no input was routed")
			}
		})
	}
}

// TestPartialEvaluationFallsBack checks that a bundle whose partial
// evaluation fails is compiled and evaluated as written.
func TestPartialEvaluationFallsBack(t *testing.T) {
	t.Parallel()
	// Partial evaluation evaluates the data-only rule conflict, which fails;
	// plain evaluation reaches it only for inputs that set debug.
	b := mainBundle(t, `conflict := 1 if true

conflict := 2 if true

decision := {"allow": true} if not input.debug

decision := {"allow": conflict == 1} if input.debug
`)
	p := compile(t, newEngine(t, Config{}), b)
	if p.partial {
		t.Fatal("Compile used a partial evaluation that should have failed")
	}
	d, err := p.Eval(context.Background(), chatInput("ana", []string{"developer"}, "echo"))
	if err != nil || !d.Allow {
		t.Fatalf("Eval = %+v, %v; want allowed", d, err)
	}
}
