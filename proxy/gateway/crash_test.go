package gateway

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/analytics/clickhousetest"
	"github.com/tollgate/tollgate/proxy/auth"
)

// buildTollgate builds cmd/tollgate into a temporary folder, with the race
// detector when the test binary has it (which also reuses its build cache).
func buildTollgate(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH, needed to build cmd/tollgate: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "tollgate")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	args = append(args, "github.com/tollgate/tollgate/cmd/tollgate")
	cmd := exec.Command(goBin, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// gatewayProc is a `tollgate serve` process.
type gatewayProc struct {
	cmd     *exec.Cmd
	url     string
	logPath string
	exited  chan struct{} // closed when the process has been reaped
	waitErr error         // valid once exited is closed
}

// startGatewayProc runs `tollgate serve --config cfgPath`, logging to
// logPath, and waits until it listens and /readyz answers 200. The process
// is killed at cleanup if still running.
func startGatewayProc(t *testing.T, bin, cfgPath, logPath string) *gatewayProc {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// TOLLGATE_* variables of the test environment would override the file.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOLLGATE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &gatewayProc{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})

	// The listen address is in the log: server.listen is 127.0.0.1:0.
	pollUntil(t, "the gateway to log its listen address", 60*time.Second, func() (bool, string) {
		if isClosed(p.exited) {
			t.Fatalf("gateway exited before listening (%v); log:\n%s", p.waitErr, tailFile(logPath))
		}
		addr, ok := listenAddr(logPath)
		if ok {
			p.url = "http://" + addr
		}
		return ok, "no \"gateway listening\" line yet"
	})
	pollUntil(t, "/readyz to answer 200", 30*time.Second, func() (bool, string) {
		if isClosed(p.exited) {
			t.Fatalf("gateway exited before ready (%v); log:\n%s", p.waitErr, tailFile(logPath))
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(p.url + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("status %d", resp.StatusCode)
	})
	return p
}

// listenAddr finds the address in the gateway's "gateway listening" log line.
func listenAddr(logPath string) (string, bool) {
	f, err := os.Open(logPath)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "gateway listening" && line.Addr != "" {
			return line.Addr, true
		}
	}
	return "", false
}

// tailFile returns the end of a log file, for failure messages.
func tailFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const tail = 8 << 10
	if len(b) > tail {
		b = b[len(b)-tail:]
	}
	return string(b)
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// spooledIDs reads the intact frames in the segments of one spool log
// folder by the documented format (magic "TGSP", payload length, record
// count, CRC, JSON array of records) and returns the request IDs of their
// records, with how many frames each ID is in.
func spooledIDs(t *testing.T, dir string) (ids map[string]int, segments int) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	ids = map[string]int{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		segments++
		for len(b) >= 16 && string(b[:4]) == "TGSP" {
			n := int(binary.LittleEndian.Uint32(b[4:8]))
			if 16+n > len(b) {
				break // a torn tail
			}
			var records []struct {
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal(b[16:16+n], &records); err != nil {
				t.Fatalf("%s: frame payload: %v", p, err)
			}
			if len(records) != int(binary.LittleEndian.Uint32(b[8:12])) {
				t.Fatalf("%s: frame holds %d records, header says %d", p, len(records), binary.LittleEndian.Uint32(b[8:12]))
			}
			for _, r := range records {
				ids[r.RequestID]++
			}
			b = b[16+n:]
		}
	}
	return ids, segments
}

// TestGatewayKill9 is the second proof of issue 6: a `tollgate serve`
// process with a spool (fsync always) is killed with SIGKILL while
// requests run and ClickHouse is down, so events wait on disk; a new
// process on the same spool, with ClickHouse back, must deliver every
// request a client saw answered, exactly once as the queries count.
func TestGatewayKill9(t *testing.T) {
	const (
		warmup    = 100 // answered with ClickHouse up
		killAfter = 400 // total answered when the process is killed
		conc      = 12
	)
	began := time.Now()
	bin := buildTollgate(t)
	built := time.Since(began)
	ch := clickhousetest.Start(t)
	_, simURL := startSim(t) // the upstream lives in the test process
	keys := newDurableKeys(t)
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	cfgPath := filepath.Join(dir, "tollgate.yaml")
	config := fmt.Sprintf(`server:
  listen: 127.0.0.1:0
auth:
  api_keys:
    - {id: %q, hash: %q, subject: dev, kind: user, team: ml, org: acme, roles: [developer]}
    - {id: %q, hash: %q, subject: analyst, kind: user, team: finance, org: acme, roles: [analyst]}
providers:
  - name: sim
    kind: openai
    base_url: %q
    models: [echo, gpt-4o, gpt-4o-mini]
    timeout: 30s
quota:
  backend: memory
analytics:
  clickhouse:
    addr: [%q]
    database: tollgate
    dial_timeout: 1s
  writer:
    batch_size: 50
    flush_interval: 50ms
    insert_timeout: 5s
    retry_backoff: 50ms
    spool:
      dir: %q
      fsync: always
log:
  level: info
  format: json
`, keys.dev.id, auth.HashKey(keys.dev.key), keys.analyst.id, auth.HashKey(keys.analyst.key), simURL, ch.Addr, spoolDir)
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	first := startGatewayProc(t, bin, cfgPath, filepath.Join(dir, "gateway1.log"))
	started := time.Since(began)
	client := newDurableClient(t, conc)

	// acked are the request IDs whose answer a client read to its end.
	var (
		mu          sync.Mutex
		acked       = map[string]durableKind{}
		ackOrder    = map[string]int{} // 1 for the first answer
		afterStop   int                // answers sent while ClickHouse was down
		chDown      bool
		unanswered  int // requests cut off by the kill
		killed      = make(chan struct{})
		reachedKill = make(chan struct{})
	)
	send := func(ctx context.Context, i int) error {
		key, body := keys.request(i)
		id, status, err := durableChat(ctx, client, first.url, key, body)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if isClosed(killed) {
				unanswered++
				return nil
			}
			return fmt.Errorf("request %d: %w", i, err)
		}
		if want := durableMix(i).wantStatus(); status != want {
			return fmt.Errorf("request %d: status %d, want %d", i, status, want)
		}
		acked[id] = durableMix(i)
		ackOrder[id] = len(acked)
		if chDown {
			afterStop++
		}
		if len(acked) == killAfter {
			close(reachedKill)
		}
		return nil
	}

	// Warm-up with ClickHouse up.
	for i := range warmup {
		if err := send(t.Context(), i); err != nil {
			t.Fatal(err)
		}
	}
	// ClickHouse goes away first, so what follows waits in the spool.
	if err := ch.Stop(); err != nil {
		t.Fatalf("stop ClickHouse: %v", err)
	}
	mu.Lock()
	chDown = true
	mu.Unlock()

	// Load until killAfter answers, then SIGKILL with requests in flight.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	next := make(chan int)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := send(ctx, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
feed:
	for i := warmup; ; i++ {
		select {
		case next <- i:
		case <-reachedKill:
			break feed
		case err := <-errs:
			close(next)
			cancel()
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(killed)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 gateway: %v", err)
	}
	<-first.exited
	killedAt := time.Since(began)
	close(next)
	wg.Wait()
	cancel()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	var ws syscall.WaitStatus
	if st, ok := first.cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		ws = st
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("first gateway ended with %v, want killed by SIGKILL", first.waitErr)
	}
	mu.Lock()
	inFlightAtKill := unanswered
	nAcked, nAfterStop := len(acked), afterStop
	mu.Unlock()
	spooled, segs := spooledIDs(t, filepath.Join(spoolDir, "inference"))
	onDisk := len(spooled)

	// ClickHouse back, a new process on the same spool.
	if err := ch.Resume(); err != nil {
		t.Fatalf("restart ClickHouse: %v", err)
	}
	second := startGatewayProc(t, bin, cfgPath, filepath.Join(dir, "gateway2.log"))
	conn := openCH(t, ch.Addr)
	// Once the second process has nothing pending, everything journaled
	// (left by the first or its own) has been inserted.
	pollUntil(t, "the second gateway to ship its spools", 45*time.Second, func() (bool, string) {
		pending, err := metricSum(t.Context(), second.url, "tollgate_analytics_spool_pending_events")
		if err != nil {
			return false, err.Error()
		}
		return pending == 0, fmt.Sprintf("%v events pending in the spools", pending)
	})
	got, err := countLog(t.Context(), conn, "inference_log")
	if err != nil {
		t.Fatal(err)
	}
	delivered := time.Since(began)

	lost, doubled := 0, 0
	for id, k := range acked {
		switch n := got.perID[id]; {
		case n == 0:
			lost++
		case n > 1:
			doubled++
		}
		if n := got.perID[id]; n != 1 {
			where := "in the spool after the kill, so lost or doubled by replay"
			if spooled[id] == 0 {
				where = "never written to the spool: the event was still in the writer's memory (queue or frame being built) when the process died, after the client had the complete answer"
			}
			t.Errorf("acknowledged request %s (kind %d, answer %d of %d): %d rows in inference_log FINAL, want 1; %s", id, k, ackOrder[id], nAcked, n, where)
		}
	}
	if got.final != got.distinct {
		t.Errorf("inference_log FINAL: count() = %d, uniqExact(request_id) = %d, want equal", got.final, got.distinct)
	}
	// Requests cut off by the kill may or may not have been journaled;
	// nothing beyond what was sent can be there.
	if sent := uint64(nAcked + inFlightAtKill); got.distinct > sent {
		t.Errorf("inference_log has %d request IDs, more than the %d requests sent", got.distinct, sent)
	}
	dec, err := countLog(t.Context(), conn, "decision_log")
	if err != nil {
		t.Fatal(err)
	}
	for id, k := range acked {
		if n := dec.perID[id]; k != kindBadKey && n != 1 {
			t.Errorf("acknowledged request %s (kind %d): %d rows in decision_log FINAL, want 1", id, k, n)
		}
	}

	replayed := mustMetric(t, second.url, "tollgate_analytics_events_replayed_total", `log="inference"`)
	if replayed < float64(nAfterStop) {
		t.Errorf("second gateway replayed %v inference events, want at least the %d answered while ClickHouse was down", replayed, nAfterStop)
	}
	for _, log := range []string{`log="inference"`, `log="decision"`} {
		if n := mustMetric(t, second.url, "tollgate_analytics_events_dropped_total", log); n != 0 {
			t.Errorf("tollgate_analytics_events_dropped_total{%s} = %v, want 0", log, n)
		}
	}

	// The second process stops cleanly, and neither saw a data race.
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("second gateway still running 30s after SIGTERM; log:\n%s", tailFile(second.logPath))
	}
	if second.waitErr != nil {
		t.Errorf("second gateway exit: %v; log:\n%s", second.waitErr, tailFile(second.logPath))
	}
	for _, p := range []*gatewayProc{first, second} {
		if b, err := os.ReadFile(p.logPath); err != nil {
			t.Error(err)
		} else if strings.Contains(string(b), "WARNING: DATA RACE") {
			t.Errorf("%s reports a data race:\n%s", p.logPath, tailFile(p.logPath))
		}
	}
	t.Logf("acknowledged=%d (%d while ClickHouse was down), cut off by kill -9=%d; after the kill %d inference records in %d spool segments; lost=%d doubled=%d; "+
		"second gateway replayed=%v; inference_log raw=%d FINAL=%d distinct=%d duplicates_raw=%d duplicates_final=%d; decision_log raw=%d FINAL=%d; "+
		"build %s, first gateway ready at %s, killed at %s, all delivered at %s",
		nAcked, nAfterStop, inFlightAtKill, onDisk, segs, lost, doubled, replayed, got.raw, got.final, got.distinct,
		duplicatesIn(got.rawPerID), duplicatesIn(got.perID), dec.raw, dec.final,
		built.Round(time.Millisecond), started.Round(time.Millisecond), killedAt.Round(time.Millisecond), delivered.Round(time.Millisecond))
}
