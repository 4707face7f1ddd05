package analytics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BatchInserter stores a batch of records, all or nothing as far as it can.
// It must not retain the slice or its elements after returning; the
// BatchWriter reuses it.
type BatchInserter[T any] interface {
	Insert(ctx context.Context, records []T) error
}

// Inserter stores a batch of inference-log events; see BatchInserter.
// ClickHouse and JSONLines implement it.
type Inserter = BatchInserter[Event]

// DecisionInserter stores a batch of decision-log events; see
// BatchInserter. Adapt ClickHouse.InsertDecisions or
// JSONLines.InsertDecisions with DecisionInserterFunc.
type DecisionInserter = BatchInserter[DecisionEvent]

// InserterFunc adapts a function to a BatchInserter, like
// http.HandlerFunc.
type InserterFunc[T any] func(ctx context.Context, records []T) error

// Insert calls f(ctx, records).
func (f InserterFunc[T]) Insert(ctx context.Context, records []T) error {
	return f(ctx, records)
}

// DecisionInserterFunc adapts a function to a DecisionInserter, e.g.
// DecisionInserterFunc(ch.InsertDecisions).
type DecisionInserterFunc = InserterFunc[DecisionEvent]

// WriterConfig is the analytics.writer section of the configuration. Zero
// fields take the defaults below.
type WriterConfig struct {
	// QueueSize bounds the events waiting to be written; default 10000.
	QueueSize int `yaml:"queue_size"`
	// BatchSize is the most events per insert; default 1000.
	BatchSize int `yaml:"batch_size"`
	// FlushInterval bounds how long an event waits for its batch to fill;
	// default 1s.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// InsertTimeout bounds one insert attempt; default 10s.
	InsertTimeout time.Duration `yaml:"insert_timeout"`
	// MaxAttempts is how often a batch is tried before it is dropped;
	// default 4 (one try and three retries).
	MaxAttempts int `yaml:"max_attempts"`
	// RetryBackoff is the wait before the first retry; it doubles per retry
	// up to 10s. Default 200ms.
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// Spool, when Spool.Dir is set, journals every event to local disk
	// before it is inserted: ClickHouse being down or slow then delays
	// events instead of losing them, and a crashed gateway ships them on
	// its next start. With a spool, MaxAttempts no longer applies: a batch
	// is retried, with backoff, until it is inserted.
	Spool SpoolConfig `yaml:"spool"`
}

// Default WriterConfig values.
const (
	DefaultQueueSize     = 10000
	DefaultBatchSize     = 1000
	DefaultFlushInterval = time.Second
	DefaultInsertTimeout = 10 * time.Second
	DefaultMaxAttempts   = 4
	DefaultRetryBackoff  = 200 * time.Millisecond

	maxRetryBackoff = 10 * time.Second
	// memFrames bounds the frames handed from journal to shipper in memory.
	memFrames = 4096
	// dropWarnInterval rate-limits the warning about a full queue.
	dropWarnInterval = 10 * time.Second
)

