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
