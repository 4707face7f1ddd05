// Package auth authenticates callers and turns credentials into principals.
//
// API keys look like tg_<key id>_<secret>. The gateway stores only the
// SHA-256 of each key (keys carry 190 bits of randomness, so a fast hash is
// safe) and compares hashes in constant time.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate/engine"
)

// KeyPrefix starts every Tollgate API key.
const KeyPrefix = "tg_"

// HashPrefix starts every stored key hash.
const HashPrefix = "sha256:"

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// KeyConfig is one API key in the configuration.
type KeyConfig struct {
	ID string `yaml:"id"`
	// Hash is HashKey of the key; the key itself is never stored.
	Hash string `yaml:"hash"`
	// Subject is the key's owner: the user or service it authenticates.
	Subject string            `yaml:"subject"`
	Kind    string            `yaml:"kind"`
	Team    string            `yaml:"team"`
	Org     string            `yaml:"org"`
	Roles   []string          `yaml:"roles"`
	Labels  map[string]string `yaml:"labels"`
	// ExpiresAt, an RFC 3339 time, ends the key's validity; empty: never.
	ExpiresAt string `yaml:"expires_at"`
	// Disabled refuses the key while keeping its entry.
	Disabled bool `yaml:"disabled"`
}

func decodeHash(s string) ([]byte, error) {
	if !strings.HasPrefix(s, HashPrefix) {
		return nil, fmt.Errorf("%q does not start with %q; store the hash printed by 'tollgate keys new', never the key", s, HashPrefix)
	}
	b, err := hex.DecodeString(s[len(HashPrefix):])
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("%q is not a SHA-256 hex digest", s)
	}
	return b, nil
}

// NewKey returns a fresh random API key, its id and the hash to store.
func NewKey() (key, id, hash string, err error) {
	var idBytes [5]byte
	var secret [24]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return "", "", "", fmt.Errorf("generate key: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", "", "", fmt.Errorf("generate key: %w", err)
	}
	id = "k" + keyEncoding.EncodeToString(idBytes[:])
	key = KeyPrefix + id + "_" + keyEncoding.EncodeToString(secret[:])
	return key, id, HashKey(key), nil
}

// HashKey returns the stored form of key.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return HashPrefix + hex.EncodeToString(sum[:])
}

// KeyID extracts the key id from a key, or "" when key is not shaped like
// a Tollgate key.
func KeyID(key string) string {
	id, _, ok := ParseKey(key)
	if !ok {
		return ""
	}
	return id
}

// MaxKeyBytes bounds the length of an API key; longer input is no key.
const MaxKeyBytes = 256

// ParseKey splits a key tg_<id>_<secret> into its id and secret. Both must
// be non-empty lower-case letters and digits, the id at most 64 bytes and the
// whole key at most MaxKeyBytes; anything else is not a key.
func ParseKey(key string) (id, secret string, ok bool) {
	if len(key) > MaxKeyBytes {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(key, KeyPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || id == "" || secret == "" || len(id) > 64 || !keyChars(id) || !keyChars(secret) {
		return "", "", false
	}
	return id, secret, true
}

func keyChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// ErrUnauthenticated is returned for every failed authentication, whatever
// the reason, so that callers learn nothing about which check failed.
var ErrUnauthenticated = errors.New("invalid or missing credentials")

// storedKey is a key record ready for verification.
type storedKey struct {
	hash      []byte
	identity  engine.Identity
	expiresAt time.Time // zero: never
	disabled  bool
	revoked   bool
}

// check compares the hash of a presented key (sum) with the stored one in
// constant time, then the key's state, and returns a failure reason or "".
func (sk *storedKey) check(sum *[sha256.Size]byte, now time.Time) string {
	if subtle.ConstantTimeCompare(sum[:], sk.hash) != 1 {
		return ReasonKeySecret
	}
	if sk.revoked {
		return ReasonKeyRevoked
	}
	if sk.disabled {
		return ReasonKeyDisabled
	}
	if !sk.expiresAt.IsZero() && !now.Before(sk.expiresAt) {
		return ReasonKeyExpired
	}
	return ""
}

// Keys verifies the API keys of the configuration. It is immutable and safe
// for concurrent use.
type Keys struct {
	byID map[string]*storedKey
	now  func() time.Time
}

// NewKeys builds a verifier from the configuration, which it validates.
func NewKeys(cfg Config) (*Keys, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newKeys(cfg.APIKeys, time.Now), nil
}

func newKeys(list []KeyConfig, now func() time.Time) *Keys {
	k := &Keys{byID: make(map[string]*storedKey, len(list)), now: now}
	for _, c := range list {
		h, _ := decodeHash(c.Hash)
		var exp time.Time
		if c.ExpiresAt != "" {
			exp, _ = time.Parse(time.RFC3339, c.ExpiresAt)
		}
		k.byID[c.ID] = &storedKey{
			hash:      h,
			identity:  keyIdentity(c.ID, c.Subject, c.Kind, c.Team, c.Org, c.Roles, c.Labels),
			expiresAt: exp,
			disabled:  c.Disabled,
		}
	}
	return k
}

func keyIdentity(id, subject, kind, team, org string, roles []string, labels map[string]string) engine.Identity {
	if kind == "" {
		kind = "user"
	}
	if roles == nil {
		roles = []string{}
	}
	return engine.Identity{
		Subject: subject, Kind: kind, Auth: "api_key", KeyID: id,
		Team: team, Org: org, Roles: roles, Groups: []string{}, Labels: labels,
	}
}

// Verify returns the principal of key, or ErrUnauthenticated. The
// identity's slices and maps are shared: treat them as read-only.
func (k *Keys) Verify(key string) (engine.Identity, error) {
	id, _, ok := ParseKey(key)
	sum := sha256.Sum256([]byte(key))
	sk, found := k.byID[id]
	if !ok || !found {
		// Compare anyway so that unknown ids take as long as wrong secrets.
		subtle.ConstantTimeCompare(sum[:], sum[:])
		return engine.Identity{}, ErrUnauthenticated
	}
	if sk.check(&sum, k.now()) != "" {
		return engine.Identity{}, ErrUnauthenticated
	}
	return sk.identity, nil
}

// FromHeaders extracts the API key from an Authorization: Bearer header or
// an x-api-key header.
func FromHeaders(authorization, xAPIKey string) string {
	if v, ok := strings.CutPrefix(authorization, "Bearer "); ok {
		return strings.TrimSpace(v)
	}
	if v, ok := strings.CutPrefix(authorization, "bearer "); ok {
		return strings.TrimSpace(v)
	}
	return strings.TrimSpace(xAPIKey)
}
