package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// clock is a manual clock for breakers and routers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1000, 0)}
	b := NewBreaker(BreakerConfig{ConsecutiveFailures: 3, ErrorRate: -1, OpenFor: 10 * time.Second, Probes: 2})
	for i := range 2 {
		if !b.Allow(c.now()) {
			t.Fatalf("closed breaker refused request %d", i)
		}
		b.Record(c.now(), false, 0)
	}
	b.Record(c.now(), true, time.Millisecond) // a success resets the run
	for range 3 {
		b.Record(c.now(), false, 0)
	}
	if h := b.Health(c.now()); h.State != Open {
		t.Fatalf("state after 3 consecutive failures = %v, want open", h.State)
	}
	if b.Allow(c.now()) {
		t.Fatal("open breaker let a request through")
	}
	c.advance(10 * time.Second)
	if h := b.Health(c.now()); h.State != HalfOpen {
		t.Fatalf("state after the cool-down = %v, want half-open", h.State)
	}
	if !b.Allow(c.now()) {
		t.Fatal("half-open breaker refused the first probe")
	}
	if b.Allow(c.now()) {
		t.Fatal("half-open breaker let a second probe through while one is in flight")
	}
	b.Record(c.now(), true, time.Millisecond)
	if !b.Allow(c.now()) {
		t.Fatal("half-open breaker refused the second probe")
	}
	b.Record(c.now(), true, time.Millisecond)
	if h := b.Health(c.now()); h.State != Closed {
		t.Fatalf("state after 2 successful probes = %v, want closed", h.State)
	}
}

func TestBreakerFailedProbeReopens(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1000, 0)}
	b := NewBreaker(BreakerConfig{ConsecutiveFailures: 1, OpenFor: time.Second})
	b.Record(c.now(), false, 0)
	c.advance(time.Second)
	if !b.Allow(c.now()) {
		t.Fatal("no probe after the cool-down")
	}
	b.Record(c.now(), false, 0)
	if b.Allow(c.now()) || b.Health(c.now()).State != Open {
		t.Fatal("a failed probe did not open the breaker again")
	}
	c.advance(999 * time.Millisecond)
	if b.Allow(c.now()) {
		t.Fatal("the new cool-down was not a full one")
	}
}

func TestBreakerOpensOnErrorRate(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1000, 0)}
	b := NewBreaker(BreakerConfig{ConsecutiveFailures: 100, ErrorRate: 0.5, MinRequests: 10, Window: 10})
	// Alternate: never two failures in a row, but half of them fail.
	for i := range 9 {
		b.Record(c.now(), i%2 == 0, time.Millisecond)
	}
	if s := b.Health(c.now()).State; s != Closed {
		t.Fatalf("state before min_requests = %v, want closed", s)
	}
	b.Record(c.now(), false, 0) // 10 outcomes, 5 failures
	if s := b.Health(c.now()).State; s != Open {
		t.Fatalf("state at a 50%% error rate = %v, want open", s)
	}
}

func TestBreakerLatencyAverage(t *testing.T) {
	t.Parallel()
	b := NewBreaker(BreakerConfig{})
	now := time.Unix(0, 0)
	b.Record(now, true, 100*time.Millisecond)
	b.Record(now, true, 200*time.Millisecond)
	b.Record(now, false, time.Hour) // failures do not count
	if got := b.Health(now).Latency; got != 120*time.Millisecond {
		t.Fatalf("latency average = %v, want 120ms", got)
	}
}

// upstreamErr is a failure as a provider adapter reports it.
type upstreamErr struct {
	status     int
	retryAfter time.Duration
}

func (e *upstreamErr) Error() string             { return fmt.Sprintf("upstream status %d", e.status) }
func (e *upstreamErr) HTTPStatus() int           { return e.status }
func (e *upstreamErr) RetryAfter() time.Duration { return e.retryAfter }
func fail(status int) error                      { return &upstreamErr{status: status} }
func failAfter(status int, ra time.Duration) error {
	return &upstreamErr{status: status, retryAfter: ra}
}

// newTestRouter returns a router with a manual clock, a recorded sleep and
// weighted choices that always pick the first target.
func newTestRouter(t *testing.T, cfg Config) (*Router, *[]time.Duration, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	r, err := New(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Unix(1000, 0)}
	r.now = c.now
	var slept []time.Duration
	r.sleep = func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		c.advance(d)
		return nil
	}
	r.rand = func(n int) int { return 0 }
	return r, &slept, reg
}

// script answers attempts per target from a list of errors (nil: success).
type script map[string][]error

func (s script) call(ctx context.Context, t Target, n int) (string, error) {
	errs := s[t.Provider]
	if len(errs) == 0 {
		return "", fmt.Errorf("no answer scripted for %s", t.Provider)
	}
	err := errs[0]
	s[t.Provider] = errs[1:]
	if err != nil {
		return "", err
	}
	return t.Provider, nil
}

func outcomes(as []Attempt) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Target.Provider+":"+string(a.Outcome))
	}
	return out
}

