package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/tollgate/tollgate/proxy/gateway"
	"github.com/tollgate/tollgate/proxy/quota"
)

const quotaUsage = `usage: tollgate usage quota --scope SCOPE [--window W] [--reset] [--config FILE | --redis ADDR] [--format table|json]

Shows the live quota counters of a scope (key:<id>, team:<name>, user:<name>,
org:<name>, or any scope a policy builds) for the current window, as the
gateways share them in Redis; --reset sets them to zero. Without --window,
every window (minute, hour, day, month) is shown.
`

// usageQuota shows or resets a scope's live counters.
func usageQuota(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("usage quota", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, quotaUsage); fs.PrintDefaults() }
	scope := fs.String("scope", "", "the scope, e.g. team:ml")
	window := fs.String("window", "", "minute, hour, day or month (default: all four)")
	reset := fs.Bool("reset", false, "set the counters of the window (--window required) to zero")
	configPath := fs.String("config", "", "the gateway's configuration file (its quota section)")
	redisAddr := fs.String("redis", "", "Redis host:port, instead of --config")
	format := fs.String("format", "table", "output: table or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *scope == "" {
		return fmt.Errorf("usage quota: --scope is required, e.g. --scope team:ml")
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("usage quota: invalid --format %q (want table or json)", *format)
	}
	windows := []quota.Window{quota.Minute, quota.Hour, quota.Day, quota.Month}
	if *window != "" {
		w, err := quota.ParseWindow(*window)
		if err != nil {
			return fmt.Errorf("usage quota: --window: %w", err)
		}
		windows = []quota.Window{w}
	} else if *reset {
		return fmt.Errorf("usage quota: --reset needs --window (minute, hour, day or month)")
	}
	var qc quota.Config
	switch {
	case *redisAddr != "" && *configPath != "":
		return fmt.Errorf("usage quota: give --config or --redis, not both")
	case *redisAddr != "":
		qc = quota.Config{Backend: quota.BackendRedis, Redis: quota.RedisEndpoint{Addr: *redisAddr}}
	case *configPath != "":
		cfg, err := gateway.Load(*configPath, os.Environ())
		if err != nil {
			return fmt.Errorf("usage quota: %w", err)
		}
		qc = cfg.Quota
	default:
		return fmt.Errorf("usage quota: give --config FILE or --redis ADDR (the counters live in the gateways' Redis)")
	}
	if qc.Backend != quota.BackendRedis {
		return fmt.Errorf("usage quota: the quota backend is %q; only Redis counters are shared and readable from outside a gateway", qc.Backend)
	}
	l, closer, err := quota.Open(qc, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("usage quota: %w", err)
	}
	defer closer.Close()
	type counters interface {
		Usage(ctx context.Context, now time.Time, limit quota.Limit) (quota.Amount, error)
		Reset(ctx context.Context, now time.Time, limit quota.Limit) error
	}
	c, ok := l.(counters)
	if !ok {
		return fmt.Errorf("usage quota: this quota backend cannot report counters")
	}
	now := time.Now()
	if *reset {
		if err := c.Reset(ctx, now, quota.Limit{Scope: *scope, Window: windows[0]}); err != nil {
			return fmt.Errorf("usage quota: %w", err)
		}
		fmt.Fprintf(stderr, "reset %s for the current %s\n", *scope, windows[0])
	}
	type row struct {
		Window    string  `json:"window"`
		Tokens    int64   `json:"tokens"`
		Requests  int64   `json:"requests"`
		USD       float64 `json:"usd"`
		USDMicros int64   `json:"usd_micros"`
	}
	var rows []row
	for _, w := range windows {
		u, err := c.Usage(ctx, now, quota.Limit{Scope: *scope, Window: w})
		if err != nil {
			return fmt.Errorf("usage quota: %w", err)
		}
		rows = append(rows, row{Window: string(w), Tokens: u.Tokens, Requests: u.Requests, USD: float64(u.USDMicros) / 1e6, USDMicros: u.USDMicros})
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"scope": *scope, "at": now.UTC(), "windows": rows})
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "window\ttokens\trequests\tusd\t\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.6f\t\n", r.Window, r.Tokens, r.Requests, r.USD)
	}
	return tw.Flush()
}
