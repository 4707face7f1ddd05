package gateway_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/gateway"
)

// validYAML is a small complete configuration.
const validYAML = `
server:
  listen: 127.0.0.1:9090
providers:
  - name: sim
    kind: openai
    base_url: http://127.0.0.1:8081/v1
    models: [echo]
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadEmbeddedDefault(t *testing.T) {
	t.Parallel()
	cfg, err := gateway.Load("", nil)
	if err != nil {
		t.Fatalf("Load(\"\"): %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate() of the default: got %v, want nil", err)
	}
	if got, want := cfg.Server.Listen, "127.0.0.1:8080"; got != want {
		t.Errorf("Server.Listen: got %q, want %q", got, want)
	}
	if got, want := cfg.Quota.Backend, "memory"; got != want {
		t.Errorf("Quota.Backend: got %q, want %q", got, want)
	}
	if len(cfg.Providers) != 1 || cfg.Providers[0].Name != "sim" {
		t.Errorf("Providers: got %+v, want the single simulator upstream", cfg.Providers)
	}
	if len(cfg.Auth.APIKeys) != 1 {
		t.Fatalf("Auth.APIKeys: got %d keys, want 1 demo key", len(cfg.Auth.APIKeys))
	}
	if got, want := cfg.Auth.APIKeys[0].Hash, auth.HashKey(gateway.DemoKey); got != want {
		t.Errorf("demo key hash: got %s, want auth.HashKey(DemoKey) = %s", got, want)
	}
}

// TestDemoKeyAuthenticates checks that the key printed in README.md and in
// default.yaml is the one the embedded configuration accepts.
func TestDemoKeyAuthenticates(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	keyRE := regexp.MustCompile(`tg_[a-z0-9]+_[a-z0-9]+`)
	for name, doc := range map[string][]byte{"README.md": readme, "default.yaml": gateway.DefaultConfigYAML} {
		found := keyRE.FindAll(doc, -1)
		if len(found) == 0 {
			t.Errorf("%s: no demo key found, want %s", name, gateway.DemoKey)
		}
		for _, k := range found {
			if string(k) != gateway.DemoKey {
				t.Errorf("%s: got key %s, want gateway.DemoKey %s", name, k, gateway.DemoKey)
			}
		}
	}

	cfg, err := gateway.Load("", nil)
	if err != nil {
		t.Fatalf("Load(\"\"): %v", err)
	}
	keys, err := auth.NewKeys(cfg.Auth)
	if err != nil {
		t.Fatalf("auth.NewKeys: %v", err)
	}
	id, err := keys.Verify(gateway.DemoKey)
	if err != nil {
		t.Fatalf("Verify(DemoKey): got %v, want the demo principal", err)
	}
	if id.Subject != "demo" || id.Team != "demo" || id.KeyID != "kdemo0000" {
		t.Errorf("Verify(DemoKey): got subject %q team %q key %q, want demo, demo, kdemo0000", id.Subject, id.Team, id.KeyID)
	}
	if _, err := keys.Verify(gateway.DemoKey + "x"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("Verify(DemoKey+\"x\"): got %v, want ErrUnauthenticated", err)
	}
}

func TestParseStrict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		yaml    string
		wantErr []string
	}{
		{
			name:    "unknown nested key",
			yaml:    "server:\n  listen: 127.0.0.1:1\n  listn: x\n",
			wantErr: []string{"my.yaml", "line 3", "listn"},
		},
		{
			name:    "unknown top-level key",
			yaml:    "server:\n  listen: 127.0.0.1:1\nqouta:\n  backend: memory\n",
			wantErr: []string{"my.yaml", "line 3", "qouta"},
		},
		{
			name:    "unknown key in a list entry",
			yaml:    "providers:\n  - name: a\n    kind: openai\n    baseurl: http://x\n",
			wantErr: []string{"my.yaml", "line 4", "baseurl"},
		},
		{
			name:    "wrong type",
			yaml:    "server:\n  max_body_bytes: lots\n",
			wantErr: []string{"my.yaml", "line 2", "lots"},
		},
		{
			name:    "bad duration",
			yaml:    "analytics:\n  writer:\n    flush_interval: soon\n",
			wantErr: []string{"my.yaml", "line 3", "soon"},
		},
		{
			name:    "not YAML",
			yaml:    "server: [\n",
			wantErr: []string{"my.yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := gateway.Parse([]byte(tt.yaml), "my.yaml")
			if err == nil {
				t.Fatalf("Parse: got %+v, nil error; want an error", cfg)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Parse error: got %q, want it to contain %q", err, s)
				}
			}
		})
	}
}

func TestParseDefaultsAndDurations(t *testing.T) {
	t.Parallel()
	cfg, err := gateway.Parse([]byte("analytics:\n  writer:\n    flush_interval: 250ms\n"), "x.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := cfg.Analytics.Writer.FlushInterval, 250*time.Millisecond; got != want {
		t.Errorf("FlushInterval: got %v, want %v", got, want)
	}
	if got, want := cfg.Log.Level, "info"; got != want {
		t.Errorf("Log.Level default: got %q, want %q", got, want)
	}
	if got, want := cfg.Log.Format, "json"; got != want {
		t.Errorf("Log.Format default: got %q, want %q", got, want)
	}
	if got, want := cfg.Server.Listen, "127.0.0.1:8080"; got != want {
		t.Errorf("Server.Listen default: got %q, want %q", got, want)
	}

	empty, err := gateway.Parse(nil, "empty.yaml")
	if err != nil {
		t.Fatalf("Parse(empty): got %v, want defaults", err)
	}
	if got, want := empty.Server.MaxBodyBytes, int64(4<<20); got != want {
		t.Errorf("Parse(empty) MaxBodyBytes: got %d, want %d", got, want)
	}
}

func TestValidateCollectsAllProblems(t *testing.T) {
	t.Parallel()
	const bad = `
