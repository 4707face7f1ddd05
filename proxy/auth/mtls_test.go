package auth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/engine"
)

// mtlsFixture is a TLS server on loopback that authenticates with client
// certificates issued by a trusted CA.
type mtlsFixture struct {
	trusted, unknown *testCA
	srv              *httptest.Server
	handled          atomic.Int32
}

func newMTLSFixture(t *testing.T, mode string) *mtlsFixture {
	t.Helper()
	f := &mtlsFixture{trusted: newCA(t, "tollgate test CA"), unknown: newCA(t, "some other CA")}
	cfg := Config{MTLS: MTLSConfig{
		CAFiles: []string{f.trusted.file(t)},
		Mode:    mode,
		Principals: []PrincipalRule{
			{Match: "spiffe://acme.org/ns/ml/*", Kind: "agent", Team: "ml", Org: "acme", Roles: []string{"developer"}},
			{Match: "billing-batch", Kind: "service", Team: "finance"},
		},
	}}
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, serverKey, serverDER := f.trusted.issue(t, "gateway", nil, true)
	tc, err := ServerTLSConfig(cfg.MTLS, []tls.Certificate{{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}})
	if err != nil {
		t.Fatal(err)
	}
	h := authHandler(a)
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.handled.Add(1)
		h.ServeHTTP(w, r)
	}))
	// Refused handshakes are expected here.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.TLS = tc
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// client returns an HTTPS client trusting the fixture's CA and presenting
// the given certificate (none when der is nil).
func (f *mtlsFixture) client(t *testing.T, der []byte, key any) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(f.trusted.cert)
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if der != nil {
		// Present the certificate even when the server's list of acceptable
		// CAs does not name its issuer (Go's client would otherwise send
		// none), as an attacker would.
		cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tr := &http.Transport{TLSClientConfig: tc}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func (f *mtlsFixture) call(c *http.Client, bearerTok string) (int, engine.Identity, error) {
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL, nil)
	if bearerTok != "" {
		req.Header.Set("Authorization", "Bearer "+bearerTok)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, engine.Identity{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, engine.Identity{}, err
	}
	var id engine.Identity
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &id); err != nil {
			return 0, engine.Identity{}, err
		}
	}
	return resp.StatusCode, id, nil
}

func TestMTLS(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"require", "optional"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f := newMTLSFixture(t, mode)
			_, spiffeKey, spiffeDER := f.trusted.issue(t, "ignored-cn", []string{"spiffe://acme.org/ns/ml/sa/summarizer"}, false)
			_, cnKey, cnDER := f.trusted.issue(t, "billing-batch", nil, false)
			_, unmappedKey, unmappedDER := f.trusted.issue(t, "stranger", nil, false)
			_, rogueKey, rogueDER := f.unknown.issue(t, "billing-batch", nil, false)

			status, id, err := f.call(f.client(t, spiffeDER, spiffeKey), "")
			if err != nil || status != http.StatusOK {
				t.Fatalf("SPIFFE cert: status %d, err %v; want 200", status, err)
			}
			if id.Subject != "spiffe://acme.org/ns/ml/sa/summarizer" || id.Kind != "agent" || id.Team != "ml" || id.Auth != "mtls" {
				t.Errorf("SPIFFE identity: got %+v", id)
			}
			status, id, err = f.call(f.client(t, cnDER, cnKey), "")
			if err != nil || status != http.StatusOK {
				t.Fatalf("CN cert: status %d, err %v; want 200", status, err)
			}
			if id.Subject != "billing-batch" || id.Kind != "service" || id.Team != "finance" {
				t.Errorf("CN identity: got %+v", id)
			}
			status, _, err = f.call(f.client(t, unmappedDER, unmappedKey), "")
			if err != nil || status != http.StatusUnauthorized {
				t.Errorf("unmapped cert: status %d, err %v; want 401", status, err)
			}

			// A certificate from an unknown CA never gets through the
			// handshake, whatever the mode.
			before := f.handled.Load()
			if _, _, err := f.call(f.client(t, rogueDER, rogueKey), ""); err == nil {
				t.Error("unknown CA: request succeeded, want a TLS failure")
			}
			if f.handled.Load() != before {
				t.Error("unknown CA: the handler ran")
			}

			// No certificate: refused in the handshake when required, else
			// 401 (no credentials) from the handler.
			status, _, err = f.call(f.client(t, nil, nil), "")
			switch mode {
			case "require":
				if err == nil {
					t.Errorf("no cert, require: status %d, want a TLS failure", status)
				}
			case "optional":
				if err != nil || status != http.StatusUnauthorized {
					t.Errorf("no cert, optional: status %d, err %v; want 401", status, err)
				}
			}
		})
	}
}

func TestCertPrincipal(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "ca")
	tests := []struct {
		name    string
		cn      string
		uris    []string
		want    string
		wantErr bool
	}{
		{"spiffe wins over CN", "cn", []string{"spiffe://acme.org/w"}, "spiffe://acme.org/w", false},
		{"https URI ignored", "cn", []string{"https://acme.org/x"}, "cn", false},
		{"CN only", "cn", nil, "cn", false},
		{"two SPIFFE IDs", "cn", []string{"spiffe://a.org/x", "spiffe://b.org/y"}, "", true},
		{"no principal", "", nil, "", true},
		{"SPIFFE with query", "cn", []string{"spiffe://a.org/x?y=1"}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cert, _, _ := ca.issue(t, tc.cn, tc.uris, false)
			got, err := CertPrincipal(cert)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("CertPrincipal: got %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestMTLSUnverifiedPeerCertificates(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "ca")
	cert, _, _ := ca.issue(t, "billing-batch", nil, false)
	a, err := New(Config{MTLS: MTLSConfig{CAFiles: []string{ca.file(t)}, AllowUnmapped: true}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A listener configured to request but not verify certificates would
	// hand us PeerCertificates without VerifiedChains: never trust them.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	_, err = a.Authenticate(r)
	if got := reasonOf(t, err); got != ReasonCertUnverified {
		t.Errorf("reason: got %s, want %s", got, ReasonCertUnverified)
	}
	r.TLS.VerifiedChains = [][]*x509.Certificate{{cert, ca.cert}}
	id, err := a.Authenticate(r)
	if err != nil || id.Subject != "billing-batch" || id.Kind != "service" {
		t.Errorf("verified, allow_unmapped: got %+v, %v", id, err)
	}
}

func TestServerTLSConfigErrors(t *testing.T) {
	t.Parallel()
	if _, err := ServerTLSConfig(MTLSConfig{CAFiles: []string{"/nonexistent/ca.pem"}}, nil); err == nil {
		t.Error("missing CA file: got nil, want an error")
	}
	bad := (&testCA{pem: []byte("not pem")}).file(t)
	if _, err := ServerTLSConfig(MTLSConfig{CAFiles: []string{bad}}, nil); err == nil {
		t.Error("CA file without PEM: got nil, want an error")
	}
	tc, err := ServerTLSConfig(MTLSConfig{}, nil)
	if err != nil || tc.ClientAuth != tls.NoClientCert {
		t.Errorf("no mTLS: got %v, %v; want NoClientCert", tc.ClientAuth, err)
	}
}
