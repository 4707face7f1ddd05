package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// minRefresh is the least time between two fetches of an issuer's key set:
// a token with an unknown kid triggers a fetch (key rotation), but a flood
// of made-up kids must not turn into a flood of requests to the issuer.
const minRefresh = 5 * time.Second

// maxJWKSBytes bounds a key set document.
const maxJWKSBytes = 1 << 20

var (
	errUnknownKID   = errors.New("no key with the token's kid")
	errBadSignature = errors.New("signature does not verify")
)

// keySet is an oidc.KeySet over an issuer's JWKS URL. Like go-oidc's
// RemoteKeySet it fetches the set again when a token names an unknown kid,
// but at most once per minRefresh, and it keeps only public signing keys.
type keySet struct {
	url    string
	client *http.Client
	now    func() time.Time

	fetchMu sync.Mutex // serialises fetches
	mu      sync.RWMutex
	keys    []jose.JSONWebKey
	fetched time.Time // zero: never fetched successfully
	tried   time.Time // last fetch attempt
}

// noteKey carries a *verifyNote through go-oidc to the key set.
type noteKey struct{}

// verifyNote passes what the key set needs in (algorithms) and what went
// wrong out, since go-oidc flattens the key set's errors to text.
type verifyNote struct {
	algs   []jose.SignatureAlgorithm
	reason string
}

// VerifySignature implements oidc.KeySet.
func (s *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	note, _ := ctx.Value(noteKey{}).(*verifyNote)
	if note == nil {
		return nil, errors.New("key set used outside the auth verifier")
	}
	jws, err := jose.ParseSigned(raw, note.algs)
	if err != nil || len(jws.Signatures) != 1 {
		note.reason = ReasonTokenMalformed
		return nil, fmt.Errorf("parse: %v", err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, seen := s.match(kid)
	if len(keys) == 0 {
		if err := s.refresh(ctx, seen); err != nil {
			note.reason = ReasonIssuerDown
			return nil, err
		}
		keys, _ = s.match(kid)
	}
	if len(keys) == 0 {
		note.reason = ReasonTokenKID
		return nil, errUnknownKID
	}
	for i := range keys {
		if payload, err := jws.Verify(&keys[i]); err == nil {
			return payload, nil
		}
	}
	note.reason = ReasonTokenSignature
	return nil, errBadSignature
}

// match returns the keys for kid (all keys when kid is empty) and the time
// of the fetch they came from.
func (s *keySet) match(kid string) ([]jose.JSONWebKey, time.Time) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if kid == "" {
		return s.keys, s.fetched
	}
	for i := range s.keys {
		if s.keys[i].KeyID == kid {
			return s.keys[i : i+1], s.fetched
		}
	}
	return nil, s.fetched
}

// refresh fetches the key set unless another fetch finished after seen or
// the last attempt was less than minRefresh ago.
func (s *keySet) refresh(ctx context.Context, seen time.Time) error {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	s.mu.RLock()
	fetched, tried := s.fetched, s.tried
	s.mu.RUnlock()
	if fetched.After(seen) {
		return nil
	}
	now := s.now()
	if !tried.IsZero() && now.Sub(tried) < minRefresh && now.Sub(tried) >= 0 {
		if fetched.IsZero() {
			return errors.New("key set unavailable; next attempt after the back-off")
		}
		return nil
	}
	s.mu.Lock()
	s.tried = now
	s.mu.Unlock()
	keys, err := s.fetch(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.keys, s.fetched = keys, now
	s.mu.Unlock()
	return nil
}

func (s *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", s.url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", s.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks %s: status %s", s.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", s.url, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("jwks %s: larger than %d bytes", s.url, maxJWKSBytes)
	}
	// Decode key by key, so that one key of an unsupported type does not
	// hide the others.
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("jwks %s: %w", s.url, err)
	}
	var keys []jose.JSONWebKey
	for _, rk := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(rk); err != nil || !k.Valid() {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub := k.Public()
		switch pub.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			keys = append(keys, pub)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwks %s: no public signing keys", s.url)
	}
	return keys, nil
}
