package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/quota"
	"github.com/tollgate/tollgate/proxy/quota/redistest"
)

// adminServer is a gateway with the default library and three keys: an
// admin, an auditor and a developer.
func adminServer(t *testing.T, loadPolicy bool) (url string, keys map[string]string) {
	t.Helper()
	url, keys, _ = adminServerWith(t, loadPolicy, nil)
	return url, keys
}

// adminServerWith is adminServer with a key store, returning its limiter.
func adminServerWith(t *testing.T, loadPolicy bool, store KeyAdmin) (url string, keys map[string]string, limiter *quota.Memory) {
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
	limiter = quota.NewMemory(nil)
	srv, err := New(Config{}, Deps{
		Engine: eng, Builder: engine.NewBuilder(counter, pii.NewScanner()), Counter: counter,
		Keys: ks, Limiter: limiter, Events: &eventSink{}, Registry: prometheus.NewRegistry(),
		Bundles:    func() bundles.Status { return bundles.Status{Ready: loadPolicy, Revision: "rev-test"} },
		ConfigKeys: cfg.APIKeys, KeyStore: store,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL, keys, limiter
}

func adminGet(t *testing.T, url, key string) (int, map[string]any) {
	t.Helper()
	return adminDo(t, http.MethodGet, url, key)
}

func adminDo(t *testing.T, method, url, key string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
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

func TestAdminQuota(t *testing.T) {
	t.Parallel()
	url, keys, limiter := adminServerWith(t, true, nil)
	now := time.Now()
	if _, err := limiter.Reserve(t.Context(), now, []quota.Limit{{Scope: "team:ml", Window: quota.Window("day"), Tokens: 1000, Requests: 10, USDMicros: 1e6}}, quota.Amount{Tokens: 120, Requests: 1, USDMicros: 2500}); err != nil {
		t.Fatal(err)
	}
	status, body := adminGet(t, url+"/admin/v1/quota?scope=team:ml&window=day", keys["auditor"])
	used, _ := body["used"].(map[string]any)
	if status != 200 || used["tokens"] != 120.0 || used["requests"] != 1.0 || used["usd_micros"] != 2500.0 {
		t.Fatalf("quota: %d %v; want 120 tokens, 1 request, 2500 micro-dollars", status, body)
	}
	if status, _ := adminDo(t, http.MethodDelete, url+"/admin/v1/quota?scope=team:ml&window=day", keys["auditor"]); status != 403 {
		t.Errorf("auditor resetting: status %d, want 403 (quota:write)", status)
	}
	if status, body := adminDo(t, http.MethodDelete, url+"/admin/v1/quota?scope=team:ml&window=day", keys["admin"]); status != 200 || body["reset"] != true {
		t.Fatalf("admin resetting: %d %v", status, body)
	}
	if _, body := adminGet(t, url+"/admin/v1/quota?scope=team:ml&window=day", keys["admin"]); body["used"].(map[string]any)["tokens"] != 0.0 {
		t.Errorf("after the reset: %v, want 0 tokens", body)
	}
	if status, _ := adminGet(t, url+"/admin/v1/quota?scope=team:ml&window=year", keys["admin"]); status != 400 {
		t.Errorf("window year: status %d, want 400", status)
	}
	if status, _ := adminGet(t, url+"/admin/v1/quota?scope=team:ml&window=day", keys["developer"]); status != 403 {
		t.Errorf("developer: status %d, want 403", status)
	}
}

func TestAdminKeys(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	store := auth.NewKeyStore(rdb, auth.StoreOptions{Prefix: "admintest"})
	stored, rec, err := store.Create(t.Context(), auth.KeyRecord{Subject: "svc:batch", Kind: "service", Team: "ml"})
	if err != nil || stored == "" {
		t.Fatal(err)
	}
	url, keys, _ := adminServerWith(t, true, store)
	if status, _ := adminGet(t, url+"/admin/v1/keys", keys["auditor"]); status != 403 {
		t.Fatalf("auditor listing keys: status %d, want 403 (no keys:read)", status)
	}
	status, body := adminGet(t, url+"/admin/v1/keys", keys["admin"])
	list, _ := body["keys"].([]any)
	if status != 200 || len(list) != 4 {
		t.Fatalf("keys: %d %v; want the 3 config keys and the stored one", status, body)
	}
	raw, _ := json.Marshal(body)
	if strings.Contains(string(raw), "sha256") || strings.Contains(string(raw), stored) || strings.Contains(string(raw), "hash") {
		t.Fatalf("the key list shows hashes or secrets: %s", raw)
	}
	if status, _ := adminDo(t, http.MethodPost, url+"/admin/v1/keys/"+rec.ID+"/revoke", keys["developer"]); status != 403 {
		t.Fatalf("developer revoking: status %d, want 403 (keys:write)", status)
	}
	status, body = adminDo(t, http.MethodPost, url+"/admin/v1/keys/"+rec.ID+"/revoke", keys["admin"])
	if status != 200 || body["status"] != "revoked" {
		t.Fatalf("admin revoking: %d %v; want 200 revoked", status, body)
	}
	if status, _ := adminDo(t, http.MethodPost, url+"/admin/v1/keys/knothere0/revoke", keys["admin"]); status != 404 {
		t.Fatalf("revoking an unknown key: status %d, want 404", status)
	}
	if r, err := store.Get(t.Context(), rec.ID); err != nil || r.RevokedAt.IsZero() {
		t.Fatalf("stored key after revoke: %+v, %v; want revoked", r, err)
	}
}
