// Package provider calls upstream model providers. Clients speak the OpenAI
// chat-completions format to Tollgate; an adapter sends the request to its
// provider and hands back an OpenAI-shaped response.
package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tollgate/tollgate/proxy/openai"
)

// Config describes one upstream.
type Config struct {
	// Name is how policies and logs refer to the upstream ("openai", "sim").
	Name string `yaml:"name"`
	// Kind is the wire format: "openai" for OpenAI and compatible servers.
	Kind string `yaml:"kind"`
	// BaseURL is the API root, e.g. https://api.openai.com/v1.
	BaseURL string `yaml:"base_url"`
	// APIKeyEnv names the environment variable holding the provider key;
	// APIKeyFile a file holding it. Keys never appear in the config itself.
	APIKeyEnv  string `yaml:"api_key_env"`
	APIKeyFile string `yaml:"api_key_file"`
	// Models served by this upstream.
	Models []string `yaml:"models"`
	// Timeout bounds a whole non-streaming call and the wait for the first
	// byte of a stream.
	Timeout string `yaml:"timeout"`
}

// Validate reports the problems of the upstream at index i.
func (c *Config) Validate(i int) error {
	p := fmt.Sprintf("providers[%d]", i)
	var errs []error
	if c.Name == "" {
		errs = append(errs, fmt.Errorf("%s.name: empty; name the upstream, e.g. openai", p))
	}
	if c.Kind != "openai" {
		errs = append(errs, fmt.Errorf("%s.kind: %q is not supported (want \"openai\", which also covers OpenAI-compatible servers)", p, c.Kind))
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("%s.base_url: %q is not an http(s) URL (want e.g. https://api.openai.com/v1)", p, c.BaseURL))
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
	return errors.Join(errs...)
}

// OpenAI talks to an OpenAI-compatible chat-completions endpoint.
type OpenAI struct {
	name    string
	url     string
	apiKey  string
	timeout time.Duration
	client  *http.Client
}

// NewOpenAI builds an adapter from validated configuration.
func NewOpenAI(c Config, client *http.Client) (*OpenAI, error) {
	key := ""
	switch {
	case c.APIKeyEnv != "":
		key = os.Getenv(c.APIKeyEnv)
		if key == "" {
			return nil, fmt.Errorf("provider %s: environment variable %s is empty; export the provider's API key", c.Name, c.APIKeyEnv)
		}
	case c.APIKeyFile != "":
		b, err := os.ReadFile(c.APIKeyFile)
		if err != nil {
			return nil, fmt.Errorf("provider %s: read api_key_file: %w", c.Name, err)
		}
		key = strings.TrimSpace(string(b))
	}
	timeout := 120 * time.Second
	if c.Timeout != "" {
		timeout, _ = time.ParseDuration(c.Timeout)
	}
	if client == nil {
		client = NewHTTPClient()
	}
	return &OpenAI{
		name:    c.Name,
		url:     strings.TrimSuffix(c.BaseURL, "/") + "/chat/completions",
		apiKey:  key,
		timeout: timeout,
		client:  client,
	}, nil
}

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

// Name returns the upstream's name.
func (o *OpenAI) Name() string { return o.name }

// Timeout returns the configured call timeout.
func (o *OpenAI) Timeout() time.Duration { return o.timeout }

// UpstreamError is a non-2xx answer from the provider.
type UpstreamError struct {
	Status     int
	RetryAfter string
	Body       openai.ErrorResponse
}

func (e *UpstreamError) Error() string {
	return fmt.Sprintf("upstream answered %d: %s", e.Status, e.Body.Error.Message)
}

// Send posts req and returns the response once its headers arrived. On a
// 2xx answer the caller owns resp.Body; any other status is returned as an
// *UpstreamError with the body consumed.
func (o *OpenAI) Send(ctx context.Context, req *openai.ChatRequest) (*http.Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode upstream request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build upstream request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if req.Stream {
		hreq.Header.Set("Accept", "text/event-stream")
	}
	if o.apiKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+o.apiKey)
	}
	resp, err := o.client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("call %s: %w", o.name, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	ue := &UpstreamError{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &ue.Body) != nil || ue.Body.Error.Message == "" {
		ue.Body.Error = openai.ErrorDetail{Message: fmt.Sprintf("upstream %s answered HTTP %d", o.name, resp.StatusCode), Type: "api_error", Code: "upstream_error"}
	}
	return nil, ue
}
