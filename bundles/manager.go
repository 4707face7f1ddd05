package bundles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Manager keeps a compiled policy current: it loads every configured
// source, combines their bundles, compiles the result and activates it only
// when compiling (which includes the engine's smoke evaluation) succeeded.
// A failure at any step keeps the active policy and is recorded in Status,
// in the metrics and in the log.
//
// P is what compile makes of a bundle, e.g. *engine.Policy:
//
//	m, err := bundles.NewManager(cfg, eng.Compile, eng.Activate, reg, log)
//
// Reloads are serialized; activate is never called concurrently with
// itself, and an unchanged combined revision is not compiled again.
type Manager[P any] struct {
	compile  func(context.Context, *Bundle) (P, error)
	activate func(P)
	log      *slog.Logger
	metrics  *metrics
	sources  []*sourceState

	// wait sleeps between polls; jitter returns a number in [0, 1).
	// Tests replace both.
	wait   func(ctx context.Context, d time.Duration) error
	jitter func() float64

	running atomic.Bool

	// mu serializes apply and guards active, lastFailed and the sources'
	// latest bundles.
	mu         sync.Mutex
	active     string // revision
	activeID   string // identity
	lastFailed bool

	statusMu sync.Mutex
	status   Status
}

// sourceState is one source and what the manager knows of it.
type sourceState struct {
	index int
	cfg   SourceConfig
	label string
	src   source

	loadMu sync.Mutex // serializes src.load
	latest *Bundle    // guarded by Manager.mu
}

// Status is the manager's state, for /readyz and operators.
type Status struct {
	// Ready says a bundle was activated at least once; a gateway that is not
	// ready denies every request.
	Ready bool `json:"ready"`
	// Revision is the active combined revision.
	Revision string `json:"revision,omitempty"`
	// LastError is the most recent failure (load, combine, compile); it
	// stays after later successes, so compare LastErrorAt with
	// LastSuccessAt to tell whether the newest attempt failed.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	LastSuccessAt time.Time `json:"last_success_at,omitzero"`
	// Sources are the configured sources, in configuration order.
	Sources []SourceStatus `json:"sources"`
}

