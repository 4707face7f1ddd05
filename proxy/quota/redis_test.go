package quota_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/quota"
	"github.com/tollgate/tollgate/proxy/quota/redistest"
)

// newRedisClient returns a client configured like Open's, closed at cleanup.
func newRedisClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           2 * time.Second,
	})
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close redis client: %v", err)
		}
	})
	return c
}

// redisLimiters starts one redis-server and returns a constructor of
// limiters on it, each with its own key prefix so that they do not interfere.
func redisLimiters(t *testing.T) newLimiter {
	t.Helper()
	client := newRedisClient(t, redistest.Start(t).Addr)
	var n atomic.Int64
	return func(_ *testing.T, loc *time.Location) testLimiter {
		return quota.NewRedis(client, quota.RedisConfig{
			Prefix:   fmt.Sprintf("t%d", n.Add(1)),
			Location: loc,
			// Generous: the race detector and parallel tests slow the host.
			CallTimeout: 5 * time.Second,
		})
	}
}

func TestRedisConformance(t *testing.T) {
	t.Parallel()
	testConformance(t, redisLimiters(t))
}

func TestRedisConcurrent(t *testing.T) {
	t.Parallel()
	testConcurrent(t, redisLimiters(t)(t, nil))
}

func TestRedisRandomized(t *testing.T) {
	t.Parallel()
	testRandomized(t, redisLimiters(t)(t, nil), 1000)
}

// TestRedisKeys pins the key layout: prefix, hash tag of the scope,
// dimension, window, window start; and a TTL past the window's end.
func TestRedisKeys(t *testing.T) {
	t.Parallel()
	client := newRedisClient(t, redistest.Start(t).Addr)
	ny := newYork(t)
	l := quota.NewRedis(client, quota.RedisConfig{Location: ny})
	now := time.Date(2026, 11, 25, 12, 34, 56, 0, time.UTC) // 07:34 in New York
	limits := []quota.Limit{
		{Scope: "key:k_123", Window: quota.Minute, Tokens: 100, Requests: 10},
		{Scope: "team:ml", Window: quota.Hour, USDMicros: 100},
		{Scope: "team:ml", Window: quota.Day, Tokens: 1000},
		{Scope: "org:acme", Window: quota.Month, Tokens: 1000},
	}
	if _, err := l.Reserve(t.Context(), now, limits, quota.Amount{Tokens: 5, Requests: 1, USDMicros: 3}); err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	got, err := client.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	slices.Sort(got)
	want := []string{
		"tollgate:{key:k_123}:requests:minute:202611251234",
		"tollgate:{key:k_123}:tokens:minute:202611251234",
		"tollgate:{org:acme}:tokens:month:202611",
		"tollgate:{team:ml}:tokens:day:20261125",
		"tollgate:{team:ml}:usd:hour:2026112512",
	}
	if !slices.Equal(got, want) {
		t.Errorf("keys:\ngot  %q\nwant %q", got, want)
	}
	tests := []struct {
		key      string
		min, max time.Duration
	}{
		{"tollgate:{key:k_123}:tokens:minute:202611251234", 15 * time.Minute, 16 * time.Minute},
		{"tollgate:{team:ml}:usd:hour:2026112512", 15 * time.Minute, 41 * time.Minute},
		{"tollgate:{team:ml}:tokens:day:20261125", 16 * time.Hour, 17 * time.Hour},
	}
	for _, tc := range tests {
		ttl, err := client.PTTL(t.Context(), tc.key).Result()
		if err != nil {
			t.Fatalf("PTTL %s: %v", tc.key, err)
		}
		if ttl < tc.min || ttl > tc.max {
			t.Errorf("PTTL %s: got %s, want between %s and %s", tc.key, ttl, tc.min, tc.max)
		}
	}
}

