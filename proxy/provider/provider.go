// Package provider calls upstream model providers. Clients speak the OpenAI
// chat-completions format to Tollgate; an adapter sends the request to its
// provider in that provider's wire format and hands back OpenAI-shaped
// answers: a whole completion, or a stream of chat.completion.chunk values.
//
// Adapters: OpenAI and OpenAI-compatible servers (kind "openai"), Azure
// OpenAI ("azure"), Anthropic Messages ("anthropic"), Google Gemini
// ("gemini") and Vertex AI ("vertex"). New builds one from its Config.
//
// Errors are normalised: a non-2xx answer is an *UpstreamError (status,
// OpenAI-shaped body, parsed Retry-After); a body that cannot be understood
// a *BadResponseError; a stream that ends early ErrStreamBroken. Retryable
// tells a router whether trying again (or elsewhere) can help.
package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate/tollgate/proxy/openai"
)

// Provider is one upstream. Complete and Stream do not modify req, so a
// router may send the same request to several providers in turn.
type Provider interface {
	// Name is how policies and logs refer to the upstream.
	Name() string
	// Kind is the wire format: openai, azure, anthropic, gemini or vertex.
	Kind() string
	// Timeout bounds a whole non-streaming call and the wait for the first
	// chunk of a stream; the caller applies it.
	Timeout() time.Duration
	// Complete makes a non-streaming call (req.Stream is ignored).
	Complete(ctx context.Context, req *openai.ChatRequest) (*Completion, error)
	// Stream starts a streaming call (req.Stream is ignored) and returns
	// once the provider accepted it; the caller reads chunks with
	// Stream.Next, flushing each to its client, and closes the stream.
	// Cancelling ctx ends the stream.
	Stream(ctx context.Context, req *openai.ChatRequest) (*Stream, error)
}

// Completion is a non-streaming answer.
type Completion struct {
	// Raw is the chat.completion JSON to send to the client: the provider's
	// own bytes for OpenAI-compatible upstreams, the translation otherwise.
	Raw []byte
	// Response is Raw decoded.
	Response *openai.ChatResponse
}

// Kinds of provider.
const (
	KindOpenAI    = "openai"
	KindAzure     = "azure"
	KindAnthropic = "anthropic"
	KindGemini    = "gemini"
	KindVertex    = "vertex"
)

// Defaults of the kinds' optional settings.
const (
	DefaultAnthropicURL       = "https://api.anthropic.com"
	DefaultGeminiURL          = "https://generativelanguage.googleapis.com/v1beta"
	DefaultAnthropicMaxTokens = 4096
	DefaultTimeout            = 120 * time.Second
)

// Config describes one upstream, a providers[] entry of the configuration.
type Config struct {
	// Name is how policies and logs refer to the upstream ("openai", "sim").
	Name string `yaml:"name"`
	// Kind is the wire format: "openai" (OpenAI and compatible servers),
	// "azure", "anthropic", "gemini" or "vertex".
	Kind string `yaml:"kind"`
	// BaseURL is the API root: https://api.openai.com/v1 (openai, required);
	// https://RESOURCE.openai.azure.com (azure, required);
	// https://api.anthropic.com (anthropic, the default);
	// https://generativelanguage.googleapis.com/v1beta (gemini, the
	// default); for vertex the default is derived from location, e.g.
	// https://us-central1-aiplatform.googleapis.com/v1.
	BaseURL string `yaml:"base_url"`
	// APIKeyEnv names the environment variable holding the credential;
	// APIKeyFile a file holding it (re-read when it changes, so rotated
	// keys and refreshed Vertex access tokens are picked up). Keys never
	// appear in the config itself. For vertex the credential is an OAuth2
	// access token, sent as a bearer token.
	APIKeyEnv  string `yaml:"api_key_env"`
	APIKeyFile string `yaml:"api_key_file"`
	// Models served by this upstream.
	Models []string `yaml:"models"`
	// Timeout bounds a whole non-streaming call and the wait for the first
	// byte of a stream.
	Timeout string `yaml:"timeout"`
	// APIVersion is azure's api-version query parameter (required, e.g.
	// "2024-10-21") and anthropic's anthropic-version header (default
	// "2023-06-01").
	APIVersion string `yaml:"api_version"`
	// Deployments maps a model to its azure deployment name; a model not
	// listed is used as the deployment name.
	Deployments map[string]string `yaml:"deployments"`
	// Project and Location locate vertex models (both required).
	Project  string `yaml:"project"`
	Location string `yaml:"location"`
	// MaxTokens is the max_tokens sent to anthropic when a request sets no
	// limit, since the Messages API requires one; 0 means 4096.
	MaxTokens int `yaml:"max_tokens"`
}