// withDefaults returns c with zero fields set to their defaults.
func (c WriterConfig) withDefaults() WriterConfig {
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.InsertTimeout == 0 {
		c.InsertTimeout = DefaultInsertTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	return c
}

// Validate reports every problem in c; zero fields count as their defaults.
func (c WriterConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	nonNegative := func(field string, n int) {
		if n < 0 {
			errs = append(errs, fmt.Errorf("analytics.writer.%s: %d is negative; use a positive number or 0 for the default", field, n))
		}
	}
	nonNegativeDur := func(field string, d time.Duration) {
		if d < 0 {
			errs = append(errs, fmt.Errorf("analytics.writer.%s: %s is negative; use a duration such as \"1s\" or 0 for the default", field, d))
		}
	}
	nonNegative("queue_size", c.QueueSize)
	nonNegative("batch_size", c.BatchSize)
	nonNegative("max_attempts", c.MaxAttempts)
	nonNegativeDur("flush_interval", c.FlushInterval)
	nonNegativeDur("insert_timeout", c.InsertTimeout)
	nonNegativeDur("retry_backoff", c.RetryBackoff)
	if c.Spool.Dir != "" {
		errs = append(errs, c.Spool.Validate())
	}
	if c.BatchSize > c.QueueSize && c.QueueSize > 0 {
		errs = append(errs, fmt.Errorf("analytics.writer.batch_size: %d exceeds queue_size %d; batches could never fill", c.BatchSize, c.QueueSize))
	}
	return errors.Join(errs...)
}

// ErrStopped is returned by Flush once the writer has been stopped.
var ErrStopped = errors.New("analytics writer stopped")

// Reasons for dropping records, the values of the "reason" label of
// tollgate_analytics_events_dropped_total.
const (
	reasonQueueFull    = "queue_full"
	reasonInsertFailed = "insert_failed"
	reasonStopped      = "stopped"
	// reasonSpoolFull: the spool reached SpoolConfig.MaxBytes.
	reasonSpoolFull = "spool_full"
	// reasonSpoolError: writing to the spool failed (disk full, I/O error).
	reasonSpoolError = "spool_error"
)

// Values of the constant "log" label that tells the writers' metrics apart,
// also logged as the "log" attribute.
const (
	logInference = "inference"
	logDecision  = "decision"
)

type writerState int

const (
	stateNew writerState = iota
	stateRunning
	stateStopped
)

// logSpec describes the log one BatchWriter ships.
type logSpec[T any] struct {
	// name is the value of the "log" metric label and log attribute.
	name string
	// what prefixes the writer's errors.
	what string
	// requestID identifies a record in logs; records' content is never logged.
	requestID func(*T) string
}

func eventRequestID(e *Event) string            { return e.RequestID }
func decisionRequestID(d *DecisionEvent) string { return d.RequestID }

// BatchWriter ships records to a BatchInserter in batches, off the request
// path. Enqueue never blocks; a goroutine started by Start batches records
// by size and time and inserts them, retrying with backoff. Stop flushes
// what is queued. All methods are safe for concurrent use.
//
// With WriterConfig.Spool.Dir set, every record is first journaled to the
// disk spool (spool.go) and inserted from there, in order, by a second
// goroutine that retries a failed batch until it goes in: ClickHouse being
// down or slow delays records instead of dropping them, Stop leaves what
// it could not insert on disk, and the next writer on the same folder
// (after a restart or a kill -9) inserts it first. Delivery is at least
// once; see analytics/README.md for how queries count each request once.
//
// Get one from NewWriter (Event, the inference log) or NewDecisionWriter
// (DecisionEvent, the decision log); the zero value is not usable. Both
// kinds export the same metric names, told apart by the constant label
// log="inference" or log="decision", so one of each can share a registry.
type BatchWriter[T any] struct {
	cfg  WriterConfig
	out  BatchInserter[T]
	log  *slog.Logger
	spec logSpec[T]

	queue    chan T
	flushReq chan flushRequest
	stopReq  chan struct{} // closed by Stop
	done     chan struct{} // closed when the loop has returned
	stopErr  error         // set by the loop before done is closed

	// With a spool, loop journals records to sp and shipLoop inserts them
	// from there; without, sp is nil and loop inserts.
	sp       *spool[T]
	shipDone chan struct{} // closed when shipLoop has returned
	// mem hands journaled frames to shipLoop, holding at most
	// 2*QueueSize records (memRecords) in at most memFrames frames.
	mem        chan memFrame[T]
	memRecords atomic.Int64
	kick       chan struct{} // 1-buffered: ship now, a flush waits
	waiters    atomic.Int32  // Flush calls waiting for shipping
	// pmu guards committed, the spool position shipped so far, and
	// progress, closed and replaced whenever committed moves.
	pmu           sync.Mutex
	committed     spoolPos
	progress      chan struct{}
	lastSpoolWarn atomic.Int64 // unix nanoseconds of the last spool-full error log

	// ctx bounds inserts; Stop cancels it when its own deadline passes.
	ctx    context.Context
	cancel context.CancelFunc

	// mu orders Enqueue against Stop: once Stop holds the write lock and
	// sets stateStopped, no record can enter the queue behind the final drain.
	mu    sync.RWMutex
	state writerState

	lastDropWarn atomic.Int64 // unix nanoseconds of the last queue-full warning
	unwarned     atomic.Int64 // queue-full drops not yet reported in a warning

	m writerMetrics
}

// Writer ships inference-log events; see BatchWriter.
type Writer = BatchWriter[Event]

// DecisionWriter ships decision-log events; see BatchWriter.
type DecisionWriter = BatchWriter[DecisionEvent]

type writerMetrics struct {
	written       prometheus.Counter
	dropped       *prometheus.CounterVec
	insertErrors  prometheus.Counter
	batchDuration prometheus.Histogram
	queueDepth    prometheus.GaugeFunc
	spool         *spoolMetrics // nil without a spool
}

// flushRequest asks the loop to write (or journal) everything queued.
type flushRequest struct {
	reply chan flushReply
	// sync asks for an fsync of the spool before the reply.
	sync bool
}

type flushReply struct {
	err error
	end spoolPos // with a spool: the journal's end after the flush
}

// NewWriter returns a Writer inserting inference-log events into out. It
// registers its metrics, labelled log="inference", on reg unless reg is
// nil; log may be nil to discard logs. Call Start to begin writing; events
// enqueued before wait in the queue.
func NewWriter(cfg WriterConfig, out Inserter, reg prometheus.Registerer, log *slog.Logger) (*Writer, error) {
	return newBatchWriter(cfg, out, reg, log, logSpec[Event]{
		name:      logInference,
		what:      "analytics writer",
		requestID: eventRequestID,
	})
}

// NewDecisionWriter returns a DecisionWriter inserting decision-log events
// into out. It registers its metrics, labelled log="decision", on reg
// unless reg is nil, so it can share a registry with a Writer; log may be
// nil to discard logs. Call Start to begin writing.
func NewDecisionWriter(cfg WriterConfig, out DecisionInserter, reg prometheus.Registerer, log *slog.Logger) (*DecisionWriter, error) {
	return newBatchWriter(cfg, out, reg, log, logSpec[DecisionEvent]{
		name:      logDecision,
		what:      "analytics decision writer",
		requestID: decisionRequestID,
	})
}

func newBatchWriter[T any](cfg WriterConfig, out BatchInserter[T], reg prometheus.Registerer, log *slog.Logger, spec logSpec[T]) (*BatchWriter[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if out == nil {
		return nil, fmt.Errorf("%s: nil Inserter", spec.what)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	w := &BatchWriter[T]{
		cfg:      cfg,
		out:      out,
		log:      log.With(slog.String("log", spec.name)),
		spec:     spec,
		queue:    make(chan T, cfg.QueueSize),
		flushReq: make(chan flushRequest),
		shipDone: make(chan struct{}),
		kick:     make(chan struct{}, 1),
		progress: make(chan struct{}),
		stopReq:  make(chan struct{}),
		done:     make(chan struct{}),
		ctx:      ctx,
		cancel:   cancel,
	}
	w.m = newWriterMetrics(spec.name, func() float64 { return float64(len(w.queue)) })
	if cfg.Spool.Dir != "" {
		sp, err := openSpool[T](filepath.Join(cfg.Spool.Dir, spec.name), cfg.Spool, w.log)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("%s: %w", spec.what, err)
		}
		w.sp = sp
		w.mem = make(chan memFrame[T], memFrames)
		w.m.spool = newSpoolMetrics(spec.name, sp)
		for _, r := range []string{reasonSpoolFull, reasonSpoolError} {
			w.m.dropped.WithLabelValues(r)
		}
		sp.onCorrupt = func(n int64) { w.m.spool.corrupt.Add(float64(n)) }
	}
	if reg != nil {
		if err := w.m.register(reg); err != nil {
			cancel()
			if w.sp != nil {
				err = errors.Join(err, w.sp.close())
			}
			return nil, fmt.Errorf("%s: register metrics: %w", spec.what, err)
		}
	}
	return w, nil
}

// newWriterMetrics creates the metrics of the writer for one log. Every
// writer uses the same names and help texts with a different constant
// "log" label, which a prometheus.Registry accepts side by side.
func newWriterMetrics(logName string, queueDepth func() float64) writerMetrics {
	labels := prometheus.Labels{"log": logName}
	m := writerMetrics{
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "tollgate_analytics_events_written_total",
			Help:        "Analytics events inserted, by log: inference, decision.",
			ConstLabels: labels,
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "tollgate_analytics_events_dropped_total",
			Help:        "Analytics events lost, by log and reason: queue_full, insert_failed (after all retries), stopped.",
			ConstLabels: labels,
		}, []string{"reason"}),
		insertErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "tollgate_analytics_insert_errors_total",
			Help:        "Failed analytics insert attempts, retries included, by log.",
			ConstLabels: labels,
		}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "tollgate_analytics_batch_duration_seconds",
			Help:        "Duration of one analytics batch insert attempt, by log.",
			Buckets:     prometheus.ExponentialBuckets(0.001, 2.5, 12),
			ConstLabels: labels,
		}),
		queueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tollgate_analytics_queue_depth",
			Help:        "Analytics events waiting in the queue, by log.",
			ConstLabels: labels,
		}, queueDepth),
	}
	for _, r := range []string{reasonQueueFull, reasonInsertFailed, reasonStopped} {
		m.dropped.WithLabelValues(r)
	}
	return m
}