// TestRedisScriptFlush checks the EVAL fallback when the script cache is
// empty, e.g. after a Redis restart or failover.
func TestRedisScriptFlush(t *testing.T) {
	t.Parallel()
	client := newRedisClient(t, redistest.Start(t).Addr)
	l := quota.NewRedis(client, quota.RedisConfig{})
	lim := quota.Limit{Scope: "key:k", Window: quota.Minute, Tokens: 100}
	for i := range 2 {
		if err := client.ScriptFlush(t.Context()).Err(); err != nil {
			t.Fatalf("SCRIPT FLUSH: %v", err)
		}
		r, err := l.Reserve(t.Context(), t0, []quota.Limit{lim}, quota.Amount{Tokens: 10})
		if err != nil {
			t.Fatalf("Reserve %d after SCRIPT FLUSH: %v", i, err)
		}
		if err := client.ScriptFlush(t.Context()).Err(); err != nil {
			t.Fatalf("SCRIPT FLUSH: %v", err)
		}
		if err := l.Reconcile(t.Context(), r, quota.Amount{Tokens: 20}); err != nil {
			t.Fatalf("Reconcile %d after SCRIPT FLUSH: %v", i, err)
		}
	}
	wantUsage(t, l, t0, lim, quota.Amount{Tokens: 40})
}

// TestRedisSettleExpiredBucket checks that settling into a bucket that is
// gone does not recreate it without a TTL.
func TestRedisSettleExpiredBucket(t *testing.T) {
	t.Parallel()
	client := newRedisClient(t, redistest.Start(t).Addr)
	l := quota.NewRedis(client, quota.RedisConfig{})
	lim := quota.Limit{Scope: "key:k", Window: quota.Minute, Tokens: 100}
	r, err := l.Reserve(t.Context(), t0, []quota.Limit{lim}, quota.Amount{Tokens: 10})
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	if err := client.FlushDB(t.Context()).Err(); err != nil {
		t.Fatalf("FLUSHDB: %v", err)
	}
	if err := l.Reconcile(t.Context(), r, quota.Amount{Tokens: 50}); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if n, err := client.DBSize(t.Context()).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE after Reconcile: got %d, %v; want 0", n, err)
	}
}

// TestRedisUnavailable checks that every operation fails with ErrUnavailable,
// within the call timeout, when Redis is down or hangs.
func TestRedisUnavailable(t *testing.T) {
	t.Parallel()
	const callTimeout = 300 * time.Millisecond
	// Slack for scheduling under the race detector.
	const bound = callTimeout + 700*time.Millisecond
	lim := quota.Limit{Scope: "key:k", Window: quota.Minute, Tokens: 100}

	tests := []struct {
		name string
		// down returns a limiter whose Redis is down and a reservation made
		// while it was up, if any.
		down func(t *testing.T, newL func(addr string) *quota.Redis) (*quota.Redis, *quota.Reservation)
	}{
		{"stopped", func(t *testing.T, newL func(string) *quota.Redis) (*quota.Redis, *quota.Reservation) {
			srv := redistest.Start(t)
			l := newL(srv.Addr)
			r, err := l.Reserve(t.Context(), t0, []quota.Limit{lim}, quota.Amount{Tokens: 10})
			if err != nil {
				t.Fatalf("Reserve while up: %v", err)
			}
			srv.Stop()
			return l, r
		}},
		{"hanging", func(t *testing.T, newL func(string) *quota.Redis) (*quota.Redis, *quota.Reservation) {
			return newL(blackHole(t)), nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, r := tc.down(t, func(addr string) *quota.Redis {
				return quota.NewRedis(newRedisClient(t, addr), quota.RedisConfig{CallTimeout: callTimeout})
			})
			ops := []struct {
				name string
				call func() error
			}{
				{"reserve", func() error {
					_, err := l.Reserve(t.Context(), t0, []quota.Limit{lim}, quota.Amount{Tokens: 1})
					return err
				}},
				{"usage", func() error { _, err := l.Usage(t.Context(), t0, lim); return err }},
				{"ping", func() error { return l.Ping(t.Context()) }},
			}
			if r != nil {
				ops = append(ops, struct {
					name string
					call func() error
				}{"reconcile", func() error { return l.Reconcile(t.Context(), r, quota.Amount{Tokens: 20}) }})
			}
			for _, op := range ops {
				start := time.Now()
				err := op.call()
				elapsed := time.Since(start)
				if !errors.Is(err, quota.ErrUnavailable) {
					t.Errorf("%s: got %v, want ErrUnavailable", op.name, err)
				}
				t.Logf("%s: %s after %s", op.name, err, elapsed)
				if elapsed > bound {
					t.Errorf("%s: took %s, want at most %s", op.name, elapsed, bound)
				}
			}
		})
	}
}

// blackHole returns the address of a server that accepts connections and
// never answers.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func startRedis(t testing.TB) string {
	t.Helper()
	return redistest.Start(t).Addr
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }
