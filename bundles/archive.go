package bundles

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/keys"
)

// ErrVerification is wrapped by every error about a bundle's signature:
// missing, made with an unknown or wrong key, or not matching the files.
var ErrVerification = errors.New("bundle signature not valid")

// ArchiveOptions control how an OPA bundle archive is read.
type ArchiveOptions struct {
	// Verifier checks the bundle's .signatures.json; nil reads the bundle
	// without looking at signatures.
	Verifier *Verifier
	// MaxBytes bounds the archive and, separately, the sum of its unpacked
	// files; 0 means DefaultMaxBytes.
	MaxBytes int64
}

func (o ArchiveOptions) maxBytes() int64 {
	if o.MaxBytes > 0 {
		return o.MaxBytes
	}
	return DefaultMaxBytes
}

// LoadFile reads the OPA bundle archive (.tar.gz) at path.
func LoadFile(path string, opts ArchiveOptions) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load bundle: %w", err)
	}
	defer f.Close()
	return LoadArchive(f, path, opts)
}

// LoadArchive reads an OPA bundle archive (.tar.gz, as made by `opa build`)
// with OPA's bundle reader; source names it in errors and Bundle.Source.
//
// Data files map by folder as in LoadFS and in OPA (a/b/data.json is
// data.a.b); test modules (*_test.rego) are left out like LoadFS does; the
// Revision is the manifest's revision when set, otherwise "sha256:" and 16
// hex digits of a digest of the modules, data and roots. With a Verifier,
// the archive must carry a .signatures.json that covers every file and is
// signed by a configured key, or the error wraps ErrVerification.
func LoadArchive(r io.Reader, source string, opts ArchiveOptions) (*Bundle, error) {
	limit := opts.maxBytes()
	raw, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", source, err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("load bundle %s: archive is larger than %d bytes (hint: raise max_bytes)", source, limit)
	}
	return readArchive(raw, source, opts)
}

func readArchive(raw []byte, source string, opts ArchiveOptions) (*Bundle, error) {
	limit := opts.maxBytes()
	signed, err := scanArchive(raw, limit)
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", source, err)
	}
	vc := opts.Verifier.config()
	if vc != nil && !signed {
		return nil, fmt.Errorf("load bundle %s: %w: it has no .signatures.json, and policy.signing requires one (hint: sign it with opa build --signing-key KEY --signing-alg ALG, or opa sign)", source, ErrVerification)
	}
	read := func(verify bool) (bundle.Bundle, error) {
		rd := bundle.NewCustomReader(bundle.NewTarballLoaderWithBaseURL(bytes.NewReader(raw), "").WithSizeLimitBytes(limit)).
			WithRegoVersion(ast.RegoV1).
			WithSizeLimitBytes(limit).
			WithLazyLoadingMode(false).
			WithSkipBundleVerification(!verify)
		if verify {
			rd = rd.WithBundleVerificationConfig(vc)
		}
		return rd.Read()
	}
	ob, err := read(vc != nil)
	if err != nil {
		// Tell a signature problem from a broken bundle: when the archive
		// reads without verification, the signature was the problem.
		if vc != nil {
			if _, plainErr := read(false); plainErr == nil {
				return nil, fmt.Errorf("load bundle %s: %w: %w", source, ErrVerification, err)
			}
		}
		return nil, fmt.Errorf("load bundle %s: %w", source, err)
	}
	return fromOPA(&ob, source)
}

