package quota

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"
)

// sweepBatch bounds how many expired buckets one Reserve deletes, so that a
// burst of expiries after an idle period does not stall a request. Each
// Reserve creates at most one bucket per entry and deletes up to sweepBatch
// plus two per entry, so deletion keeps up with creation.
const sweepBatch = 64

// Memory is a Limiter that keeps the counters in this process. It serves a
// single gateway and is the fail-open fallback when Redis is down. All
// operations take one mutex; buckets are deleted once their window has ended
// (plus a grace period), so memory is bounded by the live windows.
type Memory struct {
	loc *time.Location

	mu      sync.Mutex
	buckets map[memKey]*memBucket
	expiry  expiryHeap
}

type memKey struct {
	scope  string
	start  int64 // Unix seconds
	window uint8 // windowIndex
	dim    dimension
}

type memBucket struct {
	used int64
}

func (e *entry) memKey() memKey {
	return memKey{scope: e.scope, start: e.start.Unix(), window: windowIndex(e.window), dim: e.dim}
}

// windowIndex makes map keys cheaper to hash than the window's name.
func windowIndex(w Window) uint8 {
	switch w {
	case Minute:
		return 0
	case Hour:
		return 1
	case Day:
		return 2
	default:
		return 3
	}
}

// NewMemory returns an empty in-memory limiter aligning day and month windows
// in loc (nil means UTC).
func NewMemory(loc *time.Location) *Memory {
	if loc == nil {
		loc = time.UTC
	}
	return &Memory{loc: loc, buckets: make(map[memKey]*memBucket)}
}

// Reserve implements Limiter.
func (m *Memory) Reserve(ctx context.Context, now time.Time, limits []Limit, amt Amount) (*Reservation, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("quota reserve: %w", err)
	}
	p, err := makePlan(limits, amt, now, m.loc)
	if err != nil {
		return nil, fmt.Errorf("quota reserve: %w", err)
	}
	var (
		usedBuf   [8]int64
		bucketBuf [8]*memBucket
	)
	used, buckets := usedBuf[:0], bucketBuf[:0]

	m.mu.Lock()
	m.sweep(now, sweepBatch+2*len(p.entries))
	for i := range p.entries {
		b := m.buckets[p.entries[i].memKey()]
		var u int64
		if b != nil {
			u = b.used
		}
		used = append(used, u)
		buckets = append(buckets, b)
	}
	if ex := p.exceeded(limits, used, now); ex != nil {
		m.mu.Unlock()
		return nil, ex
	}
	for i, b := range buckets {
		e := &p.entries[i]
		if b == nil {
			// Create the bucket even for a zero amount, so that a later
			// Reconcile has a bucket to add the actual usage to.
			k := e.memKey()
			b = &memBucket{}
			m.buckets[k] = b
			heap.Push(&m.expiry, expiryItem{at: e.end.Add(bucketGrace).UnixNano(), key: k})
		}
		b.used += e.amount
		used[i] = b.used
	}
	m.mu.Unlock()

	return &Reservation{
		Status:  p.statuses(limits, used),
		amount:  amt,
		owner:   m,
		entries: p.entries,
	}, nil
}

// Extend grows a live reservation by add, all or nothing, in the buckets the
// reservation charged (see the package documentation).
func (m *Memory) Extend(ctx context.Context, now time.Time, r *Reservation, add Amount) error {
	const op = "quota extend"
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := checkExtend(m, r, add); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	idx, amounts := extension(r, add)
	used := make([]int64, len(idx))
	m.mu.Lock()
	for k, i := range idx {
		if b := m.buckets[r.entries[i].memKey()]; b != nil {
			used[k] = b.used
		}
	}
	if ex := extensionExceeded(r, idx, amounts, used, now); ex != nil {
		m.mu.Unlock()
		return ex
	}
	for k, i := range idx {
		e := &r.entries[i]
		key := e.memKey()
		b := m.buckets[key]
		if b == nil {
			// Swept: the reservation outlived its window and the grace.
			b = &memBucket{}
			m.buckets[key] = b
			heap.Push(&m.expiry, expiryItem{at: max(e.end.UnixNano(), now.UnixNano()) + int64(bucketGrace), key: key})
		}
		b.used += amounts[k]
	}
	m.mu.Unlock()
	r.grow(idx, amounts, add)
	return nil
}

