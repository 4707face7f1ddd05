// Package router carries out a routing decision: it orders the decision's
// targets (weighted primaries, then fallbacks), skips targets whose circuit
// breaker is open, retries with exponential backoff and jitter, falls back
// across providers, and records every attempt.
//
// The router knows nothing about HTTP or providers: the caller passes a
// function that makes one attempt and classifies its failure with the
// interfaces below (Retryable, RetryAfter) or the sentinel errors.
package router

import (
	"sync"
	"time"
)

// State is a circuit breaker's state.
type State int

// Breaker states. A closed breaker lets every request through; an open one
// none until its cool-down ends; a half-open one lets probes through one at
// a time and closes after enough successes, or opens again on a failure.
const (
	Closed State = iota
	Open
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "closed"
}

// BreakerConfig tunes circuit breakers. Zero fields take the defaults.
type BreakerConfig struct {
	// ConsecutiveFailures opens the breaker after that many failures in a
	// row (default 5).
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// ErrorRate opens the breaker when, over the last Window outcomes and
	// at least MinRequests of them, the share of failures reaches it
	// (default 0.5 over 20 of the last 50; 0 or less disables it).
	ErrorRate   float64 `yaml:"error_rate"`
	MinRequests int     `yaml:"min_requests"`
	Window      int     `yaml:"window"`
	// OpenFor is how long an open breaker refuses before it lets a probe
	// through (default 30s).
	OpenFor time.Duration `yaml:"open_for"`
	// Probes is the number of successful probes that close a half-open
	// breaker (default 2).
	Probes int `yaml:"probes"`
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.ConsecutiveFailures <= 0 {
		c.ConsecutiveFailures = 5
	}
	if c.ErrorRate == 0 {
		c.ErrorRate = 0.5
	}
	if c.MinRequests <= 0 {
		c.MinRequests = 20
	}
	if c.Window <= 0 {
		c.Window = 50
	}
	if c.Window < c.MinRequests {
		c.Window = c.MinRequests
	}
	if c.OpenFor <= 0 {
		c.OpenFor = 30 * time.Second
	}
	if c.Probes <= 0 {
		c.Probes = 2
	}
	return c
}

// Breaker is the circuit breaker and latency average of one target. It is
// safe for concurrent use.
type Breaker struct {
	cfg BreakerConfig

	mu        sync.Mutex
	state     State
	failures  int // consecutive
	outcomes  []bool
	next      int
	filled    int
	failed    int // failures among outcomes
	openUntil time.Time
	probing   bool // a half-open probe is in flight
	probesOK  int
	latency   time.Duration // exponentially weighted average of successes
}

// NewBreaker returns a closed breaker.
func NewBreaker(cfg BreakerConfig) *Breaker {
	cfg = cfg.withDefaults()
	return &Breaker{cfg: cfg, outcomes: make([]bool, cfg.Window)}
}

// Allow reports whether a request may go to the target now. When it
// returns true for a half-open breaker, the caller holds the probe and must
// call Record.
func (b *Breaker) Allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Open:
		if now.Before(b.openUntil) {
			return false
		}
		b.state, b.probesOK = HalfOpen, 0
		fallthrough
	case HalfOpen:
		if b.probing {
			return false
		}
		b.probing = true
		return true
	}
	return true
}

// Record reports the outcome of a request that Allow let through.
func (b *Breaker) Record(now time.Time, ok bool, latency time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok && latency > 0 {
		if b.latency == 0 {
			b.latency = latency
		} else {
			b.latency += (latency - b.latency) / 5 // weight 0.2
		}
	}
	switch b.state {
	case HalfOpen:
		b.probing = false
		if !ok {
			b.open(now)
			return
		}
		b.probesOK++
		if b.probesOK >= b.cfg.Probes {
			b.reset()
		}
		return
	case Open:
		return // a request admitted before the breaker opened
	}
	b.observe(ok)
	if ok {
		b.failures = 0
		return
	}
	b.failures++
	rateOpen := b.cfg.ErrorRate > 0 && b.filled >= b.cfg.MinRequests &&
		float64(b.failed) >= b.cfg.ErrorRate*float64(b.filled)
	if b.failures >= b.cfg.ConsecutiveFailures || rateOpen {
		b.open(now)
	}
}

// observe adds an outcome to the sliding window.
func (b *Breaker) observe(ok bool) {
	if b.filled == len(b.outcomes) {
		if !b.outcomes[b.next] {
			b.failed--
		}
	} else {
		b.filled++
	}
	b.outcomes[b.next] = ok
	if !ok {
		b.failed++
	}
	b.next = (b.next + 1) % len(b.outcomes)
}

func (b *Breaker) open(now time.Time) {
	b.state, b.openUntil, b.probing, b.probesOK = Open, now.Add(b.cfg.OpenFor), false, 0
}

func (b *Breaker) reset() {
	b.state, b.failures, b.next, b.filled, b.failed, b.probing, b.probesOK = Closed, 0, 0, 0, 0, false, 0
	clear(b.outcomes)
}

// Health is a snapshot of a breaker.
type Health struct {
	State State
	// Latency is the weighted average latency of successful requests, 0
	// before the first.
	Latency time.Duration
}

// Health returns the breaker's state at now (an open breaker whose
// cool-down ended reports half-open) and its latency average.
func (b *Breaker) Health(now time.Time) Health {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.state
	if s == Open && !now.Before(b.openUntil) {
		s = HalfOpen
	}
	return Health{State: s, Latency: b.latency}
}
