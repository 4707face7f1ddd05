package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/tollgate/tollgate/engine"
)

// discoveryRetry is the least time between two discovery attempts of an
// issuer that failed.
const discoveryRetry = 10 * time.Second

// forbiddenHeaders are JOSE header parameters that carry or point to keys
// (or demand extensions). A verifier that trusted them would let the token
// choose its own key; go-oidc ignores them, and we refuse the token
// outright so that no later code can start trusting them.
var forbiddenHeaders = []string{"jwk", "jku", "x5u", "x5c", "crit"}

// jwtHeader is the part of a JOSE header the pre-parser checks.
type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// preparsed is what the pre-parser learns from a token before any
// cryptography: enough to pick the issuer and refuse obvious forgeries.
type preparsed struct {
	alg, kid, issuer string
}

// preparseJWT checks that tok is a compact JWS of bounded size with a sane
// header and reads the (unverified) issuer. It returns a Reason on failure.
func preparseJWT(tok string, maxBytes int) (preparsed, string) {
	if len(tok) > maxBytes {
		return preparsed{}, ReasonTokenTooLarge
	}
	h, rest, ok1 := strings.Cut(tok, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || h == "" || p == "" || sig == "" || strings.IndexByte(sig, '.') >= 0 ||
		!b64url(h) || !b64url(p) || !b64url(sig) {
		return preparsed{}, ReasonTokenMalformed
	}
	hb, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return preparsed{}, ReasonTokenMalformed
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(hb, &fields); err != nil || fields == nil {
		return preparsed{}, ReasonTokenMalformed
	}
	// encoding/json (and so go-jose) matches names case-insensitively:
	// refuse "JWK" as well as "jwk".
	for name := range fields {
		for _, f := range forbiddenHeaders {
			if strings.EqualFold(name, f) {
				return preparsed{}, ReasonTokenHeaderKey
			}
		}
	}
	var hdr jwtHeader
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return preparsed{}, ReasonTokenMalformed
	}
	if !asymmetricAlgorithms[hdr.Alg] {
		return preparsed{}, ReasonTokenAlgorithm
	}
	pb, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return preparsed{}, ReasonTokenMalformed
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(pb, &claims); err != nil || !bytes.HasPrefix(bytes.TrimLeft(pb, " \t\r\n"), []byte("{")) {
		return preparsed{}, ReasonTokenMalformed
	}
	return preparsed{alg: hdr.Alg, kid: hdr.Kid, issuer: claims.Iss}, ""
}

