package engine

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/openai"
)

var (
	counterOnce sync.Once
	counter     *tokens.Counter
	counterErr  error
)

// testCounter shares one tokens.Counter (it loads two vocabularies).
func testCounter(t testing.TB) *tokens.Counter {
	t.Helper()
	counterOnce.Do(func() { counter, counterErr = tokens.New() })
	if counterErr != nil {
		t.Fatalf("tokens.New: %v", counterErr)
	}
	return counter
}

// mustBuild builds the input of req, failing the test when the scan fails.
func mustBuild(tb testing.TB, b *Builder, req *openai.ChatRequest, info RequestInfo, id Identity) (*Input, *Scan) {
	tb.Helper()
	in, scan, err := b.Build(tb.Context(), req, info, id)
	if err != nil {
		tb.Fatalf("Build: %v", err)
	}
	return in, scan
}

func newBuilder(t testing.TB) *Builder {
	t.Helper()
	return NewBuilder(testCounter(t), pii.NewScanner())
}

// parseChat parses a request body the way the proxy does.
func parseChat(t testing.TB, body string) *openai.ChatRequest {
	t.Helper()
	req, err := openai.ParseChatRequest([]byte(body))
	if err != nil {
		t.Fatalf("ParseChatRequest(%s): %v", body, err)
	}
	return req
}

// piiRequest has PII in a string content (message 1) and in two text parts
// of an array content (message 3), and none elsewhere.
const piiRequest = `{
	"model": "gpt-4o",
	"messages": [
		{"role": "system", "content": "You are a support assistant. Never repeat personal data."},
		{"role": "user", "name": "ana", "content": "Mail bob@example.com or alice@example.org, card 4111 1111 1111 1111."},
		{"role": "assistant", "content": "Noted. Anything else?"},
		{"role": "user", "content": [
			{"type": "text", "text": "Call +44 20 7946 0958 today."},
			{"type": "image_url", "image_url": {"url": "https://example.com/a@b.cd.png"}},
			{"type": "text", "text": "Or write to carol@example.net."}
		]}
	]
}`

func TestBuildTokens(t *testing.T) {
	t.Parallel()
	b := newBuilder(t)
	tests := []struct {
		name           string
		body           string
		msgs           []tokens.Message // what the provider will count
		wantCompletion int
		wantMaxTokens  int
	}{
		{
			name: "no max tokens",
			body: `{"model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "name": "ana", "content": "What is OPA?"}]}`,
			msgs: []tokens.Message{
				{Role: "system", Content: "Be brief."},
				{Role: "user", Name: "ana", Content: "What is OPA?"},
			},
			wantCompletion: DefaultMaxCompletion,
		},
		{
			name:           "max_tokens",
			body:           `{"model": "gpt-3.5-turbo", "max_tokens": 100, "messages": [{"role": "user", "content": "Summarise the quarterly report in three bullet points."}]}`,
			msgs:           []tokens.Message{{Role: "user", Content: "Summarise the quarterly report in three bullet points."}},
			wantCompletion: 100,
			wantMaxTokens:  100,
		},
		{
			name:           "max_completion_tokens wins over max_tokens",
			body:           `{"model": "gpt-4o-mini", "max_tokens": 100, "max_completion_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}`,
			msgs:           []tokens.Message{{Role: "user", Content: "hi"}},
			wantCompletion: 50,
			wantMaxTokens:  50,
		},
		{
			name: "content parts count as their text joined by newlines",
			body: `{"model": "gpt-4o", "messages": [{"role": "user", "content": [
				{"type": "text", "text": "Describe this picture."},
				{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
				{"type": "text", "text": "In French, please."}]}]}`,
			msgs:           []tokens.Message{{Role: "user", Content: "Describe this picture.\nIn French, please."}},
			wantCompletion: DefaultMaxCompletion,
		},
		{
			name:           "null content",
			body:           `{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}`,
			msgs:           []tokens.Message{{Role: "user", Content: "hi"}, {Role: "assistant"}},
			wantCompletion: DefaultMaxCompletion,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := parseChat(t, tt.body)
			in, _ := mustBuild(t, b, req, RequestInfo{}, Identity{})
			want := Tokens{
				Prompt:         testCounter(t).CountChat(req.Model, tt.msgs),
				MaxCompletion:  tt.wantCompletion,
				EstimatedTotal: testCounter(t).CountChat(req.Model, tt.msgs) + tt.wantCompletion,
			}
			if in.Tokens != want {
				t.Errorf("Tokens = %+v, want %+v", in.Tokens, want)
			}
			if in.Tokens.Prompt <= 3 {
				t.Errorf("Tokens.Prompt = %d, want more than the reply priming", in.Tokens.Prompt)
			}
			if in.Params.MaxTokens != tt.wantMaxTokens {
				t.Errorf("Params.MaxTokens = %d, want %d", in.Params.MaxTokens, tt.wantMaxTokens)
			}
		})
	}
}

