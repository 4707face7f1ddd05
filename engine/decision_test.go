package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
)

// policyResult decodes s the way OPA hands a result to Go: numbers as
// json.Number, objects as map[string]any, sets as []any.
func policyResult(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("test decision %s: %v", s, err)
	}
	return v
}

// decodeBoth decodes the decision document s in both forms decodeDecision
// accepts, OPA's AST value and its JSON-like Go value, fails the test when
// they disagree, and returns the result.
func decodeBoth(t *testing.T, s string) (Decision, error) {
	t.Helper()
	fromJSON, jsonErr := decodeDecision(policyResult(t, s))
	term, err := ast.ParseTerm(s)
	if err != nil {
		t.Fatalf("test decision %s: %v", s, err)
	}
	fromAST, astErr := decodeDecision(term.Value)
	if (jsonErr == nil) != (astErr == nil) || !reflect.DeepEqual(fromJSON, fromAST) {
		t.Fatalf("decision %s decodes differently from JSON (%+v, %v) and from AST (%+v, %v)", s, fromJSON, jsonErr, fromAST, astErr)
	}
	return fromAST, astErr
}

// TestDecodeDecisionSets covers sets, which only the AST form has: a
// partial rule's result, decoded in sorted order.
func TestDecodeDecisionSets(t *testing.T) {
	t.Parallel()
	term := ast.MustParseTerm(`{"allow": false, "deny": {{"code": "b", "message": "second", "status": 403}, {"code": "a", "message": "first", "status": 400}}, "mask": {"rules": {{"types": ["EMAIL"], "action": "redact"}}}}`)
	d, err := decodeDecision(term.Value)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Deny) != 2 || d.Deny[0].Code != "a" || d.Deny[1].Code != "b" || len(d.Mask.Rules) != 1 {
		t.Fatalf("decoded %+v; want two denials in sorted order and one mask rule", d)
	}
	if _, err := decodeDecision(ast.MustParseTerm(`{"allow": true, "log": {"tags": {1: "x"}}}`).Value); !errors.Is(err, ErrInvalidDecision) {
		t.Fatalf("a non-string tag key decoded with error %v; want ErrInvalidDecision", err)
	}
}

// checkEnforceable fails when d breaks what the proxy relies on: a denial
// always carries at least one reason with an HTTP error status and a message.
func checkEnforceable(t *testing.T, d Decision) {
	t.Helper()
	if !d.Allow && len(d.Deny) == 0 {
		t.Errorf("decision denies without a reason: %+v", d)
	}
	if d.Allow && len(d.Deny) > 0 {
		t.Errorf("decision allows and denies at once: %+v", d)
	}
	for i, x := range d.Deny {
		if x.Status < 400 || x.Status > 599 || x.Message == "" || x.Code == "" {
			t.Errorf("deny[%d] = %+v, want code, message and a 4xx/5xx status", i, x)
		}
	}
}

