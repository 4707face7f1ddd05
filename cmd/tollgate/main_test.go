package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/proxy/auth"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runCmd runs the CLI and returns its outputs.
func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(t.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersion(t *testing.T) {
	t.Parallel()
	stdout, stderr, err := runCmd(t, "version")
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	if got, want := stdout, "tollgate "+version+"\n"; got != want {
		t.Errorf("version stdout: got %q, want %q", got, want)
	}
	if stderr != "" {
		t.Errorf("version stderr: got %q, want empty", stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		wantErr   string
		wantUsage bool
	}{
		{name: "no command", args: nil, wantErr: "no command given", wantUsage: true},
		{name: "unknown command", args: []string{"frobnicate"}, wantErr: `unknown command "frobnicate"`, wantUsage: true},
		{name: "keys without subcommand", args: []string{"keys"}, wantErr: "keys: no command given"},
		{name: "keys list without a store", args: []string{"keys", "list"}, wantErr: "no key store given"},
		{name: "keys unknown subcommand", args: []string{"keys", "frobnicate"}, wantErr: "frobnicate"},
		{name: "keys new without subject", args: []string{"keys", "new", "--team", "ml"}, wantErr: "--subject is required"},
		{name: "keys new bad kind", args: []string{"keys", "new", "--subject", "ana", "--kind", "robot"}, wantErr: `"robot" is not one of user, service, agent`},
		{name: "keys new unknown flag", args: []string{"keys", "new", "--subjet", "ana"}, wantErr: "flag provided but not defined"},
		{name: "check unknown flag", args: []string{"check", "--confg", "x"}, wantErr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := runCmd(t, tt.args...)
			if err == nil {
				t.Fatalf("run(%q): got nil error, stdout %q; want an error", tt.args, stdout)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("run(%q): got error %q, want it to contain %q", tt.args, err, tt.wantErr)
			}
			if tt.wantUsage && !strings.Contains(stderr, "Usage:\n  tollgate serve") {
				t.Errorf("run(%q): got stderr %q, want the usage", tt.args, stderr)
			}
			if strings.Contains(stdout, "tg_") {
				t.Errorf("run(%q): got a key on stdout %q despite the error", tt.args, stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"help", "-h", "--help"} {
		t.Run(arg, func(t *testing.T) {
			t.Parallel()
			stdout, _, err := runCmd(t, arg)
			if err != nil {
				t.Fatalf("run(%s): %v", arg, err)
			}
			if stdout != usage {
				t.Errorf("run(%s) stdout: got %q, want the usage", arg, stdout)
			}
		})
	}
	_, _, err := runCmd(t, "keys", "new", "-h")
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("keys new -h: got %v, want flag.ErrHelp", err)
	}
}

var printedKeyRE = regexp.MustCompile(`(?m)^  (tg_[a-z0-9]+_[a-z0-9]+)$`)

// parseKeysNew splits the output of 'keys new' into the key and the
// configuration entry.
func parseKeysNew(t *testing.T, stdout string) (string, auth.KeyConfig) {
	t.Helper()
	m := printedKeyRE.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("keys new: no key line in %q", stdout)
	}
	_, entry, ok := strings.Cut(stdout, "under auth.api_keys in your configuration:\n")
	if !ok {
		t.Fatalf("keys new: no entry in %q", stdout)
	}
	dec := yaml.NewDecoder(strings.NewReader(entry))
	dec.KnownFields(true)
	var entries []auth.KeyConfig
	if err := dec.Decode(&entries); err != nil {
		t.Fatalf("keys new: printed entry is not a YAML key list: %v\n%s", err, entry)
	}
	if len(entries) != 1 {
		t.Fatalf("keys new: got %d entries, want 1:\n%s", len(entries), entry)
	}
	return m[1], entries[0]
}

func TestKeysNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		args        []string
		wantSubject string
		wantKind    string
		wantTeam    string
		wantOrg     string
		wantRoles   []string
	}{
		{
			name:        "subject team roles",
			args:        []string{"--subject", "ana", "--team", "ml", "--roles", "developer,admin"},
			wantSubject: "ana", wantKind: "user", wantTeam: "ml", wantRoles: []string{"developer", "admin"},
		},
		{
			name:        "default roles and kind",
			args:        []string{"--subject", "bob"},
			wantSubject: "bob", wantKind: "user", wantRoles: []string{"developer"},
		},
		{
			name:        "service with org and spaced roles",
			args:        []string{"--subject", "billing-svc", "--kind", "service", "--org", "acme", "--roles", " reader , ,writer "},
			wantSubject: "billing-svc", wantKind: "service", wantOrg: "acme", wantRoles: []string{"reader", "writer"},
		},
		{
			name:        "values YAML would misread",
			args:        []string{"--subject", "#ops: on-call", "--team", "ml, search", "--org", "[acme]", "--roles", "a]b,'c"},
			wantSubject: "#ops: on-call", wantKind: "user", wantTeam: "ml, search", wantOrg: "[acme]", wantRoles: []string{"a]b", "'c"},
		},
		{
			name:        "values YAML would retype",
			args:        []string{"--subject", "null", "--team", "007", "--org", "true", "--roles", "~"},
			wantSubject: "null", wantKind: "user", wantTeam: "007", wantOrg: "true", wantRoles: []string{"~"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := runCmd(t, append([]string{"keys", "new"}, tt.args...)...)
			if err != nil {
				t.Fatalf("keys new %q: %v (stderr %q)", tt.args, err, stderr)
			}
			key, entry := parseKeysNew(t, stdout)
			if got, want := entry.Hash, auth.HashKey(key); got != want {
				t.Errorf("entry hash: got %s, want HashKey(printed key) %s", got, want)
			}
			if got, want := entry.ID, auth.KeyID(key); got != want {
				t.Errorf("entry id: got %q, want KeyID(printed key) %q", got, want)
			}
			keys, err := auth.NewKeys(auth.Config{APIKeys: []auth.KeyConfig{entry}})
			if err != nil {
				t.Fatalf("auth.NewKeys(printed entry): %v", err)
			}
			id, err := keys.Verify(key)
			if err != nil {
				t.Fatalf("Verify(printed key): got %v, want the principal", err)
			}
			if id.Subject != tt.wantSubject {
				t.Errorf("Subject: got %q, want %q", id.Subject, tt.wantSubject)
			}
			if id.Kind != tt.wantKind {
				t.Errorf("Kind: got %q, want %q", id.Kind, tt.wantKind)
			}
			if id.Team != tt.wantTeam {
				t.Errorf("Team: got %q, want %q", id.Team, tt.wantTeam)
			}
			if id.Org != tt.wantOrg {
				t.Errorf("Org: got %q, want %q", id.Org, tt.wantOrg)
			}
			if diff := cmp.Diff(tt.wantRoles, id.Roles); diff != "" {
				t.Errorf("Roles (-want +got):\n%s", diff)
			}
			if _, err := keys.Verify(key[:len(key)-1] + "x"); !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("Verify(altered key): got %v, want ErrUnauthenticated", err)
			}
		})
	}
}

