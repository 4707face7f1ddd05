package quota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Fail modes: what Failover does when the primary backend is unavailable.
const (
	// FailClosed rejects the request (the proxy answers 503).
	FailClosed = "closed"
	// FailOpen admits the request against the fallback's local limits.
	FailOpen = "open"
)

// failoverRetry is how long Failover in open mode serves from the fallback
// after a primary failure before it tries the primary again, so that a
// hanging Redis does not add CallTimeout to every request.
const failoverRetry = time.Second

// Failover is a Limiter that reserves on a primary backend (Redis) and, when
// that fails with ErrUnavailable, either returns the error (closed mode) or
// reserves on a fallback (open mode, normally a Memory limiter, whose limits
// are then per replica). Reservations remember which backend made them, so
// Reconcile and Refund go back to it.
type Failover struct {
	primary  Limiter
	fallback Limiter
	open     bool
	log      *slog.Logger

	degraded atomic.Bool
	retryAt  atomic.Int64 // Unix nanoseconds
}

// NewFailover combines primary and fallback under mode, FailClosed or
// FailOpen; fallback may be nil in closed mode. log receives one warning when
// the primary becomes unavailable and one message when it recovers (nil
// discards them).
func NewFailover(primary, fallback Limiter, mode string, log *slog.Logger) (*Failover, error) {
	if primary == nil {
		return nil, errors.New("quota failover: nil primary limiter")
	}
	f := &Failover{primary: primary, fallback: fallback, log: log}
	switch mode {
	case FailClosed:
	case FailOpen:
		if fallback == nil {
			return nil, errors.New("quota failover: fail mode open needs a fallback limiter")
		}
		f.open = true
	default:
		return nil, fmt.Errorf("quota failover: invalid fail mode %q (want %q or %q)", mode, FailClosed, FailOpen)
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	return f, nil
}

// Reserve implements Limiter.
func (f *Failover) Reserve(ctx context.Context, now time.Time, limits []Limit, amt Amount) (*Reservation, error) {
	if f.open && f.skipPrimary(now) {
		return f.fallback.Reserve(ctx, now, limits, amt)
	}
	r, err := f.primary.Reserve(ctx, now, limits, amt)
	if err == nil {
		f.recovered()
		return r, nil
	}
	if !errors.Is(err, ErrUnavailable) {
		return nil, err
	}
	f.failed(now, err)
	if !f.open {
		return nil, err
	}
	return f.fallback.Reserve(ctx, now, limits, amt)
}

// Extend grows r on the backend that made it. A reservation made on the
// primary is extended there even when the primary went down since: the
// error then wraps ErrUnavailable, and the caller decides (the proxy ends a
// metered stream).
func (f *Failover) Extend(ctx context.Context, now time.Time, r *Reservation, add Amount) error {
	e, ok := f.backend(r).(interface {
		Extend(ctx context.Context, now time.Time, r *Reservation, add Amount) error
	})
	if !ok {
		return errors.New("quota extend: the backend of this reservation cannot extend it")
	}
	return e.Extend(ctx, now, r, add)
}

// Reconcile implements Limiter on the backend that made r.
func (f *Failover) Reconcile(ctx context.Context, r *Reservation, actual Amount) error {
	return f.backend(r).Reconcile(ctx, r, actual)
}

// Refund implements Limiter on the backend that made r.
func (f *Failover) Refund(ctx context.Context, r *Reservation) error {
	return f.backend(r).Refund(ctx, r)
}

// Usage reads the counters of limit's scope from the primary, or, in open
// mode while the primary is unavailable, from the fallback.
func (f *Failover) Usage(ctx context.Context, now time.Time, limit Limit) (Amount, error) {
	type usager interface {
		Usage(ctx context.Context, now time.Time, limit Limit) (Amount, error)
	}
	p, ok := f.primary.(usager)
	if !ok {
		return Amount{}, errors.New("quota usage: the backend cannot report usage")
	}
	if f.open && f.skipPrimary(now) {
		if fb, ok := f.fallback.(usager); ok {
			return fb.Usage(ctx, now, limit)
		}
	}
	return p.Usage(ctx, now, limit)
}

// Reset zeroes a scope's counters on the primary, and on the fallback too
// in open mode (the local counters it kept while the primary was down).
func (f *Failover) Reset(ctx context.Context, now time.Time, limit Limit) error {
	type resetter interface {
		Reset(ctx context.Context, now time.Time, limit Limit) error
	}
	p, ok := f.primary.(resetter)
	if !ok {
		return errors.New("quota reset: the backend cannot reset counters")
	}
	err := p.Reset(ctx, now, limit)
	if fb, ok := f.fallback.(resetter); ok && f.open {
		err = errors.Join(err, fb.Reset(ctx, now, limit))
	}
	return err
}

func (f *Failover) backend(r *Reservation) Limiter {
	if f.fallback != nil && owns(f.fallback, r) {
		return f.fallback
	}
	return f.primary
}

func (f *Failover) owns(r *Reservation) bool {
	return owns(f.primary, r) || (f.fallback != nil && owns(f.fallback, r))
}

func (f *Failover) skipPrimary(now time.Time) bool {
	return f.degraded.Load() && now.UnixNano() < f.retryAt.Load()
}

func (f *Failover) failed(now time.Time, err error) {
	f.retryAt.Store(now.Add(failoverRetry).UnixNano())
	if f.degraded.CompareAndSwap(false, true) {
		mode := FailClosed
		if f.open {
			mode = FailOpen
		}
		f.log.Warn("quota backend unavailable", "fail_mode", mode, "error", err)
	}
}

func (f *Failover) recovered() {
	if f.degraded.Load() && f.degraded.CompareAndSwap(true, false) {
		f.log.Info("quota backend recovered")
	}
}
