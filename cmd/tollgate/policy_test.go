package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyEval(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	body := filepath.Join(dir, "req.json")
	if err := os.WriteFile(body, []byte(`{"model":"gpt-4o","max_tokens":50,"messages":[{"role":"user","content":"mail ana@example.com"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		roles     string
		wantAllow bool
		wantCode  string
	}{
		{"developer allowed", "developer", true, ""},
		{"analyst denied", "analyst", false, "model_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			err := run(context.Background(), []string{"policy", "eval", "--input", body, "--roles", tc.roles, "--team", "ml", "--key-id", "k1", "--explain"}, &out, &errOut)
			if err != nil {
				t.Fatalf("policy eval: %v (%s)", err, errOut.String())
			}
			var got struct {
				Revision string `json:"bundle_revision"`
				Input    struct {
					Version string
					Tokens  struct {
						Prompt        int `json:"prompt"`
						MaxCompletion int `json:"max_completion"`
					}
					PII struct {
						Types []string `json:"types"`
					}
					Identity struct {
						Team  string   `json:"team"`
						Roles []string `json:"roles"`
					}
				}
				Decision struct {
					Allow bool
					Deny  []struct{ Code string }
				}
				EvalTimeUS            int64 `json:"eval_time_us"`
				SpecializedEvalTimeUS int64 `json:"specialized_eval_time_us"`
				Explain               []struct{ Rule, Location string }
			}
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out.String())
			}
			if !strings.HasPrefix(got.Revision, "sha256:") || got.Input.Version != "1" {
				t.Errorf("revision %q, input version %q", got.Revision, got.Input.Version)
			}
			if got.Input.Tokens.Prompt == 0 || got.Input.Tokens.MaxCompletion != 50 {
				t.Errorf("tokens = %+v, want a prompt count and max_completion 50", got.Input.Tokens)
			}
			if len(got.Input.PII.Types) != 1 || got.Input.PII.Types[0] != "EMAIL" {
				t.Errorf("pii types = %v, want [EMAIL]", got.Input.PII.Types)
			}
			if got.Input.Identity.Team != "ml" || strings.Join(got.Input.Identity.Roles, ",") != tc.roles {
				t.Errorf("identity = %+v", got.Input.Identity)
			}
			if got.Decision.Allow != tc.wantAllow {
				t.Errorf("allow = %v, want %v", got.Decision.Allow, tc.wantAllow)
			}
			if tc.wantCode != "" && (len(got.Decision.Deny) == 0 || got.Decision.Deny[0].Code != tc.wantCode) {
				t.Errorf("deny = %+v, want code %s", got.Decision.Deny, tc.wantCode)
			}
			if got.EvalTimeUS <= 0 || got.SpecializedEvalTimeUS <= 0 {
				t.Errorf("eval_time_us = %d, specialized_eval_time_us = %d, want both > 0", got.EvalTimeUS, got.SpecializedEvalTimeUS)
			}
			found := false
			for _, h := range got.Explain {
				if h.Rule == "data.tollgate.main.decision" && strings.HasPrefix(h.Location, "main/main.rego:") {
					found = true
				}
			}
			if !found {
				t.Errorf("explain does not name data.tollgate.main.decision: %+v", got.Explain)
			}
			if strings.Contains(out.String(), "ana@example.com") {
				t.Error("output contains the raw email: the input must carry PII types, never values")
			}
		})
	}
}

func TestPolicyEvalErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"model":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"policy"}, "want eval"},
		{"no input", []string{"policy", "eval"}, "--input is required"},
		{"missing file", []string{"policy", "eval", "--input", filepath.Join(dir, "nope.json")}, "read input"},
		{"invalid body", []string{"policy", "eval", "--input", bad}, "messages"},
		{"bad bundle", []string{"policy", "eval", "--input", bad, "--bundle", dir}, "messages"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
