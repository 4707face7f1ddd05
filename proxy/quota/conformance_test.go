package quota_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // America/New_York without depending on the host's zoneinfo

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate/tollgate/proxy/quota"
)

// testLimiter is a backend under test: a Limiter whose counters can be read
// and whose reservations can grow.
type testLimiter interface {
	quota.Limiter
	Extend(ctx context.Context, now time.Time, r *quota.Reservation, add quota.Amount) error
	Usage(ctx context.Context, now time.Time, limit quota.Limit) (quota.Amount, error)
	Reset(ctx context.Context, now time.Time, limit quota.Limit) error
}

// newLimiter returns a fresh, empty limiter aligning days and months in loc.
type newLimiter func(t *testing.T, loc *time.Location) testLimiter

var (
	// t0 is the default "now" of the suite; its minute ends at minuteEnd.
	t0        = time.Date(2026, 11, 25, 12, 0, 30, 0, time.UTC)
	minuteEnd = time.Date(2026, 11, 25, 12, 1, 0, 0, time.UTC)
)

func newYork(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatalf("load location: %v", err)
	}
	return loc
}

func reserve(t *testing.T, l quota.Limiter, now time.Time, limits []quota.Limit, amt quota.Amount) *quota.Reservation {
	t.Helper()
	r, err := l.Reserve(t.Context(), now, limits, amt)
	if err != nil {
		t.Fatalf("Reserve(%s, %+v): %v", now.Format(time.RFC3339Nano), amt, err)
	}
	return r
}

func exceeded(t *testing.T, l quota.Limiter, now time.Time, limits []quota.Limit, amt quota.Amount) *quota.ExceededError {
	t.Helper()
	r, err := l.Reserve(t.Context(), now, limits, amt)
	if err == nil {
		t.Fatalf("Reserve(%s, %+v): admitted with status %+v, want ErrExceeded", now.Format(time.RFC3339Nano), amt, r.Status)
	}
	if !errors.Is(err, quota.ErrExceeded) {
		t.Fatalf("Reserve(%s, %+v): got %v, want ErrExceeded", now.Format(time.RFC3339Nano), amt, err)
	}
	var ex *quota.ExceededError
	if !errors.As(err, &ex) {
		t.Fatalf("Reserve: %T is not *ExceededError", err)
	}
	return ex
}

func wantUsage(t *testing.T, l testLimiter, now time.Time, lim quota.Limit, want quota.Amount) {
	t.Helper()
	got, err := l.Usage(t.Context(), now, lim)
	if err != nil {
		t.Fatalf("Usage(%s): %v", lim.Scope, err)
	}
	if got != want {
		t.Errorf("Usage(%s %s at %s): got %+v, want %+v", lim.Scope, lim.Window, now.Format(time.RFC3339), got, want)
	}
}

func settle(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("settle: %v", err)
	}
}

var ignoreUnexported = cmpopts.IgnoreUnexported(quota.ExceededError{})

