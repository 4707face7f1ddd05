package analytics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// value reads a counter or gauge.
func value(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatalf("read metric: %v", err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	t.Fatalf("metric %v is neither counter nor gauge", m.Desc())
	return 0
}

// waitTimeout bounds every wait for the writer goroutine; tests never sleep.
const waitTimeout = 10 * time.Second

// fakeInserter records batches of Event or DecisionEvent and fails the
// calls fail says to fail.
type fakeInserter[T any] struct {
	requestID func(*T) string

	batches chan []string // request IDs per successful batch
	calls   chan struct{} // one value per call, before it returns

	mu     sync.Mutex
	n      int
	fail   func(call int) error // nil: never fail
	blockC chan struct{}        // non-nil: block until closed or ctx done
}

func newFakeInserter() *fakeInserter[Event] { return newFake(eventRequestID) }

func newFakeDecisionInserter() *fakeInserter[DecisionEvent] { return newFake(decisionRequestID) }

func newFake[T any](requestID func(*T) string) *fakeInserter[T] {
	return &fakeInserter[T]{
		requestID: requestID,
		batches:   make(chan []string, 1000),
		calls:     make(chan struct{}, 1000),
	}
}

func (f *fakeInserter[T]) Insert(ctx context.Context, records []T) error {
	f.mu.Lock()
	f.n++
	call, fail, block := f.n, f.fail, f.blockC
	f.mu.Unlock()
	f.calls <- struct{}{}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(call); err != nil {
			return err
		}
	}
	ids := make([]string, len(records))
	for i := range records {
		ids[i] = f.requestID(&records[i])
	}
	f.batches <- ids
	return nil
}

// next waits for the next successful batch.
func (f *fakeInserter[T]) next(t *testing.T) []string {
	t.Helper()
	select {
	case b := <-f.batches:
		return b
	case <-time.After(waitTimeout):
		t.Fatal("no batch inserted within", waitTimeout)
		return nil
	}
}

// none checks no batch is waiting.
func (f *fakeInserter[T]) none(t *testing.T) {
	t.Helper()
	select {
	case b := <-f.batches:
		t.Fatalf("unexpected batch %v", b)
	default:
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func enqueue(w *Writer, requestIDs []string) {
	for _, id := range requestIDs {
		w.Enqueue(Event{RequestID: id, Team: "ml"})
	}
}

// lockedBuffer is a log sink safe for the writer goroutine and the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestWriter(t *testing.T, cfg WriterConfig, out Inserter) (*Writer, *lockedBuffer) {
	t.Helper()
	var logs lockedBuffer
	w, err := NewWriter(cfg, out, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = w.Stop(ctx) // tests that care call Stop themselves
	})
	return w, &logs
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestWriterBatchesBySize(t *testing.T) {
	t.Parallel()
	f := newFakeInserter()
	w, _ := newTestWriter(t, WriterConfig{QueueSize: 100, BatchSize: 3, FlushInterval: time.Hour}, f)
	w.Start()
	want := ids("r", 7)
	enqueue(w, want)

	var got []string
	for _, wantLen := range []int{3, 3} {
		b := f.next(t)
		if len(b) != wantLen {
			t.Fatalf("batch size = %d, want %d", len(b), wantLen)
		}
		got = append(got, b...)
	}
	f.none(t) // the 7th event waits for the hour-long interval
	if err := w.Flush(ctxT(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	got = append(got, f.next(t)...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inserted request IDs (-want +got):\n%s", diff)
	}
	if got, want := value(t, w.m.written), 7.0; got != want {
		t.Errorf("events_written_total = %v, want %v", got, want)
	}
}

func TestWriterBatchesByTime(t *testing.T) {
	t.Parallel()
	f := newFakeInserter()
	w, _ := newTestWriter(t, WriterConfig{QueueSize: 100, BatchSize: 100, FlushInterval: 5 * time.Millisecond}, f)
	w.Start()
	for round := range 3 {
		want := ids(fmt.Sprintf("t%d-", round), 2)
		enqueue(w, want)
		// Far below BatchSize, so only the interval can have sent it.
		if diff := cmp.Diff(want, f.next(t)); diff != "" {
			t.Errorf("round %d batch (-want +got):\n%s", round, diff)
		}
	}
}

func TestWriterStopFlushes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start bool
	}{
		{name: "started", start: true},
		{name: "never started", start: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeInserter()
			w, _ := newTestWriter(t, WriterConfig{QueueSize: 100, BatchSize: 4, FlushInterval: time.Hour}, f)
			if tc.start {
				w.Start()
			}
			want := ids("s", 10)
			enqueue(w, want)
			if err := w.Stop(ctxT(t)); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			var got []string
			for len(got) < len(want) {
				got = append(got, f.next(t)...)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("inserted (-want +got):\n%s", diff)
			}
			w.Enqueue(Event{RequestID: "late"})
			if got := value(t, w.m.dropped.WithLabelValues(reasonStopped)); got != 1 {
				t.Errorf("dropped{reason=stopped} = %v after Enqueue on a stopped writer, want 1", got)
			}
			if err := w.Flush(ctxT(t)); !errors.Is(err, ErrStopped) {
				t.Errorf("Flush after Stop = %v, want ErrStopped", err)
			}
			if err := w.Stop(ctxT(t)); err != nil {
				t.Errorf("second Stop = %v, want nil", err)
			}
		})
	}
}

