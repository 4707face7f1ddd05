package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/quota"
)

// certAuthority signs certificates for the mTLS test.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCertAuthority(t *testing.T, name string) *certAuthority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certAuthority{cert: cert, key: key}
}

// leaf issues a certificate: for a server on 127.0.0.1, or for a client
// with common name cn and optional URI SANs.
func (ca *certAuthority) leaf(t *testing.T, cn string, server bool, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// writePEM writes PEM blocks of type typ to a new file in dir.
func writePEM(t *testing.T, dir, name, typ string, ders ...[]byte) string {
	t.Helper()
	var b []byte
	for _, der := range ders {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})...)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMTLS runs the gateway's TLS listener with client certificates
// required: a certificate from the configured CA whose SPIFFE ID is mapped
// gets through as that service; one from an unknown CA, and no certificate
// at all, never get an HTTP answer; a valid but unmapped one gets 401.
func TestMTLS(t *testing.T) {
	_, simURL := startSim(t)
	dir := t.TempDir()
	ca := newCertAuthority(t, "acme internal CA")
	rogue := newCertAuthority(t, "rogue CA")

	server := ca.leaf(t, "tollgate", true)
	keyDER, err := x509.MarshalPKCS8PrivateKey(server.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	const spiffeID = "spiffe://acme.example/ns/ml/sa/indexer"

	logPath := filepath.Join(dir, "events.jsonl")
	cfg, err := Parse([]byte("{}"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.TLS.CertFile = writePEM(t, dir, "server.pem", "CERTIFICATE", server.Certificate[0])
	cfg.Server.TLS.KeyFile = writePEM(t, dir, "server.key", "PRIVATE KEY", keyDER)
	cfg.Auth.MTLS = auth.MTLSConfig{
		CAFiles:    []string{writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.cert.Raw)},
		Mode:       "require",
		Principals: []auth.PrincipalRule{{Match: spiffeID, Kind: "service", Team: "ml", Org: "acme"}},
	}
	cfg.Providers = []provider.Config{{Name: "sim", Kind: "openai", BaseURL: simURL, Models: []string{"echo"}, Timeout: "30s"}}
	cfg.Quota = quota.Config{Backend: "memory"}
	cfg.Analytics.File = logPath
	cfg.Analytics.Writer.FlushInterval = 50 * time.Millisecond
	gw := runGateway(t, cfg, "https")

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	// clientFor presents cert whatever CAs the server asks for: Go's client
	// would otherwise withhold a certificate whose issuer the server's
	// CertificateRequest does not list, and never test the server's check.
	clientFor := func(cert *tls.Certificate) *http.Client {
		tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if cert != nil {
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		return newLoopbackClient(t, tc)
	}
	leaf := func(ca *certAuthority, cn string, uris ...string) *tls.Certificate {
		c := ca.leaf(t, cn, false, uris...)
		return &c
	}
	want := map[string]logRow{}

	t.Run("mapped SPIFFE ID", func(t *testing.T) {
		res := postChat(t, clientFor(leaf(ca, "indexer", spiffeID)), gw.url, "", chatBody(t))
		if res.status != http.StatusOK {
			t.Fatalf("got %d %s, want 200", res.status, res.body)
		}
		want[res.requestID] = logRow{Subject: spiffeID, Kind: "service", Team: "ml", Status: 200, Allowed: true}
	})

	t.Run("unmapped principal from the trusted CA", func(t *testing.T) {
		res := postChat(t, clientFor(leaf(ca, "stranger", "spiffe://acme.example/ns/web/sa/frontend")), gw.url, "", chatBody(t))
		if res.status != http.StatusUnauthorized {
			t.Fatalf("got %d %s, want 401", res.status, res.body)
		}
		if got := gw.authFailures(t)["mtls/"+auth.ReasonCertUnmapped]; got != 1 {
			t.Errorf("tollgate_auth_failures_total{method=mtls,reason=%s} = %d, want 1", auth.ReasonCertUnmapped, got)
		}
		want[res.requestID] = logRow{Status: 401}
	})

	// The listener refuses these in the handshake: the client sees the
	// server's TLS alert and no request reaches the gateway's handler.
	refused := []struct {
		name  string
		cert  *tls.Certificate
		alert string
	}{
		{"certificate from an unknown CA", leaf(rogue, "indexer", spiffeID), "unknown certificate authority"},
		{"no certificate", nil, "certificate required"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, gw.url+"/v1/chat/completions", strings.NewReader(string(chatBody(t))))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := clientFor(tc.cert).Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got HTTP %d, want the TLS handshake refused", resp.StatusCode)
			}
			if !strings.Contains(err.Error(), "tls: "+tc.alert) {
				t.Fatalf("err = %v, want the TLS alert %q", err, tc.alert)
			}
		})
	}

	gw.stop(t)
	got := readInferenceLog(t, logPath)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inference log mismatch (-want +got):\n%s", diff)
	}
}