server:
  listen: nonsense
  max_body_bytes: 10
providers:
  - name: a
    kind: bedrock
    base_url: ftp://example.com
    models: [m]
  - name: a
    kind: openai
    base_url: http://b/v1
quota:
  backend: redis
  fail_mode: sideways
analytics:
  writer:
    queue_size: -1
log:
  level: loud
`
	cfg, err := gateway.Parse([]byte(bad), "bad.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	err = cfg.Validate()
	if err == nil {
		t.Fatal("Validate: got nil, want every problem")
	}
	for _, path := range []string{
		"server.listen", "server.max_body_bytes",
		"providers[0].kind", "providers[0].base_url", "providers[1].name", "providers[1].models",
		"quota.redis.addr", "quota.fail_mode",
		"analytics.writer.queue_size", "log.level",
	} {
		if !strings.Contains(err.Error(), path+":") {
			t.Errorf("Validate: got\n%v\nwant a problem citing %s", err, path)
		}
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate: got %T, want an errors.Join error", err)
	}
	if got := len(joined.Unwrap()); got < 5 {
		t.Errorf("Validate: got %d joined errors, want at least 5 (one per section)", got)
	}

	// Load reports the same problems, naming the file.
	p := writeFile(t, "bad.yaml", bad)
	_, err = gateway.Load(p, nil)
	if err == nil {
		t.Fatal("Load: got nil error, want the validation problems")
	}
	for _, s := range []string{p, "invalid configuration", "server.listen", "quota.redis.addr", "providers[0].base_url", "log.level"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Load error: got\n%v\nwant it to contain %q", err, s)
		}
	}
}

func TestValidateNoProviders(t *testing.T) {
	t.Parallel()
	cfg, err := gateway.Parse([]byte("server:\n  listen: 127.0.0.1:1\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "providers: empty") {
		t.Errorf("Validate without providers: got %v, want \"providers: empty\"", err)
	}
}

func TestLoadEnvOverrides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   []string
		check func(t *testing.T, cfg *gateway.Config)
	}{
		{
			name: "server listen",
			env:  []string{"TOLLGATE_SERVER_LISTEN=0.0.0.0:9999"},
			check: func(t *testing.T, cfg *gateway.Config) {
				if got, want := cfg.Server.Listen, "0.0.0.0:9999"; got != want {
					t.Errorf("Server.Listen: got %q, want %q", got, want)
				}
			},
		},
		{
			name: "redis backend and addr",
			env:  []string{"TOLLGATE_QUOTA_BACKEND=redis", "TOLLGATE_QUOTA_REDIS_ADDR=10.0.0.1:6379", "TOLLGATE_QUOTA_REDIS_DB=3"},
			check: func(t *testing.T, cfg *gateway.Config) {
				if got, want := cfg.Quota.Redis.Addr, "10.0.0.1:6379"; got != want {
					t.Errorf("Quota.Redis.Addr: got %q, want %q", got, want)
				}
				if got, want := cfg.Quota.Redis.DB, 3; got != want {
					t.Errorf("Quota.Redis.DB: got %d, want %d", got, want)
				}
			},
		},
		{
			name: "duration",
			env:  []string{"TOLLGATE_ANALYTICS_WRITER_FLUSH_INTERVAL=250ms"},
			check: func(t *testing.T, cfg *gateway.Config) {
				if got, want := cfg.Analytics.Writer.FlushInterval, 250*time.Millisecond; got != want {
					t.Errorf("Analytics.Writer.FlushInterval: got %v, want %v", got, want)
				}
			},
		},
		{
			name: "string list",
			env:  []string{"TOLLGATE_ANALYTICS_CLICKHOUSE_ADDR=a:9000,b:9000"},
			check: func(t *testing.T, cfg *gateway.Config) {
				if diff := cmp.Diff([]string{"a:9000", "b:9000"}, cfg.Analytics.ClickHouse.Addr); diff != "" {
					t.Errorf("Analytics.ClickHouse.Addr (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "string list with spaces and a trailing comma",
			env:  []string{"TOLLGATE_ANALYTICS_CLICKHOUSE_ADDR= a:9000, b:9000,"},
			check: func(t *testing.T, cfg *gateway.Config) {
				if diff := cmp.Diff([]string{"a:9000", "b:9000"}, cfg.Analytics.ClickHouse.Addr); diff != "" {
					t.Errorf("Analytics.ClickHouse.Addr (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "bool, int64 and float-free scalars",
			env:  []string{"TOLLGATE_SERVER_TRUST_FORWARDED_FOR=true", "TOLLGATE_SERVER_MAX_BODY_BYTES=2048", "TOLLGATE_LOG_LEVEL=debug"},
			check: func(t *testing.T, cfg *gateway.Config) {
				if !cfg.Server.TrustForwardedFor {
					t.Errorf("Server.TrustForwardedFor: got false, want true")
				}
				if got, want := cfg.Server.MaxBodyBytes, int64(2048); got != want {
					t.Errorf("Server.MaxBodyBytes: got %d, want %d", got, want)
				}
				if got, want := cfg.Log.Level, "debug"; got != want {
					t.Errorf("Log.Level: got %q, want %q", got, want)
				}
			},
		},
		{
			name: "unrelated variables and TOLLGATE_CONFIG are ignored",
			env:  []string{"HOME=/root", "TOLLGATE_CONFIG=/etc/tollgate.yaml", "NOT_TOLLGATE_X=1", "TOLLGATE_SERVER_LISTEN"},
			check: func(t *testing.T, cfg *gateway.Config) {
				if got, want := cfg.Server.Listen, "127.0.0.1:8080"; got != want {
					t.Errorf("Server.Listen: got %q, want %q", got, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := gateway.Load("", tt.env)
			if err != nil {
				t.Fatalf("Load with %q: %v", tt.env, err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestLoadEnvErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     []string
		wantErr []string
	}{
		{name: "bad bool", env: []string{"TOLLGATE_SERVER_TRUST_FORWARDED_FOR=maybe"}, wantErr: []string{"TOLLGATE_SERVER_TRUST_FORWARDED_FOR", `"maybe"`, "true or false"}},
		{name: "bad int64", env: []string{"TOLLGATE_SERVER_MAX_BODY_BYTES=4MB"}, wantErr: []string{"TOLLGATE_SERVER_MAX_BODY_BYTES", `"4MB"`, "not an integer"}},
		{name: "bad int", env: []string{"TOLLGATE_QUOTA_REDIS_DB=zero"}, wantErr: []string{"TOLLGATE_QUOTA_REDIS_DB", `"zero"`, "not an integer"}},
		{name: "bad duration", env: []string{"TOLLGATE_ANALYTICS_WRITER_FLUSH_INTERVAL=250"}, wantErr: []string{"TOLLGATE_ANALYTICS_WRITER_FLUSH_INTERVAL", `"250"`, "duration"}},
		{name: "unknown variable", env: []string{"TOLLGATE_SERVER_LISTN=x"}, wantErr: []string{"TOLLGATE_SERVER_LISTN", "names no configuration field"}},
		{name: "section, not field", env: []string{"TOLLGATE_QUOTA_REDIS=x"}, wantErr: []string{"TOLLGATE_QUOTA_REDIS", "names no configuration field"}},
		{name: "list of structs", env: []string{"TOLLGATE_PROVIDERS=x"}, wantErr: []string{"TOLLGATE_PROVIDERS", "config file"}},
		{name: "override fails validation", env: []string{"TOLLGATE_SERVER_LISTEN=nonsense"}, wantErr: []string{"server.listen", `"nonsense"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := gateway.Load("", tt.env)
			if err == nil {
				t.Fatalf("Load with %q: got %+v, nil error; want an error", tt.env, cfg)
			}
			for _, s := range append(tt.wantErr, "embedded default config") {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Load with %q: got error %q, want it to contain %q", tt.env, err, s)
				}
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "tollgate.yaml", validYAML)
	cfg, err := gateway.Load(p, []string{"TOLLGATE_SERVER_LISTEN=127.0.0.1:7070"})
	if err != nil {
		t.Fatalf("Load(%s): %v", p, err)
	}
	if got, want := cfg.Server.Listen, "127.0.0.1:7070"; got != want {
		t.Errorf("Server.Listen (env over file): got %q, want %q", got, want)
	}
	if len(cfg.Auth.APIKeys) != 0 {
		t.Errorf("Auth.APIKeys: got %d, want 0 (the demo key is only in the embedded default)", len(cfg.Auth.APIKeys))
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "absent.yaml")
	cfg, err := gateway.Load(p, nil)
	if err == nil {
		t.Fatalf("Load(%s): got %+v, nil error; want an error", p, cfg)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(%s): got %v, want an fs.ErrNotExist error", p, err)
	}
	if !strings.Contains(err.Error(), p) {
		t.Errorf("Load(%s): got %q, want it to name the file", p, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(gateway.DefaultConfigYAML)
	f.Add([]byte(validYAML))
	for _, s := range []string{
		"", "server: [\n", "a: &a [*a]\n", "providers:\n  - name: x\n    models: [a, b]\n",
		"analytics:\n  writer:\n    flush_interval: 1h\n  clickhouse:\n    addr: [a:1]\n",
		"quota: {backend: redis, redis: {addr: 'x:1', db: -1}}\n", "auth:\n  api_keys:\n    - id: k\n      labels: {a: b}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := gateway.Parse(raw, "fuzz.yaml")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Errorf("Parse error %q does not name the file", err)
			}
			return
		}
		_ = cfg.Validate() // must not panic either
	})
}
