package clickhousetest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func TestStart(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		t.Fatalf("SELECT version(): %v", err)
	}
	if v == "" {
		t.Error("version() = \"\", want a version")
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "config.xml")); err != nil {
		t.Errorf("config.xml in Dir: %v", err)
	}
	t0 := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stop took %s", time.Since(t0))
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}
}

func TestStartMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := start(t.TempDir())
	if err == nil {
		t.Fatal("start with empty PATH: got nil error, want one naming the package")
	}
	if !strings.Contains(err.Error(), InstallHint) {
		t.Errorf("error = %q, want it to contain %q", err, InstallHint)
	}
}

func TestStartMain(t *testing.T) {
	s, stop, err := StartMain()
	if err != nil {
		t.Fatalf("StartMain: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("Stat(%s) after stop = %v, want not exist", s.Dir, err)
	}
}

func TestRestartKeepsData(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "CREATE TABLE default.t (x UInt8) ENGINE = MergeTree ORDER BY x"); err != nil {
		t.Fatal(err)
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO default.t (x)")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append(uint8(7)); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	var x uint8
	if err := conn.QueryRow(ctx, "SELECT x FROM default.t").Scan(&x); err == nil {
		t.Fatal("query against a stopped server: got nil error")
	}
	if err := s.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if err := conn.QueryRow(ctx, "SELECT x FROM default.t").Scan(&x); err != nil || x != 7 {
		t.Fatalf("after Resume: x = %d, err = %v; want 7, nil", x, err)
	}
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := s.Resume(); err != nil {
		t.Fatalf("Resume after Kill: %v", err)
	}
	if err := conn.QueryRow(ctx, "SELECT x FROM default.t").Scan(&x); err != nil || x != 7 {
		t.Fatalf("after Kill and Resume: x = %d, err = %v; want 7, nil", x, err)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := conn.QueryRow(ctx, "SELECT x FROM default.t").Scan(&x); err != nil || x != 7 {
		t.Fatalf("after Restart: x = %d, err = %v; want 7, nil", x, err)
	}
}
