package analytics

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// queriesFS holds the FinOps reports, one text/template per file,
// rendered with reportData and run with bound parameters @since, @until,
// @now, @limit and @budget_micros.
//
//go:embed queries/*.sql
var queriesFS embed.FS

// Report describes one FinOps query in analytics/queries.
type Report struct {
	// Name is the file name without .sql, the argument of tollgate usage.
	Name string
	// Description says what the report answers.
	Description string
	// By is true when the report groups by a dimension (ReportParams.By);
	// DefaultBy is the dimension used when none is given.
	By        bool
	DefaultBy string
}

var reports = []Report{
	{Name: "spend", Description: "requests, tokens and cost per day and dimension", By: true, DefaultBy: "team"},
	{Name: "top", Description: "top spenders over the period, with their share", By: true, DefaultBy: "user"},
	{Name: "burn", Description: "budget burn rate and month-end forecast for the month of --now", By: true, DefaultBy: "team"},
	{Name: "providers", Description: "cost per provider and model, per thousand tokens"},
	{Name: "denials", Description: "denied requests by reason and dimension", By: true, DefaultBy: "team"},
	{Name: "pii", Description: "PII incidents by type and dimension", By: true, DefaultBy: "team"},
	{Name: "latency", Description: "latency and time-to-first-token percentiles by provider and model"},
	{Name: "errors", Description: "error and fallback rates by provider and model"},
}

// Reports lists the FinOps reports.
func Reports() []Report { return slices.Clone(reports) }

// dimensions maps a --by name to its SQL expression over inference_log and
// the column name it gets in the result. The expressions are fixed here,
// never taken from input.
var dimensions = map[string]struct{ expr, name string }{
	"team":     {"team", "team"},
	"org":      {"org", "org"},
	"key":      {"key_id", "key_id"},
	"subject":  {"subject", "subject"},
	"user":     {"if(user = '', subject, user)", "end_user"},
	"model":    {"if(model_routed = '', model_requested, model_routed)", "model"},
	"provider": {"provider", "provider"},
}

// Dimensions lists the names ReportParams.By accepts.
func Dimensions() []string {
	out := make([]string, 0, len(dimensions))
	for k := range dimensions {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ReportParams parameterise a report. Zero values take defaults.
type ReportParams struct {
	// By is the grouping dimension (see Dimensions); default the report's.
	By string
	// Since and Until bound the period, Until exclusive; default the last
	// 7 days up to now.
	Since, Until time.Time
	// Now is the reference time of the burn report; default Until.
	Now time.Time
	// Limit bounds the rows of the top report; default 10.
	Limit int
	// BudgetMicros, when positive, is the monthly budget the burn report
	// compares its forecast to.
	BudgetMicros int64
}

// ReportResult is a report's table.
type ReportResult struct {
	Columns []string
	// Types are the ClickHouse column types, e.g. "UInt64".
	Types []string
	Rows  [][]any
}

type reportData struct {
	Database string
	By       string
	ByName   string
}

// RenderReport returns the SQL of a report for database and the bound
// arguments to run it with.
func RenderReport(name, database string, p ReportParams) (string, []any, error) {
	i := slices.IndexFunc(reports, func(r Report) bool { return r.Name == name })
	if i < 0 {
		names := make([]string, len(reports))
		for j, r := range reports {
			names[j] = r.Name
		}
		return "", nil, fmt.Errorf("unknown report %q (want one of %s)", name, strings.Join(names, ", "))
	}
	r := reports[i]
	if err := validIdentifier(database); err != nil {
		return "", nil, fmt.Errorf("database: %w", err)
	}
	by := p.By
	if by == "" {
		by = r.DefaultBy
	}
	data := reportData{Database: database}
	if r.By {
		d, ok := dimensions[by]
		if !ok {
			return "", nil, fmt.Errorf("report %s: unknown dimension %q (want one of %s)", name, by, strings.Join(Dimensions(), ", "))
		}
		data.By, data.ByName = d.expr, d.name
	} else if p.By != "" {
		return "", nil, fmt.Errorf("report %s: groups by provider and model; drop --by", name)
	}
	src, err := queriesFS.ReadFile("queries/" + name + ".sql")
	if err != nil {
		return "", nil, fmt.Errorf("report %s: %w", name, err)
	}
	tmpl, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return "", nil, fmt.Errorf("report %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return "", nil, fmt.Errorf("report %s: %w", name, err)
	}
	until := p.Until
	if until.IsZero() {
		until = time.Now()
	}
	since := p.Since
	if since.IsZero() {
		since = until.Add(-7 * 24 * time.Hour)
	}
	if !since.Before(until) {
		return "", nil, fmt.Errorf("report %s: since %s is not before until %s", name, since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	now := p.Now
	if now.IsZero() {
		now = until
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 10
	}
	if p.BudgetMicros < 0 {
		return "", nil, fmt.Errorf("report %s: negative budget", name)
	}
	args := []any{
		clickhouse.Named("since", since.Unix()),
		clickhouse.Named("until", until.Unix()),
		clickhouse.Named("now", now.Unix()),
		clickhouse.Named("limit", limit),
		clickhouse.Named("budget_micros", p.BudgetMicros),
	}
	return stripComments(buf.String()), args, nil
}

// stripComments drops full-line "--" comments, which would otherwise
// reach the server with every query.
func stripComments(sql string) string {
	var b strings.Builder
	for line := range strings.Lines(sql) {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		b.WriteString(line)
	}
	return strings.TrimSpace(b.String())
}

// Report runs a FinOps report and returns its table.
func (c *ClickHouse) Report(ctx context.Context, name string, p ReportParams) (*ReportResult, error) {
	sql, args, err := RenderReport(name, c.database, p)
	if err != nil {
		return nil, err
	}
	rows, err := c.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", name, err)
	}
	defer rows.Close()
	res := &ReportResult{Columns: rows.Columns()}
	cts := rows.ColumnTypes()
	for _, ct := range cts {
		res.Types = append(res.Types, ct.DatabaseTypeName())
	}
	for rows.Next() {
		ptrs := make([]any, len(cts))
		for i, ct := range cts {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("report %s: scan: %w", name, err)
		}
		row := make([]any, len(ptrs))
		for i, p := range ptrs {
			row[i] = reflect.ValueOf(p).Elem().Interface()
		}
		res.Rows = append(res.Rows, row)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("report %s: %w", name, err)
	}
	return res, nil
}
