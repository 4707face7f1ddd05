package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Target is one place a request can go.
type Target struct {
	Provider string
	Model    string
	// Weight is the share of primary traffic; 0 counts as 1.
	Weight int
}

func (t Target) key() string { return t.Provider + "/" + t.Model }

// Plan is what the decision's route asks for.
type Plan struct {
	// Targets share the traffic by weight; Fallbacks are tried in order
	// when every target failed.
	Targets   []Target
	Fallbacks []Target
	// Retries is how many times a target is retried after a retryable
	// failure (5xx, connection error) before the next target.
	Retries int
}

// Outcome classifies an attempt.
type Outcome string

// Attempt outcomes.
const (
	OK          Outcome = "ok"
	RateLimited Outcome = "rate_limited" // 429: the next target at once
	ServerError Outcome = "server_error" // 5xx or connection error: retried
	Timeout     Outcome = "timeout"      // deadline: the next target at once
	Rejected    Outcome = "rejected"     // 4xx other than 408/429: no retry
	Broken      Outcome = "broken"       // failed after bytes reached the client
	Skipped     Outcome = "circuit_open" // the target's breaker was open
)

// Attempt records one try, for the inference log.
type Attempt struct {
	Target  Target
	Outcome Outcome
	Status  int
	Latency time.Duration
	Err     error
}

// Errors a call can wrap to classify its failure, besides the Status,
// Retryable and RetryAfter interfaces.
var (
	// ErrCommitted: bytes already reached the client (a stream broke after
	// its first byte); the router neither retries nor falls back.
	ErrCommitted = errors.New("response already started")
	// ErrTimeout: the attempt's own deadline (total or time to first
	// token) passed.
	ErrTimeout = errors.New("upstream timed out")
)

// ErrNoTarget is returned when every target's breaker is open.
var ErrNoTarget = errors.New("no healthy upstream")

// StatusError is implemented by errors that carry the upstream's HTTP
// status.
type StatusError interface{ HTTPStatus() int }

// RetryAfterError is implemented by errors that carry the upstream's
// Retry-After.
type RetryAfterError interface{ RetryAfter() time.Duration }

// Config tunes a Router. Zero fields take the defaults.
type Config struct {
	Breaker BreakerConfig `yaml:"breaker"`
	// BackoffBase and BackoffMax bound the exponential backoff between
	// retries of one target (defaults 100ms and 2s), with full jitter.
	BackoffBase time.Duration `yaml:"backoff_base"`
	BackoffMax  time.Duration `yaml:"backoff_max"`
	// MaxRetryAfter is the longest upstream Retry-After honoured before a
	// retry of the same target; longer ones move on to the next target
	// (default 2s).
	MaxRetryAfter time.Duration `yaml:"max_retry_after"`
}

// Router keeps one breaker per target and carries out plans. It is safe for
// concurrent use.
type Router struct {
	cfg Config
	now func() time.Time
	// sleep waits d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
	rand  func(n int) int

	mu       sync.Mutex
	breakers map[string]*Breaker

	attempts *prometheus.CounterVec
	state    *prometheus.GaugeVec
}

// New returns a router; reg may be nil.
func New(cfg Config, reg prometheus.Registerer) (*Router, error) {
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 100 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 2 * time.Second
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = 2 * time.Second
	}
	r := &Router{
		cfg: cfg, now: time.Now, sleep: sleepCtx, rand: rand.IntN,
		breakers: map[string]*Breaker{},
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_upstream_attempts_total",
			Help: "Upstream attempts by provider, model and outcome.",
		}, []string{"provider", "model", "outcome"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_upstream_circuit_state",
			Help: "Circuit breaker state per upstream target: 0 closed, 1 open, 2 half-open.",
		}, []string{"provider", "model"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{r.attempts, r.state} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register router metrics: %w", err)
			}
		}
	}
	return r, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Breaker returns the breaker of t, creating it.
func (r *Router) Breaker(t Target) *Breaker {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.breakers[t.key()]
	if !ok {
		b = NewBreaker(r.cfg.Breaker)
		r.breakers[t.key()] = b
	}
	return b
}

// StateGauge returns the circuit state metric of a target.
func (r *Router) StateGauge(provider, model string) prometheus.Gauge {
	return r.state.WithLabelValues(provider, model)
}

// Health returns the state and latency average of t.
func (r *Router) Health(t Target) Health { return r.Breaker(t).Health(r.now()) }

