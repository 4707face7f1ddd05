package analytics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ClickHouseConfig is the analytics.clickhouse section of the configuration.
type ClickHouseConfig struct {
	// Addr lists native-protocol addresses, host:port (port 9000 by default
	// on servers). Several addresses fail over in order.
	Addr []string `yaml:"addr"`
	// Database holds the tables; default "tollgate".
	Database string `yaml:"database"`
	// Username defaults to "default".
	Username string `yaml:"username"`
	// Password is a secret: set it from env or a file, never log it.
	Password string `yaml:"password"`
	// DialTimeout bounds connecting; default 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// RetentionDays, when positive, expires inference_log and decision_log
	// rows after that many days on servers with TTL (19.6 and later); see
	// SchemaOptions.
	RetentionDays int `yaml:"retention_days"`
}

// Default ClickHouseConfig values.
const (
	DefaultDatabase    = "tollgate"
	DefaultUsername    = "default"
	DefaultDialTimeout = 5 * time.Second
)

// withDefaults returns c with zero fields set to their defaults.
func (c ClickHouseConfig) withDefaults() ClickHouseConfig {
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if c.Username == "" {
		c.Username = DefaultUsername
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	return c
}

// Validate reports every problem in c; zero fields count as their defaults.
func (c ClickHouseConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.Addr) == 0 {
		errs = append(errs, errors.New("analytics.clickhouse.addr: empty; set host:port of the native protocol, e.g. 127.0.0.1:9000"))
	}
	for i, a := range c.Addr {
		if a == "" {
			errs = append(errs, fmt.Errorf("analytics.clickhouse.addr[%d]: empty; set host:port", i))
		}
	}
	if err := validIdentifier(c.Database); err != nil {
		errs = append(errs, fmt.Errorf("analytics.clickhouse.database: %w", err))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("analytics.clickhouse.dial_timeout: %s is negative; use a duration such as \"5s\"", c.DialTimeout))
	}
	if c.RetentionDays < 0 {
		errs = append(errs, fmt.Errorf("analytics.clickhouse.retention_days: %d is negative; use 0 to keep rows forever", c.RetentionDays))
	}
	return errors.Join(errs...)
}

// LogValue redacts the password.
func (c ClickHouseConfig) LogValue() slog.Value {
	pw := ""
	if c.Password != "" {
		pw = "REDACTED"
	}
	return slog.GroupValue(
		slog.Any("addr", c.Addr),
		slog.String("database", c.Database),
		slog.String("username", c.Username),
		slog.String("password", pw),
		slog.Duration("dial_timeout", c.DialTimeout),
		slog.Int("retention_days", c.RetentionDays),
	)
}

// ClickHouse inserts events into the inference_log table (Insert) and
// decisions into the decision_log table (InsertDecisions) over the native
// protocol. It is safe for concurrent use.
type ClickHouse struct {
	conn        driver.Conn
	database    string
	retention   int
	version     ServerVersion
	insertSQL   string
	decisionSQL string
}

// insertColumns names every column Insert writes, in the order of
// appendEvent's values. Naming columns is required by 18.16 with
// clickhouse-go and keeps inserts valid when columns are added.
const insertColumns = "request_id, timestamp, subject, key_id, team, org, kind, " +
	"model_requested, model_routed, provider, status, allowed, deny_code, bundle_revision, " +
	"pii_types, pii_count, prompt_tokens_estimated, prompt_tokens, completion_tokens, cached_tokens, " +
	"cost_micros, cost_usd, latency_ms, ttft_ms, stream, cut_off, attempts, error, path, client_ip, " +
	"user, agent_chain, fallbacks, pii_counts, tag_keys, tag_values, prompt, response, " +
	"attempt_targets, attempt_outcomes, attempt_latency_ms"

// decisionColumns names every column InsertDecisions writes, in the order
// of appendDecision's values.
const decisionColumns = "request_id, timestamp, subject, key_id, team, org, kind, " +
	"model_requested, bundle_revision, allowed, deny_codes, route, fallbacks, " +
	"mask_types, mask_actions, limits, store_prompt, eval_micros, error, " +
	"shadow_revision, shadow_differs, shadow_allowed, shadow_deny_codes, shadow_error"