// SourceStatus is the state of one source.
type SourceStatus struct {
	// Name is the configured name, else the path or the URL without query.
	Name string `json:"name"`
	Type string `json:"type"`
	// Revision is that of the source's newest bundle, which may be newer
	// than the active one when it failed to compile.
	Revision      string    `json:"revision,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	LastSuccessAt time.Time `json:"last_success_at,omitzero"`
}

// NewManager validates cfg, reads the verification keys and registers the
// metrics on reg (when not nil). Nothing is loaded before Load or Run.
func NewManager[P any](cfg Config, compile func(context.Context, *Bundle) (P, error), activate func(P), reg prometheus.Registerer, log *slog.Logger) (*Manager[P], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if compile == nil || activate == nil {
		return nil, errors.New("bundles: NewManager needs compile and activate functions")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	verifier, err := NewVerifier(cfg.Signing)
	if err != nil {
		return nil, err
	}
	m := &Manager[P]{
		compile:  compile,
		activate: activate,
		log:      log,
		wait:     sleep,
		jitter:   rand.Float64,
	}
	srcs := cfg.Sources()
	if len(srcs) == 0 {
		if cfg.Default == nil {
			return nil, errors.New("policy.bundles: empty and no default bundle; list at least one source")
		}
		m.sources = []*sourceState{{cfg: SourceConfig{Type: "embedded"}, label: "embedded", src: &fsSource{fsys: cfg.Default, name: "embedded"}}}
	}
	for i, sc := range srcs {
		st := &sourceState{index: i, cfg: sc, label: sc.label()}
		opts := ArchiveOptions{Verifier: verifier, MaxBytes: sc.MaxBytes}
		switch sc.Type {
		case TypeDir:
			st.src = &dirSource{path: sc.Path}
		case TypeFile:
			st.src = &fileSource{path: sc.Path, opts: opts}
		case TypeHTTP:
			st.src = &httpSource{url: sc.URL, label: st.label, headers: sc.Headers, timeout: sc.Timeout, opts: opts, client: newHTTPClient()}
		}
		m.sources = append(m.sources, st)
	}
	m.status.Sources = make([]SourceStatus, len(m.sources))
	for i, st := range m.sources {
		m.status.Sources[i] = SourceStatus{Name: st.label, Type: st.cfg.Type}
	}
	if m.metrics, err = newMetrics(reg); err != nil {
		return nil, err
	}
	return m, nil
}

// Load loads every source once, then combines, compiles and activates, and
// returns this attempt's error. Use it for a synchronous first load before
// serving, or for a one-shot check; Run does the same on start.
func (m *Manager[P]) Load(ctx context.Context) error {
	_, err := m.loadAll(ctx)
	return err
}

// Run loads every source, then keeps reloading until ctx ends: dir and file
// sources on file-system events (debounced), http sources every
// poll_interval with jitter, backing off exponentially after failures. It
// returns nil once ctx ends and all its goroutines have stopped.
func (m *Manager[P]) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("bundles: Manager.Run called twice")
	}
	defer m.running.Store(false)

	// Watch before the first load, so no edit falls between the two.
	watchers := make([]*watcher, len(m.sources))
	for i, st := range m.sources {
		if st.cfg.Type != TypeDir && st.cfg.Type != TypeFile {
			continue
		}
		watchers[i] = newWatcher(st.cfg.Path, st.cfg.Type == TypeDir, m.log)
	}

	errs, _ := m.loadAll(ctx)
	var wg sync.WaitGroup
	for i, st := range m.sources {
		switch st.cfg.Type {
		case TypeDir, TypeFile:
			w := watchers[i]
			wg.Go(func() {
				w.run(ctx, st.cfg.Debounce, st.cfg.PollInterval, func(ctx context.Context) { _ = m.refresh(ctx, st) })
			})
		case TypeHTTP:
			failures := 0
			if errs[i] != nil {
				failures = 1
			}
			wg.Go(func() { m.poll(ctx, st, failures) })
		}
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

// poll fetches an http source until ctx ends; failures is the number of
// failed fetches in a row so far.
func (m *Manager[P]) poll(ctx context.Context, st *sourceState, failures int) {
	for {
		if err := m.wait(ctx, m.delay(st.cfg, failures)); err != nil {
			return
		}
		if err := m.refresh(ctx, st); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
		} else {
			failures = 0
		}
	}
}

// delay is the wait before the next poll: the poll interval ±10%, or after
// failures in a row min_backoff·2^(failures-1), stretched
// by up to 10% and capped at max_backoff.
func (m *Manager[P]) delay(sc SourceConfig, failures int) time.Duration {
	if failures == 0 {
		return time.Duration(float64(sc.PollInterval) * (1 + pollJitter*(2*m.jitter()-1)))
	}
	d := sc.MinBackoff
	for i := 1; i < failures && d < sc.MaxBackoff; i++ {
		d *= 2
	}
	d = time.Duration(float64(d) * (1 + pollJitter*m.jitter()))
	return min(d, sc.MaxBackoff)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// loadResult is the outcome of one source's load; b is nil when unchanged.
type loadResult struct {
	st  *sourceState
	b   *Bundle
	err error
}

// loadAll loads every source and applies the results at once. It returns
// each source's load error and the error of the whole attempt.
func (m *Manager[P]) loadAll(ctx context.Context) ([]error, error) {
	results := make([]loadResult, len(m.sources))
	errs := make([]error, len(m.sources))
	for i, st := range m.sources {
		b, err := st.load(ctx)
		results[i] = loadResult{st: st, b: b, err: err}
		errs[i] = err
	}
	return errs, m.apply(ctx, results)
}

// refresh loads one source and applies the result; it returns the load
// error only, which drives the source's backoff.
func (m *Manager[P]) refresh(ctx context.Context, st *sourceState) error {
	b, err := st.load(ctx)
	_ = m.apply(ctx, []loadResult{{st: st, b: b, err: err}})
	return err
}

func (st *sourceState) load(ctx context.Context) (*Bundle, error) {
	st.loadMu.Lock()
	defer st.loadMu.Unlock()
	return st.src.load(ctx)
}

// apply records load results and, when a source has a new bundle, combines
// the newest bundle of every source, compiles and activates it.
func (m *Manager[P]) apply(ctx context.Context, results []loadResult) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()

	var loadErrs []error
	changed := false
	for _, r := range results {
		if r.err != nil {
			if ctx.Err() != nil && errors.Is(r.err, ctx.Err()) {
				continue // shutting down, not a failure
			}
			loadErrs = append(loadErrs, r.err)
			m.setSource(r.st.index, func(s *SourceStatus) { s.LastError, s.LastErrorAt = r.err.Error(), now })
			continue
		}
		m.setSource(r.st.index, func(s *SourceStatus) {
			s.LastSuccessAt = now
			if r.b != nil {
				s.Revision = r.b.Revision
			}
		})
		if r.b != nil && (r.st.latest == nil || r.st.latest.identity() != r.b.identity()) {
			r.st.latest = r.b
			changed = true
		}
	}
	var err error
	if len(loadErrs) > 0 {
		err = errors.Join(loadErrs...)
		m.fail(now, err, "")
	}
	if !changed {
		return err
	}

	latest := make([]*Bundle, len(m.sources))
	for i, st := range m.sources {
		if st.latest == nil {
			if err != nil {
				return err // already recorded: the source failed to load
			}
			e := fmt.Errorf("bundle %s has not loaded yet", st.label)
			m.fail(now, e, "")
			return e
		}
		latest[i] = st.latest
	}
	combined, cerr := Combine(latest...)
	if cerr != nil {
		m.fail(now, cerr, "")
		return errors.Join(err, cerr)
	}
	if combined.identity() == m.activeID {
		if m.lastFailed && err == nil {
			// Back to the active content (e.g. a broken edit reverted).
			m.succeed(now, combined.Revision, "bundle unchanged, still active")
		}
		return err
	}
	start := time.Now()
	p, cerr := m.compile(ctx, combined)
	if cerr != nil {
		if ctx.Err() != nil {
			return ctx.Err() // shutting down, not a failure
		}
		m.fail(now, cerr, combined.Revision)
		return errors.Join(err, cerr)
	}
	m.activate(p)
	prev := m.active
	m.active, m.activeID = combined.Revision, combined.identity()
	m.log.Info("bundle activated", "revision", combined.Revision, "previous_revision", prev,
		"source", combined.Source, "compile_ms", time.Since(start).Milliseconds())
	m.succeed(now, combined.Revision, "")
	return err
}

func (m *Manager[P]) setSource(i int, f func(*SourceStatus)) {
	m.statusMu.Lock()
	defer m.statusMu.Unlock()
	f(&m.status.Sources[i])
}

// fail records a failed attempt; revision is that of the bundle that did
// not compile, if it got that far.
func (m *Manager[P]) fail(now time.Time, err error, revision string) {
	m.lastFailed = true
	m.metrics.loads.WithLabelValues("failure").Inc()
	m.metrics.lastFailure.Set(float64(now.UnixNano()) / 1e9)
	m.statusMu.Lock()
	m.status.LastError, m.status.LastErrorAt = err.Error(), now
	m.statusMu.Unlock()
	attrs := []any{"err", err, "active_revision", m.active}
	if revision != "" {
		attrs = append(attrs, "revision", revision)
	}
	m.log.Error("bundle load failed", attrs...)
}

// succeed records that revision is active; msg, when set, is logged.
func (m *Manager[P]) succeed(now time.Time, revision, msg string) {
	m.lastFailed = false
	m.metrics.loads.WithLabelValues("success").Inc()
	m.metrics.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	m.metrics.revision.Reset()
	m.metrics.revision.WithLabelValues(revision).Set(1)
	m.statusMu.Lock()
	m.status.Ready = true
	m.status.Revision = revision
	m.status.LastSuccessAt = now
	m.statusMu.Unlock()
	if msg != "" {
		m.log.Info(msg, "revision", revision)
	}
}

// Status returns a copy of the current state. It does not wait for a
// reload in progress.
func (m *Manager[P]) Status() Status {
	m.statusMu.Lock()
	defer m.statusMu.Unlock()
	s := m.status
	s.Sources = append([]SourceStatus(nil), m.status.Sources...)
	return s
}

// metrics are the manager's Prometheus collectors.
type metrics struct {
	loads       *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	lastFailure prometheus.Gauge
	revision    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	mt := &metrics{
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_bundle_loads_total",
			Help: "Bundle load attempts (load, combine, compile, activate) by result.",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_bundle_last_success_timestamp_seconds",
			Help: "Unix time of the last successful bundle load.",
		}),
		lastFailure: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_bundle_last_failure_timestamp_seconds",
			Help: "Unix time of the last failed bundle load.",
		}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_bundle_revision_info",
			Help: "The active bundle revision (one series, value 1).",
		}, []string{"revision"}),
	}
	mt.loads.WithLabelValues("success")
	mt.loads.WithLabelValues("failure")
	if reg == nil {
		return mt, nil
	}
	for _, c := range []prometheus.Collector{mt.loads, mt.lastSuccess, mt.lastFailure, mt.revision} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register bundle metrics: %w", err)
		}
	}
	return mt, nil
}
