package bundles_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/bundles"
)

// compiled is what the test compile makes of a bundle: a prepared query
// for data.t.v, as the engine prepares its entrypoint.
type compiled struct {
	revision string
	q        rego.PreparedEvalQuery
}

// eval returns data.t.v as strings, e.g. {"mod": "A", "data": "A"}.
func (c *compiled) eval(ctx context.Context) (map[string]string, error) {
	rs, err := c.q.Eval(ctx)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("data.t.v undefined")
	}
	obj, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("data.t.v: got %T, want an object", rs[0].Expressions[0].Value)
	}
	out := map[string]string{}
	for k, v := range obj {
		out[k] = fmt.Sprint(v)
	}
	return out, nil
}

func compileRego(ctx context.Context, b *bundles.Bundle) (*compiled, error) {
	opts := []func(*rego.Rego){
		rego.Query("data.t.v"),
		rego.Store(inmem.NewFromObject(b.Data)),
		rego.SetRegoVersion(ast.RegoV1),
	}
	for _, m := range b.Modules {
		opts = append(opts, rego.ParsedModule(m))
	}
	q, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile bundle %s: %w", b.Source, err)
	}
	return &compiled{revision: b.Revision, q: q}, nil
}

// module returns a policy whose value names both its own version and the
// data it sees, so a mix of two bundles would show.
func module(version string) string {
	return fmt.Sprintf("package t\n\nv := {\"mod\": %q, \"data\": data.tag.value}\n", version)
}

// harness runs a Manager with compileRego and records what it does.
type harness struct {
	t        *testing.T
	m        *bundles.Manager[*compiled]
	reg      *prometheus.Registry
	current  atomic.Pointer[compiled]
	compiles atomic.Int32
}

func newHarness(t *testing.T, cfg bundles.Config) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry()}
	compile := func(ctx context.Context, b *bundles.Bundle) (*compiled, error) {
		h.compiles.Add(1)
		return compileRego(ctx, b)
	}
	m, err := bundles.NewManager(cfg, compile, func(c *compiled) { h.current.Store(c) }, h.reg, nil)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	h.m = m
	return h
}

// run starts Run; it is stopped and joined at the end of the test.
func (h *harness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.m.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: got %v, want nil after cancel", err)
		}
	})
}

// waitFor polls Status until cond holds, failing the test after a deadline.
func (h *harness) waitFor(what string, cond func(bundles.Status) bool) bundles.Status {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		st := h.m.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("waiting for %s: gave up; status %+v", what, st)
		}
		<-tick.C
	}
}

// evalCurrent evaluates the active policy.
func (h *harness) evalCurrent() map[string]string {
	h.t.Helper()
	c := h.current.Load()
	if c == nil {
		h.t.Fatal("no policy activated")
	}
	v, err := c.eval(context.Background())
	if err != nil {
		h.t.Fatalf("eval: %v", err)
	}
	return v
}

// metric returns the value of the sample of name whose labels include
// labels (name=value pairs); -1 when there is none.
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	sample:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue sample
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// series counts the samples of name.
func (h *harness) series(name string) int {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// clock is an injected poll sleeper: every wait is reported on waits and
// returns when the test calls tick (or at once when free-running).
type clock struct {
	waits chan time.Duration
	ticks chan struct{}
	free  atomic.Bool

	mu  sync.Mutex
	all []time.Duration
}

func newClock() *clock {
	return &clock{waits: make(chan time.Duration, 1000), ticks: make(chan struct{})}
}

func (c *clock) wait(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.all = append(c.all, d)
	c.mu.Unlock()
	if c.free.Load() {
		return ctx.Err()
	}
	select {
	case c.waits <- d:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-c.ticks:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// next waits until the poller sleeps and returns the delay it asked for.
func (c *clock) next(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(15 * time.Second):
		t.Fatal("poller never waited")
		return 0
	}
}

// tick ends the current wait.
func (c *clock) tick(t *testing.T) {
	t.Helper()
	select {
	case c.ticks <- struct{}{}:
	case <-time.After(15 * time.Second):
		t.Fatal("poller is not waiting")
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