// scanArchive checks the archive's unpacked size before OPA's reader holds
// it all in memory, and says whether it has a signatures file.
func scanArchive(raw []byte, limit int64) (signed bool, err error) {
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return false, fmt.Errorf("not a gzip archive: %w (hint: build it with opa build)", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return signed, nil
		}
		if err != nil {
			return false, fmt.Errorf("read archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		total += h.Size
		if total > limit {
			return false, fmt.Errorf("unpacked files exceed %d bytes (hint: raise max_bytes)", limit)
		}
		if bundle.IsSignaturesFile(h.Name) {
			signed = true
		}
	}
}

// fromOPA converts a bundle read by OPA.
func fromOPA(ob *bundle.Bundle, source string) (*Bundle, error) {
	if len(ob.WasmModules) > 0 || len(ob.Wasm) > 0 || len(ob.PlanModules) > 0 {
		return nil, fmt.Errorf("load bundle %s: it holds wasm or plan modules; Tollgate evaluates Rego only (hint: build it without --target)", source)
	}
	if ob.Type() == bundle.DeltaBundleType {
		return nil, fmt.Errorf("load bundle %s: delta bundles are not supported; serve a snapshot bundle", source)
	}
	b := &Bundle{Source: source, Modules: map[string]*ast.Module{}, Data: ob.Data}
	if b.Data == nil {
		b.Data = map[string]any{}
	}
	if ob.Manifest.Roots != nil {
		roots, err := normalizeRoots(*ob.Manifest.Roots)
		if err != nil {
			return nil, fmt.Errorf("load bundle %s: manifest: %w", source, err)
		}
		b.Roots = roots
	}

	h := sha256.New()
	mods := slices.Clone(ob.Modules)
	slices.SortFunc(mods, func(x, y bundle.ModuleFile) int { return strings.Compare(x.Path, y.Path) })
	for _, m := range mods {
		name := strings.TrimPrefix(m.Path, "/")
		if strings.HasSuffix(name, "_test.rego") {
			continue
		}
		b.Modules[name] = m.Parsed
		h.Write([]byte(name))
		h.Write(m.Raw)
	}
	if len(b.Modules) == 0 && len(b.Data) == 0 {
		return nil, fmt.Errorf("load bundle %s: no .rego modules and no data (hint: is it an OPA bundle made by opa build?)", source)
	}
	data, err := json.Marshal(b.Data) // map keys sorted: stable
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: digest data: %w", source, err)
	}
	h.Write([]byte("data"))
	h.Write(data)
	roots, _ := json.Marshal(b.Roots)
	h.Write(roots)
	b.digest = hex.EncodeToString(h.Sum(nil))
	b.Revision = ob.Manifest.Revision
	if b.Revision == "" {
		b.Revision = "sha256:" + b.digest[:16]
	}
	return b, nil
}

// Verifier checks bundle signatures against configured keys.
type Verifier struct {
	vc *bundle.VerificationConfig
}

func (v *Verifier) config() *bundle.VerificationConfig {
	if v == nil {
		return nil
	}
	return v.vc
}

// NewVerifier reads the keys of cfg; a nil cfg gives a nil Verifier, with
// which signatures are not checked.
func NewVerifier(cfg *SigningConfig) (*Verifier, error) {
	if cfg == nil {
		return nil, nil
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("policy.signing.keys: empty; list at least one {id, algorithm, public_key_file}")
	}
	pub := make(map[string]*keys.Config, len(cfg.Keys))
	var errs []error
	for i, k := range cfg.Keys {
		p := fmt.Sprintf("policy.signing.keys[%d].public_key_file", i)
		alg := k.Algorithm
		if alg == "" {
			alg = "RS256"
		}
		raw, err := os.ReadFile(k.PublicKeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		if !strings.HasPrefix(alg, "HS") {
			if err := checkPublicKeyPEM(raw); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", p, k.PublicKeyFile, err))
				continue
			}
		}
		pub[k.ID] = &keys.Config{Key: string(raw), Algorithm: alg, Scope: cfg.Scope}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Verifier{vc: bundle.NewVerificationConfig(pub, "", cfg.Scope, nil)}, nil
}

// checkPublicKeyPEM rejects a file that holds no usable public key at
// start, rather than at the first bundle.
func checkPublicKeyPEM(raw []byte) error {
	block, _ := pem.Decode(raw)
	if block == nil {
		return errors.New("no PEM block (hint: want -----BEGIN PUBLIC KEY-----)")
	}
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		_, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		_, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		_, err = x509.ParseCertificate(block.Bytes)
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
		return fmt.Errorf("holds a %s; configure the public key only", strings.ToLower(block.Type))
	default:
		return fmt.Errorf("PEM block %q is not a public key", block.Type)
	}
	return err
}