var (
	pa = Target{Provider: "a", Model: "m"}
	pb = Target{Provider: "b", Model: "m"}
	pc = Target{Provider: "c", Model: "m"}
)

func TestDoFaultMatrix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		plan    Plan
		script  script
		want    string // provider that answered, "" for an error
		wantErr error
		attempt []string
		slept   int
	}{
		{
			name:    "429 falls back at once",
			plan:    Plan{Targets: []Target{pa}, Fallbacks: []Target{pb}, Retries: 2},
			script:  script{"a": {fail(429)}, "b": {nil}},
			want:    "b",
			attempt: []string{"a:rate_limited", "b:ok"},
		},
		{
			name:    "500 is retried, then falls back",
			plan:    Plan{Targets: []Target{pa}, Fallbacks: []Target{pb}, Retries: 1},
			script:  script{"a": {fail(500), fail(502)}, "b": {nil}},
			want:    "b",
			attempt: []string{"a:server_error", "a:server_error", "b:ok"},
			slept:   1,
		},
		{
			name:    "500 then success on the retry",
			plan:    Plan{Targets: []Target{pa}, Fallbacks: []Target{pb}, Retries: 1},
			script:  script{"a": {fail(503), nil}},
			want:    "a",
			attempt: []string{"a:server_error", "a:ok"},
			slept:   1,
		},
		{
			name:    "a hang times out, then falls back",
			plan:    Plan{Targets: []Target{pa}, Fallbacks: []Target{pb}, Retries: 3},
			script:  script{"a": {fmt.Errorf("read: %w", ErrTimeout)}, "b": {nil}},
			want:    "b",
			attempt: []string{"a:timeout", "b:ok"},
		},
		{
			name:    "a stream broken before its first byte falls back",
			plan:    Plan{Targets: []Target{pa}, Fallbacks: []Target{pb}},
			script:  script{"a": {errors.New("connection reset by peer")}, "b": {nil}},
			want:    "b",
			attempt: []string{"a:server_error", "b:ok"},
		},
		{
			name:    "a stream broken after its first byte is not retried",
			plan:    Plan{Targets: []Target{pa}, Fallbacks: []Target{pb}, Retries: 2},
			script:  script{"a": {fmt.Errorf("relay: %w", ErrCommitted)}, "b": {nil}},
			wantErr: ErrCommitted,
			attempt: []string{"a:broken"},
		},
		{
			name:    "a client error is returned as is",
			plan:    Plan{Targets: []Target{pa}, Fallbacks: []Target{pb}, Retries: 2},
			script:  script{"a": {fail(400)}, "b": {nil}},
			wantErr: &upstreamErr{},
			attempt: []string{"a:rejected"},
		},
		{
			name:    "all targets down: the last failure",
			plan:    Plan{Targets: []Target{pa}, Fallbacks: []Target{pb, pc}},
			script:  script{"a": {fail(500)}, "b": {fail(429)}, "c": {fail(503)}},
			wantErr: &upstreamErr{},
			attempt: []string{"a:server_error", "b:rate_limited", "c:server_error"},
		},
		{
			name:    "a short Retry-After is honoured",
			plan:    Plan{Targets: []Target{pa}, Retries: 1},
			script:  script{"a": {failAfter(503, 700*time.Millisecond), nil}},
			want:    "a",
			attempt: []string{"a:server_error", "a:ok"},
			slept:   1,
		},
		{
			name:    "a long Retry-After moves on",
			plan:    Plan{Targets: []Target{pa}, Fallbacks: []Target{pb}, Retries: 1},
			script:  script{"a": {failAfter(503, time.Minute)}, "b": {nil}},
			want:    "b",
			attempt: []string{"a:server_error", "b:ok"},
		},
		{
			name:    "a target listed as primary and fallback is tried once",
			plan:    Plan{Targets: []Target{pa}, Fallbacks: []Target{pa, pb}},
			script:  script{"a": {fail(500)}, "b": {nil}},
			want:    "b",
			attempt: []string{"a:server_error", "b:ok"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, slept, _ := newTestRouter(t, Config{})
			got, attempts, err := Do(context.Background(), r, tt.plan, tt.script.call)
			if got != tt.want {
				t.Errorf("answered by %q, want %q", got, tt.want)
			}
			switch want := tt.wantErr.(type) {
			case nil:
				if err != nil {
					t.Errorf("error %v, want none", err)
				}
			case *upstreamErr:
				var ue *upstreamErr
				if !errors.As(err, &ue) {
					t.Errorf("error %v, want the upstream's", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("error %v, want %v", err, want)
				}
			}
			if !slices.Equal(outcomes(attempts), tt.attempt) {
				t.Errorf("attempts %v, want %v", outcomes(attempts), tt.attempt)
			}
			if len(*slept) != tt.slept {
				t.Errorf("waited %d times (%v), want %d", len(*slept), *slept, tt.slept)
			}
			if tt.name == "a short Retry-After is honoured" && (*slept)[0] != 700*time.Millisecond {
				t.Errorf("waited %v, want the Retry-After of 700ms", (*slept)[0])
			}
		})
	}
}

