package quota_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
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

// newClusterClient returns a cluster client configured like Open's, closed
// at cleanup.
func newClusterClient(t testing.TB, addrs []string) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 addrs,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           2 * time.Second,
	})
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close redis cluster client: %v", err)
		}
	})
	return c
}

// clusterLimiters starts a three-master Redis Cluster and returns a
// constructor of limiters on it, each with its own key prefix.
func clusterLimiters(t *testing.T) newLimiter {
	t.Helper()
	client := newClusterClient(t, redistest.StartCluster(t).Addrs)
	var n atomic.Int64
	return func(_ *testing.T, loc *time.Location) testLimiter {
		return quota.NewRedis(client, quota.RedisConfig{
			Prefix:      fmt.Sprintf("c%d", n.Add(1)),
			Location:    loc,
			CallTimeout: 5 * time.Second,
		})
	}
}

func TestRedisConcurrentExtend(t *testing.T) {
	t.Parallel()
	testConcurrentExtend(t, redisLimiters(t)(t, nil))
}

func TestClusterConformance(t *testing.T) {
	t.Parallel()
	testConformance(t, clusterLimiters(t))
}

func TestClusterConcurrent(t *testing.T) {
	t.Parallel()
	newL := clusterLimiters(t)
	t.Run("reserve", func(t *testing.T) { t.Parallel(); testConcurrent(t, newL(t, nil)) })
	t.Run("extend", func(t *testing.T) { t.Parallel(); testConcurrentExtend(t, newL(t, nil)) })
}

func TestClusterRandomized(t *testing.T) {
	t.Parallel()
	testRandomized(t, clusterLimiters(t)(t, nil), 1000)
}

// TestClusterSpreadsScopes checks that the scopes of one request really live
// on different nodes of the cluster, so that the suite above exercises the
// per-slot protocol, and that the keys of one scope share a node.
func TestClusterSpreadsScopes(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	client := newClusterClient(t, c.Addrs)
	l := quota.NewRedis(client, quota.RedisConfig{})
	limits := []quota.Limit{
		{Scope: "key:k1", Window: quota.Minute, Tokens: 100, Requests: 10},
		{Scope: "team:ml", Window: quota.Day, Tokens: 1000, USDMicros: 100},
		{Scope: "org:acme", Window: quota.Month, Tokens: 1000},
	}
	if _, err := l.Reserve(t.Context(), t0, limits, quota.Amount{Tokens: 5, Requests: 1, USDMicros: 3}); err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	nodes := map[string]string{} // scope -> node address
	for _, addr := range c.Addrs {
		node := newRedisClient(t, addr)
		keys, err := node.Keys(t.Context(), "*").Result()
		if err != nil {
			t.Fatalf("KEYS on %s: %v", addr, err)
		}
		for _, k := range keys {
			scope := k[strings.IndexByte(k, '{')+1 : strings.IndexByte(k, '}')]
			if prev, ok := nodes[scope]; ok && prev != addr {
				t.Errorf("scope %s on %s and %s, want one node", scope, prev, addr)
			}
			nodes[scope] = addr
		}
	}
	if len(nodes) != 3 {
		t.Fatalf("found scopes %v, want 3", nodes)
	}
	distinct := map[string]bool{}
	for _, addr := range nodes {
		distinct[addr] = true
	}
	if len(distinct) < 2 {
		t.Errorf("all scopes on one node %v; the test needs scopes on different nodes", nodes)
	}
}

// TestClusterNodeDown stops the node that owns one scope: a reservation over
// that scope and another fails with ErrUnavailable and leaves no charge on
// the other scope (the slots before the failing one are rolled back).
func TestClusterNodeDown(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	client := newClusterClient(t, c.Addrs)
	l := quota.NewRedis(client, quota.RedisConfig{CallTimeout: time.Second})
	var scopes []quota.Limit
	for _, s := range []string{"key:k1", "team:ml", "org:acme", "user:u1", "team:search"} {
		scopes = append(scopes, quota.Limit{Scope: s, Window: quota.Minute, Tokens: 1000})
	}
	if _, err := l.Reserve(t.Context(), t0, scopes, quota.Amount{Tokens: 1}); err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	owner := func(scope string) int {
		for i, addr := range c.Addrs {
			n, err := newRedisClient(t, addr).Exists(t.Context(), "tollgate:{"+scope+"}:tokens:minute:202611251200").Result()
			if err != nil && strings.HasPrefix(err.Error(), "MOVED") {
				continue // another node owns the slot
			}
			if err != nil {
				t.Fatalf("EXISTS on %s: %v", addr, err)
			}
			if n == 1 {
				return i
			}
		}
		t.Fatalf("scope %s on no node", scope)
		return -1
	}
	// Stop the node of the first scope and pair it with a scope on another
	// node. Whichever comes first in slot order, the request fails; when
	// the live one comes first it is charged and must be rolled back.
	down := owner(scopes[0].Scope)
	var other quota.Limit
	for _, s := range scopes[1:] {
		if owner(s.Scope) != down {
			other = s
			break
		}
	}
	if other.Scope == "" {
		t.Fatalf("all scopes on node %d", down)
	}
	c.Nodes[down].Stop()
	for _, order := range [][]quota.Limit{{scopes[0], other}, {other, scopes[0]}} {
		_, err := l.Reserve(t.Context(), t0, order, quota.Amount{Tokens: 10})
		if !errors.Is(err, quota.ErrUnavailable) {
			t.Errorf("Reserve with node %s down: got %v, want ErrUnavailable", c.Addrs[down], err)
		}
	}
	wantUsage(t, l, t0, other, quota.Amount{Tokens: 1})
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
