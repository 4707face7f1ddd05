package analytics

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/analytics/clickhousetest"
)

type grafanaDashboard struct {
	Panels []struct {
		ID         int    `json:"id"`
		Title      string `json:"title"`
		Datasource struct {
			Type string `json:"type"`
		} `json:"datasource"`
		Targets []struct {
			RawSQL     string `json:"rawSql"`
			Datasource struct {
				Type string `json:"type"`
			} `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
}

// grafanaMacros stands in for the ClickHouse data source's macros, over
// all time, so the panels' SQL runs as Grafana would send it.
var grafanaMacros = strings.NewReplacer(
	"$__timeFilter(timestamp)", "timestamp >= toDateTime(0) AND timestamp <= toDateTime(4102444800)",
	"$__fromTime", "toDateTime(0)",
	"$__toTime", "toDateTime(4102444800)",
)

var unknownMacro = regexp.MustCompile(`\$\{?\w+`)

// TestGrafanaDashboards parses every dashboard in deploy/grafana and runs
// each panel's SQL against a migrated ClickHouse holding duplicated rows:
// a column or table the schema lacks fails the query, and the totals
// must count each request once.
func TestGrafanaDashboards(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../deploy/grafana/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in deploy/grafana (%v)", err)
	}
	srv := clickhousetest.Start(t)
	ctx := ctxT(t)
	ch := openMigrated(t, ctx, srv.Addr)
	events := reportEvents()
	for _, batch := range [][]Event{events, events[:3]} {
		if err := ch.Insert(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var d grafanaDashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(d.Panels) < 8 {
			t.Errorf("%s: %d panels, want spend, tokens, latency and denials at least", file, len(d.Panels))
		}
		for _, p := range d.Panels {
			if p.Datasource.Type != "grafana-clickhouse-datasource" || len(p.Targets) == 0 {
				t.Errorf("%s panel %d %q: datasource %q, %d targets; want grafana-clickhouse-datasource and a query", file, p.ID, p.Title, p.Datasource.Type, len(p.Targets))
			}
			for _, tg := range p.Targets {
				sql := grafanaMacros.Replace(tg.RawSQL)
				if m := unknownMacro.FindString(sql); m != "" {
					t.Errorf("%s panel %q: unknown macro or variable %s", file, p.Title, m)
					continue
				}
				if !strings.Contains(sql, "tollgate.inference_log FINAL") && !strings.Contains(sql, "tollgate.usage_daily") {
					t.Errorf("%s panel %q: reads neither inference_log FINAL nor usage_daily:\n%s", file, p.Title, sql)
				}
				rows, err := ch.conn.Query(ctx, sql)
				if err != nil {
					t.Errorf("%s panel %q: %v\n%s", file, p.Title, err, sql)
					continue
				}
				n := 0
				for rows.Next() {
					n++
				}
				if err := rows.Err(); err != nil {
					t.Errorf("%s panel %q: %v", file, p.Title, err)
				}
				rows.Close()
				if n == 0 {
					t.Errorf("%s panel %q: no rows over all time, want some", file, p.Title)
				}
				if p.Title == "Spend in range (USD)" {
					var usd float64
					if err := ch.conn.QueryRow(ctx, sql).Scan(&usd); err != nil {
						t.Fatal(err)
					}
					if want := 0.182876; usd < want-1e-12 || usd > want+1e-12 {
						t.Errorf("spend stat = %v, want %v (each request once)", usd, want)
					}
				}
			}
		}
	}
}
