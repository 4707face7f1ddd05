package analytics

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/analytics/clickhousetest"
)

// clusterColumns returns the column names and types of table in the
// clustered DDL.
func clusterColumns(t *testing.T, ddl, table string) map[string]string {
	t.Helper()
	re := regexp.MustCompile(`(?s)CREATE TABLE IF NOT EXISTS tollgate\.` + table + ` ON CLUSTER '\{cluster\}'\n\((.*?)\n\)`)
	m := re.FindStringSubmatch(ddl)
	if m == nil {
		t.Fatalf("deploy/clickhouse/cluster.sql: no CREATE TABLE for %s", table)
	}
	cols := map[string]string{}
	for line := range strings.Lines(m[1]) {
		line = strings.TrimSuffix(strings.TrimSpace(line), ",")
		if line == "" {
			continue
		}
		name, typ, _ := strings.Cut(line, " ")
		cols[name] = normalizeType(strings.TrimSpace(typ))
	}
	return cols
}

// normalizeType maps current-release types to their 18.16 forms.
var lowCard = regexp.MustCompile(`LowCardinality\((\w+)\)`)

func normalizeType(t string) string {
	t = lowCard.ReplaceAllString(t, "$1")
	return strings.ReplaceAll(t, "DateTime64(3, 'UTC')", "DateTime('UTC')")
}

// TestClusterDDLMatchesMigrations keeps deploy/clickhouse/cluster.sql in
// step with the migrations: every table has the columns, with the types,
// that migrating a single server yields (inserted_at aside, which the
// cluster leaves out for insert deduplication), and it records every
// migration as applied.
func TestClusterDDLMatchesMigrations(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../deploy/clickhouse/cluster.sql")
	if err != nil {
		t.Fatal(err)
	}
	ddl := string(raw)
	srv := clickhousetest.Start(t)
	ctx := ctxT(t)
	ch := openMigrated(t, ctx, srv.Addr)
	for _, table := range []string{"inference_log", "decision_log", "usage_daily"} {
		rows, err := ch.conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = 'tollgate' AND table = '"+table+"'")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				t.Fatal(err)
			}
			if name != "inserted_at" {
				want[name] = normalizeType(typ)
			}
		}
		rows.Close()
		if diff := cmp.Diff(want, clusterColumns(t, ddl, table+"_local")); diff != "" {
			t.Errorf("cluster.sql %s_local columns (-migrated +cluster):\n%s", table, diff)
		}
		if !strings.Contains(ddl, "CREATE TABLE IF NOT EXISTS tollgate."+table+" ON CLUSTER '{cluster}'\nAS tollgate."+table+"_local\nENGINE = Distributed(") {
			t.Errorf("cluster.sql: no Distributed table %s over %s_local", table, table)
		}
	}
	migs, err := Migrations(ch.ServerVersion(), SchemaOptions{Database: "tollgate"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		if rec := fmt.Sprintf("(%d, '%s', 'cluster.sql', now())", m.Version, m.Name); !strings.Contains(ddl, rec) {
			t.Errorf("cluster.sql does not record migration %04d_%s as applied (want %s)", m.Version, m.Name, rec)
		}
	}
}