func TestWriterQueueFullDrops(t *testing.T) {
	t.Parallel()
	f := newFakeInserter()
	w, logs := newTestWriter(t, WriterConfig{QueueSize: 2, BatchSize: 2, FlushInterval: time.Hour}, f)
	// Not started: nothing drains the queue.
	enqueue(w, ids("q", 5))
	if got, want := value(t, w.m.dropped.WithLabelValues(reasonQueueFull)), 3.0; got != want {
		t.Errorf("dropped{reason=queue_full} = %v, want %v", got, want)
	}
	if got, want := value(t, w.m.queueDepth), 2.0; got != want {
		t.Errorf("queue_depth = %v, want %v", got, want)
	}
	if got := strings.Count(logs.String(), "analytics queue full"); got != 1 {
		t.Errorf("queue-full warnings = %d, want 1 (rate-limited); logs:\n%s", got, logs)
	}
	if err := w.Stop(ctxT(t)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if diff := cmp.Diff(ids("q", 2), f.next(t)); diff != "" {
		t.Errorf("written batch (-want +got):\n%s", diff)
	}
	if got := value(t, w.m.queueDepth); got != 0 {
		t.Errorf("queue_depth after Stop = %v, want 0", got)
	}
}

func TestWriterRetries(t *testing.T) {
	t.Parallel()
	errDown := errors.New("clickhouse down")
	tests := []struct {
		name        string
		maxAttempts int
		failures    int // leading calls that fail
		wantErr     bool
		wantWritten float64
		wantDropped float64
		wantErrors  float64
	}{
		{name: "succeeds first time", maxAttempts: 3, failures: 0, wantWritten: 5},
		{name: "succeeds on third attempt", maxAttempts: 3, failures: 2, wantWritten: 5, wantErrors: 2},
		{name: "gives up", maxAttempts: 2, failures: 100, wantErr: true, wantDropped: 5, wantErrors: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeInserter()
			f.fail = func(call int) error {
				if call <= tc.failures {
					return errDown
				}
				return nil
			}
			w, logs := newTestWriter(t, WriterConfig{
				QueueSize: 100, BatchSize: 10, FlushInterval: time.Hour,
				MaxAttempts: tc.maxAttempts, RetryBackoff: time.Millisecond,
			}, f)
			w.Start()
			enqueue(w, ids("x", 5))
			err := w.Flush(ctxT(t))
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("Flush error = %v, want error: %t", err, tc.wantErr)
			}
			if tc.wantErr && !errors.Is(err, errDown) {
				t.Errorf("Flush error = %v, want it to wrap %v", err, errDown)
			}
			checks := []struct {
				metric string
				got    float64
				want   float64
			}{
				{"events_written_total", value(t, w.m.written), tc.wantWritten},
				{"events_dropped_total{reason=insert_failed}", value(t, w.m.dropped.WithLabelValues(reasonInsertFailed)), tc.wantDropped},
				{"insert_errors_total", value(t, w.m.insertErrors), tc.wantErrors},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %v, want %v", c.metric, c.got, c.want)
				}
			}
			if tc.wantErr {
				l := logs.String()
				if !strings.Contains(l, "first_request_id=x0") {
					t.Errorf("drop log should name the first request ID; got:\n%s", l)
				}
			}
		})
	}
}