func TestBuildCopiesRequestFields(t *testing.T) {
	t.Parallel()
	req := parseChat(t, "{\"model\": \"gpt-4o\", \"stream\": true, \"temperature\": 0.3,"+
		"\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"a\"}}, {\"type\": \"function\", \"function\": {\"name\": \"b\"}}],"+
		"\"messages\": [{\"role\": \"user\", \"content\": \"Fix this:\\n```go\\nfunc main() {}\\n```\"}, {\"role\": \"assistant\", \"content\": \"Done.\"}, {\"role\": \"user\", \"content\": \"Thanks\"}]}")
	info := RequestInfo{ID: "req_9", Path: "/v1/chat/completions", ReceivedAt: time.Unix(1700000000, 0), ClientIP: "198.51.100.4", Headers: map[string]string{"x-project": "p"}}
	id := Identity{Subject: "ana", Kind: "user", Auth: "oidc", Team: "ml", Roles: []string{"analyst"}}
	in, _ := mustBuild(t, newBuilder(t), req, info, id)

	wantInfo := info
	wantInfo.Stream = true
	if diff := cmp.Diff(wantInfo, in.Request); diff != "" {
		t.Errorf("Request mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(id, in.Identity); diff != "" {
		t.Errorf("Identity mismatch (-want +got):\n%s", diff)
	}
	if in.Model.Requested != "gpt-4o" {
		t.Errorf("Model.Requested = %q, want gpt-4o", in.Model.Requested)
	}
	if !slices.Equal(in.Params.ToolNames, []string{"a", "b"}) {
		t.Errorf("Params.ToolNames = %q, want [a b]", in.Params.ToolNames)
	}
	if in.Params.Temperature == nil || *in.Params.Temperature != 0.3 || in.Params.Tools != 2 || in.Params.Messages != 3 {
		t.Errorf("Params = %+v, want temperature 0.3, 2 tools, 3 messages", in.Params)
	}
	// 0.20 code + 0.10·(3-1)/11 turns + 0.05 tools; 29 tokens add no length.
	if want := (Complexity{Score: 0.268, Turns: 3, Code: true, Tools: 2, PromptTokens: in.Tokens.Prompt}); in.Complexity != want {
		t.Errorf("Complexity = %+v, want %+v", in.Complexity, want)
	}
}

func TestBuildPIISummary(t *testing.T) {
	t.Parallel()
	req := parseChat(t, piiRequest)
	in, scan := mustBuild(t, newBuilder(t), req, RequestInfo{}, Identity{})

	wantPII := PIISummary{
		Types: []string{"CREDIT_CARD", "EMAIL", "PHONE"},
		Findings: []PIIFinding{
			{Type: "EMAIL", Count: 2, Message: 1, Role: "user", Where: "content"},
			{Type: "CREDIT_CARD", Count: 1, Message: 1, Role: "user", Where: "content"},
			{Type: "PHONE", Count: 1, Message: 3, Role: "user", Where: "content"},
			{Type: "EMAIL", Count: 1, Message: 3, Role: "user", Where: "content"},
		},
	}
	if diff := cmp.Diff(wantPII, in.PII); diff != "" {
		t.Errorf("PII mismatch (-want +got):\n%s", diff)
	}

	// The scan locates every finding, so masking needs no second scan.
	type located struct {
		Message, Part int
		Role, Type    string
		Text          string
	}
	var got []located
	for _, s := range scan.Segments {
		text := req.Messages[s.Message].Content.Text
		if s.Part >= 0 {
			text = req.Messages[s.Message].Content.Parts[s.Part].Text
		}
		for _, f := range s.Findings {
			got = append(got, located{s.Message, s.Part, s.Role, f.Type, text[f.Start:f.End]})
		}
	}
	want := []located{
		{1, -1, "user", "EMAIL", "bob@example.com"},
		{1, -1, "user", "EMAIL", "alice@example.org"},
		{1, -1, "user", "CREDIT_CARD", "4111 1111 1111 1111"},
		{3, 0, "user", "PHONE", "+44 20 7946 0958"},
		{3, 2, "user", "EMAIL", "carol@example.net"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scan mismatch (-want +got):\n%s", diff)
	}
}

func TestBuildWithoutPII(t *testing.T) {
	t.Parallel()
	req := parseChat(t, `{"model": "echo", "messages": [
		{"role": "system", "content": "Answer in 3 sentences or fewer; version 1.2.3, ticket INV-2024-000123."},
		{"role": "user", "content": [{"type": "text", "text": "Meeting at 10:30 on 11/25/2026, room 4."}]}]}`)
	in, scan := mustBuild(t, newBuilder(t), req, RequestInfo{}, Identity{})
	if len(scan.Segments) != 0 {
		t.Errorf("Scan = %+v, want no segments", scan.Segments)
	}
	if len(in.PII.Types) != 0 || len(in.PII.Findings) != 0 {
		t.Errorf("PII = %+v, want none", in.PII)
	}
	if res := ApplyMask(req, scan, Mask{Rules: []MaskRule{{Types: []string{"EMAIL"}, Action: ActionRedact}}}); res.Masked != 0 || len(res.Blocked) != 0 {
		t.Errorf("ApplyMask = %+v, want nothing masked", res)
	}
}

func TestApplyMask(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mask Mask
		// want are the texts of message 1 and of parts 0 and 2 of message 3.
		want        [3]string
		wantMasked  int
		wantBlocked []string
	}{
		{
			name: "no rules",
			want: [3]string{
				"Mail bob@example.com or alice@example.org, card 4111 1111 1111 1111.",
				"Call +44 20 7946 0958 today.",
				"Or write to carol@example.net.",
			},
		},
		{
			name: "e-mail only; the other types have no action",
			mask: Mask{Rules: []MaskRule{{Types: []string{"EMAIL"}, Action: ActionRedact}}},
			want: [3]string{
				"Mail [REDACTED:EMAIL] or [REDACTED:EMAIL], card 4111 1111 1111 1111.",
				"Call +44 20 7946 0958 today.",
				"Or write to [REDACTED:EMAIL].",
			},
			wantMasked: 3,
		},
		{
			name: "placeholder and hash never forward the value",
			mask: Mask{Rules: []MaskRule{
				{Types: []string{"PHONE"}, Action: ActionPlaceholder},
				{Types: []string{"CREDIT_CARD", "EMAIL"}, Action: ActionHash},
			}},
			want: [3]string{
				"Mail [REDACTED:EMAIL] or [REDACTED:EMAIL], card [REDACTED:CREDIT_CARD].",
				"Call [REDACTED:PHONE] today.",
				"Or write to [REDACTED:EMAIL].",
			},
			wantMasked: 5,
		},
		{
			name: "block reports the type and redacts the rest",
			mask: Mask{Rules: []MaskRule{
				{Types: []string{"CREDIT_CARD"}, Action: ActionBlock},
				{Types: []string{"EMAIL"}, Action: ActionRedact},
			}},
			want: [3]string{
				"Mail [REDACTED:EMAIL] or [REDACTED:EMAIL], card 4111 1111 1111 1111.",
				"Call +44 20 7946 0958 today.",
				"Or write to [REDACTED:EMAIL].",
			},
			wantMasked:  3,
			wantBlocked: []string{"CREDIT_CARD"},
		},
		{
			name: "block twice reports the type once",
			mask: Mask{Rules: []MaskRule{{Types: []string{"EMAIL", "US_SSN"}, Action: ActionBlock}}},
			want: [3]string{
				"Mail bob@example.com or alice@example.org, card 4111 1111 1111 1111.",
				"Call +44 20 7946 0958 today.",
				"Or write to carol@example.net.",
			},
			wantBlocked: []string{"EMAIL"},
		},
		{
			name: "rule for a type not in the request",
			mask: Mask{Rules: []MaskRule{{Types: []string{"US_SSN"}, Action: ActionRedact}}},
			want: [3]string{
				"Mail bob@example.com or alice@example.org, card 4111 1111 1111 1111.",
				"Call +44 20 7946 0958 today.",
				"Or write to carol@example.net.",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := parseChat(t, piiRequest)
			_, scan := mustBuild(t, newBuilder(t), req, RequestInfo{}, Identity{})
			untouched := parseChat(t, piiRequest)

			res := ApplyMask(req, scan, tt.mask)

			got := [3]string{req.Messages[1].Content.Text, req.Messages[3].Content.Parts[0].Text, req.Messages[3].Content.Parts[2].Text}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("masked texts mismatch (-want +got):\n%s", diff)
			}
			if res.Masked != tt.wantMasked {
				t.Errorf("Masked = %d, want %d", res.Masked, tt.wantMasked)
			}
			if diff := cmp.Diff(tt.wantBlocked, res.Blocked, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Blocked mismatch (-want +got):\n%s", diff)
			}
			// Nothing else changes: other messages, the image part, the
			// content kinds.
			for _, i := range []int{0, 2} {
				if req.Messages[i].Content.Text != untouched.Messages[i].Content.Text {
					t.Errorf("message %d changed to %q", i, req.Messages[i].Content.Text)
				}
			}
			if !req.Messages[3].Content.IsParts || req.Messages[1].Content.IsParts {
				t.Errorf("content kinds changed: %+v", req.Messages)
			}
			if diff := cmp.Diff(untouched.Messages[3].Content.Parts[1], req.Messages[3].Content.Parts[1]); diff != "" {
				t.Errorf("image part changed (-want +got):\n%s", diff)
			}
			// The masked request still marshals to the same shape.
			raw, err := json.Marshal(req)
			if err != nil {
				t.Fatalf("marshal masked request: %v", err)
			}
			for _, w := range got {
				b, _ := json.Marshal(w)
				if !strings.Contains(string(raw), string(b)) {
					t.Errorf("marshalled request %s lacks %s", raw, b)
				}
			}
		})
	}
}

