package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/quota/redistest"
)

func runKeys(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := keysCommand(t.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

type createdKey struct {
	Key    string         `json:"key"`
	Record auth.KeyRecord `json:"record"`
}

func TestKeysStoreCommands(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	conn := []string{"--redis", srv.Addr, "--prefix", "clitest"}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	// A fresh gateway replica per check, so that its cache is empty and it
	// sees the store as it is now.
	verify := func(key string) error {
		a, err := auth.New(auth.Config{KeyStore: auth.StoreConfig{Redis: auth.RedisConfig{Addr: srv.Addr, Prefix: "clitest"}}},
			auth.Options{Redis: rdb})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		_, err = a.Authenticate(r)
		return err
	}

	out, stderr, err := runKeys(t, append([]string{"create", "--json", "--subject", "ana", "--team", "ml", "--roles", "developer, admin",
		"--label", "cost_center=cc-42", "--label", "env=prod", "--expires", "720h"}, conn...)...)
	if err != nil {
		t.Fatalf("create: %v (stderr %q)", err, stderr)
	}
	var c createdKey
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("create output %q: %v", out, err)
	}
	if c.Record.ID != auth.KeyID(c.Key) || c.Record.Subject != "ana" || c.Record.Team != "ml" ||
		strings.Join(c.Record.Roles, ",") != "developer,admin" || c.Record.Labels["env"] != "prod" || c.Record.ExpiresAt.IsZero() {
		t.Fatalf("created record: got %+v", c.Record)
	}
	if err := verify(c.Key); err != nil {
		t.Fatalf("created key: %v", err)
	}

	// Text output shows the key once and the id.
	out, _, err = runKeys(t, append([]string{"create", "--subject", "svc", "--kind", "service"}, conn...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "shown once") || !strings.Contains(out, auth.KeyPrefix) {
		t.Errorf("create text output: got %q", out)
	}

	out, _, err = runKeys(t, append([]string{"list"}, conn...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, c.Record.ID) || !strings.Contains(out, "active") || strings.Contains(out, c.Key) {
		t.Errorf("list: got %q; want the id, status active and never the key", out)
	}

	// Rotate with flags after the id; the new key works, the old one too
	// during the grace period.
	out, stderr, err = runKeys(t, append([]string{"rotate", c.Record.ID, "--grace", "1h", "--json"}, conn...)...)
	if err != nil {
		t.Fatalf("rotate: %v (stderr %q)", err, stderr)
	}
	var r createdKey
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("rotate output %q: %v", out, err)
	}
	if r.Key == c.Key || r.Record.Subject != "ana" || r.Record.Labels["cost_center"] != "cc-42" {
		t.Errorf("rotated: got %+v", r.Record)
	}
	for name, k := range map[string]string{"old": c.Key, "new": r.Key} {
		if err := verify(k); err != nil {
			t.Errorf("%s key after rotate with grace: %v", name, err)
		}
	}

	if _, _, err := runKeys(t, append([]string{"revoke", r.Record.ID}, conn...)...); err != nil {
		t.Fatal(err)
	}
	err = verify(r.Key)
	var f *auth.Failure
	if !errors.As(err, &f) || f.Reason != auth.ReasonKeyRevoked {
		t.Errorf("revoked key: got %v, want reason %s", err, auth.ReasonKeyRevoked)
	}

	if _, _, err := runKeys(t, append([]string{"disable", c.Record.ID}, conn...)...); err != nil {
		t.Fatal(err)
	}
	if err := verify(c.Key); !errors.As(err, &f) || f.Reason != auth.ReasonKeyDisabled {
		t.Errorf("disabled key: got %v, want reason %s", err, auth.ReasonKeyDisabled)
	}
	if _, _, err := runKeys(t, append([]string{"enable", c.Record.ID}, conn...)...); err != nil {
		t.Fatal(err)
	}
	if err := verify(c.Key); err != nil {
		t.Errorf("re-enabled key: %v", err)
	}

	out, _, err = runKeys(t, append([]string{"list", "--json"}, conn...)...)
	if err != nil {
		t.Fatal(err)
	}
	var recs []auth.KeyRecord
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Errorf("list --json: got %d records, want 3", len(recs))
	}
}

func TestKeysCommandErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no command", nil, "no command given"},
		{"unknown command", []string{"delete"}, `unknown command "delete"`},
		{"no store", []string{"list"}, "no key store given"},
		{"create without subject", []string{"create", "--redis", "127.0.0.1:1"}, "--subject is required"},
		{"revoke without id", []string{"revoke", "--redis", "127.0.0.1:1"}, "want exactly one key id"},
		{"revoke two ids", []string{"revoke", "a", "b", "--redis", "127.0.0.1:1"}, "want exactly one key id"},
		{"bad label", []string{"create", "--label", "novalue"}, "is not key=value"},
		{"bad expiry", []string{"create", "--subject", "a", "--expires", "soon", "--redis", "127.0.0.1:1"}, "neither a duration"},
		{"past expiry", []string{"create", "--subject", "a", "--expires", "2001-01-01T00:00:00Z", "--redis", "127.0.0.1:1"}, "in the past"},
		{"bad kind", []string{"create", "--subject", "a", "--kind", "robot", "--redis", "127.0.0.1:1"}, `kind: "robot" is not one of user, service, agent`},
		{"new still works: needs subject", []string{"new"}, "--subject is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := runKeys(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("keys %q: got %v, want error containing %q", tc.args, err, tc.wantErr)
			}
		})
	}
	if out, _, err := runKeys(t, "-h"); err != nil || !strings.Contains(out, "rotate ID") {
		t.Errorf("keys -h: got %q, %v", out, err)
	}
	if _, _, err := runKeys(t, "list", "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("keys list -h: got %v, want flag.ErrHelp", err)
	}
}

func TestKeysNewAlias(t *testing.T) {
	t.Parallel()
	out, _, err := runKeys(t, "new", "--subject", "ana", "--team", "ml")
	if err != nil {
		t.Fatal(err)
	}
	key, entry := parseKeysNew(t, out)
	keys, err := auth.NewKeys(auth.Config{APIKeys: []auth.KeyConfig{entry}})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := keys.Verify(key); err != nil || id.Team != "ml" {
		t.Errorf("keys new via keysCommand: got %+v, %v", id, err)
	}
}
