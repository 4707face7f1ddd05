package quota_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/quota"
	"github.com/tollgate/tollgate/proxy/quota/redistest"
)

// switchable is a primary backend that can be switched off: a Memory whose
// Reserve fails with ErrUnavailable while down is set.
type switchable struct {
	*quota.Memory
	down  atomic.Bool
	calls atomic.Int64
}

func (s *switchable) Reserve(ctx context.Context, now time.Time, limits []quota.Limit, amt quota.Amount) (*quota.Reservation, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return nil, fmt.Errorf("quota reserve: %w: switched off", quota.ErrUnavailable)
	}
	return s.Memory.Reserve(ctx, now, limits, amt)
}

func bufferLogger() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

// TestFailoverRedisDown stops a real Redis under a Failover.
func TestFailoverRedisDown(t *testing.T) {
	t.Parallel()
	lim := quota.Limit{Scope: "key:k", Window: quota.Minute, Tokens: 100}
	tests := []struct {
		mode     string
		wantErr  bool
		wantWarn int
	}{
		{mode: quota.FailOpen, wantErr: false, wantWarn: 1},
		{mode: quota.FailClosed, wantErr: true, wantWarn: 1},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			primary := quota.NewRedis(newRedisClient(t, srv.Addr), quota.RedisConfig{CallTimeout: time.Second})
			fallback := quota.NewMemory(nil)
			log, logs := bufferLogger()
			f, err := quota.NewFailover(primary, fallback, tc.mode, log)
			if err != nil {
				t.Fatalf("NewFailover: %v", err)
			}
			up := reserve(t, f, t0, []quota.Limit{lim}, quota.Amount{Tokens: 10})
			wantUsage(t, primary, t0, lim, quota.Amount{Tokens: 10})

			srv.Stop()
			var down []*quota.Reservation
			for i := range 3 {
				now := t0.Add(time.Duration(i) * 2 * time.Second) // past the retry interval
				r, err := f.Reserve(t.Context(), now, []quota.Limit{lim}, quota.Amount{Tokens: 30})
				if tc.wantErr {
					if !errors.Is(err, quota.ErrUnavailable) {
						t.Fatalf("Reserve with Redis down: got %v, want ErrUnavailable", err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Reserve with Redis down: %v", err)
				}
				down = append(down, r)
			}
			if !tc.wantErr {
				// Local limits still apply: 30+30+30 fits, a fourth does not.
				exceeded(t, f, t0, []quota.Limit{lim}, quota.Amount{Tokens: 30})
				settle(t, f.Reconcile(t.Context(), down[0], quota.Amount{Tokens: 5}))
				wantUsage(t, fallback, t0, lim, quota.Amount{Tokens: 65})
			}
			// The reservation made on Redis goes back to Redis.
			if err := f.Reconcile(t.Context(), up, quota.Amount{Tokens: 1}); !errors.Is(err, quota.ErrUnavailable) {
				t.Errorf("Reconcile of a Redis reservation with Redis down: got %v, want ErrUnavailable", err)
			}
			if got := strings.Count(logs.String(), `msg="quota backend unavailable"`); got != tc.wantWarn {
				t.Errorf("got %d warnings, want %d; log:\n%s", got, tc.wantWarn, logs)
			}
		})
	}
}

// TestFailoverRecovery checks the retry interval of open mode and the routing
// of reservations to the backend that made them.
func TestFailoverRecovery(t *testing.T) {
	t.Parallel()
	lim := quota.Limit{Scope: "key:k", Window: quota.Hour, Tokens: 1000}
	amt := quota.Amount{Tokens: 10}
	primary := &switchable{Memory: quota.NewMemory(nil)}
	fallback := quota.NewMemory(nil)
	log, logs := bufferLogger()
	f, err := quota.NewFailover(primary, fallback, quota.FailOpen, log)
	if err != nil {
		t.Fatalf("NewFailover: %v", err)
	}

	primary.down.Store(true)
	onFallback := reserve(t, f, t0, []quota.Limit{lim}, amt)
	primary.down.Store(false)
	// Within the retry interval the primary is not asked.
	reserve(t, f, t0.Add(500*time.Millisecond), []quota.Limit{lim}, amt)
	if got := primary.calls.Load(); got != 1 {
		t.Errorf("primary called %d times within the retry interval, want 1", got)
	}
	onPrimary := reserve(t, f, t0.Add(time.Second), []quota.Limit{lim}, amt)
	if got := primary.calls.Load(); got != 2 {
		t.Errorf("primary called %d times after the retry interval, want 2", got)
	}
	wantUsage(t, fallback, t0, lim, quota.Amount{Tokens: 20})
	wantUsage(t, primary, t0, lim, quota.Amount{Tokens: 10})

	settle(t, f.Reconcile(t.Context(), onFallback, quota.Amount{Tokens: 1}))
	settle(t, f.Refund(t.Context(), onPrimary))
	wantUsage(t, fallback, t0, lim, quota.Amount{Tokens: 11})
	wantUsage(t, primary, t0, lim, quota.Amount{})
	if !strings.Contains(logs.String(), "quota backend recovered") {
		t.Errorf("no recovery message in log:\n%s", logs)
	}
}

