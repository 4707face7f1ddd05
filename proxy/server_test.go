package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/proxy/openai"
)

func TestHealthz(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{noPolicy: true})
	resp := h.do(t, t.Context(), http.MethodGet, "/healthz", nil, nil)
	raw := readAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, raw)
	}
	var body map[string]string
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	if body["status"] != "ok" {
		t.Errorf("status field: got %q, want ok", body["status"])
	}
}

func TestReadyzFollowsPolicyLoad(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{noPolicy: true})
	readyz := func() (int, map[string]string) {
		t.Helper()
		resp := h.do(t, t.Context(), http.MethodGet, "/readyz", nil, nil)
		raw := readAll(t, resp)
		var body map[string]string
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("readyz body %s: %v", raw, err)
		}
		return resp.StatusCode, body
	}

	if code, body := readyz(); code != http.StatusServiceUnavailable || body["status"] != "not_ready" {
		t.Errorf("before load: got %d %v, want 503 not_ready", code, body)
	}
	if err := h.engine.Load(t.Context(), h.bundle); err != nil {
		t.Fatal(err)
	}
	code, body := readyz()
	if code != http.StatusOK || body["status"] != "ready" {
		t.Errorf("after load: got %d %v, want 200 ready", code, body)
	}
	if got, want := body["bundle_revision"], h.bundle.Revision; got != want || want == "" {
		t.Errorf("bundle_revision: got %q, want %q", got, want)
	}
}

func TestChatWithoutPolicyIsNotReady(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		t.Error("upstream called although no policy is loaded")
	})
	h := newHarness(t, harnessOpts{noPolicy: true, upstreams: []upstreamSpec{{name: "up", url: up.URL, models: []string{"gpt-4o-mini"}}}})

	resp := h.chat(t, chatBody("gpt-4o-mini", "hello", nil))
	wantAPIError(t, resp, http.StatusServiceUnavailable, "api_error", "policy_not_ready")

	ev := h.events.one(t)
	if ev.Status != http.StatusServiceUnavailable || ev.Allowed || ev.Error != "policy_not_ready" || ev.BundleRevision != "" {
		t.Errorf("event: got status=%d allowed=%v error=%q revision=%q, want 503 false policy_not_ready \"\"",
			ev.Status, ev.Allowed, ev.Error, ev.BundleRevision)
	}
	if n := up.calls.Load(); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if u := h.keyUsage(t); u.Tokens != 0 {
		t.Errorf("quota tokens: got %d, want 0", u.Tokens)
	}
}

func TestMetricsAfterRequest(t *testing.T) {
	t.Parallel()
	up := newSimUpstream(t)
	h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{{name: "sim", url: up.URL, models: []string{"echo"}}}})

	resp := h.chat(t, chatBody("echo", "count me", map[string]any{"max_tokens": 16}))
	if raw := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("chat status: got %d, want 200 (body %s)", resp.StatusCode, raw)
	}
	// The request metrics are recorded with the event, after the answer.
	h.events.one(t)

	resp = h.do(t, t.Context(), http.MethodGet, "/metrics", nil, nil)
	raw := string(readAll(t, resp))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics status: got %d, want 200", resp.StatusCode)
	}
	for _, want := range []string{
		`tollgate_http_requests_total{code="200"} 1`,
		`tollgate_policy_eval_duration_seconds_count 1`,
		`tollgate_policy_decisions_total{result="allow"} 1`,
		`tollgate_upstream_requests_total{outcome="ok",provider="sim"} 1`,
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("metrics: missing %q in\n%s", want, raw)
		}
	}
}

// TestSpecializedDecisions checks that a caller's repeated requests are
// decided by the policy specialized for it, and that /metrics says so.
func TestSpecializedDecisions(t *testing.T) {
	t.Parallel()
	up := newSimUpstream(t)
	h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{{name: "sim", url: up.URL, models: []string{"echo"}}}})
	sent := 0
	send := func(n int) {
		for range n {
			sent++
			resp := h.chat(t, chatBody("echo", fmt.Sprintf("request %d with a different prompt", sent), map[string]any{"max_tokens": 8 + sent}))
			if raw := readAll(t, resp); resp.StatusCode != http.StatusOK {
				t.Fatalf("chat status: got %d, want 200 (body %s)", resp.StatusCode, raw)
			}
		}
		// The request metrics are recorded with the events.
		h.events.wait(t, sent)
	}
	// The second request from the same caller asks for a specialization.
	send(2)
	h.engine.Current().SettleSpecializations()
	send(3)
	resp := h.do(t, t.Context(), http.MethodGet, "/metrics", nil, nil)
	raw := string(readAll(t, resp))
	for _, want := range []string{
		`tollgate_policy_specialized_decisions_total{path="specialized"} 3`,
		`tollgate_policy_specializations_total{result="built"} 1`,
		`tollgate_policy_specializations_total{result="rejected"} 0`,
		`tollgate_policy_specialization_cache_keys 1`,
		`tollgate_policy_decisions_total{result="allow"} 5`,
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("metrics: missing %q in\n%s", want, raw)
		}
	}
}

func TestModels(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{
		{name: "openai", url: "http://127.0.0.1:1", models: []string{"gpt-4o-mini", "gpt-4o"}},
		{name: "sim", url: "http://127.0.0.1:1", models: []string{"echo", "gpt-4o"}},
	}})

	t.Run("without key", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.gw.URL+"/v1/models", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		wantAPIError(t, resp, http.StatusUnauthorized, "authentication_error", "invalid_api_key")
	})
	t.Run("wrong key", func(t *testing.T) {
		resp := h.do(t, t.Context(), http.MethodGet, "/v1/models", nil, http.Header{"Authorization": {"Bearer tg_kunknown_secret"}})
		wantAPIError(t, resp, http.StatusUnauthorized, "authentication_error", "invalid_api_key")
	})
	t.Run("with key", func(t *testing.T) {
		resp := h.do(t, t.Context(), http.MethodGet, "/v1/models", nil, nil)
		raw := readAll(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, raw)
		}
		var got openai.ModelList
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		want := openai.ModelList{Object: "list", Data: []openai.Model{
			{ID: "echo", Object: "model", OwnedBy: "sim"},
			{ID: "gpt-4o", Object: "model", OwnedBy: "openai"},
			{ID: "gpt-4o-mini", Object: "model", OwnedBy: "openai"},
		}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("models (-want +got):\n%s", diff)
		}
	})
}

func TestUnknownEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	tests := []struct {
		name   string
		method string
		path   string
		status int
		typ    string
		code   string
	}{
		{"unknown path", http.MethodGet, "/v1/nope", http.StatusNotFound, "not_found_error", "unknown_endpoint"},
		{"unknown post", http.MethodPost, "/v2/chat/completions", http.StatusNotFound, "not_found_error", "unknown_endpoint"},
		{"wrong method", http.MethodGet, "/v1/chat/completions", http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.do(t, t.Context(), tc.method, tc.path, nil, nil)
			wantAPIError(t, resp, tc.status, tc.typ, tc.code)
		})
	}
}