// testConformance runs the behaviour every Limiter backend must have.
func testConformance(t *testing.T, newL newLimiter) {
	keyMin := quota.Limit{Scope: "key:k1", Window: quota.Minute, Tokens: 1000, Requests: 10}
	teamDay := quota.Limit{Scope: "team:ml", Window: quota.Day, Tokens: 500}
	dayEnd := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

	tests := []struct {
		name string
		loc  *time.Location
		run  func(t *testing.T, l testLimiter)
	}{
		{name: "reset zeroes one scope and window", run: func(t *testing.T, l testLimiter) {
			settle(t, l.Reconcile(t.Context(), reserve(t, l, t0, []quota.Limit{keyMin, teamDay}, quota.Amount{Tokens: 450, Requests: 1}), quota.Amount{Tokens: 450, Requests: 1}))
			exceeded(t, l, t0, []quota.Limit{teamDay}, quota.Amount{Tokens: 100})
			if err := l.Reset(t.Context(), t0, teamDay); err != nil {
				t.Fatal(err)
			}
			wantUsage(t, l, t0, teamDay, quota.Amount{})
			wantUsage(t, l, t0, keyMin, quota.Amount{Tokens: 450, Requests: 1})
			reserve(t, l, t0, []quota.Limit{teamDay}, quota.Amount{Tokens: 100})
		}},
		{name: "reserve within limit", run: func(t *testing.T, l testLimiter) {
			amt := quota.Amount{Tokens: 400, Requests: 1}
			r := reserve(t, l, t0, []quota.Limit{keyMin}, amt)
			want := []quota.Status{
				{Limit: keyMin, Dimension: quota.DimensionTokens, Remaining: 600, ResetAt: minuteEnd},
				{Limit: keyMin, Dimension: quota.DimensionRequests, Remaining: 9, ResetAt: minuteEnd},
			}
			if diff := cmp.Diff(want, r.Status); diff != "" {
				t.Errorf("Status mismatch (-want +got):\n%s", diff)
			}
			if got := r.Amount(); got != amt {
				t.Errorf("Amount: got %+v, want %+v", got, amt)
			}
			wantUsage(t, l, t0, keyMin, amt)
		}},
		{name: "exceeded reports remaining and reset", run: func(t *testing.T, l testLimiter) {
			reserve(t, l, t0, []quota.Limit{keyMin}, quota.Amount{Tokens: 800})
			now := t0.Add(200 * time.Millisecond)
			ex := exceeded(t, l, now, []quota.Limit{keyMin}, quota.Amount{Tokens: 300})
			want := &quota.ExceededError{Limit: keyMin, Dimension: quota.DimensionTokens,
				Used: 800, Remaining: 200, Requested: 300, ResetAt: minuteEnd}
			if diff := cmp.Diff(want, ex, ignoreUnexported); diff != "" {
				t.Errorf("ExceededError mismatch (-want +got):\n%s", diff)
			}
			if got := ex.RetryAfter(); got != 30*time.Second {
				t.Errorf("RetryAfter 29.8s before reset: got %s, want 30s", got)
			}
			ex = exceeded(t, l, minuteEnd.Add(-time.Millisecond), []quota.Limit{keyMin}, quota.Amount{Tokens: 300})
			if got := ex.RetryAfter(); got != time.Second {
				t.Errorf("RetryAfter 1ms before reset: got %s, want 1s", got)
			}
			wantUsage(t, l, t0, keyMin, quota.Amount{Tokens: 800})
		}},
		{name: "request larger than the limit", run: func(t *testing.T, l testLimiter) {
			ex := exceeded(t, l, t0, []quota.Limit{keyMin}, quota.Amount{Tokens: 1001})
			want := &quota.ExceededError{Limit: keyMin, Dimension: quota.DimensionTokens,
				Used: 0, Remaining: 1000, Requested: 1001, ResetAt: minuteEnd}
			if diff := cmp.Diff(want, ex, ignoreUnexported); diff != "" {
				t.Errorf("ExceededError mismatch (-want +got):\n%s", diff)
			}
			wantUsage(t, l, t0, keyMin, quota.Amount{})
		}},
		{name: "all or nothing across scopes", run: func(t *testing.T, l testLimiter) {
			reserve(t, l, t0, []quota.Limit{teamDay}, quota.Amount{Tokens: 450})
			ex := exceeded(t, l, t0, []quota.Limit{keyMin, teamDay}, quota.Amount{Tokens: 100, Requests: 1})
			if ex.Limit != teamDay || ex.Used != 450 || ex.Remaining != 50 || !ex.ResetAt.Equal(dayEnd) {
				t.Errorf("got %+v, want team:ml used 450 remaining 50 reset %s", ex, dayEnd)
			}
			wantUsage(t, l, t0, keyMin, quota.Amount{})
			reserve(t, l, t0, []quota.Limit{keyMin, teamDay}, quota.Amount{Tokens: 50, Requests: 1})
			wantUsage(t, l, t0, keyMin, quota.Amount{Tokens: 50, Requests: 1})
			wantUsage(t, l, t0, teamDay, quota.Amount{Tokens: 500})
		}},
		{name: "all or nothing whichever scope refuses", run: func(t *testing.T, l testLimiter) {
			// On a cluster the scopes live in different slots, reserved in
			// slot order: filling each scope in turn makes both the first
			// and the last slot refuse, and the other must be rolled back.
			key := quota.Limit{Scope: "key:k9", Window: quota.Minute, Tokens: 100}
			team := quota.Limit{Scope: "team:other", Window: quota.Minute, Tokens: 100}
			both := []quota.Limit{key, team}
			for _, full := range []quota.Limit{key, team} {
				r := reserve(t, l, t0, []quota.Limit{full}, quota.Amount{Tokens: 95})
				ex := exceeded(t, l, t0, both, quota.Amount{Tokens: 10})
				if ex.Limit != full || ex.Used != 95 {
					t.Errorf("refused by %s used %d, want %s used 95", ex.Limit.Scope, ex.Used, full.Scope)
				}
				wantUsage(t, l, t0, key, quota.Amount{Tokens: r.Amount().Tokens * boolInt(full == key)})
				wantUsage(t, l, t0, team, quota.Amount{Tokens: r.Amount().Tokens * boolInt(full == team)})
				settle(t, l.Refund(t.Context(), r))
			}
			reserve(t, l, t0, both, quota.Amount{Tokens: 100})
			wantUsage(t, l, t0, key, quota.Amount{Tokens: 100})
			wantUsage(t, l, t0, team, quota.Amount{Tokens: 100})
		}},
		{name: "extend within limits", run: func(t *testing.T, l testLimiter) {
			r := reserve(t, l, t0, []quota.Limit{keyMin, teamDay}, quota.Amount{Tokens: 100, Requests: 1})
			if err := l.Extend(t.Context(), t0.Add(time.Second), r, quota.Amount{Tokens: 300}); err != nil {
				t.Fatalf("Extend: %v", err)
			}
			if got, want := r.Amount(), (quota.Amount{Tokens: 400, Requests: 1}); got != want {
				t.Errorf("Amount after Extend: got %+v, want %+v", got, want)
			}
			wantUsage(t, l, t0, keyMin, quota.Amount{Tokens: 400, Requests: 1})
			wantUsage(t, l, t0, teamDay, quota.Amount{Tokens: 400})
			// Reconcile replaces the grown amount.
			settle(t, l.Reconcile(t.Context(), r, quota.Amount{Tokens: 250, Requests: 1}))
			wantUsage(t, l, t0, keyMin, quota.Amount{Tokens: 250, Requests: 1})
			wantUsage(t, l, t0, teamDay, quota.Amount{Tokens: 250})
		}},
		{name: "extend refused charges nothing", run: func(t *testing.T, l testLimiter) {
			r := reserve(t, l, t0, []quota.Limit{keyMin, teamDay}, quota.Amount{Tokens: 100, Requests: 1})
			reserve(t, l, t0, []quota.Limit{keyMin}, quota.Amount{Tokens: 850})
			// key:k1 is at 950 of 1000, team:ml at 100 of 500.
			err := l.Extend(t.Context(), t0, r, quota.Amount{Tokens: 60})
			var ex *quota.ExceededError
			if !errors.As(err, &ex) || !errors.Is(err, quota.ErrExceeded) {
				t.Fatalf("Extend: got %v, want *ExceededError", err)
			}
			want := &quota.ExceededError{Limit: quota.Limit{Scope: "key:k1", Window: quota.Minute, Tokens: 1000},
				Dimension: quota.DimensionTokens, Used: 950, Remaining: 50, Requested: 60, ResetAt: minuteEnd}
			if diff := cmp.Diff(want, ex, ignoreUnexported); diff != "" {
				t.Errorf("ExceededError mismatch (-want +got):\n%s", diff)
			}
			if got, want := r.Amount(), (quota.Amount{Tokens: 100, Requests: 1}); got != want {
				t.Errorf("Amount after refused Extend: got %+v, want %+v", got, want)
			}
			wantUsage(t, l, t0, keyMin, quota.Amount{Tokens: 950, Requests: 1})
			wantUsage(t, l, t0, teamDay, quota.Amount{Tokens: 100})
			// The remaining room is still granted.
			if err := l.Extend(t.Context(), t0, r, quota.Amount{Tokens: 50}); err != nil {
				t.Fatalf("Extend to the limit: %v", err)
			}
			settle(t, l.Refund(t.Context(), r))
			wantUsage(t, l, t0, keyMin, quota.Amount{Tokens: 850})
			wantUsage(t, l, t0, teamDay, quota.Amount{})
		}},
		{name: "extend keeps the reservation's window", run: func(t *testing.T, l testLimiter) {
			before := minuteEnd.Add(-time.Millisecond)
			r := reserve(t, l, before, []quota.Limit{keyMin}, quota.Amount{Tokens: 100, Requests: 1})
			if err := l.Extend(t.Context(), minuteEnd.Add(10*time.Second), r, quota.Amount{Tokens: 900}); err != nil {
				t.Fatalf("Extend after the window ended: %v", err)
			}
			wantUsage(t, l, before, keyMin, quota.Amount{Tokens: 1000, Requests: 1})
			wantUsage(t, l, minuteEnd, keyMin, quota.Amount{})
		}},
		{name: "extend invalid", run: func(t *testing.T, l testLimiter) {
			r := reserve(t, l, t0, []quota.Limit{keyMin}, quota.Amount{Tokens: 100, Requests: 1})
			for name, call := range map[string]func() error{
				"negative": func() error { return l.Extend(t.Context(), t0, r, quota.Amount{Tokens: -1}) },
				"nil":      func() error { return l.Extend(t.Context(), t0, nil, quota.Amount{Tokens: 1}) },
				"foreign":  func() error { return l.Extend(t.Context(), t0, &quota.Reservation{}, quota.Amount{Tokens: 1}) },
			} {
				if err := call(); err == nil || errors.Is(err, quota.ErrExceeded) {
					t.Errorf("%s: got %v, want a plain validation error", name, err)
				}
			}
			settle(t, l.Reconcile(t.Context(), r, quota.Amount{Tokens: 10, Requests: 1}))
			if err := l.Extend(t.Context(), t0, r, quota.Amount{Tokens: 1}); err == nil {
				t.Errorf("Extend of a settled reservation: got nil error")
			}
			wantUsage(t, l, t0, keyMin, quota.Amount{Tokens: 10, Requests: 1})
		}},
		{name: "several exceeded reports the latest reset", run: func(t *testing.T, l testLimiter) {
			reserve(t, l, t0, []quota.Limit{keyMin, teamDay}, quota.Amount{Tokens: 500})
			ex := exceeded(t, l, t0, []quota.Limit{keyMin, teamDay}, quota.Amount{Tokens: 600})
			if ex.Limit != teamDay || !ex.ResetAt.Equal(dayEnd) {
				t.Errorf("got %s reset %s, want team:ml reset %s", ex.Limit.Scope, ex.ResetAt, dayEnd)
			}
		}},
		{name: "reconcile down", run: func(t *testing.T, l testLimiter) {
			r := reserve(t, l, t0, []quota.Limit{keyMin, teamDay}, quota.Amount{Tokens: 400, Requests: 1})
			settle(t, l.Reconcile(t.Context(), r, quota.Amount{Tokens: 150, Requests: 1}))
			wantUsage(t, l, t0, keyMin, quota.Amount{Tokens: 150, Requests: 1})
			wantUsage(t, l, t0, teamDay, quota.Amount{Tokens: 150})
		}},
		{name: "reconcile up beyond the limit", run: func(t *testing.T, l testLimiter) {
			r := reserve(t, l, t0, []quota.Limit{keyMin}, quota.Amount{Tokens: 500, Requests: 1})
			settle(t, l.Reconcile(t.Context(), r, quota.Amount{Tokens: 1500, Requests: 1}))
			wantUsage(t, l, t0, keyMin, quota.Amount{Tokens: 1500, Requests: 1})
			ex := exceeded(t, l, t0, []quota.Limit{keyMin}, quota.Amount{Tokens: 1})
			if ex.Used != 1500 || ex.Remaining != 0 {
				t.Errorf("got used %d remaining %d, want 1500 and 0", ex.Used, ex.Remaining)
			}
		}},
		{name: "refund", run: func(t *testing.T, l testLimiter) {
			keep := reserve(t, l, t0, []quota.Limit{keyMin}, quota.Amount{Tokens: 100, Requests: 1})
			r := reserve(t, l, t0, []quota.Limit{keyMin, teamDay}, quota.Amount{Tokens: 400, Requests: 1})
			settle(t, l.Refund(t.Context(), r))
			wantUsage(t, l, t0, keyMin, keep.Amount())
			wantUsage(t, l, t0, teamDay, quota.Amount{})
		}},
		{name: "settling twice is a no-op", run: func(t *testing.T, l testLimiter) {
			r := reserve(t, l, t0, []quota.Limit{keyMin}, quota.Amount{Tokens: 400, Requests: 1})
			settle(t, l.Reconcile(t.Context(), r, quota.Amount{Tokens: 200, Requests: 1}))
			settle(t, l.Reconcile(t.Context(), r, quota.Amount{Tokens: 300, Requests: 1}))
			settle(t, l.Refund(t.Context(), r))
			wantUsage(t, l, t0, keyMin, quota.Amount{Tokens: 200, Requests: 1})
		}},
		{name: "concurrent settling applies once", run: func(t *testing.T, l testLimiter) {
			r := reserve(t, l, t0, []quota.Limit{keyMin}, quota.Amount{Tokens: 400, Requests: 1})
			var wg sync.WaitGroup
			errs := make(chan error, 20)
			for range 20 {
				wg.Go(func() { errs <- l.Reconcile(context.Background(), r, quota.Amount{Tokens: 100, Requests: 1}) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				settle(t, err)
			}
			wantUsage(t, l, t0, keyMin, quota.Amount{Tokens: 100, Requests: 1})
		}},
		{name: "invalid settle arguments", run: func(t *testing.T, l testLimiter) {
			r := reserve(t, l, t0, []quota.Limit{keyMin}, quota.Amount{Tokens: 400, Requests: 1})
			if err := l.Reconcile(t.Context(), r, quota.Amount{Tokens: -1}); err == nil {
				t.Errorf("Reconcile with negative amount: got nil error")
			}
			if err := l.Reconcile(t.Context(), nil, quota.Amount{}); err == nil {
				t.Errorf("Reconcile(nil): got nil error")
			}
			if err := l.Refund(t.Context(), &quota.Reservation{}); err == nil {
				t.Errorf("Refund of a foreign reservation: got nil error")
			}
			// The rejected calls did not settle r.
			settle(t, l.Reconcile(t.Context(), r, quota.Amount{Tokens: 10, Requests: 1}))
			wantUsage(t, l, t0, keyMin, quota.Amount{Tokens: 10, Requests: 1})
		}},
		{name: "minute rollover", run: func(t *testing.T, l testLimiter) {
			before := minuteEnd.Add(-time.Millisecond)
			r := reserve(t, l, before, []quota.Limit{keyMin}, quota.Amount{Tokens: 1000})
			exceeded(t, l, before, []quota.Limit{keyMin}, quota.Amount{Tokens: 1})
			next := reserve(t, l, minuteEnd, []quota.Limit{keyMin}, quota.Amount{Tokens: 1000})
			if got, want := next.Status[0].ResetAt, minuteEnd.Add(time.Minute); !got.Equal(want) {
				t.Errorf("ResetAt: got %s, want %s", got, want)
			}
			// Reconcile reaches the bucket of the reservation, not the current one.
			settle(t, l.Reconcile(t.Context(), r, quota.Amount{Tokens: 10}))
			wantUsage(t, l, before, keyMin, quota.Amount{Tokens: 10})
			wantUsage(t, l, minuteEnd, keyMin, quota.Amount{Tokens: 1000})
		}},
		{name: "hour rollover", run: func(t *testing.T, l testLimiter) {
			lim := quota.Limit{Scope: "key:k1", Window: quota.Hour, Requests: 1}
			hourEnd := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
			reserve(t, l, t0, []quota.Limit{lim}, quota.Amount{Requests: 1})
			ex := exceeded(t, l, hourEnd.Add(-time.Nanosecond), []quota.Limit{lim}, quota.Amount{Requests: 1})
			if !ex.ResetAt.Equal(hourEnd) {
				t.Errorf("ResetAt: got %s, want %s", ex.ResetAt, hourEnd)
			}
			reserve(t, l, hourEnd, []quota.Limit{lim}, quota.Amount{Requests: 1})
		}},
		{name: "day aligned to the configured location", loc: newYork(t), run: func(t *testing.T, l testLimiter) {
			ny := newYork(t)
			lim := quota.Limit{Scope: "team:ml", Window: quota.Day, Tokens: 100}
			nyMidnight := time.Date(2026, 11, 26, 0, 0, 0, 0, ny) // 05:00 UTC
			reserve(t, l, time.Date(2026, 11, 25, 18, 59, 59, 0, ny), []quota.Limit{lim}, quota.Amount{Tokens: 60})
			// 19:00 in New York is midnight UTC: the day goes on.
			utcMidnight := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
			r := reserve(t, l, utcMidnight, []quota.Limit{lim}, quota.Amount{Tokens: 40})
			if got := r.Status[0]; got.Remaining != 0 || !got.ResetAt.Equal(nyMidnight) {
				t.Errorf("Status: got remaining %d reset %s, want 0 and %s", got.Remaining, got.ResetAt, nyMidnight)
			}
			ex := exceeded(t, l, nyMidnight.Add(-time.Second), []quota.Limit{lim}, quota.Amount{Tokens: 1})
			if !ex.ResetAt.Equal(nyMidnight) || ex.RetryAfter() != time.Second {
				t.Errorf("got reset %s retry after %s, want %s and 1s", ex.ResetAt, ex.RetryAfter(), nyMidnight)
			}
			reserve(t, l, nyMidnight, []quota.Limit{lim}, quota.Amount{Tokens: 100})
			wantUsage(t, l, utcMidnight, lim, quota.Amount{Tokens: 100})
			wantUsage(t, l, nyMidnight, lim, quota.Amount{Tokens: 100})
		}},
		{name: "month aligned to the configured location", loc: newYork(t), run: func(t *testing.T, l testLimiter) {
			ny := newYork(t)
			lim := quota.Limit{Scope: "org:acme", Window: quota.Month, USDMicros: 5_000_000}
			// 2026-12-01 03:00 UTC is still November in New York.
			r := reserve(t, l, time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC), []quota.Limit{lim}, quota.Amount{USDMicros: 5_000_000})
			if got, want := r.Status[0].ResetAt, time.Date(2026, 12, 1, 0, 0, 0, 0, ny); !got.Equal(want) {
				t.Errorf("ResetAt: got %s, want %s", got, want)
			}
			reserve(t, l, time.Date(2026, 12, 1, 0, 0, 0, 0, ny), []quota.Limit{lim}, quota.Amount{USDMicros: 5_000_000})
		}},
		{name: "requests dimension", run: func(t *testing.T, l testLimiter) {
			lim := quota.Limit{Scope: "key:k2", Window: quota.Minute, Requests: 2}
			amt := quota.Amount{Tokens: 1 << 40, Requests: 1}
			reserve(t, l, t0, []quota.Limit{lim}, amt)
			r := reserve(t, l, t0, []quota.Limit{lim}, amt)
			if s, ok := r.Tightest(quota.DimensionRequests); !ok || s.Remaining != 0 {
				t.Errorf("Tightest(requests): got %+v, %t; want remaining 0", s, ok)
			}
			if s, ok := r.Tightest(quota.DimensionTokens); ok {
				t.Errorf("Tightest(tokens): got %+v, want none (tokens unlimited)", s)
			}
			ex := exceeded(t, l, t0, []quota.Limit{lim}, amt)
			if ex.Dimension != quota.DimensionRequests || ex.Used != 2 || ex.Remaining != 0 || ex.Requested != 1 {
				t.Errorf("got %+v, want requests used 2 remaining 0 requested 1", ex)
			}
			// Only limited dimensions are counted.
			wantUsage(t, l, t0, lim, quota.Amount{Requests: 2})
		}},
		{name: "usd dimension", run: func(t *testing.T, l testLimiter) {
			lim := quota.Limit{Scope: "team:ml", Window: quota.Day, USDMicros: 1_000_000}
			r := reserve(t, l, t0, []quota.Limit{lim}, quota.Amount{USDMicros: 600_000, Requests: 1})
			ex := exceeded(t, l, t0, []quota.Limit{lim}, quota.Amount{USDMicros: 500_000})
			if ex.Dimension != quota.DimensionUSD || ex.Used != 600_000 || ex.Remaining != 400_000 {
				t.Errorf("got %+v, want usd used 600000 remaining 400000", ex)
			}
			settle(t, l.Reconcile(t.Context(), r, quota.Amount{USDMicros: 300_000, Requests: 1}))
			reserve(t, l, t0, []quota.Limit{lim}, quota.Amount{USDMicros: 500_000})
			wantUsage(t, l, t0, lim, quota.Amount{USDMicros: 800_000})
		}},
		{name: "limits sharing a bucket charge it once", run: func(t *testing.T, l testLimiter) {
			loose := quota.Limit{Scope: "team:ml", Window: quota.Minute, Tokens: 1000}
			tight := quota.Limit{Scope: "team:ml", Window: quota.Minute, Tokens: 300}
			r := reserve(t, l, t0, []quota.Limit{loose, tight}, quota.Amount{Tokens: 200})
			want := []quota.Status{
				{Limit: loose, Dimension: quota.DimensionTokens, Remaining: 800, ResetAt: minuteEnd},
				{Limit: tight, Dimension: quota.DimensionTokens, Remaining: 100, ResetAt: minuteEnd},
			}
			if diff := cmp.Diff(want, r.Status); diff != "" {
				t.Errorf("Status mismatch (-want +got):\n%s", diff)
			}
			wantUsage(t, l, t0, loose, quota.Amount{Tokens: 200})
			ex := exceeded(t, l, t0, []quota.Limit{loose, tight}, quota.Amount{Tokens: 200})
			if ex.Limit != tight {
				t.Errorf("exceeded limit: got %+v, want %+v", ex.Limit, tight)
			}
		}},
		{name: "tightest status", run: func(t *testing.T, l testLimiter) {
			key := quota.Limit{Scope: "key:k1", Window: quota.Minute, Tokens: 1000, Requests: 60}
			team := quota.Limit{Scope: "team:ml", Window: quota.Day, Tokens: 10_000}
			reserve(t, l, t0, []quota.Limit{team}, quota.Amount{Tokens: 9500})
			r := reserve(t, l, t0, []quota.Limit{key, team}, quota.Amount{Tokens: 100, Requests: 1})
			tests := []struct {
				dim  string
				want quota.Status
				ok   bool
			}{
				{quota.DimensionTokens, quota.Status{Limit: team, Dimension: quota.DimensionTokens, Remaining: 400, ResetAt: dayEnd}, true},
				{quota.DimensionRequests, quota.Status{Limit: key, Dimension: quota.DimensionRequests, Remaining: 59, ResetAt: minuteEnd}, true},
				{quota.DimensionUSD, quota.Status{}, false},
			}
			for _, tc := range tests {
				got, ok := r.Tightest(tc.dim)
				if ok != tc.ok {
					t.Errorf("Tightest(%s): got ok %t, want %t", tc.dim, ok, tc.ok)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("Tightest(%s) mismatch (-want +got):\n%s", tc.dim, diff)
				}
			}
		}},
		{name: "no limits", run: func(t *testing.T, l testLimiter) {
			r := reserve(t, l, t0, nil, quota.Amount{Tokens: 5, Requests: 1})
			if len(r.Status) != 0 {
				t.Errorf("Status: got %+v, want none", r.Status)
			}
			settle(t, l.Reconcile(t.Context(), r, quota.Amount{Tokens: 7, Requests: 1}))
			unlimited := quota.Limit{Scope: "key:k1", Window: quota.Minute}
			reserve(t, l, t0, []quota.Limit{unlimited}, quota.Amount{Tokens: 1 << 50})
			wantUsage(t, l, t0, unlimited, quota.Amount{})
		}},
		{name: "invalid reservations", run: func(t *testing.T, l testLimiter) {
			tests := []struct {
				name   string
				limits []quota.Limit
				amt    quota.Amount
			}{
				{"empty scope", []quota.Limit{{Window: quota.Minute, Tokens: 1}}, quota.Amount{}},
				{"unknown window", []quota.Limit{{Scope: "key:k1", Window: "week", Tokens: 1}}, quota.Amount{}},
				{"negative limit", []quota.Limit{{Scope: "key:k1", Window: quota.Minute, Tokens: -1}}, quota.Amount{}},
				{"negative amount", []quota.Limit{keyMin}, quota.Amount{Tokens: -5}},
			}
			for _, tc := range tests {
				_, err := l.Reserve(t.Context(), t0, tc.limits, tc.amt)
				if err == nil || errors.Is(err, quota.ErrExceeded) || errors.Is(err, quota.ErrUnavailable) {
					t.Errorf("%s: got %v, want a plain validation error", tc.name, err)
				}
			}
			wantUsage(t, l, t0, keyMin, quota.Amount{})
		}},
		{name: "cancelled context", run: func(t *testing.T, l testLimiter) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, err := l.Reserve(ctx, t0, []quota.Limit{keyMin}, quota.Amount{Tokens: 1})
			if !errors.Is(err, context.Canceled) || errors.Is(err, quota.ErrUnavailable) {
				t.Errorf("got %v, want context.Canceled without ErrUnavailable", err)
			}
			wantUsage(t, l, t0, keyMin, quota.Amount{})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			loc := tc.loc
			if loc == nil {
				loc = time.UTC
			}
			tc.run(t, newL(t, loc))
		})
	}
}

