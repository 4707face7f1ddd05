package analytics

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/analytics/clickhousetest"
)

// openMigrated opens the server's ClickHouse and migrates it.
func openMigrated(t *testing.T, ctx context.Context, addr string) *ClickHouse {
	t.Helper()
	ch, err := OpenClickHouse(ctx, ClickHouseConfig{Addr: []string{addr}, DialTimeout: time.Second})
	if err != nil {
		t.Fatalf("OpenClickHouse: %v", err)
	}
	t.Cleanup(func() { _ = ch.Close() })
	if err := ch.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return ch
}

// exactCounts returns, for request IDs with prefix, the rows FINAL keeps,
// the distinct request IDs and the raw rows.
func exactCounts(t *testing.T, ctx context.Context, ch *ClickHouse, prefix string) (final, distinct, raw uint64) {
	t.Helper()
	q := "SELECT count() FROM tollgate.inference_log FINAL WHERE startsWith(request_id, '" + prefix + "')"
	if err := ch.conn.QueryRow(ctx, q).Scan(&final); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	q = "SELECT uniqExact(request_id), count() FROM tollgate.inference_log WHERE startsWith(request_id, '" + prefix + "')"
	if err := ch.conn.QueryRow(ctx, q).Scan(&distinct, &raw); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return final, distinct, raw
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		<-tick.C
	}
}

// TestSpoolClickHouseDownAndBack sends 1,000 events while ClickHouse is
// stopped halfway and started again: every event is in ClickHouse exactly
// once, none dropped, and those that waited were replayed from disk.
func TestSpoolClickHouseDownAndBack(t *testing.T) {
	t.Parallel()
	srv := clickhousetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ch := openMigrated(t, ctx, srv.Addr)

	cfg := WriterConfig{
		QueueSize: 1000, BatchSize: 50, FlushInterval: 5 * time.Millisecond,
		InsertTimeout: 2 * time.Second, RetryBackoff: 20 * time.Millisecond,
		Spool: SpoolConfig{Dir: t.TempDir(), SegmentBytes: 64 << 10},
	}
	w, logs := newTestWriter(t, cfg, ch)
	w.Start()
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			w.Enqueue(Event{RequestID: fmt.Sprintf("down-%04d", i), Time: base.Add(time.Duration(i) * time.Second), Team: "ml", CostMicros: 10})
		}
	}
	send(0, 400)
	waitFor(t, "the first events to be written", 30*time.Second, func() bool { return value(t, w.m.written) >= 200 })
	if err := srv.Stop(); err != nil {
		t.Fatalf("stop clickhouse: %v", err)
	}
	send(400, 1000)
	if err := w.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	waitFor(t, "a failed insert", 30*time.Second, func() bool { return value(t, w.m.insertErrors) >= 1 })
	if err := srv.Resume(); err != nil {
		t.Fatalf("resume clickhouse: %v", err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush after ClickHouse is back: %v\nlogs:\n%s", err, logs)
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	final, distinct, raw := exactCounts(t, ctx, ch, "down-")
	if final != 1000 || distinct != 1000 {
		t.Errorf("rows FINAL = %d, distinct request IDs = %d (raw rows %d); want 1000 and 1000", final, distinct, raw)
	}
	for _, r := range []string{reasonQueueFull, reasonInsertFailed, reasonStopped, reasonSpoolFull, reasonSpoolError} {
		if got := value(t, w.m.dropped.WithLabelValues(r)); got != 0 {
			t.Errorf("dropped{reason=%s} = %v, want 0", r, got)
		}
	}
	if got := value(t, w.m.spool.replayed); got == 0 {
		t.Error("replayed = 0, want the events that waited for ClickHouse")
	}
	if got := value(t, w.m.written); got < 1000 {
		t.Errorf("written = %v, want >= 1000", got)
	}
	t.Logf("raw rows %d, replayed %v, insert errors %v", raw, value(t, w.m.spool.replayed), value(t, w.m.insertErrors))
}

const crashHelperEnv = "TOLLGATE_TEST_SPOOL_CRASH_HELPER"

// TestSpoolCrashReplay runs a writer in a child process, kills ClickHouse
// mid-load so events pile up in the spool, kills the child with
// SIGKILL and starts a new writer on the same spool: every event the
// child acknowledged (Sync returned) is in ClickHouse exactly once.
func TestSpoolCrashReplay(t *testing.T) {
	if os.Getenv(crashHelperEnv) != "" {
		crashHelper()
		return
	}
	t.Parallel()
	srv := clickhousetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ch := openMigrated(t, ctx, srv.Addr)
	dir := t.TempDir()

	cmd := exec.Command(os.Args[0], "-test.run=^TestSpoolCrashReplay$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"=1", "CH_ADDR="+srv.Addr, "SPOOL_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := make(chan int, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "acked ")); err == nil {
				lines <- n
			}
		}
	}()
	acked := 0
	waitAcked := func(n int) {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for acked < n {
			select {
			case a, ok := <-lines:
				if !ok {
					t.Fatalf("helper exited after %d acked events; stderr:\n%s", acked, stderr.String())
				}
				acked = a
			case <-timeout:
				t.Fatalf("helper acked %d events in 60s, want %d", acked, n)
			}
		}
	}
	waitAcked(1500)
	waitFor(t, "the child to insert 1000 events", 30*time.Second, func() bool {
		var n uint64
		err := ch.conn.QueryRow(ctx, "SELECT count() FROM tollgate.inference_log WHERE startsWith(request_id, 'crash-')").Scan(&n)
		return err == nil && n >= 1000
	})
	if err := srv.Kill(); err != nil { // ClickHouse crashes too
		t.Fatalf("kill clickhouse: %v", err)
	}
	waitAcked(acked + 1500)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	for a := range lines { // acknowledgements printed before the kill
		acked = a
	}
	if err := srv.Resume(); err != nil {
		t.Fatalf("resume clickhouse: %v", err)
	}

	reg := prometheus.NewRegistry()
	var logs lockedBuffer
	w, err := NewWriter(WriterConfig{BatchSize: 500, FlushInterval: 10 * time.Millisecond, Spool: SpoolConfig{Dir: dir}},
		ch, reg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("NewWriter on the crashed spool: %v", err)
	}
	pending := w.sp.pending.Load()
	w.Start()
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v\nlogs:\n%s", err, logs.String())
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	var ackedFinal uint64
	q := fmt.Sprintf("SELECT count() FROM tollgate.inference_log FINAL WHERE startsWith(request_id, 'crash-') AND request_id < 'crash-%07d'", acked)
	if err := ch.conn.QueryRow(ctx, q).Scan(&ackedFinal); err != nil {
		t.Fatal(err)
	}
	final, distinct, raw := exactCounts(t, ctx, ch, "crash-")
	t.Logf("acked %d; after replay of %d spooled events: FINAL %d, distinct %d, raw %d", acked, pending, final, distinct, raw)
	if ackedFinal != uint64(acked) {
		t.Errorf("acknowledged events in ClickHouse = %d, want %d", ackedFinal, acked)
	}
	if final != distinct {
		t.Errorf("rows FINAL = %d, distinct request IDs = %d; want each request once", final, distinct)
	}
	if pending == 0 {
		t.Error("the crashed writer left nothing in the spool; the test did not exercise replay")
	}
	if got := value(t, w.m.spool.replayed); got != float64(pending) {
		t.Errorf("replayed = %v, want the %d events found in the spool", got, pending)
	}
}

