package analytics

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/analytics/clickhousetest"
)

// TestClickHouse runs migrations and the Writer against a real server: the
// Debian package's 18.16 here, a current release elsewhere.
func TestClickHouse(t *testing.T) {
	t.Parallel()
	srv := clickhousetest.Start(t)
	ctx := ctxT(t)
	ch, err := OpenClickHouse(ctx, ClickHouseConfig{Addr: []string{srv.Addr}, RetentionDays: 30})
	if err != nil {
		t.Fatalf("OpenClickHouse: %v", err)
	}
	t.Cleanup(func() {
		if err := ch.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("clickhouse %s", ch.ServerVersion())

	for i := range 2 { // the second run must find nothing to do
		if err := ch.Migrate(ctx); err != nil {
			t.Fatalf("Migrate run %d: %v", i+1, err)
		}
	}
	if diff := cmp.Diff(map[uint32]uint64{1: 1, 2: 1, 3: 1, 4: 1, 5: 1}, migrationRows(ctx, t, ch, "tollgate")); diff != "" {
		t.Errorf("schema_migrations rows per version (-want +got):\n%s", diff)
	}
	for _, table := range []string{"inference_log", "decision_log"} {
		var ddl string
		if err := ch.conn.QueryRow(ctx, "SHOW CREATE TABLE tollgate."+table).Scan(&ddl); err != nil {
			t.Fatal(err)
		}
		if f := featuresFor(ch.ServerVersion()); strings.Contains(ddl, "LowCardinality") != f.lowCardinality {
			t.Errorf("server %s: %s DDL uses LowCardinality = %t, want %t:\n%s", ch.ServerVersion(), table, !f.lowCardinality, f.lowCardinality, ddl)
		}
	}

	t.Run("writer round trip", func(t *testing.T) {
		w, _ := newTestWriter(t, WriterConfig{QueueSize: 100, BatchSize: 3, FlushInterval: time.Hour}, ch)
		w.Start()
		want := sampleEvents(7)
		for _, e := range want {
			w.Enqueue(e)
		}
		if err := w.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if got := value(t, w.m.written); got != float64(len(want)) {
			t.Errorf("events_written_total = %v, want %d", got, len(want))
		}

		got := selectEvents(ctx, t, ch, "request_id LIKE 'req-%'")
		if !featuresFor(ch.ServerVersion()).dateTime64 {
			for i := range want {
				want[i].Time = want[i].Time.Truncate(time.Second)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("rows read back (-want +got):\n%s", diff)
		}

		type teamTotals struct {
			Team             string
			Count            uint64
			PromptTokens     uint64
			CompletionTokens uint64
			CostMicros       int64
			CostUSD          float64
			EmailRequests    uint64
		}
		wantTotals := map[string]*teamTotals{}
		for _, e := range want {
			tt := wantTotals[e.Team]
			if tt == nil {
				tt = &teamTotals{Team: e.Team}
				wantTotals[e.Team] = tt
			}
			tt.Count++
			tt.PromptTokens += uint64(e.PromptTokens)
			tt.CompletionTokens += uint64(e.CompletionTokens)
			tt.CostMicros += e.CostMicros
			tt.CostUSD += e.CostUSD()
			for _, p := range e.PIITypes {
				if p == "EMAIL" {
					tt.EmailRequests++
				}
			}
		}
		rows, err := ch.conn.Query(ctx, `
			SELECT team, count(), sum(prompt_tokens), sum(completion_tokens),
			       sum(cost_micros), sum(cost_usd), countIf(has(pii_types, 'EMAIL'))
			FROM tollgate.inference_log FINAL
			WHERE request_id LIKE 'req-%'
			GROUP BY team ORDER BY team`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		gotTotals := map[string]*teamTotals{}
		for rows.Next() {
			var tt teamTotals
			if err := rows.Scan(&tt.Team, &tt.Count, &tt.PromptTokens, &tt.CompletionTokens, &tt.CostMicros, &tt.CostUSD, &tt.EmailRequests); err != nil {
				t.Fatal(err)
			}
			gotTotals[tt.Team] = &tt
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantTotals, gotTotals, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
			t.Errorf("per-team totals (-want +got):\n%s", diff)
		}
	})

	t.Run("zero time and nil slices", func(t *testing.T) {
		before := time.Now().Add(-time.Second)
		if err := ch.Insert(ctx, []Event{{RequestID: "bare-1"}}); err != nil {
			t.Fatalf("Insert: %v", err)
		}
		got := selectEvents(ctx, t, ch, "request_id = 'bare-1'")
		if len(got) != 1 {
			t.Fatalf("rows = %d, want 1", len(got))
		}
		if got[0].Time.Before(before) {
			t.Errorf("timestamp = %v, want the insert time (after %v)", got[0].Time, before)
		}
		if len(got[0].PIITypes) != 0 {
			t.Errorf("pii_types = %q, want empty", got[0].PIITypes)
		}
	})

	t.Run("decision writer round trip", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		dw, _ := newTestDecisionWriter(t, WriterConfig{QueueSize: 100, BatchSize: 3, FlushInterval: time.Hour},
			DecisionInserterFunc(ch.InsertDecisions), reg)
		dw.Start()
		want := sampleDecisions(7)
		for _, d := range want {
			dw.Enqueue(d)
		}
		if err := dw.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if got := value(t, dw.m.written); got != float64(len(want)) {
			t.Errorf("events_written_total{log=decision} = %v, want %d", got, len(want))
		}
		if !featuresFor(ch.ServerVersion()).dateTime64 {
			for i := range want {
				want[i].Time = want[i].Time.Truncate(time.Second)
			}
		}
		got := selectDecisions(ctx, t, ch, "request_id LIKE 'dec-%'")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("decision rows read back (-want +got):\n%s", diff)
		}
		// An audit query: denials per team and deny code.
		var denials uint64
		if err := ch.conn.QueryRow(ctx, `
			SELECT count() FROM tollgate.decision_log FINAL
			WHERE request_id LIKE 'dec-%' AND NOT allowed AND has(deny_codes, 'model_not_allowed')`).Scan(&denials); err != nil {
			t.Fatal(err)
		}
		if denials != 3 { // odd indexes of 7
			t.Errorf("denials with model_not_allowed = %d, want 3", denials)
		}
	})

	t.Run("decision zero time and nil slices", func(t *testing.T) {
		before := time.Now().Add(-time.Second)
		if err := ch.InsertDecisions(ctx, []DecisionEvent{{RequestID: "bare-dec-1", EvalMicros: -5}}); err != nil {
			t.Fatalf("InsertDecisions: %v", err)
		}
		got := selectDecisions(ctx, t, ch, "request_id = 'bare-dec-1'")
		if len(got) != 1 {
			t.Fatalf("rows = %d, want 1", len(got))
		}
		if got[0].Time.Before(before) {
			t.Errorf("timestamp = %v, want the insert time (after %v)", got[0].Time, before)
		}
		want := DecisionEvent{RequestID: "bare-dec-1", Time: got[0].Time} // negative EvalMicros clamps to 0
		if diff := cmp.Diff(want, got[0], cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("bare decision read back (-want +got):\n%s", diff)
		}
	})

	t.Run("replayed decisions collapse", func(t *testing.T) {
		d := sampleDecisions(1)[0]
		d.RequestID = "replayed-dec-1"
		for range 2 {
			if err := ch.InsertDecisions(ctx, []DecisionEvent{d}); err != nil {
				t.Fatalf("InsertDecisions: %v", err)
			}
		}
		var n uint64
		if err := ch.conn.QueryRow(ctx, "SELECT count() FROM tollgate.decision_log FINAL WHERE request_id = 'replayed-dec-1'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("count with FINAL = %d, want 1", n)
		}
		if !featuresFor(ch.ServerVersion()).dateTime64 {
			d.Time = d.Time.Truncate(time.Second)
		}
		if diff := cmp.Diff([]DecisionEvent{d}, selectDecisions(ctx, t, ch, "request_id = 'replayed-dec-1'")); diff != "" {
			t.Errorf("replayed decision read back (-want +got):\n%s", diff)
		}
	})

	t.Run("replayed events collapse", func(t *testing.T) {
		e := sampleEvents(1)[0]
		e.RequestID = "replayed-1"
		for range 2 {
			if err := ch.Insert(ctx, []Event{e}); err != nil {
				t.Fatalf("Insert: %v", err)
			}
		}
		var n uint64
		if err := ch.conn.QueryRow(ctx, "SELECT count() FROM tollgate.inference_log FINAL WHERE request_id = 'replayed-1'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("count with FINAL = %d, want 1", n)
		}
	})
}

// selectEvents reads rows back into Events, in request_id order.
func selectEvents(ctx context.Context, t *testing.T, ch *ClickHouse, where string) []Event {
	t.Helper()
	rows, err := ch.conn.Query(ctx, fmt.Sprintf(
		"SELECT %s FROM tollgate.inference_log FINAL WHERE %s ORDER BY request_id", insertColumns, where))
	if err != nil {
		t.Fatalf("select events: %v", err)
	}
	defer rows.Close()
	var events []Event
	for rows.Next() {
		var (
			e                                  Event
			status                             uint16
			piiCount, estimated, prompt, compl uint32
			cached                             uint32
			costUSD                            float64
			attempts, fallbacks                uint8
			piiCounts                          []uint32
			tagKeys, tagValues                 []string
			promptText, response               *string
			targets, outcomes                  []string
			latencies                          []float64
		)
		if err := rows.Scan(
			&e.RequestID, &e.Time, &e.Subject, &e.KeyID, &e.Team, &e.Org, &e.Kind,
			&e.ModelRequested, &e.ModelRouted, &e.Provider, &status, &e.Allowed, &e.DenyCode, &e.BundleRevision,
			&e.PIITypes, &piiCount, &estimated, &prompt, &compl, &cached,
			&e.CostMicros, &costUSD, &e.LatencyMS, &e.TTFTMS, &e.Stream, &e.CutOff, &attempts, &e.Error, &e.Path, &e.ClientIP,
			&e.User, &e.AgentChain, &fallbacks, &piiCounts, &tagKeys, &tagValues, &promptText, &response,
			&targets, &outcomes, &latencies,
		); err != nil {
			t.Fatalf("scan: %v", err)
		}
		e.Status = int(status)
		e.PIICount = int(piiCount)
		e.PromptTokensEstimated = int64(estimated)
		e.PromptTokens = int64(prompt)
		e.CompletionTokens = int64(compl)
		e.CachedTokens = int64(cached)
		e.Attempts = int(attempts)
		e.Fallbacks = int(fallbacks)
		for _, c := range piiCounts {
			e.PIICounts = append(e.PIICounts, int(c))
		}
		if len(tagKeys) != len(tagValues) {
			t.Errorf("%s: %d tag keys, %d values", e.RequestID, len(tagKeys), len(tagValues))
		}
		for i := range tagKeys {
			if e.Tags == nil {
				e.Tags = map[string]string{}
			}
			e.Tags[tagKeys[i]] = tagValues[i]
		}
		if promptText != nil {
			if *promptText == "" {
				t.Errorf("%s: prompt is '' not NULL", e.RequestID)
			}
			e.Prompt = *promptText
		}
		if response != nil {
			e.Response = *response
		}
		if len(e.AgentChain) == 0 {
			e.AgentChain = nil
		}
		for i := range targets {
			e.AttemptLog = append(e.AttemptLog, Attempt{Target: targets[i], Outcome: outcomes[i], LatencyMS: latencies[i]})
		}
		if costUSD != e.CostUSD() {
			t.Errorf("%s: cost_usd = %v, want %v (cost_micros %d)", e.RequestID, costUSD, e.CostUSD(), e.CostMicros)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return events
}

// TestClickHouseMigrateUpgrade starts from a database that has only
// migration 1, as gateways before the decision log left it, and an upgrade
// to 3 interrupted halfway: Migrate must finish every later migration,
// record each once, and keep the old rows readable.
func TestClickHouseMigrateUpgrade(t *testing.T) {
	t.Parallel()
	srv := clickhousetest.Start(t)
	ctx := ctxT(t)
	const db = "tollgate_upgrade"
	ch, err := OpenClickHouse(ctx, ClickHouseConfig{Addr: []string{srv.Addr}, Database: db})
	if err != nil {
		t.Fatalf("OpenClickHouse: %v", err)
	}
	t.Cleanup(func() {
		if err := ch.Close(); err != nil {
			t.Error(err)
		}
	})
	// Apply 0001 by hand, as Migrate did when it was the only migration.
	migs, err := Migrations(ch.ServerVersion(), SchemaOptions{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	boot, err := bootstrapSQL(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range append(append([]string{"CREATE DATABASE " + db}, boot...), migs[0].Statements...) {
		if err := ch.conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := ch.recordMigration(ctx, migs[0]); err != nil {
		t.Fatal(err)
	}
	// Rows as gateways of schema version 1 wrote them: only 0001's columns.
	old, err := ch.conn.PrepareBatch(ctx, "INSERT INTO "+db+".inference_log (request_id, timestamp, team, cost_micros)")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"old-1", "old-2"} {
		if err := old.Append(id, time.Now(), "ml", int64(5)); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Send(); err != nil {
		t.Fatalf("insert with the version-1 columns: %v", err)
	}
	if err := ch.InsertDecisions(ctx, sampleDecisions(1)); err == nil {
		t.Fatal("InsertDecisions before the upgrade: got nil error, want one (no decision_log yet)")
	}
	// Simulate an upgrade interrupted in the middle of 0003: its first
	// column is there, the migration is not recorded.
	if err := ch.conn.Exec(ctx, migs[2].Statements[0]); err != nil {
		t.Fatalf("%s: %v", migs[2].Statements[0], err)
	}

	if err := ch.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if diff := cmp.Diff(map[uint32]uint64{1: 1, 2: 1, 3: 1, 4: 1, 5: 1}, migrationRows(ctx, t, ch, db)); diff != "" {
		t.Errorf("schema_migrations rows per version (-want +got):\n%s", diff)
	}
	if err := ch.InsertDecisions(ctx, sampleDecisions(2)); err != nil {
		t.Fatalf("InsertDecisions after upgrade: %v", err)
	}
	if err := ch.Insert(ctx, sampleEvents(3)); err != nil {
		t.Fatalf("Insert after upgrade: %v", err)
	}
	var events, oldRows uint64
	if err := ch.conn.QueryRow(ctx, "SELECT count(), countIf(request_id LIKE 'old-%' AND user = '' AND empty(tag_keys) AND prompt IS NULL) FROM "+db+".inference_log").Scan(&events, &oldRows); err != nil {
		t.Fatal(err)
	}
	if events != 5 || oldRows != 2 {
		t.Errorf("inference_log after upgrade: %d rows, %d old rows with default new columns; want 5 and 2", events, oldRows)
	}
	// The roll-up sees rows inserted after its migration only.
	var rolled uint64
	if err := ch.conn.QueryRow(ctx, "SELECT sum(requests) FROM "+db+".usage_daily").Scan(&rolled); err != nil {
		t.Fatal(err)
	}
	if rolled != 3 {
		t.Errorf("usage_daily requests = %d, want 3 (the rows inserted after the upgrade)", rolled)
	}
}

// migrationRows counts schema_migrations rows per version, without FINAL:
// Migrate must not record a version twice even before merges.
func migrationRows(ctx context.Context, t *testing.T, ch *ClickHouse, db string) map[uint32]uint64 {
	t.Helper()
	rows, err := ch.conn.Query(ctx, "SELECT version, count() FROM "+db+".schema_migrations GROUP BY version")
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	defer rows.Close()
	got := map[uint32]uint64{}
	for rows.Next() {
		var v uint32
		var n uint64
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		got[v] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// selectDecisions reads decision_log rows back, in request_id order.
func selectDecisions(ctx context.Context, t *testing.T, ch *ClickHouse, where string) []DecisionEvent {
	t.Helper()
	rows, err := ch.conn.Query(ctx, fmt.Sprintf(
		"SELECT %s FROM tollgate.decision_log FINAL WHERE %s ORDER BY request_id", decisionColumns, where))
	if err != nil {
		t.Fatalf("select decisions: %v", err)
	}
	defer rows.Close()
	var out []DecisionEvent
	for rows.Next() {
		var (
			d          DecisionEvent
			evalMicros uint32
		)
		if err := rows.Scan(
			&d.RequestID, &d.Time, &d.Subject, &d.KeyID, &d.Team, &d.Org, &d.Kind,
			&d.ModelRequested, &d.BundleRevision, &d.Allowed, &d.DenyCodes, &d.Route, &d.Fallbacks,
			&d.MaskTypes, &d.MaskActions, &d.Limits, &d.StorePrompt, &evalMicros, &d.Error,
			&d.ShadowRevision, &d.ShadowDiffers, &d.ShadowAllowed, &d.ShadowDenyCodes, &d.ShadowError,
		); err != nil {
			t.Fatalf("scan: %v", err)
		}
		d.EvalMicros = int64(evalMicros)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestClickHouseConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     ClickHouseConfig
		wantErr []string
	}{
		{name: "minimal", cfg: ClickHouseConfig{Addr: []string{"127.0.0.1:9000"}}},
		{name: "no addr", cfg: ClickHouseConfig{}, wantErr: []string{"analytics.clickhouse.addr: empty"}},
		{
			name:    "bad database and negatives",
			cfg:     ClickHouseConfig{Addr: []string{""}, Database: "a-b", DialTimeout: -time.Second, RetentionDays: -1},
			wantErr: []string{"analytics.clickhouse.addr[0]: empty", `analytics.clickhouse.database: invalid identifier "a-b"`, "dial_timeout: -1s", "retention_days: -1"},
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
				t.Fatalf("Validate() = nil, want %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestClickHouseConfigLogValueRedacts(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("config", "clickhouse", ClickHouseConfig{Addr: []string{"h:9000"}, Password: "hunter2"})
	if strings.Contains(buf.String(), "hunter2") || !strings.Contains(buf.String(), "REDACTED") {
		t.Errorf("log = %s, want the password redacted", buf.String())
	}
}

func TestOpenClickHouseUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Port 1 on loopback refuses connections.
	_, err := OpenClickHouse(ctx, ClickHouseConfig{Addr: []string{"127.0.0.1:1"}, DialTimeout: time.Second})
	if err == nil {
		t.Fatal("OpenClickHouse to a closed port: got nil error")
	}
}
