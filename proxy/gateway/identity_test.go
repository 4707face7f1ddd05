package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/quota"
)

// oidcIssuer is an OpenID provider on loopback: discovery and a JWKS with
// one RS256 key, and a signer for tokens under that key.
type oidcIssuer struct {
	url  string
	kid  string
	priv *rsa.PrivateKey
}

func startOIDCIssuer(t *testing.T) *oidcIssuer {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &oidcIssuer{kid: "k1", priv: priv}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                is.url,
			"jwks_uri":                              is.url + "/jwks",
			"authorization_endpoint":                is.url + "/authorize",
			"token_endpoint":                        is.url + "/token",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &priv.PublicKey, KeyID: is.kid, Algorithm: string(jose.RS256), Use: "sig"},
		}})
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: mux}}
	srv.Start()
	t.Cleanup(srv.Close)
	is.url = srv.URL
	return is
}

// sign returns a compact RS256 JWT over claims, with the given kid.
func (is *oidcIssuer) sign(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: is.priv, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claims returns valid claims for sub, with act (nil: none) and overrides.
func (is *oidcIssuer) claims(sub string, act map[string]any, over map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss":    is.url,
		"sub":    sub,
		"aud":    "tollgate",
		"iat":    now.Unix(),
		"exp":    now.Add(10 * time.Minute).Unix(),
		"groups": []string{"ml-eng"},
	}
	if act != nil {
		c["act"] = act
	}
	for k, v := range over {
		c[k] = v
	}
	return c
}

// actors builds a nested RFC 8693 act claim from the actors in the order
// they received the delegation: the last one, the current actor, is
// outermost.
func actors(subs ...string) map[string]any {
	var act map[string]any
	for _, s := range subs {
		outer := map[string]any{"sub": s}
		if act != nil {
			outer["act"] = act
		}
		act = outer
	}
	return act
}

// rawToken encodes header and claims and appends sig, unverified.
func rawToken(t *testing.T, header, claims map[string]any, sig func(signingInput string) []byte) string {
	t.Helper()
	hb, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	in := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(pb)
	return in + "." + base64.RawURLEncoding.EncodeToString(sig(in))
}

// liveGateway is a gateway serving on loopback through Run.
type liveGateway struct {
	url    string
	g      *Gateway
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// runGateway builds a gateway from cfg and runs it on a 127.0.0.1 listener;
// scheme is "http" or "https" (Run adds TLS when server.tls is set).
func runGateway(t *testing.T, cfg *Config, scheme string) *liveGateway {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	lg := &liveGateway{url: scheme + "://" + l.Addr().String(), g: g, cancel: cancel, done: make(chan struct{})}
	go func() {
		lg.err = g.Run(ctx, l)
		close(lg.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-lg.done
	})
	return lg
}

// stop shuts the gateway down and waits until its logs are flushed.
func (lg *liveGateway) stop(t *testing.T) {
	t.Helper()
	lg.cancel()
	<-lg.done
	if lg.err != nil {
		t.Fatalf("gateway Run: %v", lg.err)
	}
}

// authFailures returns tollgate_auth_failures_total as "method/reason" →
// count.
func (lg *liveGateway) authFailures(t *testing.T) map[string]int {
	t.Helper()
	mfs, err := lg.g.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, mf := range mfs {
		if mf.GetName() != "tollgate_auth_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var method, reason string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "method":
					method = lp.GetValue()
				case "reason":
					reason = lp.GetValue()
				}
			}
			out[method+"/"+reason] = int(m.GetCounter().GetValue())
		}
	}
	return out
}

