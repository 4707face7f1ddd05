package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/quota"
)

// adminServer is a gateway with the default library and three keys: an
// admin, an auditor and a developer.
func adminServer(t *testing.T, loadPolicy bool) (url string, keys map[string]string) {
	t.Helper()
	keys = map[string]string{}
	var cfg auth.Config
	for _, role := range []string{"admin", "auditor", "developer"} {
		key, id, hash, err := auth.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[role] = key
		cfg.APIKeys = append(cfg.APIKeys, auth.KeyConfig{ID: id, Hash: hash, Subject: role + "@acme", Kind: "user", Team: "ops", Roles: []string{role}})
	}
	ks, err := auth.NewKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if loadPolicy {
		b, err := bundles.LoadFS(policies.FS, "test")
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Load(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	counter, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{}, Deps{
		Engine: eng, Builder: engine.NewBuilder(counter, pii.NewScanner()), Counter: counter,
		Keys: ks, Limiter: quota.NewMemory(nil), Events: &eventSink{}, Registry: prometheus.NewRegistry(),
		Bundles: func() bundles.Status { return bundles.Status{Ready: loadPolicy, Revision: "rev-test"} },
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL, keys
}

func adminGet(t *testing.T, url, key string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: body is not JSON: %v", url, err)
	}
	return resp.StatusCode, body
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	url, keys := adminServer(t, true)
	tests := []struct {
		name, path, key string
		status          int
		code            string
	}{
		{"admin reads bundles", "/admin/v1/bundles", keys["admin"], 200, ""},
		{"auditor reads bundles", "/admin/v1/bundles", keys["auditor"], 200, ""},
		{"developer may not", "/admin/v1/bundles", keys["developer"], 403, "admin_action_denied"},
		{"no key", "/admin/v1/bundles", "", 401, "invalid_api_key"},
		{"forged key", "/admin/v1/whoami", "tg_kforged00_notarealsecretnotarealsecret00", 401, "invalid_api_key"},
		{"anyone may ask who they are", "/admin/v1/whoami", keys["developer"], 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, body := adminGet(t, url+tt.path, tt.key)
			if status != tt.status {
				t.Fatalf("status %d, want %d (body %v)", status, tt.status, body)
			}
			if tt.code != "" {
				e, _ := body["error"].(map[string]any)
				if e["code"] != tt.code || e["message"] == "" {
					t.Fatalf("error %v, want code %s with a message", body, tt.code)
				}
			}
		})
	}

	_, who := adminGet(t, url+"/admin/v1/whoami", keys["auditor"])
	var actions []string
	for _, a := range who["actions"].([]any) {
		actions = append(actions, a.(string))
	}
	if who["subject"] != "auditor@acme" || !slices.Contains(actions, "bundles:read") || slices.Contains(actions, "keys:write") {
		t.Errorf("whoami for the auditor = %v; want read-only actions", who)
	}
	_, b := adminGet(t, url+"/admin/v1/bundles", keys["admin"])
	if b["revision"] == "" || b["status"] == nil {
		t.Errorf("bundles = %v; want the revision and the loader status", b)
	}
}

func TestAdminWithoutPolicy(t *testing.T) {
	t.Parallel()
	url, keys := adminServer(t, false)
	if status, body := adminGet(t, url+"/admin/v1/bundles", keys["admin"]); status != http.StatusServiceUnavailable {
		t.Fatalf("status %d (%v), want 503 before any bundle is loaded", status, body)
	}
}
