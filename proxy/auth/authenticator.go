package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/engine"
)

// Credential kinds, as in engine.Identity.Auth and Failure.Method.
const (
	MethodAPIKey = "api_key"
	MethodOIDC   = "oidc"
	MethodMTLS   = "mtls"
)

// Failure reasons. They are for logs and metrics (a bounded set), never for
// the caller, who only ever sees ErrUnauthenticated.
const (
	ReasonMissing          = "missing_credentials"
	ReasonScheme           = "unsupported_scheme"
	ReasonMethodDisabled   = "method_disabled"
	ReasonKeyMalformed     = "key_malformed"
	ReasonKeyUnknown       = "key_unknown"
	ReasonKeySecret        = "key_secret_mismatch"
	ReasonKeyDisabled      = "key_disabled"
	ReasonKeyRevoked       = "key_revoked"
	ReasonKeyExpired       = "key_expired"
	ReasonKeyStore         = "key_store_unavailable"
	ReasonTokenTooLarge    = "token_too_large"
	ReasonTokenMalformed   = "token_malformed"
	ReasonTokenAlgorithm   = "token_algorithm"
	ReasonTokenHeaderKey   = "token_header_key"
	ReasonTokenIssuer      = "token_issuer_unknown"
	ReasonIssuerDown       = "issuer_unavailable"
	ReasonTokenKID         = "token_kid_unknown"
	ReasonTokenSignature   = "token_signature"
	ReasonTokenAudience    = "token_audience"
	ReasonTokenExpired     = "token_expired"
	ReasonTokenNotYetValid = "token_not_yet_valid"
	ReasonTokenClaims      = "token_claims"
	ReasonDelegation       = "delegation_refused"
	ReasonChainTooDeep     = "delegation_chain_too_deep"
	ReasonCertUnverified   = "cert_unverified"
	ReasonCertPrincipal    = "cert_principal"
	ReasonCertUnmapped     = "cert_unmapped"
)

// Failure is the error of a refused authentication. Its message is always
// that of ErrUnauthenticated, and errors.Is(f, ErrUnauthenticated) holds, so
// a caller that shows errors to clients reveals nothing; the fields say what
// failed, for the log. They never hold a key, token or other secret.
type Failure struct {
	// Method is the credential kind that was tried, or "" when none was.
	Method string
	// Reason is one of the Reason constants.
	Reason string
	// KeyID is the presented API key's id, when it was shaped like a key.
	KeyID string
	// Issuer is the token's issuer, when it was a configured one.
	Issuer string
	// Cause is the underlying error, if any.
	Cause error
}

func (f *Failure) Error() string { return ErrUnauthenticated.Error() }

// Is makes errors.Is(f, ErrUnauthenticated) true.
func (f *Failure) Is(target error) bool { return target == ErrUnauthenticated }

// LogValue gives the detail for the log.
func (f *Failure) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("method", f.Method), slog.String("reason", f.Reason)}
	if f.KeyID != "" {
		attrs = append(attrs, slog.String("key_id", f.KeyID))
	}
	if f.Issuer != "" {
		attrs = append(attrs, slog.String("issuer", f.Issuer))
	}
	if f.Cause != nil {
		attrs = append(attrs, slog.String("cause", f.Cause.Error()))
	}
	return slog.GroupValue(attrs...)
}

// Options are the dependencies of an Authenticator.
type Options struct {
	// Redis serves the key store; required when cfg.KeyStore is enabled.
	// The caller owns and closes it.
	Redis redis.UniversalClient
	// HTTPClient fetches discovery documents and key sets; default: a
	// client with a 10s timeout.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Authenticator turns a request's credentials into a principal. It is safe
// for concurrent use.
//
// A request's credential is, in order: the Authorization Bearer value (an
// API key when it starts with tg_, else a JWT), the X-Api-Key header, then
// a verified TLS client certificate. A credential that is presented and
// fails is a failure: the next kind is not tried, so that a bad key never
// degrades silently to a weaker identity.
type Authenticator struct {
	keys  *Keys
	store *KeyStore
	jwt   *jwtVerifier
	mtls  *certMapper
	now   func() time.Time
}

// New validates cfg and builds an Authenticator. It does no network I/O:
// issuers are discovered on first use (see Warm).
func New(cfg Config, opts Options) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	a := &Authenticator{now: opts.Now}
	if len(cfg.APIKeys) > 0 {
		a.keys = newKeys(cfg.APIKeys, opts.Now)
	}
	if cfg.KeyStore.Enabled() {
		if opts.Redis == nil {
			return nil, errors.New("auth.key_store: configured but no Redis client given")
		}
		var errs []error
		ttl := parseDuration(&errs, "", cfg.KeyStore.CacheTTL, DefaultStoreCacheTTL, 0)
		a.store = NewKeyStore(opts.Redis, StoreOptions{Prefix: cfg.KeyStore.Redis.Prefix, CacheTTL: ttl, Now: opts.Now})
	}
	if len(cfg.OIDC.Issuers) > 0 {
		v, err := newJWTVerifier(cfg.OIDC, opts.HTTPClient, opts.Now)
		if err != nil {
			return nil, err
		}
		a.jwt = v
	}
	if cfg.MTLS.Enabled() {
		a.mtls = newCertMapper(cfg.MTLS)
	}
	return a, nil
}

