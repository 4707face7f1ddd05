package auth

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestAuthenticateAPIKeys(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k1, id1, h1, _ := NewKey()
	k2, id2, h2, _ := NewKey()
	k3, id3, h3, _ := NewKey()
	a, err := New(Config{APIKeys: []KeyConfig{
		{ID: id1, Hash: h1, Subject: "ana", Team: "ml", ExpiresAt: clk.Now().Add(time.Hour).Format(time.RFC3339)},
		{ID: id2, Hash: h2, Subject: "bob", Disabled: true},
		{ID: id3, Hash: h3, Subject: "svc", Kind: "service"},
	}}, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	unknown, _, _, _ := NewKey()
	tests := []struct {
		name, authorization, xAPIKey string
		wantSubject, wantReason      string
	}{
		{name: "bearer", authorization: "Bearer " + k1, wantSubject: "ana"},
		{name: "lower-case scheme", authorization: "bearer  " + k1 + " ", wantSubject: "ana"},
		{name: "x-api-key", xAPIKey: k3, wantSubject: "svc"},
		{name: "authorization wins over x-api-key", authorization: "Bearer " + k3, xAPIKey: k1, wantSubject: "svc"},
		{name: "disabled", authorization: "Bearer " + k2, wantReason: ReasonKeyDisabled},
		{name: "unknown id", authorization: "Bearer " + unknown, wantReason: ReasonKeyUnknown},
		{name: "wrong secret", authorization: "Bearer " + k1[:len(k1)-2] + "zz", wantReason: ReasonKeySecret},
		{name: "upper-case secret", authorization: "Bearer tg_" + id1 + "_" + strings.ToUpper(k1[len("tg_"+id1+"_"):]), wantReason: ReasonKeyMalformed},
		{name: "upper-case key is no key", authorization: "Bearer " + strings.ToUpper(k1), wantReason: ReasonMethodDisabled},
		{name: "malformed", authorization: "Bearer tg_" + id1 + "_", wantReason: ReasonKeyMalformed},
		{name: "bad chars", xAPIKey: "tg_" + id1 + "_a$b", wantReason: ReasonKeyMalformed},
		{name: "basic scheme", authorization: "Basic YWxhZGRpbjpvcGVuc2VzYW1l", wantReason: ReasonScheme},
		{name: "bare key without scheme", authorization: k1, wantReason: ReasonScheme},
		{name: "nothing", wantReason: ReasonMissing},
		{name: "jwt with oidc off", authorization: "Bearer a.b.c", wantReason: ReasonMethodDisabled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/models", nil)
			if tc.authorization != "" {
				r.Header.Set("Authorization", tc.authorization)
			}
			if tc.xAPIKey != "" {
				r.Header.Set("X-Api-Key", tc.xAPIKey)
			}
			id, err := a.Authenticate(r)
			if tc.wantReason != "" {
				if !errors.Is(err, ErrUnauthenticated) || err.Error() != ErrUnauthenticated.Error() {
					t.Fatalf("got %v, want the uniform ErrUnauthenticated", err)
				}
				if got := reasonOf(t, err); got != tc.wantReason {
					t.Errorf("reason: got %s, want %s", got, tc.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if id.Subject != tc.wantSubject || id.Auth != MethodAPIKey || id.KeyID == "" {
				t.Errorf("identity: got %+v, want subject %s via api_key", id, tc.wantSubject)
			}
		})
	}

	clk.Advance(time.Hour)
	_, err = a.Authenticate(bearerRequest(k1))
	if got := reasonOf(t, err); got != ReasonKeyExpired {
		t.Errorf("after expires_at: reason %s, want %s", got, ReasonKeyExpired)
	}
}

func TestFailureLogHasNoSecret(t *testing.T) {
	t.Parallel()
	key, id, hash, _ := NewKey()
	a, err := New(Config{APIKeys: []KeyConfig{{ID: id, Hash: hash, Subject: "ana"}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	bad := key[:len(key)-3] + "abc"
	_, err = a.Authenticate(bearerRequest(bad))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("auth failed", "auth", err)
	out := buf.String()
	if !strings.Contains(out, id) || !strings.Contains(out, ReasonKeySecret) {
		t.Errorf("log %s: want the key id and the reason", out)
	}
	if _, secret, _ := ParseKey(bad); strings.Contains(out, secret) {
		t.Errorf("log %s contains the key's secret", out)
	}
}

func TestConfigValidateAuth(t *testing.T) {
	t.Parallel()
	_, id, hash, _ := NewKey()
	issuer := func(mod func(*IssuerConfig)) Config {
		ic := IssuerConfig{Issuer: "https://login.example.com", Audiences: []string{"tollgate"}}
		mod(&ic)
		return Config{OIDC: OIDCConfig{Issuers: []IssuerConfig{ic}}}
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"ok keys", Config{APIKeys: []KeyConfig{{ID: id, Hash: hash, Subject: "s", ExpiresAt: "2027-01-01T00:00:00Z"}}}, ""},
		{"ok issuer", issuer(func(*IssuerConfig) {}), ""},
		{"ok loopback http", issuer(func(c *IssuerConfig) { c.Issuer = "http://127.0.0.1:5556/dex" }), ""},
		{"bad expiry", Config{APIKeys: []KeyConfig{{ID: id, Hash: hash, Subject: "s", ExpiresAt: "tomorrow"}}}, "auth.api_keys[0].expires_at"},
		{"plain http issuer", issuer(func(c *IssuerConfig) { c.Issuer = "http://login.example.com" }), "must use https"},
		{"no audience", issuer(func(c *IssuerConfig) { c.Audiences = nil }), "auth.oidc.issuers[0].audiences: empty"},
		{"hmac algorithm", issuer(func(c *IssuerConfig) { c.Algorithms = []string{"HS256"} }), `algorithms[0]: "HS256" is not allowed`},
		{"none algorithm", issuer(func(c *IssuerConfig) { c.Algorithms = []string{"none"} }), `"none" is not allowed`},
		{"bad claim path", issuer(func(c *IssuerConfig) { c.Claims.Team = "groups[x]" }), "auth.oidc.issuers[0].claims.team"},
		{"depth too large", issuer(func(c *IssuerConfig) { c.Delegation.MaxDepth = 99 }), "delegation.max_depth: 99"},
		{"skew too large", Config{OIDC: OIDCConfig{ClockSkew: "1h"}}, "auth.oidc.clock_skew"},
		{"mtls without CAs", Config{MTLS: MTLSConfig{Mode: "require"}}, "auth.mtls.ca_files: empty"},
		{"mtls bad mode", Config{MTLS: MTLSConfig{CAFiles: []string{"x"}, Mode: "always"}}, `auth.mtls.mode: "always"`},
		{"mtls bad match", Config{MTLS: MTLSConfig{CAFiles: []string{"x"}, Principals: []PrincipalRule{{Match: "a*b"}}}}, "principals[0].match"},
		{"store addr", Config{KeyStore: StoreConfig{Redis: RedisConfig{Addr: "nohost"}}}, "auth.key_store.redis.addr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestRedisConfigLogValueRedacts(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "redis", RedisConfig{Addr: "r:6379", Password: "hunter2"})
	if strings.Contains(buf.String(), "hunter2") || !strings.Contains(buf.String(), "REDACTED") {
		t.Errorf("log %q: want the password redacted", buf.String())
	}
}
