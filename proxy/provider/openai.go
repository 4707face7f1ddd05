package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate/tollgate/proxy/openai"
)

// OpenAI talks to an OpenAI-compatible chat-completions endpoint: OpenAI
// itself, servers such as vLLM, Ollama or Groq, and Azure OpenAI (NewAzure).
type OpenAI struct {
	base
	url string // chat/completions URL; for Azure, with {deployment} to fill
	// azure: deployments by model and the api-version
	azure       bool
	apiVersion  string
	deployments map[string]string
}

// NewOpenAI builds an adapter for kind "openai" from validated
// configuration.
func NewOpenAI(c Config, client *http.Client) (*OpenAI, error) {
	if c.Kind != KindOpenAI && c.Kind != "" {
		return nil, fmt.Errorf("provider %s: kind %q needs its own adapter; build it with provider.New", c.Name, c.Kind)
	}
	b, err := newBase(c, KindOpenAI, client)
	if err != nil {
		return nil, err
	}
	return &OpenAI{base: b, url: strings.TrimSuffix(c.BaseURL, "/") + "/chat/completions"}, nil
}

// NewAzure builds an adapter for kind "azure": requests go to
// {base_url}/openai/deployments/{deployment}/chat/completions?api-version=V
// with the key in the api-key header.
func NewAzure(c Config, client *http.Client) (*OpenAI, error) {
	if c.APIVersion == "" {
		return nil, fmt.Errorf("provider %s: api_version is empty; azure needs one, e.g. \"2024-10-21\"", c.Name)
	}
	b, err := newBase(c, KindAzure, client)
	if err != nil {
		return nil, err
	}
	return &OpenAI{
		base:        b,
		url:         strings.TrimSuffix(c.BaseURL, "/") + "/openai/deployments/",
		azure:       true,
		apiVersion:  c.APIVersion,
		deployments: c.Deployments,
	}, nil
}

func (o *OpenAI) endpoint(model string) string {
	if !o.azure {
		return o.url
	}
	dep := model
	if d, ok := o.deployments[model]; ok {
		dep = d
	}
	return o.url + url.PathEscape(dep) + "/chat/completions?api-version=" + url.QueryEscape(o.apiVersion)
}

// Send posts req and returns the response once its headers arrived. On a
// 2xx answer the caller owns resp.Body; any other status is returned as an
// *UpstreamError with the body consumed.
func (o *OpenAI) Send(ctx context.Context, req *openai.ChatRequest) (*http.Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode upstream request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, o.endpoint(req.Model), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build upstream request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if req.Stream {
		hreq.Header.Set("Accept", "text/event-stream")
	}
	if key := o.cred.get(); key != "" {
		if o.azure {
			hreq.Header.Set("Api-Key", key)
		} else {
			hreq.Header.Set("Authorization", "Bearer "+key)
		}
	}
	resp, err := o.client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("call %s: %w", o.name, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, o.newUpstreamError(resp, nil)
}

// Complete makes a non-streaming call. The answer's bytes are kept as they
// came, so fields Tollgate does not know reach the client.
func (o *OpenAI) Complete(ctx context.Context, req *openai.ChatRequest) (*Completion, error) {
	r := *req
	r.Stream, r.StreamOptions = false, nil
	resp, err := o.Send(ctx, &r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := readBody(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s answer: %w", o.name, err)
	}
	var out struct {
		openai.ChatResponse
		Error *openai.ErrorDetail `json:"error"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, &BadResponseError{Provider: o.name, Err: fmt.Errorf("answer is not a chat completion: %w", err)}
	}
	if out.Error != nil && len(out.Choices) == 0 {
		return nil, &UpstreamError{Provider: o.name, Status: http.StatusBadGateway, Body: openai.ErrorResponse{Error: *out.Error}}
	}
	if len(out.Choices) == 0 {
		return nil, &BadResponseError{Provider: o.name, Err: errors.New("answer has no choices")}
	}
	return &Completion{Raw: raw, Response: &out.ChatResponse}, nil
}

// Stream starts a streaming call; chunks are the provider's own.
func (o *OpenAI) Stream(ctx context.Context, req *openai.ChatRequest) (*Stream, error) {
	r := *req
	r.Stream = true
	resp, err := o.Send(ctx, &r)
	if err != nil {
		return nil, err
	}
	return newStream(o.name, resp.Body, openaiDecoder{}), nil
}

// readBody reads a whole answer, up to maxBody.
func readBody(r io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxBody {
		return nil, fmt.Errorf("answer is larger than %d bytes", maxBody)
	}
	return raw, nil
}

// post sends body to url with headers; a non-2xx answer becomes an
// *UpstreamError read with detail.
func (b *base) post(ctx context.Context, url string, body []byte, stream bool, header http.Header, detail func([]byte) (openai.ErrorDetail, time.Duration, bool)) (*http.Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build upstream request: %w", err)
	}
	for k, v := range header {
		hreq.Header[k] = v
	}
	hreq.Header.Set("Content-Type", "application/json")
	if stream {
		hreq.Header.Set("Accept", "text/event-stream")
	}
	resp, err := b.client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("call %s: %w", b.name, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, b.newUpstreamError(resp, detail)
}
