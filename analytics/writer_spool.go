package analytics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// With a spool the writer runs two goroutines. journalLoop takes records
// from the queue and appends them to the spool, as many as are queued
// (up to BatchSize) per frame, so under load one write(2) carries many
// records. shipLoop reads the spool in order from the cursor, inserts
// batches of up to BatchSize records (sooner after FlushInterval or on
// Flush) and commits each inserted batch, retrying a failed batch with
// backoff until it goes in. The request path only ever touches the
// queue: ClickHouse being down or slow fills the disk, not the queue.

type spoolMetrics struct {
	spooled  prometheus.Counter
	replayed prometheus.Counter
	corrupt  prometheus.Counter
	bytes    prometheus.GaugeFunc
	segments prometheus.GaugeFunc
	pending  prometheus.GaugeFunc
}

func newSpoolMetrics[T any](logName string, sp *spool[T]) *spoolMetrics {
	labels := prometheus.Labels{"log": logName}
	return &spoolMetrics{
		spooled: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "tollgate_analytics_events_spooled_total",
			Help:        "Analytics events journaled to the disk spool, by log.",
			ConstLabels: labels,
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "tollgate_analytics_events_replayed_total",
			Help:        "Analytics events inserted from the spool after waiting there for ClickHouse: after a failed insert, or left by an earlier run; by log.",
			ConstLabels: labels,
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "tollgate_analytics_spool_corrupt_bytes_total",
			Help:        "Bytes of the spool skipped because their checksum did not match (torn or damaged records), by log.",
			ConstLabels: labels,
		}),
		bytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tollgate_analytics_spool_bytes",
			Help:        "Size of the spool segments on disk, by log.",
			ConstLabels: labels,
		}, func() float64 { b, _ := sp.stats(); return float64(b) }),
		segments: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tollgate_analytics_spool_segments",
			Help:        "Spool segment files on disk, by log.",
			ConstLabels: labels,
		}, func() float64 { _, n := sp.stats(); return float64(n) }),
		pending: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tollgate_analytics_spool_pending_events",
			Help:        "Analytics events in the spool not yet inserted, by log.",
			ConstLabels: labels,
		}, func() float64 { return float64(sp.pending.Load()) }),
	}
}

func (m *spoolMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.spooled, m.replayed, m.corrupt, m.bytes, m.segments, m.pending}
}

// journalLoop owns the appending side of the spool.
func (w *BatchWriter[T]) journalLoop() {
	defer close(w.done)
	buf := make([]T, 0, w.cfg.BatchSize)
	var tick <-chan time.Time
	if w.cfg.Spool.withDefaults().Fsync == FsyncInterval {
		t := time.NewTicker(w.cfg.Spool.withDefaults().FsyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case r := <-w.queue:
			buf = append(buf, r)
		more:
			for len(buf) < w.cfg.BatchSize {
				select {
				case r := <-w.queue:
					buf = append(buf, r)
				default:
					break more
				}
			}
			_ = w.journal(buf) // counted and logged by journal
			buf = clearBatch(buf)
		case <-tick:
			if err := w.sp.sync(); err != nil {
				w.log.Error("analytics spool fsync", slog.Any("err", err))
			}
		case req := <-w.flushReq:
			err := w.journalQueued(&buf)
			if req.sync {
				err = errors.Join(err, w.sp.sync())
			}
			req.reply <- flushReply{err: err, end: w.sp.endPos()}
		case <-w.stopReq:
			w.stopErr = w.journalQueued(&buf)
			if w.cfg.Spool.withDefaults().Fsync != FsyncNever {
				w.stopErr = errors.Join(w.stopErr, w.sp.sync())
			}
			return
		}
	}
}

// journalQueued journals the records queued right now, in frames of at
// most BatchSize.
func (w *BatchWriter[T]) journalQueued(buf *[]T) error {
	var errs []error
	for n := len(w.queue); n > 0; n-- {
		*buf = append(*buf, <-w.queue)
		if len(*buf) >= w.cfg.BatchSize {
			errs = append(errs, w.journal(*buf))
			*buf = clearBatch(*buf)
		}
	}
	if len(*buf) > 0 {
		errs = append(errs, w.journal(*buf))
		*buf = clearBatch(*buf)
	}
	return errors.Join(errs...)
}

