package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/quota"
	"github.com/tollgate/tollgate/proxy/quota/redistest"
)

// TestRedisDownAndBack stops the gateway's Redis and restarts it on the same
// port: fail_mode closed answers 503 quota_unavailable within the call
// timeout, fail_mode open keeps serving on local limits, and both use Redis
// again once it is back, without a gateway restart.
func TestRedisDownAndBack(t *testing.T) {
	const callTimeout = 200 * time.Millisecond
	for _, mode := range []string{quota.FailClosed, quota.FailOpen} {
		t.Run(mode, func(t *testing.T) {
			rds := redistest.Start(t)
			simSrv, simURL := startSim(t)
			k := newTestKey(t, "ml", "developer")
			cfg, err := Parse([]byte("{}"), "test")
			if err != nil {
				t.Fatal(err)
			}
			cfg.Server.Listen = "127.0.0.1:0"
			cfg.Auth.APIKeys = []auth.KeyConfig{keyConfig(k)}
			cfg.Providers = []provider.Config{{Name: "sim", Kind: "openai", BaseURL: simURL, Models: []string{"echo"}, Timeout: "30s"}}
			cfg.Quota = quota.Config{Backend: quota.BackendRedis, FailMode: mode, CallTimeout: callTimeout.String()}
			cfg.Quota.Redis.Addr = rds.Addr
			cfg.Analytics.File = t.TempDir() + "/events.jsonl"
			gw := startGateway(t, cfg, simSrv)
			client := &http.Client{Timeout: 30 * time.Second}
			t.Cleanup(client.CloseIdleConnections)

			chat := func() (int, string, time.Duration) {
				t.Helper()
				req, err := http.NewRequest(http.MethodPost, gw.url+"/v1/chat/completions",
					strings.NewReader(`{"model":"echo","messages":[{"role":"user","content":"ping"}]}`))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+k.key)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				raw, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				var body struct {
					Error struct {
						Code    string `json:"code"`
						Message string `json:"message"`
					} `json:"error"`
				}
				_ = json.Unmarshal(raw, &body)
				return resp.StatusCode, body.Error.Code, time.Since(start)
			}

			if status, code, _ := chat(); status != http.StatusOK {
				t.Fatalf("with Redis up: status %d %s, want 200", status, code)
			}
			rds.Stop()
			status, code, took := chat()
			switch mode {
			case quota.FailClosed:
				if status != http.StatusServiceUnavailable || code != "quota_unavailable" {
					t.Errorf("with Redis down, fail closed: got %d %q, want 503 quota_unavailable", status, code)
				}
			case quota.FailOpen:
				if status != http.StatusOK {
					t.Errorf("with Redis down, fail open: got %d %q, want 200", status, code)
				}
			}
			// One bounded Redis call, plus the request itself.
			if bound := callTimeout + 2*time.Second; took > bound {
				t.Errorf("request with Redis down took %s, want at most %s", took, bound)
			}

			rds.Restart()
			restarted := time.Now()
			// Closed mode asks Redis on every request; open mode retries it
			// a second after the failure. Poll until a request is counted
			// in the restarted (empty) Redis.
			probe := quota.NewRedis(newQuotaClient(t, rds.Addr), quota.RedisConfig{CallTimeout: 5 * time.Second})
			keyMinute := quota.Limit{Scope: "key:" + k.id, Window: quota.Minute, Tokens: 1}
			waitFor(t, "a request counted in the restarted Redis", func() bool {
				if status, code, _ := chat(); status != http.StatusOK {
					t.Fatalf("after restart: status %d %s, want 200", status, code)
				}
				// The minute may turn between the request and the read.
				for _, at := range []time.Time{time.Now(), time.Now().Add(-time.Minute)} {
					if u, err := probe.Usage(t.Context(), at, keyMinute); err == nil && u.Tokens > 0 {
						return true
					}
				}
				return false
			})
			t.Logf("fail mode %s: request with Redis down answered %d in %s; Redis used again %s after its restart",
				mode, status, took.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
		})
	}
}

// newQuotaClient returns a Redis client for reading counters, closed at
// cleanup.
func newQuotaClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}
