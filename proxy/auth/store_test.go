package auth

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/proxy/quota/redistest"
)

// newRedis starts a private redis-server and returns a client on it.
func newRedis(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	return newRedisTB(t)
}

func newRedisTB(t testing.TB) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	return srv, rdb
}

// replica is one gateway's Authenticator on the shared Redis.
func replica(t *testing.T, rdb redis.UniversalClient, clk *clock) *Authenticator {
	t.Helper()
	a, err := New(Config{KeyStore: StoreConfig{Redis: RedisConfig{Addr: "127.0.0.1:1", Prefix: "test"}, CacheTTL: "2s"}},
		Options{Redis: rdb, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestKeyStoreLifecycle(t *testing.T) {
	t.Parallel()
	_, rdb := newRedis(t)
	clk := newClock()
	admin := NewKeyStore(rdb, StoreOptions{Prefix: "test", Now: clk.Now})
	r1, r2 := replica(t, rdb, clk), replica(t, rdb, clk)
	ctx := t.Context()

	key, rec, err := admin.Create(ctx, KeyRecord{Subject: "ana", Team: "ml", Org: "acme",
		Roles: []string{"developer"}, Labels: map[string]string{"cost_center": "cc-42"}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID != KeyID(key) || rec.Hash != HashKey(key) || rec.Kind != "user" || !rec.CreatedAt.Equal(clk.Now()) {
		t.Fatalf("created record: got %+v", rec)
	}
	want := engine.Identity{Subject: "ana", Kind: "user", Auth: "api_key", KeyID: rec.ID, Team: "ml", Org: "acme",
		Roles: []string{"developer"}, Groups: []string{}, Labels: map[string]string{"cost_center": "cc-42"}}
	for i, a := range []*Authenticator{r1, r2} {
		got, err := a.Authenticate(bearerRequest(key))
		if err != nil {
			t.Fatalf("replica %d: %v", i+1, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("replica %d identity (-want +got):\n%s", i+1, diff)
		}
		// X-Api-Key works too.
		r := bearerRequest("")
		r.Header.Del("Authorization")
		r.Header.Set("X-Api-Key", key)
		if _, err := a.Authenticate(r); err != nil {
			t.Errorf("replica %d via X-Api-Key: %v", i+1, err)
		}
	}
	wrong := key[:len(key)-1] + "x"
	if key[len(key)-1] == 'x' {
		wrong = key[:len(key)-1] + "y"
	}
	_, err = r1.Authenticate(bearerRequest(wrong))
	if got := reasonOf(t, err); got != ReasonKeySecret {
		t.Errorf("wrong secret: reason %s, want %s", got, ReasonKeySecret)
	}

	// Revoke in Redis. Within the cache TTL the replicas have not asked
	// Redis again (the cache works); once it passes, both refuse the key.
	if _, err := admin.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := r1.Authenticate(bearerRequest(key)); err != nil {
		t.Errorf("replica 1 within the cache TTL: %v (want the cached record)", err)
	}
	clk.Advance(time.Second)
	for i, a := range []*Authenticator{r1, r2} {
		_, err := a.Authenticate(bearerRequest(key))
		if got := reasonOf(t, err); got != ReasonKeyRevoked {
			t.Errorf("replica %d after revocation + TTL: reason %s, want %s", i+1, got, ReasonKeyRevoked)
		}
	}

	list, err := admin.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Status(clk.Now()) != KeyRevoked || list[0].RevokedAt.IsZero() {
		t.Errorf("list after revoke: got %+v, want one revoked record", list)
	}
	if _, err := admin.Revoke(ctx, "knothere"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("revoke unknown: got %v, want ErrKeyNotFound", err)
	}
	if _, _, err := admin.Rotate(ctx, rec.ID, 0); !errors.Is(err, ErrKeyInactive) {
		t.Errorf("rotate revoked: got %v, want ErrKeyInactive", err)
	}
}

func TestKeyStoreRotate(t *testing.T) {
	t.Parallel()
	_, rdb := newRedis(t)
	clk := newClock()
	admin := NewKeyStore(rdb, StoreOptions{Prefix: "test", Now: clk.Now})
	a := replica(t, rdb, clk)
	ctx := t.Context()
	oldKey, old, err := admin.Create(ctx, KeyRecord{Subject: "svc", Kind: "service", Team: "search"})
	if err != nil {
		t.Fatal(err)
	}

	// With a grace period both keys work until it ends.
	newKey, rec, err := admin.Rotate(ctx, old.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID == old.ID || rec.Subject != "svc" || rec.Kind != "service" || rec.Team != "search" {
		t.Fatalf("rotated record: got %+v", rec)
	}
	for name, k := range map[string]string{"old": oldKey, "new": newKey} {
		if _, err := a.Authenticate(bearerRequest(k)); err != nil {
			t.Errorf("%s key during grace: %v", name, err)
		}
	}
	got, err := admin.Get(ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ReplacedBy != rec.ID || !got.ExpiresAt.Equal(clk.Now().Add(time.Hour)) {
		t.Errorf("old record: replaced_by %q expires %s, want %q and now+1h", got.ReplacedBy, got.ExpiresAt, rec.ID)
	}
	if _, _, err := admin.Rotate(ctx, old.ID, 0); err == nil {
		t.Error("rotating a key twice: got nil, want an error")
	}
	clk.Advance(time.Hour)
	_, err = a.Authenticate(bearerRequest(oldKey))
	if r := reasonOf(t, err); r != ReasonKeyExpired {
		t.Errorf("old key after grace: reason %s, want %s", r, ReasonKeyExpired)
	}
	if _, err := a.Authenticate(bearerRequest(newKey)); err != nil {
		t.Errorf("new key after grace: %v", err)
	}

	// Without grace the old key is revoked at once (after the cache TTL).
	newer, _, err := admin.Rotate(ctx, rec.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultStoreCacheTTL)
	_, err = a.Authenticate(bearerRequest(newKey))
	if r := reasonOf(t, err); r != ReasonKeyRevoked {
		t.Errorf("rotated without grace: reason %s, want %s", r, ReasonKeyRevoked)
	}
	if _, err := a.Authenticate(bearerRequest(newer)); err != nil {
		t.Errorf("newest key: %v", err)
	}
}

func TestKeyStoreDisabledAndExpiry(t *testing.T) {
	t.Parallel()
	_, rdb := newRedis(t)
	clk := newClock()
	admin := NewKeyStore(rdb, StoreOptions{Prefix: "test", Now: clk.Now})
	a := replica(t, rdb, clk)
	ctx := t.Context()
	key, rec, err := admin.Create(ctx, KeyRecord{Subject: "ana", ExpiresAt: clk.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetDisabled(ctx, rec.ID, true); err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(bearerRequest(key))
	if r := reasonOf(t, err); r != ReasonKeyDisabled {
		t.Errorf("disabled: reason %s, want %s", r, ReasonKeyDisabled)
	}
	if _, err := admin.SetDisabled(ctx, rec.ID, false); err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultStoreCacheTTL)
	if _, err := a.Authenticate(bearerRequest(key)); err != nil {
		t.Errorf("re-enabled: %v", err)
	}
	clk.Advance(time.Minute)
	_, err = a.Authenticate(bearerRequest(key))
	if r := reasonOf(t, err); r != ReasonKeyExpired {
		t.Errorf("expired: reason %s, want %s", r, ReasonKeyExpired)
	}
	// An unknown id is cached as unknown too, and then found once created.
	_, err = a.Authenticate(bearerRequest("tg_kunknown_secret"))
	if r := reasonOf(t, err); r != ReasonKeyUnknown {
		t.Errorf("unknown: reason %s, want %s", r, ReasonKeyUnknown)
	}
}

// TestKeyStoreRevocationRealTime shows revocation reaching a replica with
// the real clock: the replica polls until it refuses the key, within a
// deadline of a few TTLs.
func TestKeyStoreRevocationRealTime(t *testing.T) {
	t.Parallel()
	_, rdb := newRedis(t)
	admin := NewKeyStore(rdb, StoreOptions{Prefix: "rt"})
	ttl := 200 * time.Millisecond
	a, err := New(Config{KeyStore: StoreConfig{Redis: RedisConfig{Addr: "127.0.0.1:1", Prefix: "rt"}, CacheTTL: ttl.String()}},
		Options{Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	key, rec, err := admin.Create(ctx, KeyRecord{Subject: "ana"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(bearerRequest(key)); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	if _, err := admin.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.NewTimer(5 * ttl)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := a.Authenticate(bearerRequest(key))
		if err != nil {
			if r := reasonOf(t, err); r != ReasonKeyRevoked {
				t.Fatalf("reason %s, want %s", r, ReasonKeyRevoked)
			}
			if took := time.Since(revoked); took > ttl+100*time.Millisecond {
				t.Errorf("revocation took %s, want at most the TTL %s (+ slack)", took, ttl)
			}
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("key still accepted %s after revocation", 5*ttl)
		}
	}
}

func TestKeyStoreRedisDown(t *testing.T) {
	t.Parallel()
	srv, rdb := newRedis(t)
	clk := newClock()
	admin := NewKeyStore(rdb, StoreOptions{Prefix: "test", Now: clk.Now})
	a := replica(t, rdb, clk)
	key, _, err := admin.Create(t.Context(), KeyRecord{Subject: "ana"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(bearerRequest(key)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	// Cached: still accepted within the TTL.
	if _, err := a.Authenticate(bearerRequest(key)); err != nil {
		t.Errorf("within TTL, Redis down: %v", err)
	}
	// After the TTL the store cannot confirm the key: fail closed.
	clk.Advance(DefaultStoreCacheTTL)
	_, err = a.Authenticate(bearerRequest(key))
	if r := reasonOf(t, err); r != ReasonKeyStore {
		t.Errorf("Redis down: reason %s, want %s", r, ReasonKeyStore)
	}
}

func TestKeyStoreConcurrentLookups(t *testing.T) {
	t.Parallel()
	_, rdb := newRedis(t)
	clk := newClock()
	admin := NewKeyStore(rdb, StoreOptions{Prefix: "test", Now: clk.Now})
	a := replica(t, rdb, clk)
	key, _, err := admin.Create(t.Context(), KeyRecord{Subject: "ana"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Go(func() {
			for range 8 {
				if _, err := a.Authenticate(bearerRequest(key)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent lookup: %v", err)
	}
}

func TestConfigKeysBeforeStore(t *testing.T) {
	t.Parallel()
	_, rdb := newRedis(t)
	clk := newClock()
	admin := NewKeyStore(rdb, StoreOptions{Prefix: "test", Now: clk.Now})
	storeKey, _, err := admin.Create(t.Context(), KeyRecord{Subject: "from-redis"})
	if err != nil {
		t.Fatal(err)
	}
	cfgKey, id, hash, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{
		APIKeys:  []KeyConfig{{ID: id, Hash: hash, Subject: "from-config"}},
		KeyStore: StoreConfig{Redis: RedisConfig{Addr: "127.0.0.1:1", Prefix: "test"}},
	}, Options{Redis: rdb, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{cfgKey: "from-config", storeKey: "from-redis"} {
		got, err := a.Authenticate(bearerRequest(key))
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		if got.Subject != want {
			t.Errorf("subject: got %q, want %q", got.Subject, want)
		}
	}
}