// Reconcile implements Limiter.
func (m *Memory) Reconcile(_ context.Context, r *Reservation, actual Amount) error {
	if err := m.settle(r, actual); err != nil {
		return fmt.Errorf("quota reconcile: %w", err)
	}
	return nil
}

// Refund implements Limiter.
func (m *Memory) Refund(_ context.Context, r *Reservation) error {
	if err := m.settle(r, Amount{}); err != nil {
		return fmt.Errorf("quota refund: %w", err)
	}
	return nil
}

func (m *Memory) settle(r *Reservation, actual Amount) error {
	if err := checkSettle(m, r, actual); err != nil {
		return err
	}
	if !r.claim() {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range r.entries {
		e := &r.entries[i]
		delta := actual.of(e.dim) - e.amount
		if delta == 0 {
			continue
		}
		// A bucket already swept belongs to a window long past: nothing to fix.
		if b := m.buckets[e.memKey()]; b != nil {
			b.used += delta
		}
	}
	return nil
}

// Usage returns the counters of limit's scope in the window containing now,
// for every dimension whether limit restricts it or not.
func (m *Memory) Usage(ctx context.Context, now time.Time, limit Limit) (Amount, error) {
	if err := ctx.Err(); err != nil {
		return Amount{}, fmt.Errorf("quota usage: %w", err)
	}
	start, _, err := limit.Window.Bounds(now, m.loc)
	if err != nil {
		return Amount{}, fmt.Errorf("quota usage: %w", err)
	}
	k := memKey{scope: limit.Scope, start: start.Unix(), window: windowIndex(limit.Window)}
	var n [numDimensions]int64
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := range numDimensions {
		k.dim = d
		if b := m.buckets[k]; b != nil {
			n[d] = b.used
		}
	}
	return Amount{Tokens: n[dimTokens], Requests: n[dimRequests], USDMicros: n[dimUSD]}, nil
}

// Reset zeroes the counters of limit's scope in the window containing now.
// Reservations still in flight settle against the new counters, so the
// scope may briefly read below zero.
func (m *Memory) Reset(ctx context.Context, now time.Time, limit Limit) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("quota reset: %w", err)
	}
	start, _, err := limit.Window.Bounds(now, m.loc)
	if err != nil {
		return fmt.Errorf("quota reset: %w", err)
	}
	k := memKey{scope: limit.Scope, start: start.Unix(), window: windowIndex(limit.Window)}
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := range numDimensions {
		k.dim = d
		if b := m.buckets[k]; b != nil {
			b.used = 0
		}
	}
	return nil
}

func (m *Memory) owns(r *Reservation) bool { return r != nil && r.owner == m }

// sweep deletes up to n buckets whose window ended more than bucketGrace
// before now. m.mu must be held.
func (m *Memory) sweep(now time.Time, n int) {
	t := now.UnixNano()
	for ; n > 0 && len(m.expiry) > 0 && m.expiry[0].at <= t; n-- {
		it := heap.Pop(&m.expiry).(expiryItem)
		delete(m.buckets, it.key)
	}
}

// expiryItem schedules the deletion of one bucket.
type expiryItem struct {
	at  int64 // Unix nanoseconds
	key memKey
}

// expiryHeap is a min-heap of expiryItem by at, for container/heap.
type expiryHeap []expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	n := len(old)
	it := old[n-1]
	old[n-1] = expiryItem{}
	*h = old[:n-1]
	return it
}
