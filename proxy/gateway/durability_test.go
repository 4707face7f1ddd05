package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/analytics/clickhousetest"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/quota"
)

// durableKind is one kind of request in the durability tests' traffic mix:
// which key sends what, and the status the gateway must answer.
type durableKind int

const (
	kindEcho   durableKind = iota // allowed, non-streaming
	kindStream                    // allowed, streaming
	kindDenied                    // 403 model_not_allowed (policy)
	kindBadKey                    // 401 (never reaches the policy)
)

// durableMix returns the kind of the i-th request: 60% echo, 20%
// streaming, 10% denied by the policy, 10% unauthenticated.
func durableMix(i int) durableKind {
	switch i % 10 {
	case 6, 7:
		return kindStream
	case 8:
		return kindDenied
	case 9:
		return kindBadKey
	}
	return kindEcho
}

func (k durableKind) wantStatus() int {
	switch k {
	case kindDenied:
		return http.StatusForbidden
	case kindBadKey:
		return http.StatusUnauthorized
	}
	return http.StatusOK
}

// durableKeys are the callers of the durability tests.
type durableKeys struct {
	dev, analyst testKey
}

func newDurableKeys(t *testing.T) durableKeys {
	t.Helper()
	return durableKeys{dev: newTestKey(t, "ml", "developer"), analyst: newTestKey(t, "finance", "analyst")}
}

// request returns the API key and body of the i-th request.
func (d durableKeys) request(i int) (key, body string) {
	switch durableMix(i) {
	case kindStream:
		return d.dev.key, fmt.Sprintf(`{"model":"gpt-4o-mini","stream":true,"max_tokens":8,"messages":[{"role":"user","content":"Tell story %d."}]}`, i)
	case kindDenied:
		// Analysts may use the small models only.
		return d.analyst.key, fmt.Sprintf(`{"model":"gpt-4o","messages":[{"role":"user","content":"request %d"}]}`, i)
	case kindBadKey:
		return "tg_knope_notakey" + strconv.Itoa(i), `{"model":"echo","messages":[{"role":"user","content":"hi"}]}`
	}
	return d.dev.key, fmt.Sprintf(`{"model":"echo","messages":[{"role":"user","content":"durability request %d"}]}`, i)
}

// durableChat sends one chat request and reads the answer to its end: a
// response counts as acknowledged only once its body is complete. It
// returns the request ID the gateway answered with (X-Request-Id).
func durableChat(ctx context.Context, client *http.Client, baseURL, key, body string) (id string, status int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", resp.StatusCode, fmt.Errorf("read answer: %w", err)
	}
	id = resp.Header.Get("X-Request-Id")
	if id == "" {
		return "", resp.StatusCode, fmt.Errorf("answer %d without X-Request-Id", resp.StatusCode)
	}
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") &&
		!strings.Contains(string(raw), "data: [DONE]") {
		return id, resp.StatusCode, fmt.Errorf("stream %s ended without [DONE]", id)
	}
	return id, resp.StatusCode, nil
}

// newDurableClient returns an HTTP client for conc concurrent callers,
// closed at cleanup.
func newDurableClient(t *testing.T, conc int) *http.Client {
	t.Helper()
	c := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc},
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// pollUntil calls cond every 20ms until it returns true, and fails the
// test when d passes first, with the state cond last described.
func pollUntil(t *testing.T, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state: %s", d, what, state)
		}
		<-tick.C
	}
}

// metricSum scrapes baseURL/metrics and sums the samples of the metric
// name whose labels contain every one of labels (e.g. `log="inference"`).
func metricSum(ctx context.Context, baseURL, name string, labels ...string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue // a longer metric name
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("metric %s%v not exported", name, labels)
	}
	return sum, nil
}