func TestFailoverPassesThrough(t *testing.T) {
	t.Parallel()
	lim := quota.Limit{Scope: "key:k", Window: quota.Minute, Tokens: 100}
	tests := []struct {
		mode string
		// wantCalls counts the primary's calls: closed mode asks it every
		// time, open mode not within the retry interval after a failure.
		wantCalls int64
	}{
		{quota.FailOpen, 2},
		{quota.FailClosed, 3},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			primary := &switchable{Memory: quota.NewMemory(nil)}
			fallback := quota.NewMemory(nil)
			f, err := quota.NewFailover(primary, fallback, tc.mode, nil)
			if err != nil {
				t.Fatalf("NewFailover: %v", err)
			}
			// Exceeded on the primary is an answer, not a failure.
			exceeded(t, f, t0, []quota.Limit{lim}, quota.Amount{Tokens: 101})
			wantUsage(t, fallback, t0, lim, quota.Amount{})
			primary.down.Store(true)
			_, err = f.Reserve(t.Context(), t0, []quota.Limit{lim}, quota.Amount{Tokens: 1})
			if gotErr := err != nil; gotErr != (tc.mode == quota.FailClosed) {
				t.Fatalf("Reserve with primary down: got %v", err)
			}
			primary.down.Store(false)
			reserve(t, f, t0, []quota.Limit{lim}, quota.Amount{Tokens: 1})
			if got := primary.calls.Load(); got != tc.wantCalls {
				t.Errorf("primary called %d times, want %d", got, tc.wantCalls)
			}
		})
	}
}

func TestNewFailoverErrors(t *testing.T) {
	t.Parallel()
	m := quota.NewMemory(nil)
	tests := []struct {
		name     string
		primary  quota.Limiter
		fallback quota.Limiter
		mode     string
	}{
		{"nil primary", nil, m, quota.FailOpen},
		{"open without fallback", m, nil, quota.FailOpen},
		{"unknown mode", m, m, "ajar"},
		{"empty mode", m, m, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := quota.NewFailover(tc.primary, tc.fallback, tc.mode, nil); err == nil {
				t.Errorf("NewFailover: got nil error")
			}
		})
	}
	if _, err := quota.NewFailover(m, nil, quota.FailClosed, nil); err != nil {
		t.Errorf("closed mode without fallback: %v", err)
	}
}

// TestRecoveryAfterRedisRestart stops a real Redis and restarts it on the
// same port under limiters built by Open: while it is down, closed mode
// fails within the call timeout and open mode serves local limits; once it
// is back, both use it again without a new client or a restart.
func TestRecoveryAfterRedisRestart(t *testing.T) {
	t.Parallel()
	const callTimeout = 300 * time.Millisecond
	const bound = callTimeout + 700*time.Millisecond // slack for -race
	lim := quota.Limit{Scope: "key:k", Window: quota.Minute, Tokens: 1000}
	for _, mode := range []string{quota.FailClosed, quota.FailOpen} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			cfg := quota.Config{Backend: quota.BackendRedis, FailMode: mode, CallTimeout: callTimeout.String()}
			cfg.Redis.Addr = srv.Addr
			l, closer, err := quota.Open(cfg, nil)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { closer.Close() })
			probe := quota.NewRedis(newRedisClient(t, srv.Addr), quota.RedisConfig{CallTimeout: 5 * time.Second})

			reserve(t, l, t0, []quota.Limit{lim}, quota.Amount{Tokens: 10})
			wantUsage(t, probe, t0, lim, quota.Amount{Tokens: 10})

			srv.Stop()
			start := time.Now()
			_, err = l.Reserve(t.Context(), t0.Add(time.Second), []quota.Limit{lim}, quota.Amount{Tokens: 20})
			if elapsed := time.Since(start); elapsed > bound {
				t.Errorf("Reserve with Redis down took %s, want at most %s", elapsed, bound)
			}
			switch mode {
			case quota.FailClosed:
				if !errors.Is(err, quota.ErrUnavailable) {
					t.Fatalf("Reserve with Redis down: got %v, want ErrUnavailable", err)
				}
			case quota.FailOpen:
				if err != nil {
					t.Fatalf("Reserve with Redis down, fail open: %v", err)
				}
			}

			srv.Restart()
			// Past the fail-open retry interval, the next request goes to
			// Redis again; closed mode goes there on every request.
			reserve(t, l, t0.Add(5*time.Second), []quota.Limit{lim}, quota.Amount{Tokens: 30})
			// The restarted Redis is empty: only the charge made after the
			// restart is there, proof that the limiter is using it.
			wantUsage(t, probe, t0, lim, quota.Amount{Tokens: 30})
		})
	}
}