// journal appends records to the spool as one frame. Records the spool
// cannot take are counted as dropped and logged as errors, the full spool
// at most once per dropWarnInterval.
func (w *BatchWriter[T]) journal(records []T) error {
	n := len(records)
	start, end, err := w.sp.append(records)
	if err == nil {
		w.m.spool.spooled.Add(float64(n))
		// Hand the shipper a copy, so it need not read the frame back
		// from disk while it keeps up; when it lags, the copy is dropped.
		if w.memRecords.Load()+int64(n) <= int64(2*w.cfg.QueueSize) {
			select {
			case w.mem <- memFrame[T]{records: slices.Clone(records), start: start, end: end}:
				w.memRecords.Add(int64(n))
			default:
			}
		}
		w.sp.signal()
		return nil
	}
	if errors.Is(err, errSpoolFull) {
		w.m.dropped.WithLabelValues(reasonSpoolFull).Add(float64(n))
		now := time.Now().UnixNano()
		if last := w.lastSpoolWarn.Load(); now-last >= int64(dropWarnInterval) && w.lastSpoolWarn.CompareAndSwap(last, now) {
			b, segs := w.sp.stats()
			w.log.Error("ANALYTICS EVENTS DROPPED: spool full (ClickHouse unreachable for long?); raise analytics.writer.spool.max_bytes or restore ClickHouse",
				slog.Int("events", n),
				slog.Int64("spool_bytes", b),
				slog.Int("spool_segments", segs),
				slog.Int64("max_bytes", w.cfg.Spool.withDefaults().MaxBytes),
				slog.String("first_request_id", w.spec.requestID(&records[0])))
		}
		return fmt.Errorf("journal %d events: %w", n, err)
	}
	w.m.dropped.WithLabelValues(reasonSpoolError).Add(float64(n))
	w.log.Error("ANALYTICS EVENTS DROPPED: spool write failed",
		slog.Int("events", n),
		slog.String("first_request_id", w.spec.requestID(&records[0])),
		slog.String("last_request_id", w.spec.requestID(&records[n-1])),
		slog.Any("err", err))
	return fmt.Errorf("journal %d events: %w", n, err)
}

// shipLoop owns the reading side of the spool: it inserts what the
// journal holds, in order, and commits what went in.
func (w *BatchWriter[T]) shipLoop() {
	defer close(w.shipDone)
	sp := w.sp
	cur := sp.startPos()
	w.setCommitted(cur)
	batch := make([]T, 0, w.cfg.BatchSize)
	var (
		batchEnd  spoolPos
		timer     *time.Timer
		timerC    <-chan time.Time
		timerDone bool
		backoff   = w.cfg.RetryBackoff
		failures  int
		// Records before replayUntil waited in the spool for ClickHouse:
		// left by an earlier run, or journaled before an insert failed.
		replayUntil = sp.recoveredEnd
		memQ        []memFrame[T]
		// firstStop ends the first batch where the last run's batch in
		// flight ended (see spool.intentBefore).
		firstStop = sp.intent
	)
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
		}
		timerC, timerDone = nil, false
	}
	defer stopTimer()
	for {
		journalDone := isClosed(w.done)
		if len(batch) == 0 {
			pending := sp.pending.Load()
			if pending <= 0 && journalDone {
				return
			}
			ready := pending >= int64(w.cfg.BatchSize) || journalDone || timerDone ||
				w.waiters.Load() > 0 || sp.recovery.Load() > 0
			if !ready || pending <= 0 {
				if pending > 0 && timerC == nil {
					timer = time.NewTimer(w.cfg.FlushInterval)
					timerC = timer.C
				}
				select {
				case <-sp.notify:
				case <-w.kick:
				case <-timerC:
					timerC, timerDone = nil, true
				case <-w.done:
				}
				continue
			}
			stopTimer()
			var err error
			var next spoolPos
			// A batch never straddles replayUntil, so replayed counts
			// exactly the records that waited.
			stop := replayUntil
			if cur.less(firstStop) {
				stop = firstStop
			}
			batch, next, err = w.fill(cur, batch, &memQ, stop)
			if err != nil {
				w.log.Error("analytics spool read", slog.Any("err", err))
				if !w.backoff(&backoff) {
					return
				}
				continue
			}
			if len(batch) == 0 {
				if next != cur {
					sp.commit(next, 0)
					cur = next
					w.setCommitted(cur)
					continue
				}
				if journalDone {
					return
				}
				select {
				case <-sp.notify:
				case <-w.kick:
				case <-w.done:
				}
				continue
			}
			batchEnd = next
			sp.intentBefore(cur, batchEnd)
		}
		n := len(batch)
		ctx, cancel := context.WithTimeout(w.ctx, w.cfg.InsertTimeout)
		start := time.Now()
		err := w.out.Insert(ctx, batch)
		cancel()
		w.m.batchDuration.Observe(time.Since(start).Seconds())
		if err == nil {
			if cur.less(replayUntil) {
				w.m.spool.replayed.Add(float64(n))
			}
			if failures > 0 {
				w.log.Info("analytics insert recovered; shipping the spool",
					slog.Int("failed_attempts", failures), slog.Int64("pending", sp.pending.Load()-int64(n)))
			}
			sp.commit(batchEnd, int64(n))
			cur = batchEnd
			w.setCommitted(cur)
			w.m.written.Add(float64(n))
			failures, backoff = 0, w.cfg.RetryBackoff
			batch = clearBatch(batch)
			continue
		}
		w.m.insertErrors.Inc()
		failures++
		if end := sp.endPos(); replayUntil.less(end) {
			replayUntil = end
		}
		if w.ctx.Err() != nil || isClosed(w.stopReq) {
			// Stopping: the batch stays in the spool for the next start.
			return
		}
		if failures == 1 || failures%10 == 0 {
			w.log.Warn("analytics insert failed; events wait in the spool",
				slog.Int("events", n),
				slog.Int("attempt", failures),
				slog.Int64("pending", sp.pending.Load()),
				slog.Duration("retry_in", backoff),
				slog.Any("err", err))
		}
		if !w.backoff(&backoff) {
			return
		}
	}
}

