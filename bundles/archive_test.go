package bundles_test

import (
	"bytes"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/bundles/bundletest"
	"github.com/tollgate/tollgate/policies"
)

// sameBundle reports how got differs from want in modules and data.
func sameBundle(t *testing.T, got, want *bundles.Bundle) {
	t.Helper()
	if g, w := moduleNames(got), moduleNames(want); !slices.Equal(g, w) {
		t.Fatalf("Modules: got %q, want %q", g, w)
	}
	for name, m := range want.Modules {
		if !got.Modules[name].Equal(m) {
			t.Errorf("Modules[%s]: got\n%v\nwant\n%v", name, got.Modules[name], m)
		}
	}
	if diff := cmp.Diff(want.Data, got.Data); diff != "" {
		t.Errorf("Data (-want +got):\n%s", diff)
	}
}

// treeFiles reads every file of fsys.
func treeFiles(t *testing.T, fsys fs.FS) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(fsys, p)
		files[p] = string(raw)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestLoadArchiveMatchesDir(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"authz/authz.rego":           okRego,
		"authz/authz_test.rego":      "package tollgate.x_test\n\ntest_a if true\n",
		"main/main.rego":             "package tollgate.main\n\nimport data.tollgate.x\n\ndecision := {\"allow\": x.allow}\n",
		"data/teams/data.json":       `{"ml": {"budget": 10, "ratio": 0.25}}`,
		"data/catalog/data.yaml":     "models:\n  gpt-4o: {tier: large}\n",
		"data/catalog/pii/data.json": `{"types": ["EMAIL"]}`,
	}
	want, err := bundles.LoadDir(writeTree(t, files))
	if err != nil {
		t.Fatal(err)
	}
	got, err := bundles.LoadArchive(bytes.NewReader(bundletest.Build(t, files, bundletest.Options{})), "mem.tar.gz", bundles.ArchiveOptions{})
	if err != nil {
		t.Fatalf("LoadArchive: %v", err)
	}
	sameBundle(t, got, want)
	if !revisionRE.MatchString(got.Revision) || got.Source != "mem.tar.gz" || got.Roots != nil {
		t.Errorf("got revision %q source %q roots %q; want a sha256 digest, mem.tar.gz, no roots", got.Revision, got.Source, got.Roots)
	}
	again, _ := bundles.LoadArchive(bytes.NewReader(bundletest.Build(t, files, bundletest.Options{})), "other", bundles.ArchiveOptions{})
	if again.Revision != got.Revision {
		t.Errorf("Revision of the same content: got %q, want %q", again.Revision, got.Revision)
	}
	files["data/teams/data.json"] = `{"ml": {"budget": 11, "ratio": 0.25}}`
	changed, _ := bundles.LoadArchive(bytes.NewReader(bundletest.Build(t, files, bundletest.Options{})), "other", bundles.ArchiveOptions{})
	if changed.Revision == got.Revision {
		t.Errorf("Revision after a data change: got unchanged %q", changed.Revision)
	}

	withRev, err := bundles.LoadArchive(bytes.NewReader(bundletest.Build(t, files, bundletest.Options{Revision: "2026.11.1", Roots: []string{"tollgate", "data"}})), "x", bundles.ArchiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if withRev.Revision != "2026.11.1" || !slices.Equal(withRev.Roots, []string{"tollgate", "data"}) {
		t.Errorf("manifest: got revision %q roots %q, want 2026.11.1 and [tollgate data]", withRev.Revision, withRev.Roots)
	}
}

