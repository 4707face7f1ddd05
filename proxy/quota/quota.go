// Package quota enforces the token, request and USD limits that a policy
// decision returns for a request.
//
// A request carries limits for several scopes at once (its key, its team,
// its org, each with its own window). A Limiter reserves the estimated amount
// against all of them atomically before the upstream call (all charged or
// none), reconciles the reservation with the real usage afterwards, or refunds
// it when the call never happened. Windows are fixed and aligned: minute and
// hour in UTC, day and month in a configured time zone.
//
// Two backends implement Limiter: Memory for a single node and Redis for
// counters shared by all replicas, on one Redis server or on a Redis Cluster.
// Failover combines them to implement the configured behaviour when Redis is
// down.
//
// # Guarantee
//
// A bucket counter grows only by a charge that fits under the bucket's
// maximum at the moment it is applied, so reservations alone never push a
// counter past its limit, whatever the number of replicas and concurrent
// requests. Only a Reconcile with more than was reserved can raise a counter
// past the limit; the proxy avoids that for streams with cut-off by metering
// the stream and growing the reservation (Extend) before it relays tokens.
//
// On one Redis server, or in memory, a reservation over several scopes is one
// atomic step: every bucket admits it or none is charged. On a Redis Cluster
// the buckets of different scopes live in different hash slots, which one
// script cannot span; see Redis for the per-slot protocol and its exact
// guarantee.
//
// # Streams with cut-off
//
// Extend adds to a live reservation with the same all-or-nothing check
// against the same buckets (the windows of the original reservation). The
// proxy reserves a stream with cut-off for its prompt and a first grant of
// output tokens, meters the stream as it relays it, extends the reservation
// by another grant before relaying tokens beyond what is reserved, and ends
// the stream when an extension is refused. What is relayed is therefore
// always covered by a charge that was admitted under the limits, so the total
// charged to a scope never exceeds its budget.
package quota

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// ErrExceeded is wrapped by every error that rejects a request because a
// limit is exhausted; use errors.As with *ExceededError for the details.
var ErrExceeded = errors.New("quota exceeded")

// ErrUnavailable is wrapped by errors caused by an unreachable or failing
// backend, so that the caller can apply its fail-open or fail-closed policy.
var ErrUnavailable = errors.New("quota backend unavailable")

// Dimension names, as used in Status.Dimension and ExceededError.Dimension.
const (
	DimensionTokens   = "tokens"
	DimensionRequests = "requests"
	DimensionUSD      = "usd"
)

// Limiter is the contract between the proxy and a quota backend.
//
// Reserve charges amt against every limited dimension of every limit, or
// nothing when any of them would be exceeded; the error then wraps
// ErrExceeded (as *ExceededError) or, on backend failure, ErrUnavailable.
// Reconcile replaces the reserved amount by the actual one in the buckets the
// reservation charged, and Refund removes the reservation. A reservation is
// settled at most once: the first Reconcile or Refund settles it (even when
// it then fails), later calls are no-ops that return nil.
type Limiter interface {
	Reserve(ctx context.Context, now time.Time, limits []Limit, amt Amount) (*Reservation, error)
	Reconcile(ctx context.Context, r *Reservation, actual Amount) error
	Refund(ctx context.Context, r *Reservation) error
}

// Limit caps the usage of one scope in one window. A zero or omitted
// dimension is not limited.
type Limit struct {
	// Scope names who is limited, e.g. "key:k_123" or "team:ml".
	Scope     string
	Window    Window
	Tokens    int64
	Requests  int64
	USDMicros int64
}

// Max returns the limit of the named dimension (DimensionTokens,
// DimensionRequests or DimensionUSD), 0 meaning unlimited.
func (l Limit) Max(dimension string) int64 {
	d, ok := parseDimension(dimension)
	if !ok {
		return 0
	}
	return l.max(d)
}

func (l Limit) max(d dimension) int64 {
	switch d {
	case dimTokens:
		return l.Tokens
	case dimRequests:
		return l.Requests
	default:
		return l.USDMicros
	}
}

// Amount is what a request consumes: tokens, requests (normally 1) and cost
// in millionths of a US dollar.
type Amount struct {
	Tokens    int64
	Requests  int64
	USDMicros int64
}

func (a Amount) of(d dimension) int64 {
	switch d {
	case dimTokens:
		return a.Tokens
	case dimRequests:
		return a.Requests
	default:
		return a.USDMicros
	}
}

