package auth

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrKeyNotFound is returned by KeyStore operations on an id it does not hold.
var ErrKeyNotFound = errors.New("api key not found")

// ErrKeyInactive is returned when rotating a key that is revoked, disabled
// or expired.
var ErrKeyInactive = errors.New("api key is not active")

// KeyRecord is an API key as the key store keeps it: the hash, never the key.
type KeyRecord struct {
	ID      string            `json:"id"`
	Hash    string            `json:"hash"`
	Subject string            `json:"subject"`
	Kind    string            `json:"kind"`
	Team    string            `json:"team,omitempty"`
	Org     string            `json:"org,omitempty"`
	Roles   []string          `json:"roles,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	// CreatedAt is set by the store.
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt ends the key's validity; zero: never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Disabled  bool      `json:"disabled,omitempty"`
	// RevokedAt is when the key was revoked; zero: not revoked.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// ReplacedBy names the key that a rotation issued in its place.
	ReplacedBy string `json:"replaced_by,omitempty"`
}

// Key states, as Status returns them.
const (
	KeyActive   = "active"
	KeyRevoked  = "revoked"
	KeyDisabled = "disabled"
	KeyExpired  = "expired"
)

// Status is the key's state at now.
func (r *KeyRecord) Status(now time.Time) string {
	switch {
	case !r.RevokedAt.IsZero():
		return KeyRevoked
	case r.Disabled:
		return KeyDisabled
	case !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt):
		return KeyExpired
	}
	return KeyActive
}

func (r *KeyRecord) validate() error {
	var errs []error
	if _, _, ok := ParseKey(KeyPrefix + r.ID + "_x"); !ok {
		errs = append(errs, fmt.Errorf("key record id: %q is not a key id", r.ID))
	}
	if _, err := decodeHash(r.Hash); err != nil {
		errs = append(errs, fmt.Errorf("key record hash: %w", err))
	}
	if r.Subject == "" {
		errs = append(errs, errors.New("subject: empty; name the user or service that owns the key"))
	}
	if !validKind(r.Kind) {
		errs = append(errs, fmt.Errorf("kind: %q is not one of user, service, agent", r.Kind))
	}
	return errors.Join(errs...)
}

func (r *KeyRecord) stored() *storedKey {
	h, _ := decodeHash(r.Hash)
	return &storedKey{
		hash:      h,
		identity:  keyIdentity(r.ID, r.Subject, r.Kind, r.Team, r.Org, r.Roles, r.Labels),
		expiresAt: r.ExpiresAt,
		disabled:  r.Disabled,
		revoked:   !r.RevokedAt.IsZero(),
	}
}

// StoreOptions configure a KeyStore.
type StoreOptions struct {
	// Prefix starts the Redis key (default "tollgate"): all records live in
	// one hash, "<prefix>:apikeys", so the store works on Redis Cluster.
	Prefix string
	// CacheTTL bounds how long a record read from Redis is trusted, hence
	// how long a revoked key keeps working on a replica (default 2s).
	CacheTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// KeyStore keeps API keys in Redis and verifies them through a short local
// cache, so that a revocation reaches every replica within CacheTTL while
// a verification costs one Redis round trip per key and TTL at most. It is
// safe for concurrent use.
type KeyStore struct {
	rdb redis.UniversalClient
	key string
	ttl time.Duration
	now func() time.Time
	mu  sync.RWMutex
	// cache holds records by id; a nil key means "not in the store".
	cache   map[string]cached
	flights map[string]*flight
}

type cached struct {
	sk *storedKey
	at time.Time
}

type flight struct {
	done chan struct{}
	sk   *storedKey
	err  error
}

// maxCached bounds the cache; when full it starts over. Real keys are far
// fewer; the bound stops random ids from growing it without limit.
const maxCached = 100000

// NewKeyStore returns a store on rdb, which the caller keeps owning.
func NewKeyStore(rdb redis.UniversalClient, opts StoreOptions) *KeyStore {
	if opts.Prefix == "" {
		opts.Prefix = DefaultStorePrefix
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = DefaultStoreCacheTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &KeyStore{
		rdb: rdb, key: opts.Prefix + ":apikeys", ttl: opts.CacheTTL, now: opts.Now,
		cache: map[string]cached{}, flights: map[string]*flight{},
	}
}

// lookup returns the record of id (nil when there is none), from the cache
// when it is younger than the TTL. Concurrent misses for one id share one
// Redis call.
func (s *KeyStore) lookup(ctx context.Context, id string) (*storedKey, error) {
	now := s.now()
	s.mu.RLock()
	c, ok := s.cache[id]
	s.mu.RUnlock()
	if ok && now.Sub(c.at) < s.ttl && !now.Before(c.at) {
		return c.sk, nil
	}
	s.mu.Lock()
	f, ok := s.flights[id]
	if !ok {
		f = &flight{done: make(chan struct{})}
		s.flights[id] = f
		s.mu.Unlock()
		f.sk, f.err = s.fetch(ctx, id)
		s.mu.Lock()
		delete(s.flights, id)
		if f.err == nil {
			if len(s.cache) >= maxCached {
				clear(s.cache)
			}
			// Stamp with the time before the read: the entry is trusted no
			// longer than TTL after Redis could last have changed it.
			s.cache[id] = cached{sk: f.sk, at: now}
		}
		s.mu.Unlock()
		close(f.done)
		return f.sk, f.err
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.sk, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *KeyStore) fetch(ctx context.Context, id string) (*storedKey, error) {
	rec, err := s.Get(ctx, id)
	if errors.Is(err, ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return rec.stored(), nil
}

// Forget drops id from the local cache, so that the next verification
// reads Redis.
func (s *KeyStore) Forget(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

// Get reads the record of id from Redis.
func (s *KeyStore) Get(ctx context.Context, id string) (KeyRecord, error) {
	raw, err := s.rdb.HGet(ctx, s.key, id).Bytes()
	if errors.Is(err, redis.Nil) {
		return KeyRecord{}, fmt.Errorf("key store get %s: %w", id, ErrKeyNotFound)
	}
	if err != nil {
		return KeyRecord{}, fmt.Errorf("key store get %s: %w", id, err)
	}
	var rec KeyRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return KeyRecord{}, fmt.Errorf("key store get %s: decode: %w", id, err)
	}
	if rec.ID != id {
		return KeyRecord{}, fmt.Errorf("key store get %s: record names id %q", id, rec.ID)
	}
	return rec, nil
}

// Create makes a new key with the metadata of tmpl (its ID, Hash and
// CreatedAt are set here), stores it and returns the key, which exists
// nowhere else: hand it to its owner.
func (s *KeyStore) Create(ctx context.Context, tmpl KeyRecord) (string, KeyRecord, error) {
	key, id, hash, err := NewKey()
	if err != nil {
		return "", KeyRecord{}, err
	}
	rec := tmpl
	rec.ID, rec.Hash, rec.CreatedAt = id, hash, s.now().UTC()
	rec.RevokedAt, rec.ReplacedBy = time.Time{}, ""
	if rec.Kind == "" {
		rec.Kind = "user"
	}
	if err := rec.validate(); err != nil {
		return "", KeyRecord{}, err
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return "", KeyRecord{}, fmt.Errorf("key store create: %w", err)
	}
	ok, err := s.rdb.HSetNX(ctx, s.key, id, raw).Result()
	if err != nil {
		return "", KeyRecord{}, fmt.Errorf("key store create %s: %w", id, err)
	}
	if !ok {
		return "", KeyRecord{}, fmt.Errorf("key store create %s: id already taken; try again", id)
	}
	return key, rec, nil
}

// List returns every record, oldest first.
func (s *KeyStore) List(ctx context.Context) ([]KeyRecord, error) {
	all, err := s.rdb.HGetAll(ctx, s.key).Result()
	if err != nil {
		return nil, fmt.Errorf("key store list: %w", err)
	}
	recs := make([]KeyRecord, 0, len(all))
	for id, raw := range all {
		var rec KeyRecord
		if err := json.Unmarshal([]byte(raw), &rec); err != nil {
			return nil, fmt.Errorf("key store list: decode %s: %w", id, err)
		}
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b KeyRecord) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return recs, nil
}

// update applies fn to the record of id under an optimistic lock, retrying
// when another writer changed the store meanwhile.
func (s *KeyStore) update(ctx context.Context, id string, fn func(*KeyRecord, redis.Pipeliner) error) (KeyRecord, error) {
	var out KeyRecord
	txf := func(tx *redis.Tx) error {
		raw, err := tx.HGet(ctx, s.key, id).Bytes()
		if errors.Is(err, redis.Nil) {
			return ErrKeyNotFound
		}
		if err != nil {
			return err
		}
		var rec KeyRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if err := fn(&rec, p); err != nil {
				return err
			}
			b, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			p.HSet(ctx, s.key, id, b)
			return nil
		})
		out = rec
		return err
	}
	for range 5 {
		err := s.rdb.Watch(ctx, txf, s.key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		s.Forget(id)
		return out, err
	}
	return KeyRecord{}, errors.New("store busy: too many concurrent changes; try again")
}

// Revoke marks id revoked; the record stays for audit. Every replica refuses
// the key once its cache entry is older than the TTL.
func (s *KeyStore) Revoke(ctx context.Context, id string) (KeyRecord, error) {
	rec, err := s.update(ctx, id, func(r *KeyRecord, _ redis.Pipeliner) error {
		if r.RevokedAt.IsZero() {
			r.RevokedAt = s.now().UTC()
		}
		return nil
	})
	if err != nil {
		return KeyRecord{}, fmt.Errorf("key store revoke %s: %w", id, err)
	}
	return rec, nil
}

// SetDisabled disables or re-enables id.
func (s *KeyStore) SetDisabled(ctx context.Context, id string, disabled bool) (KeyRecord, error) {
	rec, err := s.update(ctx, id, func(r *KeyRecord, _ redis.Pipeliner) error {
		r.Disabled = disabled
		return nil
	})
	if err != nil {
		return KeyRecord{}, fmt.Errorf("key store disable %s: %w", id, err)
	}
	return rec, nil
}

// Rotate issues a new key with the metadata of id and retires id: revoked
// at once when grace is 0, else expiring after grace (or earlier, at its own
// expiry). It returns the new key and its record.
func (s *KeyStore) Rotate(ctx context.Context, id string, grace time.Duration) (string, KeyRecord, error) {
	old, err := s.Get(ctx, id)
	if err != nil {
		return "", KeyRecord{}, fmt.Errorf("key store rotate: %w", err)
	}
	now := s.now()
	if st := old.Status(now); st != KeyActive {
		return "", KeyRecord{}, fmt.Errorf("key store rotate %s: %w (%s)", id, ErrKeyInactive, st)
	}
	key, rec, err := s.Create(ctx, old)
	if err != nil {
		return "", KeyRecord{}, fmt.Errorf("key store rotate %s: %w", id, err)
	}
	_, err = s.update(ctx, id, func(r *KeyRecord, _ redis.Pipeliner) error {
		if r.ReplacedBy != "" {
			return fmt.Errorf("%w: rotated concurrently to %s", ErrKeyInactive, r.ReplacedBy)
		}
		r.ReplacedBy = rec.ID
		if grace <= 0 {
			r.RevokedAt = now.UTC()
		} else if until := now.Add(grace).UTC(); r.ExpiresAt.IsZero() || until.Before(r.ExpiresAt) {
			r.ExpiresAt = until
		}
		return nil
	})
	if err != nil {
		// Retire the new key again rather than leave two live keys.
		if _, rerr := s.Revoke(context.WithoutCancel(ctx), rec.ID); rerr != nil {
			err = errors.Join(err, fmt.Errorf("additionally, revoking the new key %s: %w", rec.ID, rerr))
		}
		return "", KeyRecord{}, fmt.Errorf("key store rotate %s: %w", id, err)
	}
	return key, rec, nil
}
