// Package bundles loads policy bundles: the Rego modules and JSON/YAML data
// that the engine evaluates.
//
// A directory (or an fs.FS such as the embedded default library) is read with
// the same semantics as the stock opa CLI's `opa test DIR`, `opa eval -d DIR`
// and `opa build DIR`: every .rego file is a module, every .json/.yaml file is
// merged into data at its root. Test modules (*_test.rego) are left out.
// An optional .manifest at the top declares the roots the bundle owns, as in
// an OPA bundle directory.
//
// Beyond directories, the package reads OPA bundle archives (.tar.gz, as
// made by `opa build`) from files and HTTP bundle servers, verifies their
// signatures, combines several bundles into one, and keeps the engine's
// policy current with a Manager that reloads on change, compiles, and swaps
// only what compiled.
package bundles

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	// Roots are the paths under data the bundle owns (manifest roots, e.g.
	// "tollgate" or "data/catalog"); empty means it owns all of data.
	Roots []string

	// digest identifies the content even when a manifest revision is not
	// bumped; empty for bundles built by hand.
	digest string
}

// identity is what tells two bundles apart.
func (b *Bundle) identity() string {
	if b.digest != "" {
		return b.digest
	}
	return "revision:" + b.Revision
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
	roots, raw, err := readManifestRoots(fsys)
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", source, err)
	}
	if raw != nil {
		h.Write([]byte(manifestFile))
		h.Write(raw)
	}
	b.Roots = roots
	if err := checkRoots(b); err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", source, err)
	}
	b.digest = hex.EncodeToString(h.Sum(nil))
	b.Revision = "sha256:" + b.digest[:16]
	return b, nil
}

// manifestFile is the OPA bundle manifest.
const manifestFile = ".manifest"

// readManifestRoots returns the roots of fsys's .manifest, if it has one,
// and the manifest's bytes. A directory's revision stays its content digest
// even when the manifest names one, so that every edit is a new revision.
func readManifestRoots(fsys fs.FS) ([]string, []byte, error) {
	raw, err := fs.ReadFile(fsys, manifestFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var m struct {
		Roots *[]string `json:"roots"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, fmt.Errorf("%s: %w (hint: it is JSON such as {\"roots\": [\"tollgate\"]})", manifestFile, err)
	}
	if m.Roots == nil {
		return nil, raw, nil
	}
	roots, err := normalizeRoots(*m.Roots)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", manifestFile, err)
	}
	return roots, raw, nil
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
