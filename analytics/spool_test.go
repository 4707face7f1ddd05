package analytics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

func spoolCfg(dir string) WriterConfig {
	return WriterConfig{
		QueueSize: 1000, BatchSize: 10, FlushInterval: time.Hour,
		RetryBackoff: time.Millisecond,
		Spool:        SpoolConfig{Dir: dir, SegmentBytes: 4096, Fsync: FsyncNever},
	}
}

// collect gathers request IDs from f's batches until want are in.
func collect[T any](t *testing.T, f *fakeInserter[T], n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		got = append(got, f.next(t)...)
	}
	return got
}

func TestSpoolConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     SpoolConfig
		wantErr []string
	}{
		{name: "defaults", cfg: SpoolConfig{Dir: "x"}},
		{name: "all policies", cfg: SpoolConfig{Dir: "x", Fsync: FsyncAlways}},
		{
			name:    "bad",
			cfg:     SpoolConfig{Dir: "x", Fsync: "sometimes", MaxBytes: -1, SegmentBytes: -2, FsyncInterval: -time.Second},
			wantErr: []string{`fsync: invalid policy "sometimes"`, "max_bytes: -1", "segment_bytes: -2", "fsync_interval: -1s"},
		},
		{name: "segment over max", cfg: SpoolConfig{Dir: "x", MaxBytes: 10, SegmentBytes: 20}, wantErr: []string{"segment_bytes: 20 exceeds max_bytes 10"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := WriterConfig{Spool: tc.cfg}.Validate()
			if (err != nil) != (len(tc.wantErr) > 0) {
				t.Fatalf("Validate() = %v, want errors %q", err, tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestWriterSpoolRetriesUntilInserted fails the first inserts: with a
// spool nothing is dropped, the batch is retried past MaxAttempts, and
// order is kept.
func TestWriterSpoolRetriesUntilInserted(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			testSpoolRetries(t, policy)
		})
	}
}

func testSpoolRetries(t *testing.T, policy string) {
	f := newFakeInserter()
	f.fail = func(call int) error {
		if call <= 6 {
			return errors.New("clickhouse down")
		}
		return nil
	}
	cfg := spoolCfg(t.TempDir())
	cfg.MaxAttempts = 2
	cfg.Spool.Fsync, cfg.Spool.FsyncInterval = policy, time.Millisecond
	w, _ := newTestWriter(t, cfg, f)
	w.Start()
	want := ids("r", 35)
	enqueue(w, want)
	if err := w.Flush(ctxT(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	got := collect(t, f, len(want))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inserted request IDs (-want +got):\n%s", diff)
	}
	if err := w.Stop(ctxT(t)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for name, c := range map[string]prometheus.Collector{"written": w.m.written, "spooled": w.m.spool.spooled} {
		if got := value(t, c.(prometheus.Metric)); got != 35 {
			t.Errorf("%s = %v, want 35", name, got)
		}
	}
	if got := value(t, w.m.spool.replayed); got < 1 {
		t.Errorf("replayed = %v, want > 0 after failed inserts", got)
	}
	for _, r := range []string{reasonQueueFull, reasonInsertFailed, reasonStopped, reasonSpoolFull, reasonSpoolError} {
		if got := value(t, w.m.dropped.WithLabelValues(r)); got != 0 {
			t.Errorf("dropped{reason=%s} = %v, want 0", r, got)
		}
	}
	if b, segs := w.sp.stats(); segs > 1 || b > 4096 {
		t.Errorf("spool after shipping: %d bytes in %d segments, want shipped segments deleted", b, segs)
	}
}

// TestWriterSpoolSurvivesRestart stops a writer whose inserts fail: Stop
// keeps the events on disk without error, and the next writer on the same
// folder ships them first, in order, then its own.
func TestWriterSpoolSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	down := newFakeInserter()
	down.fail = func(int) error { return errors.New("clickhouse down") }
	w1, _ := newTestWriter(t, spoolCfg(dir), down)
	w1.Start()
	first := ids("a", 123)
	enqueue(w1, first)
	if err := w1.Sync(ctxT(t)); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := w1.Stop(ctxT(t)); err != nil {
		t.Fatalf("Stop with ClickHouse down: %v, want nil (events stay in the spool)", err)
	}
	if got := w1.sp.pending.Load(); got != 123 {
		t.Fatalf("pending after stop = %d, want 123", got)
	}

	up := newFakeInserter()
	w2, logs := newTestWriter(t, spoolCfg(dir), up)
	if got := w2.sp.pending.Load(); got != 123 {
		t.Errorf("pending after reopen = %d, want 123", got)
	}
	w2.Start()
	second := ids("b", 7)
	enqueue(w2, second)
	if err := w2.Flush(ctxT(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	got := collect(t, up, 130)
	if diff := cmp.Diff(append(slices.Clone(first), second...), got); diff != "" {
		t.Errorf("shipped after restart (-want +got):\n%s", diff)
	}
	if got := value(t, w2.m.spool.replayed); got != 123 {
		t.Errorf("replayed = %v, want 123", got)
	}
	if !strings.Contains(logs.String(), "replaying records left by an earlier run") {
		t.Errorf("logs = %s, want the replay announced", logs)
	}
	if err := w2.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// A third start finds nothing to ship.
	w3, _ := newTestWriter(t, spoolCfg(dir), newFakeInserter())
	if got := w3.sp.pending.Load(); got != 0 {
		t.Errorf("pending after everything shipped = %d, want 0", got)
	}
}

// TestSpoolCorruptRecordsSkipped damages a frame in the middle of a
// segment and tears the last one: the reader skips exactly those, logs
// them loudly and counts the bytes, and ships every other record.
func TestSpoolCorruptRecordsSkipped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sdir := filepath.Join(dir, logInference)
	sp, err := openSpool[Event](sdir, SpoolConfig{Fsync: FsyncNever}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var frameEnds []int64
	for i := range 5 {
		if _, _, err := sp.append([]Event{{RequestID: fmt.Sprintf("f%d-a", i)}, {RequestID: fmt.Sprintf("f%d-b", i)}}); err != nil {
			t.Fatal(err)
		}
		frameEnds = append(frameEnds, sp.endPos().off)
	}
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	seg := sp.segPath(1)
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Flip a payload byte of frame 1 (CRC mismatch).
	if _, err := f.WriteAt([]byte{'#'}, frameEnds[0]+frameHeaderLen+5); err != nil {
		t.Fatal(err)
	}
	// Tear frame 4: keep only half of it.
	if err := f.Truncate(frameEnds[3] + (frameEnds[4]-frameEnds[3])/2); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	fi := newFakeInserter()
	w, logs := newTestWriter(t, spoolCfg(dir), fi)
	if got := w.sp.pending.Load(); got != 6 {
		t.Errorf("pending after reopen = %d, want 6 (frames 0, 2, 3)", got)
	}
	w.Start()
	if err := w.Flush(ctxT(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	got := collect(t, fi, 6)
	want := []string{"f0-a", "f0-b", "f2-a", "f2-b", "f3-a", "f3-b"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("shipped (-want +got):\n%s", diff)
	}
	if n := strings.Count(logs.String(), "corrupt or torn record skipped"); n != 2 {
		t.Errorf("corrupt-record errors logged = %d, want 2; logs:\n%s", n, logs)
	}
	wantBytes := (frameEnds[1] - frameEnds[0]) + (frameEnds[3] + (frameEnds[4]-frameEnds[3])/2 - frameEnds[3])
	if got := value(t, w.m.spool.corrupt); got != float64(wantBytes) {
		t.Errorf("corrupt bytes = %v, want %d", got, wantBytes)
	}
	if err := w.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// TestSpoolFullDropsLoudly gives the spool room for a few frames while
// ClickHouse is down: the rest is dropped, counted and logged as an error.
func TestSpoolFullDropsLoudly(t *testing.T) {
	t.Parallel()
	down := newFakeInserter()
	down.fail = func(int) error { return errors.New("clickhouse down") }
	cfg := spoolCfg(t.TempDir())
	cfg.Spool.MaxBytes, cfg.Spool.SegmentBytes = 2000, 1000
	w, logs := newTestWriter(t, cfg, down)
	w.Start()
	for i := range 100 {
		w.Enqueue(Event{RequestID: fmt.Sprintf("r%d", i), Team: "ml"})
		if err := w.Sync(ctxT(t)); err != nil && !errors.Is(err, errSpoolFull) {
			t.Fatalf("Sync: %v", err)
		}
	}
	spooled := value(t, w.m.spool.spooled)
	dropped := value(t, w.m.dropped.WithLabelValues(reasonSpoolFull))
	if spooled+dropped != 100 || dropped == 0 || spooled == 0 {
		t.Errorf("spooled = %v, dropped{spool_full} = %v, want both > 0 and 100 in all", spooled, dropped)
	}
	if b, _ := w.sp.stats(); b > 2000 {
		t.Errorf("spool bytes = %d, want <= max_bytes 2000", b)
	}
	if !strings.Contains(logs.String(), "ANALYTICS EVENTS DROPPED: spool full") {
		t.Errorf("logs = %s, want a loud spool-full error", logs)
	}
}

// TestSpoolLocked refuses a second writer on the same folder.
func TestSpoolLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, _ := newTestWriter(t, spoolCfg(dir), newFakeInserter())
	_ = w
	_, err := NewWriter(spoolCfg(dir), newFakeInserter(), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second NewWriter on one spool = %v, want a lock error", err)
	}
}

// TestWriterSpoolBatchesByTime ships a partial batch after FlushInterval.
func TestWriterSpoolBatchesByTime(t *testing.T) {
	t.Parallel()
	f := newFakeInserter()
	cfg := spoolCfg(t.TempDir())
	cfg.FlushInterval = 20 * time.Millisecond
	w, _ := newTestWriter(t, cfg, f)
	w.Start()
	enqueue(w, ids("t", 3))
	if diff := cmp.Diff(ids("t", 3), collect(t, f, 3)); diff != "" {
		t.Errorf("batch (-want +got):\n%s", diff)
	}
}

func TestWriterSpoolFlushDeadline(t *testing.T) {
	t.Parallel()
	down := newFakeInserter()
	down.fail = func(int) error { return errors.New("clickhouse down") }
	w, _ := newTestWriter(t, spoolCfg(t.TempDir()), down)
	w.Start()
	enqueue(w, ids("x", 3))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush with ClickHouse down = %v, want DeadlineExceeded", err)
	}
	if err := w.Sync(ctxT(t)); err != nil {
		t.Errorf("Sync with ClickHouse down = %v, want nil", err)
	}
}

// TestSpoolRepeatsBatchInFlight: the batch being inserted when a writer
// stopped (or crashed) is, after the restart, retried as exactly the same
// records, though more have been journaled behind it since; Replicated
// tables then deduplicate the repeated block.
func TestSpoolRepeatsBatchInFlight(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	down := newFakeInserter()
	tried := make(chan []string, 100)
	down.fail = func(int) error { return errors.New("reply lost") }
	cfg := spoolCfg(dir)
	cfg.BatchSize, cfg.QueueSize, cfg.FlushInterval = 100, 1000, time.Millisecond
	w1, _ := newTestWriter(t, cfg, InserterFunc[Event](func(ctx context.Context, evs []Event) error {
		var got []string
		for _, e := range evs {
			got = append(got, e.RequestID)
		}
		select {
		case tried <- got:
		default:
		}
		return down.Insert(ctx, evs)
	}))
	w1.Start()
	first := ids("a", 5)
	enqueue(w1, first)
	var inFlight []string
	select {
	case inFlight = <-tried:
	case <-time.After(waitTimeout):
		t.Fatal("no insert attempted")
	}
	enqueue(w1, ids("b", 20))
	if err := w1.Sync(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := w1.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	up := newFakeInserter()
	w2, _ := newTestWriter(t, cfg, up)
	w2.Start()
	if diff := cmp.Diff(inFlight, up.next(t)); diff != "" {
		t.Errorf("first batch after restart (-in flight before +retried):\n%s", diff)
	}
	if diff := cmp.Diff(ids("b", 20), up.next(t)); diff != "" {
		t.Errorf("second batch (-want +got):\n%s", diff)
	}
}

// TestSpoolRoundTripsEveryField: what comes back from disk equals what
// went in, for both logs, so replay loses no column.
func TestSpoolRoundTripsEveryField(t *testing.T) {
	t.Parallel()
	events := sampleEvents(7)
	gotEvents := spoolRoundTrip(t, events)
	if diff := cmp.Diff(events, gotEvents); diff != "" {
		t.Errorf("events after the spool (-want +got):\n%s", diff)
	}
	decisions := sampleDecisions(7)
	gotDecisions := spoolRoundTrip(t, decisions)
	if diff := cmp.Diff(decisions, gotDecisions); diff != "" {
		t.Errorf("decisions after the spool (-want +got):\n%s", diff)
	}
}

func spoolRoundTrip[T any](t *testing.T, records []T) []T {
	t.Helper()
	sp, err := openSpool[T](t.TempDir(), SpoolConfig{Fsync: FsyncNever}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	for i := 0; i < len(records); i += 3 {
		if _, _, err := sp.append(records[i:min(i+3, len(records))]); err != nil {
			t.Fatal(err)
		}
	}
	got, end, err := sp.read(spoolPos{}, 100, nil, spoolPos{})
	if err != nil {
		t.Fatal(err)
	}
	if end != sp.endPos() {
		t.Errorf("read ended at %v, want the journal's end %v", end, sp.endPos())
	}
	return got
}
