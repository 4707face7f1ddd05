package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/engine"
)

// jwtFixture is two issuers on loopback and an Authenticator trusting both:
// A (RS256, discovery, delegation on) and B (ES256 only, JWKS URL given,
// team and roles from claims).
type jwtFixture struct {
	clk    *clock
	a, b   *testIssuer
	ka, kb *signingKey
	auth   *Authenticator
}

func newJWTFixture(t *testing.T, mutate func(*Config)) *jwtFixture {
	t.Helper()
	f := &jwtFixture{clk: newClock(), a: newTestIssuer(t), b: newTestIssuer(t)}
	f.ka = f.a.addKey(t, jose.RS256, 0)
	f.kb = f.b.addKey(t, jose.ES256, 0)
	cfg := Config{OIDC: OIDCConfig{Issuers: []IssuerConfig{
		{
			Issuer: f.a.URL, Audiences: []string{"tollgate"}, Org: "acme",
			Claims:          ClaimsConfig{Labels: map[string]string{"email": "email"}},
			TeamFromGroups:  map[string]string{"ml-eng": "ml"},
			RolesFromGroups: map[string][]string{"ml-eng": {"developer"}, "admins": {"admin"}},
			Delegation:      DelegationConfig{Enabled: true, MaxDepth: 3},
		},
		{
			Issuer: f.b.URL, JWKSURL: f.b.URL + "/jwks", Audiences: []string{"tollgate-b", "other"},
			Algorithms: []string{"ES256"}, Kind: "service",
			Claims: ClaimsConfig{Subject: "client_id", Team: "team", Roles: "realm_access.roles"},
		},
	}}}
	if mutate != nil {
		mutate(&cfg)
	}
	var err error
	f.auth, err = New(cfg, Options{HTTPClient: testHTTPClient(t), Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// claimsA are valid claims for issuer A.
func (f *jwtFixture) claimsA(mod func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss": f.a.URL, "aud": "tollgate", "sub": "ana", "email": "ana@example.com",
		"groups": []string{"ml-eng", "admins"},
		"iat":    f.clk.unix(-time.Minute), "nbf": f.clk.unix(-time.Minute), "exp": f.clk.unix(10 * time.Minute),
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func bearerRequest(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func reasonOf(t *testing.T, err error) string {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v is not a *Failure", err)
	}
	return f.Reason
}

func TestJWTValid(t *testing.T) {
	t.Parallel()
	f := newJWTFixture(t, nil)
	tests := []struct {
		name  string
		token func() string
		want  engine.Identity
	}{
		{
			name:  "issuer A RS256 via discovery, team and roles from groups",
			token: func() string { return sign(t, f.ka, f.claimsA(nil), nil) },
			want: engine.Identity{Subject: "ana", Kind: "user", Auth: "oidc", Team: "ml", Org: "acme",
				Roles: []string{"developer", "admin"}, Groups: []string{"ml-eng", "admins"},
				Labels: map[string]string{"email": "ana@example.com"}},
		},
		{
			name: "issuer B ES256 via jwks_url, claims mapping, audience list",
			token: func() string {
				return sign(t, f.kb, map[string]any{
					"iss": f.b.URL, "aud": []string{"x", "other"}, "client_id": "batch-job", "sub": "ignored",
					"team": "search", "realm_access": map[string]any{"roles": []string{"batch"}},
					"exp": f.clk.unix(time.Minute),
				}, nil)
			},
			want: engine.Identity{Subject: "batch-job", Kind: "service", Auth: "oidc", Team: "search",
				Roles: []string{"batch"}, Groups: []string{}},
		},
		{
			name: "expired 20s ago, within the 30s clock skew",
			token: func() string {
				return sign(t, f.ka, f.claimsA(func(c map[string]any) {
					c["exp"] = f.clk.unix(-20 * time.Second)
					delete(c, "email")
					c["groups"] = "admins"
				}), nil)
			},
			want: engine.Identity{Subject: "ana", Kind: "user", Auth: "oidc", Org: "acme",
				Roles: []string{"admin"}, Groups: []string{"admins"}},
		},
		{
			name: "nbf 20s ahead, within the clock skew",
			token: func() string {
				return sign(t, f.ka, f.claimsA(func(c map[string]any) {
					c["nbf"] = f.clk.unix(20 * time.Second)
					c["groups"] = []string{}
					delete(c, "email")
				}), nil)
			},
			want: engine.Identity{Subject: "ana", Kind: "user", Auth: "oidc", Org: "acme",
				Roles: []string{}, Groups: []string{}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.auth.Authenticate(bearerRequest(tc.token()))
			if err != nil {
				t.Fatalf("Authenticate: %v (%v)", err, err.(*Failure).LogValue())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
		})
	}
}

// TestJWTAttacks sends every forgery we know to a real HTTP server that
// authenticates with the Authenticator: each gets the same 401 body, and
// the internal reason names the check that caught it.
func TestJWTAttacks(t *testing.T) {
	t.Parallel()
	f := newJWTFixture(t, nil)
	srv := httptest.NewServer(authHandler(f.auth))
	t.Cleanup(srv.Close)
	client := testHTTPClient(t)

	valid := sign(t, f.ka, f.claimsA(nil), nil)
	parts := strings.Split(valid, ".")
	pubDER, err := x509.MarshalPKIXPublicKey(f.ka.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pubJWK, err := json.Marshal(f.ka.jwk())
	if err != nil {
		t.Fatal(err)
	}
	hmacWith := func(key []byte) func([]byte) []byte {
		return func(in []byte) []byte {
			m := hmac.New(sha256.New, key)
			m.Write(in)
			return m.Sum(nil)
		}
	}
	attacker := &signingKey{kid: f.ka.kid, alg: jose.RS256, priv: rsaKey(t, 3)}
	attackerJWK := attacker.jwk()
	attackerJWK.KeyID = "attacker"

	tests := []struct {
		name   string
		token  func() string
		reason string
	}{
		{"alg none, empty signature", func() string {
			return rawJWT(t, map[string]any{"alg": "none", "typ": "JWT"}, f.claimsA(nil), nil)
		}, ReasonTokenMalformed},
		{"alg none with a signature", func() string {
			return rawJWT(t, map[string]any{"alg": "none", "kid": f.ka.kid}, f.claimsA(nil), func([]byte) []byte { return []byte("x") })
		}, ReasonTokenAlgorithm},
		{"alg None (case games)", func() string {
			return rawJWT(t, map[string]any{"alg": "None", "kid": f.ka.kid}, f.claimsA(nil), func([]byte) []byte { return []byte("x") })
		}, ReasonTokenAlgorithm},
		{"HS256 keyed with the public key PEM", func() string {
			return rawJWT(t, map[string]any{"alg": "HS256", "kid": f.ka.kid}, f.claimsA(nil), hmacWith(pubPEM))
		}, ReasonTokenAlgorithm},
		{"HS256 keyed with the public key DER", func() string {
			return rawJWT(t, map[string]any{"alg": "HS256", "kid": f.ka.kid}, f.claimsA(nil), hmacWith(pubDER))
		}, ReasonTokenAlgorithm},
		{"HS256 keyed with the public JWK", func() string {
			return rawJWT(t, map[string]any{"alg": "HS256", "kid": f.ka.kid}, f.claimsA(nil), hmacWith(pubJWK))
		}, ReasonTokenAlgorithm},
		{"RS256 to an issuer that allows only ES256", func() string {
			k := &signingKey{kid: f.kb.kid, alg: jose.RS256, priv: f.ka.priv}
			return sign(t, k, map[string]any{"iss": f.b.URL, "aud": "tollgate-b", "client_id": "x", "exp": f.clk.unix(time.Minute)}, nil)
		}, ReasonTokenAlgorithm},
		{"expired beyond the clock skew", func() string {
			return sign(t, f.ka, f.claimsA(func(c map[string]any) { c["exp"] = f.clk.unix(-31 * time.Second) }), nil)
		}, ReasonTokenExpired},
		{"no exp", func() string {
			return sign(t, f.ka, f.claimsA(func(c map[string]any) { delete(c, "exp") }), nil)
		}, ReasonTokenClaims},
		{"not yet valid (nbf)", func() string {
			return sign(t, f.ka, f.claimsA(func(c map[string]any) { c["nbf"] = f.clk.unix(time.Hour) }), nil)
		}, ReasonTokenNotYetValid},
		{"issued in the future (iat)", func() string {
			return sign(t, f.ka, f.claimsA(func(c map[string]any) { c["iat"] = f.clk.unix(time.Hour) }), nil)
		}, ReasonTokenNotYetValid},
		{"unknown issuer", func() string {
			return sign(t, f.ka, f.claimsA(func(c map[string]any) { c["iss"] = "https://evil.example" }), nil)
		}, ReasonTokenIssuer},
		{"issuer A's claim, issuer B's key", func() string {
			k := &signingKey{kid: f.kb.kid, alg: jose.ES256, priv: f.kb.priv}
			return sign(t, k, f.claimsA(nil), nil)
		}, ReasonTokenKID},
		{"wrong audience", func() string {
			return sign(t, f.ka, f.claimsA(func(c map[string]any) { c["aud"] = []string{"someone-else"} }), nil)
		}, ReasonTokenAudience},
		{"no audience", func() string {
			return sign(t, f.ka, f.claimsA(func(c map[string]any) { delete(c, "aud") }), nil)
		}, ReasonTokenAudience},
		{"unknown kid", func() string {
			k := &signingKey{kid: "nope", alg: jose.RS256, priv: f.ka.priv}
			return sign(t, k, f.claimsA(nil), nil)
		}, ReasonTokenKID},
		{"attacker key under the real kid", func() string {
			return sign(t, attacker, f.claimsA(nil), nil)
		}, ReasonTokenSignature},
		{"embedded jwk (attacker key)", func() string {
			return sign(t, attacker, f.claimsA(nil), map[string]any{"jwk": attackerJWK})
		}, ReasonTokenHeaderKey},
		{"embedded jwk, signed by the real key", func() string {
			return sign(t, f.ka, f.claimsA(nil), map[string]any{"jwk": f.ka.jwk()})
		}, ReasonTokenHeaderKey},
		{"jku header", func() string {
			return sign(t, f.ka, f.claimsA(nil), map[string]any{"jku": "http://127.0.0.1:1/jwks"})
		}, ReasonTokenHeaderKey},
		{"x5u header", func() string {
			return sign(t, f.ka, f.claimsA(nil), map[string]any{"x5u": "http://127.0.0.1:1/cert.pem"})
		}, ReasonTokenHeaderKey},
		{"x5c header", func() string {
			return sign(t, f.ka, f.claimsA(nil), map[string]any{"x5c": []string{"MIIB"}})
		}, ReasonTokenHeaderKey},
		{"JWK header in upper case", func() string {
			return sign(t, f.ka, f.claimsA(nil), map[string]any{"JWK": f.ka.jwk()})
		}, ReasonTokenHeaderKey},
		{"crit header", func() string {
			return sign(t, f.ka, f.claimsA(nil), map[string]any{"crit": []string{"exp"}, "exp": 1})
		}, ReasonTokenHeaderKey},
		{"tampered payload", func() string {
			forged := f.claimsA(func(c map[string]any) { c["sub"] = "admin"; c["groups"] = []string{"admins"} })
			pb, _ := json.Marshal(forged)
			return parts[0] + "." + b64(pb) + "." + parts[2]
		}, ReasonTokenSignature},
		{"stripped signature (trailing dot)", func() string { return parts[0] + "." + parts[1] + "." }, ReasonTokenMalformed},
		{"stripped signature (two parts)", func() string { return parts[0] + "." + parts[1] }, ReasonTokenMalformed},
		{"JSON serialization", func() string {
			b, _ := json.Marshal(map[string]string{"protected": parts[0], "payload": parts[1], "signature": parts[2]})
			return string(b)
		}, ReasonTokenMalformed},
		{"padding in a segment", func() string { return parts[0] + "=." + parts[1] + "." + parts[2] }, ReasonTokenMalformed},
		{"oversized token", func() string {
			return sign(t, f.ka, f.claimsA(func(c map[string]any) { c["pad"] = strings.Repeat("a", 9000) }), nil)
		}, ReasonTokenTooLarge},
		{"act claim from an issuer without delegation", func() string {
			return sign(t, f.kb, map[string]any{"iss": f.b.URL, "aud": "tollgate-b", "client_id": "x",
				"exp": f.clk.unix(time.Minute), "act": map[string]any{"sub": "agent-a"}}, nil)
		}, ReasonDelegation},
		{"delegation chain deeper than the cap", func() string {
			return sign(t, f.ka, f.claimsA(func(c map[string]any) {
				c["act"] = map[string]any{"sub": "a1", "act": map[string]any{"sub": "a2", "act": map[string]any{"sub": "a3", "act": map[string]any{"sub": "a4"}}}}
			}), nil)
		}, ReasonChainTooDeep},
		{"act without sub", func() string {
			return sign(t, f.ka, f.claimsA(func(c map[string]any) { c["act"] = map[string]any{"client_id": "a1"} }), nil)
		}, ReasonDelegation},
		{"subject missing", func() string {
			return sign(t, f.ka, f.claimsA(func(c map[string]any) { delete(c, "sub") }), nil)
		}, ReasonTokenClaims},
		{"groups of the wrong type", func() string {
			return sign(t, f.ka, f.claimsA(func(c map[string]any) { c["groups"] = map[string]any{"admins": true} }), nil)
		}, ReasonTokenClaims},
		{"not a JWT at all", func() string { return "hello" }, ReasonTokenMalformed},
	}
	var bodies []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token()
			_, err := f.auth.Authenticate(bearerRequest(tok))
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Authenticate: got %v, want ErrUnauthenticated", err)
			}
			if got := err.Error(); got != ErrUnauthenticated.Error() {
				t.Errorf("error text: got %q, want the uniform %q", got, ErrUnauthenticated.Error())
			}
			if got := reasonOf(t, err); got != tc.reason {
				t.Errorf("reason: got %s, want %s (%v)", got, tc.reason, err.(*Failure).LogValue())
			}
			status, body := get(t, client, srv.URL, "Bearer "+tok)
			if status != http.StatusUnauthorized {
				t.Errorf("status: got %d, want 401", status)
			}
			bodies = append(bodies, body)
		})
	}
	for i, b := range bodies {
		if b != bodies[0] {
			t.Errorf("401 body %d differs from the first: %q vs %q", i, b, bodies[0])
		}
	}
	if _, err := f.auth.Authenticate(bearerRequest(valid)); err != nil {
		t.Errorf("the valid token after the attacks: %v", err)
	}
}

// authHandler is what a gateway does: 401 with one fixed body on failure.
func authHandler(a *Authenticator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := a.Authenticate(r)
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{
				"message": err.Error(), "type": "invalid_request_error", "code": "invalid_api_key"}})
			return
		}
		_ = json.NewEncoder(w).Encode(id)
	})
}