// register registers every metric on reg, or none: on a conflict it
// unregisters those already registered.
func (m writerMetrics) register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{m.written, m.dropped, m.insertErrors, m.batchDuration, m.queueDepth}
	if m.spool != nil {
		cs = append(cs, m.spool.collectors()...)
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}

// Enqueue queues r for writing and returns at once. When the queue is full,
// or the writer is stopped, r is dropped and counted.
func (w *BatchWriter[T]) Enqueue(r T) {
	w.mu.RLock()
	if w.state == stateStopped {
		w.mu.RUnlock()
		w.m.dropped.WithLabelValues(reasonStopped).Inc()
		return
	}
	select {
	case w.queue <- r:
		w.mu.RUnlock()
		return
	default:
	}
	w.mu.RUnlock()
	// The queue fills only when the loop cannot keep up: with a spool that
	// means the disk is slower than the request rate, since ClickHouse
	// being down or slow only delays shipping from the spool.
	w.m.dropped.WithLabelValues(reasonQueueFull).Inc()
	w.warnQueueFull()
}

// warnQueueFull logs at most one warning per dropWarnInterval, carrying the
// number of drops since the previous one.
func (w *BatchWriter[T]) warnQueueFull() {
	w.unwarned.Add(1)
	now := time.Now().UnixNano()
	last := w.lastDropWarn.Load()
	if now-last < int64(dropWarnInterval) || !w.lastDropWarn.CompareAndSwap(last, now) {
		return
	}
	w.log.Warn("analytics queue full; events dropped",
		slog.Int64("dropped", w.unwarned.Swap(0)),
		slog.Int("queue_size", w.cfg.QueueSize))
}