func (a Amount) validate() error {
	if a.Tokens < 0 || a.Requests < 0 || a.USDMicros < 0 {
		return fmt.Errorf("negative amount %+v", a)
	}
	return nil
}

// Status reports, after a successful reservation, what is left of one
// dimension of one limit; the proxy turns it into x-ratelimit-* headers.
type Status struct {
	Limit     Limit
	Dimension string
	// Remaining is the limit minus the usage including this reservation,
	// never below zero.
	Remaining int64
	// ResetAt is the end of the window, when the counter starts again at 0.
	ResetAt time.Time
}

// Reservation is an admitted request's charge. It remembers the buckets it
// charged, so that Reconcile and Refund hit the same windows even when they
// run after a window boundary, and which backend made it.
type Reservation struct {
	// Status holds one entry per limited dimension of every limit, in the
	// order of the limits and then tokens, requests, usd.
	Status []Status

	amount  Amount
	owner   any
	entries []entry
	keys    []string // Redis keys of entries, same order
	settled atomic.Bool
}

// Amount returns the amount the reservation charged.
func (r *Reservation) Amount() Amount { return r.amount }

// Tightest returns the status of the named dimension with the least
// remaining; on a tie the one that resets last wins, because it takes longest
// to recover. It reports false when no limit restricts the dimension.
func (r *Reservation) Tightest(dimension string) (Status, bool) {
	var best Status
	found := false
	for _, s := range r.Status {
		if s.Dimension != dimension {
			continue
		}
		if !found || s.Remaining < best.Remaining ||
			(s.Remaining == best.Remaining && s.ResetAt.After(best.ResetAt)) {
			best, found = s, true
		}
	}
	return best, found
}

// claim marks r settled and reports whether the caller is the first to do so.
func (r *Reservation) claim() bool { return r.settled.CompareAndSwap(false, true) }

// ExceededError rejects a reservation. When several limits are exhausted it
// describes the one that resets last, so that RetryAfter is not too early.
type ExceededError struct {
	Limit     Limit
	Dimension string
	// Used is the counter before this request.
	Used int64
	// Remaining is the limit minus Used, never below zero.
	Remaining int64
	// Requested is the amount of the dimension the request asked for.
	Requested int64
	// ResetAt is the end of the exhausted window.
	ResetAt time.Time

	now time.Time // the time of the decision, for RetryAfter
}

// Error describes the exhausted limit.
func (e *ExceededError) Error() string {
	return fmt.Sprintf("quota exceeded: %s %s per %s: requested %d, used %d of %d, resets at %s",
		e.Limit.Scope, e.Dimension, e.Limit.Window, e.Requested, e.Used,
		e.Limit.Max(e.Dimension), e.ResetAt.UTC().Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrExceeded) true.
func (e *ExceededError) Unwrap() error { return ErrExceeded }

// RetryAfter returns how long the client should wait: from the decision time
// to ResetAt, rounded up to whole seconds and at least one second.
func (e *ExceededError) RetryAfter() time.Duration {
	now := e.now
	if now.IsZero() {
		now = time.Now()
	}
	d := e.ResetAt.Sub(now)
	if d <= time.Second {
		return time.Second
	}
	if rem := d % time.Second; rem != 0 {
		d += time.Second - rem
	}
	return d
}

// Extend is not part of Limiter: the backends of this package implement
//
//	Extend(ctx context.Context, now time.Time, r *Reservation, add Amount) error
//
// which charges add against every bucket of r that add's dimensions touch,
// all or nothing, and on success adds it to r's amount, so that a later
// Reconcile replaces the grown amount. A refusal wraps ErrExceeded as
// *ExceededError. Extend must not run concurrently with Reconcile or Refund
// of the same reservation; extending a settled reservation is an error.

// owner is implemented by the limiters of this package so that Failover can
// route a reservation back to the backend that made it.
type owner interface {
	owns(r *Reservation) bool
}

func owns(l Limiter, r *Reservation) bool {
	o, ok := l.(owner)
	return ok && o.owns(r)
}

// checkSettle validates the arguments of Reconcile and Refund.
func checkSettle(self any, r *Reservation, actual Amount) error {
	if r == nil {
		return errors.New("nil reservation")
	}
	if r.owner != self {
		return errors.New("reservation made by another limiter")
	}
	return actual.validate()
}