func TestKeysNewFresh(t *testing.T) {
	t.Parallel()
	out1, _, err := runCmd(t, "keys", "new", "--subject", "ana")
	if err != nil {
		t.Fatal(err)
	}
	out2, _, err := runCmd(t, "keys", "new", "--subject", "ana")
	if err != nil {
		t.Fatal(err)
	}
	k1, e1 := parseKeysNew(t, out1)
	k2, e2 := parseKeysNew(t, out2)
	if k1 == k2 || e1.ID == e2.ID {
		t.Errorf("two runs: got the same key %s / id %s, want fresh ones", k1, e1.ID)
	}
}

func TestCheckDefault(t *testing.T) {
	t.Parallel()
	want, err := bundles.LoadFS(policies.FS, "embedded")
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runCmd(t, "check")
	if err != nil {
		t.Fatalf("check: %v (stderr %q)", err, stderr)
	}
	for _, s := range []string{"ok:", "embedded default config is valid", "revision " + want.Revision, fmt.Sprintf("%d modules", len(want.Modules)), "compiles"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("check stdout: got %q, want it to contain %q", stdout, s)
		}
	}
}

const checkConfigBase = `server:
  listen: 127.0.0.1:9090
providers:
  - name: sim
    kind: openai
    base_url: http://127.0.0.1:8081/v1
    models: [echo]
`

