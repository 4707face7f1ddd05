package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// Defaults of the auth section.
const (
	DefaultStoreCacheTTL  = 2 * time.Second
	DefaultStorePrefix    = "tollgate"
	DefaultClockSkew      = 30 * time.Second
	DefaultTokenCacheTTL  = 60 * time.Second
	DefaultTokenCacheSize = 10000
	DefaultMaxTokenBytes  = 8 << 10
	DefaultMaxChainDepth  = 4
	// MaxChainDepthLimit caps delegation.max_depth: the policy decides the
	// real limit, this one only bounds the work a token can cause.
	MaxChainDepthLimit = 16
	// MaxClockSkew caps oidc.clock_skew.
	MaxClockSkew = 5 * time.Minute
)

// DefaultAlgorithms are the JWS algorithms accepted when an issuer names
// none. Only asymmetric algorithms are allowed at all: an HMAC algorithm
// would let anyone holding the issuer's public key mint tokens.
var DefaultAlgorithms = []string{"RS256", "ES256"}

var asymmetricAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

// Config is the auth section of the configuration. Each credential kind is
// enabled by configuring it: API keys by api_keys or key_store, bearer JWTs
// by oidc.issuers, client certificates by mtls.ca_files.
type Config struct {
	// APIKeys are keys defined in the configuration file.
	APIKeys []KeyConfig `yaml:"api_keys"`
	// KeyStore keeps API keys in Redis, managed by `tollgate keys`.
	KeyStore StoreConfig `yaml:"key_store"`
	// OIDC verifies bearer JWTs from trusted issuers.
	OIDC OIDCConfig `yaml:"oidc"`
	// MTLS authenticates TLS client certificates.
	MTLS MTLSConfig `yaml:"mtls"`
}

// StoreConfig says where the Redis key store lives.
type StoreConfig struct {
	Redis RedisConfig `yaml:"redis"`
	// CacheTTL bounds how long a replica trusts a key record it read from
	// Redis, hence how long a revoked key keeps working ("2s").
	CacheTTL string `yaml:"cache_ttl"`
}

// RedisConfig says how to reach Redis.
type RedisConfig struct {
	// Addr is host:port; empty disables the key store.
	Addr string `yaml:"addr"`
	// Password is secret: it is redacted when logged.
	Password string `yaml:"password"`
	DB       int    `yaml:"db"`
	// Prefix starts the key store's Redis key (default "tollgate").
	Prefix string `yaml:"prefix"`
}

// LogValue redacts the password.
func (c RedisConfig) LogValue() slog.Value {
	pw := ""
	if c.Password != "" {
		pw = "REDACTED"
	}
	return slog.GroupValue(slog.String("addr", c.Addr), slog.String("password", pw),
		slog.Int("db", c.DB), slog.String("prefix", c.Prefix))
}

// Enabled reports whether a key store is configured.
func (c StoreConfig) Enabled() bool { return c.Redis.Addr != "" }

// OIDCConfig configures bearer JWT verification.
type OIDCConfig struct {
	Issuers []IssuerConfig `yaml:"issuers"`
	// ClockSkew is the leeway for exp, nbf and iat ("30s", at most 5m).
	ClockSkew string `yaml:"clock_skew"`
	// CacheTTL bounds how long a verified token is remembered ("60s"); an
	// entry never outlives the token's exp.
	CacheTTL string `yaml:"cache_ttl"`
	// CacheSize bounds the number of remembered tokens.
	CacheSize int `yaml:"cache_size"`
	// MaxTokenBytes rejects longer tokens before any parsing (8192).
	MaxTokenBytes int `yaml:"max_token_bytes"`
}

// IssuerConfig is one trusted token issuer.
type IssuerConfig struct {
	// Issuer is the exact iss value and the discovery base URL.
	Issuer string `yaml:"issuer"`
	// Audiences: a token's aud must contain one of them.
	Audiences []string `yaml:"audiences"`
	// JWKSURL skips discovery when set.
	JWKSURL string `yaml:"jwks_url"`
	// Algorithms allowed for signatures; default RS256 and ES256.
	Algorithms []string `yaml:"algorithms"`
	// Kind of the token's subject: user (default), service or agent.
	Kind string `yaml:"kind"`
	// Org is a fixed organisation for the issuer's principals, used when
	// claims.org is empty or absent from the token.
	Org string `yaml:"org"`
	// Claims says where the principal's fields are in the token.
	Claims ClaimsConfig `yaml:"claims"`
	// TeamFromGroups maps a group to a team; the first of the token's
	// groups found here wins. Used when claims.team yields nothing.
	TeamFromGroups map[string]string `yaml:"team_from_groups"`
	// RolesFromGroups adds roles for each group the token carries.
	RolesFromGroups map[string][]string `yaml:"roles_from_groups"`
	// Delegation accepts RFC 8693 act claims from this issuer.
	Delegation DelegationConfig `yaml:"delegation"`
}

