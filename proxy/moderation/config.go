package moderation

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Fail modes of Config.FailMode: what a request gets when the moderation
// service cannot answer.
const (
	// FailClosed makes Check return an error wrapping ErrUnavailable; the
	// caller denies the request with 503 moderation_unavailable.
	FailClosed = "closed"
	// FailOpen makes Check return a Result with Unavailable set and no
	// error; the request goes on and the policy sees
	// input.moderation.unavailable.
	FailOpen = "open"
)

// Defaults of the fields left empty.
const (
	DefaultModel         = "omni-moderation-latest"
	DefaultTimeout       = 2 * time.Second
	DefaultMaxInputBytes = 32 << 10
)

// Config is the moderation section of the gateway configuration. Empty
// fields take the values of DefaultConfig.
type Config struct {
	// Enabled turns the moderation call on. When off, Check answers an
	// unchecked Result without a call and the other fields are only
	// checked for syntax.
	Enabled bool `yaml:"enabled"`
	// BaseURL is the API root; requests go to BaseURL + "/moderations", e.g.
	// https://api.openai.com/v1 or the simulator's http://127.0.0.1:8081/v1.
	// Required when Enabled. It must not carry credentials (user:password@).
	BaseURL string `yaml:"base_url"`
	// APIKeyEnv names the environment variable holding the API key;
	// APIKeyFile a file holding it (read once, by New). At most one of them;
	// neither means no Authorization header. The key is sent as a bearer
	// token and never appears in logs or errors.
	APIKeyEnv  string `yaml:"api_key_env"`
	APIKeyFile string `yaml:"api_key_file"`
	// Model is the moderation model (default "omni-moderation-latest").
	Model string `yaml:"model"`
	// Timeout bounds one call, connection to last byte, as a duration string
	// (default "2s"). It is added to the latency of every moderated request
	// in the worst case.
	Timeout string `yaml:"timeout"`
	// FailMode is "closed" (default) or "open"; see FailClosed, FailOpen.
	FailMode string `yaml:"fail_mode"`
	// MaxInputBytes caps each input text (default 32 KiB): a longer text is
	// cut to its first MaxInputBytes bytes, at a UTF-8 boundary, and the
	// rest is not moderated. It bounds the cost and latency of the call; the
	// caller chooses which texts to send (e.g. the newest user message
	// first) knowing that.
	MaxInputBytes int `yaml:"max_input_bytes"`
	// CategoriesThreshold maps a category name (as the service spells it,
	// e.g. "violence", "self-harm/intent") to a score in (0, 1]. A category
	// counts when the service flags it or when its score reaches the
	// threshold, so thresholds make moderation stricter, never laxer.
	CategoriesThreshold map[string]float64 `yaml:"categories_threshold"`
}

// DefaultConfig returns the defaults: disabled, model
// omni-moderation-latest, 2s timeout, fail closed, 32 KiB per input.
func DefaultConfig() Config {
	return Config{
		Model:         DefaultModel,
		Timeout:       DefaultTimeout.String(),
		FailMode:      FailClosed,
		MaxInputBytes: DefaultMaxInputBytes,
	}
}

// LogValue describes c for logs. It holds no secret (only where the key
// comes from), but is spelled out so that adding one cannot leak it.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("enabled", c.Enabled),
		slog.String("base_url", c.BaseURL),
		slog.String("api_key_env", c.APIKeyEnv),
		slog.String("api_key_file", c.APIKeyFile),
		slog.String("model", c.Model),
		slog.String("timeout", c.Timeout),
		slog.String("fail_mode", c.FailMode),
		slog.Int("max_input_bytes", c.MaxInputBytes),
		slog.Int("categories_threshold", len(c.CategoriesThreshold)),
	)
}

// Validate returns every problem of c, each naming its YAML path.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

// settings are a valid Config with defaults applied and values parsed.
type settings struct {
	enabled    bool
	endpoint   string
	model      string
	timeout    time.Duration
	failOpen   bool
	maxInput   int
	thresholds map[string]float64
}

func (c Config) resolve() (settings, error) {
	s := settings{
		enabled:  c.Enabled,
		model:    DefaultModel,
		timeout:  DefaultTimeout,
		maxInput: DefaultMaxInputBytes,
	}
	var errs []error
	switch {
	case c.BaseURL == "" && c.Enabled:
		errs = append(errs, errors.New("moderation.base_url: empty; set the API root of an OpenAI moderation-compatible service, e.g. https://api.openai.com/v1"))
	case c.BaseURL != "":
		u, err := url.Parse(c.BaseURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, fmt.Errorf("moderation.base_url: %q is not an http(s) URL (want e.g. https://api.openai.com/v1)", c.BaseURL))
		case u.User != nil:
			// Do not echo the URL: it holds a credential.
			errs = append(errs, errors.New("moderation.base_url: contains credentials (user:password@); remove them and use api_key_env or api_key_file"))
		case u.RawQuery != "" || u.Fragment != "":
			errs = append(errs, fmt.Errorf("moderation.base_url: %q has a query or fragment; give only scheme, host and path", c.BaseURL))
		default:
			s.endpoint = strings.TrimSuffix(c.BaseURL, "/") + "/moderations"
		}
	}
	if c.APIKeyEnv != "" && c.APIKeyFile != "" {
		errs = append(errs, errors.New("moderation: set api_key_env or api_key_file, not both"))
	}
	if c.Model != "" {
		if strings.TrimSpace(c.Model) != c.Model || strings.ContainsAny(c.Model, "\r\n\t") {
			errs = append(errs, fmt.Errorf("moderation.model: %q has surrounding or control white space; write the model id alone, e.g. %q", c.Model, DefaultModel))
		}
		s.model = c.Model
	}
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("moderation.timeout: invalid duration %q (want e.g. %q)", c.Timeout, "2s"))
		case d <= 0:
			errs = append(errs, fmt.Errorf("moderation.timeout: %q is not positive (want e.g. %q)", c.Timeout, "2s"))
		default:
			s.timeout = d
		}
	}
	switch c.FailMode {
	case "", FailClosed:
	case FailOpen:
		s.failOpen = true
	default:
		errs = append(errs, fmt.Errorf("moderation.fail_mode: invalid value %q (want %q or %q)", c.FailMode, FailClosed, FailOpen))
	}
	switch {
	case c.MaxInputBytes < 0:
		errs = append(errs, fmt.Errorf("moderation.max_input_bytes: %d is negative; use 0 for the default of %d", c.MaxInputBytes, DefaultMaxInputBytes))
	case c.MaxInputBytes > 0:
		s.maxInput = c.MaxInputBytes
	}
	names := make([]string, 0, len(c.CategoriesThreshold))
	for name := range c.CategoriesThreshold {
		names = append(names, name)
	}
	slices.Sort(names) // report in a stable order
	for _, name := range names {
		v := c.CategoriesThreshold[name]
		if strings.TrimSpace(name) == "" {
			errs = append(errs, fmt.Errorf("moderation.categories_threshold: empty category name; use a name the service reports, e.g. %q", "violence"))
		}
		if math.IsNaN(v) || v <= 0 || v > 1 {
			errs = append(errs, fmt.Errorf("moderation.categories_threshold.%s: %v is not a score in (0, 1] (want e.g. 0.5)", name, v))
		}
	}
	if len(c.CategoriesThreshold) > 0 {
		s.thresholds = make(map[string]float64, len(c.CategoriesThreshold))
		for k, v := range c.CategoriesThreshold {
			s.thresholds[k] = v
		}
	}
	return s, errors.Join(errs...)
}