func b64url(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// jwtVerifier verifies bearer JWTs from the configured issuers and caches
// the principals of verified tokens.
type jwtVerifier struct {
	issuers  map[string]*issuer
	maxBytes int
	skew     time.Duration
	ttl      time.Duration
	cache    *tokenCache
	now      func() time.Time
}

// issuer is one trusted issuer; its go-oidc verifier is built on first use.
type issuer struct {
	cfg       IssuerConfig
	client    *http.Client
	now       func() time.Time
	algs      []jose.SignatureAlgorithm
	algOK     map[string]bool
	kind      string
	subject   claimPath
	groups    claimPath
	team      claimPath
	org       claimPath
	roles     claimPath
	kindClaim claimPath
	labels    map[string]claimPath
	maxDepth  int
	actorKind string

	verifier atomic.Pointer[oidc.IDTokenVerifier]
	mu       sync.Mutex // guards discovery
	tried    time.Time
	lastErr  error
}

func newJWTVerifier(cfg OIDCConfig, client *http.Client, now func() time.Time) (*jwtVerifier, error) {
	var errs []error
	v := &jwtVerifier{
		issuers:  map[string]*issuer{},
		maxBytes: cfg.MaxTokenBytes,
		skew:     parseDuration(&errs, "auth.oidc.clock_skew", cfg.ClockSkew, DefaultClockSkew, MaxClockSkew),
		ttl:      parseDuration(&errs, "auth.oidc.cache_ttl", cfg.CacheTTL, DefaultTokenCacheTTL, time.Hour),
		now:      now,
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if v.maxBytes == 0 {
		v.maxBytes = DefaultMaxTokenBytes
	}
	size := cfg.CacheSize
	if size == 0 {
		size = DefaultTokenCacheSize
	}
	v.cache = newTokenCache(size)
	for _, ic := range cfg.Issuers {
		is := &issuer{cfg: ic, client: client, now: now, algOK: map[string]bool{}, kind: ic.Kind,
			subject: mustClaimPath(cmpOr(ic.Claims.Subject, "sub")),
			groups:  mustClaimPath(cmpOr(ic.Claims.Groups, "groups")),
			team:    mustClaimPath(ic.Claims.Team), org: mustClaimPath(ic.Claims.Org),
			roles: mustClaimPath(ic.Claims.Roles), kindClaim: mustClaimPath(ic.Claims.Kind),
			labels: map[string]claimPath{}, maxDepth: ic.Delegation.MaxDepth, actorKind: ic.Delegation.ActorKind,
		}
		if is.kind == "" {
			is.kind = "user"
		}
		if is.maxDepth == 0 {
			is.maxDepth = DefaultMaxChainDepth
		}
		if is.actorKind == "" {
			is.actorKind = "agent"
		}
		algs := ic.Algorithms
		if len(algs) == 0 {
			algs = DefaultAlgorithms
		}
		for _, a := range algs {
			is.algs = append(is.algs, jose.SignatureAlgorithm(a))
			is.algOK[a] = true
		}
		for name, p := range ic.Claims.Labels {
			is.labels[name] = mustClaimPath(p)
		}
		v.issuers[ic.Issuer] = is
	}
	return v, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (v *jwtVerifier) warm(ctx context.Context) error {
	var errs []error
	for _, is := range v.issuers {
		if _, err := is.oidcVerifier(ctx); err != nil {
			errs = append(errs, fmt.Errorf("issuer %s: %w", is.cfg.Issuer, err))
		}
	}
	return errors.Join(errs...)
}

// oidcVerifier returns the issuer's go-oidc verifier, discovering the
// issuer on first use and after a failure at most every discoveryRetry.
func (is *issuer) oidcVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	if ov := is.verifier.Load(); ov != nil {
		return ov, nil
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if ov := is.verifier.Load(); ov != nil {
		return ov, nil
	}
	now := is.now()
	if !is.tried.IsZero() && now.Sub(is.tried) < discoveryRetry && now.Sub(is.tried) >= 0 {
		return nil, fmt.Errorf("discovery failed recently: %w", is.lastErr)
	}
	is.tried = now
	jwksURL := is.cfg.JWKSURL
	if jwksURL == "" {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		p, err := oidc.NewProvider(oidc.ClientContext(dctx, is.client), is.cfg.Issuer)
		if err != nil {
			is.lastErr = fmt.Errorf("discovery: %w", err)
			return nil, is.lastErr
		}
		var meta struct {
			JWKSURL string `json:"jwks_uri"`
		}
		if err := p.Claims(&meta); err != nil {
			is.lastErr = fmt.Errorf("discovery: %w", err)
			return nil, is.lastErr
		}
		if err := checkIssuerURL(meta.JWKSURL); err != nil {
			is.lastErr = fmt.Errorf("discovery: jwks_uri: %w", err)
			return nil, is.lastErr
		}
		jwksURL = meta.JWKSURL
	}
	ks := &keySet{url: jwksURL, client: is.client, now: is.now}
	algs := make([]string, len(is.algs))
	for i, a := range is.algs {
		algs[i] = string(a)
	}
	// Expiry and audience are checked by us: go-oidc has no clock-skew
	// setting for exp and takes a single audience.
	ov := oidc.NewVerifier(is.cfg.Issuer, ks, &oidc.Config{
		SkipClientIDCheck:    true,
		SkipExpiryCheck:      true,
		SupportedSigningAlgs: algs,
		Now:                  is.now,
	})
	is.verifier.Store(ov)
	is.lastErr = nil
	return ov, nil
}

// verify returns the principal of a bearer token.
func (v *jwtVerifier) verify(ctx context.Context, tok string) (engine.Identity, *Failure) {
	if len(tok) > v.maxBytes {
		return engine.Identity{}, &Failure{Method: MethodOIDC, Reason: ReasonTokenTooLarge}
	}
	now := v.now()
	sum := sha256.Sum256([]byte(tok))
	if id, ok := v.cache.get(&sum, now); ok {
		return id, nil
	}
	pre, reason := preparseJWT(tok, v.maxBytes)
	if reason != "" {
		return engine.Identity{}, &Failure{Method: MethodOIDC, Reason: reason}
	}
	is := v.issuers[pre.issuer]
	if is == nil {
		return engine.Identity{}, &Failure{Method: MethodOIDC, Reason: ReasonTokenIssuer}
	}
	fail := func(reason string, cause error) (engine.Identity, *Failure) {
		return engine.Identity{}, &Failure{Method: MethodOIDC, Reason: reason, Issuer: is.cfg.Issuer, Cause: cause}
	}
	if !is.algOK[pre.alg] {
		return fail(ReasonTokenAlgorithm, fmt.Errorf("alg %s not allowed for this issuer", pre.alg))
	}
	ov, err := is.oidcVerifier(ctx)
	if err != nil {
		return fail(ReasonIssuerDown, err)
	}
	note := &verifyNote{algs: is.algs}
	t, err := ov.Verify(context.WithValue(ctx, noteKey{}, note), tok)
	if err != nil {
		reason := note.reason
		if reason == "" {
			reason = ReasonTokenClaims
		}
		return fail(reason, err)
	}
	var claims map[string]any
	if err := t.Claims(&claims); err != nil {
		return fail(ReasonTokenClaims, err)
	}
	if reason, err := v.checkTime(t, claims, now); reason != "" {
		return fail(reason, err)
	}
	if !slices.ContainsFunc(t.Audience, func(a string) bool { return slices.Contains(is.cfg.Audiences, a) }) {
		return fail(ReasonTokenAudience, fmt.Errorf("aud %q names none of the configured audiences", t.Audience))
	}
	id, reason, err := is.identity(claims)
	if reason != "" {
		return fail(reason, err)
	}
	until := now.Add(v.ttl)
	if t.Expiry.Before(until) {
		until = t.Expiry
	}
	v.cache.put(&sum, id, until, now)
	return id, nil
}

// checkTime checks exp (required), nbf and iat against now, allowing the
// configured skew.
func (v *jwtVerifier) checkTime(t *oidc.IDToken, claims map[string]any, now time.Time) (string, error) {
	if _, ok := claims["exp"].(float64); !ok {
		return ReasonTokenClaims, errors.New("exp missing or not a number")
	}
	if !now.Before(t.Expiry.Add(v.skew)) {
		return ReasonTokenExpired, fmt.Errorf("expired at %s", t.Expiry.UTC().Format(time.RFC3339))
	}
	for _, name := range []string{"nbf", "iat"} {
		raw, present := claims[name]
		if !present {
			continue
		}
		n, ok := raw.(float64)
		if !ok {
			return ReasonTokenClaims, fmt.Errorf("%s is not a number", name)
		}
		if at := time.Unix(int64(n), 0); now.Add(v.skew).Before(at) {
			return ReasonTokenNotYetValid, fmt.Errorf("%s %s is in the future", name, at.UTC().Format(time.RFC3339))
		}
	}
	return "", nil
}

// identity maps verified claims to a principal, with the delegation chain.
func (is *issuer) identity(claims map[string]any) (engine.Identity, string, error) {
	sub, ok := is.subject.str(claims)
	if !ok || sub == "" {
		return engine.Identity{}, ReasonTokenClaims, errors.New("subject claim missing or not a string")
	}
	groups, ok := is.groups.strs(claims)
	if !ok {
		return engine.Identity{}, ReasonTokenClaims, errors.New("groups claim is not a list of strings")
	}
	team, ok := is.team.str(claims)
	if !ok {
		return engine.Identity{}, ReasonTokenClaims, errors.New("team claim is not a string")
	}
	if team == "" {
		for _, g := range groups {
			if t, ok := is.cfg.TeamFromGroups[g]; ok {
				team = t
				break
			}
		}
	}
	org, ok := is.org.str(claims)
	if !ok {
		return engine.Identity{}, ReasonTokenClaims, errors.New("org claim is not a string")
	}
	if org == "" {
		org = is.cfg.Org
	}
	roles, ok := is.roles.strs(claims)
	if !ok {
		return engine.Identity{}, ReasonTokenClaims, errors.New("roles claim is not a list of strings")
	}
	for _, g := range groups {
		for _, r := range is.cfg.RolesFromGroups[g] {
			if !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
	}
	kind := is.kind
	if is.kindClaim != nil {
		k, ok := is.kindClaim.str(claims)
		if !ok || !validKind(k) {
			return engine.Identity{}, ReasonTokenClaims, errors.New("kind claim is not user, service or agent")
		}
		if k != "" {
			kind = k
		}
	}
	var labels map[string]string
	for name, p := range is.labels {
		s, ok := p.str(claims)
		if !ok {
			return engine.Identity{}, ReasonTokenClaims, fmt.Errorf("label %s: claim is not a string", name)
		}
		if s != "" {
			if labels == nil {
				labels = map[string]string{}
			}
			labels[name] = s
		}
	}
	if roles == nil {
		roles = []string{}
	}
	if groups == nil {
		groups = []string{}
	}
	id := engine.Identity{Subject: sub, Kind: kind, Auth: MethodOIDC, Team: team, Org: org,
		Roles: roles, Groups: groups, Labels: labels}
	if act, present := claims["act"]; present {
		chain, reason, err := is.chain(sub, kind, act)
		if reason != "" {
			return engine.Identity{}, reason, err
		}
		id.Chain = chain
	}
	return id, "", nil
}

// chain turns an RFC 8693 act claim into the on-behalf-of chain, outermost
// caller first: the token's subject, then each actor in the order they
// received the delegation; the last link is the agent that sent the
// request. In the act claim the current actor is outermost and earlier
// actors are nested inside it, so the nesting is reversed here.
func (is *issuer) chain(sub, kind string, act any) ([]engine.ChainLink, string, error) {
	if !is.cfg.Delegation.Enabled {
		return nil, ReasonDelegation, errors.New("token has an act claim but delegation is not enabled for its issuer")
	}
	var actors []string
	for cur := act; cur != nil; {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, ReasonDelegation, errors.New("act is not an object")
		}
		s, ok := obj["sub"].(string)
		if !ok || s == "" {
			return nil, ReasonDelegation, errors.New("act without a string sub")
		}
		if len(actors) == is.maxDepth {
			return nil, ReasonChainTooDeep, fmt.Errorf("more than %d actors", is.maxDepth)
		}
		actors = append(actors, s)
		cur = obj["act"]
	}
	chain := make([]engine.ChainLink, 0, len(actors)+1)
	chain = append(chain, engine.ChainLink{Subject: sub, Kind: kind})
	for i := len(actors) - 1; i >= 0; i-- {
		chain = append(chain, engine.ChainLink{Subject: actors[i], Kind: is.actorKind})
	}
	return chain, "", nil
}
