// Package bundletest builds OPA bundle archives, signed or not, and serves
// them over HTTP, for tests of code that loads bundles.
//
// Archives are made with OPA's own bundle writer and signer, so they are
// what `opa build` (with --signing-key) makes:
//
//	key := bundletest.NewKey(t, "release", "ES256")
//	tgz := bundletest.Build(t, map[string]string{
//		"authz/authz.rego":     "package tollgate.authz\n...",
//		"data/teams/data.json": `{"ml": {}}`,
//	}, bundletest.Options{Revision: "v1", SignWith: key})
//	srv := bundletest.NewServer(t)
//	srv.Set(tgz)
package bundletest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/util"
)

// Key is a key pair made for one test.
type Key struct {
	// ID is the key id (JWT kid) signatures carry.
	ID string
	// Algorithm is the JWS algorithm, e.g. RS256 or ES256.
	Algorithm string
	// PrivatePEM and PublicPEM are the PKCS #8 and PKIX encodings.
	PrivatePEM []byte
	PublicPEM  []byte
}

// NewKey generates a key pair for alg: RS*/PS* give RSA 2048, ES256 P-256,
// ES384 P-384, ES512 P-521.
func NewKey(t testing.TB, id, alg string) *Key {
	t.Helper()
	var (
		priv any
		pub  any
	)
	switch {
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatalf("generate RSA key: %v", err)
		}
		priv, pub = k, &k.PublicKey
	case strings.HasPrefix(alg, "ES"):
		curve := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		if curve == nil {
			t.Fatalf("NewKey: unknown algorithm %q", alg)
		}
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatalf("generate EC key: %v", err)
		}
		priv, pub = k, &k.PublicKey
	default:
		t.Fatalf("NewKey: unsupported algorithm %q (want RS*, PS* or ES*)", alg)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatalf("marshal private key: %v", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("marshal public key: %v", err)
	}
	return &Key{
		ID:         id,
		Algorithm:  alg,
		PrivatePEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}),
		PublicPEM:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
	}
}

