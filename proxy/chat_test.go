package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/sse"
)

func TestChatJSONHappyPath(t *testing.T) {
	t.Parallel()
	const (
		model      = "gpt-4o-mini"
		prompt     = 1200 // what the upstream says, not the gateway's estimate
		completion = 800
		question   = "What is the capital of France?"
	)
	answer := completionJSON(model, "Paris is the capital of France.", prompt, completion)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	})
	h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{{name: "openai", url: up.URL, models: []string{model}}}})

	resp := h.do(t, t.Context(), http.MethodPost, "/v1/chat/completions",
		chatBody(model, question, map[string]any{"max_tokens": 100, "user": "u-42"}),
		http.Header{"X-Request-Id": {"trace-abc-123"}})
	raw := readAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, raw)
	}
	if !bytes.Equal(raw, answer) {
		t.Errorf("body: got %s, want the upstream's %s", raw, answer)
	}
	if got := resp.Header.Get("X-Request-Id"); got != "trace-abc-123" {
		t.Errorf("X-Request-Id: got %q, want trace-abc-123", got)
	}

	ev := h.events.one(t)
	// The reservation was the estimate: prompt estimate + max_tokens.
	wantHeaders := map[string]string{
		"X-Ratelimit-Limit-Tokens":     "200000",
		"X-Ratelimit-Remaining-Tokens": strconv.FormatInt(200000-ev.PromptTokensEstimated-100, 10),
		"X-Ratelimit-Reset-Tokens":     "30s",
	}
	for k, want := range wantHeaders {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}

	// The upstream got the request with the client's fields.
	fwd := up.lastRequest(t)
	if fwd["model"] != model || fwd["user"] != "u-42" || fwd["max_tokens"] != float64(100) {
		t.Errorf("forwarded request: got %v, want model, user and max_tokens kept", fwd)
	}

	// The reservation is reconciled to the upstream's usage.
	if got, want := h.keyUsage(t).Tokens, int64(prompt+completion); got != want {
		t.Errorf("quota tokens: got %d, want %d (the upstream's usage)", got, want)
	}
	wantCost, ok := h.engine.Current().Prices.CostMicros(model, testNow, engine.Usage{PromptTokens: prompt, CompletionTokens: completion})
	if !ok || wantCost <= 0 {
		t.Fatalf("catalog price of %s: got %d %v, want a positive price", model, wantCost, ok)
	}
	want := analytics.Event{
		RequestID: "trace-abc-123",
		Time:      testNow,
		Subject:   "alice", KeyID: h.keyID, Team: "ml", Org: "acme", Kind: "user",
		ModelRequested: model, ModelRouted: model, Provider: "openai",
		Status: http.StatusOK, Allowed: true,
		BundleRevision:        h.bundle.Revision,
		PromptTokensEstimated: int64(h.counter.CountChat(model, []tokens.Message{{Role: "user", Content: question}})),
		PromptTokens:          prompt,
		CompletionTokens:      completion,
		CostMicros:            wantCost,
		Attempts:              1,
		AttemptLog:            []analytics.Attempt{{Target: "openai/" + model, Outcome: "ok"}},
		Path:                  "/v1/chat/completions",
		ClientIP:              "127.0.0.1",
	}
	if diff := cmp.Diff(want, ev, cmpopts.IgnoreFields(analytics.Attempt{}, "LatencyMS")); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
}

func TestChatRequestID(t *testing.T) {
	t.Parallel()
	up := newSimUpstream(t)
	h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{{name: "sim", url: up.URL, models: []string{"echo"}}}})
	generated := regexp.MustCompile(`^req_[0-9a-f]{24}$`)

	tests := []struct {
		name  string
		given string
		keep  bool
	}{
		{"caller id kept", "client-7f3a:span/01", true},
		{"none given", "", false},
		{"space replaced", "two words", false},
		{"too long replaced", strings.Repeat("a", 129), false},
		{"longest kept", strings.Repeat("b", 128), true},
	}
	for i, tc := range tests {
		hdr := http.Header{}
		if tc.given != "" {
			hdr.Set("X-Request-Id", tc.given)
		}
		resp := h.do(t, t.Context(), http.MethodPost, "/v1/chat/completions", chatBody("echo", "hi", map[string]any{"max_tokens": 8}), hdr)
		readAll(t, resp)
		ev := h.events.wait(t, i+1)[i]
		got := resp.Header.Get("X-Request-Id")
		switch {
		case tc.keep && got != tc.given:
			t.Errorf("%s: X-Request-Id got %q, want %q", tc.name, got, tc.given)
		case !tc.keep && !generated.MatchString(got):
			t.Errorf("%s: X-Request-Id got %q, want a generated req_<24 hex>", tc.name, got)
		}
		if ev.RequestID != got {
			t.Errorf("%s: event request_id got %q, want the header's %q", tc.name, ev.RequestID, got)
		}
	}
}