// newLoopbackClient returns a client for the gateway, with tc for HTTPS;
// its idle connections close with the test.
func newLoopbackClient(t *testing.T, tc *tls.Config) *http.Client {
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// chatBody is a request for model echo offering the named function tools.
func chatBody(t *testing.T, tools ...string) []byte {
	t.Helper()
	req := map[string]any{
		"model":    "echo",
		"messages": []map[string]any{{"role": "user", "content": "hello"}},
	}
	var specs []map[string]any
	for _, name := range tools {
		specs = append(specs, map[string]any{"type": "function", "function": map[string]any{
			"name": name, "parameters": map[string]any{"type": "object"},
		}})
	}
	if len(specs) > 0 {
		req["tools"] = specs
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chatResult is what the client saw of one chat request.
type chatResult struct {
	status    int
	code      string
	body      []byte
	requestID string
}

// postChat sends body to the gateway's chat endpoint with an optional
// bearer token.
func postChat(t *testing.T, c *http.Client, url, token string, body []byte) chatResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/chat/completions: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	res := chatResult{status: resp.StatusCode, body: raw, requestID: resp.Header.Get("X-Request-Id")}
	if res.requestID == "" {
		t.Fatalf("response has no X-Request-Id header")
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("status %d body %q is not the OpenAI error shape: %v", resp.StatusCode, raw, err)
		}
		res.code = e.Error.Code
	}
	return res
}

// logRow is the part of an inference-log event the identity tests check.
type logRow struct {
	Subject    string
	Kind       string
	Team       string
	User       string
	AgentChain []string
	Status     int
	Allowed    bool
	DenyCode   string
}

// readInferenceLog returns the JSON-lines inference log by request id; a
// request logged twice fails the test.
func readInferenceLog(t *testing.T, path string) map[string]logRow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("inference log: %v", err)
	}
	defer f.Close()
	out := map[string]logRow{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev analytics.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if _, dup := out[ev.RequestID]; dup {
			t.Errorf("request %s logged twice", ev.RequestID)
		}
		out[ev.RequestID] = logRow{Subject: ev.Subject, Kind: ev.Kind, Team: ev.Team, User: ev.User,
			AgentChain: ev.AgentChain, Status: ev.Status, Allowed: ev.Allowed, DenyCode: ev.DenyCode}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

// TestAgentChains proves, through the real gateway, that delegation tokens
// from an OIDC issuer become the policy's identity.chain: allowed multi-hop
// chains reach the upstream, chains the agents policy forbids get its 403,
// forged tokens get one uniform 401, and every request's inference-log row
// names the chain and the original user.
func TestAgentChains(t *testing.T) {
	iss := startOIDCIssuer(t)
	simSrv, simURL := startSim(t)
	bundle := bundleWithData(t, "data/agents/data.json", map[string]any{
		"max_chain_depth":      2,
		"require_registration": false,
		"agents": map[string]any{
			"agent:planner": map[string]any{"act_for": []string{"*@acme.example"}, "models": []string{"echo"}, "tools": []string{"search"}},
			"agent:coder":   map[string]any{"act_for": []string{"agent:planner"}},
		},
	})
	logPath := filepath.Join(t.TempDir(), "events.jsonl")

	cfg, err := Parse([]byte("{}"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Policy.Bundle = bundle
	cfg.Auth.OIDC.Issuers = []auth.IssuerConfig{{
		Issuer:          iss.url,
		Audiences:       []string{"tollgate"},
		Algorithms:      []string{"RS256"},
		Org:             "acme",
		TeamFromGroups:  map[string]string{"ml-eng": "ml"},
		RolesFromGroups: map[string][]string{"ml-eng": {"developer"}},
		Delegation:      auth.DelegationConfig{Enabled: true},
	}}
	cfg.Providers = []provider.Config{{Name: "sim", Kind: "openai", BaseURL: simURL, Models: []string{"echo", "gpt-4o"}, Timeout: "30s"}}
	cfg.Quota = quota.Config{Backend: "memory"}
	cfg.Analytics.File = logPath
	cfg.Analytics.Writer.FlushInterval = 50 * time.Millisecond
	gw := runGateway(t, cfg, "http")
	client := newLoopbackClient(t, nil)

	const ana = "ana@acme.example"
	want := map[string]logRow{}
	userRow := func(status int, deny string, chain ...string) logRow {
		r := logRow{Subject: ana, Kind: "user", Team: "ml", AgentChain: chain, Status: status, Allowed: status == http.StatusOK, DenyCode: deny}
		if len(chain) > 0 {
			r.User = chain[0]
		}
		return r
	}

	chains := []struct {
		name   string
		act    map[string]any
		tools  []string
		status int
		code   string
		row    logRow
	}{
		{"user alone", nil, nil, 200, "", userRow(200, "")},
		{"planner for ana", actors("agent:planner"), nil, 200, "", userRow(200, "", ana, "agent:planner")},
		{"planner for ana with its tool", actors("agent:planner"), []string{"search"}, 200, "", userRow(200, "", ana, "agent:planner")},
		{"coder for planner for ana", actors("agent:planner", "agent:coder"), nil, 200, "", userRow(200, "", ana, "agent:planner", "agent:coder")},
		{"coder directly for ana", actors("agent:coder"), nil, 403, "agent_not_allowed", userRow(403, "agent_not_allowed", ana, "agent:coder")},
		{"planner offers shell", actors("agent:planner"), []string{"search", "shell"}, 403, "tool_not_allowed", userRow(403, "tool_not_allowed", ana, "agent:planner")},
		{"three hops", actors("agent:planner", "agent:coder", "agent:reviewer"), nil, 403, "agent_chain_too_deep",
			userRow(403, "agent_chain_too_deep", ana, "agent:planner", "agent:coder", "agent:reviewer")},
	}
	for _, tc := range chains {
		t.Run(tc.name, func(t *testing.T) {
			tok := iss.sign(t, iss.kid, iss.claims(ana, tc.act, nil))
			res := postChat(t, client, gw.url, tok, chatBody(t, tc.tools...))
			if res.status != tc.status || res.code != tc.code {
				t.Fatalf("got %d %q (%s), want %d %q", res.status, res.code, res.body, tc.status, tc.code)
			}
			want[res.requestID] = tc.row
		})
	}

	// Forged and unacceptable tokens: each is refused with the same 401,
	// for the reason the metric names (so the check that fired is the
	// intended one, not an earlier parse error).
	valid := iss.sign(t, iss.kid, iss.claims(ana, actors("agent:planner"), nil))
	parts := strings.Split(valid, ".")
	tamperedClaims, err := json.Marshal(iss.claims(ana, actors("agent:planner"), map[string]any{"groups": []string{"admins"}}))
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&iss.priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	noSig := func(string) []byte { return nil }
	attacks := []struct {
		name, token, reason string
	}{
		{"alg none", rawToken(t, map[string]any{"alg": "none", "typ": "JWT"}, iss.claims(ana, nil, nil), noSig), auth.ReasonTokenMalformed},
		{"alg none with a signature", rawToken(t, map[string]any{"alg": "none", "typ": "JWT"}, iss.claims(ana, nil, nil),
			func(string) []byte { return []byte("sig") }), auth.ReasonTokenAlgorithm},
		{"HS256 keyed with the public key", rawToken(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": iss.kid}, iss.claims(ana, nil, nil),
			func(in string) []byte {
				m := hmac.New(sha256.New, pubPEM)
				m.Write([]byte(in))
				return m.Sum(nil)
			}), auth.ReasonTokenAlgorithm},
		{"expired", iss.sign(t, iss.kid, iss.claims(ana, nil, map[string]any{
			"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix(),
		})), auth.ReasonTokenExpired},
		{"wrong audience", iss.sign(t, iss.kid, iss.claims(ana, nil, map[string]any{"aud": "billing"})), auth.ReasonTokenAudience},
		{"unknown kid", iss.sign(t, "k-unpublished", iss.claims(ana, nil, nil)), auth.ReasonTokenKID},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedClaims) + "." + parts[2], auth.ReasonTokenSignature},
		{"stripped signature", parts[0] + "." + parts[1] + ".", auth.ReasonTokenMalformed},
	}
	// Every 401 must look like the one for no credentials at all.
	missing := postChat(t, client, gw.url, "", chatBody(t))
	if missing.status != http.StatusUnauthorized {
		t.Fatalf("no credentials: got %d %s, want 401", missing.status, missing.body)
	}
	want[missing.requestID] = logRow{Status: 401}
	for _, tc := range attacks {
		t.Run(tc.name, func(t *testing.T) {
			before := gw.authFailures(t)["oidc/"+tc.reason]
			res := postChat(t, client, gw.url, tc.token, chatBody(t))
			if res.status != http.StatusUnauthorized {
				t.Fatalf("got %d %s, want 401", res.status, res.body)
			}
			if !bytes.Equal(res.body, missing.body) {
				t.Errorf("body %s differs from the 401 for no credentials %s", res.body, missing.body)
			}
			if got := gw.authFailures(t)["oidc/"+tc.reason]; got != before+1 {
				t.Errorf("tollgate_auth_failures_total{method=oidc,reason=%s} went from %d to %d, want +1 (all: %v)", tc.reason, before, got, gw.authFailures(t))
			}
			want[res.requestID] = logRow{Status: 401}
		})
	}

	allowed := 0
	for _, w := range want {
		if w.Allowed {
			allowed++
		}
	}
	if got := simSrv.Requests(); got != int64(allowed) {
		t.Errorf("upstream got %d requests, want %d (only the allowed ones)", got, allowed)
	}

	gw.stop(t)
	got := readInferenceLog(t, logPath)
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("request %s (%+v) missing from the inference log", id, w)
			continue
		}
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("request %s: inference-log row mismatch (-want +got):\n%s", id, diff)
		}
	}
	if len(got) != len(want) {
		t.Errorf("inference log has %d rows, want %d", len(got), len(want))
	}
}