// OpenClickHouse connects, checks the server answers and reads its version.
// It does not create the schema; call Migrate.
func OpenClickHouse(ctx context.Context, cfg ClickHouseConfig) (*ClickHouse, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: cfg.Addr,
		// No database here: it may not exist before Migrate, and every
		// statement names it anyway.
		Auth: clickhouse.Auth{
			Username: cfg.Username,
			Password: cfg.Password,
		},
		DialTimeout: cfg.DialTimeout,
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", cfg.Addr, err)
	}
	var raw string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&raw); err != nil {
		return nil, errors.Join(fmt.Errorf("clickhouse %v: select version(): %w", cfg.Addr, err), conn.Close())
	}
	v, err := ParseServerVersion(raw)
	if err != nil {
		return nil, errors.Join(err, conn.Close())
	}
	return &ClickHouse{
		conn:        conn,
		database:    cfg.Database,
		retention:   cfg.RetentionDays,
		version:     v,
		insertSQL:   "INSERT INTO " + cfg.Database + ".inference_log (" + insertColumns + ")",
		decisionSQL: "INSERT INTO " + cfg.Database + ".decision_log (" + decisionColumns + ")",
	}, nil
}

// ServerVersion returns the version the server reported when opened.
func (c *ClickHouse) ServerVersion() ServerVersion { return c.version }