// Validate reports the problems of the upstream at index i.
func (c *Config) Validate(i int) error {
	p := fmt.Sprintf("providers[%d]", i)
	var errs []error
	if c.Name == "" {
		errs = append(errs, fmt.Errorf("%s.name: empty; name the upstream, e.g. openai", p))
	}
	needURL := false
	switch c.Kind {
	case KindOpenAI:
		needURL = true
	case KindAzure:
		needURL = true
		if c.APIVersion == "" {
			errs = append(errs, fmt.Errorf("%s.api_version: empty; azure needs the api-version to call, e.g. \"2024-10-21\"", p))
		}
	case KindAnthropic, KindGemini:
	case KindVertex:
		if c.Project == "" {
			errs = append(errs, fmt.Errorf("%s.project: empty; vertex needs the Google Cloud project id", p))
		}
		if c.Location == "" {
			errs = append(errs, fmt.Errorf("%s.location: empty; vertex needs a region such as us-central1, or global", p))
		} else if !validLocation(c.Location) {
			errs = append(errs, fmt.Errorf("%s.location: %q is not a region name (want e.g. us-central1)", p, c.Location))
		}
	default:
		errs = append(errs, fmt.Errorf("%s.kind: %q is not supported (want openai, azure, anthropic, gemini or vertex; openai also covers OpenAI-compatible servers)", p, c.Kind))
	}
	if needURL || c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s.base_url: %q is not an http(s) URL (want e.g. %s)", p, c.BaseURL, exampleURL(c.Kind)))
		}
	}
	if len(c.Models) == 0 {
		errs = append(errs, fmt.Errorf("%s.models: empty; list the models this upstream serves", p))
	}
	if c.APIKeyEnv != "" && c.APIKeyFile != "" {
		errs = append(errs, fmt.Errorf("%s: set api_key_env or api_key_file, not both", p))
	}
	if c.Timeout != "" {
		if d, err := time.ParseDuration(c.Timeout); err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s.timeout: %q is not a positive duration (want e.g. \"60s\")", p, c.Timeout))
		}
	}
	if c.MaxTokens < 0 {
		errs = append(errs, fmt.Errorf("%s.max_tokens: %d is negative; use 0 for the default of %d", p, c.MaxTokens, DefaultAnthropicMaxTokens))
	}
	for m, d := range c.Deployments {
		if d == "" || strings.ContainsAny(d, "/?#") {
			errs = append(errs, fmt.Errorf("%s.deployments.%s: %q is not a deployment name", p, m, d))
		}
	}
	return errors.Join(errs...)
}

func validLocation(l string) bool {
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func exampleURL(kind string) string {
	switch kind {
	case KindAzure:
		return "https://my-resource.openai.azure.com"
	case KindAnthropic:
		return DefaultAnthropicURL
	case KindGemini:
		return DefaultGeminiURL
	case KindVertex:
		return "https://us-central1-aiplatform.googleapis.com/v1"
	}
	return "https://api.openai.com/v1"
}

// New builds the adapter for c, which must be valid. client may be shared
// by all adapters; nil means a client from NewHTTPClient.
func New(c Config, client *http.Client) (Provider, error) {
	switch c.Kind {
	case KindOpenAI, "":
		return NewOpenAI(c, client)
	case KindAzure:
		return NewAzure(c, client)
	case KindAnthropic:
		return NewAnthropic(c, client)
	case KindGemini, KindVertex:
		return NewGemini(c, client)
	}
	return nil, fmt.Errorf("provider %s: kind %q is not supported (want openai, azure, anthropic, gemini or vertex)", c.Name, c.Kind)
}

// base holds what every adapter has.
type base struct {
	name    string
	kind    string
	cred    *credential
	timeout time.Duration
	client  *http.Client
	now     func() time.Time
}

func newBase(c Config, kind string, client *http.Client) (base, error) {
	cred, err := loadCredential(c.Name, c.APIKeyEnv, c.APIKeyFile)
	if err != nil {
		return base{}, err
	}
	timeout := DefaultTimeout
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 {
			return base{}, fmt.Errorf("provider %s: timeout %q is not a positive duration (want e.g. \"60s\")", c.Name, c.Timeout)
		}
		timeout = d
	}
	if client == nil {
		client = NewHTTPClient()
	}
	return base{name: c.Name, kind: kind, cred: cred, timeout: timeout, client: client, now: time.Now}, nil
}

// Name returns the upstream's name.
func (b *base) Name() string { return b.name }

// Kind returns the upstream's wire format.
func (b *base) Kind() string { return b.kind }

// Timeout returns the configured call timeout.
func (b *base) Timeout() time.Duration { return b.timeout }

// String describes the adapter without its credential.
func (b *base) String() string { return b.kind + " provider " + b.name }

// NewHTTPClient returns a client tuned for many concurrent upstream calls.
func NewHTTPClient() *http.Client {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: t}
}
