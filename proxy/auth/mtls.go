package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tollgate/tollgate/engine"
)

// ServerTLSConfig returns a TLS configuration for the gateway's listener
// with the server's certificates, verifying client certificates against
// the CAs of cfg: required when cfg.Mode is "require", else verified when
// given (so API keys and tokens keep working on the same listener).
// Without CAs in cfg no client certificate is asked for.
func ServerTLSConfig(cfg MTLSConfig, certs []tls.Certificate) (*tls.Config, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: certs,
		ClientAuth:   tls.NoClientCert,
	}
	if !cfg.Enabled() {
		return tc, nil
	}
	pool, err := loadCAs(cfg.CAFiles)
	if err != nil {
		return nil, err
	}
	tc.ClientCAs = pool
	tc.ClientAuth = tls.VerifyClientCertIfGiven
	if cfg.Mode == "require" {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

func loadCAs(files []string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("auth.mtls.ca_files[%d]: %w", i, err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("auth.mtls.ca_files[%d]: %s holds no PEM certificate", i, f)
		}
	}
	return pool, nil
}

// CertPrincipal returns the principal a client certificate names: its
// SPIFFE ID (the URI SAN with scheme spiffe; a certificate with several is
// refused, as the SPIFFE X.509-SVID spec demands exactly one), else its
// subject common name.
func CertPrincipal(cert *x509.Certificate) (string, error) {
	var spiffe string
	for _, u := range cert.URIs {
		if strings.EqualFold(u.Scheme, "spiffe") {
			if spiffe != "" {
				return "", errors.New("certificate has more than one SPIFFE ID")
			}
			if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
				return "", fmt.Errorf("malformed SPIFFE ID %q", u.String())
			}
			spiffe = u.String()
		}
	}
	if spiffe != "" {
		return spiffe, nil
	}
	if cn := cert.Subject.CommonName; cn != "" {
		return cn, nil
	}
	return "", errors.New("certificate has neither a SPIFFE ID nor a common name")
}

// certMapper maps verified client certificates to identities.
type certMapper struct {
	rules         []PrincipalRule
	allowUnmapped bool
}

func newCertMapper(cfg MTLSConfig) *certMapper {
	return &certMapper{rules: cfg.Principals, allowUnmapped: cfg.AllowUnmapped}
}

func (m *certMapper) rule(principal string) (PrincipalRule, bool) {
	for _, r := range m.rules {
		if prefix, ok := strings.CutSuffix(r.Match, "*"); ok {
			if strings.HasPrefix(principal, prefix) {
				return r, true
			}
		} else if r.Match == principal {
			return r, true
		}
	}
	return PrincipalRule{}, false
}

// identity returns the principal of a connection's verified client
// certificate. Only certificates the TLS stack verified against the
// configured CAs count: PeerCertificates alone prove nothing.
func (m *certMapper) identity(cs *tls.ConnectionState) (engine.Identity, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return engine.Identity{}, &Failure{Method: MethodMTLS, Reason: ReasonCertUnverified}
	}
	principal, err := CertPrincipal(cs.VerifiedChains[0][0])
	if err != nil {
		return engine.Identity{}, &Failure{Method: MethodMTLS, Reason: ReasonCertPrincipal, Cause: err}
	}
	r, ok := m.rule(principal)
	if !ok && !m.allowUnmapped {
		return engine.Identity{}, &Failure{Method: MethodMTLS, Reason: ReasonCertUnmapped,
			Cause: fmt.Errorf("no auth.mtls.principals rule matches %q", principal)}
	}
	kind := r.Kind
	if kind == "" {
		kind = "service"
	}
	roles := r.Roles
	if roles == nil {
		roles = []string{}
	}
	return engine.Identity{Subject: principal, Kind: kind, Auth: MethodMTLS, Team: r.Team, Org: r.Org,
		Roles: roles, Groups: []string{}}, nil
}
