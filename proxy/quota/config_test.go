package quota_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/proxy/quota"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	redisCfg := func(mod func(*quota.Config)) quota.Config {
		c := quota.DefaultConfig()
		c.Backend = quota.BackendRedis
		c.Redis.Addr = "127.0.0.1:6379"
		mod(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  quota.Config
		want []string // substrings of the error, one per problem; none = valid
	}{
		{name: "default", cfg: quota.DefaultConfig()},
		{name: "zero value", cfg: quota.Config{}},
		{name: "redis", cfg: redisCfg(func(c *quota.Config) { c.FailMode = quota.FailOpen; c.TimeZone = "Europe/Berlin" })},
		{name: "memory ignores redis", cfg: quota.Config{Backend: quota.BackendMemory, Redis: quota.RedisEndpoint{DB: -1}}},
		{name: "bad backend", cfg: quota.Config{Backend: "etcd"},
			want: []string{`quota.backend: invalid value "etcd" (want "memory" or "redis")`}},
		{name: "empty addr", cfg: redisCfg(func(c *quota.Config) { c.Redis.Addr = "" }),
			want: []string{"quota.redis.addr: empty; set host:port"}},
		{name: "addr without port", cfg: redisCfg(func(c *quota.Config) { c.Redis.Addr = "redis" }),
			want: []string{`quota.redis.addr: invalid value "redis" (want host:port`}},
		{name: "every problem at once", cfg: redisCfg(func(c *quota.Config) {
			c.Redis.Addr = ""
			c.Redis.DB = -2
			c.Redis.Prefix = "a{b}"
			c.FailMode = "ajar"
			c.TimeZone = "Mars/Olympus"
			c.CallTimeout = "soon"
		}), want: []string{
			"quota.redis.addr: empty",
			"quota.redis.db: negative value -2",
			`quota.redis.prefix: invalid value "a{b}"`,
			`quota.fail_mode: invalid value "ajar" (want "closed" or "open")`,
			`quota.time_zone: unknown time zone "Mars/Olympus"`,
			`quota.call_timeout: invalid duration "soon"`,
		}},
		{name: "cluster", cfg: redisCfg(func(c *quota.Config) {
			c.Redis.Addr = ""
			c.Redis.Cluster = true
			c.Redis.Addrs = []string{"127.0.0.1:7000", "127.0.0.1:7001"}
		})},
		{name: "cluster seeded by addr", cfg: redisCfg(func(c *quota.Config) { c.Redis.Cluster = true })},
		{name: "cluster without nodes", cfg: redisCfg(func(c *quota.Config) { c.Redis.Addr = ""; c.Redis.Cluster = true }),
			want: []string{"quota.redis.addrs: empty; list host:port of one or more cluster nodes"}},
		{name: "cluster bad node and db", cfg: redisCfg(func(c *quota.Config) {
			c.Redis.Cluster = true
			c.Redis.Addrs = []string{"127.0.0.1:7000", "redis"}
			c.Redis.DB = 1
		}), want: []string{
			`quota.redis.addrs[1]: invalid value "redis" (want host:port`,
			"quota.redis.db: 1 with cluster: true",
		}},
		{name: "addrs without cluster", cfg: redisCfg(func(c *quota.Config) { c.Redis.Addrs = []string{"127.0.0.1:7000"} }),
			want: []string{"quota.redis.addrs: set only with cluster: true"}},
		{name: "zero timeout", cfg: redisCfg(func(c *quota.Config) { c.CallTimeout = "0s" }),
			want: []string{`quota.call_timeout: "0s" is not positive`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: got nil, want %q", tc.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("got %d problems, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	t.Parallel()
	const doc = `
backend: redis
redis:
  addr: 10.0.0.5:6379
  password: s3cret
  db: 2
  prefix: gw1
fail_mode: open
time_zone: Europe/Berlin
call_timeout: 100ms
`
	var got quota.Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := quota.Config{
		Backend:     quota.BackendRedis,
		Redis:       quota.RedisEndpoint{Addr: "10.0.0.5:6379", Password: "s3cret", DB: 2, Prefix: "gw1"},
		FailMode:    quota.FailOpen,
		TimeZone:    "Europe/Berlin",
		CallTimeout: "100ms",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
}

func TestConfigYAMLCluster(t *testing.T) {
	t.Parallel()
	const doc = `
backend: redis
redis:
  cluster: true
  addrs: [10.0.0.5:6379, 10.0.0.6:6379]
`
	var got quota.Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := quota.Config{
		Backend: quota.BackendRedis,
		Redis:   quota.RedisEndpoint{Cluster: true, Addrs: []string{"10.0.0.5:6379", "10.0.0.6:6379"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestConfigLogRedactsPassword(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	cfg := quota.Config{Backend: quota.BackendRedis, Redis: quota.RedisEndpoint{Addr: "h:1", Password: "s3cret"}}
	log.Info("config", "quota", cfg, "redis", cfg.Redis)
	if strings.Contains(buf.String(), "s3cret") {
		t.Errorf("password logged: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"addr":"h:1"`) {
		t.Errorf("addr missing: %s", buf.String())
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     quota.Config
		want    string // %T of the limiter
		wantErr bool
	}{
		{name: "memory", cfg: quota.DefaultConfig(), want: "*quota.Memory"},
		{name: "redis closed", cfg: quota.Config{Backend: quota.BackendRedis, Redis: quota.RedisEndpoint{Addr: "127.0.0.1:1"}}, want: "*quota.Redis"},
		{name: "redis open", cfg: quota.Config{Backend: quota.BackendRedis, FailMode: quota.FailOpen, Redis: quota.RedisEndpoint{Addr: "127.0.0.1:1"}}, want: "*quota.Failover"},
		{name: "redis cluster", cfg: quota.Config{Backend: quota.BackendRedis, Redis: quota.RedisEndpoint{Cluster: true, Addrs: []string{"127.0.0.1:1"}}}, want: "*quota.Redis"},
		{name: "invalid", cfg: quota.Config{Backend: "etcd"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, closer, err := quota.Open(tc.cfg, nil)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Open: got nil error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer func() {
				if err := closer.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			if got := typeName(l); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestOpenRedis runs a limiter built by Open against a real Redis, with the
// time zone from the configuration.
func TestOpenRedis(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	cfg := quota.Config{Backend: quota.BackendRedis, Redis: quota.RedisEndpoint{Addr: srv}, TimeZone: "America/New_York"}
	l, closer, err := quota.Open(cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer closer.Close()
	lim := quota.Limit{Scope: "team:ml", Window: quota.Day, Tokens: 10}
	r := reserve(t, l, t0, []quota.Limit{lim}, quota.Amount{Tokens: 1})
	if got, want := r.Status[0].ResetAt, "2026-11-26T05:00:00Z"; got.UTC().Format("2006-01-02T15:04:05Z") != want {
		t.Errorf("ResetAt: got %s, want %s", got.UTC(), want)
	}
}
