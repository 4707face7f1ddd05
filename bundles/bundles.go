// Package bundles loads policy bundles: the Rego modules and JSON/YAML data
// that the engine evaluates.
//
// A directory (or an fs.FS such as the embedded default library) is read with
// the same semantics as the stock opa CLI's `opa test DIR`, `opa eval -d DIR`
// and `opa build DIR`: every .rego file is a module, every .json/.yaml file is
// merged into data at its root. Test modules (*_test.rego) are left out.
package bundles

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
)

// Bundle is a loaded, parsed policy bundle.
type Bundle struct {
	// Source says where it came from (a path, "embedded").
	Source string
	// Revision identifies the content: the manifest revision when the bundle
	// has one, otherwise "sha256:" and the first 16 hex digits of a digest
	// of every file.
	Revision string
	// Modules are the parsed policy modules by file name.
	Modules map[string]*ast.Module
	// Data is the merged data document.
	Data map[string]any
}

// LoadDir loads the bundle rooted at dir.
func LoadDir(dir string) (*Bundle, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("load bundle: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("load bundle %s: not a directory (hint: point policy.bundle at the folder holding the .rego files)", dir)
	}
	return LoadFS(os.DirFS(dir), dir)
}

// LoadFS loads the bundle rooted at the top of fsys; source names it in
// errors and in Bundle.Source.
func LoadFS(fsys fs.FS, source string) (*Bundle, error) {
	res, err := loader.NewFileLoader().
		WithFS(fsys).
		WithRegoVersion(ast.RegoV1).
		Filtered([]string{"."}, skipNonPolicy)
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", source, err)
	}
	if len(res.Modules) == 0 {
		return nil, fmt.Errorf("load bundle %s: no .rego files found (hint: the folder must hold the policy modules, e.g. policies/)", source)
	}
	b := &Bundle{
		Source:  source,
		Modules: make(map[string]*ast.Module, len(res.Modules)),
		Data:    res.Documents,
	}
	h := sha256.New()
	names := make([]string, 0, len(res.Modules))
	for name := range res.Modules {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f := res.Modules[name]
		b.Modules[name] = f.Parsed
		h.Write([]byte(name))
		h.Write(f.Raw)
	}
	if err := hashData(fsys, h); err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", source, err)
	}
	b.Revision = "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
	return b, nil
}

// skipNonPolicy is a loader filter: it keeps .rego modules other than tests
// and data files, and walks every directory.
func skipNonPolicy(abspath string, info fs.FileInfo, _ int) bool {
	if info.IsDir() {
		return strings.HasPrefix(info.Name(), ".") && info.Name() != "."
	}
	return !isPolicyFile(info.Name())
}

func isPolicyFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".rego":
		return !strings.HasSuffix(name, "_test.rego")
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// hashData adds every data file to h in a stable order.
func hashData(fsys fs.FS, h interface{ Write([]byte) (int, error) }) error {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if ext := path.Ext(p); ext != ".rego" && isPolicyFile(d.Name()) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, p := range files {
		raw, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		h.Write([]byte(p))
		h.Write(raw)
	}
	return nil
}

// ErrNoBundle is returned when no bundle was configured.
var ErrNoBundle = errors.New("no policy bundle configured")