func TestApplyMaskNilScan(t *testing.T) {
	t.Parallel()
	req := parseChat(t, piiRequest)
	res := ApplyMask(req, nil, Mask{Rules: []MaskRule{{Types: []string{"EMAIL"}, Action: ActionRedact}}})
	if res.Masked != 0 || len(res.Blocked) != 0 {
		t.Errorf("ApplyMask with no scan = %+v, want nothing", res)
	}
}

// TestApplyMaskWithTransforms checks the reversible and keyed actions: the
// same value gets the same placeholder everywhere in the request, the
// originals come back from the placeholders, and hashes are stable per
// tenant and differ across tenants.
func TestApplyMaskWithTransforms(t *testing.T) {
	t.Parallel()
	mask := Mask{Rules: []MaskRule{
		{Types: []string{"EMAIL"}, Action: ActionPlaceholder},
		{Types: []string{"CREDIT_CARD", "PHONE"}, Action: ActionHash},
	}}
	masked := func(tenant string) (*openai.ChatRequest, *pii.Placeholders, MaskResult) {
		req := parseChat(t, piiRequest)
		_, scan := mustBuild(t, newBuilder(t), req, RequestInfo{}, Identity{})
		h, err := pii.NewHasher([]byte("0123456789abcdef-test-secret"), tenant)
		if err != nil {
			t.Fatal(err)
		}
		ph := pii.NewPlaceholders()
		return req, ph, ApplyMaskWith(req, scan, mask, MaskOptions{Hasher: h, Placeholders: ph})
	}
	req, ph, res := masked("acme")
	text := req.Messages[1].Content.Text
	if res.Masked != 5 || strings.Contains(text, "@example") || strings.Contains(text, "4111") {
		t.Fatalf("masked %d values, text %q; want 5 and no original value", res.Masked, text)
	}
	if !strings.Contains(text, "<EMAIL_1>") || !strings.Contains(text, "<EMAIL_2>") || !strings.Contains(text, "[CREDIT_CARD:h_") {
		t.Fatalf("text %q; want numbered e-mail placeholders and a card hash", text)
	}
	if got := ph.Restore(text); !strings.HasPrefix(got, "Mail bob@example.com or alice@example.org, card [CREDIT_CARD:h_") {
		t.Fatalf("Restore(%q) = %q; want the e-mail addresses back and the card still hashed", text, got)
	}
	again, _, _ := masked("acme")
	other, _, _ := masked("globex")
	if again.Messages[1].Content.Text != text {
		t.Errorf("hashes differ between two requests of one tenant: %q vs %q", again.Messages[1].Content.Text, text)
	}
	if other.Messages[1].Content.Text == text {
		t.Errorf("two tenants got the same hash: %q", text)
	}
}