// Migrate creates the database and applies, in order, every migration not
// yet recorded in schema_migrations, rendering the DDL for the server's
// version. Running it again, or from several gateways at once, is safe.
func (c *ClickHouse) Migrate(ctx context.Context) error {
	if err := c.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+c.database); err != nil {
		return fmt.Errorf("migrate: create database %s: %w", c.database, err)
	}
	boot, err := bootstrapSQL(c.database)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, stmt := range boot {
		if err := c.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("migrate: create schema_migrations: %w", err)
		}
	}
	applied, err := c.appliedMigrations(ctx)
	if err != nil {
		return err
	}
	migs, err := Migrations(c.version, SchemaOptions{Database: c.database, RetentionDays: c.retention})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range migs {
		if applied[m.Version] {
			continue
		}
		for i, stmt := range m.Statements {
			if err := c.conn.Exec(ctx, stmt); err != nil && !columnExists(stmt, err) {
				return fmt.Errorf("migrate: %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := c.recordMigration(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// columnExists reports whether err says the column an ADD COLUMN statement
// adds is there already: the statement ran before, in a migration that was
// interrupted. Servers before 19.x lack ADD COLUMN IF NOT EXISTS.
func columnExists(stmt string, err error) bool {
	var ex *clickhouse.Exception
	return strings.Contains(stmt, " ADD COLUMN ") && errors.As(err, &ex) && ex.Code == codeIllegalColumn &&
		strings.Contains(ex.Message, "already exists")
}

// codeIllegalColumn is ClickHouse's ILLEGAL_COLUMN error code.
const codeIllegalColumn = 44

// AppliedMigrations returns the versions recorded in schema_migrations,
// ascending; none when the database or table does not exist yet.
func (c *ClickHouse) AppliedMigrations(ctx context.Context) ([]int, error) {
	var exists uint8
	if err := c.conn.QueryRow(ctx, "SELECT count() > 0 FROM system.tables WHERE database = @db AND name = 'schema_migrations'",
		clickhouse.Named("db", c.database)).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	if exists == 0 {
		return nil, nil
	}
	applied, err := c.appliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(applied))
	for v := range applied {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil
}

// appliedMigrations returns the versions recorded in schema_migrations.
func (c *ClickHouse) appliedMigrations(ctx context.Context) (map[int]bool, error) {
	rows, err := c.conn.Query(ctx, "SELECT DISTINCT version FROM "+c.database+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := make(map[int]bool)
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		applied[int(v)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	return applied, nil
}

func (c *ClickHouse) recordMigration(ctx context.Context, m Migration) error {
	batch, err := c.conn.PrepareBatch(ctx,
		"INSERT INTO "+c.database+".schema_migrations (version, name, server_version, applied_at)")
	if err != nil {
		return fmt.Errorf("migrate: record %04d_%s: %w", m.Version, m.Name, err)
	}
	if err := batch.Append(uint32(m.Version), m.Name, c.version.String(), time.Now()); err != nil {
		return errors.Join(fmt.Errorf("migrate: record %04d_%s: %w", m.Version, m.Name, err), batch.Abort())
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("migrate: record %04d_%s: %w", m.Version, m.Name, err)
	}
	return nil
}

// Insert writes events as one batch into inference_log. Events with a zero
// Time are stamped with the current time. It does not retain events.
func (c *ClickHouse) Insert(ctx context.Context, events []Event) error {
	return insertBatch(ctx, c, c.insertSQL, "events", events, eventRequestID, appendEvent)
}

// InsertDecisions writes decisions as one batch into decision_log.
// Decisions with a zero Time are stamped with the current time. It does not
// retain decisions. DecisionInserterFunc(c.InsertDecisions) is a
// DecisionInserter.
func (c *ClickHouse) InsertDecisions(ctx context.Context, decisions []DecisionEvent) error {
	return insertBatch(ctx, c, c.decisionSQL, "decisions", decisions, decisionRequestID, appendDecision)
}

// insertBatch sends records as one batch of the INSERT insertSQL, whose
// named columns appendRow fills; noun names the records in errors.
func insertBatch[T any](ctx context.Context, c *ClickHouse, insertSQL, noun string, records []T,
	requestID func(*T) string, appendRow func(driver.Batch, *T, time.Time) error,
) error {
	if len(records) == 0 {
		return nil
	}
	batch, err := c.conn.PrepareBatch(ctx, insertSQL)
	if err != nil {
		return fmt.Errorf("clickhouse insert %d %s: prepare: %w", len(records), noun, err)
	}
	now := time.Now()
	for i := range records {
		if err := appendRow(batch, &records[i], now); err != nil {
			return errors.Join(
				fmt.Errorf("clickhouse insert: append request %s: %w", requestID(&records[i]), err),
				batch.Abort())
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse insert %d %s: send: %w", len(records), noun, err)
	}
	return nil
}

// appendEvent appends e's values in insertColumns order, converted to the
// exact Go types of the column types.
func appendEvent(b driver.Batch, e *Event, now time.Time) error {
	ts := e.Time
	if ts.IsZero() {
		ts = now
	}
	keys, values := sortedTags(e.Tags)
	targets := make([]string, len(e.AttemptLog))
	outcomes := make([]string, len(e.AttemptLog))
	latencies := make([]float64, len(e.AttemptLog))
	for i, a := range e.AttemptLog {
		targets[i], outcomes[i], latencies[i] = a.Target, a.Outcome, a.LatencyMS
	}
	return b.Append(
		e.RequestID,
		ts,
		e.Subject,
		e.KeyID,
		e.Team,
		e.Org,
		e.Kind,
		e.ModelRequested,
		e.ModelRouted,
		e.Provider,
		clampUint16(int64(e.Status)),
		e.Allowed,
		e.DenyCode,
		e.BundleRevision,
		nonNil(e.PIITypes),
		clampUint32(int64(e.PIICount)),
		clampUint32(e.PromptTokensEstimated),
		clampUint32(e.PromptTokens),
		clampUint32(e.CompletionTokens),
		clampUint32(e.CachedTokens),
		e.CostMicros,
		e.CostUSD(),
		e.LatencyMS,
		e.TTFTMS,
		e.Stream,
		e.CutOff,
		clampUint8(int64(e.Attempts)),
		e.Error,
		e.Path,
		e.ClientIP,
		e.User,
		nonNil(e.AgentChain),
		clampUint8(int64(e.Fallbacks)),
		uint32s(e.PIICounts),
		keys,
		values,
		nullable(e.Prompt),
		nullable(e.Response),
		targets,
		outcomes,
		latencies,
	)
}

// sortedTags returns tags as key and value arrays sorted by key.
func sortedTags(tags map[string]string) (keys, values []string) {
	keys = make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	values = make([]string, len(keys))
	for i, k := range keys {
		values[i] = tags[k]
	}
	return keys, values
}

func uint32s(ns []int) []uint32 {
	out := make([]uint32, len(ns))
	for i, n := range ns {
		out[i] = clampUint32(int64(n))
	}
	return out
}

// nullable maps "" to NULL, for the Nullable(String) columns.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// appendDecision appends d's values in decisionColumns order, converted to
// the exact Go types of the column types.
func appendDecision(b driver.Batch, d *DecisionEvent, now time.Time) error {
	ts := d.Time
	if ts.IsZero() {
		ts = now
	}
	return b.Append(
		d.RequestID,
		ts,
		d.Subject,
		d.KeyID,
		d.Team,
		d.Org,
		d.Kind,
		d.ModelRequested,
		d.BundleRevision,
		d.Allowed,
		nonNil(d.DenyCodes),
		nonNil(d.Route),
		nonNil(d.Fallbacks),
		nonNil(d.MaskTypes),
		nonNil(d.MaskActions),
		nonNil(d.Limits),
		d.StorePrompt,
		clampUint32(d.EvalMicros),
		d.Error,
		d.ShadowRevision,
		d.ShadowDiffers,
		d.ShadowAllowed,
		nonNil(d.ShadowDenyCodes),
		d.ShadowError,
	)
}

// nonNil returns s, or an empty slice for nil, which the driver needs for
// Array columns.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Close closes the connections.
func (c *ClickHouse) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("close clickhouse: %w", err)
	}
	return nil
}

func clampUint8(n int64) uint8   { return uint8(clamp(n, math.MaxUint8)) }
func clampUint16(n int64) uint16 { return uint16(clamp(n, math.MaxUint16)) }
func clampUint32(n int64) uint32 { return uint32(clamp(n, math.MaxUint32)) }

func clamp(n, maxVal int64) int64 {
	return min(max(n, 0), maxVal)
}