// ClaimsConfig names claim paths: a claim name, dotted for nested objects,
// with an optional [n] index: "sub", "realm_access.roles", "groups[0]".
type ClaimsConfig struct {
	Subject string `yaml:"subject"` // default "sub"
	Groups  string `yaml:"groups"`  // default "groups"
	Team    string `yaml:"team"`
	Org     string `yaml:"org"`
	Roles   string `yaml:"roles"`
	// Kind, when set, names a claim holding user, service or agent.
	Kind string `yaml:"kind"`
	// Labels maps a label name to a claim path, e.g. {email: email}.
	Labels map[string]string `yaml:"labels"`
}

// DelegationConfig governs on-behalf-of tokens.
type DelegationConfig struct {
	// Enabled accepts tokens with an act claim; without it such tokens are
	// refused, never silently treated as the subject's own.
	Enabled bool `yaml:"enabled"`
	// MaxDepth is a hard cap on the number of actors (default 4, at most
	// 16); the policy decides the real limit.
	MaxDepth int `yaml:"max_depth"`
	// ActorKind is the kind of every actor in the chain (default agent).
	ActorKind string `yaml:"actor_kind"`
}

// MTLSConfig configures client-certificate authentication.
type MTLSConfig struct {
	// CAFiles are PEM files of the CAs that sign client certificates.
	CAFiles []string `yaml:"ca_files"`
	// Mode is "optional" (default: verify a certificate when given, so that
	// keys and tokens keep working) or "require".
	Mode string `yaml:"mode"`
	// Principals map certificate principals (SPIFFE ID or subject CN) to
	// identities; the first match wins.
	Principals []PrincipalRule `yaml:"principals"`
	// AllowUnmapped lets certificates that match no rule in, with no team
	// and no roles; by default they are refused.
	AllowUnmapped bool `yaml:"allow_unmapped"`
}

// Enabled reports whether client certificates are accepted.
func (c MTLSConfig) Enabled() bool { return len(c.CAFiles) > 0 }

// PrincipalRule maps certificate principals to an identity.
type PrincipalRule struct {
	// Match is a SPIFFE ID or CN; a trailing "*" matches any suffix
	// ("spiffe://acme.org/ns/ml/*").
	Match string   `yaml:"match"`
	Kind  string   `yaml:"kind"`
	Team  string   `yaml:"team"`
	Org   string   `yaml:"org"`
	Roles []string `yaml:"roles"`
}

func parseDuration(errs *[]error, path, s string, def, max time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		*errs = append(*errs, fmt.Errorf("%s: %q is not a duration (want e.g. \"30s\")", path, s))
		return def
	}
	if max > 0 && d > max {
		*errs = append(*errs, fmt.Errorf("%s: %s is longer than the limit %s", path, d, max))
		return max
	}
	return d
}

func validKind(k string) bool {
	switch k {
	case "", "user", "service", "agent":
		return true
	}
	return false
}

// Validate reports every problem in the section, citing YAML paths.
func (c *Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, k := range c.APIKeys {
		p := fmt.Sprintf("auth.api_keys[%d]", i)
		if k.ID == "" {
			errs = append(errs, fmt.Errorf("%s.id: empty; run 'tollgate keys new' and paste the line it prints", p))
		} else if seen[k.ID] {
			errs = append(errs, fmt.Errorf("%s.id: %q is used twice; every key needs its own id", p, k.ID))
		}
		seen[k.ID] = true
		if _, err := decodeHash(k.Hash); err != nil {
			errs = append(errs, fmt.Errorf("%s.hash: %v", p, err))
		}
		if k.Subject == "" {
			errs = append(errs, fmt.Errorf("%s.subject: empty; name the user or service that owns the key", p))
		}
		if !validKind(k.Kind) {
			errs = append(errs, fmt.Errorf("%s.kind: %q is not one of user, service, agent", p, k.Kind))
		}
		if k.ExpiresAt != "" {
			if _, err := time.Parse(time.RFC3339, k.ExpiresAt); err != nil {
				errs = append(errs, fmt.Errorf("%s.expires_at: %q is not an RFC 3339 time (want e.g. \"2027-01-31T00:00:00Z\")", p, k.ExpiresAt))
			}
		}
	}
	if c.KeyStore.Enabled() {
		if _, _, err := net.SplitHostPort(c.KeyStore.Redis.Addr); err != nil {
			errs = append(errs, fmt.Errorf("auth.key_store.redis.addr: %q is not host:port", c.KeyStore.Redis.Addr))
		}
	}
	parseDuration(&errs, "auth.key_store.cache_ttl", c.KeyStore.CacheTTL, DefaultStoreCacheTTL, time.Minute)
	errs = append(errs, c.OIDC.validate())
	errs = append(errs, c.MTLS.validate())
	return errors.Join(errs...)
}

