package provider

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/provider/gemini"
	"github.com/tollgate/tollgate/proxy/sse"
)

// Gemini talks to Google's generateContent API: the Gemini API (kind
// "gemini", key in x-goog-api-key) or Vertex AI (kind "vertex", an OAuth2
// access token as bearer token, models under a project and location).
type Gemini struct {
	base
	modelsURL string // up to and including ".../models/"
	vertex    bool
}

// NewGemini builds an adapter for kind "gemini" or "vertex" from validated
// configuration.
func NewGemini(c Config, client *http.Client) (*Gemini, error) {
	kind := KindGemini
	if c.Kind == KindVertex {
		kind = KindVertex
	}
	b, err := newBase(c, kind, client)
	if err != nil {
		return nil, err
	}
	g := &Gemini{base: b, vertex: kind == KindVertex}
	root := strings.TrimSuffix(c.BaseURL, "/")
	if g.vertex {
		if c.Project == "" || c.Location == "" {
			return nil, fmt.Errorf("provider %s: vertex needs project and location", c.Name)
		}
		if root == "" {
			host := c.Location + "-aiplatform.googleapis.com"
			if c.Location == "global" {
				host = "aiplatform.googleapis.com"
			}
			root = "https://" + host + "/v1"
		}
		g.modelsURL = root + "/projects/" + url.PathEscape(c.Project) + "/locations/" + url.PathEscape(c.Location) + "/publishers/google/models/"
	} else {
		if root == "" {
			root = DefaultGeminiURL
		}
		g.modelsURL = root + "/models/"
	}
	return g, nil
}

func (g *Gemini) endpoint(model string, stream bool) string {
	model = strings.TrimPrefix(model, "models/")
	u := g.modelsURL + url.PathEscape(model)
	if stream {
		return u + ":streamGenerateContent?alt=sse"
	}
	return u + ":generateContent"
}

func (g *Gemini) send(ctx context.Context, req *openai.ChatRequest, stream bool) (*http.Response, error) {
	greq, err := gemini.FromOpenAIRequest(req)
	if err != nil {
		return nil, fmt.Errorf("translate request for %s: %w", g.name, err)
	}
	body, err := json.Marshal(greq)
	if err != nil {
		return nil, fmt.Errorf("encode upstream request: %w", err)
	}
	h := http.Header{}
	if key := g.cred.get(); key != "" {
		if g.vertex {
			h.Set("Authorization", "Bearer "+key)
		} else {
			h.Set("X-Goog-Api-Key", key)
		}
	}
	return g.post(ctx, g.endpoint(req.Model, stream), body, stream, h, geminiErrorDetail)
}

// geminiErrorDetail reads {"error":{...}}, or [{"error":{...}}] as Vertex
// sometimes sends it, with the RetryInfo delay.
func geminiErrorDetail(raw []byte) (openai.ErrorDetail, time.Duration, bool) {
	raw = bytes.TrimSpace(raw)
	var e gemini.ErrorResponse
	if len(raw) > 0 && raw[0] == '[' {
		var list []gemini.ErrorResponse
		if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
			return openai.ErrorDetail{}, 0, false
		}
		e = list[0]
	} else if json.Unmarshal(raw, &e) != nil {
		return openai.ErrorDetail{}, 0, false
	}
	if e.Error.Message == "" {
		return openai.ErrorDetail{}, 0, false
	}
	var wait time.Duration
	if s, ok := e.Error.RetryDelay(); ok {
		wait = time.Duration(s * float64(time.Second))
	}
	return openai.ErrorDetail{Message: e.Error.Message, Type: errorType(e.Error.Code), Code: strings.ToLower(e.Error.Status)}, wait, true
}

// completionID makes an id for answers that come without one.
func completionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "chatcmpl-" + hex.EncodeToString(b[:])
}

// Complete makes a non-streaming call.
func (g *Gemini) Complete(ctx context.Context, req *openai.ChatRequest) (*Completion, error) {
	resp, err := g.send(ctx, req, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := readBody(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s answer: %w", g.name, err)
	}
	var r gemini.Response
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, &BadResponseError{Provider: g.name, Err: fmt.Errorf("answer is not a GenerateContentResponse: %w", err)}
	}
	cr, err := r.ToOpenAI(completionID(), req.Model, g.now().Unix())
	if err != nil {
		return nil, &BadResponseError{Provider: g.name, Err: err}
	}
	return completion(cr)
}

// Stream starts a streaming call (streamGenerateContent?alt=sse); each
// streamed response becomes OpenAI chunks. The usage chunk comes when
// req.StreamOptions.IncludeUsage is set.
func (g *Gemini) Stream(ctx context.Context, req *openai.ChatRequest) (*Stream, error) {
	resp, err := g.send(ctx, req, true)
	if err != nil {
		return nil, err
	}
	dec := &geminiDecoder{d: gemini.StreamDecoder{
		ID: completionID(), Model: req.Model, Created: g.now().Unix(),
		IncludeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
	}}
	return newStream(g.name, resp.Body, dec), nil
}

type geminiDecoder struct {
	d gemini.StreamDecoder
}

func (x *geminiDecoder) event(ev sse.Event) ([]Chunk, bool, error) {
	if len(bytes.TrimSpace(ev.Data)) == 0 {
		return nil, false, nil
	}
	cs, err := x.d.Decode(ev.Data)
	if err != nil {
		var se *gemini.StreamError
		if errors.As(err, &se) {
			status := se.Detail.Code
			if status < 400 || status > 599 {
				status = http.StatusInternalServerError
			}
			return nil, false, &UpstreamError{Status: status, Body: openai.ErrorResponse{Error: openai.ErrorDetail{
				Message: se.Detail.Message, Type: errorType(status), Code: strings.ToLower(se.Detail.Status)}}}
		}
		return nil, false, err
	}
	out, err := encodeChunks(cs)
	return out, false, err
}

func (x *geminiDecoder) eof() ([]Chunk, error) {
	cs, err := x.d.End()
	if err != nil {
		return nil, err
	}
	return encodeChunks(cs)
}