// Store returns the key store, nil when none is configured.
func (a *Authenticator) Store() *KeyStore { return a.store }

// Warm discovers every issuer and fetches its keys now rather than on the
// first token; it returns the issuers that failed. Failures are not fatal:
// tokens from such an issuer are refused until a later attempt succeeds.
func (a *Authenticator) Warm(ctx context.Context) error {
	if a.jwt == nil {
		return nil
	}
	return a.jwt.warm(ctx)
}

// Authenticate returns the principal of the request, or an error for which
// errors.Is(err, ErrUnauthenticated) holds; errors.As with *Failure gives
// the reason to log. The identity's slices and maps may be shared between
// requests: treat them as read-only.
func (a *Authenticator) Authenticate(r *http.Request) (engine.Identity, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		cred, ok := bearer(h)
		if !ok {
			return engine.Identity{}, &Failure{Reason: ReasonScheme}
		}
		if strings.HasPrefix(cred, KeyPrefix) {
			return a.verifyKey(r.Context(), cred)
		}
		if a.jwt == nil {
			return engine.Identity{}, &Failure{Method: MethodOIDC, Reason: ReasonMethodDisabled}
		}
		id, f := a.jwt.verify(r.Context(), cred)
		if f != nil {
			return engine.Identity{}, f
		}
		if f := a.bindActor(r, id); f != nil {
			return engine.Identity{}, f
		}
		return id, nil
	}
	if k := r.Header.Get("X-Api-Key"); k != "" {
		return a.verifyKey(r.Context(), strings.TrimSpace(k))
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if a.mtls == nil {
			return engine.Identity{}, &Failure{Method: MethodMTLS, Reason: ReasonMethodDisabled}
		}
		return a.mtls.identity(r.TLS)
	}
	return engine.Identity{}, &Failure{Reason: ReasonMissing}
}

// bindActor checks, for a delegation token sent over a connection with a
// verified client certificate, that the certificate is the current actor's
// (the chain's last link): an agent cannot replay another agent's
// delegation token from its own authenticated connection.
func (a *Authenticator) bindActor(r *http.Request, id engine.Identity) *Failure {
	if len(id.Chain) < 2 || a.mtls == nil || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return nil
	}
	p, err := CertPrincipal(r.TLS.VerifiedChains[0][0])
	if err != nil {
		return &Failure{Method: MethodOIDC, Reason: ReasonCertPrincipal, Cause: err}
	}
	if actor := id.Chain[len(id.Chain)-1].Subject; p != actor {
		return &Failure{Method: MethodOIDC, Reason: ReasonDelegation,
			Cause: fmt.Errorf("client certificate %q is not the current actor %q", p, actor)}
	}
	return nil
}

// bearer returns the credential of an Authorization: Bearer header.
func bearer(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(h[len(scheme):]), true
}

// VerifyKey checks an API key against the configuration and the key store.
func (a *Authenticator) VerifyKey(ctx context.Context, key string) (engine.Identity, error) {
	return a.verifyKey(ctx, key)
}

func (a *Authenticator) verifyKey(ctx context.Context, key string) (engine.Identity, error) {
	id, _, ok := ParseKey(key)
	if !ok {
		return engine.Identity{}, &Failure{Method: MethodAPIKey, Reason: ReasonKeyMalformed}
	}
	if a.keys == nil && a.store == nil {
		return engine.Identity{}, &Failure{Method: MethodAPIKey, Reason: ReasonMethodDisabled, KeyID: id}
	}
	sum := sha256.Sum256([]byte(key))
	var sk *storedKey
	if a.keys != nil {
		sk = a.keys.byID[id]
	}
	if sk == nil && a.store != nil {
		var err error
		sk, err = a.store.lookup(ctx, id)
		if err != nil {
			return engine.Identity{}, &Failure{Method: MethodAPIKey, Reason: ReasonKeyStore, KeyID: id, Cause: err}
		}
	}
	if sk == nil {
		return engine.Identity{}, &Failure{Method: MethodAPIKey, Reason: ReasonKeyUnknown, KeyID: id}
	}
	if reason := sk.check(&sum, a.now()); reason != "" {
		return engine.Identity{}, &Failure{Method: MethodAPIKey, Reason: reason, KeyID: id}
	}
	return sk.identity, nil
}
