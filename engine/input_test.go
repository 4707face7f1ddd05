package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/util"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// representativeInput exercises every field of the input document.
func representativeInput() *Input {
	temperature := 0.2
	return &Input{
		Request: RequestInfo{
			ID:         "req_01JDX4Q8ZV",
			Path:       "/v1/chat/completions",
			Stream:     true,
			ReceivedAt: time.Date(2026, 11, 25, 10, 30, 15, 123456789, time.FixedZone("CET", 3600)),
			ClientIP:   "203.0.113.7",
			Headers: map[string]string{
				"x-project":  "search",
				"user-agent": "openai-go/1.12.0",
				"x-note":     "naïve \"quoted\" <b>&</b> 日本",
			},
		},
		Identity: Identity{
			Subject: "agent:planner",
			Kind:    "agent",
			Auth:    "api_key",
			KeyID:   "k_123",
			Team:    "ml",
			Org:     "acme",
			Roles:   []string{"developer"},
			Groups:  []string{"ml-eng", "oncall"},
			Labels:  map[string]string{"env": "prod"},
			Chain:   []ChainLink{{Subject: "ana@acme.example", Kind: "user"}, {Subject: "agent:router", Kind: "agent"}},
		},
		Model:  ModelInfo{Requested: "gpt-4o", ProviderHint: "openai"},
		Params: Params{MaxTokens: 512, Temperature: &temperature, Tools: 3, Messages: 6},
		Tokens: Tokens{Prompt: 1234, MaxCompletion: 512, EstimatedTotal: 1746},
		PII: PIISummary{
			Types: []string{"CREDIT_CARD", "EMAIL"},
			Findings: []PIIFinding{
				{Type: "EMAIL", Count: 2, Message: 1, Role: "user", Where: "content"},
				{Type: "CREDIT_CARD", Count: 1, Message: 3, Role: "user", Where: "content"},
				{Type: "EMAIL", Count: 1, Message: 3, Role: "user", Where: "content"},
			},
		},
		Complexity: Complexity{Score: 0.42, Turns: 6, Code: true, Reasoning: true, Tools: 3, PromptTokens: 1234},
	}
}

var goldenInputs = []struct {
	name string
	file string
	in   *Input
}{
	{"representative", "input.golden.json", representativeInput()},
	// Unset slices and maps must still be arrays and objects: a policy's
	// count(input.identity.roles) is undefined on null.
	{"zero", "input_zero.golden.json", &Input{}},
}

// valueJSON renders v as indented JSON with sorted keys.
func valueJSON(t *testing.T, v ast.Value) []byte {
	t.Helper()
	x, err := ast.JSON(v)
	if err != nil {
		t.Fatalf("ast.JSON: %v", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(x); err != nil {
		t.Fatalf("encode input: %v", err)
	}
	return buf.Bytes()
}

func TestInputValueGolden(t *testing.T) {
	for _, tt := range goldenInputs {
		t.Run(tt.name, func(t *testing.T) {
			got := valueJSON(t, tt.in.Value())
			path := filepath.Join("testdata", tt.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (hint: go test ./engine -run TestInputValueGolden -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("input JSON differs from %s (-want +got):\n%s", path, diff)
			}
			// Value must also be the same document as String() shows to
			// policy authors (opa eval --format pretty).
			fromString, err := ast.ParseTerm(tt.in.Value().String())
			if err != nil {
				t.Fatalf("parse Value().String(): %v", err)
			}
			if ast.Compare(fromString.Value, tt.in.Value()) != 0 {
				t.Errorf("Value().String() parses to %v, want %v", fromString.Value, tt.in.Value())
			}
		})
	}
}

// TestInputValueMatchesJSON proves that the input built directly as an
// ast.Value means the same as its JSON read back the way `opa eval -i` and
// rego.Input read it: equal values, and equal decisions of the default
// library.
func TestInputValueMatchesJSON(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := compile(t, newEngine(t, Config{}), defaultBundle(t))
	for _, tt := range goldenInputs {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var doc any
			if err := util.UnmarshalJSON(raw, &doc); err != nil {
				t.Fatalf("golden input: %v", err)
			}
			fromJSON, err := ast.InterfaceToValue(doc)
			if err != nil {
				t.Fatalf("InterfaceToValue: %v", err)
			}
			direct := tt.in.Value()
			if ast.Compare(direct, fromJSON) != 0 {
				t.Errorf("Value() = %v\nwant the golden document %v", direct, fromJSON)
			}

			results := map[string]rego.ResultSet{}
			for name, opt := range map[string]rego.EvalOption{
				"direct value":        rego.EvalParsedInput(direct),
				"value from JSON":     rego.EvalParsedInput(fromJSON),
				"JSON as Go document": rego.EvalInput(doc),
			} {
				partialMu.RLock()
				rs, err := p.query.Eval(ctx, opt)
				partialMu.RUnlock()
				if err != nil {
					t.Fatalf("%s: eval: %v", name, err)
				}
				if len(rs) != 1 || len(rs[0].Expressions) != 1 {
					t.Fatalf("%s: result set %v, want one decision", name, rs)
				}
				results[name] = rs
			}
			want := results["direct value"][0].Expressions[0].Value
			for name, rs := range results {
				if diff := cmp.Diff(want, rs[0].Expressions[0].Value); diff != "" {
					t.Errorf("decision from %s differs from the direct value's (-direct +%s):\n%s", name, name, diff)
				}
			}

			d, err := p.Eval(ctx, tt.in)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			fromDoc, err := decodeDecision(want)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(fromDoc, d); diff != "" {
				t.Errorf("Policy.Eval differs from the raw query (-query +Eval):\n%s", diff)
			}
			checkEnforceable(t, d)
		})
	}
}

func TestInputValueRepresentativeDecision(t *testing.T) {
	t.Parallel()
	p := compile(t, newEngine(t, Config{}), defaultBundle(t))
	got, err := p.Eval(context.Background(), representativeInput())
	if err != nil {
		t.Fatal(err)
	}
	want := Decision{
		Allow:  true,
		Mask:   Mask{Rules: []MaskRule{{Types: []string{"CREDIT_CARD", "EMAIL"}, Action: ActionRedact}}},
		Limits: []Limit{{Scope: "key:k_123", Window: "minute", Tokens: 200000}},
	}
	opts := cmp.Options{cmpopts.EquateEmpty(), cmpopts.IgnoreFields(Decision{}, "Route", "Stream", "Log")}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("decision mismatch (-want +got):\n%s", diff)
	}
}

func TestInputValueOptionalParams(t *testing.T) {
	t.Parallel()
	zero := 0.0
	tests := []struct {
		name   string
		params Params
		want   string
	}{
		{"unset", Params{Tools: 0, Messages: 1}, `{"messages": 1, "tools": 0, "tool_names": []}`},
		{"max tokens", Params{MaxTokens: 100, Messages: 2}, `{"max_tokens": 100, "messages": 2, "tools": 0, "tool_names": []}`},
		{"temperature zero is set", Params{Temperature: &zero}, `{"messages": 0, "temperature": 0, "tools": 0, "tool_names": []}`},
		{"tools", Params{Tools: 2, ToolNames: []string{"search", ""}}, `{"messages": 0, "tools": 2, "tool_names": ["search", ""]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := ast.MustParseTerm(tt.want).Value
			if got := tt.params.value(nil); ast.Compare(got, want) != 0 {
				t.Errorf("params = %v, want %v", got, want)
			}
		})
	}
}