// TestLoadFileDefaultLibrary: the embedded library as an archive (what make
// bundle ships) loads the same as the embedded tree.
func TestLoadFileDefaultLibrary(t *testing.T) {
	t.Parallel()
	want, err := bundles.LoadFS(policies.FS, "embedded")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tollgate.tar.gz")
	if err := os.WriteFile(path, bundletest.Build(t, treeFiles(t, policies.FS), bundletest.Options{Revision: "lib-1"}), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := bundles.LoadFile(path, bundles.ArchiveOptions{})
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	sameBundle(t, got, want)
	if got.Revision != "lib-1" || got.Source != path {
		t.Errorf("got revision %q source %q, want lib-1 and %s", got.Revision, got.Source, path)
	}
}

func TestLoadArchiveErrors(t *testing.T) {
	t.Parallel()
	big := `{"blob": "` + strings.Repeat("a", 200_000) + `"}`
	tests := []struct {
		name     string
		archive  []byte
		maxBytes int64
		want     []string
	}{
		{name: "not gzip", archive: []byte("plain text"), want: []string{"load bundle src", "not a gzip archive"}},
		{name: "archive too large", archive: bundletest.Build(t, map[string]string{"a.rego": okRego, "data.json": big}, bundletest.Options{}),
			maxBytes: 100, want: []string{"larger than 100 bytes", "max_bytes"}},
		{name: "unpacked too large", archive: bundletest.Build(t, map[string]string{"a.rego": okRego, "data.json": big}, bundletest.Options{}),
			maxBytes: 50_000, want: []string{"unpacked files exceed 50000 bytes"}},
		{name: "rego syntax error", archive: bundletest.Build(t, map[string]string{"authz/bad.rego": "package x\n\nallow if {\n"}, bundletest.Options{}),
			want: []string{"load bundle src", "authz/bad.rego:", "rego_parse_error"}},
		{name: "module outside roots", archive: bundletest.Build(t, map[string]string{"a.rego": okRego}, bundletest.Options{Roots: []string{"data"}}),
			want: []string{"manifest roots", "do not permit"}},
		{name: "empty bundle", archive: bundletest.Build(t, map[string]string{"README.md": "x"}, bundletest.Options{}),
			want: []string{"no .rego modules and no data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := bundles.LoadArchive(bytes.NewReader(tt.archive), "src", bundles.ArchiveOptions{MaxBytes: tt.maxBytes})
			if err == nil {
				t.Fatalf("LoadArchive: got bundle %q, want an error", b.Revision)
			}
			if !containsAll(err.Error(), tt.want...) {
				t.Errorf("error: got %q, want it to contain %q", err, tt.want)
			}
			if errors.Is(err, bundles.ErrVerification) {
				t.Errorf("error: got %v, want no ErrVerification without a verifier", err)
			}
		})
	}
}

func TestLoadArchiveSignatures(t *testing.T) {
	t.Parallel()
	rsKey := bundletest.NewKey(t, "rs", "RS256")
	esKey := bundletest.NewKey(t, "es", "ES256")
	impostor := bundletest.NewKey(t, "rs", "RS256") // same id, other key
	stranger := bundletest.NewKey(t, "unknown", "RS256")
	keyDir := t.TempDir()
	verifier, err := bundles.NewVerifier(&bundles.SigningConfig{Keys: []bundles.KeyConfig{
		{ID: "rs", Algorithm: "RS256", PublicKeyFile: rsKey.WritePublicKey(t, keyDir)},
		{ID: "es", Algorithm: "ES256", PublicKeyFile: esKey.WritePublicKey(t, keyDir)},
	}})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	scoped, err := bundles.NewVerifier(&bundles.SigningConfig{Scope: "write", Keys: []bundles.KeyConfig{
		{ID: "rs", PublicKeyFile: rsKey.WritePublicKey(t, t.TempDir())},
	}})
	if err != nil {
		t.Fatalf("NewVerifier with scope: %v", err)
	}
	files := map[string]string{"t/t.rego": module("S"), "tag/data.json": `{"value": "S"}`}

	tests := []struct {
		name     string
		opts     bundletest.Options
		verifier *bundles.Verifier
		// want is empty for success, else substrings of an ErrVerification error.
		want []string
	}{
		{name: "RS256 signed", opts: bundletest.Options{Revision: "r", SignWith: rsKey}, verifier: verifier},
		{name: "ES256 signed", opts: bundletest.Options{Revision: "r", SignWith: esKey}, verifier: verifier},
		{name: "signed, no manifest", opts: bundletest.Options{SignWith: esKey}, verifier: verifier},
		{name: "signed, no verifier", opts: bundletest.Options{SignWith: rsKey}},
		{name: "scope matches", opts: bundletest.Options{SignWith: rsKey, Scope: "write"}, verifier: scoped},
		{name: "unsigned", opts: bundletest.Options{Revision: "r"}, verifier: verifier, want: []string{"no .signatures.json", "opa build --signing-key"}},
		{name: "tampered module", opts: bundletest.Options{SignWith: rsKey, TamperAfterSigning: map[string]string{"t/t.rego": module("evil")}},
			verifier: verifier, want: []string{"t/t.rego", "digest mismatch"}},
		{name: "tampered data", opts: bundletest.Options{SignWith: rsKey, TamperAfterSigning: map[string]string{"tag/data.json": `{"value": "evil"}`}},
			verifier: verifier, want: []string{"data.json", "digest mismatch"}},
		{name: "file added after signing", opts: bundletest.Options{SignWith: rsKey, TamperAfterSigning: map[string]string{"t/extra.rego": "package t.extra\n"}},
			verifier: verifier, want: []string{"t/extra.rego", "not included in bundle signature"}},
		{name: "wrong key", opts: bundletest.Options{SignWith: impostor}, verifier: verifier, want: []string{"failed to verify JWT signature"}},
		{name: "unknown key id", opts: bundletest.Options{SignWith: stranger}, verifier: verifier, want: []string{"unknown", "not found"}},
		{name: "scope mismatch", opts: bundletest.Options{SignWith: rsKey, Scope: "read"}, verifier: scoped, want: []string{"scope mismatch"}},
		{name: "scope missing", opts: bundletest.Options{SignWith: rsKey}, verifier: scoped, want: []string{"scope mismatch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := bundles.LoadArchive(bytes.NewReader(bundletest.Build(t, files, tt.opts)), "signed.tar.gz", bundles.ArchiveOptions{Verifier: tt.verifier})
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("LoadArchive: %v", err)
				}
				if got := slices.Sorted(maps.Keys(b.Modules)); !slices.Equal(got, []string{"t/t.rego"}) {
					t.Errorf("Modules: got %q", got)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadArchive: got bundle %q, want it rejected", b.Revision)
			}
			if !errors.Is(err, bundles.ErrVerification) {
				t.Errorf("error: got %v, want ErrVerification", err)
			}
			if !containsAll(err.Error(), append(tt.want, "signed.tar.gz")...) {
				t.Errorf("error: got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestNewVerifierErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := bundletest.NewKey(t, "k", "RS256")
	privFile := filepath.Join(dir, "private.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(privFile, key.PrivatePEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(garbage, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := bundles.NewVerifier(&bundles.SigningConfig{Keys: []bundles.KeyConfig{
		{ID: "a", PublicKeyFile: filepath.Join(dir, "absent.pem")},
		{ID: "b", PublicKeyFile: privFile},
		{ID: "c", PublicKeyFile: garbage},
		{ID: "d", PublicKeyFile: key.WritePublicKey(t, dir)},
	}})
	if err == nil {
		t.Fatal("NewVerifier: got nil error")
	}
	for _, want := range []string{
		"policy.signing.keys[0].public_key_file", "absent.pem",
		"policy.signing.keys[1].public_key_file", "configure the public key only",
		"policy.signing.keys[2].public_key_file", "no PEM block",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error: got %q, want it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "keys[3]") {
		t.Errorf("error: got %q, want no complaint about the good key", err)
	}
}
