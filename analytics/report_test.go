package analytics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/analytics/clickhousetest"
)

// reportEvents is a small month of traffic with known answers. Every
// report below is checked against numbers worked out by hand from it.
func reportEvents() []Event {
	day := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	return []Event{
		{RequestID: "r1", Time: day(2, 10), Subject: "alice", KeyID: "k1", Team: "ml", ModelRequested: "gpt-4o", ModelRouted: "gpt-4o-mini", Provider: "openai",
			Status: 200, Allowed: true, PIITypes: []string{"EMAIL"}, PIICounts: []int{2}, PIICount: 2,
			PromptTokens: 100, CompletionTokens: 50, CostMicros: 1500, LatencyMS: 100, TTFTMS: 20, Stream: true, CutOff: true, Attempts: 1},
		{RequestID: "r2", Time: day(2, 11), Subject: "bob", KeyID: "k2", Team: "ml", ModelRequested: "claude", ModelRouted: "claude", Provider: "anthropic",
			Status: 200, Allowed: true, PIITypes: []string{"EMAIL", "CREDIT_CARD"}, PIICounts: []int{1, 1}, PIICount: 2,
			PromptTokens: 200, CompletionTokens: 100, CostMicros: 3000, LatencyMS: 200, Attempts: 2, Fallbacks: 1},
		{RequestID: "r3", Time: day(3, 9), Subject: "carol", KeyID: "k3", Team: "search", ModelRequested: "gpt-4o-mini", ModelRouted: "gpt-4o-mini", Provider: "openai",
			Status: 502, Allowed: true, PromptTokens: 50, CompletionTokens: 10, CostMicros: 600, LatencyMS: 300, TTFTMS: 40, Stream: true, Attempts: 1, Error: "upstream_500"},
		{RequestID: "r4", Time: day(3, 10), Subject: "carol", KeyID: "k3", Team: "search", ModelRequested: "o1", Status: 403, DenyCode: "model_not_allowed"},
		{RequestID: "r5", Time: day(4, 10), Subject: "alice", KeyID: "k1", Team: "ml", ModelRequested: "gpt-4o", Status: 429, DenyCode: "rate_limited"},
		{RequestID: "r6", Time: day(9, 10), Subject: "alice", KeyID: "k1", Team: "ml", ModelRequested: "gpt-4o", ModelRouted: "gpt-4o", Provider: "openai",
			Status: 200, Allowed: true, CostMicros: 99999, LatencyMS: 1, Attempts: 1},
		{RequestID: "r7", Time: time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC), Subject: "alice", Team: "ml", Provider: "openai", Allowed: true, CostMicros: 77777},
	}
}

// cells formats a report's values for comparison: dates as days,
// numbers in their shortest form.
func cells(res *ReportResult) [][]string {
	out := make([][]string, len(res.Rows))
	for i, row := range res.Rows {
		for _, v := range row {
			var s string
			switch x := v.(type) {
			case time.Time:
				s = x.Format("2006-01-02")
			case float64:
				s = fmt.Sprintf("%g", x)
			default:
				s = fmt.Sprint(x)
			}
			out[i] = append(out[i], s)
		}
	}
	return out
}