const goodRego = "package tollgate.main\n\ndecision := {\"allow\": true}\n"

func TestCheckConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	goodBundle := filepath.Join(dir, "good")
	writeFile(t, goodBundle, "main/main.rego", goodRego)
	writeFile(t, goodBundle, "data/teams/data.json", `{"ml":{}}`)
	good := writeFile(t, dir, "good.yaml", checkConfigBase+"policy:\n  bundle: "+goodBundle+"\n")

	unknownKey := writeFile(t, dir, "unknown.yaml", checkConfigBase+"quota:\n  backend: memory\n  bakend: redis\n")

	badBundle := filepath.Join(dir, "bad")
	writeFile(t, badBundle, "main/main.rego", goodRego)
	badRego := writeFile(t, badBundle, "authz/authz.rego", "package tollgate.authz\n\nallow if {\n  input.x ==\n}\n")
	badPolicy := writeFile(t, dir, "badpolicy.yaml", checkConfigBase+"policy:\n  bundle: "+badBundle+"\n")

	twoProblems := writeFile(t, dir, "two.yaml", strings.Replace(checkConfigBase, "127.0.0.1:9090", "nonsense", 1)+
		"quota:\n  backend: redis\n")

	missingBundle := writeFile(t, dir, "missing.yaml", checkConfigBase+"policy:\n  bundle: "+filepath.Join(dir, "nowhere")+"\n")

	tests := []struct {
		name       string
		config     string
		wantOut    []string
		wantErr    []string
		wantNotErr []string
	}{
		{
			name:    "valid config with its own bundle",
			config:  good,
			wantOut: []string{"ok: " + good + " is valid", "policy bundle " + goodBundle, "revision sha256:", "1 modules"},
		},
		{
			name:    "unknown key names file and line",
			config:  unknownKey,
			wantErr: []string{unknownKey, "line 10", "bakend"},
		},
		{
			name:    "rego syntax error names the file and line",
			config:  badPolicy,
			wantErr: []string{badBundle, filepath.ToSlash(strings.TrimPrefix(badRego, badBundle+string(filepath.Separator))) + ":5", "rego_parse_error"},
		},
		{
			name:    "two problems both reported",
			config:  twoProblems,
			wantErr: []string{twoProblems, "server.listen", `"nonsense"`, "quota.redis.addr"},
		},
		{
			name:    "missing bundle dir",
			config:  missingBundle,
			wantErr: []string{"load bundle", filepath.Join(dir, "nowhere")},
		},
		{
			name:    "missing config file",
			config:  filepath.Join(dir, "absent.yaml"),
			wantErr: []string{"read config", filepath.Join(dir, "absent.yaml")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := runCmd(t, "check", "--config", tt.config)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("check --config %s: %v (stderr %q)", tt.config, err, stderr)
				}
				for _, s := range tt.wantOut {
					if !strings.Contains(stdout, s) {
						t.Errorf("check stdout: got %q, want it to contain %q", stdout, s)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("check --config %s: got nil error, stdout %q; want an error", tt.config, stdout)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("check --config %s: got error\n%v\nwant it to contain %q", tt.config, err, s)
				}
			}
			if strings.Contains(stdout, "ok:") {
				t.Errorf("check stdout: got %q, want no ok line on failure", stdout)
			}
		})
	}
}

func TestCheckCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out, errOut bytes.Buffer
	// A canceled context must not hang; either outcome is fine as long as
	// a failure is reported as an error, not as ok.
	if err := run(ctx, []string{"check"}, &out, &errOut); err == nil && !strings.HasPrefix(out.String(), "ok:") {
		t.Errorf("check with canceled ctx: got nil error and stdout %q", out.String())
	}
}