// Start starts the goroutine that writes batches. Later calls, and calls
// after Stop, do nothing.
func (w *BatchWriter[T]) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != stateNew {
		return
	}
	w.state = stateRunning
	w.startLoops()
}

// startLoops starts the goroutines: loop, and with a spool shipLoop.
func (w *BatchWriter[T]) startLoops() {
	if w.sp == nil {
		go w.loop()
		return
	}
	go w.journalLoop()
	go w.shipLoop()
}

// Stop stops accepting records, writes everything queued and waits for the
// writing goroutine to end. If ctx ends first, the insert in progress is
// abandoned, the remaining records are counted as dropped and Stop returns
// ctx's error. It returns the error of any batch that could not be written.
// Later calls return nil.
func (w *BatchWriter[T]) Stop(ctx context.Context) error {
	w.mu.Lock()
	prev := w.state
	w.state = stateStopped
	w.mu.Unlock()
	switch prev {
	case stateStopped:
		return nil
	case stateNew:
		w.startLoops() // drains what was enqueued before Start
	}
	close(w.stopReq)
	if w.sp != nil {
		return w.stopSpooled(ctx)
	}
	defer w.cancel()
	select {
	case <-w.done:
		return w.stopErr
	case <-ctx.Done():
	}
	w.cancel()
	<-w.done
	return errors.Join(fmt.Errorf("%s stop: %w", w.spec.what, ctx.Err()), w.stopErr)
}

// Flush returns once every record enqueued before the call has been
// inserted or dropped, with the error of any batch that failed. With a
// spool, records are never dropped for a failed insert: Flush waits until
// they are inserted or ctx ends. It needs a started writer and returns
// ErrStopped after Stop.
func (w *BatchWriter[T]) Flush(ctx context.Context) error {
	if err := w.running("flush"); err != nil {
		return err
	}
	r, err := w.requestFlush(ctx, false)
	if err != nil || w.sp == nil {
		return err
	}
	return w.waitShipped(ctx, r.end)
}

// Sync returns once every record enqueued before the call is in the spool
// and forced to disk (fsync), whatever the fsync policy: from then on it
// survives a crash of the process or the machine. Without a spool it is
// Flush.
func (w *BatchWriter[T]) Sync(ctx context.Context) error {
	if err := w.running("sync"); err != nil {
		return err
	}
	_, err := w.requestFlush(ctx, true)
	return err
}

// Journal returns once every record enqueued before the call is in the
// spool: written, so that it survives the process being killed, and forced
// to disk as the fsync policy says (at once under "always"). Records
// enqueued by concurrent callers share one write. Without a spool there is
// nothing durable to wait for, and it returns nil at once.
func (w *BatchWriter[T]) Journal(ctx context.Context) error {
	if w.sp == nil {
		return nil
	}
	if err := w.running("journal"); err != nil {
		return err
	}
	_, err := w.requestFlush(ctx, false)
	return err
}

// running returns nil when the writer is started and not stopped, else the
// error of operation op.
func (w *BatchWriter[T]) running(op string) error {
	w.mu.RLock()
	state := w.state
	w.mu.RUnlock()
	switch state {
	case stateNew:
		return fmt.Errorf("%s %s: not started", w.spec.what, op)
	case stateStopped:
		return ErrStopped
	}
	return nil
}