func TestDecodeDecisionDefaults(t *testing.T) {
	t.Parallel()
	defaultDeny := []Deny{{Code: "denied", Message: "request denied by policy", Status: 403}}
	tests := []struct {
		name   string
		result string
		want   Decision
	}{
		{
			name:   "allow alone",
			result: `{"allow": true}`,
			want:   Decision{Allow: true},
		},
		{
			name:   "empty object is a default denial",
			result: `{}`,
			want:   Decision{Deny: defaultDeny},
		},
		{
			name:   "allow false without deny gets the default denial",
			result: `{"allow": false, "deny": []}`,
			want:   Decision{Deny: defaultDeny},
		},
		{
			name:   "null result is a default denial",
			result: `null`,
			want:   Decision{Deny: defaultDeny},
		},
		{
			name:   "deny status 0 becomes 403 and an empty message is filled",
			result: `{"allow": false, "deny": [{"code": "over_budget"}]}`,
			want:   Decision{Deny: []Deny{{Code: "over_budget", Message: "request denied by policy (over_budget)", Status: 403}}},
		},
		{
			name:   "deny keeps the policy's status and message",
			result: `{"allow": false, "deny": [{"code": "slow_down", "message": "wait a minute", "status": 429}]}`,
			want:   Decision{Deny: []Deny{{Code: "slow_down", Message: "wait a minute", Status: 429}}},
		},
		{
			name:   "allow with a deny is not allowed",
			result: `{"allow": true, "deny": [{"code": "model_not_allowed", "message": "no", "status": 403}]}`,
			want:   Decision{Deny: []Deny{{Code: "model_not_allowed", Message: "no", Status: 403}}},
		},
		{
			name:   "status bounds 400 and 599 are accepted",
			result: `{"deny": [{"code": "a", "status": 400}, {"code": "b", "status": 599}]}`,
			want: Decision{Deny: []Deny{
				{Code: "a", Message: "request denied by policy (a)", Status: 400},
				{Code: "b", Message: "request denied by policy (b)", Status: 599},
			}},
		},
		{
			name: "full contract",
			result: `{
				"allow": true,
				"deny": [],
				"route": {"targets": [{"provider": "openai", "model": "gpt-4o-mini", "weight": 90},
				                      {"provider": "anthropic", "model": "claude-3-5-haiku", "weight": 10}],
				          "fallbacks": [{"provider": "vertex", "model": "gemini-2.0-flash"}],
				          "timeout_ms": 30000, "retries": 1},
				"mask": {"rules": [{"types": ["EMAIL"], "action": "placeholder"},
				                   {"types": ["US_SSN", "CREDIT_CARD"], "action": "redact"}],
				         "response": true},
				"limits": [{"scope": "team:ml", "window": "day", "tokens": 2000000, "usd": 50.0},
				           {"scope": "key:k_123", "window": "minute", "tokens": 40000, "requests": 60},
				           {"scope": "org:acme", "window": "month", "usd": 0.5},
				           {"scope": "user:ana", "window": "hour", "requests": 1}],
				"stream": {"cutoff": true},
				"log": {"store_prompt": true, "tags": {"project": "search"}}
			}`,
			want: Decision{
				Allow: true,
				Deny:  []Deny{},
				Route: &Route{
					Targets: []Target{
						{Provider: "openai", Model: "gpt-4o-mini", Weight: 90},
						{Provider: "anthropic", Model: "claude-3-5-haiku", Weight: 10},
					},
					Fallbacks: []Target{{Provider: "vertex", Model: "gemini-2.0-flash"}},
					TimeoutMS: 30000,
					Retries:   1,
				},
				Mask: Mask{
					Rules: []MaskRule{
						{Types: []string{"EMAIL"}, Action: ActionPlaceholder},
						{Types: []string{"US_SSN", "CREDIT_CARD"}, Action: ActionRedact},
					},
					Response: true,
				},
				Limits: []Limit{
					{Scope: "team:ml", Window: "day", Tokens: 2000000, USD: 50},
					{Scope: "key:k_123", Window: "minute", Tokens: 40000, Requests: 60},
					{Scope: "org:acme", Window: "month", USD: 0.5},
					{Scope: "user:ana", Window: "hour", Requests: 1},
				},
				Stream: Stream{Cutoff: true},
				Log:    Log{StorePrompt: true, Tags: map[string]string{"project": "search"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeBoth(t, tt.result)
			if err != nil {
				t.Fatalf("decodeDecision: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decision mismatch (-want +got):\n%s", diff)
			}
			checkEnforceable(t, got)
		})
	}
}

func TestDecodeDecisionInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		result string
		// want are substrings of the error, which must name the field.
		want []string
	}{
		{"unknown top-level field", `{"allow": true, "budget": 10}`, []string{`unknown field "budget"`}},
		{"unknown field in a deny", `{"deny": [{"code": "x", "reason": "y"}]}`, []string{`unknown field "reason"`}},
		{"unknown field in a limit", `{"allow": true, "limits": [{"scope": "a", "window": "day", "tokens": 1, "cost": 2}]}`, []string{`unknown field "cost"`}},
		{"unknown field in a route target", `{"allow": true, "route": {"targets": [{"provider": "p", "model": "m", "region": "eu"}]}}`, []string{`unknown field "region"`}},
		{"misspelled mask", `{"allow": true, "masks": {"rules": []}}`, []string{`unknown field "masks"`}},

		{"deny status 200", `{"deny": [{"code": "x", "status": 200}]}`, []string{"deny[0].status", "200"}},
		{"deny status 700", `{"deny": [{"code": "x", "status": 700}]}`, []string{"deny[0].status", "700"}},
		{"deny status 399", `{"deny": [{"code": "x", "status": 399}]}`, []string{"deny[0].status", "399"}},
		{"deny status 600", `{"deny": [{"code": "ok"}, {"code": "x", "status": 600}]}`, []string{"deny[1].status", "600"}},
		{"deny status negative", `{"deny": [{"code": "x", "status": -403}]}`, []string{"deny[0].status"}},
		{"deny without code", `{"deny": [{"message": "no", "status": 403}]}`, []string{"deny[0].code"}},

		{"bad mask action", `{"allow": true, "mask": {"rules": [{"types": ["EMAIL"], "action": "obfuscate"}]}}`, []string{"mask.rules[0].action", "obfuscate"}},
		{"empty mask action", `{"allow": true, "mask": {"rules": [{"types": ["EMAIL"], "action": "redact"}, {"types": ["PHONE"]}]}}`, []string{"mask.rules[1].action"}},
		{"mask action in capitals", `{"allow": true, "mask": {"rules": [{"types": ["EMAIL"], "action": "REDACT"}]}}`, []string{"mask.rules[0].action"}},

		{"bad window", `{"allow": true, "limits": [{"scope": "key:k", "window": "week", "tokens": 1}]}`, []string{"limits[0].window", "week"}},
		{"missing window", `{"allow": true, "limits": [{"scope": "key:k", "tokens": 1}]}`, []string{"limits[0].window"}},
		{"limit without amount", `{"allow": true, "limits": [{"scope": "key:k", "window": "day"}]}`, []string{"limits[0]", "no amount"}},
		{"limit with zero amounts", `{"allow": true, "limits": [{"scope": "key:k", "window": "day", "tokens": 0, "requests": 0, "usd": 0}]}`, []string{"limits[0]", "no amount"}},
		{"negative tokens", `{"allow": true, "limits": [{"scope": "key:k", "window": "day", "tokens": -1}]}`, []string{"limits[0]", "negative"}},
		{"negative requests", `{"allow": true, "limits": [{"scope": "key:k", "window": "day", "tokens": 5, "requests": -1}]}`, []string{"limits[0]", "negative"}},
		{"negative usd", `{"allow": true, "limits": [{"scope": "key:k", "window": "day", "usd": -0.01}]}`, []string{"limits[0]", "negative"}},
		{"limit without scope", `{"allow": true, "limits": [{"window": "day", "tokens": 1}]}`, []string{"limits[0].scope"}},

		{"route target without provider", `{"allow": true, "route": {"targets": [{"model": "m"}]}}`, []string{"route.targets[0]", "provider"}},
		{"route target without model", `{"allow": true, "route": {"targets": [{"provider": "p", "model": "m"}, {"provider": "p"}]}}`, []string{"route.targets[1]", "model"}},
		{"fallback without model", `{"allow": true, "route": {"targets": [{"provider": "p", "model": "m"}, {"provider": "q", "model": "n"}], "fallbacks": [{"provider": "p"}]}}`, []string{"route.fallbacks[0]", "model"}},
		{"negative weight", `{"allow": true, "route": {"targets": [{"provider": "p", "model": "m", "weight": -1}]}}`, []string{"route.targets[0]", "weight"}},

		{"allow is a string", `{"allow": "yes"}`, []string{"allow"}},
		{"allow is a number", `{"allow": 1}`, []string{"allow"}},
		{"deny is an object", `{"deny": {"code": "x"}}`, []string{"deny"}},
		{"status is a string", `{"deny": [{"code": "x", "status": "403"}]}`, []string{"status"}},
		{"status is fractional", `{"deny": [{"code": "x", "status": 403.5}]}`, []string{"status"}},
		{"tokens are fractional", `{"allow": true, "limits": [{"scope": "k", "window": "day", "tokens": 1.5}]}`, []string{"tokens"}},
		{"limits is an object", `{"allow": true, "limits": {"scope": "k"}}`, []string{"limits"}},
		{"mask types is a string", `{"allow": true, "mask": {"rules": [{"types": "EMAIL", "action": "redact"}]}}`, []string{"types"}},
		{"tags are not strings", `{"allow": true, "log": {"tags": {"n": 1}}}`, []string{"tags"}},
		{"decision is a string", `"allow"`, []string{"string"}},
		{"decision is an array", `[{"allow": true}]`, []string{"array"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeBoth(t, tt.result)
			if !errors.Is(err, ErrInvalidDecision) {
				t.Fatalf("decodeDecision(%s) = %+v, %v; want an error wrapping ErrInvalidDecision", tt.result, got, err)
			}
			if got.Allow {
				t.Errorf("invalid decision came back allowed: %+v", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDecodeDecisionReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := decodeBoth(t, `{
		"deny": [{"code": "x", "status": 200}],
		"mask": {"rules": [{"types": ["EMAIL"], "action": "scramble"}]},
		"limits": [{"scope": "k", "window": "year", "tokens": 1}]
	}`)
	if !errors.Is(err, ErrInvalidDecision) {
		t.Fatalf("got %v, want ErrInvalidDecision", err)
	}
	for _, w := range []string{"deny[0].status", "mask.rules[0].action", "limits[0].window"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// TestDecodeDecisionUnmarshalable covers a result that is not JSON at all
// (it cannot come from OPA, but the decoder must still fail closed).
func TestDecodeDecisionUnmarshalable(t *testing.T) {
	t.Parallel()
	_, err := decodeDecision(map[string]any{"allow": func() {}})
	if !errors.Is(err, ErrInvalidDecision) {
		t.Fatalf("got %v, want ErrInvalidDecision", err)
	}
}

func TestMaskActionFor(t *testing.T) {
	t.Parallel()
	m := Mask{Rules: []MaskRule{
		{Types: []string{"EMAIL", "PHONE"}, Action: ActionPlaceholder},
		{Types: []string{"CREDIT_CARD"}, Action: ActionBlock},
		{Types: []string{"EMAIL"}, Action: ActionHash},
	}}
	for typ, want := range map[string]string{
		"EMAIL":       ActionPlaceholder, // first rule wins
		"PHONE":       ActionPlaceholder,
		"CREDIT_CARD": ActionBlock,
		"US_SSN":      "",
		"email":       "",
	} {
		if got := m.ActionFor(typ); got != want {
			t.Errorf("ActionFor(%q) = %q, want %q", typ, got, want)
		}
	}
	if got := (Mask{}).ActionFor("EMAIL"); got != "" {
		t.Errorf("empty mask: ActionFor(EMAIL) = %q, want none", got)
	}
}

// TestDecisionJSONRoundTrip checks that a decision the gateway logs or
// returns (e.g. `tollgate policy eval`) decodes to itself.
func TestDecisionJSONRoundTrip(t *testing.T) {
	t.Parallel()
	want := Decision{
		Allow:  true,
		Route:  &Route{Targets: []Target{{Provider: "openai", Model: "gpt-4o", Weight: 1}}},
		Mask:   Mask{Rules: []MaskRule{{Types: []string{"EMAIL"}, Action: ActionRedact}}},
		Limits: []Limit{{Scope: "key:k", Window: "minute", Tokens: 10}},
		Log:    Log{Tags: map[string]string{"a": "b"}},
	}
	raw, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeDecision(policyResult(t, string(bytes.TrimSpace(raw))))
	if err != nil {
		t.Fatalf("decodeDecision(%s): %v", raw, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}