func (c *OIDCConfig) validate() error {
	var errs []error
	parseDuration(&errs, "auth.oidc.clock_skew", c.ClockSkew, DefaultClockSkew, MaxClockSkew)
	parseDuration(&errs, "auth.oidc.cache_ttl", c.CacheTTL, DefaultTokenCacheTTL, time.Hour)
	if c.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("auth.oidc.cache_size: %d is negative", c.CacheSize))
	}
	if c.MaxTokenBytes < 0 || c.MaxTokenBytes > 64<<10 {
		errs = append(errs, fmt.Errorf("auth.oidc.max_token_bytes: %d is out of range (want 1..65536, default 8192)", c.MaxTokenBytes))
	}
	seen := map[string]bool{}
	for i, is := range c.Issuers {
		p := fmt.Sprintf("auth.oidc.issuers[%d]", i)
		if err := checkIssuerURL(is.Issuer); err != nil {
			errs = append(errs, fmt.Errorf("%s.issuer: %v", p, err))
		} else if seen[is.Issuer] {
			errs = append(errs, fmt.Errorf("%s.issuer: %q is configured twice", p, is.Issuer))
		}
		seen[is.Issuer] = true
		if is.JWKSURL != "" {
			if err := checkIssuerURL(is.JWKSURL); err != nil {
				errs = append(errs, fmt.Errorf("%s.jwks_url: %v", p, err))
			}
		}
		if len(is.Audiences) == 0 {
			errs = append(errs, fmt.Errorf("%s.audiences: empty; name the audience your issuer puts in tokens for Tollgate", p))
		}
		for j, a := range is.Audiences {
			if a == "" {
				errs = append(errs, fmt.Errorf("%s.audiences[%d]: empty", p, j))
			}
		}
		for j, a := range is.Algorithms {
			if !asymmetricAlgorithms[a] {
				errs = append(errs, fmt.Errorf("%s.algorithms[%d]: %q is not allowed (want one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA; HMAC and none are never accepted)", p, j, a))
			}
		}
		if !validKind(is.Kind) {
			errs = append(errs, fmt.Errorf("%s.kind: %q is not one of user, service, agent", p, is.Kind))
		}
		for name, path := range map[string]string{"subject": is.Claims.Subject, "groups": is.Claims.Groups,
			"team": is.Claims.Team, "org": is.Claims.Org, "roles": is.Claims.Roles, "kind": is.Claims.Kind} {
			if path == "" {
				continue
			}
			if _, err := parseClaimPath(path); err != nil {
				errs = append(errs, fmt.Errorf("%s.claims.%s: %v", p, name, err))
			}
		}
		for name, path := range is.Claims.Labels {
			if _, err := parseClaimPath(path); err != nil {
				errs = append(errs, fmt.Errorf("%s.claims.labels.%s: %v", p, name, err))
			}
		}
		d := is.Delegation
		if d.MaxDepth < 0 || d.MaxDepth > MaxChainDepthLimit {
			errs = append(errs, fmt.Errorf("%s.delegation.max_depth: %d is out of range (want 1..%d; the policy decides the real limit)", p, d.MaxDepth, MaxChainDepthLimit))
		}
		if !validKind(d.ActorKind) {
			errs = append(errs, fmt.Errorf("%s.delegation.actor_kind: %q is not one of user, service, agent", p, d.ActorKind))
		}
	}
	return errors.Join(errs...)
}

// checkIssuerURL wants https, or http on a loopback host (tests, sidecars).
func checkIssuerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an absolute URL without query or fragment", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("%q must use https (plain http only on a loopback host)", s)
}

func (c *MTLSConfig) validate() error {
	var errs []error
	switch c.Mode {
	case "", "optional", "require":
	default:
		errs = append(errs, fmt.Errorf("auth.mtls.mode: %q is not optional or require", c.Mode))
	}
	if !c.Enabled() && (len(c.Principals) > 0 || c.Mode != "") {
		errs = append(errs, errors.New("auth.mtls.ca_files: empty; client certificates need the CAs that sign them"))
	}
	for i, r := range c.Principals {
		p := fmt.Sprintf("auth.mtls.principals[%d]", i)
		if r.Match == "" || strings.Contains(strings.TrimSuffix(r.Match, "*"), "*") {
			errs = append(errs, fmt.Errorf("%s.match: %q must be a SPIFFE ID or CN, optionally ending in *", p, r.Match))
		}
		if !validKind(r.Kind) {
			errs = append(errs, fmt.Errorf("%s.kind: %q is not one of user, service, agent", p, r.Kind))
		}
	}
	return errors.Join(errs...)
}