// TestBuildScansToolsAndToolCalls checks that PII in tool definitions and
// in assistants' tool-call arguments is found, located and masked, and that
// masked JSON stays valid.
func TestBuildScansToolsAndToolCalls(t *testing.T) {
	t.Parallel()
	req := parseChat(t, `{"model": "gpt-4o", "tools": [{"type": "function", "function": {"name": "mail", "description": "Send mail; the admin is root@example.com", "parameters": {"type": "object"}}}],
		"messages": [
			{"role": "user", "content": "mail bob"},
			{"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "mail", "arguments": "{\"to\":\"bob@example.org\",\"cc\":\"ann@example.org\"}"}}]},
			{"role": "tool", "tool_call_id": "c1", "content": "sent to bob@example.org"}]}`)
	in, scan := mustBuild(t, newBuilder(t), req, RequestInfo{}, Identity{})
	want := []PIIFinding{
		{Type: "EMAIL", Count: 2, Message: 1, Role: "assistant", Where: WhereToolCall},
		{Type: "EMAIL", Count: 1, Message: 2, Role: "tool", Where: WhereContent},
		{Type: "EMAIL", Count: 1, Message: -1, Role: "", Where: WhereToolDefinition},
	}
	if diff := cmp.Diff(want, in.PII.Findings); diff != "" {
		t.Fatalf("findings (-want +got):\n%s", diff)
	}
	res := ApplyMask(req, scan, Mask{Rules: []MaskRule{{Types: []string{"EMAIL"}, Action: ActionRedact}}})
	if res.Masked != 4 {
		t.Errorf("masked %d values, want 4", res.Masked)
	}
	var args map[string]string
	if err := json.Unmarshal([]byte(req.Messages[1].ToolCalls[0].Function.Arguments), &args); err != nil || args["to"] != "[REDACTED:EMAIL]" || args["cc"] != "[REDACTED:EMAIL]" {
		t.Errorf("tool-call arguments %q (%v); want valid JSON with both addresses redacted", req.Messages[1].ToolCalls[0].Function.Arguments, err)
	}
	var fn map[string]any
	if err := json.Unmarshal(req.Tools[0].Function, &fn); err != nil || fn["description"] != "Send mail; the admin is [REDACTED:EMAIL]" {
		t.Errorf("tool definition %s (%v); want valid JSON with the address redacted", req.Tools[0].Function, err)
	}
}

