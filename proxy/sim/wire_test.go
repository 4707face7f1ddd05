package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/proxy/sse"
)

// rawPost sends body to path with header pairs and returns status, headers
// and body.
func rawPost(t *testing.T, h *harness, path, body string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestWireShapes checks each format's answer against the field names the
// providers document, so that a misspelt JSON tag on both sides of a
// translation cannot pass unnoticed.
func TestWireShapes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{APIKey: "k"})
	gemReq := `{"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"hello gemini"}]}],"generationConfig":{"maxOutputTokens":50}}`
	tests := []struct {
		name, path, body string
		header           []string
		want             []string
	}{
		{name: "gemini", path: "/v1beta/models/echo:generateContent", body: gemReq, header: []string{"x-goog-api-key", "k", CachedTokensHeader, "2"},
			want: []string{`"candidates":[{"content":{"role":"model","parts":[{"text":"hello gemini"}]},"finishReason":"STOP","index":0}]`, `"usageMetadata":{"promptTokenCount":`, `"candidatesTokenCount":3`, `"cachedContentTokenCount":2`, `"modelVersion":"echo"`}},
		{name: "gemini key in query", path: "/v1beta/models/echo:generateContent?key=k", body: gemReq, want: []string{`"text":"hello gemini"`}},
		{name: "vertex", path: "/v1/projects/p/locations/us-central1/publishers/google/models/tool-echo:generateContent",
			body:   `{"contents":[{"role":"user","parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{"name":"f","parameters":{"type":"object"}}]}]}`,
			header: []string{"Authorization", "Bearer k"}, want: []string{`"functionCall":{"id":"call_`, `"name":"f","args":{"input":"x"}}`}},
		{name: "azure", path: "/openai/deployments/echo/chat/completions?api-version=2024-10-21", body: `{"messages":[{"role":"user","content":"hi azure"}]}`,
			header: []string{"api-key", "k"}, want: []string{`"object":"chat.completion"`, `"content":"hi azure"`, `"model":"echo"`}},
		{name: "anthropic", path: "/v1/messages", body: `{"model":"echo","max_tokens":20,"messages":[{"role":"user","content":"hi claude"}]}`,
			header: []string{"x-api-key", "k", "anthropic-version", "2023-06-01", CachedTokensHeader, "1"},
			want:   []string{`"type":"message"`, `"content":[{"type":"text","text":"hi claude"}]`, `"stop_reason":"end_turn"`, `"cache_read_input_tokens":1`, `"output_tokens":3`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, _, body := rawPost(t, h, tc.path, tc.body, tc.header...)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body %s\nlacks %s", body, w)
				}
			}
		})
	}
}

func TestWireErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{APIKey: "k"})
	ant := []string{"x-api-key", "k", "anthropic-version", "2023-06-01"}
	tests := []struct {
		name, path, body string
		header           []string
		status           int
		want             string
	}{
		{"anthropic no key", "/v1/messages", `{}`, []string{"anthropic-version", "1"}, 401, `"type":"error","error":{"type":"authentication_error"`},
		{"anthropic no version", "/v1/messages", `{"model":"echo","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, []string{"x-api-key", "k"}, 400, `anthropic-version`},
		{"anthropic unknown model", "/v1/messages", `{"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, ant, 404, `"type":"not_found_error"`},
		{"anthropic 429", "/v1/messages", `{"model":"echo","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, append([]string{FaultHeader, Fault429}, ant...), 429, `"type":"rate_limit_error"`},
		{"gemini 429", "/v1beta/models/echo:generateContent", `{"contents":[{"parts":[{"text":"x"}]}]}`, []string{"x-goog-api-key", "k", FaultHeader, Fault429}, 429, `"retryDelay":"1s"`},
		{"gemini 500", "/v1beta/models/echo:generateContent", `{"contents":[{"parts":[{"text":"x"}]}]}`, []string{"x-goog-api-key", "k", FaultHeader, Fault500}, 500, `"status":"INTERNAL"`},
		{"gemini bad method", "/v1beta/models/echo:countTokens", `{}`, []string{"x-goog-api-key", "k"}, 400, `"status":"INVALID_ARGUMENT"`},
		{"gemini stream without alt", "/v1beta/models/echo:streamGenerateContent", `{"contents":[{"parts":[{"text":"x"}]}]}`, []string{"x-goog-api-key", "k"}, 400, `alt=sse`},
		{"gemini empty", "/v1beta/models/echo:generateContent", `{"contents":[]}`, []string{"x-goog-api-key", "k"}, 400, `contents`},
		{"vertex wrong token", "/v1/projects/p/locations/l/publishers/google/models/echo:generateContent", `{}`, []string{"Authorization", "Bearer nope"}, 401, `"status":"UNAUTHENTICATED"`},
		{"azure no version", "/openai/deployments/echo/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, []string{"api-key", "k"}, 400, `api-version`},
		{"openai wrong key", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"x"}]}`, []string{"Authorization", "Bearer x"}, 401, `"type":"authentication_error"`},
		{"cached header", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"x"}]}`, []string{"Authorization", "Bearer k", CachedTokensHeader, "-1"}, 400, CachedTokensHeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, _, body := rawPost(t, h, tc.path, tc.body, tc.header...)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("got %d %s, want %d with %s", status, body, tc.status, tc.want)
			}
		})
	}
}

func TestAnthropicStreamEvents(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	body := `{"model":"echo","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"a b c"}]}`
	for _, broken := range []bool{false, true} {
		hdr := []string{"anthropic-version", "2023-06-01"}
		if broken {
			hdr = append(hdr, FaultHeader, FaultBreak)
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, h.srv.URL+"/v1/messages", strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r := sse.NewReader(resp.Body)
		var names []string
		var readErr error
		for {
			ev, err := r.Next()
			if err != nil {
				if err != io.EOF {
					readErr = err
				}
				break
			}
			var probe struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(ev.Data, &probe) != nil || probe.Type != ev.Name {
				t.Errorf("event %q has data type %q, want them equal", ev.Name, probe.Type)
			}
			names = append(names, ev.Name)
		}
		resp.Body.Close()
		got := strings.Join(names, " ")
		if !broken {
			want := "message_start content_block_start content_block_delta content_block_delta content_block_delta content_block_stop message_delta message_stop"
			if got != want || readErr != nil {
				t.Errorf("events %s (err %v), want %s", got, readErr, want)
			}
		} else if strings.Contains(got, "message_stop") || readErr == nil {
			t.Errorf("broken stream: events %s err %v, want no message_stop and a read error", got, readErr)
		}
	}
}
