package bundles_test

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tollgate/tollgate/bundles"
)

func parsed(t *testing.T, name, src string) *ast.Module {
	t.Helper()
	m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCombine(t *testing.T) {
	t.Parallel()
	policy := &bundles.Bundle{
		Source: "policy", Revision: "p1", Roots: []string{"tollgate"},
		Modules: map[string]*ast.Module{"authz.rego": parsed(t, "authz.rego", "package tollgate.authz\n\nallow := true\n")},
		Data:    map[string]any{"tollgate": map[string]any{"defaults": map[string]any{"x": 1}}},
	}
	data := &bundles.Bundle{
		Source: "data", Revision: "d7", Roots: []string{"data/catalog", "data/teams"},
		Modules: map[string]*ast.Module{},
		Data:    map[string]any{"data": map[string]any{"catalog": map[string]any{"m": "gpt"}, "teams": map[string]any{"ml": true}}},
	}
	prices := &bundles.Bundle{
		Source: "prices", Revision: "x", Roots: []string{"data/prices"},
		Data: map[string]any{"data": map[string]any{"prices": []any{1, 2}}},
	}
	got, err := bundles.Combine(policy, data, prices)
	if err != nil {
		t.Fatalf("Combine: %v", err)
	}
	if got.Revision != "p1+d7+x" || got.Source != "policy, data, prices" {
		t.Errorf("got revision %q source %q, want p1+d7+x and the three sources", got.Revision, got.Source)
	}
	if !slices.Equal(got.Roots, []string{"tollgate", "data/catalog", "data/teams", "data/prices"}) {
		t.Errorf("Roots: got %q", got.Roots)
	}
	want := map[string]any{
		"tollgate": map[string]any{"defaults": map[string]any{"x": 1}},
		"data":     map[string]any{"catalog": map[string]any{"m": "gpt"}, "teams": map[string]any{"ml": true}, "prices": []any{1, 2}},
	}
	if diff := cmp.Diff(want, got.Data); diff != "" {
		t.Errorf("Data (-want +got):\n%s", diff)
	}
	if len(got.Modules) != 1 || got.Modules["authz.rego"] == nil {
		t.Errorf("Modules: got %v", moduleNames(got))
	}
	// The inputs are untouched.
	if _, ok := data.Data["data"].(map[string]any)["prices"]; ok {
		t.Error("Combine modified an input's data")
	}
	if one, _ := bundles.Combine(policy); one != policy {
		t.Error("Combine of one bundle: want it returned as is")
	}
}

func TestCombineErrors(t *testing.T) {
	t.Parallel()
	mk := func(src string, roots ...string) *bundles.Bundle {
		return &bundles.Bundle{Source: src, Revision: src, Roots: roots, Data: map[string]any{}}
	}
	withModule := func(b *bundles.Bundle, name, pkg string) *bundles.Bundle {
		b.Modules = map[string]*ast.Module{name: parsed(t, name, "package "+pkg+"\n\nx := 1\n")}
		return b
	}
	tests := []struct {
		name string
		bs   []*bundles.Bundle
		want []string // empty: no error
	}{
		{name: "nested roots", bs: []*bundles.Bundle{mk("a", "tollgate"), mk("b", "tollgate/authz")},
			want: []string{"roots overlap", `a owns root "tollgate"`, `b owns root "tollgate/authz"`}},
		{name: "same root", bs: []*bundles.Bundle{mk("a", "data"), mk("b", "x", "data")}, want: []string{"roots overlap"}},
		{name: "no roots owns everything", bs: []*bundles.Bundle{mk("a"), mk("b", "data")}, want: []string{"a owns all of data", "hint"}},
		{name: "prefix of a name is no overlap", bs: []*bundles.Bundle{mk("a", "data/team"), mk("b", "data/teams")}},
		{name: "module outside its roots", bs: []*bundles.Bundle{withModule(mk("a", "tollgate"), "x.rego", "other"), mk("b", "data")},
			want: []string{"x.rego", "outside the manifest roots"}},
		{name: "same module name", bs: []*bundles.Bundle{withModule(mk("a", "p"), "m.rego", "p"), withModule(mk("b", "q"), "m.rego", "q")},
			want: []string{"module m.rego is in both a and b"}},
		{name: "data outside its roots", bs: []*bundles.Bundle{
			{Source: "a", Roots: []string{"data/x"}, Data: map[string]any{"data": map[string]any{"y": 1}}}, mk("b", "tollgate")},
			want: []string{"data at /data/y is outside"}},
		{name: "none", want: []string{"no policy bundle"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := bundles.Combine(tt.bs...)
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("Combine: got %v, want nil", err)
				}
				return
			}
			if err == nil || !containsAll(err.Error(), tt.want...) {
				t.Errorf("Combine: got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestLoadFSManifestRoots(t *testing.T) {
	t.Parallel()
	m := baseFS()
	m[".manifest"] = &fstest.MapFile{Data: []byte(`{"roots": ["tollgate", "/data/"]}`)}
	b, err := bundles.LoadFS(m, "mem")
	if err != nil {
		t.Fatalf("LoadFS: %v", err)
	}
	if !slices.Equal(b.Roots, []string{"tollgate", "data"}) {
		t.Errorf("Roots: got %q, want [tollgate data]", b.Roots)
	}
	base, _ := bundles.LoadFS(baseFS(), "mem")
	if b.Revision == base.Revision {
		t.Errorf("Revision: got %q for both, want the manifest to count", b.Revision)
	}

	for _, tt := range []struct{ manifest, want string }{
		{`{"roots": ["data"]}`, "package data.tollgate.x is outside the manifest roots"},
		{`{"roots": ["tollgate"]}`, "data at /data is outside"},
		{`{"roots": ["a", "a/b"]}`, `roots "a" and "a/b" overlap`},
		{`{"roots": `, ".manifest"},
	} {
		m := baseFS()
		m[".manifest"] = &fstest.MapFile{Data: []byte(tt.manifest)}
		if _, err := bundles.LoadFS(m, "mem"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadFS with %s: got %v, want an error with %q", tt.manifest, err, tt.want)
		}
	}
}