// WritePublicKey writes the public key as PEM into dir and returns the
// file's path, for a public_key_file setting.
func (k *Key) WritePublicKey(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, k.ID+".pub.pem")
	if err := os.WriteFile(p, k.PublicPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Options shape an archive.
type Options struct {
	// Revision and Roots go into the manifest; empty leaves them out.
	Revision string
	Roots    []string
	// SignWith signs the bundle (.signatures.json) as opa build
	// --signing-key does; nil leaves it unsigned.
	SignWith *Key
	// Scope is the signature's scope claim.
	Scope string
	// TamperAfterSigning replaces or adds files after the signature was
	// made, to test that verification catches it.
	TamperAfterSigning map[string]string
}

// Build returns a .tar.gz OPA bundle of files (slash paths relative to the
// bundle root). .rego files become modules, data.json and data.yaml files
// data at their folder's path; other files are left out, as opa build does.
func Build(t testing.TB, files map[string]string, opts Options) []byte {
	t.Helper()
	b := assemble(t, files, opts)
	if k := opts.SignWith; k != nil {
		sc := bundle.NewSigningConfig(string(k.PrivatePEM), k.Algorithm, "")
		if opts.Scope != "" {
			claims := filepath.Join(t.TempDir(), "claims.json")
			if err := os.WriteFile(claims, []byte(`{"scope":`+quote(opts.Scope)+`,"keyid":`+quote(k.ID)+`}`), 0o600); err != nil {
				t.Fatal(err)
			}
			sc.ClaimsPath = claims
		}
		if err := b.GenerateSignature(sc, k.ID, true); err != nil {
			t.Fatalf("sign bundle: %v", err)
		}
	}
	if len(opts.TamperAfterSigning) > 0 {
		tampered := maps.Clone(files)
		maps.Copy(tampered, opts.TamperAfterSigning)
		sigs := b.Signatures
		b = assemble(t, tampered, opts)
		b.Signatures = sigs
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).UseModulePath(true).DisableFormat(true).Write(b); err != nil {
		t.Fatalf("write bundle: %v", err)
	}
	return buf.Bytes()
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

func assemble(t testing.TB, files map[string]string, opts Options) bundle.Bundle {
	t.Helper()
	b := bundle.Bundle{Data: map[string]any{}}
	b.Manifest.Revision = opts.Revision
	if opts.Roots != nil {
		roots := slices.Clone(opts.Roots)
		b.Manifest.Roots = &roots
	}
	b.Manifest.SetRegoVersion(ast.RegoV1)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		content := files[name]
		base := path.Base(name)
		switch {
		case strings.HasSuffix(name, ".rego"):
			p := "/" + strings.TrimPrefix(name, "/")
			// Not parsed: a test may want a broken module in the archive.
			b.Modules = append(b.Modules, bundle.ModuleFile{URL: p, Path: p, Raw: []byte(content)})
		case base == "data.json" || base == "data.yaml" || base == "data.yml":
			var v any
			if err := util.Unmarshal([]byte(content), &v); err != nil {
				t.Fatalf("bundletest: %s: %v", name, err)
			}
			dir := strings.Trim(path.Dir(name), "/.")
			if dir == "" {
				obj, ok := v.(map[string]any)
				if !ok {
					t.Fatalf("bundletest: %s: top-level data must be an object", name)
				}
				maps.Copy(b.Data, obj)
				continue
			}
			insert(b.Data, strings.Split(dir, "/"), v)
		}
	}
	return b
}

func insert(m map[string]any, keys []string, v any) {
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	last := keys[len(keys)-1]
	if old, ok := m[last].(map[string]any); ok {
		if obj, ok := v.(map[string]any); ok {
			maps.Copy(old, obj)
			return
		}
	}
	m[last] = v
}

// WriteFileAtomic writes data to path through a temporary file and a
// rename, as deploy tools do, so a reader never sees half a file.
func WriteFileAtomic(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// Server is a bundle server on 127.0.0.1: it answers GET with the current
// archive and an ETag, and 304 to a matching If-None-Match.
type Server struct {
	URL string

	srv *httptest.Server

	mu       sync.Mutex
	bodies   [][]byte
	next     int
	status   int
	requests []Request
}

// Request is what the server saw of one request.
type Request struct {
	IfNoneMatch string
	Header      http.Header
	// Status is the answer's status code.
	Status int
}

// NewServer starts a server that answers 404 until Set; it stops at the
// end of the test.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + "/bundles/tollgate.tar.gz"
	t.Cleanup(s.srv.Close)
	return s
}

// Set serves body from now on.
func (s *Server) Set(body []byte) { s.Rotate(body) }

// Rotate serves the bodies in turn, one per request (a request whose
// If-None-Match matches its turn's body gets 304).
func (s *Server) Rotate(bodies ...[]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies, s.next = bodies, 0
}

// SetStatus makes every request fail with code; 0 serves bundles again.
func (s *Server) SetStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

// Requests returns the requests seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ETag is the entity tag the server sends for body.
func ETag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	req := Request{IfNoneMatch: r.Header.Get("If-None-Match"), Header: r.Header.Clone()}
	var body []byte
	status := s.status
	if status == 0 {
		if len(s.bodies) == 0 {
			status = http.StatusNotFound
		} else {
			body = s.bodies[s.next%len(s.bodies)]
			s.next++
			status = http.StatusOK
			if req.IfNoneMatch != "" && req.IfNoneMatch == ETag(body) {
				status = http.StatusNotModified
			}
		}
	}
	req.Status = status
	s.requests = append(s.requests, req)
	s.mu.Unlock()

	switch status {
	case http.StatusOK:
		w.Header().Set("ETag", ETag(body))
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(body)
	case http.StatusNotModified:
		w.Header().Set("ETag", req.IfNoneMatch)
		w.WriteHeader(status)
	default:
		http.Error(w, http.StatusText(status), status)
	}
}