// TestBuildFailsClosed checks that a request the scanner refuses is an
// error, not an unscanned input.
func TestBuildFailsClosed(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("a", pii.DefaultMaxBytes+1)
	req := &openai.ChatRequest{Model: "gpt-4o", Messages: []openai.Message{{Role: "user", Content: openai.Content{Text: huge}}}}
	if in, scan, err := newBuilder(t).Build(t.Context(), req, RequestInfo{}, Identity{}); !errors.Is(err, ErrScan) || in != nil || scan != nil {
		t.Fatalf("Build of an oversized text: %v, %v, %v; want ErrScan and nothing else", in, scan, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	big := &openai.ChatRequest{Model: "gpt-4o", Messages: []openai.Message{{Role: "user", Content: openai.Content{Text: strings.Repeat("b", 1<<20)}}}}
	if _, _, err := newBuilder(t).Build(ctx, big, RequestInfo{}, Identity{}); !errors.Is(err, ErrScan) {
		t.Fatalf("Build with a cancelled context: %v; want ErrScan", err)
	}
}

// TestBuildScansEveryPartAndField checks parts of any type, refusals and
// other request fields the provider receives as sent.
func TestBuildScansEveryPartAndField(t *testing.T) {
	t.Parallel()
	req := parseChat(t, `{"model": "gpt-4o", "user": "jane.doe@example.com", "metadata": {"owner": "bob@example.org"},
		"messages": [
			{"role": "user", "content": [{"type": "input_text", "text": "reach me at ann@example.net"}]},
			{"role": "assistant", "content": [{"type": "refusal", "refusal": "I cannot mail carl@example.com"}]}]}`)
	in, scan := mustBuild(t, newBuilder(t), req, RequestInfo{}, Identity{})
	want := []PIIFinding{
		{Type: "EMAIL", Count: 1, Message: 0, Role: "user", Where: WhereContent},
		{Type: "EMAIL", Count: 1, Message: 1, Role: "assistant", Where: WhereContent},
		{Type: "EMAIL", Count: 2, Message: -1, Role: "", Where: WhereParameter},
	}
	if diff := cmp.Diff(want, in.PII.Findings); diff != "" {
		t.Fatalf("findings (-want +got):\n%s", diff)
	}
	ApplyMask(req, scan, Mask{Rules: []MaskRule{{Types: []string{"EMAIL"}, Action: ActionRedact}}})
	out, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(out), "[REDACTED:EMAIL]") != 4 || strings.Contains(string(out), "example.") {
		t.Fatalf("masked request %s; want all four addresses redacted", out)
	}
}
