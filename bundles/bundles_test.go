package bundles_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"go.uber.org/goleak"

	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/policies"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var revisionRE = regexp.MustCompile(`^sha256:[0-9a-f]{16}$`)

const okRego = "package tollgate.x\n\nallow if input.ok\n"

func moduleNames(b *bundles.Bundle) []string {
	var names []string
	for name := range b.Modules {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func TestLoadFSEmbedded(t *testing.T) {
	t.Parallel()
	b, err := bundles.LoadFS(policies.FS, "embedded")
	if err != nil {
		t.Fatalf("LoadFS(policies.FS): %v", err)
	}
	if b.Source != "embedded" {
		t.Errorf("Source: got %q, want %q", b.Source, "embedded")
	}
	if !revisionRE.MatchString(b.Revision) {
		t.Errorf("Revision: got %q, want sha256: and 16 hex digits", b.Revision)
	}

	names := moduleNames(b)
	for _, want := range []string{"authz/authz.rego", "main/main.rego", "pii/pii.rego", "quota/quota.rego"} {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, want) }) {
			t.Errorf("Modules: got %q, want one ending in %s", names, want)
		}
	}
	for _, n := range names {
		if strings.HasSuffix(n, "_test.rego") {
			t.Errorf("Modules: got test module %s, want tests left out", n)
		}
		if b.Modules[n] == nil {
			t.Errorf("Modules[%s]: got nil, want a parsed module", n)
		}
	}
	want := 0
	_ = fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".rego") && !strings.HasSuffix(p, "_test.rego") {
			want++
		}
		return nil
	})
	if got := len(names); got != want || want < 6 {
		t.Errorf("Modules: got %d (%q), want %d", got, names, want)
	}

	data, ok := b.Data["data"].(map[string]any)
	if !ok {
		t.Fatalf("Data: got %v, want data.data to be an object", b.Data)
	}
	for _, k := range []string{"access", "catalog", "pii", "quota"} {
		if _, ok := data[k].(map[string]any); !ok {
			t.Errorf("Data: data.data.%s missing or not an object", k)
		}
	}
	catalog := data["catalog"].(map[string]any)
	models, ok := catalog["models"].(map[string]any)
	if !ok || models["gpt-4o"] == nil {
		t.Errorf("Data: data.data.catalog.models.gpt-4o missing; got catalog %v", catalog)
	}

	again, err := bundles.LoadFS(policies.FS, "embedded")
	if err != nil {
		t.Fatalf("second LoadFS: %v", err)
	}
	if again.Revision != b.Revision {
		t.Errorf("Revision of a second load: got %q, want %q", again.Revision, b.Revision)
	}
}

func baseFS() fstest.MapFS {
	return fstest.MapFS{
		"authz/authz.rego":      {Data: []byte(okRego)},
		"authz/authz_test.rego": {Data: []byte("package tollgate.x_test\n\ntest_a if true\n")},
		"data/teams/data.json":  {Data: []byte(`{"ml":{"budget":10}}`)},
		"data/models.yaml":      {Data: []byte("gpt: {tier: large}\n")},
		"README.md":             {Data: []byte("not policy")},
	}
}

func TestLoadFSRevision(t *testing.T) {
	t.Parallel()
	base, err := bundles.LoadFS(baseFS(), "mem")
	if err != nil {
		t.Fatalf("LoadFS: %v", err)
	}
	if !revisionRE.MatchString(base.Revision) {
		t.Fatalf("Revision: got %q, want sha256: and 16 hex digits", base.Revision)
	}

	tests := []struct {
		name   string
		change func(fstest.MapFS)
		// same says the revision must not change.
		same bool
	}{
		{name: "identical copy", change: func(fstest.MapFS) {}, same: true},
		{name: "test module edited", change: func(m fstest.MapFS) {
			m["authz/authz_test.rego"] = &fstest.MapFile{Data: []byte("package tollgate.x_test\n\ntest_b if true\n")}
		}, same: true},
		{name: "non-policy file edited", change: func(m fstest.MapFS) { m["README.md"] = &fstest.MapFile{Data: []byte("changed")} }, same: true},
		{name: "hidden dir added", change: func(m fstest.MapFS) { m[".git/x.json"] = &fstest.MapFile{Data: []byte(`{}`)} }, same: true},
		{name: "one JSON data byte", change: func(m fstest.MapFS) {
			m["data/teams/data.json"] = &fstest.MapFile{Data: []byte(`{"ml":{"budget":11}}`)}
		}},
		{name: "one YAML data byte", change: func(m fstest.MapFS) { m["data/models.yaml"] = &fstest.MapFile{Data: []byte("gpt: {tier: lerge}\n")} }},
		{name: "data file renamed", change: func(m fstest.MapFS) {
			m["data/team/data.json"] = m["data/teams/data.json"]
			delete(m, "data/teams/data.json")
		}},
		{name: "data file added", change: func(m fstest.MapFS) { m["data/x/data.json"] = &fstest.MapFile{Data: []byte(`{}`)} }},
		{name: "policy edited", change: func(m fstest.MapFS) {
			m["authz/authz.rego"] = &fstest.MapFile{Data: []byte(okRego + "\ndeny if input.no\n")}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := baseFS()
			tt.change(m)
			b, err := bundles.LoadFS(m, "mem")
			if err != nil {
				t.Fatalf("LoadFS: %v", err)
			}
			if tt.same && b.Revision != base.Revision {
				t.Errorf("Revision: got %q, want unchanged %q", b.Revision, base.Revision)
			}
			if !tt.same && b.Revision == base.Revision {
				t.Errorf("Revision: got unchanged %q, want a new revision", b.Revision)
			}
		})
	}
}

