package bundles

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// Combine merges bundles into one, as OPA activates several bundles side by
// side: each bundle owns its manifest roots, so the roots of two bundles
// must not overlap (a bundle without roots owns all of data and can only be
// combined with nothing). The result's Revision joins the revisions with
// "+" in argument order; its Source joins the sources with ", ".
//
// One bundle is returned as is. The inputs are not modified; the result
// shares their modules and data leaves.
func Combine(bs ...*Bundle) (*Bundle, error) {
	switch len(bs) {
	case 0:
		return nil, ErrNoBundle
	case 1:
		return bs[0], nil
	}
	for _, b := range bs {
		if err := checkRoots(b); err != nil {
			return nil, fmt.Errorf("combine bundles: %s: %w", b.Source, err)
		}
	}
	for i := range bs {
		for j := i + 1; j < len(bs); j++ {
			for _, ri := range rootsOf(bs[i]) {
				for _, rj := range rootsOf(bs[j]) {
					if bundle.RootPathsOverlap(ri, rj) {
						return nil, fmt.Errorf("combine bundles: roots overlap: %s owns %s and %s owns %s (hint: a bundle owns its manifest roots; give each bundle a .manifest with disjoint roots, e.g. [\"tollgate\"] and [\"data\"])",
							bs[i].Source, showRoot(ri), bs[j].Source, showRoot(rj))
					}
				}
			}
		}
	}

	out := &Bundle{Modules: map[string]*ast.Module{}, Data: map[string]any{}}
	var sources, revisions, digests []string
	owner := map[string]string{}
	for _, b := range bs {
		sources = append(sources, b.Source)
		revisions = append(revisions, b.Revision)
		digests = append(digests, b.identity())
		out.Roots = append(out.Roots, rootsOf(b)...)
		for name, m := range b.Modules {
			if prev, ok := owner[name]; ok {
				return nil, fmt.Errorf("combine bundles: module %s is in both %s and %s (hint: keep each bundle's files under its own folder)", name, prev, b.Source)
			}
			owner[name] = b.Source
			out.Modules[name] = m
		}
		data, err := mergeData(out.Data, b.Data, nil)
		if err != nil {
			return nil, fmt.Errorf("combine bundles: %s: %w", b.Source, err)
		}
		out.Data = data
	}
	out.Source = strings.Join(sources, ", ")
	out.Revision = strings.Join(revisions, "+")
	out.digest = strings.Join(digests, "+")
	return out, nil
}

// rootsOf returns b's roots; a bundle without roots owns everything ("").
func rootsOf(b *Bundle) []string {
	if len(b.Roots) == 0 {
		return []string{""}
	}
	return b.Roots
}

func showRoot(r string) string {
	if r == "" {
		return "all of data (no manifest roots)"
	}
	return fmt.Sprintf("root %q", r)
}

// normalizeRoots trims slashes like OPA does and rejects roots that
// overlap each other. A single "" (own everything) becomes nil.
func normalizeRoots(roots []string) ([]string, error) {
	out := make([]string, len(roots))
	for i, r := range roots {
		out[i] = strings.Trim(r, "/")
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if bundle.RootPathsOverlap(out[i], out[j]) {
				return nil, fmt.Errorf("roots %q and %q overlap", out[i], out[j])
			}
		}
	}
	if len(out) == 1 && out[0] == "" {
		return nil, nil
	}
	return out, nil
}

// checkRoots reports a module or data document of b outside b's roots.
func checkRoots(b *Bundle) error {
	roots := rootsOf(b)
	if len(roots) == 1 && roots[0] == "" {
		return nil
	}
	names := slices.Sorted(maps.Keys(b.Modules))
	for _, name := range names {
		m := b.Modules[name]
		if m == nil || m.Package == nil {
			continue
		}
		var segs []string
		for _, t := range m.Package.Path[1:] {
			s, ok := t.Value.(ast.String)
			if !ok {
				return fmt.Errorf("module %s: package %v is not a plain path", name, m.Package.Path)
			}
			segs = append(segs, string(s))
		}
		if !bundle.RootPathsContain(roots, strings.Join(segs, "/")) {
			return fmt.Errorf("module %s: package %v is outside the manifest roots %q", name, m.Package.Path, roots)
		}
	}
	return checkDataRoots(b.Data, nil, roots)
}

func checkDataRoots(node any, path []string, roots []string) error {
	p := strings.Join(path, "/")
	if len(path) > 0 && bundle.RootPathsContain(roots, p) {
		return nil
	}
	obj, ok := node.(map[string]any)
	if !ok || !isRootAncestor(path, roots) {
		return fmt.Errorf("data at /%s is outside the manifest roots %q (hint: move the data file under a root, or add a root)", p, roots)
	}
	keys := slices.Sorted(maps.Keys(obj))
	for _, k := range keys {
		if err := checkDataRoots(obj[k], append(slices.Clip(path), k), roots); err != nil {
			return err
		}
	}
	return nil
}

// isRootAncestor says whether path is a strict prefix of some root.
func isRootAncestor(path []string, roots []string) bool {
	for _, r := range roots {
		segs := strings.Split(r, "/")
		if len(segs) > len(path) && slices.Equal(segs[:len(path)], path) {
			return true
		}
	}
	return false
}

// mergeData returns a ∪ b without modifying either: objects merge key by
// key; any other value present in both is a conflict.
func mergeData(a, b map[string]any, path []string) (map[string]any, error) {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]any{}
	}
	keys := make([]string, 0, len(b))
	for k := range b {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		bv := b[k]
		av, ok := out[k]
		if !ok {
			out[k] = bv
			continue
		}
		am, aok := av.(map[string]any)
		bm, bok := bv.(map[string]any)
		p := append(slices.Clip(path), k)
		if !aok || !bok {
			return nil, fmt.Errorf("data at /%s is defined by two bundles", strings.Join(p, "/"))
		}
		merged, err := mergeData(am, bm, p)
		if err != nil {
			return nil, err
		}
		out[k] = merged
	}
	return out, nil
}