func TestPolicyEvaluationFailsClosed(t *testing.T) {
	t.Parallel()
	// Each policy answers well on the engine's smoke input (model "smoke"),
	// so it loads, and badly on a real request.
	tests := []struct {
		name   string
		module string
	}{
		{"unknown field", `package tollgate.main

decision := {"allow": true} if {
	input.model.requested == "smoke"
} else := {"allow": true, "surprise": 1}
`},
		{"invalid deny status", `package tollgate.main

decision := {"allow": true} if {
	input.model.requested == "smoke"
} else := {"allow": false, "deny": [{"code": "x", "status": 200}]}
`},
		{"invalid mask action", `package tollgate.main

decision := {"allow": true} if {
	input.model.requested == "smoke"
} else := {"allow": true, "mask": {"rules": [{"types": ["EMAIL"], "action": "shred"}], "response": false}}
`},
		{"undefined decision", `package tollgate.main

decision := {"allow": true} if input.model.requested == "smoke"
`},
		{"runtime error", `package tollgate.main

decision := {"allow": true} if {
	input.model.requested == "smoke"
} else := {"allow": to_number("not a number") > 0}
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
			h := newHarness(t, harnessOpts{
				policy:    regoBundle(tc.module),
				upstreams: []upstreamSpec{{name: "up", url: up.URL, models: []string{"gpt-4o-mini"}}},
			})
			resp := h.chat(t, chatBody("gpt-4o-mini", "hello", nil))
			e := wantAPIError(t, resp, http.StatusInternalServerError, "api_error", "policy_error")
			if strings.Contains(e.Message, "surprise") || strings.Contains(e.Message, "rego") {
				t.Errorf("error message leaks policy internals: %q", e.Message)
			}
			ev := h.events.one(t)
			if ev.Allowed || ev.Status != http.StatusInternalServerError || ev.Error != "policy_error" || ev.BundleRevision != h.bundle.Revision {
				t.Errorf("event: got allowed=%v status=%d error=%q revision=%q, want false 500 policy_error %q",
					ev.Allowed, ev.Status, ev.Error, ev.BundleRevision, h.bundle.Revision)
			}
			if n := up.calls.Load(); n != 0 {
				t.Errorf("upstream calls: got %d, want 0", n)
			}
		})
	}
}

func TestPolicyDeny(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	h := newHarness(t, harnessOpts{
		policy: regoBundle(`package tollgate.main

decision := {
	"allow": false,
	"deny": [{"code": "legal_hold", "status": 451, "message": "team ml is under legal hold; ask legal to lift it"}],
}
`),
		upstreams: []upstreamSpec{{name: "up", url: up.URL, models: []string{"gpt-4o-mini"}}},
	})
	resp := h.chat(t, chatBody("gpt-4o-mini", "hello", nil))
	e := wantAPIError(t, resp, http.StatusUnavailableForLegalReasons, "invalid_request_error", "legal_hold")
	if want := "team ml is under legal hold; ask legal to lift it"; e.Message != want {
		t.Errorf("message: got %q, want %q", e.Message, want)
	}
	ev := h.events.one(t)
	if ev.Allowed || ev.Status != 451 || ev.DenyCode != "legal_hold" || ev.Error != "legal_hold" {
		t.Errorf("event: got allowed=%v status=%d deny_code=%q error=%q, want false 451 legal_hold legal_hold",
			ev.Allowed, ev.Status, ev.DenyCode, ev.Error)
	}
	if n := up.calls.Load(); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
}

func TestDefaultLibraryDeniesModel(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	// o1 is in none of the developer role's model groups.
	h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{{name: "up", url: up.URL, models: []string{"o1"}}}})
	resp := h.chat(t, chatBody("o1", "hello", nil))
	wantAPIError(t, resp, http.StatusForbidden, "permission_error", "model_not_allowed")
	if ev := h.events.one(t); ev.Allowed || ev.DenyCode != "model_not_allowed" || ev.Status != 403 {
		t.Errorf("event: got allowed=%v deny_code=%q status=%d, want false model_not_allowed 403", ev.Allowed, ev.DenyCode, ev.Status)
	}
	if n := up.calls.Load(); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
}

func TestPIIBlock(t *testing.T) {
	t.Parallel()
	const email = "jane.doe@example.com"
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	h := newHarness(t, harnessOpts{
		policy: libraryWith(t, map[string]string{
			"data/pii/data.json": `{"default": {"EMAIL": "block", "PHONE": "redact"}, "teams": {}}`,
		}),
		upstreams: []upstreamSpec{{name: "up", url: up.URL, models: []string{"gpt-4o-mini"}}},
	})
	resp := h.chat(t, chatBody("gpt-4o-mini", "please write to "+email+" about the invoice", nil))
	e := wantAPIError(t, resp, http.StatusBadRequest, "invalid_request_error", "pii_blocked")
	if strings.Contains(e.Message, email) || !strings.Contains(e.Message, "EMAIL") {
		t.Errorf("message: got %q, want it to name EMAIL and not hold the value", e.Message)
	}
	ev := h.events.one(t)
	if ev.Allowed || ev.Status != 400 || ev.DenyCode != "pii_blocked" || ev.PIICount != 1 || !cmp.Equal(ev.PIITypes, []string{"EMAIL"}) {
		t.Errorf("event: got allowed=%v status=%d deny_code=%q pii=%v/%d, want false 400 pii_blocked [EMAIL]/1",
			ev.Allowed, ev.Status, ev.DenyCode, ev.PIITypes, ev.PIICount)
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(email)) || bytes.Contains(raw, []byte("jane.doe")) {
		t.Errorf("event holds the email: %s", raw)
	}
	if n := up.calls.Load(); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
}

func TestRedactionWithEcho(t *testing.T) {
	t.Parallel()
	up := newSimUpstream(t)
	h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{{name: "sim", url: up.URL, models: []string{"echo"}}}})

	tests := []struct {
		name    string
		content any
		want    string
		count   int
	}{
		{
			name:    "string content",
			content: "mail jane.doe@example.com or bob@example.org today",
			want:    "mail [REDACTED:EMAIL] or [REDACTED:EMAIL] today",
			count:   2,
		},
		{
			name: "content parts",
			content: []map[string]any{
				{"type": "text", "text": "first: jane.doe@example.com"},
				{"type": "image_url", "image_url": map[string]string{"url": "https://example.com/cat.png"}},
				{"type": "text", "text": "second: bob@example.org!"},
			},
			want:  "first: [REDACTED:EMAIL]\nsecond: [REDACTED:EMAIL]!",
			count: 2,
		},
	}
	for i, tc := range tests {
		body := map[string]any{
			"model":      "echo",
			"max_tokens": 64,
			"messages":   []map[string]any{{"role": "user", "content": tc.content}},
		}
		resp := h.chat(t, body)
		raw := readAll(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status got %d, want 200 (body %s)", tc.name, resp.StatusCode, raw)
		}
		var out openai.ChatResponse
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Choices) != 1 || out.Choices[0].Message.Content == nil {
			t.Fatalf("%s: answer %s has no content", tc.name, raw)
		}
		if got := *out.Choices[0].Message.Content; got != tc.want {
			t.Errorf("%s: echoed content got %q, want %q", tc.name, got, tc.want)
		}
		ev := h.events.wait(t, i+1)[i]
		if !ev.Allowed || ev.PIICount != tc.count || !cmp.Equal(ev.PIITypes, []string{"EMAIL"}) {
			t.Errorf("%s: event got allowed=%v pii=%v/%d, want true [EMAIL]/%d", tc.name, ev.Allowed, ev.PIITypes, ev.PIICount, tc.count)
		}
	}
}

func TestQuotaExceeded(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	h := newHarness(t, harnessOpts{
		policy: libraryWith(t, map[string]string{
			"data/quota/data.json": `{"default_key_tokens_per_minute": 50, "keys": {}}`,
		}),
		upstreams: []upstreamSpec{{name: "up", url: up.URL, models: []string{"gpt-4o-mini"}}},
	})
	resp := h.chat(t, chatBody("gpt-4o-mini", "hello", map[string]any{"max_tokens": 100}))
	hdr := resp.Header
	e := wantAPIError(t, resp, http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded")
	if !strings.Contains(e.Message, "key:"+h.keyID) {
		t.Errorf("message: got %q, want it to name the limit's scope", e.Message)
	}
	for k, want := range map[string]string{
		"Retry-After":                  "30", // the fixed clock is at hh:mm:30
		"X-Ratelimit-Limit-Tokens":     "50",
		"X-Ratelimit-Remaining-Tokens": "50",
		"X-Ratelimit-Reset-Tokens":     "30s",
	} {
		if got := hdr.Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	ev := h.events.one(t)
	if ev.Allowed || ev.Status != 429 || ev.DenyCode != "rate_limited" || ev.Error != "rate_limit_exceeded" {
		t.Errorf("event: got allowed=%v status=%d deny_code=%q error=%q, want false 429 rate_limited rate_limit_exceeded",
			ev.Allowed, ev.Status, ev.DenyCode, ev.Error)
	}
	if n := up.calls.Load(); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if u := h.keyUsage(t); u.Tokens != 0 {
		t.Errorf("quota tokens: got %d, want 0 (nothing charged)", u.Tokens)
	}
}

// onlyReader hides the length of a reader, so the client sends it chunked.
type onlyReader struct{ io.Reader }

func TestRequestTooLarge(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	const limit = 4096
	h := newHarness(t, harnessOpts{
		maxBody:   limit,
		upstreams: []upstreamSpec{{name: "up", url: up.URL, models: []string{"gpt-4o-mini"}}},
	})
	body, err := json.Marshal(chatBody("gpt-4o-mini", strings.Repeat("x", 3*limit), nil))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		chunked bool
	}{
		{"content-length", false},
		{"chunked", true},
	}
	for i, tc := range tests {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.gw.URL+"/v1/chat/completions", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.chunked {
			req.Body = io.NopCloser(onlyReader{bytes.NewReader(body)})
			req.ContentLength = -1
		}
		req.Header.Set("Authorization", "Bearer "+h.key)
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		wantAPIError(t, resp, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large")
		if ev := h.events.wait(t, i+1)[i]; ev.Status != 413 || ev.Error != "request_too_large" {
			t.Errorf("%s: event got status=%d error=%q, want 413 request_too_large", tc.name, ev.Status, ev.Error)
		}
	}
	if n := up.calls.Load(); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
}

func TestEventTimings(t *testing.T) {
	t.Parallel()
	const model = "gpt-4o-mini"
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream bool `json:"stream"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("upstream request: %v", err)
		}
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(completionJSON(model, "Hi there", 10, 2))
			return
		}
		startStream(w)
		send(t, w, contentChunk(model, "Hi"))
		send(t, w, contentChunk(model, " there"))
		send(t, w, usageChunk(model, 10, 2))
		_ = sse.WriteDone(w)
	})
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{
				now:       steppingClock(time.Millisecond),
				upstreams: []upstreamSpec{{name: "openai", url: up.URL, models: []string{model}}},
			})
			resp := h.chat(t, chatBody(model, "hello", map[string]any{"stream": stream}))
			if raw := readAll(t, resp); resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, raw)
			}
			ev := h.events.one(t)
			if !ev.Time.Equal(testNow) || ev.LatencyMS <= 0 {
				t.Errorf("event: got time=%s latency_ms=%v, want %s and > 0", ev.Time, ev.LatencyMS, testNow)
			}
			// analytics.Event: TTFT is "0 when not streaming".
			if stream && (ev.TTFTMS <= 0 || ev.TTFTMS > ev.LatencyMS) {
				t.Errorf("ttft_ms: got %v, want in (0, latency_ms %v]", ev.TTFTMS, ev.LatencyMS)
			}
			if !stream && ev.TTFTMS != 0 {
				t.Errorf("ttft_ms: got %v, want 0 for a non-streaming request", ev.TTFTMS)
			}
		})
	}
}