func get(t *testing.T, c *http.Client, url, authorization string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestJWTDelegationChain(t *testing.T) {
	t.Parallel()
	f := newJWTFixture(t, nil)
	// RFC 8693: agent-a is the current actor; agent-b acted before it.
	tok := sign(t, f.ka, f.claimsA(func(c map[string]any) {
		c["act"] = map[string]any{"sub": "agent-a", "act": map[string]any{"sub": "agent-b"}}
	}), nil)
	id, err := f.auth.Authenticate(bearerRequest(tok))
	if err != nil {
		t.Fatalf("Authenticate: %v (%v)", err, err.(*Failure).LogValue())
	}
	want := []engine.ChainLink{{Subject: "ana", Kind: "user"}, {Subject: "agent-b", Kind: "agent"}, {Subject: "agent-a", Kind: "agent"}}
	if diff := cmp.Diff(want, id.Chain); diff != "" {
		t.Errorf("chain (-want +got):\n%s", diff)
	}
	if id.Subject != "ana" || id.Team != "ml" {
		t.Errorf("identity: got subject %q team %q, want ana ml", id.Subject, id.Team)
	}
	// Exactly at the cap of 3 actors passes.
	tok3 := sign(t, f.ka, f.claimsA(func(c map[string]any) {
		c["act"] = map[string]any{"sub": "a1", "act": map[string]any{"sub": "a2", "act": map[string]any{"sub": "a3"}}}
	}), nil)
	id, err = f.auth.Authenticate(bearerRequest(tok3))
	if err != nil {
		t.Fatalf("Authenticate(3 actors): %v", err)
	}
	if got := len(id.Chain); got != 4 {
		t.Errorf("chain length: got %d, want 4", got)
	}
	// A direct call has no chain.
	id, err = f.auth.Authenticate(bearerRequest(sign(t, f.ka, f.claimsA(nil), nil)))
	if err != nil {
		t.Fatal(err)
	}
	if id.Chain != nil {
		t.Errorf("direct call chain: got %v, want none", id.Chain)
	}
}

func TestJWTKeyRotation(t *testing.T) {
	t.Parallel()
	f := newJWTFixture(t, nil)
	if _, err := f.auth.Authenticate(bearerRequest(sign(t, f.ka, f.claimsA(nil), nil))); err != nil {
		t.Fatalf("first key: %v", err)
	}
	hits := f.a.jwksHits.Load()
	if hits != 1 {
		t.Fatalf("JWKS fetches after the first token: got %d, want 1", hits)
	}

	// The issuer publishes a second key and signs with it: the unknown kid
	// makes the verifier fetch the key set again.
	f.clk.Advance(minRefresh)
	k2 := f.a.addKey(t, jose.RS256, 1)
	if _, err := f.auth.Authenticate(bearerRequest(sign(t, k2, f.claimsA(nil), nil))); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if got := f.a.jwksHits.Load(); got != hits+1 {
		t.Fatalf("JWKS fetches after rotation: got %d, want %d", got, hits+1)
	}
	// Tokens of the old key still verify from the cached set, no fetch.
	if _, err := f.auth.Authenticate(bearerRequest(sign(t, f.ka, f.claimsA(func(c map[string]any) { c["n"] = 1 }), nil))); err != nil {
		t.Fatalf("old key during overlap: %v", err)
	}

	// A flood of made-up kids causes at most one fetch per minRefresh.
	hits = f.a.jwksHits.Load()
	f.clk.Advance(minRefresh)
	for i := range 20 {
		k := &signingKey{kid: "bogus" + string(rune('a'+i)), alg: jose.RS256, priv: f.ka.priv}
		_, err := f.auth.Authenticate(bearerRequest(sign(t, k, f.claimsA(nil), nil)))
		if got := reasonOf(t, err); got != ReasonTokenKID {
			t.Fatalf("bogus kid %d: reason %s, want %s", i, got, ReasonTokenKID)
		}
	}
	if got := f.a.jwksHits.Load(); got != hits+1 {
		t.Errorf("JWKS fetches for 20 bogus kids: got %d, want %d", got-hits, 1)
	}

	// The issuer retires the old key; after the next fetch its tokens fail.
	f.a.removeKey(f.ka.kid)
	k3 := f.a.addKey(t, jose.RS256, 2)
	f.clk.Advance(minRefresh)
	if _, err := f.auth.Authenticate(bearerRequest(sign(t, k3, f.claimsA(nil), nil))); err != nil {
		t.Fatalf("third key: %v", err)
	}
	_, err := f.auth.Authenticate(bearerRequest(sign(t, f.ka, f.claimsA(func(c map[string]any) { c["n"] = 2 }), nil)))
	if got := reasonOf(t, err); got != ReasonTokenKID {
		t.Errorf("retired key: reason %s, want %s", got, ReasonTokenKID)
	}
}

func TestJWTCache(t *testing.T) {
	t.Parallel()
	f := newJWTFixture(t, nil)
	tok := sign(t, f.ka, f.claimsA(func(c map[string]any) { c["exp"] = f.clk.unix(20 * time.Second) }), nil)
	if _, err := f.auth.Authenticate(bearerRequest(tok)); err != nil {
		t.Fatal(err)
	}
	if got := f.auth.jwt.cache.len(); got != 1 {
		t.Fatalf("cache entries: got %d, want 1", got)
	}
	// While the issuer is down the cached token still passes: no I/O.
	f.a.down.Store(true)
	if _, err := f.auth.Authenticate(bearerRequest(tok)); err != nil {
		t.Fatalf("cached token: %v", err)
	}
	// The entry ends at exp, not at the cache TTL, and a cache miss does not
	// skip the expiry check.
	f.clk.Advance(21 * time.Second)
	if _, ok := f.auth.jwt.cache.get(ptr(sha256.Sum256([]byte(tok))), f.clk.Now()); ok {
		t.Error("cache entry outlived the token's exp")
	}
	f.clk.Advance(30 * time.Second) // past exp plus the 30s skew
	_, err := f.auth.Authenticate(bearerRequest(tok))
	if got := reasonOf(t, err); got != ReasonTokenExpired {
		t.Errorf("after exp: reason %s, want %s", got, ReasonTokenExpired)
	}
}

func ptr[T any](v T) *T { return &v }

func TestJWTIssuerDown(t *testing.T) {
	t.Parallel()
	f := newJWTFixture(t, nil)
	f.a.down.Store(true)
	tok := sign(t, f.ka, f.claimsA(nil), nil)
	_, err := f.auth.Authenticate(bearerRequest(tok))
	if got := reasonOf(t, err); got != ReasonIssuerDown {
		t.Fatalf("issuer down: reason %s, want %s", got, ReasonIssuerDown)
	}
	if err := f.auth.Warm(t.Context()); err == nil {
		t.Error("Warm with an issuer down: got nil, want an error")
	}
	// Back up: the next attempt after the retry interval succeeds.
	f.a.down.Store(false)
	f.clk.Advance(discoveryRetry)
	if _, err := f.auth.Authenticate(bearerRequest(tok)); err != nil {
		t.Fatalf("issuer back: %v", err)
	}
	if err := f.auth.Warm(t.Context()); err != nil {
		t.Errorf("Warm: %v", err)
	}
}

func TestJWTDisabled(t *testing.T) {
	t.Parallel()
	a, err := New(Config{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(bearerRequest("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"))
	if got := reasonOf(t, err); got != ReasonMethodDisabled {
		t.Errorf("reason: got %s, want %s", got, ReasonMethodDisabled)
	}
}

// TestJWTDelegationBoundToClientCert: over a connection with a verified
// client certificate, a delegation token is accepted only from the agent it
// names as the current actor.
func TestJWTDelegationBoundToClientCert(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "ca")
	caFile := ca.file(t)
	f := newJWTFixture(t, func(c *Config) { c.MTLS = MTLSConfig{CAFiles: []string{caFile}, AllowUnmapped: true} })
	tok := sign(t, f.ka, f.claimsA(func(c map[string]any) {
		c["act"] = map[string]any{"sub": "spiffe://acme.org/agent-a", "act": map[string]any{"sub": "agent-b"}}
	}), nil)
	certA, _, _ := ca.issue(t, "a", []string{"spiffe://acme.org/agent-a"}, false)
	certC, _, _ := ca.issue(t, "c", []string{"spiffe://acme.org/agent-c"}, false)
	req := func(cert *x509.Certificate) *http.Request {
		r := bearerRequest(tok)
		if cert != nil {
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert},
				VerifiedChains: [][]*x509.Certificate{{cert, ca.cert}}}
		}
		return r
	}
	if _, err := f.auth.Authenticate(req(certA)); err != nil {
		t.Errorf("current actor's certificate: %v", err)
	}
	if _, err := f.auth.Authenticate(req(nil)); err != nil {
		t.Errorf("no certificate: %v", err)
	}
	_, err := f.auth.Authenticate(req(certC))
	if got := reasonOf(t, err); got != ReasonDelegation {
		t.Errorf("another agent's certificate: reason %s, want %s", got, ReasonDelegation)
	}
}