// TestReports runs every report against a real ClickHouse holding the
// events of reportEvents, some of them inserted two and three times as a
// spool replay would: the numbers must count each request once.
func TestReports(t *testing.T) {
	t.Parallel()
	srv := clickhousetest.Start(t)
	ctx := ctxT(t)
	ch := openMigrated(t, ctx, srv.Addr)
	events := reportEvents()
	for _, batch := range [][]Event{events, events[:4], events[:1]} {
		if err := ch.Insert(ctx, batch); err != nil {
			t.Fatalf("Insert: %v", err)
		}
	}
	var raw uint64
	if err := ch.conn.QueryRow(ctx, "SELECT count() FROM tollgate.inference_log").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if raw != 12 {
		t.Fatalf("raw rows = %d, want 12 (duplicates not yet merged)", raw)
	}

	period := ReportParams{Since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 8, 0, 0, 0, 0, time.UTC)}
	with := func(f func(*ReportParams)) ReportParams { p := period; f(&p); return p }
	tests := []struct {
		report  string
		params  ReportParams
		columns []string
		want    [][]string
	}{
		{
			report:  "spend",
			params:  period,
			columns: []string{"day", "team", "requests", "prompt_tokens", "completion_tokens", "cost_micros", "cost_usd"},
			want: [][]string{
				{"2026-11-02", "ml", "2", "300", "150", "4500", "0.0045"},
				{"2026-11-03", "search", "2", "50", "10", "600", "0.0006"},
				{"2026-11-04", "ml", "1", "0", "0", "0", "0"},
			},
		},
		{
			report: "spend",
			params: with(func(p *ReportParams) { p.By = "key" }),
			want: [][]string{
				{"2026-11-02", "k2", "1", "200", "100", "3000", "0.003"},
				{"2026-11-02", "k1", "1", "100", "50", "1500", "0.0015"},
				{"2026-11-03", "k3", "2", "50", "10", "600", "0.0006"},
				{"2026-11-04", "k1", "1", "0", "0", "0", "0"},
			},
		},
		{
			report:  "top",
			params:  with(func(p *ReportParams) { p.Limit = 2 }),
			columns: []string{"end_user", "requests", "tokens", "cost_micros", "cost_usd", "share_pct"},
			want: [][]string{
				{"bob", "1", "300", "3000", "0.003", "58.82"},
				{"alice", "2", "150", "1500", "0.0015", "29.41"},
			},
		},
		{
			report: "burn",
			params: with(func(p *ReportParams) {
				p.Now = time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
				p.BudgetMicros = 1_000_000
			}),
			columns: []string{"team", "month_to_date_micros", "days_elapsed", "days_in_month", "burn_micros_per_day", "forecast_micros", "forecast_usd", "forecast_budget_pct"},
			want: [][]string{
				{"ml", "104499", "10", "30", "10449", "313479", "0.313479", "31.3"},
				{"search", "600", "10", "30", "60", "1800", "0.0018", "0.2"},
			},
		},
		{
			report:  "providers",
			params:  period,
			columns: []string{"provider", "model", "requests", "prompt_tokens", "completion_tokens", "cost_micros", "cost_usd", "micros_per_1k_tokens"},
			want: [][]string{
				{"anthropic", "claude", "1", "200", "100", "3000", "0.003", "10000"},
				{"openai", "gpt-4o-mini", "2", "150", "60", "2100", "0.0021", "10000"},
			},
		},
		{
			report:  "denials",
			params:  period,
			columns: []string{"reason", "team", "denied"},
			want: [][]string{
				{"model_not_allowed", "search", "1"},
				{"rate_limited", "ml", "1"},
			},
		},
		{
			report:  "pii",
			params:  period,
			columns: []string{"pii_type", "team", "requests", "findings"},
			want: [][]string{
				{"EMAIL", "ml", "2", "3"},
				{"CREDIT_CARD", "ml", "1", "1"},
			},
		},
		{
			report:  "latency",
			params:  period,
			columns: []string{"provider", "model", "requests", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "streams", "ttft_p50_ms", "ttft_p95_ms", "ttft_p99_ms"},
			want: [][]string{
				{"anthropic", "claude", "1", "200", "200", "200", "0", "0", "0", "0"},
				{"openai", "gpt-4o-mini", "2", "300", "300", "300", "2", "40", "40", "40"},
			},
		},
		{
			report:  "errors",
			params:  period,
			columns: []string{"provider", "model", "requests", "errors", "error_pct", "fell_back", "fallback_pct", "total_attempts", "cut_offs"},
			want: [][]string{
				{"anthropic", "claude", "1", "0", "0", "1", "100", "2", "0"},
				{"openai", "gpt-4o-mini", "2", "1", "50", "0", "0", "2", "1"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.report+"/"+tc.params.By, func(t *testing.T) {
			res, err := ch.Report(ctx, tc.report, tc.params)
			if err != nil {
				t.Fatalf("Report(%s): %v", tc.report, err)
			}
			if tc.columns != nil {
				if diff := cmp.Diff(tc.columns, res.Columns); diff != "" {
					t.Errorf("columns (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tc.want, cells(res)); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
	// Every report runs with every dimension it accepts.
	for _, r := range Reports() {
		dims := []string{""}
		if r.By {
			dims = Dimensions()
		}
		for _, d := range dims {
			if _, err := ch.Report(ctx, r.Name, with(func(p *ReportParams) { p.By = d })); err != nil {
				t.Errorf("Report(%s, by %q): %v", r.Name, d, err)
			}
		}
	}
}

func TestRenderReportRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, report, db string
		p                ReportParams
		want             string
	}{
		{name: "unknown report", report: "nope", db: "tollgate", want: `unknown report "nope"`},
		{name: "unknown dimension", report: "spend", db: "tollgate", p: ReportParams{By: "team; DROP"}, want: "unknown dimension"},
		{name: "by on fixed report", report: "latency", db: "tollgate", p: ReportParams{By: "team"}, want: "drop --by"},
		{name: "bad database", report: "spend", db: "a-b", want: "invalid identifier"},
		{name: "empty period", report: "spend", db: "tollgate", p: ReportParams{Since: time.Unix(10, 0), Until: time.Unix(10, 0)}, want: "is not before"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := RenderReport(tc.report, tc.db, tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("RenderReport = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