func TestWriterStopDeadline(t *testing.T) {
	t.Parallel()
	f := newFakeInserter()
	f.blockC = make(chan struct{}) // never closed: an insert that hangs
	w, _ := newTestWriter(t, WriterConfig{QueueSize: 100, BatchSize: 2, FlushInterval: time.Hour}, f)
	w.Start()
	enqueue(w, ids("h", 5))
	select {
	case <-f.calls: // the first batch is stuck in Insert
	case <-time.After(waitTimeout):
		t.Fatal("Insert not called")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Stop's deadline has already passed
	err := w.Stop(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop = %v, want context.Canceled", err)
	}
	dropped := value(t, w.m.dropped.WithLabelValues(reasonInsertFailed)) +
		value(t, w.m.dropped.WithLabelValues(reasonStopped))
	if dropped != 5 {
		t.Errorf("dropped events = %v, want 5", dropped)
	}
}

func TestWriterConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     WriterConfig
		wantErr []string // substrings; nil means valid
	}{
		{name: "zero means defaults", cfg: WriterConfig{}},
		{name: "explicit", cfg: WriterConfig{QueueSize: 10, BatchSize: 10, FlushInterval: time.Second, InsertTimeout: time.Second, MaxAttempts: 1, RetryBackoff: time.Millisecond}},
		{
			name:    "negatives",
			cfg:     WriterConfig{QueueSize: -1, FlushInterval: -time.Second, MaxAttempts: -2},
			wantErr: []string{"analytics.writer.queue_size: -1", "analytics.writer.flush_interval: -1s", "analytics.writer.max_attempts: -2"},
		},
		{
			name:    "batch larger than queue",
			cfg:     WriterConfig{QueueSize: 10},
			wantErr: []string{"analytics.writer.batch_size: 1000 exceeds queue_size 10"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestNewWriterRegistersMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	if _, err := NewWriter(WriterConfig{}, newFakeInserter(), reg, nil); err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range families {
		got = append(got, mf.GetName())
	}
	want := []string{
		"tollgate_analytics_batch_duration_seconds",
		"tollgate_analytics_events_dropped_total",
		"tollgate_analytics_events_written_total",
		"tollgate_analytics_insert_errors_total",
		"tollgate_analytics_queue_depth",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("registered metrics (-want +got):\n%s", diff)
	}
	if _, err := NewWriter(WriterConfig{}, newFakeInserter(), reg, nil); err == nil {
		t.Error("second NewWriter on the same registry: got nil error, want a registration conflict")
	}
}

func newTestDecisionWriter(t *testing.T, cfg WriterConfig, out DecisionInserter, reg *prometheus.Registry) (*DecisionWriter, *lockedBuffer) {
	t.Helper()
	var logs lockedBuffer
	w, err := NewDecisionWriter(cfg, out, reg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("NewDecisionWriter: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w, &logs
}

func enqueueDecisions(w *DecisionWriter, requestIDs []string) {
	for _, id := range requestIDs {
		w.Enqueue(DecisionEvent{RequestID: id, Team: "ml", Allowed: true})
	}
}

func TestDecisionWriterBatches(t *testing.T) {
	t.Parallel()
	f := newFakeDecisionInserter()
	w, _ := newTestDecisionWriter(t, WriterConfig{QueueSize: 100, BatchSize: 3, FlushInterval: time.Hour}, f, prometheus.NewRegistry())
	w.Start()
	want := ids("d", 8)
	enqueueDecisions(w, want)

	var got []string
	for range 2 {
		b := f.next(t)
		if len(b) != 3 {
			t.Fatalf("batch size = %d, want 3", len(b))
		}
		got = append(got, b...)
	}
	f.none(t) // the last two wait for the hour-long interval
	if err := w.Flush(ctxT(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	got = append(got, f.next(t)...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inserted request IDs (-want +got):\n%s", diff)
	}
	if got := value(t, w.m.written); got != 8 {
		t.Errorf("events_written_total{log=decision} = %v, want 8", got)
	}

	enqueueDecisions(w, ids("e", 2))
	if err := w.Stop(ctxT(t)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if diff := cmp.Diff(ids("e", 2), f.next(t)); diff != "" {
		t.Errorf("batch written by Stop (-want +got):\n%s", diff)
	}
	if err := w.Flush(ctxT(t)); !errors.Is(err, ErrStopped) {
		t.Errorf("Flush after Stop = %v, want ErrStopped", err)
	}
}

func TestDecisionWriterDropsLogRequestIDs(t *testing.T) {
	t.Parallel()
	errDown := errors.New("clickhouse down")
	f := newFakeDecisionInserter()
	f.fail = func(int) error { return errDown }
	w, logs := newTestDecisionWriter(t, WriterConfig{
		QueueSize: 10, BatchSize: 10, FlushInterval: time.Hour, MaxAttempts: 2, RetryBackoff: time.Millisecond,
	}, f, prometheus.NewRegistry())
	w.Start()
	enqueueDecisions(w, ids("z", 3))
	err := w.Flush(ctxT(t))
	if !errors.Is(err, errDown) {
		t.Fatalf("Flush = %v, want it to wrap %v", err, errDown)
	}
	if got := value(t, w.m.dropped.WithLabelValues(reasonInsertFailed)); got != 3 {
		t.Errorf("dropped{log=decision,reason=insert_failed} = %v, want 3", got)
	}
	l := logs.String()
	for _, want := range []string{"log=decision", "first_request_id=z0", "last_request_id=z2"} {
		if !strings.Contains(l, want) {
			t.Errorf("drop log lacks %q; got:\n%s", want, l)
		}
	}
}

func TestNewDecisionWriterRejectsNilInserter(t *testing.T) {
	t.Parallel()
	_, err := NewDecisionWriter(WriterConfig{}, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "analytics decision writer: nil Inserter") {
		t.Errorf("NewDecisionWriter(nil inserter) = %v, want an error naming the decision writer", err)
	}
}

// TestWritersShareRegistry registers an inference and a decision writer on
// one registry: every metric name then has one series per log, and each
// writer counts only its own records.
func TestWritersShareRegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	fe, fd := newFakeInserter(), newFakeDecisionInserter()
	cfg := WriterConfig{QueueSize: 10, BatchSize: 10, FlushInterval: time.Hour}
	ew, err := NewWriter(cfg, fe, reg, nil)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	dw, err := NewDecisionWriter(cfg, fd, reg, nil)
	if err != nil {
		t.Fatalf("NewDecisionWriter on the Writer's registry: %v", err)
	}
	ew.Start()
	dw.Start()
	enqueue(ew, ids("i", 2))
	enqueueDecisions(dw, ids("d", 5))
	ctx := ctxT(t)
	if err := errors.Join(ew.Stop(ctx), dw.Stop(ctx)); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	// series[name][log] counts series; written[log] is the written total.
	series := map[string]map[string]int{}
	written := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			var log string
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "log" {
					log = lp.GetValue()
				}
			}
			if series[mf.GetName()] == nil {
				series[mf.GetName()] = map[string]int{}
			}
			series[mf.GetName()][log]++
			if mf.GetName() == "tollgate_analytics_events_written_total" {
				written[log] = m.GetCounter().GetValue()
			}
		}
	}
	wantSeries := map[string]map[string]int{
		"tollgate_analytics_batch_duration_seconds": {"inference": 1, "decision": 1},
		"tollgate_analytics_events_dropped_total":   {"inference": 3, "decision": 3}, // one per reason
		"tollgate_analytics_events_written_total":   {"inference": 1, "decision": 1},
		"tollgate_analytics_insert_errors_total":    {"inference": 1, "decision": 1},
		"tollgate_analytics_queue_depth":            {"inference": 1, "decision": 1},
	}
	if diff := cmp.Diff(wantSeries, series); diff != "" {
		t.Errorf("series per metric and log label (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]float64{"inference": 2, "decision": 5}, written); diff != "" {
		t.Errorf("events_written_total by log (-want +got):\n%s", diff)
	}

	if _, err := NewDecisionWriter(cfg, fd, reg, nil); err == nil {
		t.Error("second NewDecisionWriter on the same registry: got nil error, want a registration conflict")
	}
}

// TestNewWriterRegistersAllOrNothing makes the last registration conflict:
// the metrics registered before it must be unregistered again, so a retry
// after removing the conflict succeeds.
func TestNewWriterRegistersAllOrNothing(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	squatter := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "tollgate_analytics_queue_depth",
		Help:        "Analytics events waiting in the queue, by log.",
		ConstLabels: prometheus.Labels{"log": "decision"},
	})
	reg.MustRegister(squatter)
	cfg := WriterConfig{}
	if _, err := NewDecisionWriter(cfg, newFakeDecisionInserter(), reg, nil); err == nil {
		t.Fatal("NewDecisionWriter with queue_depth taken: got nil error, want a registration conflict")
	}
	reg.Unregister(squatter)
	if _, err := NewDecisionWriter(cfg, newFakeDecisionInserter(), reg, nil); err != nil {
		t.Errorf("NewDecisionWriter after the conflict is gone: %v, want nil (metrics left from the failed attempt?)", err)
	}
}
