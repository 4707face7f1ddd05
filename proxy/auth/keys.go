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

	"github.com/tollgate/tollgate/engine"
)

// KeyPrefix starts every Tollgate API key.
const KeyPrefix = "tg_"

// HashPrefix starts every stored key hash.
const HashPrefix = "sha256:"

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// KeyConfig is one API key in the configuration.
type KeyConfig struct {
	ID      string            `yaml:"id"`
	Hash    string            `yaml:"hash"`
	Subject string            `yaml:"subject"`
	Kind    string            `yaml:"kind"`
	Team    string            `yaml:"team"`
	Org     string            `yaml:"org"`
	Roles   []string          `yaml:"roles"`
	Labels  map[string]string `yaml:"labels"`
}

// Config is the auth section of the configuration.
type Config struct {
	APIKeys []KeyConfig `yaml:"api_keys"`
}

// Validate reports every problem with the key list.
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
		switch k.Kind {
		case "", "user", "service", "agent":
		default:
			errs = append(errs, fmt.Errorf("%s.kind: %q is not one of user, service, agent", p, k.Kind))
		}
	}
	return errors.Join(errs...)
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
	rest, ok := strings.CutPrefix(key, KeyPrefix)
	if !ok {
		return ""
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || id == "" || secret == "" || len(id) > 64 {
		return ""
	}
	return id
}

// ErrUnauthenticated is returned for every failed authentication, whatever
// the reason, so that callers learn nothing about which check failed.
var ErrUnauthenticated = errors.New("invalid or missing credentials")

type storedKey struct {
	hash     []byte
	identity engine.Identity
}

// Keys verifies API keys. It is immutable and safe for concurrent use.
type Keys struct {
	byID map[string]storedKey
}

// NewKeys builds a verifier from validated configuration.
func NewKeys(cfg Config) (*Keys, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	k := &Keys{byID: make(map[string]storedKey, len(cfg.APIKeys))}
	for _, c := range cfg.APIKeys {
		h, _ := decodeHash(c.Hash)
		kind := c.Kind
		if kind == "" {
			kind = "user"
		}
		roles := c.Roles
		if roles == nil {
			roles = []string{}
		}
		k.byID[c.ID] = storedKey{hash: h, identity: engine.Identity{
			Subject: c.Subject, Kind: kind, Auth: "api_key", KeyID: c.ID,
			Team: c.Team, Org: c.Org, Roles: roles, Groups: []string{}, Labels: c.Labels,
		}}
	}
	return k, nil
}

// Verify returns the principal of key, or ErrUnauthenticated.
func (k *Keys) Verify(key string) (engine.Identity, error) {
	id := KeyID(key)
	sk, ok := k.byID[id]
	sum := sha256.Sum256([]byte(key))
	if !ok {
		// Compare anyway so that unknown ids take as long as wrong secrets.
		subtle.ConstantTimeCompare(sum[:], sum[:])
		return engine.Identity{}, ErrUnauthenticated
	}
	if subtle.ConstantTimeCompare(sum[:], sk.hash) != 1 {
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
