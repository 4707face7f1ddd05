// Command tollgate is the Tollgate AI gateway: a policy-as-code proxy in
// front of LLM providers.
//
//	tollgate serve [--config FILE] [--sim ADDR]   run the gateway
//	tollgate sim [flags]                          run the provider simulator
//	tollgate check [--config FILE]                validate config and policies
//	tollgate keys new [flags]                     make an API key
//	tollgate policy eval --input FILE [flags]     try a policy on a request
//	tollgate migrate [flags]                      apply the analytics schema migrations
//	tollgate usage REPORT [flags]                 FinOps reports from ClickHouse
//	tollgate version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/gateway"
	"github.com/tollgate/tollgate/proxy/sim"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `tollgate: a policy-as-code AI gateway

Usage:
  tollgate serve [--config FILE] [--sim ADDR]   run the gateway (no --config: embedded default)
  tollgate sim [--listen ADDR] [flags]          run the OpenAI-compatible provider simulator
  tollgate check [--config FILE]                validate the configuration and compile the policies
  tollgate keys new --subject NAME [flags]      make an API key and print its config entry
  tollgate policy eval --input BODY.json        show the input and decision for a request
  tollgate migrate [--clickhouse ADDR]          apply the analytics schema migrations
  tollgate usage REPORT [--by team] [--since 7d] FinOps reports (spend, top, burn, ...) from ClickHouse
  tollgate version                              print the version

Run 'tollgate COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "tollgate:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "sim":
		return runSim(ctx, args[1:], stderr)
	case "check":
		return check(ctx, args[1:], stdout, stderr)
	case "keys":
		return keysCommand(ctx, args[1:], stdout, stderr)
	case "migrate":
		return migrate(ctx, args[1:], stdout, stderr)
	case "usage":
		return usageCmd(ctx, args[1:], stdout, stderr)
	case "policy":
		return policy(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "tollgate", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("TOLLGATE_CONFIG"), "configuration file (default: the embedded default configuration)")
	simAddr := fs.String("sim", "", "also run the provider simulator on this address, e.g. 127.0.0.1:8081")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := gateway.Load(*configPath, os.Environ())
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	slog.SetDefault(log)

	if *simAddr != "" {
		counter, err := tokens.New()
		if err != nil {
			return err
		}
		srv, err := sim.New(sim.Config{}, counter)
		if err != nil {
			return err
		}
		sl, err := net.Listen("tcp", *simAddr)
		if err != nil {
			return fmt.Errorf("simulator: %w", err)
		}
		hs := &http.Server{Handler: srv}
		go func() { _ = hs.Serve(sl) }()
		defer hs.Close()
		log.Info("simulator listening", "addr", sl.Addr().String())
	}

	g, err := gateway.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	log.Info("gateway listening", "addr", l.Addr().String())
	if *configPath == "" {
		fmt.Fprintf(stdout, `
Tollgate is running with the embedded default configuration.

  URL:      http://%[1]s/v1
  Demo key: %[2]s

Try it:
  curl -s http://%[1]s/v1/chat/completions \
    -H 'Authorization: Bearer %[2]s' -H 'Content-Type: application/json' \
    -d '{"model":"echo","messages":[{"role":"user","content":"Hello! My email is ana@example.com"}]}'

Metrics at http://%[1]s/metrics; inference-log events in %[3]s. Ctrl-C stops.

`, l.Addr().String(), gateway.DemoKey, cfg.Analytics.File)
	}
	return g.Run(ctx, l)
}

func runSim(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on")
	var cfg sim.Config
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	counter, err := tokens.New()
	if err != nil {
		return err
	}
	srv, err := sim.New(cfg, counter)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log := newLogger(stderr, "text", "info")
	log.Info("simulator listening", "addr", l.Addr().String())
	hs := &http.Server{Handler: srv}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return hs.Close()
	}
}

func check(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("TOLLGATE_CONFIG"), "configuration file (default: the embedded default configuration)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := gateway.Load(*configPath, os.Environ())
	if err != nil {
		return err
	}
	eng, err := engine.New(cfg.Policy, nil)
	if err != nil {
		return err
	}
	p, err := gateway.LoadPolicy(ctx, eng, cfg.Policy)
	if err != nil {
		return err
	}
	name := *configPath
	if name == "" {
		name = "embedded default config"
	}
	fmt.Fprintf(stdout, "ok: %s is valid; policy bundle %s (revision %s, %d modules) compiles\n", name, p.Source, p.Revision, p.Modules)
	return nil
}

func keys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		return errors.New("usage: tollgate keys new --subject NAME [--team T] [--org O] [--roles r1,r2] [--kind user|service|agent]")
	}
	fs := flag.NewFlagSet("keys new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	subject := fs.String("subject", "", "the user or service that owns the key (required)")
	team := fs.String("team", "", "team, for budgets and chargeback")
	org := fs.String("org", "", "organisation")
	roles := fs.String("roles", "developer", "comma-separated roles")
	kind := fs.String("kind", "user", "user, service or agent")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *subject == "" {
		return errors.New("keys new: --subject is required (the owner of the key)")
	}
	key, id, hash, err := auth.NewKey()
	if err != nil {
		return err
	}
	var rs []string
	for _, r := range strings.Split(*roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			rs = append(rs, r)
		}
	}
	entry := auth.KeyConfig{ID: id, Hash: hash, Subject: *subject, Kind: *kind, Team: *team, Org: *org, Roles: rs}
	if err := (&auth.Config{APIKeys: []auth.KeyConfig{entry}}).Validate(); err != nil {
		return err
	}
	// Encode rather than paste the values: flag values such as "null",
	// "#ops" or "[acme]" must read back as the same strings.
	var yb strings.Builder
	enc := yaml.NewEncoder(&yb)
	enc.SetIndent(2)
	if err := enc.Encode([]keyEntry{{entry.ID, entry.Hash, entry.Subject, entry.Kind, entry.Team, entry.Org, rs}}); err != nil {
		return fmt.Errorf("keys new: encode entry: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("keys new: encode entry: %w", err)
	}
	var indented strings.Builder
	for _, line := range strings.SplitAfter(yb.String(), "\n") {
		if line != "" {
			indented.WriteString("    " + line)
		}
	}
	fmt.Fprintf(stdout, `API key (shown once; give it to %s, store it nowhere else):

  %s

Add this entry under auth.api_keys in your configuration:

%s`, *subject, key, indented.String())
	return nil
}

// keyEntry is the auth.api_keys entry that 'keys new' prints.
type keyEntry struct {
	ID      string   `yaml:"id"`
	Hash    string   `yaml:"hash"`
	Subject string   `yaml:"subject"`
	Kind    string   `yaml:"kind"`
	Team    string   `yaml:"team"`
	Org     string   `yaml:"org"`
	Roles   []string `yaml:"roles,flow"`
}
