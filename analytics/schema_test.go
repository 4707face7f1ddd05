package analytics

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.sql")

func TestParseServerVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    ServerVersion
		wantErr bool
	}{
		{in: "18.16.1", want: ServerVersion{18, 16, 1}},
		{in: "24.8.1.2684", want: ServerVersion{24, 8, 1}},
		{in: " 20.1\n", want: ServerVersion{20, 1, 0}},
		{in: "25", wantErr: true},
		{in: "v24.8", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseServerVersion(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseServerVersion(%q) error = %v, want error: %t", tc.in, err, tc.wantErr)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseServerVersion(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestFeaturesFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version string
		want    features
	}{
		{"18.16.1", features{}},
		{"19.5.4", features{}},
		{"19.6.2", features{ttl: true}},
		{"20.1.2", features{lowCardinality: true, dateTime64: true, ttl: true}},
		{"24.8.1", features{lowCardinality: true, dateTime64: true, ttl: true}},
		{"100.0.0", features{lowCardinality: true, dateTime64: true, ttl: true}},
	}
	for _, tc := range tests {
		v, err := ParseServerVersion(tc.version)
		if err != nil {
			t.Fatal(err)
		}
		if got := featuresFor(v); got != tc.want {
			t.Errorf("featuresFor(%s) = %+v, want %+v", tc.version, got, tc.want)
		}
	}
}

// TestMigrationsDDL renders the DDL per server version against goldens
// (go test -run TestMigrationsDDL -update rewrites them) and checks the
// version-dependent parts explicitly.
func TestMigrationsDDL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version string
		want    []string
		notWant []string
	}{
		{
			version: "18.16.1",
			want: []string{
				"timestamp               DateTime('UTC')", "team                    String", "Array(String)", "ReplacingMergeTree(inserted_at)", "PARTITION BY toYYYYMM(timestamp)", "ORDER BY (toDate(timestamp), team, request_id)",
				"CREATE TABLE IF NOT EXISTS tollgate.decision_log", "timestamp         DateTime('UTC')", "deny_codes        Array(String)", "mask_actions      Array(String)",
				"ADD COLUMN tag_keys Array(String)", "ADD COLUMN prompt Nullable(String)", "ENGINE = SummingMergeTree()", "TO tollgate.usage_daily",
			},
			notWant: []string{"LowCardinality", "DateTime64", "TTL"},
		},
		{
			version: "24.8.1",
			want: []string{
				"timestamp               DateTime64(3, 'UTC')", "team                    LowCardinality(String)", "Array(LowCardinality(String))", "TTL toDateTime(timestamp) + INTERVAL 90 DAY", "ReplacingMergeTree(inserted_at)", "ORDER BY (toDate(timestamp), team, request_id)",
				"CREATE TABLE IF NOT EXISTS tollgate.decision_log", "timestamp         DateTime64(3, 'UTC')", "deny_codes        Array(LowCardinality(String))", "limits            Array(String)",
				"ADD COLUMN tag_keys Array(LowCardinality(String))", "team              LowCardinality(String)",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			t.Parallel()
			v, err := ParseServerVersion(tc.version)
			if err != nil {
				t.Fatal(err)
			}
			migs, err := Migrations(v, SchemaOptions{Database: "tollgate", RetentionDays: 90})
			if err != nil {
				t.Fatalf("Migrations: %v", err)
			}
			var names []string
			for _, m := range migs {
				names = append(names, fmt.Sprintf("%04d_%s", m.Version, m.Name))
			}
			if diff := cmp.Diff([]string{"0001_inference_log", "0002_decision_log", "0003_inference_log_fields", "0004_usage_daily", "0005_inference_log_attempts"}, names); diff != "" {
				t.Fatalf("Migrations (-want +got):\n%s", diff)
			}
			var b strings.Builder
			for _, m := range migs {
				for _, s := range m.Statements {
					b.WriteString("-- " + m.Name + "\n" + s + ";\n\n")
				}
			}
			got := b.String()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("DDL lacks %q:\n%s", w, got)
				}
			}
			for _, nw := range tc.notWant {
				if strings.Contains(got, nw) {
					t.Errorf("DDL for %s contains %q:\n%s", tc.version, nw, got)
				}
			}
			golden := filepath.Join("testdata", "ddl_"+tc.version+".golden.sql")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("DDL differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func TestMigrationsRejectsBadDatabase(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"", "1abc", "tollgate; DROP TABLE x", "a-b", "db.table"} {
		if _, err := Migrations(ServerVersion{24, 8, 1}, SchemaOptions{Database: db}); err == nil {
			t.Errorf("Migrations with database %q: got nil error, want one", db)
		}
	}
}

func TestBootstrapSQL(t *testing.T) {
	t.Parallel()
	stmts, err := bootstrapSQL("tollgate")
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 1 || !strings.HasPrefix(stmts[0], "CREATE TABLE IF NOT EXISTS tollgate.schema_migrations") {
		t.Errorf("bootstrapSQL = %q, want one CREATE TABLE IF NOT EXISTS tollgate.schema_migrations", stmts)
	}
}