func TestLoadFSSkipsHiddenDirs(t *testing.T) {
	t.Parallel()
	m := baseFS()
	m[".git/hooks/broken.rego"] = &fstest.MapFile{Data: []byte("package broken\n\nthis is { not rego\n")}
	m[".git/config.json"] = &fstest.MapFile{Data: []byte(`{"secret":true}`)}
	m["authz/.cache/x.rego"] = &fstest.MapFile{Data: []byte("not rego at all {{{")}
	b, err := bundles.LoadFS(m, "mem")
	if err != nil {
		t.Fatalf("LoadFS with hidden dirs: got %v, want them skipped", err)
	}
	for _, n := range moduleNames(b) {
		if strings.Contains(n, "/.") || strings.HasPrefix(n, ".") {
			t.Errorf("Modules: got %s from a hidden directory", n)
		}
	}
	if _, ok := b.Data[".git"]; ok {
		t.Errorf("Data: got .git data %v, want hidden directories skipped", b.Data[".git"])
	}
	if _, ok := b.Data["data"].(map[string]any)["teams"]; !ok {
		t.Errorf("Data: got %v, want data.teams", b.Data)
	}
}

func TestLoadFSErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		wantErr []string
	}{
		{
			name:    "no rego",
			fsys:    fstest.MapFS{"data/x.json": {Data: []byte(`{}`)}},
			wantErr: []string{"load bundle mem", "no .rego files"},
		},
		{
			name:    "only tests",
			fsys:    fstest.MapFS{"a/a_test.rego": {Data: []byte("package a_test\n\ntest_x if true\n")}},
			wantErr: []string{"no .rego files"},
		},
		{
			name: "rego syntax error",
			fsys: fstest.MapFS{
				"ok.rego":        {Data: []byte(okRego)},
				"authz/bad.rego": {Data: []byte("package tollgate.bad\n\nallow if {\n  input.x ==\n")},
			},
			wantErr: []string{"load bundle mem", "authz/bad.rego:"},
		},
		{
			name: "rego v0 syntax",
			fsys: fstest.MapFS{
				"old.rego": {Data: []byte("package tollgate.old\n\nallow { input.x }\n")},
			},
			wantErr: []string{"old.rego:3"},
		},
		{
			name: "bad JSON data",
			fsys: fstest.MapFS{
				"ok.rego":          {Data: []byte(okRego)},
				"data/broken.json": {Data: []byte(`{"a":`)},
			},
			wantErr: []string{"load bundle mem", "data/broken.json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := bundles.LoadFS(tt.fsys, "mem")
			if err == nil {
				t.Fatalf("LoadFS: got bundle with modules %q, nil error; want an error", moduleNames(b))
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("LoadFS error: got %q, want it to contain %q", err, s)
				}
			}
		})
	}
}

// writeTree writes files (slash paths) under a new temporary directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDir(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"authz/authz.rego":       okRego,
		"authz/authz_test.rego":  "package tollgate.x_test\n\ntest_a if true\n",
		"data/teams/data.json":   `{"ml":{}}`,
		".git/HEAD":              "ref: refs/heads/main\n",
		".git/objects/bad.rego":  "not rego {",
		".github/workflow.yaml":  "on: [push]\n",
		"docs/notes.txt":         "ignored",
		"authz/.hidden/bad.json": "{",
	})
	b, err := bundles.LoadDir(dir)
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	if b.Source != dir {
		t.Errorf("Source: got %q, want %q", b.Source, dir)
	}
	if names := moduleNames(b); len(names) != 1 || !strings.HasSuffix(names[0], "authz/authz.rego") {
		t.Errorf("Modules: got %q, want only authz/authz.rego", names)
	}
	if _, ok := b.Data[".github"]; ok {
		t.Errorf("Data: got .github data, want hidden directories skipped")
	}
	if !revisionRE.MatchString(b.Revision) {
		t.Errorf("Revision: got %q, want sha256: and 16 hex digits", b.Revision)
	}

	// The same content through LoadFS has the same revision.
	viaFS, err := bundles.LoadFS(os.DirFS(dir), "other name")
	if err != nil {
		t.Fatalf("LoadFS(DirFS): %v", err)
	}
	if viaFS.Revision != b.Revision {
		t.Errorf("Revision via LoadFS: got %q, want %q as via LoadDir", viaFS.Revision, b.Revision)
	}
}

func TestLoadDirErrors(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "policy.rego")
	if err := os.WriteFile(file, []byte(okRego), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "absent")
	noRego := writeTree(t, map[string]string{"data/x.json": `{}`, "README.md": "hi"})
	syntax := writeTree(t, map[string]string{
		"authz/authz.rego": okRego,
		"quota/quota.rego": "package tollgate.quota\n\nlimits contains x if {\n  x := \n}\n",
	})

	tests := []struct {
		name         string
		dir          string
		wantErr      []string
		wantNotExist bool
	}{
		{name: "missing dir", dir: missing, wantErr: []string{"load bundle", missing}, wantNotExist: true},
		{name: "file, not dir", dir: file, wantErr: []string{file, "not a directory", "hint"}},
		{name: "no rego", dir: noRego, wantErr: []string{noRego, "no .rego files"}},
		{name: "syntax error names the file and line", dir: syntax, wantErr: []string{syntax, "quota/quota.rego:5", "rego_parse_error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := bundles.LoadDir(tt.dir)
			if err == nil {
				t.Fatalf("LoadDir(%s): got bundle %q, nil error; want an error", tt.dir, moduleNames(b))
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("LoadDir(%s) error: got %q, want it to contain %q", tt.dir, err, s)
				}
			}
			if tt.wantNotExist && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("LoadDir(%s): got %v, want an fs.ErrNotExist error", tt.dir, err)
			}
		})
	}
}
