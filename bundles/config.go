package bundles

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/keys"
)

// Source types of SourceConfig.Type.
const (
	TypeDir  = "dir"
	TypeFile = "file"
	TypeHTTP = "http"
)

// Defaults applied to zero fields of a SourceConfig.
const (
	DefaultPollInterval = 30 * time.Second
	DefaultTimeout      = 30 * time.Second
	DefaultMaxBytes     = 64 << 20
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = 2 * time.Minute
	DefaultDebounce     = 250 * time.Millisecond
	// pollJitter is the fraction by which a poll interval or a backoff delay
	// is stretched at random, so replicas do not poll in lockstep.
	pollJitter = 0.1
)

// Config is the bundle part of the policy section. It is meant to sit inline
// in the policy section (engine.Config), so its errors cite policy.<field>.
//
//	policy:
//	  bundles:
//	    - {type: http, url: https://bundles.example.com/tollgate.tar.gz}
//	  signing:
//	    keys: [{id: release, algorithm: RS256, public_key_file: /etc/tollgate/bundle.pub}]
type Config struct {
	// Bundle is the single policy directory of older configurations
	// (policy.bundle); it means the same as one bundles entry of type dir,
	// and cannot be combined with Bundles.
	Bundle string `yaml:"bundle"`
	// Bundles are the sources whose bundles are combined into the policy.
	Bundles []SourceConfig `yaml:"bundles"`
	// Signing, when set, requires every file and http bundle to carry a
	// valid .signatures.json made with one of its keys.
	Signing *SigningConfig `yaml:"signing"`
	// Default is the bundle tree used when no source is configured, normally
	// the library embedded in the binary (policies.FS); its Source is
	// "embedded". Not read from YAML.
	Default fs.FS `yaml:"-"`
}

// SourceConfig is one entry of policy.bundles.
type SourceConfig struct {
	// Type is dir, file (an OPA .tar.gz bundle) or http (an OPA bundle
	// server or any URL serving a .tar.gz bundle).
	Type string `yaml:"type"`
	// Name labels the source in logs and in Status; it defaults to the path
	// or the URL without its query.
	Name string `yaml:"name"`
	// Path is the directory (dir) or the .tar.gz file (file).
	Path string `yaml:"path"`
	// URL is the bundle's address (http).
	URL string `yaml:"url"`
	// Headers are sent with every request (http), e.g. Authorization. Their
	// values are never logged.
	Headers map[string]string `yaml:"headers"`
	// PollInterval is the time between two polls (http, default 30s, with
	// up to 10% jitter). For dir and file it is an optional rescan period on
	// top of file-system events, for file systems without inotify.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Timeout bounds one request, body included (http, default 30s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxBytes bounds both the archive and the sum of its unpacked files
	// (file, http; default 64 MiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// MinBackoff and MaxBackoff bound the delay after a failed poll: it
	// starts at MinBackoff and doubles up to MaxBackoff (http; defaults 1s
	// and 2m).
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Debounce is the quiet time after the last file-system event before a
	// reload, so an editor's or git's burst of writes reloads once (dir,
	// file; default 250ms).
	Debounce time.Duration `yaml:"debounce"`
}

// SigningConfig lists the keys that may sign bundles.
type SigningConfig struct {
	// Keys verify signatures; the JWT header's kid picks the key.
	Keys []KeyConfig `yaml:"keys"`
	// Scope, when set, must equal the scope claim of the signature.
	Scope string `yaml:"scope"`
}

// KeyConfig is one verification key.
type KeyConfig struct {
	// ID is the key id (kid) the signer used (opa build --signing-key ...
	// --claims-file or the keyid claim).
	ID string `yaml:"id"`
	// Algorithm is the JWS algorithm: RS256 (default), RS384, RS512, PS256,
	// PS384, PS512, ES256, ES384, ES512, or HS256/384/512 with a shared
	// secret in PublicKeyFile.
	Algorithm string `yaml:"algorithm"`
	// PublicKeyFile holds the PEM public key (or certificate).
	PublicKeyFile string `yaml:"public_key_file"`
}

// Sources returns the configured sources with defaults applied: the entries
// of policy.bundles, or one dir source for policy.bundle, or none.
func (c *Config) Sources() []SourceConfig {
	var out []SourceConfig
	if len(c.Bundles) > 0 {
		out = slices.Clone(c.Bundles)
	} else if c.Bundle != "" {
		out = []SourceConfig{{Type: TypeDir, Path: c.Bundle}}
	}
	for i := range out {
		out[i].applyDefaults()
	}
	return out
}

