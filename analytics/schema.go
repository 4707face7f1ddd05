package analytics

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/template"
)

// schemaFS holds the DDL. Every file is a text/template rendered with
// ddlData; statements end with ";" at the end of a line.
//
// migrations/NNNN_name.sql are applied in order of NNNN, each once per
// database. ClickHouse has no transactional DDL, so every statement must be
// idempotent (IF NOT EXISTS, IF EXISTS): a migration interrupted halfway is
// simply run again. Never edit a released migration; add the next number.
//
//go:embed schema/schema_migrations.sql schema/migrations/*.sql
var schemaFS embed.FS

// ServerVersion is a ClickHouse server version as reported by version(),
// e.g. "18.16.1" or "24.8.1.2684".
type ServerVersion struct {
	Major, Minor, Patch int
}

// ParseServerVersion parses the output of SELECT version(). Components after
// the third are ignored.
func ParseServerVersion(s string) (ServerVersion, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 {
		return ServerVersion{}, fmt.Errorf("parse clickhouse version %q: want major.minor[.patch]", s)
	}
	var nums [3]int
	for i := 0; i < len(parts) && i < 3; i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 0 {
			return ServerVersion{}, fmt.Errorf("parse clickhouse version %q: component %q is not a number", s, parts[i])
		}
		nums[i] = n
	}
	return ServerVersion{Major: nums[0], Minor: nums[1], Patch: nums[2]}, nil
}

// String formats v as major.minor.patch.
func (v ServerVersion) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// AtLeast reports whether v is major.minor or newer.
func (v ServerVersion) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// features lists what the DDL may use on a server. The thresholds are
// conservative: the first release where the feature works without
// experimental settings, rounded up where 19.x behaved unevenly.
type features struct {
	lowCardinality bool // LowCardinality(String): 18.x needs a setting; use from 20.1
	dateTime64     bool // DateTime64(precision, tz): 20.1
	ttl            bool // table TTL: 19.6
}

func featuresFor(v ServerVersion) features {
	return features{
		lowCardinality: v.AtLeast(20, 1),
		dateTime64:     v.AtLeast(20, 1),
		ttl:            v.AtLeast(19, 6),
	}
}

// SchemaOptions parameterise the DDL.
type SchemaOptions struct {
	// Database holds all tables; it must be a plain identifier.
	Database string
	// RetentionDays, when positive, makes inference_log and decision_log
	// rows expire after that many days on servers that support TTL. It takes effect when the
	// table is created; change it later with ALTER TABLE ... MODIFY TTL.
	RetentionDays int
}

// ddlData is what the DDL templates see.
type ddlData struct {
	Database      string
	LowCardString string // column type for low-cardinality strings
	DateTime      string // column type for event timestamps
	TTLDays       int    // 0: no TTL clause
}

func newDDLData(v ServerVersion, opts SchemaOptions) (ddlData, error) {
	if err := validIdentifier(opts.Database); err != nil {
		return ddlData{}, fmt.Errorf("database: %w", err)
	}
	f := featuresFor(v)
	d := ddlData{
		Database:      opts.Database,
		LowCardString: "String",
		DateTime:      "DateTime('UTC')",
	}
	if f.lowCardinality {
		d.LowCardString = "LowCardinality(String)"
	}
	if f.dateTime64 {
		d.DateTime = "DateTime64(3, 'UTC')"
	}
	if f.ttl && opts.RetentionDays > 0 {
		d.TTLDays = opts.RetentionDays
	}
	return d, nil
}

// Migration is one numbered schema change, rendered for a server version.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

// Migrations renders every migration for a server of version v, in order.
// Migrate runs them; they are exported so tools can print the DDL.
func Migrations(v ServerVersion, opts SchemaOptions) ([]Migration, error) {
	data, err := newDDLData(v, opts)
	if err != nil {
		return nil, err
	}
	files, err := fs.Glob(schemaFS, "schema/migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	migs := make([]Migration, 0, len(files))
	for _, file := range files {
		base := strings.TrimSuffix(path.Base(file), ".sql")
		num, name, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", file)
		}
		stmts, err := renderSQL(file, data)
		if err != nil {
			return nil, err
		}
		migs = append(migs, Migration{Version: version, Name: name, Statements: stmts})
	}
	slices.SortFunc(migs, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(migs); i++ {
		if migs[i].Version == migs[i-1].Version {
			return nil, fmt.Errorf("two migrations numbered %d", migs[i].Version)
		}
	}
	return migs, nil
}

// bootstrapSQL renders the statements that create schema_migrations.
func bootstrapSQL(database string) ([]string, error) {
	data, err := newDDLData(ServerVersion{}, SchemaOptions{Database: database})
	if err != nil {
		return nil, err
	}
	return renderSQL("schema/schema_migrations.sql", data)
}

// renderSQL executes the template in file and splits the result into
// statements, dropping full-line "--" comments.
func renderSQL(file string, data ddlData) ([]string, error) {
	src, err := schemaFS.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	tmpl, err := template.New(file).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", file, err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", file, err)
	}
	var stmts []string
	var cur strings.Builder
	for line := range strings.Lines(buf.String()) {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		trimmed := strings.TrimRight(line, " \t\r\n")
		if before, ok := strings.CutSuffix(trimmed, ";"); ok {
			cur.WriteString(before)
			if s := strings.TrimSpace(cur.String()); s != "" {
				stmts = append(stmts, s)
			}
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		return nil, fmt.Errorf("render %s: statement without a final \";\": %.40q", file, s)
	}
	return stmts, nil
}

// validIdentifier accepts names that need no quoting in ClickHouse SQL, so
// they can be spliced into DDL safely.
func validIdentifier(s string) error {
	if s == "" {
		return fmt.Errorf("empty identifier")
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return fmt.Errorf("invalid identifier %q (want letters, digits and _, not starting with a digit)", s)
		}
	}
	return nil
}
