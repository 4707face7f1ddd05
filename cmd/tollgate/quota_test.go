package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/quota"
	"github.com/tollgate/tollgate/proxy/quota/redistest"
)

// TestUsageQuota reads and resets a scope's live counters in a real Redis,
// as gateways left them.
func TestUsageQuota(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	l := quota.NewRedis(rdb, quota.RedisConfig{})
	lim := quota.Limit{Scope: "team:ml", Window: quota.Day, Tokens: 1e6, Requests: 100, USDMicros: 1e9}
	r, err := l.Reserve(t.Context(), time.Now(), []quota.Limit{lim}, quota.Amount{Tokens: 1234, Requests: 1, USDMicros: 56789})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Reconcile(t.Context(), r, quota.Amount{Tokens: 1234, Requests: 1, USDMicros: 56789}); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"usage", "quota", "--scope", "team:ml", "--redis", srv.Addr, "--format", "json"}, &out, &errOut); err != nil {
		t.Fatalf("usage quota: %v (%s)", err, errOut.String())
	}
	var doc struct {
		Windows []struct {
			Window    string `json:"window"`
			Tokens    int64  `json:"tokens"`
			Requests  int64  `json:"requests"`
			USDMicros int64  `json:"usd_micros"`
		} `json:"windows"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil || len(doc.Windows) != 4 {
		t.Fatalf("output %s: %v; want four windows", out.String(), err)
	}
	for _, w := range doc.Windows {
		want := int64(0)
		if w.Window == "day" {
			want = 1234
		}
		if w.Tokens != want {
			t.Errorf("window %s: %d tokens, want %d", w.Window, w.Tokens, want)
		}
	}

	out.Reset()
	if err := run(t.Context(), []string{"usage", "quota", "--scope", "team:ml", "--window", "day", "--reset", "--redis", srv.Addr}, &out, &errOut); err != nil {
		t.Fatalf("usage quota --reset: %v", err)
	}
	if !strings.Contains(out.String(), "day") || !strings.Contains(out.String(), "0.000000") {
		t.Errorf("table after the reset:\n%s\nwant the day row at zero", out.String())
	}
	if u, err := l.Usage(t.Context(), time.Now(), lim); err != nil || u != (quota.Amount{}) {
		t.Errorf("counters after the reset: %+v, %v; want zero", u, err)
	}

	for _, args := range [][]string{
		{"usage", "quota", "--redis", srv.Addr},
		{"usage", "quota", "--scope", "team:ml", "--reset", "--redis", srv.Addr},
		{"usage", "quota", "--scope", "team:ml"},
		{"usage", "quota", "--scope", "team:ml", "--window", "year", "--redis", srv.Addr},
	} {
		if err := run(t.Context(), args, &out, &errOut); err == nil {
			t.Errorf("%v: no error, want one", args)
		}
	}
}
