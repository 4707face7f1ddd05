package quota

import (
	"errors"
	"fmt"
	"time"
)

// bucketGrace keeps a bucket alive after its window ended, so that the
// reservation of a long stream started just before the boundary can still be
// reconciled into it.
const bucketGrace = 15 * time.Minute

// entry is one counter a reservation touches: a (scope, window, dimension)
// bucket. Limits of the same scope and window share their buckets, so an
// entry carries the tightest of their maxima and is charged once.
type entry struct {
	scope  string
	window Window
	dim    dimension
	start  time.Time
	end    time.Time
	max    int64
	amount int64
}

// ref ties one limited dimension of one limit to its entry.
type ref struct {
	limit int
	dim   dimension
	entry int
}

// plan is the backend-independent part of a reservation: which buckets to
// check and charge.
type plan struct {
	entries []entry
	refs    []ref
}

// makePlan validates limits and amt and lists the buckets they touch at now.
func makePlan(limits []Limit, amt Amount, now time.Time, loc *time.Location) (plan, error) {
	if err := amt.validate(); err != nil {
		return plan{}, err
	}
	p := plan{
		entries: make([]entry, 0, len(limits)*2),
		refs:    make([]ref, 0, len(limits)*2),
	}
	for i, l := range limits {
		if l.Scope == "" {
			return plan{}, fmt.Errorf("limit %d: empty scope", i)
		}
		if l.Tokens < 0 || l.Requests < 0 || l.USDMicros < 0 {
			return plan{}, fmt.Errorf("limit %d (%s): negative maximum", i, l.Scope)
		}
		if l.Tokens == 0 && l.Requests == 0 && l.USDMicros == 0 {
			continue
		}
		start, end, err := l.Window.Bounds(now, loc)
		if err != nil {
			return plan{}, fmt.Errorf("limit %d (%s): %w", i, l.Scope, err)
		}
		for d := range numDimensions {
			lim := l.max(d)
			if lim == 0 {
				continue
			}
			e := p.find(l.Scope, l.Window, d)
			if e < 0 {
				e = len(p.entries)
				p.entries = append(p.entries, entry{
					scope: l.Scope, window: l.Window, dim: d,
					start: start, end: end, max: lim, amount: amt.of(d),
				})
			} else if lim < p.entries[e].max {
				p.entries[e].max = lim
			}
			p.refs = append(p.refs, ref{limit: i, dim: d, entry: e})
		}
	}
	return p, nil
}

func (p *plan) find(scope string, w Window, d dimension) int {
	for i := range p.entries {
		e := &p.entries[i]
		if e.dim == d && e.window == w && e.scope == scope {
			return i
		}
	}
	return -1
}

// exceeded returns the rejection for the counters used (one per entry, before
// charging), or nil when the request fits every limit.
func (p *plan) exceeded(limits []Limit, used []int64, now time.Time) *ExceededError {
	var worst *ExceededError
	for _, rf := range p.refs {
		e := &p.entries[rf.entry]
		l := limits[rf.limit]
		lim := l.max(rf.dim)
		u := used[rf.entry]
		if e.amount <= lim-u {
			continue
		}
		if worst != nil && !e.end.After(worst.ResetAt) {
			continue
		}
		worst = &ExceededError{
			Limit: l, Dimension: rf.dim.String(),
			Used: u, Remaining: max(0, lim-u), Requested: e.amount,
			ResetAt: e.end, now: now,
		}
	}
	return worst
}

// statuses reports the remaining allowance given the counters used after
// charging.
func (p *plan) statuses(limits []Limit, used []int64) []Status {
	if len(p.refs) == 0 {
		return nil
	}
	st := make([]Status, len(p.refs))
	for i, rf := range p.refs {
		l := limits[rf.limit]
		st[i] = Status{
			Limit:     l,
			Dimension: rf.dim.String(),
			Remaining: max(0, l.max(rf.dim)-used[rf.entry]),
			ResetAt:   p.entries[rf.entry].end,
		}
	}
	return st
}

// extension lists the entries of r that add charges (those whose dimension
// add is non-zero), with the amount of each.
func extension(r *Reservation, add Amount) (idx []int, amounts []int64) {
	for i := range r.entries {
		if a := add.of(r.entries[i].dim); a != 0 {
			idx = append(idx, i)
			amounts = append(amounts, a)
		}
	}
	return idx, amounts
}

// extensionExceeded returns the rejection of an extension given the counters
// used (before charging) of the entries idx, or nil when every one fits. Like
// plan.exceeded it describes the exhausted bucket that resets last. The Limit
// it reports is rebuilt from the bucket: scope, window and the tightest
// maximum of the limits sharing it.
func extensionExceeded(r *Reservation, idx []int, amounts, used []int64, now time.Time) *ExceededError {
	var worst *ExceededError
	for k, i := range idx {
		e := &r.entries[i]
		if amounts[k] <= e.max-used[k] {
			continue
		}
		if worst != nil && !e.end.After(worst.ResetAt) {
			continue
		}
		l := Limit{Scope: e.scope, Window: e.window}
		switch e.dim {
		case dimTokens:
			l.Tokens = e.max
		case dimRequests:
			l.Requests = e.max
		default:
			l.USDMicros = e.max
		}
		worst = &ExceededError{
			Limit: l, Dimension: e.dim.String(),
			Used: used[k], Remaining: max(0, e.max-used[k]), Requested: amounts[k],
			ResetAt: e.end, now: now,
		}
	}
	return worst
}

// grow records a successful extension on r.
func (r *Reservation) grow(idx []int, amounts []int64, add Amount) {
	for k, i := range idx {
		r.entries[i].amount += amounts[k]
	}
	r.amount.Tokens += add.Tokens
	r.amount.Requests += add.Requests
	r.amount.USDMicros += add.USDMicros
}

// checkExtend validates the arguments of Extend.
func checkExtend(self any, r *Reservation, add Amount) error {
	if r == nil {
		return errors.New("nil reservation")
	}
	if r.owner != self {
		return errors.New("reservation made by another limiter")
	}
	if r.settled.Load() {
		return errors.New("reservation already settled")
	}
	return add.validate()
}

// errInconsistent reports a backend answer that contradicts the plan.
var errInconsistent = errors.New("inconsistent backend answer")
