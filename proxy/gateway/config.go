// Package gateway assembles Tollgate from its configuration: it loads the
// YAML file, wires engine, bundles, auth, quota, analytics and upstreams into
// a proxy.Server, and owns their lifecycle.
package gateway

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/proxy"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/moderation"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/quota"
)

// DemoKey is the API key of the embedded default configuration. It is
// public; the default configuration is for a developer's own machine.
const DemoKey = "tg_kdemo0000_makerunlocaldemokeynotforproduction"

// DefaultConfigYAML is the configuration `make run` uses: the simulator as
// the only upstream, in-memory quotas, events to a JSON-lines file, and one
// demo key (see README.md).
//
//go:embed default.yaml
var DefaultConfigYAML []byte

// Config is the root of tollgate.yaml.
type Config struct {
	Server     proxy.Config      `yaml:"server"`
	Policy     engine.Config     `yaml:"policy"`
	Auth       auth.Config       `yaml:"auth"`
	Providers  []provider.Config `yaml:"providers"`
	Quota      quota.Config      `yaml:"quota"`
	Analytics  AnalyticsConfig   `yaml:"analytics"`
	Moderation moderation.Config `yaml:"moderation"`
	PII        PIIConfig         `yaml:"pii"`
	Log        LogConfig         `yaml:"log"`
}

// PIIConfig holds the secret of the PII hash action (a keyed, per-tenant
// token): from an environment variable or a file, never the config itself.
// Without one, a random secret is drawn at start: hashes are then stable
// only within one process.
type PIIConfig struct {
	HashSecretEnv  string `yaml:"hash_secret_env"`
	HashSecretFile string `yaml:"hash_secret_file"`
}

// hashSecret reads the configured secret; nil when none is configured.
func (c PIIConfig) hashSecret() ([]byte, error) {
	switch {
	case c.HashSecretEnv != "":
		v := os.Getenv(c.HashSecretEnv)
		if v == "" {
			return nil, fmt.Errorf("pii.hash_secret_env: the environment variable %s is empty or unset", c.HashSecretEnv)
		}
		return []byte(v), nil
	case c.HashSecretFile != "":
		b, err := os.ReadFile(c.HashSecretFile)
		if err != nil {
			return nil, fmt.Errorf("pii.hash_secret_file: %w", err)
		}
		return bytes.TrimSpace(b), nil
	}
	return nil, nil
}

// AnalyticsConfig says where inference-log events go: ClickHouse when an
// address is set, else a JSON-lines file.
type AnalyticsConfig struct {
	ClickHouse analytics.ClickHouseConfig `yaml:"clickhouse"`
	// File receives JSON lines when ClickHouse is not configured; "-" is
	// standard output.
	File string `yaml:"file"`
	// DecisionFile receives the decision log as JSON lines when ClickHouse
	// is not configured; default: File with .decisions.jsonl.
	DecisionFile string                 `yaml:"decision_file"`
	Writer       analytics.WriterConfig `yaml:"writer"`
}

// LogConfig sets the process log.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Load reads the configuration: defaults, then the file (the embedded
// default when path is empty), then TOLLGATE_<SECTION>_<FIELD> environment
// variables, then validation. Errors name the file and the field or line.
func Load(path string, environ []string) (*Config, error) {
	raw, name := DefaultConfigYAML, "embedded default config"
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		raw, name = b, path
	}
	cfg, err := Parse(raw, name)
	if err != nil {
		return nil, err
	}
	if err := applyEnv(cfg, environ); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: invalid configuration:\n%w", name, err)
	}
	return cfg, nil
}

// Parse decodes YAML strictly: an unknown key is an error.
func Parse(raw []byte, name string) (*Config, error) {
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w (hint: compare with deploy/tollgate.example.yaml)", name, err)
	}
	cfg.defaults()
	return cfg, nil
}

func (c *Config) defaults() {
	c.Server.Defaults()
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
}

// Validate returns every problem at once.
func (c *Config) Validate() error {
	errs := []error{c.Server.Validate(), c.Policy.Validate(), c.Auth.Validate(), c.Quota.Validate(), c.Analytics.Writer.Validate(), c.Moderation.Validate()}
	if c.PII.HashSecretEnv != "" && c.PII.HashSecretFile != "" {
		errs = append(errs, errors.New("pii: set hash_secret_env or hash_secret_file, not both"))
	}
	if len(c.Providers) == 0 {
		errs = append(errs, errors.New("providers: empty; configure at least one upstream (see deploy/tollgate.example.yaml)"))
	}
	names := map[string]bool{}
	for i := range c.Providers {
		errs = append(errs, c.Providers[i].Validate(i))
		if n := c.Providers[i].Name; n != "" && names[n] {
			errs = append(errs, fmt.Errorf("providers[%d].name: %q is used twice", i, n))
		}
		names[c.Providers[i].Name] = true
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not json or text", c.Log.Format))
	}
	return errors.Join(errs...)
}

// applyEnv sets scalar fields from TOLLGATE_<SECTION>_<FIELD> variables,
// e.g. TOLLGATE_SERVER_LISTEN or TOLLGATE_QUOTA_REDIS_ADDR.
func applyEnv(cfg *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "TOLLGATE_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	used := map[string]bool{}
	err := setFromEnv(reflect.ValueOf(cfg).Elem(), "TOLLGATE", env, used)
	if err != nil {
		return err
	}
	for k := range env {
		if !used[k] && k != "TOLLGATE_CONFIG" {
			return fmt.Errorf("environment variable %s names no configuration field (hint: TOLLGATE_<SECTION>_<FIELD>, e.g. TOLLGATE_SERVER_LISTEN)", k)
		}
	}
	return nil
}

func setFromEnv(v reflect.Value, prefix string, env map[string]string, used map[string]bool) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" && v.Field(i).Kind() == reflect.Struct {
			if err := setFromEnv(v.Field(i), prefix, env, used); err != nil {
				return err
			}
			continue
		}
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			if err := setFromEnv(fv, name, env, used); err != nil {
				return err
			}
			continue
		}
		val, ok := env[name]
		if !ok {
			continue
		}
		used[name] = true
		switch fv.Kind() {
		case reflect.String:
			fv.SetString(val)
		case reflect.Bool:
			b, err := strconv.ParseBool(val)
			if err != nil {
				return fmt.Errorf("%s: %q is not true or false", name, val)
			}
			fv.SetBool(b)
		case reflect.Int64:
			if fv.Type() == reflect.TypeOf(time.Duration(0)) {
				d, err := time.ParseDuration(val)
				if err != nil {
					return fmt.Errorf("%s: %q is not a duration (want e.g. \"30s\")", name, val)
				}
				fv.SetInt(int64(d))
				continue
			}
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %q is not an integer", name, val)
			}
			fv.SetInt(n)
		case reflect.Int, reflect.Int32:
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %q is not an integer", name, val)
			}
			fv.SetInt(n)
		case reflect.Float64:
			x, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return fmt.Errorf("%s: %q is not a number", name, val)
			}
			fv.SetFloat(x)
		case reflect.Slice:
			if fv.Type().Elem().Kind() != reflect.String {
				return fmt.Errorf("%s: this field cannot be set from the environment; use the config file", name)
			}
			var parts []string
			for _, p := range strings.Split(val, ",") {
				if p = strings.TrimSpace(p); p != "" {
					parts = append(parts, p)
				}
			}
			fv.Set(reflect.ValueOf(parts))
		default:
			return fmt.Errorf("%s: this field cannot be set from the environment; use the config file", name)
		}
	}
	return nil
}
