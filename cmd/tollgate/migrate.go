package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/proxy/gateway"
)

// clickhouseFlags select the ClickHouse of the analytics commands: the
// analytics.clickhouse section of --config, with --clickhouse and
// --database overriding it.
type clickhouseFlags struct {
	config   string
	addr     string
	database string
	timeout  time.Duration
}

func (f *clickhouseFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", os.Getenv("TOLLGATE_CONFIG"), "configuration file whose analytics.clickhouse section to use")
	fs.StringVar(&f.addr, "clickhouse", "", "ClickHouse native-protocol address host:port (overrides the config; comma-separated for several)")
	fs.StringVar(&f.database, "database", "", "database (default: the config's, else tollgate)")
	fs.DurationVar(&f.timeout, "timeout", time.Minute, "bound on the whole command")
}

// clickhouseConfig resolves the flags to a ClickHouseConfig.
func (f *clickhouseFlags) clickhouseConfig() (analytics.ClickHouseConfig, error) {
	var cfg analytics.ClickHouseConfig
	if f.config != "" {
		c, err := gateway.Load(f.config, os.Environ())
		if err != nil {
			return cfg, err
		}
		cfg = c.Analytics.ClickHouse
	}
	if f.addr != "" {
		cfg.Addr = strings.Split(f.addr, ",")
	}
	if f.database != "" {
		cfg.Database = f.database
	}
	if len(cfg.Addr) == 0 {
		return cfg, errors.New("no ClickHouse configured: pass --clickhouse host:port, or --config FILE with analytics.clickhouse.addr set")
	}
	return cfg, cfg.Validate()
}

func (f *clickhouseFlags) open(ctx context.Context) (*analytics.ClickHouse, error) {
	cfg, err := f.clickhouseConfig()
	if err != nil {
		return nil, err
	}
	return analytics.OpenClickHouse(ctx, cfg)
}

const migrateUsage = `usage: tollgate migrate [--clickhouse ADDR | --config FILE] [--database DB] [--dry-run]

Creates the analytics database and applies the schema migrations it lacks
(recorded in DB.schema_migrations), with DDL adapted to the server version.
'tollgate serve' does the same at start; run this to migrate ahead of a
rollout or from CI. --dry-run prints the pending statements instead.
`

// migrate applies the analytics schema migrations.
func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, migrateUsage); fs.PrintDefaults() }
	var chf clickhouseFlags
	chf.register(fs)
	dryRun := fs.Bool("dry-run", false, "print the pending migrations' statements, apply nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("migrate: unexpected argument %q\n%s", fs.Arg(0), migrateUsage)
	}
	ctx, cancel := context.WithTimeout(ctx, chf.timeout)
	defer cancel()
	ch, err := chf.open(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer ch.Close()
	before, err := ch.AppliedMigrations(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	cfg, _ := chf.clickhouseConfig()
	db := cfg.Database
	if db == "" {
		db = analytics.DefaultDatabase
	}
	migs, err := analytics.Migrations(ch.ServerVersion(), analytics.SchemaOptions{Database: db, RetentionDays: cfg.RetentionDays})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var pending []analytics.Migration
	for _, m := range migs {
		if !slices.Contains(before, m.Version) {
			pending = append(pending, m)
		}
	}
	if *dryRun {
		fmt.Fprintf(stdout, "-- ClickHouse %s, database %s: %d pending migrations\n", ch.ServerVersion(), db, len(pending))
		for _, m := range pending {
			fmt.Fprintf(stdout, "\n-- %04d_%s\n", m.Version, m.Name)
			for _, s := range m.Statements {
				fmt.Fprintf(stdout, "%s;\n", s)
			}
		}
		return nil
	}
	if err := ch.Migrate(ctx); err != nil {
		return err
	}
	for _, m := range pending {
		fmt.Fprintf(stdout, "applied %04d_%s\n", m.Version, m.Name)
	}
	latest := 0
	if len(migs) > 0 {
		latest = migs[len(migs)-1].Version
	}
	fmt.Fprintf(stdout, "ok: database %s on ClickHouse %s is at schema version %d (%d applied now)\n", db, ch.ServerVersion(), latest, len(pending))
	return nil
}
