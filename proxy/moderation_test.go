package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/proxy/moderation"
)

// moderationService is a test moderation API: it flags inputs with the
// word "attack", answers 500 when broken, and records what it was sent.
type moderationService struct {
	*httptest.Server
	mu     sync.Mutex
	inputs []string
	broken bool
}

func newModerationService(t *testing.T) *moderationService {
	t.Helper()
	m := &moderationService{}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Input []string `json:"input"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		m.mu.Lock()
		m.inputs = append(m.inputs, req.Input...)
		broken := m.broken
		m.mu.Unlock()
		if broken {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		var results []map[string]any
		for _, in := range req.Input {
			flagged := strings.Contains(strings.ToLower(in), "attack")
			results = append(results, map[string]any{"flagged": flagged,
				"categories": map[string]bool{"violence": flagged}, "category_scores": map[string]float64{"violence": map[bool]float64{true: 0.9, false: 0.01}[flagged]}})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "modr-1", "model": "m", "results": results})
	}))
	t.Cleanup(m.Close)
	return m
}

func TestModeration(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"closed", "open"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			svc := newModerationService(t)
			client, err := moderation.New(moderation.Config{Enabled: true, BaseURL: svc.URL + "/v1", FailMode: mode}, svc.Client(), nil)
			if err != nil {
				t.Fatal(err)
			}
			up := newSimUpstream(t)
			h := newHarness(t, harnessOpts{moderation: client, upstreams: []upstreamSpec{{name: "sim", url: up.URL, models: []string{"echo"}}}})

			resp := h.chat(t, chatBody("echo", "plan the attack on jane.doe@example.com", nil))
			e := wantAPIError(t, resp, http.StatusBadRequest, "invalid_request_error", "content_flagged")
			if !strings.Contains(e.Message, "violence") {
				t.Errorf("message %q, want the flagged category", e.Message)
			}
			svc.mu.Lock()
			sent := strings.Join(svc.inputs, "\n")
			svc.mu.Unlock()
			if strings.Contains(sent, "jane.doe") || !strings.Contains(sent, "[REDACTED:EMAIL]") {
				t.Errorf("the moderation service got %q; want the address redacted", sent)
			}
			if resp := h.chat(t, chatBody("echo", "a calm question", nil)); resp.StatusCode != http.StatusOK {
				t.Errorf("clean request: status %d, want 200", resp.StatusCode)
			}

			svc.mu.Lock()
			svc.broken = true
			svc.mu.Unlock()
			resp = h.chat(t, chatBody("echo", "a calm question", nil))
			if mode == "closed" {
				wantAPIError(t, resp, http.StatusServiceUnavailable, "api_error", "moderation_unavailable")
			} else if resp.StatusCode != http.StatusOK {
				t.Errorf("fail open with the service down: status %d, want 200 (the default policy does not require a verdict)", resp.StatusCode)
			}
		})
	}
}
