package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate/tollgate/analytics"
)

const usageUsage = `usage: tollgate usage REPORT [--by DIM] [--since 7d] [--until T] [--format table|csv|json] [flags]

FinOps reports on the inference log in ClickHouse (analytics/queries/*.sql).
Each request counts once, even when the spool delivered it twice.

Reports:
%s
  quota      live quota counters of a scope, from Redis (tollgate usage quota --help)

Dimensions for --by: %s.
Times (--since, --until, --now): a duration back from now (30m, 12h, 7d),
a date (2026-11-01, UTC) or RFC 3339.

Examples:
  tollgate usage spend --by team --since 7d --clickhouse 127.0.0.1:9000
  tollgate usage top --by key --limit 5 --format csv --config tollgate.yaml
  tollgate usage burn --by team --budget 5000
`

func usageText() string {
	var b strings.Builder
	for _, r := range analytics.Reports() {
		by := ""
		if r.By {
			by = " (--by, default " + r.DefaultBy + ")"
		}
		fmt.Fprintf(&b, "  %-10s %s%s\n", r.Name, r.Description, by)
	}
	return fmt.Sprintf(usageUsage, b.String(), strings.Join(analytics.Dimensions(), ", "))
}

// usageCmd runs a FinOps report and prints it.
func usageCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "quota" {
		return usageQuota(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("usage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usageText()); fs.PrintDefaults() }
	var chf clickhouseFlags
	chf.register(fs)
	by := fs.String("by", "", "dimension to group by")
	since := fs.String("since", "7d", "start of the period")
	until := fs.String("until", "", "end of the period, exclusive (default now)")
	nowFlag := fs.String("now", "", "reference time of the burn report (default --until)")
	limit := fs.Int("limit", 10, "rows of the top report")
	budget := fs.Float64("budget", 0, "monthly budget in USD for the burn report's forecast_budget_pct")
	format := fs.String("format", "table", "output: table, csv or json")
	// The report may come before the flags: tollgate usage spend --by team.
	var report string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		report, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if report == "" && fs.NArg() > 0 {
		report = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("usage: unexpected argument %q", fs.Arg(0))
	}
	if report == "" {
		fmt.Fprint(stderr, usageText())
		return fmt.Errorf("usage: name a report")
	}
	switch *format {
	case "table", "csv", "json":
	default:
		return fmt.Errorf("usage: invalid --format %q (want table, csv or json)", *format)
	}
	now := time.Now().UTC()
	var p analytics.ReportParams
	var err error
	if p.Since, err = parseWhen(*since, now); err != nil {
		return fmt.Errorf("usage: --since: %w", err)
	}
	if *until != "" {
		if p.Until, err = parseWhen(*until, now); err != nil {
			return fmt.Errorf("usage: --until: %w", err)
		}
	} else {
		p.Until = now
	}
	if *nowFlag != "" {
		if p.Now, err = parseWhen(*nowFlag, now); err != nil {
			return fmt.Errorf("usage: --now: %w", err)
		}
	}
	if *budget < 0 || math.IsNaN(*budget) {
		return fmt.Errorf("usage: --budget %v: want a positive amount in USD", *budget)
	}
	p.By, p.Limit, p.BudgetMicros = *by, *limit, int64(math.Round(*budget*1e6))
	// Check the report and flags before connecting.
	if _, _, err := analytics.RenderReport(report, analytics.DefaultDatabase, p); err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, chf.timeout)
	defer cancel()
	ch, err := chf.open(ctx)
	if err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	defer ch.Close()
	res, err := ch.Report(ctx, report, p)
	if err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	switch *format {
	case "csv":
		return writeCSV(stdout, res)
	case "json":
		return writeJSON(stdout, res)
	}
	return writeTable(stdout, res)
}

// parseWhen parses a time flag: a duration back from now with an h, m, s
// or d unit, a date (UTC) or RFC 3339.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 {
			return now.AddDate(0, 0, -days), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a duration (7d, 12h), a date (2026-11-01) or RFC 3339", s)
}

// formatCell renders one value: days as dates, other times in RFC 3339,
// floats without exponent and with at most 6 decimals.
func formatCell(v any) string {
	switch x := v.(type) {
	case time.Time:
		if x.Hour() == 0 && x.Minute() == 0 && x.Second() == 0 && x.Nanosecond() == 0 {
			return x.Format(time.DateOnly)
		}
		return x.UTC().Format(time.RFC3339)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return ""
		}
		s := strconv.FormatFloat(x, 'f', 6, 64)
		s = strings.TrimRight(s, "0")
		return strings.TrimSuffix(s, ".")
	case float32:
		return formatCell(float64(x))
	case string:
		return x
	}
	return fmt.Sprint(v)
}

func numericType(t string) bool {
	return strings.HasPrefix(t, "UInt") || strings.HasPrefix(t, "Int") || strings.HasPrefix(t, "Float") || strings.HasPrefix(t, "Decimal")
}

// writeTable prints an aligned table: text left, numbers right, a rule
// under the header.
func writeTable(w io.Writer, res *analytics.ReportResult) error {
	cellsOf := make([][]string, len(res.Rows))
	widths := make([]int, len(res.Columns))
	for i, c := range res.Columns {
		widths[i] = utf8.RuneCountInString(c)
	}
	for r, row := range res.Rows {
		cellsOf[r] = make([]string, len(row))
		for i, v := range row {
			cellsOf[r][i] = formatCell(v)
			widths[i] = max(widths[i], utf8.RuneCountInString(cellsOf[r][i]))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if numericType(res.Types[i]) {
				b.WriteString(pad + c)
			} else if i == len(cells)-1 {
				b.WriteString(c)
			} else {
				b.WriteString(c + pad)
			}
		}
		b.WriteString("\n")
	}
	line(res.Columns)
	rule := make([]string, len(widths))
	for i, wd := range widths {
		rule[i] = strings.Repeat("-", wd)
	}
	line(rule)
	for _, cells := range cellsOf {
		line(cells)
	}
	if len(res.Rows) == 0 {
		b.WriteString("(no rows)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeCSV(w io.Writer, res *analytics.ReportResult) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(res.Columns); err != nil {
		return err
	}
	for _, row := range res.Rows {
		rec := make([]string, len(row))
		for i, v := range row {
			rec[i] = formatCell(v)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeJSON prints an array of objects with keys in column order; numbers
// stay numbers, days become "2006-01-02".
func writeJSON(w io.Writer, res *analytics.ReportResult) error {
	var b strings.Builder
	b.WriteString("[")
	for r, row := range res.Rows {
		if r > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n  {")
		for i, v := range row {
			if i > 0 {
				b.WriteString(", ")
			}
			k, _ := json.Marshal(res.Columns[i])
			b.Write(k)
			b.WriteString(": ")
			var val []byte
			var err error
			switch x := v.(type) {
			case time.Time, string:
				val, err = json.Marshal(formatCell(x))
			case float64:
				if math.IsNaN(x) || math.IsInf(x, 0) {
					val = []byte("null")
				} else {
					val = []byte(formatCell(x))
				}
			default:
				val, err = json.Marshal(v)
			}
			if err != nil {
				return fmt.Errorf("encode %s: %w", res.Columns[i], err)
			}
			b.Write(val)
		}
		b.WriteString("}")
	}
	if len(res.Rows) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	_, err := io.WriteString(w, b.String())
	return err
}