func (s *SourceConfig) applyDefaults() {
	if s.Type == TypeHTTP && s.PollInterval == 0 {
		s.PollInterval = DefaultPollInterval
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.MaxBytes == 0 {
		s.MaxBytes = DefaultMaxBytes
	}
	if s.MinBackoff == 0 {
		s.MinBackoff = DefaultMinBackoff
	}
	if s.MaxBackoff == 0 {
		s.MaxBackoff = max(DefaultMaxBackoff, s.MinBackoff)
	}
	if s.Debounce == 0 {
		s.Debounce = DefaultDebounce
	}
}

// label names the source in errors, logs and Status.
func (s *SourceConfig) label() string {
	if s.Name != "" {
		return s.Name
	}
	if s.Type == TypeHTTP {
		return redactURL(s.URL)
	}
	return s.Path
}

// LogValue shows the source without header values, which may be secrets.
func (s SourceConfig) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("type", s.Type), slog.String("location", s.label())}
	if len(s.Headers) > 0 {
		names := make([]string, 0, len(s.Headers))
		for k := range s.Headers {
			names = append(names, k)
		}
		slices.Sort(names)
		attrs = append(attrs, slog.String("headers", strings.Join(names, ",")))
	}
	return slog.GroupValue(attrs...)
}

// redactURL drops credentials, query and fragment, which may hold tokens.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// Validate reports every problem at once, each citing its YAML path.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.Bundle != "" && len(c.Bundles) > 0 {
		add("policy.bundle: set together with policy.bundles; move %q into policy.bundles as {type: dir, path: %q}", c.Bundle, c.Bundle)
	}
	verifiable := 0
	names := map[string]int{}
	for i, s := range c.Bundles {
		p := fmt.Sprintf("policy.bundles[%d]", i)
		switch s.Type {
		case TypeDir, TypeFile:
			if s.Path == "" {
				add("%s.path: empty; set the %s to load", p, map[string]string{TypeDir: "directory", TypeFile: ".tar.gz file"}[s.Type])
			}
			if s.URL != "" {
				add("%s.url: set for type %s; url is for type http (did you mean path?)", p, s.Type)
			}
			if len(s.Headers) > 0 {
				add("%s.headers: set for type %s; headers are for type http", p, s.Type)
			}
			if s.Type == TypeFile {
				verifiable++
			} else if c.Signing != nil {
				add("%s.type: dir bundles cannot be signature-checked but policy.signing is set; build a signed bundle (opa build --signing-key) and use type file or http", p)
			}
		case TypeHTTP:
			verifiable++
			if s.Path != "" {
				add("%s.path: set for type http; path is for types dir and file (did you mean url?)", p)
			}
			if s.URL == "" {
				add("%s.url: empty; set the bundle's address, e.g. https://bundles.example.com/tollgate.tar.gz", p)
			} else if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				add("%s.url: %q is not an http(s) URL with a host", p, redactURL(s.URL))
			}
			for k := range s.Headers {
				if k == "" || strings.ContainsAny(k, " :\r\n") {
					add("%s.headers: %q is not a header name", p, k)
				}
			}
		case "":
			add("%s.type: empty; set dir, file or http", p)
		default:
			add("%s.type: %q is not dir, file or http", p, s.Type)
		}
		for _, d := range []struct {
			field string
			v     time.Duration
		}{
			{"poll_interval", s.PollInterval}, {"timeout", s.Timeout}, {"min_backoff", s.MinBackoff},
			{"max_backoff", s.MaxBackoff}, {"debounce", s.Debounce},
		} {
			if d.v < 0 {
				add("%s.%s: %s is negative; use a positive duration such as \"30s\", or leave it out for the default", p, d.field, d.v)
			}
		}
		if s.MinBackoff > 0 && s.MaxBackoff > 0 && s.MinBackoff > s.MaxBackoff {
			add("%s.min_backoff: %s is above max_backoff %s", p, s.MinBackoff, s.MaxBackoff)
		}
		if s.MaxBytes < 0 {
			add("%s.max_bytes: %d is negative; leave it out for the default of %d", p, s.MaxBytes, DefaultMaxBytes)
		}
		if s.Name != "" {
			if j, ok := names[s.Name]; ok {
				add("%s.name: %q is also the name of policy.bundles[%d]", p, s.Name, j)
			}
			names[s.Name] = i
		}
	}
	if c.Bundle != "" && len(c.Bundles) == 0 && c.Signing != nil {
		add("policy.bundle: a directory cannot be signature-checked but policy.signing is set; build a signed bundle (opa build --signing-key) and list it in policy.bundles with type file or http")
	}
	if s := c.Signing; s != nil {
		if verifiable == 0 && c.Bundle == "" {
			add("policy.signing: set, but no bundle of type file or http is configured in policy.bundles")
		}
		if len(s.Keys) == 0 {
			add("policy.signing.keys: empty; list at least one {id, algorithm, public_key_file}")
		}
		ids := map[string]int{}
		for i, k := range s.Keys {
			p := fmt.Sprintf("policy.signing.keys[%d]", i)
			if k.ID == "" {
				add("%s.id: empty; set the key id the bundles are signed with", p)
			} else if j, ok := ids[k.ID]; ok {
				add("%s.id: %q is also the id of policy.signing.keys[%d]", p, k.ID, j)
			} else {
				ids[k.ID] = i
			}
			if k.Algorithm != "" && !keys.IsSupportedAlgorithm(k.Algorithm) {
				add("%s.algorithm: %q is not supported (want one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, HS256, HS384, HS512)", p, k.Algorithm)
			}
			if k.PublicKeyFile == "" {
				add("%s.public_key_file: empty; set the PEM file holding the public key", p)
			}
		}
	}
	return errors.Join(errs...)
}
