package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/analytics/clickhousetest"
)

// usageEvents: two days, two teams; r1 is inserted twice, as a spool
// replay would, and must count once.
func usageEvents() []analytics.Event {
	at := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	return []analytics.Event{
		{RequestID: "u1", Time: at(2, 9), Subject: "alice", KeyID: "k1", Team: "ml", ModelRequested: "gpt-4o", ModelRouted: "gpt-4o-mini", Provider: "openai",
			Allowed: true, Status: 200, PromptTokens: 1000, CompletionTokens: 200, CostMicros: 1_250_000, LatencyMS: 120},
		{RequestID: "u2", Time: at(2, 10), Subject: "bob", KeyID: "k2", Team: "search", ModelRequested: "gpt-4o", ModelRouted: "gpt-4o", Provider: "openai",
			Allowed: true, Status: 200, PromptTokens: 500, CompletionTokens: 500, CostMicros: 9_000_000, LatencyMS: 300},
		{RequestID: "u3", Time: at(3, 10), Subject: "alice", KeyID: "k1", Team: "ml", ModelRequested: "o1", Status: 403, DenyCode: "model_not_allowed"},
	}
}

func TestMigrateAndUsage(t *testing.T) {
	t.Parallel()
	srv := clickhousetest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	// Dry run on an empty server: statements printed, nothing applied.
	out, _, err := runCmd(t, "migrate", "--clickhouse", srv.Addr, "--dry-run")
	if err != nil {
		t.Fatalf("migrate --dry-run: %v", err)
	}
	for _, want := range []string{"5 pending migrations", "-- 0001_inference_log", "CREATE TABLE IF NOT EXISTS tollgate.inference_log", "-- 0004_usage_daily", "-- 0005_inference_log_attempts"} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate --dry-run output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runCmd(t, "migrate", "--clickhouse", srv.Addr)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	wantOut := "applied 0001_inference_log\napplied 0002_decision_log\napplied 0003_inference_log_fields\napplied 0004_usage_daily\napplied 0005_inference_log_attempts\n"
	if !strings.HasPrefix(out, wantOut) || !strings.Contains(out, "is at schema version 5 (5 applied now)") {
		t.Errorf("migrate output:\n%s\nwant it to start with:\n%s", out, wantOut)
	}
	out, _, err = runCmd(t, "migrate", "--clickhouse", srv.Addr)
	if err != nil || !strings.Contains(out, "(0 applied now)") {
		t.Errorf("second migrate: %v, output %q; want nothing applied", err, out)
	}
	out, _, err = runCmd(t, "migrate", "--clickhouse", srv.Addr, "--dry-run")
	if err != nil || !strings.Contains(out, "0 pending migrations") {
		t.Errorf("dry run after migrate: %v, output %q; want 0 pending", err, out)
	}

	ch, err := analytics.OpenClickHouse(ctx, analytics.ClickHouseConfig{Addr: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	evs := usageEvents()
	for _, batch := range [][]analytics.Event{evs, evs[:1]} {
		if err := ch.Insert(ctx, batch); err != nil {
			t.Fatalf("Insert: %v", err)
		}
	}

	period := []string{"--clickhouse", srv.Addr, "--since", "2026-11-01", "--until", "2026-11-08"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "spend table",
			args: []string{"usage", "spend", "--by", "team"},
			want: "" +
				"day         team    requests  prompt_tokens  completion_tokens  cost_micros  cost_usd\n" +
				"----------  ------  --------  -------------  -----------------  -----------  --------\n" +
				"2026-11-02  search         1            500                500      9000000         9\n" +
				"2026-11-02  ml             1           1000                200      1250000      1.25\n" +
				"2026-11-03  ml             1              0                  0            0         0\n",
		},
		{
			name: "spend csv by key",
			args: []string{"usage", "spend", "--by", "key", "--format", "csv"},
			want: "" +
				"day,key_id,requests,prompt_tokens,completion_tokens,cost_micros,cost_usd\n" +
				"2026-11-02,k2,1,500,500,9000000,9\n" +
				"2026-11-02,k1,1,1000,200,1250000,1.25\n" +
				"2026-11-03,k1,1,0,0,0,0\n",
		},
		{
			name: "denials table",
			args: []string{"usage", "denials"},
			want: "" +
				"reason             team  denied\n" +
				"-----------------  ----  ------\n" +
				"model_not_allowed  ml         1\n",
		},
		{
			name: "flags before the report",
			args: []string{"usage", "--format", "csv", "top", "--limit", "1"},
			want: "end_user,requests,tokens,cost_micros,cost_usd,share_pct\nbob,1,1000,9000000,9,87.8\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := runCmd(t, append(tc.args, period...)...)
			if err != nil {
				t.Fatalf("run: %v\nstderr: %s", err, stderr)
			}
			if diff := cmp.Diff(tc.want, out); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}

	out, _, err = runCmd(t, append([]string{"usage", "burn", "--by", "team", "--format", "json", "--now", "2026-11-11", "--budget", "100"}, period...)...)
	if err != nil {
		t.Fatalf("usage burn: %v", err)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("usage burn --format json: %v\n%s", err, out)
	}
	// search: 9 USD in the 11 days elapsed → 818181 micros a day → 24.55 USD by the 30th, 24.5% of 100.
	want := []map[string]any{
		{"team": "search", "month_to_date_micros": 9e6, "days_elapsed": 11.0, "days_in_month": 30.0, "burn_micros_per_day": 818181.0,
			"forecast_micros": 9e6 + 818181*19, "forecast_usd": (9e6 + 818181*19) / 1e6, "forecast_budget_pct": 24.5},
		{"team": "ml", "month_to_date_micros": 1.25e6, "days_elapsed": 11.0, "days_in_month": 30.0, "burn_micros_per_day": 113636.0,
			"forecast_micros": 1.25e6 + 113636*19, "forecast_usd": (1.25e6 + 113636*19) / 1e6, "forecast_budget_pct": 3.4},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("burn json (-want +got):\n%s", diff)
	}
}

func TestUsageCmdErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no report", args: []string{"usage"}, want: "name a report"},
		{name: "unknown report", args: []string{"usage", "nope", "--clickhouse", "127.0.0.1:1"}, want: `unknown report "nope"`},
		{name: "bad dimension", args: []string{"usage", "spend", "--by", "planet", "--clickhouse", "127.0.0.1:1"}, want: `unknown dimension "planet"`},
		{name: "bad format", args: []string{"usage", "spend", "--format", "xml"}, want: `invalid --format "xml"`},
		{name: "bad since", args: []string{"usage", "spend", "--since", "last week"}, want: `"last week" is not a duration`},
		{name: "no clickhouse", args: []string{"usage", "spend", "--config", ""}, want: "no ClickHouse configured"},
		{name: "migrate no clickhouse", args: []string{"migrate", "--config", ""}, want: "no ClickHouse configured"},
		{name: "migrate argument", args: []string{"migrate", "now"}, want: `unexpected argument "now"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := runCmd(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestParseWhen(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"7d", now.AddDate(0, 0, -7)},
		{"12h", now.Add(-12 * time.Hour)},
		{"2026-11-01", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-11-01T10:00:00Z", time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		got, err := parseWhen(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "-3d", "yesterday", "-1h"} {
		if _, err := parseWhen(bad, now); err == nil {
			t.Errorf("parseWhen(%q): got nil error", bad)
		}
	}
}