// crashHelper is the child of TestSpoolCrashReplay: it writes events as
// fast as it can and prints how many are acknowledged, until killed.
func crashHelper() {
	ctx := context.Background()
	ch, err := OpenClickHouse(ctx, ClickHouseConfig{Addr: []string{os.Getenv("CH_ADDR")}, DialTimeout: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w, err := NewWriter(WriterConfig{
		BatchSize: 100, FlushInterval: 5 * time.Millisecond, InsertTimeout: time.Second, RetryBackoff: 10 * time.Millisecond,
		Spool: SpoolConfig{Dir: os.Getenv("SPOOL_DIR"), SegmentBytes: 256 << 10},
	}, ch, nil, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w.Start()
	base := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	for i := 0; ; i++ {
		w.Enqueue(Event{RequestID: fmt.Sprintf("crash-%07d", i), Time: base.Add(time.Duration(i) * time.Millisecond), Team: "ml", CostMicros: 7})
		if (i+1)%100 == 0 {
			if err := w.Sync(ctx); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Printf("acked %d\n", i+1)
		}
	}
}

// TestLazyClickHouseConnectsWhenBack starts with ClickHouse down, as a
// gateway with a spool may: inserts fail until the server answers, then
// the first insert connects and migrates.
func TestLazyClickHouseConnectsWhenBack(t *testing.T) {
	t.Parallel()
	srv := clickhousetest.Start(t)
	ctx := ctxT(t)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	lz, err := NewLazyClickHouse(ClickHouseConfig{Addr: []string{srv.Addr}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer lz.Close()
	if err := lz.Connect(ctx); err == nil {
		t.Fatal("Connect with ClickHouse down: got nil error")
	}
	if err := lz.Insert(ctx, sampleEvents(1)); err == nil {
		t.Fatal("Insert with ClickHouse down: got nil error")
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := lz.Insert(ctx, sampleEvents(2)); err != nil {
		t.Fatalf("Insert after ClickHouse is back: %v", err)
	}
	if err := lz.InsertDecisions(ctx, sampleDecisions(1)); err != nil {
		t.Fatalf("InsertDecisions after ClickHouse is back: %v", err)
	}
	final, _, _ := exactCounts(t, ctx, lz.ch, "req-")
	if final != 2 {
		t.Errorf("rows = %d, want 2", final)
	}
	if _, err := NewLazyClickHouse(ClickHouseConfig{}); err == nil {
		t.Error("NewLazyClickHouse without addr: got nil error")
	}
}
