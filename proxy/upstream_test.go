package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tollgate/tollgate/proxy/openai"
)

// writeUpstreamError answers like OpenAI does on an error.
func writeUpstreamError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(openai.ErrorResponse{Error: openai.ErrorDetail{Message: msg, Type: typ, Code: code}})
}

func TestUpstreamFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc // nil: a closed server (connection refused)
		timeout string
		status  int
		typ     string
		code    string
		// header is a response header the client must get, with its value.
		header, value string
		eventError    string
	}{
		{
			name: "429 with Retry-After",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				writeUpstreamError(w, http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded", "slow down")
			},
			status: 429, typ: "rate_limit_error", code: "rate_limit_exceeded",
			header: "Retry-After", value: "7", eventError: "upstream_429",
		},
		{
			name: "500",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeUpstreamError(w, http.StatusInternalServerError, "api_error", "server_error", "the model crashed")
			},
			status: 500, typ: "api_error", code: "server_error", eventError: "upstream_500",
		},
		{
			name: "503 without error body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "overloaded", http.StatusServiceUnavailable)
			},
			status: 503, typ: "api_error", code: "upstream_error", eventError: "upstream_503",
		},
		{
			name:   "connection refused",
			status: 502, typ: "api_error", code: "upstream_unavailable", eventError: "upstream_unavailable",
		},
		{
			name: "hang",
			handler: func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
			},
			timeout: "100ms",
			status:  504, typ: "api_error", code: "upstream_timeout", eventError: "upstream_timeout",
		},
		{
			// provider.Config.Timeout bounds the wait for the first byte of
			// a stream, not only for the headers.
			name: "headers then stall",
			handler: func(w http.ResponseWriter, r *http.Request) {
				startStream(w)
				_ = http.NewResponseController(w).Flush()
				<-r.Context().Done()
			},
			timeout: "100ms",
			status:  504, typ: "api_error", code: "upstream_timeout", eventError: "upstream_timeout",
		},
	}
	for _, tc := range tests {
		for _, stream := range []bool{false, true} {
			name := tc.name + "/json"
			if stream {
				name = tc.name + "/stream"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var url string
				if tc.handler != nil {
					url = newUpstream(t, tc.handler).URL
				} else {
					closed := httptest.NewServer(http.NotFoundHandler())
					url = closed.URL
					closed.Close()
				}
				h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{{name: "openai", url: url, models: []string{"gpt-4o-mini"}, timeout: tc.timeout}}})

				// The client's own deadline keeps a gateway that never
				// answers from hanging the test.
				ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
				defer cancel()
				resp := h.do(t, ctx, http.MethodPost, "/v1/chat/completions",
					chatBody("gpt-4o-mini", "hello", map[string]any{"stream": stream, "max_tokens": 50}), nil)
				hdr := resp.Header
				wantAPIError(t, resp, tc.status, tc.typ, tc.code)
				if tc.header != "" {
					if got := hdr.Get(tc.header); got != tc.value {
						t.Errorf("%s: got %q, want %q", tc.header, got, tc.value)
					}
				}
				ev := h.events.one(t)
				if ev.Status != tc.status || ev.Error != tc.eventError || !ev.Allowed || ev.Stream != stream || ev.PromptTokens != 0 || ev.CostMicros != 0 {
					t.Errorf("event: got status=%d error=%q allowed=%v stream=%v prompt=%d cost=%d, want %d %q true %v 0 0",
						ev.Status, ev.Error, ev.Allowed, ev.Stream, ev.PromptTokens, ev.CostMicros, tc.status, tc.eventError, stream)
				}
				// Nothing was delivered: the reservation is refunded.
				if u := h.keyUsage(t); u.Tokens != 0 {
					t.Errorf("quota tokens: got %d, want 0 (refunded)", u.Tokens)
				}
			})
		}
	}
}
