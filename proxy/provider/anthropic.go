package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/proxy/anthropicapi"
	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/sse"
)

// Anthropic talks to the Anthropic Messages API (POST {base}/v1/messages,
// key in x-api-key, anthropic-version header), translating OpenAI requests
// and answers both ways.
type Anthropic struct {
	base
	url       string
	version   string
	maxTokens int
}

// NewAnthropic builds an adapter for kind "anthropic" from validated
// configuration.
func NewAnthropic(c Config, client *http.Client) (*Anthropic, error) {
	b, err := newBase(c, KindAnthropic, client)
	if err != nil {
		return nil, err
	}
	root := c.BaseURL
	if root == "" {
		root = DefaultAnthropicURL
	}
	a := &Anthropic{base: b, url: strings.TrimSuffix(root, "/") + "/v1/messages", version: c.APIVersion, maxTokens: c.MaxTokens}
	if a.version == "" {
		a.version = anthropicapi.DefaultVersion
	}
	if a.maxTokens == 0 {
		a.maxTokens = DefaultAnthropicMaxTokens
	}
	return a, nil
}

func (a *Anthropic) send(ctx context.Context, req *openai.ChatRequest, stream bool) (*http.Response, error) {
	r := *req
	r.Stream = stream
	areq, err := anthropicapi.FromOpenAIRequest(&r, a.maxTokens)
	if err != nil {
		return nil, fmt.Errorf("translate request for %s: %w", a.name, err)
	}
	body, err := json.Marshal(areq)
	if err != nil {
		return nil, fmt.Errorf("encode upstream request: %w", err)
	}
	h := http.Header{}
	h.Set("Anthropic-Version", a.version)
	if key := a.cred.get(); key != "" {
		h.Set("X-Api-Key", key)
	}
	return a.post(ctx, a.url, body, stream, h, anthropicErrorDetail)
}

// anthropicErrorDetail reads {"type":"error","error":{"type":...,"message":...}}.
func anthropicErrorDetail(raw []byte) (openai.ErrorDetail, time.Duration, bool) {
	var e anthropicapi.ErrorResponse
	if json.Unmarshal(raw, &e) != nil || e.Error.Message == "" {
		return openai.ErrorDetail{}, 0, false
	}
	return openai.ErrorDetail{Message: e.Error.Message, Type: openAIErrorType(e.Error.Type), Code: e.Error.Type}, 0, true
}

// openAIErrorType maps a provider error type to OpenAI's.
func openAIErrorType(t string) string {
	switch t {
	case "invalid_request_error", "authentication_error", "permission_error", "not_found_error", "rate_limit_error":
		return t
	case "request_too_large":
		return "invalid_request_error"
	}
	return "api_error"
}

// Complete makes a non-streaming call.
func (a *Anthropic) Complete(ctx context.Context, req *openai.ChatRequest) (*Completion, error) {
	resp, err := a.send(ctx, req, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := readBody(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s answer: %w", a.name, err)
	}
	var m anthropicapi.Response
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &BadResponseError{Provider: a.name, Err: fmt.Errorf("answer is not a Messages response: %w", err)}
	}
	if m.Type != "message" {
		return nil, &BadResponseError{Provider: a.name, Err: fmt.Errorf("answer has type %q, want message", m.Type)}
	}
	cr, err := m.ToOpenAI(a.now().Unix())
	if err != nil {
		return nil, &BadResponseError{Provider: a.name, Err: err}
	}
	return completion(cr)
}

func completion(cr *openai.ChatResponse) (*Completion, error) {
	out, err := json.Marshal(cr)
	if err != nil {
		return nil, fmt.Errorf("encode translated answer: %w", err)
	}
	return &Completion{Raw: out, Response: cr}, nil
}

// Stream starts a streaming call; Messages events become OpenAI chunks.
// The usage chunk comes when req.StreamOptions.IncludeUsage is set.
func (a *Anthropic) Stream(ctx context.Context, req *openai.ChatRequest) (*Stream, error) {
	resp, err := a.send(ctx, req, true)
	if err != nil {
		return nil, err
	}
	dec := &anthropicDecoder{d: anthropicapi.StreamDecoder{
		IncludeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
		Created:      a.now().Unix(),
	}}
	return newStream(a.name, resp.Body, dec), nil
}

type anthropicDecoder struct {
	d anthropicapi.StreamDecoder
}

func (x *anthropicDecoder) event(ev sse.Event) ([]Chunk, bool, error) {
	if len(ev.Data) == 0 {
		return nil, false, nil
	}
	cs, err := x.d.Decode(ev.Data)
	if err != nil {
		var se *anthropicapi.StreamError
		if errors.As(err, &se) {
			status := se.Status()
			return nil, false, &UpstreamError{Status: status, Body: openai.ErrorResponse{Error: openai.ErrorDetail{
				Message: se.Detail.Message, Type: openAIErrorType(se.Detail.Type), Code: se.Detail.Type}}}
		}
		return nil, false, err
	}
	out, err := encodeChunks(cs)
	return out, x.d.Done(), err
}

func (x *anthropicDecoder) eof() ([]Chunk, error) {
	return nil, errors.New("the body ended without message_stop")
}