// requestFlush has the loop write (or journal) everything queued now.
func (w *BatchWriter[T]) requestFlush(ctx context.Context, sync bool) (flushReply, error) {
	req := flushRequest{reply: make(chan flushReply, 1), sync: sync}
	select {
	case w.flushReq <- req:
	case <-w.done:
		return flushReply{}, ErrStopped
	case <-ctx.Done():
		return flushReply{}, fmt.Errorf("%s flush: %w", w.spec.what, ctx.Err())
	}
	select {
	case r := <-req.reply:
		return r, r.err
	case <-ctx.Done():
		return flushReply{}, fmt.Errorf("%s flush: %w", w.spec.what, ctx.Err())
	}
}

// loop owns the batch. It inserts a batch when it is full or FlushInterval
// after its first record, everything on Flush, and everything before
// returning on Stop.
func (w *BatchWriter[T]) loop() {
	defer close(w.done)
	batch := make([]T, 0, w.cfg.BatchSize)
	timer := time.NewTimer(w.cfg.FlushInterval)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case r := <-w.queue:
			batch = append(batch, r)
			if len(batch) == 1 {
				timer.Reset(w.cfg.FlushInterval)
			}
			if len(batch) >= w.cfg.BatchSize {
				timer.Stop()
				_ = w.write(batch) // counted and logged by write
				batch = clearBatch(batch)
			}
		case <-timer.C:
			if len(batch) > 0 {
				_ = w.write(batch) // counted and logged by write
				batch = clearBatch(batch)
			}
		case req := <-w.flushReq:
			timer.Stop()
			req.reply <- flushReply{err: w.drain(&batch)}
		case <-w.stopReq:
			w.stopErr = w.drain(&batch)
			return
		}
	}
}

// clearBatch empties batch for reuse, zeroing the elements so the backing
// array does not keep written records' slices and strings alive.
func clearBatch[T any](batch []T) []T {
	clear(batch)
	return batch[:0]
}

// drain writes the pending batch plus the records queued right now, in
// batches of at most BatchSize. Reading only what is queued at the start
// bounds the work even while producers keep enqueueing.
func (w *BatchWriter[T]) drain(batch *[]T) error {
	var errs []error
	for n := len(w.queue); n > 0; n-- {
		*batch = append(*batch, <-w.queue)
		if len(*batch) >= w.cfg.BatchSize {
			errs = append(errs, w.write(*batch))
			*batch = clearBatch(*batch)
		}
	}
	if len(*batch) > 0 {
		errs = append(errs, w.write(*batch))
		*batch = clearBatch(*batch)
	}
	return errors.Join(errs...)
}

// write inserts batch, retrying with exponential backoff up to MaxAttempts
// tries. A batch that cannot be written is counted as dropped and logged
// by request IDs only, never by content.
func (w *BatchWriter[T]) write(batch []T) error {
	n := len(batch)
	if err := w.ctx.Err(); err != nil {
		// Stop's deadline passed: do not start new inserts.
		w.m.dropped.WithLabelValues(reasonStopped).Add(float64(n))
		w.log.Error("analytics batch dropped at stop",
			slog.Int("events", n), slog.String("first_request_id", w.spec.requestID(&batch[0])))
		return fmt.Errorf("insert %d events: %w", n, err)
	}
	backoff := w.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(w.ctx, w.cfg.InsertTimeout)
		start := time.Now()
		err := w.out.Insert(ctx, batch)
		cancel()
		w.m.batchDuration.Observe(time.Since(start).Seconds())
		if err == nil {
			w.m.written.Add(float64(n))
			return nil
		}
		w.m.insertErrors.Inc()
		if attempt >= w.cfg.MaxAttempts || w.ctx.Err() != nil {
			// Without a spool there is nowhere to keep the batch.
			w.m.dropped.WithLabelValues(reasonInsertFailed).Add(float64(n))
			w.log.Error("analytics batch dropped",
				slog.Int("events", n),
				slog.Int("attempts", attempt),
				slog.String("first_request_id", w.spec.requestID(&batch[0])),
				slog.String("last_request_id", w.spec.requestID(&batch[n-1])),
				slog.Any("err", err))
			return fmt.Errorf("insert %d events after %d attempts: %w", n, attempt, err)
		}
		w.log.Warn("analytics insert failed; retrying",
			slog.Int("events", n),
			slog.Int("attempt", attempt),
			slog.Duration("retry_in", backoff),
			slog.Any("err", err))
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, maxRetryBackoff)
	}
}