// Order returns the targets of p in the order they are tried: one primary
// chosen by weight, the other primaries by weight, then the fallbacks; a
// target listed twice is tried once.
func (r *Router) Order(p Plan) []Target {
	primaries := append([]Target(nil), p.Targets...)
	out := make([]Target, 0, len(p.Targets)+len(p.Fallbacks))
	seen := map[string]bool{}
	for len(primaries) > 0 {
		total := 0
		for _, t := range primaries {
			total += max(t.Weight, 1)
		}
		n := r.rand(total)
		i := 0
		for ; i < len(primaries)-1; i++ {
			n -= max(primaries[i].Weight, 1)
			if n < 0 {
				break
			}
		}
		if t := primaries[i]; !seen[t.key()] {
			seen[t.key()] = true
			out = append(out, t)
		}
		primaries = append(primaries[:i], primaries[i+1:]...)
	}
	for _, t := range p.Fallbacks {
		if !seen[t.key()] {
			seen[t.key()] = true
			out = append(out, t)
		}
	}
	return out
}

// Call makes one attempt at t; attempt counts from 0 over the whole plan.
type Call[R any] func(ctx context.Context, t Target, attempt int) (R, error)

// Do carries out p: it calls each target in Order, retrying and falling
// back as the failures allow, until one succeeds, a failure must not be
// retried, or ctx ends. It returns the result of the successful attempt,
// every attempt made, and otherwise the last failure (ErrNoTarget when no
// target could be tried).
func Do[R any](ctx context.Context, r *Router, p Plan, call Call[R]) (R, []Attempt, error) {
	var zero R
	var attempts []Attempt
	var last error
	n := 0
targets:
	for _, t := range r.Order(p) {
		br := r.Breaker(t)
		for try := 0; try <= p.Retries; try++ {
			if err := ctx.Err(); err != nil {
				return zero, attempts, lastOr(last, err)
			}
			if !br.Allow(r.now()) {
				attempts = append(attempts, Attempt{Target: t, Outcome: Skipped})
				r.record(t, Skipped, br)
				continue targets
			}
			start := r.now()
			res, err := call(ctx, t, n)
			n++
			lat := r.now().Sub(start)
			if err == nil {
				br.Record(r.now(), true, lat)
				attempts = append(attempts, Attempt{Target: t, Outcome: OK, Status: 200, Latency: lat})
				r.record(t, OK, br)
				return res, attempts, nil
			}
			out, status := classify(ctx, err)
			// A rejected request says nothing about the target's health.
			br.Record(r.now(), out == Rejected, 0)
			attempts = append(attempts, Attempt{Target: t, Outcome: out, Status: status, Latency: lat, Err: err})
			r.record(t, out, br)
			last = err
			switch out {
			case Rejected, Broken:
				return zero, attempts, err
			case RateLimited, Timeout:
				continue targets
			}
			if try == p.Retries {
				continue targets
			}
			wait := r.backoff(try)
			var ra RetryAfterError
			if errors.As(err, &ra) && ra.RetryAfter() > 0 {
				if ra.RetryAfter() > r.cfg.MaxRetryAfter {
					continue targets // rather than a long wait
				}
				wait = ra.RetryAfter()
			}
			if dl, ok := ctx.Deadline(); ok && r.now().Add(wait).After(dl) {
				continue targets // no time left to retry this target
			}
			if err := r.sleep(ctx, wait); err != nil {
				return zero, attempts, lastOr(last, err)
			}
		}
	}
	if last == nil {
		return zero, attempts, ErrNoTarget
	}
	return zero, attempts, last
}

func lastOr(last, err error) error {
	if last != nil {
		return last
	}
	return err
}

// backoff is the wait before retry try+1: full jitter over an exponential
// bound.
func (r *Router) backoff(try int) time.Duration {
	bound := r.cfg.BackoffBase << min(try, 20)
	if bound > r.cfg.BackoffMax || bound <= 0 {
		bound = r.cfg.BackoffMax
	}
	return time.Duration(r.rand(int(bound)) + 1)
}

// classify turns an attempt's error into an outcome and a status.
func classify(ctx context.Context, err error) (Outcome, int) {
	status := 0
	var se StatusError
	if errors.As(err, &se) {
		status = se.HTTPStatus()
	}
	switch {
	case errors.Is(err, ErrCommitted):
		return Broken, status
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded), status == 408 || status == 504:
		return Timeout, status
	case status == 429:
		return RateLimited, status
	case status >= 500 || status == 0:
		if ctx.Err() != nil {
			return Timeout, status
		}
		return ServerError, status
	}
	return Rejected, status
}

func (r *Router) record(t Target, out Outcome, br *Breaker) {
	r.attempts.WithLabelValues(t.Provider, t.Model, string(out)).Inc()
	r.state.WithLabelValues(t.Provider, t.Model).Set(float64(br.Health(r.now()).State))
}