// mustMetric is metricSum failing the test on error.
func mustMetric(t *testing.T, baseURL, name string, labels ...string) float64 {
	t.Helper()
	v, err := metricSum(t.Context(), baseURL, name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// openCH opens a native connection to a test ClickHouse, closed at cleanup.
func openCH(t *testing.T, addr string) clickhouse.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// logCounts is what ClickHouse holds of one log table.
type logCounts struct {
	final, distinct, raw uint64
	// perID is the rows FINAL keeps per request ID.
	perID map[string]uint64
	// rawPerID is the rows stored per request ID, before collapsing.
	rawPerID map[string]uint64
}

// countLog reads table (inference_log or decision_log) the way the FinOps
// queries do, with FINAL, and raw for comparison.
func countLog(ctx context.Context, conn clickhouse.Conn, table string) (logCounts, error) {
	c := logCounts{perID: map[string]uint64{}, rawPerID: map[string]uint64{}}
	q := "SELECT count(), uniqExact(request_id) FROM tollgate." + table + " FINAL"
	if err := conn.QueryRow(ctx, q).Scan(&c.final, &c.distinct); err != nil {
		return c, fmt.Errorf("%s: %w", q, err)
	}
	q = "SELECT count() FROM tollgate." + table
	if err := conn.QueryRow(ctx, q).Scan(&c.raw); err != nil {
		return c, fmt.Errorf("%s: %w", q, err)
	}
	for _, r := range []struct {
		q string
		m map[string]uint64
	}{
		{"SELECT request_id, count() FROM tollgate." + table + " FINAL GROUP BY request_id", c.perID},
		{"SELECT request_id, count() FROM tollgate." + table + " GROUP BY request_id", c.rawPerID},
	} {
		rows, err := conn.Query(ctx, r.q)
		if err != nil {
			return c, fmt.Errorf("%s: %w", r.q, err)
		}
		for rows.Next() {
			var id string
			var n uint64
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return c, fmt.Errorf("%s: %w", r.q, err)
			}
			r.m[id] = n
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return c, fmt.Errorf("%s: %w", r.q, err)
		}
		rows.Close()
	}
	return c, nil
}

// duplicatesIn returns how many stored rows are extra copies of a request.
func duplicatesIn(perID map[string]uint64) (extra uint64) {
	for _, n := range perID {
		extra += n - 1
	}
	return extra
}

// TestClickHouseOutage is the first proof of issue 6 at the gateway level:
// 1,000 chat requests (allowed, streaming, denied, unauthenticated) run
// through the HTTP API while ClickHouse is stopped after the first 300 and
// started again at 700. Every request ID the clients saw must be in
// inference_log exactly once as the FinOps queries read it (FINAL), the
// reports must count 1,000 requests, and no event may be dropped.
func TestClickHouseOutage(t *testing.T) {
	const (
		total  = 1000
		stopAt = 300 // stop ClickHouse when this request is sent
		downBy = 350 // ... and have it down before this one is sent
		resume = 700 // start it again when this one is sent
		conc   = 16
	)
	began := time.Now()
	ch := clickhousetest.Start(t)
	simSrv, simURL := startSim(t)
	keys := newDurableKeys(t)

	cfg, err := Parse([]byte("{}"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Auth.APIKeys = []auth.KeyConfig{keyConfig(keys.dev), keyConfig(keys.analyst)}
	cfg.Providers = []provider.Config{{Name: "sim", Kind: "openai", BaseURL: simURL, Models: []string{"echo", "gpt-4o", "gpt-4o-mini"}, Timeout: "30s"}}
	cfg.Quota = quota.Config{Backend: "memory"}
	cfg.Analytics.ClickHouse = analytics.ClickHouseConfig{Addr: []string{ch.Addr}, Database: "tollgate", DialTimeout: time.Second}
	cfg.Analytics.Writer = analytics.WriterConfig{
		BatchSize:     50,
		FlushInterval: 50 * time.Millisecond,
		InsertTimeout: 5 * time.Second,
		RetryBackoff:  50 * time.Millisecond,
		Spool:         analytics.SpoolConfig{Dir: t.TempDir()}, // default fsync policy: interval
	}
	gw := startGateway(t, cfg, simSrv)
	client := newDurableClient(t, conc)

	// The producer hands out request numbers and moves ClickHouse through
	// its outage at fixed points of the traffic, in the background, while
	// the workers keep sending.
	type outcome struct {
		id     string
		status int
		err    error
	}
	results := make([]outcome, total)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				key, body := keys.request(i)
				id, status, err := durableChat(t.Context(), client, gw.url, key, body)
				results[i] = outcome{id: id, status: status, err: err}
			}
		}()
	}
	var stopped, resumed chan error
	var downAt, upAt time.Time
	for i := range total {
		switch i {
		case stopAt:
			stopped = make(chan error, 1)
			go func() { stopped <- ch.Stop() }()
		case downBy:
			if err := <-stopped; err != nil {
				t.Fatalf("stop ClickHouse: %v", err)
			}
			downAt = time.Now()
		case resume:
			resumed = make(chan error, 1)
			upAt = time.Now()
			go func() { resumed <- ch.Resume() }()
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err := <-resumed; err != nil {
		t.Fatalf("restart ClickHouse: %v", err)
	}
	served := time.Since(began)

	// Every request got the answer its kind calls for.
	want := map[string]durableKind{}
	for i, r := range results {
		k := durableMix(i)
		if r.err != nil || r.status != k.wantStatus() {
			t.Fatalf("request %d (kind %d): status %d err %v, want %d", i, k, r.status, r.err, k.wantStatus())
		}
		if _, dup := want[r.id]; dup {
			t.Fatalf("request %d: request ID %s answered twice", i, r.id)
		}
		want[r.id] = k
	}

	// The writer noticed the outage: inserts failed while ClickHouse was
	// down, and the events that waited are replayed from the spool.
	if n := mustMetric(t, gw.url, "tollgate_analytics_insert_errors_total", `log="inference"`); n == 0 {
		t.Fatalf("tollgate_analytics_insert_errors_total{log=inference} = 0, want > 0: ClickHouse was down from request %d to %d", downBy, resume)
	}

	// Wait until ClickHouse has every event and the spool is empty.
	conn := openCH(t, ch.Addr)
	var got logCounts
	pollUntil(t, "all 1,000 events in ClickHouse and an empty spool", 45*time.Second, func() (bool, string) {
		got, err = countLog(t.Context(), conn, "inference_log")
		if err != nil {
			return false, err.Error()
		}
		pending, err := metricSum(t.Context(), gw.url, "tollgate_analytics_spool_pending_events")
		if err != nil {
			return false, err.Error()
		}
		return got.distinct >= total && pending == 0,
			fmt.Sprintf("%d distinct request IDs in inference_log, %v events pending in the spools", got.distinct, pending)
	})
	shipped := time.Since(began)

	// Exactly once, as the FinOps path reads it.
	if got.final != total || got.distinct != total {
		t.Errorf("inference_log FINAL: count() = %d, uniqExact(request_id) = %d, want %d and %d", got.final, got.distinct, total, total)
	}
	for id, k := range want {
		if n := got.perID[id]; n != 1 {
			t.Errorf("request %s (kind %d): %d rows in inference_log FINAL, want 1", id, k, n)
		}
	}
	for id := range got.perID {
		if _, ok := want[id]; !ok {
			t.Errorf("inference_log holds request %s, which no client sent", id)
		}
	}

	// The FinOps reports count each request once.
	fin, err := analytics.OpenClickHouse(t.Context(), analytics.ClickHouseConfig{Addr: []string{ch.Addr}, Database: "tollgate"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fin.Close() })
	period := analytics.ReportParams{By: "team", Since: began.Add(-time.Hour), Until: time.Now().Add(time.Hour)}
	spend, err := fin.Report(t.Context(), "spend", period)
	if err != nil {
		t.Fatal(err)
	}
	perTeam := reportSums(t, spend, "team", "requests")
	wantTeams := map[string]uint64{"ml": total * 8 / 10, "finance": total / 10, "": total / 10}
	for team, n := range wantTeams {
		if perTeam[team] != n {
			t.Errorf("spend report, team %q: %d requests, want %d (report %v)", team, perTeam[team], n, perTeam)
		}
	}
	denials, err := fin.Report(t.Context(), "denials", period)
	if err != nil {
		t.Fatal(err)
	}
	perReason := reportSums(t, denials, "reason", "denied")
	if perReason["model_not_allowed"] != total/10 {
		t.Errorf("denials report: %d model_not_allowed, want %d (report %v)", perReason["model_not_allowed"], total/10, perReason)
	}
	var denied uint64
	for _, n := range perReason {
		denied += n
	}
	if denied != total/5 {
		t.Errorf("denials report: %d denied requests, want %d (403 and 401)", denied, total/5)
	}

	// The decision log went through the same outage: every request that
	// reached the policy (all but the unauthenticated) once.
	dec, err := countLog(t.Context(), conn, "decision_log")
	if err != nil {
		t.Fatal(err)
	}
	if dec.final != total*9/10 || dec.distinct != total*9/10 {
		t.Errorf("decision_log FINAL: count() = %d, uniqExact(request_id) = %d, want %d", dec.final, dec.distinct, total*9/10)
	}
	for id, k := range want {
		if n := dec.perID[id]; k != kindBadKey && n != 1 {
			t.Errorf("request %s (kind %d): %d rows in decision_log FINAL, want 1", id, k, n)
		}
	}

	// Nothing dropped; everything journaled; the outage was replayed.
	for _, log := range []string{`log="inference"`, `log="decision"`} {
		if n := mustMetric(t, gw.url, "tollgate_analytics_events_dropped_total", log); n != 0 {
			t.Errorf("tollgate_analytics_events_dropped_total{%s} = %v, want 0", log, n)
		}
	}
	spooled := mustMetric(t, gw.url, "tollgate_analytics_events_spooled_total", `log="inference"`)
	replayed := mustMetric(t, gw.url, "tollgate_analytics_events_replayed_total", `log="inference"`)
	written := mustMetric(t, gw.url, "tollgate_analytics_events_written_total", `log="inference"`)
	insertErrors := mustMetric(t, gw.url, "tollgate_analytics_insert_errors_total", `log="inference"`)
	if spooled != total {
		t.Errorf("tollgate_analytics_events_spooled_total{log=inference} = %v, want %d", spooled, total)
	}
	if replayed == 0 {
		t.Errorf("tollgate_analytics_events_replayed_total{log=inference} = 0, want > 0 after the outage")
	}
	if written < total {
		t.Errorf("tollgate_analytics_events_written_total{log=inference} = %v, want at least %d", written, total)
	}
	if simSrv.Requests() != total*8/10 {
		t.Errorf("simulator served %d requests, want %d (the allowed ones)", simSrv.Requests(), total*8/10)
	}
	gw.stop(t)
	t.Logf("requests=%d (allowed %d, streaming %d, denied %d, unauthenticated %d); ClickHouse down from request %d (%s) to %d (%s); "+
		"spooled=%v written=%v replayed=%v insert_errors=%v; inference_log raw rows=%d FINAL=%d distinct=%d duplicates_raw=%d duplicates_final=%d; "+
		"decision_log raw=%d FINAL=%d; served in %s, all in ClickHouse after %s",
		total, total*8/10, total*2/10, total/10, total/10, downBy, downAt.Sub(began).Round(time.Millisecond), resume, upAt.Sub(began).Round(time.Millisecond),
		spooled, written, replayed, insertErrors, got.raw, got.final, got.distinct, duplicatesIn(got.rawPerID), duplicatesIn(got.perID),
		dec.raw, dec.final, served.Round(time.Millisecond), shipped.Round(time.Millisecond))
}

// reportSums sums the numeric column val of a report by its column key.
func reportSums(t *testing.T, r *analytics.ReportResult, key, val string) map[string]uint64 {
	t.Helper()
	ki, vi := -1, -1
	for i, c := range r.Columns {
		switch c {
		case key:
			ki = i
		case val:
			vi = i
		}
	}
	if ki < 0 || vi < 0 {
		t.Fatalf("report columns %v lack %q or %q", r.Columns, key, val)
	}
	out := map[string]uint64{}
	for _, row := range r.Rows {
		k, ok := row[ki].(string)
		if !ok {
			t.Fatalf("report column %s is %T, want string", key, row[ki])
		}
		v, ok := row[vi].(uint64)
		if !ok {
			t.Fatalf("report column %s is %T, want uint64", val, row[vi])
		}
		out[k] += v
	}
	return out
}