func TestDoBackoffIsBoundedAndJittered(t *testing.T) {
	t.Parallel()
	r, slept, _ := newTestRouter(t, Config{BackoffBase: 100 * time.Millisecond, BackoffMax: 300 * time.Millisecond})
	r.rand = func(n int) int { return n - 1 } // the longest wait jitter allows
	s := script{"a": {fail(500), fail(500), fail(500), fail(500)}}
	_, _, err := Do(context.Background(), r, Plan{Targets: []Target{pa}, Retries: 3}, s.call)
	if err == nil {
		t.Fatal("want the last failure")
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
	if !slices.Equal(*slept, want) {
		t.Fatalf("waits %v, want %v (exponential, capped)", *slept, want)
	}
}

func TestDoStopsRetryingAtTheDeadline(t *testing.T) {
	t.Parallel()
	r, slept, _ := newTestRouter(t, Config{})
	r.now = time.Now // the context's deadline is on the real clock
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A Retry-After past the deadline, but not past max_retry_after.
	s := script{"a": {failAfter(503, 2*time.Minute)}, "b": {nil}}
	r.cfg.MaxRetryAfter = time.Hour
	got, attempts, err := Do(ctx, r, Plan{Targets: []Target{pa}, Fallbacks: []Target{pb}, Retries: 2}, s.call)
	if err != nil || got != "b" {
		t.Fatalf("got %q, %v; want the fallback's answer", got, err)
	}
	if len(*slept) != 0 || len(attempts) != 2 {
		t.Fatalf("waited %v with attempts %v; want no wait past the deadline", *slept, outcomes(attempts))
	}
}

func TestDoCircuitOpensAndCloses(t *testing.T) {
	t.Parallel()
	r, _, reg := newTestRouter(t, Config{Breaker: BreakerConfig{ConsecutiveFailures: 2, OpenFor: 5 * time.Second, Probes: 1, ErrorRate: -1}})
	plan := Plan{Targets: []Target{pa}, Fallbacks: []Target{pb}}
	s := script{"a": {fail(500), fail(500)}, "b": {nil, nil, nil}}
	for range 2 {
		if got, _, err := Do(context.Background(), r, plan, s.call); got != "b" || err != nil {
			t.Fatalf("got %q, %v; want the fallback", got, err)
		}
	}
	if st := r.Health(pa).State; st != Open {
		t.Fatalf("breaker of a is %v after 2 failures, want open", st)
	}
	// While open, a is skipped without a call (its script is empty).
	got, attempts, err := Do(context.Background(), r, plan, s.call)
	if got != "b" || err != nil || !slices.Equal(outcomes(attempts), []string{"a:circuit_open", "b:ok"}) {
		t.Fatalf("got %q, %v, attempts %v; want a skipped and b answering", got, err, outcomes(attempts))
	}
	if v := testutil.ToFloat64(r.state.WithLabelValues("a", "m")); v != float64(Open) {
		t.Errorf("circuit state metric = %v, want %d", v, Open)
	}
	// After the cool-down a successful probe closes it.
	r.now = func() time.Time { return time.Unix(1000, 0).Add(time.Minute) }
	s["a"] = []error{nil}
	if got, _, err := Do(context.Background(), r, plan, s.call); got != "a" || err != nil {
		t.Fatalf("probe: got %q, %v; want a", got, err)
	}
	if st := r.Health(pa).State; st != Closed {
		t.Fatalf("breaker after a successful probe = %v, want closed", st)
	}
	if n, err := testutil.GatherAndCount(reg, "tollgate_upstream_attempts_total"); err != nil || n == 0 {
		t.Fatalf("attempt metrics: %d series, %v", n, err)
	}
}

func TestDoAllCircuitsOpen(t *testing.T) {
	t.Parallel()
	r, _, _ := newTestRouter(t, Config{Breaker: BreakerConfig{ConsecutiveFailures: 1}})
	s := script{"a": {fail(500)}}
	_, _, _ = Do(context.Background(), r, Plan{Targets: []Target{pa}}, s.call)
	_, attempts, err := Do(context.Background(), r, Plan{Targets: []Target{pa}}, s.call)
	if !errors.Is(err, ErrNoTarget) || len(attempts) != 1 || attempts[0].Outcome != Skipped {
		t.Fatalf("error %v, attempts %v; want ErrNoTarget after one skip", err, outcomes(attempts))
	}
}

func TestOrderFollowsWeights(t *testing.T) {
	t.Parallel()
	r, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	r.rand = func(total int) int { n++; return (n * 7) % total } // a fixed, spread sequence
	plan := Plan{Targets: []Target{{Provider: "a", Weight: 90}, {Provider: "b", Weight: 10}}, Fallbacks: []Target{pc}}
	first := map[string]int{}
	for range 1000 {
		order := r.Order(plan)
		if len(order) != 3 || order[2] != pc {
			t.Fatalf("order %v; want both primaries then the fallback", order)
		}
		first[order[0].Provider]++
	}
	if first["a"] < 850 || first["a"] > 950 {
		t.Fatalf("a went first %d times in 1000, want about 900 (weights 90/10)", first["a"])
	}
}