// memFrame is a journaled frame's records, handed from the journal loop
// to the ship loop in memory.
type memFrame[T any] struct {
	records    []T
	start, end spoolPos
}

// fill appends to batch the records from cur on, up to BatchSize (or one
// larger frame) and, when cur is before stop, not past stop. It takes
// frames handed over in memory where they continue at cur and reads the
// spool otherwise. It returns the position after the last record taken.
func (w *BatchWriter[T]) fill(cur spoolPos, batch []T, memQ *[]memFrame[T], stop spoolPos) ([]T, spoolPos, error) {
	limited := cur.less(stop)
	for len(batch) < w.cfg.BatchSize {
		if limited && len(batch) > 0 && !cur.less(stop) {
			break
		}
	more:
		for {
			select {
			case f := <-w.mem:
				*memQ = append(*memQ, f)
			default:
				break more
			}
		}
		q := *memQ
		for len(q) > 0 && !cur.less(q[0].end) {
			w.memRecords.Add(-int64(len(q[0].records)))
			q[0] = memFrame[T]{}
			q = q[1:]
		}
		*memQ = q
		if len(q) > 0 && q[0].start == cur {
			if len(batch) > 0 && len(batch)+len(q[0].records) > w.cfg.BatchSize {
				break
			}
			batch = append(batch, q[0].records...)
			w.memRecords.Add(-int64(len(q[0].records)))
			cur = q[0].end
			q[0] = memFrame[T]{}
			*memQ = q[1:]
			continue
		}
		n := len(batch)
		var err error
		var next spoolPos
		batch, next, err = w.sp.read(cur, w.cfg.BatchSize-n, batch, stop)
		if err != nil {
			return batch, cur, err
		}
		if next == cur {
			break
		}
		cur = next
		if len(batch) == n && len(q) == 0 {
			// Skipped corrupt bytes only; nothing else to take.
			break
		}
	}
	if len(*memQ) == 0 {
		*memQ = nil // let the backing array go
	}
	return batch, cur, nil
}

// backoff waits *d, doubling it for next time up to maxRetryBackoff. It
// returns false when the writer is stopping.
func (w *BatchWriter[T]) backoff(d *time.Duration) bool {
	t := time.NewTimer(*d)
	defer t.Stop()
	*d = min(2**d, maxRetryBackoff)
	select {
	case <-t.C:
		return true
	case <-w.ctx.Done():
		return false
	case <-w.stopReq:
		return false
	}
}

func (w *BatchWriter[T]) setCommitted(p spoolPos) {
	w.pmu.Lock()
	w.committed = p
	close(w.progress)
	w.progress = make(chan struct{})
	w.pmu.Unlock()
}

// waitShipped waits until shipping has passed end.
func (w *BatchWriter[T]) waitShipped(ctx context.Context, end spoolPos) error {
	w.waiters.Add(1)
	defer w.waiters.Add(-1)
	select {
	case w.kick <- struct{}{}:
	default:
	}
	for {
		w.pmu.Lock()
		done, progress := !w.committed.less(end), w.progress
		w.pmu.Unlock()
		if done {
			return nil
		}
		select {
		case <-progress:
		case <-w.shipDone:
			return ErrStopped
		case <-ctx.Done():
			return fmt.Errorf("%s flush: %d events still in the spool: %w", w.spec.what, w.sp.pending.Load(), ctx.Err())
		}
	}
}

// stopSpooled stops a spooling writer: the journal takes what is queued,
// the shipper inserts what it can until ctx ends or an insert fails, and
// the rest stays in the spool for the next start, which is not an error.
func (w *BatchWriter[T]) stopSpooled(ctx context.Context) error {
	defer w.cancel()
	var err error
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cancel()
		<-w.done
	}
	err = w.stopErr
	select {
	case <-w.shipDone:
	case <-ctx.Done():
		w.cancel()
		<-w.shipDone
	}
	if n := w.sp.pending.Load(); n > 0 {
		b, segs := w.sp.stats()
		w.log.Warn("analytics events kept in the spool for the next start",
			slog.Int64("events", n), slog.Int64("spool_bytes", b), slog.Int("spool_segments", segs))
	}
	return errors.Join(err, w.sp.close())
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