// testConcurrent has 50 goroutines race for one shared limit (and one of five
// per-key limits): the admitted total must never exceed either.
func testConcurrent(t *testing.T, l testLimiter) {
	const (
		workers  = 50
		attempts = 10
		size     = 7
	)
	team := quota.Limit{Scope: "team:race", Window: quota.Minute, Tokens: 1000}
	keys := make([]quota.Limit, 5)
	for i := range keys {
		keys[i] = quota.Limit{Scope: fmt.Sprintf("key:race%d", i), Window: quota.Minute, Tokens: 300}
	}
	admitted := make([]int64, workers)
	errs := make(chan error, workers*attempts)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			<-start
			limits := []quota.Limit{keys[w%len(keys)], team}
			for range attempts {
				_, err := l.Reserve(context.Background(), t0, limits, quota.Amount{Tokens: size})
				switch {
				case err == nil:
					admitted[w]++
				case !errors.Is(err, quota.ErrExceeded):
					errs <- err
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Reserve: %v", err)
	}
	var total int64
	perKey := make([]int64, len(keys))
	for w, n := range admitted {
		total += n
		perKey[w%len(keys)] += n
	}
	// The team limit binds: the keys together would allow 5*294 tokens.
	if want := int64(team.Tokens / size); total != want {
		t.Errorf("admitted %d requests, want %d", total, want)
	}
	wantUsage(t, l, t0, team, quota.Amount{Tokens: total * size})
	for i, k := range keys {
		if perKey[i]*size > k.Tokens {
			t.Errorf("%s admitted %d tokens, over its limit %d", k.Scope, perKey[i]*size, k.Tokens)
		}
		wantUsage(t, l, t0, k, quota.Amount{Tokens: perKey[i] * size})
	}
}

// testConcurrentExtend has 30 goroutines each reserve a little and then grow
// their reservation step by step until refused, over two scopes (two slots
// on a cluster, so refusals roll back): the counters must never pass the
// limit and must end equal to the sum of the charges.
func testConcurrentExtend(t *testing.T, l testLimiter) {
	const (
		workers = 30
		first   = 10
		step    = 7
	)
	team := quota.Limit{Scope: "team:grow", Window: quota.Minute, Tokens: 2000}
	key := quota.Limit{Scope: "key:grow", Window: quota.Minute, Tokens: 1500}
	limits := []quota.Limit{key, team}
	charged := make([]int64, workers)
	errs := make(chan error, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			<-start
			ctx := context.Background()
			r, err := l.Reserve(ctx, t0, limits, quota.Amount{Tokens: first})
			if errors.Is(err, quota.ErrExceeded) {
				return
			}
			if err != nil {
				errs <- err
				return
			}
			for {
				err := l.Extend(ctx, t0, r, quota.Amount{Tokens: step})
				if errors.Is(err, quota.ErrExceeded) {
					break
				}
				if err != nil {
					errs <- err
					return
				}
			}
			// Half the workers give some back, as a stream that ends early.
			actual := r.Amount()
			if w%2 == 1 {
				actual.Tokens -= step
			}
			if err := l.Reconcile(ctx, r, actual); err != nil {
				errs <- err
				return
			}
			charged[w] = actual.Tokens
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Reserve, Extend or Reconcile: %v", err)
	}
	var total int64
	for _, c := range charged {
		total += c
	}
	// key binds: after the last refusal fewer than step tokens were left,
	// and half the workers then gave step back.
	if total > key.Tokens || total < key.Tokens-step-workers/2*step {
		t.Errorf("charged %d tokens in all, want at most %d and close to it", total, key.Tokens)
	}
	wantUsage(t, l, t0, key, quota.Amount{Tokens: total})
	wantUsage(t, l, t0, team, quota.Amount{Tokens: total})
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// testRandomized runs a seeded random sequence of reserve, reconcile and
// refund against a model: admissions must match the model's, and every
// counter must equal the sum of the live charges.
func testRandomized(t *testing.T, l testLimiter, steps int) {
	limits := []quota.Limit{
		{Scope: "key:a", Window: quota.Minute, Tokens: 50_000, Requests: 300},
		{Scope: "team:x", Window: quota.Minute, Tokens: 30_000},
		{Scope: "key:a", Window: quota.Minute, Tokens: 40_000}, // shares key:a's token bucket
		{Scope: "team:x", Window: quota.Day, Tokens: 200_000, USDMicros: 20_000_000},
	}
	type bucket struct {
		scope  string
		window quota.Window
		dim    string
	}
	dims := []string{quota.DimensionTokens, quota.DimensionRequests, quota.DimensionUSD}
	of := func(a quota.Amount, dim string) int64 {
		return map[string]int64{quota.DimensionTokens: a.Tokens, quota.DimensionRequests: a.Requests, quota.DimensionUSD: a.USDMicros}[dim]
	}
	type live struct {
		r *quota.Reservation
		// buckets maps each bucket charged to its tightest maximum among
		// the limits of the reservation.
		buckets map[bucket]int64
		charged quota.Amount
		settled bool
	}
	model := make(map[bucket]int64)
	var all []*live
	rejected := 0
	rng := rand.New(rand.NewPCG(1, 2))
	randAmount := func(maxTokens, maxUSD int64) quota.Amount {
		return quota.Amount{Tokens: rng.Int64N(maxTokens + 1), Requests: rng.Int64N(2), USDMicros: rng.Int64N(maxUSD + 1)}
	}
	charge := func(lv *live, a quota.Amount, sign int64) {
		for b := range lv.buckets {
			model[b] += sign * of(a, b.dim)
		}
	}
	pick := func(settled bool) *live {
		var c []*live
		for _, lv := range all {
			if lv.settled == settled {
				c = append(c, lv)
			}
		}
		if len(c) == 0 {
			return nil
		}
		return c[rng.IntN(len(c))]
	}

	for step := range steps {
		switch op := rng.IntN(24); {
		case op >= 20: // extend a live reservation
			lv := pick(false)
			if lv == nil {
				continue
			}
			add := randAmount(400, 40_000)
			add.Requests = 0
			fits := true
			for b, m := range lv.buckets {
				if model[b]+of(add, b.dim) > m && of(add, b.dim) > 0 {
					fits = false
				}
			}
			err := l.Extend(t.Context(), t0, lv.r, add)
			switch {
			case fits && err != nil:
				t.Fatalf("step %d: Extend(%+v): %v; model admits it", step, add, err)
			case !fits && err == nil:
				t.Fatalf("step %d: Extend(%+v) admitted; model rejects it", step, add)
			case !fits:
				if !errors.Is(err, quota.ErrExceeded) {
					t.Fatalf("step %d: Extend: got %v, want ErrExceeded", step, err)
				}
			default:
				charge(lv, add, 1)
				lv.charged.Tokens += add.Tokens
				lv.charged.USDMicros += add.USDMicros
				if got := lv.r.Amount(); got != lv.charged {
					t.Fatalf("step %d: Amount after Extend: got %+v, want %+v", step, got, lv.charged)
				}
			}
		case op < 10: // reserve
			var sel []quota.Limit
			mask := rng.IntN(1<<len(limits)-1) + 1 // a non-empty subset
			for i, lim := range limits {
				if mask&(1<<i) != 0 {
					sel = append(sel, lim)
				}
			}
			amt := randAmount(800, 100_000)
			lv := &live{buckets: make(map[bucket]int64), charged: amt}
			fits := true
			for _, lim := range sel {
				for _, d := range dims {
					if lim.Max(d) == 0 {
						continue
					}
					b := bucket{lim.Scope, lim.Window, d}
					if m, ok := lv.buckets[b]; !ok || lim.Max(d) < m {
						lv.buckets[b] = lim.Max(d)
					}
					if model[b]+of(amt, d) > lim.Max(d) {
						fits = false
					}
				}
			}
			r, err := l.Reserve(t.Context(), t0, sel, amt)
			switch {
			case fits && err != nil:
				t.Fatalf("step %d: Reserve(%+v): %v; model admits it", step, amt, err)
			case !fits && err == nil:
				t.Fatalf("step %d: Reserve(%+v) admitted; model rejects it", step, amt)
			case !fits:
				rejected++
				var ex *quota.ExceededError
				if !errors.As(err, &ex) {
					t.Fatalf("step %d: got %v, want *ExceededError", step, err)
				}
				if u := model[bucket{ex.Limit.Scope, ex.Limit.Window, ex.Dimension}]; ex.Used != u {
					t.Fatalf("step %d: Used %d, model %d", step, ex.Used, u)
				}
			default:
				lv.r = r
				charge(lv, amt, 1)
				all = append(all, lv)
			}
		case op < 15: // reconcile
			lv := pick(false)
			if lv == nil {
				continue
			}
			actual := randAmount(700, 90_000)
			settle(t, l.Reconcile(t.Context(), lv.r, actual))
			charge(lv, lv.charged, -1)
			charge(lv, actual, 1)
			lv.charged, lv.settled = actual, true
		case op < 18: // refund
			lv := pick(false)
			if lv == nil {
				continue
			}
			settle(t, l.Refund(t.Context(), lv.r))
			charge(lv, lv.charged, -1)
			lv.charged, lv.settled = quota.Amount{}, true
		default: // settle again: no effect
			lv := pick(true)
			if lv == nil {
				continue
			}
			if rng.IntN(2) == 0 {
				settle(t, l.Refund(t.Context(), lv.r))
			} else {
				settle(t, l.Reconcile(t.Context(), lv.r, randAmount(700, 90_000)))
			}
		}
		for _, lim := range limits {
			want := quota.Amount{
				Tokens:    model[bucket{lim.Scope, lim.Window, quota.DimensionTokens}],
				Requests:  model[bucket{lim.Scope, lim.Window, quota.DimensionRequests}],
				USDMicros: model[bucket{lim.Scope, lim.Window, quota.DimensionUSD}],
			}
			got, err := l.Usage(t.Context(), t0, lim)
			if err != nil {
				t.Fatalf("step %d: Usage: %v", step, err)
			}
			if got != want {
				t.Fatalf("step %d: Usage(%s %s): got %+v, want %+v", step, lim.Scope, lim.Window, got, want)
			}
		}
	}
	// Both regimes must be exercised: admitting and rejecting.
	if len(all) < steps/10 || rejected < steps/20 {
		t.Errorf("%d admitted, %d rejected in %d steps; tune the limits", len(all), rejected, steps)
	}
	t.Logf("%d admitted, %d rejected in %d steps", len(all), rejected, steps)
}
