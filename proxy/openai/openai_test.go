package openai_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/tollgate/tollgate/proxy/openai"
)

// jsonEqual compares raw JSON by value, so that re-encoding (which compacts)
// does not count as a change.
var jsonEqual = cmp.Comparer(func(a, b json.RawMessage) bool {
	return bytes.Equal(compact(a), compact(b))
})

// equateEmpty treats nil and empty slices and maps alike, except raw JSON,
// which jsonEqual compares.
var equateEmpty = cmp.FilterPath(func(p cmp.Path) bool {
	return p.Last().Type() != reflect.TypeFor[json.RawMessage]()
}, cmpopts.EquateEmpty())

func compact(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ptr[T any](v T) *T { return &v }

func TestParseChatRequestValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want *openai.ChatRequest
	}{
		{
			name: "string content",
			body: `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
			want: &openai.ChatRequest{
				Model:    "gpt-4o",
				Messages: []openai.Message{{Role: "user", Content: openai.TextContent("hi")}},
			},
		},
		{
			name: "content parts",
			body: `{"model":"gpt-4o","messages":[{"role":"user","content":[` +
				`{"type":"text","text":"describe"},` +
				`{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}`,
			want: &openai.ChatRequest{
				Model: "gpt-4o",
				Messages: []openai.Message{{Role: "user", Content: openai.Content{IsParts: true, Parts: []openai.ContentPart{
					{Type: "text", Text: "describe"},
					{Type: "image_url", ImageURL: json.RawMessage(`{"url":"https://example.com/a.png"}`)},
				}}}},
			},
		},
		{
			name: "null content for assistant with tool calls",
			body: `{"model":"gpt-4o","messages":[` +
				`{"role":"user","content":"weather?"},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}}]},` +
				`{"role":"tool","tool_call_id":"call_1","content":"sunny"}]}`,
			want: &openai.ChatRequest{
				Model: "gpt-4o",
				Messages: []openai.Message{
					{Role: "user", Content: openai.TextContent("weather?")},
					{Role: "assistant", Content: openai.Content{Null: true}, ToolCalls: []openai.ToolCall{{
						ID: "call_1", Type: "function",
						Function: openai.FunctionCall{Name: "weather", Arguments: `{"city":"Oslo"}`},
					}}},
					{Role: "tool", ToolCallID: "call_1", Content: openai.TextContent("sunny")},
				},
			},
		},
		{
			name: "known scalar fields",
			body: `{"model":"m","messages":[{"role":"system","content":"s"},{"role":"developer","content":"d"},{"role":"user","content":"u","name":"ana"}],` +
				`"stream":true,"stream_options":{"include_usage":true},"max_tokens":64,"temperature":0.2,"top_p":0.9,"n":2,"user":"u1",` +
				`"tools":[{"type":"function","function":{"name":"f"}}]}`,
			want: &openai.ChatRequest{
				Model: "m",
				Messages: []openai.Message{
					{Role: "system", Content: openai.TextContent("s")},
					{Role: "developer", Content: openai.TextContent("d")},
					{Role: "user", Content: openai.TextContent("u"), Name: "ana"},
				},
				Stream:        true,
				StreamOptions: &openai.StreamOptions{IncludeUsage: true},
				MaxTokens:     ptr(64),
				Temperature:   ptr(0.2),
				TopP:          ptr(0.9),
				N:             ptr(2),
				User:          "u1",
				Tools:         []openai.Tool{{Type: "function", Function: json.RawMessage(`{"name":"f"}`)}},
			},
		},
		{
			name: "unknown fields go to Extra verbatim",
			body: `{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":7,"metadata":{"a": [1, 2]},"response_format":{"type":"json_object"}}`,
			want: &openai.ChatRequest{
				Model:    "m",
				Messages: []openai.Message{{Role: "user", Content: openai.TextContent("hi")}},
				Extra: map[string]json.RawMessage{
					"seed":            json.RawMessage(`7`),
					"metadata":        json.RawMessage(`{"a": [1, 2]}`),
					"response_format": json.RawMessage(`{"type":"json_object"}`),
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := openai.ParseChatRequest([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseChatRequest: got error %v, want nil", err)
			}
			// Exact bytes: Extra must hold what the client sent.
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseChatRequest mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseChatRequestErrors(t *testing.T) {
	t.Parallel()
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name      string
		body      string
		wantParam string
		// wantMsg are substrings the message must contain.
		wantMsg []string
		// notMsg are substrings it must not contain.
		notMsg []string
	}{
		{name: "empty body", body: ``, wantMsg: []string{"not valid JSON", "send a JSON object"}},
		{name: "not JSON", body: `model=gpt-4o`, wantMsg: []string{"not valid JSON", "at byte", "send a JSON object"}},
		{name: "truncated", body: `{"model":"gpt-4o",`, wantMsg: []string{"not valid JSON"}},
		{name: "JSON null", body: `null`, wantMsg: []string{"must be a JSON object", "null"}},
		{name: "top-level array", body: `[{"model":"m"}]`, wantMsg: []string{"must be a JSON object", "array"}, notMsg: []string{"not valid JSON", "map[string]"}},
		{name: "top-level string", body: `"hi"`, wantMsg: []string{"must be a JSON object", "string"}, notMsg: []string{"not valid JSON", "map[string]"}},
		{name: "top-level number", body: `42`, wantMsg: []string{"must be a JSON object", "number"}, notMsg: []string{"not valid JSON", "map[string]"}},
		{name: "missing model", body: `{` + msgs + `}`, wantParam: "model", wantMsg: []string{"'model'", "gpt-4o-mini"}},
		{name: "known field in other case", body: `{"model":"m","Model":"other",` + msgs + `}`, wantParam: "Model", wantMsg: []string{"lower case", `"model"`}},
		{name: "empty model", body: `{"model":"",` + msgs + `}`, wantParam: "model", wantMsg: []string{"'model'"}},
		{name: "model not a string", body: `{"model":4,` + msgs + `}`, wantParam: "model", wantMsg: []string{"got JSON number", "want a string"}},
		{name: "missing messages", body: `{"model":"m"}`, wantParam: "messages", wantMsg: []string{"'messages'", "at least one message"}},
		{name: "null messages", body: `{"model":"m","messages":null}`, wantParam: "messages", wantMsg: []string{"'messages'"}},
		{name: "empty messages", body: `{"model":"m","messages":[]}`, wantParam: "messages", wantMsg: []string{"at least one message"}},
		{name: "messages a string", body: `{"model":"m","messages":"hi"}`, wantParam: "messages", wantMsg: []string{"got JSON string", "want an array"}},
		{name: "messages an object", body: `{"model":"m","messages":{"role":"user"}}`, wantParam: "messages", wantMsg: []string{"got JSON object", "want an array"}},
		{
			name: "content a number", body: `{"model":"m","messages":[{"role":"user","content":5}]}`,
			wantParam: "messages.content", wantMsg: []string{"got JSON number", "want a string or an array of content parts"},
			notMsg: []string{"non-string"},
		},
		{
			name: "content a bool", body: `{"model":"m","messages":[{"role":"user","content":true}]}`,
			wantParam: "messages.content", wantMsg: []string{"got JSON bool", "a string or an array"},
		},
		{
			name: "content an object", body: `{"model":"m","messages":[{"role":"user","content":{"text":"x"}}]}`,
			wantParam: "messages.content", wantMsg: []string{"got JSON object", "a string or an array"},
		},
		{
			name: "bad role", body: `{"model":"m","messages":[{"role":"user","content":"a"},{"role":"robot","content":"b"}]}`,
			wantParam: "messages[1].role", wantMsg: []string{`"robot"`, "not valid", "system, developer, user, assistant, tool"},
		},
		{
			name: "missing role", body: `{"model":"m","messages":[{"content":"a"}]}`,
			wantParam: "messages[0].role", wantMsg: []string{"messages[0].role is missing"},
		},
		{
			name: "role a number", body: `{"model":"m","messages":[{"role":1,"content":"a"}]}`,
			wantParam: "messages.role", wantMsg: []string{"got JSON number", "want a string"},
		},
		{name: "max_tokens zero", body: `{"model":"m",` + msgs + `,"max_tokens":0}`, wantParam: "max_tokens", wantMsg: []string{"positive integer", "got 0"}},
		{name: "max_tokens negative", body: `{"model":"m",` + msgs + `,"max_tokens":-5}`, wantParam: "max_tokens", wantMsg: []string{"positive integer", "got -5"}},
		{name: "max_tokens a string", body: `{"model":"m",` + msgs + `,"max_tokens":"5"}`, wantParam: "max_tokens", wantMsg: []string{"got JSON string", "want an integer"}},
		{name: "max_tokens a fraction", body: `{"model":"m",` + msgs + `,"max_tokens":1.5}`, wantParam: "max_tokens", wantMsg: []string{"want an integer"}},
		{name: "max_tokens overflows", body: `{"model":"m",` + msgs + `,"max_tokens":99999999999999999999}`, wantParam: "max_tokens", wantMsg: []string{"want an integer"}},
		{name: "max_completion_tokens zero", body: `{"model":"m",` + msgs + `,"max_completion_tokens":0}`, wantParam: "max_completion_tokens", wantMsg: []string{"positive integer"}},
		{name: "stream a string", body: `{"model":"m",` + msgs + `,"stream":"yes"}`, wantParam: "stream", wantMsg: []string{"want true or false"}},
		{name: "temperature a string", body: `{"model":"m",` + msgs + `,"temperature":"hot"}`, wantParam: "temperature", wantMsg: []string{"want a number"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := openai.ParseChatRequest([]byte(tt.body))
			if err == nil {
				t.Fatalf("ParseChatRequest(%s): got %+v, nil error; want *RequestError", tt.body, got)
			}
			if got != nil {
				t.Errorf("ParseChatRequest(%s): got request %+v alongside error, want nil", tt.body, got)
			}
			var re *openai.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("ParseChatRequest(%s): got error %T %v, want *openai.RequestError", tt.body, err, err)
			}
			if re.Param != tt.wantParam {
				t.Errorf("Param: got %q, want %q", re.Param, tt.wantParam)
			}
			if re.Error() != re.Message {
				t.Errorf("Error(): got %q, want Message %q", re.Error(), re.Message)
			}
			for _, s := range tt.wantMsg {
				if !strings.Contains(re.Message, s) {
					t.Errorf("Message: got %q, want it to contain %q", re.Message, s)
				}
			}
			for _, s := range tt.notMsg {
				if strings.Contains(re.Message, s) {
					t.Errorf("Message: got %q, want it not to contain %q", re.Message, s)
				}
			}
		})
	}
}

func TestMaxOutputTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		extra string
		want  int
	}{
		{name: "neither", extra: ``, want: 0},
		{name: "max_tokens", extra: `,"max_tokens":100`, want: 100},
		{name: "max_completion_tokens", extra: `,"max_completion_tokens":50`, want: 50},
		{name: "both prefers max_completion_tokens", extra: `,"max_tokens":100,"max_completion_tokens":50`, want: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := openai.ParseChatRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]` + tt.extra + `}`))
			if err != nil {
				t.Fatalf("ParseChatRequest: %v", err)
			}
			if got := r.MaxOutputTokens(); got != tt.want {
				t.Errorf("MaxOutputTokens(): got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestContentString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{name: "string", content: `"hello"`, want: "hello"},
		{name: "empty string", content: `""`, want: ""},
		{name: "null", content: `null`, want: ""},
		{name: "one text part", content: `[{"type":"text","text":"a"}]`, want: "a"},
		{name: "text parts joined by newline", content: `[{"type":"text","text":"a"},{"type":"text","text":"b"}]`, want: "a\nb"},
		{name: "non-text parts skipped", content: `[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]`, want: "a\nb"},
		{name: "leading image has no leading newline", content: `[{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]`, want: "b"},
		{name: "refusal is not text", content: `[{"type":"refusal","refusal":"no"}]`, want: ""},
		{name: "no parts", content: `[]`, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c openai.Content
			if err := json.Unmarshal([]byte(tt.content), &c); err != nil {
				t.Fatalf("Unmarshal(%s): %v", tt.content, err)
			}
			if got := c.String(); got != tt.want {
				t.Errorf("String() of %s: got %q, want %q", tt.content, got, tt.want)
			}
		})
	}
}

func TestContentMarshalKeepsForm(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`"hi"`, `""`, `null`, `[]`, `[{"type":"text","text":"a"}]`} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			var c openai.Content
			if err := json.Unmarshal([]byte(in), &c); err != nil {
				t.Fatalf("Unmarshal(%s): %v", in, err)
			}
			out, err := json.Marshal(c)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(out) != in {
				t.Errorf("Marshal(Unmarshal(%s)): got %s, want %s", in, out, in)
			}
		})
	}
}

// roundTripBodies are valid requests covering every field.
var roundTripBodies = []string{
	`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://x/y.png","detail":"low"}}]}]}`,
	`{"model":"gpt-4o","messages":[{"role":"user","content":"w?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"ok"}]}`,
	`{"model":"m","messages":[{"role":"system","content":"s","name":"n"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":64,"max_completion_tokens":32,"temperature":0,"top_p":1,"n":1,"user":"u","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":7,"metadata":{"a": [1, 2], "b": "\u00e9"},"logit_bias":{"50256":-100},"parallel_tool_calls":false,"stop":null}`,
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	for _, body := range roundTripBodies {
		t.Run(body, func(t *testing.T) {
			t.Parallel()
			first, err := openai.ParseChatRequest([]byte(body))
			if err != nil {
				t.Fatalf("ParseChatRequest: %v", err)
			}
			out, err := first.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if !json.Valid(out) {
				t.Fatalf("MarshalJSON: got invalid JSON %s", out)
			}
			second, err := openai.ParseChatRequest(out)
			if err != nil {
				t.Fatalf("ParseChatRequest(MarshalJSON()) = %s: %v", out, err)
			}
			if diff := cmp.Diff(first, second, jsonEqual); diff != "" {
				t.Errorf("round trip mismatch (-first +second):\n%s", diff)
			}
			// The whole document is semantically what the client sent.
			var want, got any
			if err := json.Unmarshal([]byte(body), &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("MarshalJSON changed the document (-sent +marshaled):\n%s", diff)
			}
		})
	}
}

func TestMarshalJSONExtraVerbatim(t *testing.T) {
	t.Parallel()
	extras := map[string]string{
		"metadata":        `{"a": [1, 2],  "b": {"c": null}}`,
		"seed":            `12345678901234567890`,
		"response_format": `{ "type" : "json_schema" }`,
		"stop":            `["\n", "END"]`,
		"prediction":      `"caf\u00e9"`,
	}
	var b strings.Builder
	b.WriteString(`{"model":"m","messages":[{"role":"user","content":"hi"}]`)
	for k, v := range extras {
		b.WriteString(`,"` + k + `": ` + v)
	}
	b.WriteString(`}`)

	r, err := openai.ParseChatRequest([]byte(b.String()))
	if err != nil {
		t.Fatalf("ParseChatRequest: %v", err)
	}
	for name, marshal := range map[string]func() ([]byte, error){
		"MarshalJSON":  r.MarshalJSON,
		"json.Marshal": func() ([]byte, error) { return json.Marshal(r) },
	} {
		out, err := marshal()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(out, &top); err != nil {
			t.Fatalf("%s: got invalid JSON %s: %v", name, out, err)
		}
		for k, want := range extras {
			got, ok := top[k]
			if !ok {
				t.Errorf("%s: field %q missing from %s", name, k, out)
				continue
			}
			// MarshalJSON writes the client's bytes; json.Marshal compacts them.
			if name == "json.Marshal" {
				if !bytes.Equal(got, compact([]byte(want))) {
					t.Errorf("%s: field %q: got %s, want %s", name, k, got, compact([]byte(want)))
				}
				continue
			}
			if string(got) != want {
				t.Errorf("%s: field %q: got %s, want %s", name, k, got, want)
			}
		}
		if len(top) != len(extras)+2 {
			t.Errorf("%s: got %d top-level fields in %s, want %d", name, len(top), out, len(extras)+2)
		}
	}
}

func FuzzParseChatRequest(f *testing.F) {
	for _, b := range roundTripBodies {
		f.Add([]byte(b))
	}
	for _, b := range []string{
		``, `null`, `[]`, `{}`, `"x"`, `{"model":"m","messages":[]}`,
		`{"model":"m","messages":[{"role":"user","content":5}]}`,
		`{"model":"m","messages":[{"role":"user","content":"a"}],"max_tokens":0}`,
		`{"model":"m","messages":[{"role":"user","content":[null,{"type":"text"}]}],"Model":"x"}`,
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := openai.ParseChatRequest(body)
		if err != nil {
			var re *openai.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("ParseChatRequest: got error %T %v, want *openai.RequestError", err, err)
			}
			if re.Message == "" {
				t.Fatalf("ParseChatRequest: got empty RequestError message")
			}
			return
		}
		out, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of parsed %q: %v", body, err)
		}
		r2, err := openai.ParseChatRequest(out)
		if err != nil {
			t.Fatalf("re-parse of %s (from %q): %v", out, body, err)
		}
		if r2.Model != r.Model {
			t.Errorf("re-parse Model: got %q, want %q", r2.Model, r.Model)
		}
		if len(r2.Messages) != len(r.Messages) {
			t.Errorf("re-parse len(Messages): got %d, want %d", len(r2.Messages), len(r.Messages))
		}
		// An empty array with omitempty (e.g. "tools":[]) is dropped on
		// the way out, which changes nothing for the upstream.
		if diff := cmp.Diff(r, r2, jsonEqual, equateEmpty); diff != "" {
			t.Errorf("re-parse of %s mismatch (-first +second):\n%s", out, diff)
		}
	})
}
