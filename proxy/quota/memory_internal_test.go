package quota

import (
	"fmt"
	"testing"
	"time"
)

// TestMemorySweep checks that buckets of past windows are deleted, so that a
// long-running gateway does not grow without bound.
func TestMemorySweep(t *testing.T) {
	t.Parallel()
	m := NewMemory(nil)
	start := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	const scopes = 20
	// Live minute buckets at any time: the current minute plus bucketGrace.
	maxLive := scopes * (int(bucketGrace/time.Minute) + 2)
	for minute := range 24 * 60 {
		now := start.Add(time.Duration(minute) * time.Minute)
		for s := range scopes {
			lim := Limit{Scope: fmt.Sprintf("key:%d", s), Window: Minute, Tokens: 100}
			if _, err := m.Reserve(t.Context(), now, []Limit{lim}, Amount{Tokens: 1}); err != nil {
				t.Fatalf("Reserve at %s: %v", now, err)
			}
		}
		m.mu.Lock()
		n, h := len(m.buckets), len(m.expiry)
		m.mu.Unlock()
		if n > maxLive {
			t.Fatalf("at %s: %d buckets, want at most %d", now, n, maxLive)
		}
		if n != h {
			t.Fatalf("at %s: %d buckets but %d expiry entries", now, n, h)
		}
	}
}

// TestMemorySettleAfterSweep checks that settling a reservation whose bucket
// was already deleted neither fails nor resurrects the bucket.
func TestMemorySettleAfterSweep(t *testing.T) {
	t.Parallel()
	m := NewMemory(nil)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	lim := Limit{Scope: "key:k", Window: Minute, Tokens: 100}
	r, err := m.Reserve(t.Context(), now, []Limit{lim}, Amount{Tokens: 10})
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	later := now.Add(time.Hour)
	if _, err := m.Reserve(t.Context(), later, []Limit{lim}, Amount{Tokens: 1}); err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	if err := m.Reconcile(t.Context(), r, Amount{Tokens: 50}); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if got, _ := m.Usage(t.Context(), now, lim); got.Tokens != 0 {
		t.Errorf("swept bucket: got %d tokens, want 0", got.Tokens)
	}
	if got := len(m.buckets); got != 1 {
		t.Errorf("got %d buckets, want 1", got)
	}
}
