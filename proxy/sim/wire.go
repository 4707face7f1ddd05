package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/proxy/anthropicapi"
	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/provider/gemini"
	"github.com/tollgate/tollgate/proxy/sse"
)

// CachedTokensHeader, set to N on a request, makes the simulator report
// min(N, prompt tokens) of the prompt as cached, in each format's usage
// field (cached_tokens, cache_read_input_tokens, cachedContentTokenCount).
const CachedTokensHeader = "X-Sim-Cached-Tokens"

// ToolEchoModel is the model that answers with tool calls.
const ToolEchoModel = "tool-echo"

// wire is one provider wire format: how requests are read and answers,
// streams and errors written.
type wire interface {
	// parse reads the body into the OpenAI request it stands for.
	parse(r *http.Request, body []byte) (*openai.ChatRequest, error)
	// credential returns the request's credential and where it belongs.
	credential(r *http.Request) (string, string)
	// encode writes a whole answer.
	encode(resp *openai.ChatResponse) ([]byte, error)
	// streamEncoder writes a stream of chunks.
	streamEncoder(w io.Writer, id, model string) streamEncoder
	writeError(w http.ResponseWriter, status int, code, param, msg string)
	rateLimited(w http.ResponseWriter, retryAfter time.Duration, msg string)
}

// streamEncoder writes chunks as a format's events.
type streamEncoder interface {
	chunk(c *openai.Chunk) error
	// finish writes the end of the stream.
	finish() error
}

// openaiWire is OpenAI's format, and Azure's when azure is set.
type openaiWire struct{ azure bool }

func (o openaiWire) parse(r *http.Request, body []byte) (*openai.ChatRequest, error) {
	if o.azure && r.URL.Query().Get("api-version") == "" {
		return nil, &openai.RequestError{Param: "api-version", Message: "missing api-version query parameter, e.g. ?api-version=2024-10-21"}
	}
	if o.azure {
		// Azure ignores the body's model: the deployment names it. The
		// body may omit it, so fill it in before validation.
		var probe map[string]json.RawMessage
		if json.Unmarshal(body, &probe) == nil {
			dep, _ := json.Marshal(r.PathValue("deployment"))
			probe["model"] = dep
			body, _ = json.Marshal(probe)
		}
	}
	return openai.ParseChatRequest(body)
}

func (o openaiWire) credential(r *http.Request) (string, string) {
	if o.azure {
		return r.Header.Get("Api-Key"), "the api-key header"
	}
	v, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return v, "Authorization: Bearer"
}

func (openaiWire) encode(resp *openai.ChatResponse) ([]byte, error) { return json.Marshal(resp) }

func (openaiWire) writeError(w http.ResponseWriter, status int, code, param, msg string) {
	writeError(w, status, openAIErrorType(status), code, param, msg)
}

func openAIErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

func (openaiWire) rateLimited(w http.ResponseWriter, retryAfter time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(retryAfter.Seconds())), 10))
	w.Header().Set("Retry-After-Ms", strconv.FormatInt(retryAfter.Milliseconds(), 10))
	writeError(w, http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded", "", msg)
}

func (openaiWire) streamEncoder(w io.Writer, _, _ string) streamEncoder {
	e := &openaiStream{w: w}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}

type openaiStream struct {
	w   io.Writer
	buf bytes.Buffer
	enc *json.Encoder
}

func (e *openaiStream) chunk(c *openai.Chunk) error {
	e.buf.Reset()
	if err := e.enc.Encode(c); err != nil {
		return err
	}
	return sse.WriteData(e.w, bytes.TrimSuffix(e.buf.Bytes(), []byte("\n")))
}

func (e *openaiStream) finish() error { return sse.WriteDone(e.w) }

// anthropicWire is the Messages API.
type anthropicWire struct{}

func (anthropicWire) parse(r *http.Request, body []byte) (*openai.ChatRequest, error) {
	if r.Header.Get("Anthropic-Version") == "" {
		return nil, &openai.RequestError{Param: "anthropic-version", Message: "missing anthropic-version header; send anthropic-version: " + anthropicapi.DefaultVersion}
	}
	req, err := anthropicapi.ParseRequest(body)
	if err != nil {
		return nil, err
	}
	return req.ToOpenAI()
}

func (anthropicWire) credential(r *http.Request) (string, string) {
	return r.Header.Get("X-Api-Key"), "the x-api-key header"
}

func (anthropicWire) encode(resp *openai.ChatResponse) ([]byte, error) {
	m, err := anthropicapi.FromOpenAIResponse(resp)
	if err != nil {
		return nil, err
	}
	m.ID = "msg_sim_" + strings.TrimPrefix(resp.ID, "chatcmpl-sim-")
	return json.Marshal(m)
}

func (anthropicWire) writeError(w http.ResponseWriter, status int, _, _, msg string) {
	writeBody(w, status, anthropicapi.ErrorBody(status, msg))
}

func (anthropicWire) rateLimited(w http.ResponseWriter, retryAfter time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(retryAfter.Seconds())), 10))
	writeBody(w, http.StatusTooManyRequests, anthropicapi.ErrorBody(http.StatusTooManyRequests, msg))
}

func (anthropicWire) streamEncoder(w io.Writer, id, model string) streamEncoder {
	return &anthropicStream{w: w, enc: anthropicapi.NewStreamEncoder("msg_sim_"+strings.TrimPrefix(id, "chatcmpl-sim-"), model)}
}

type anthropicStream struct {
	w   io.Writer
	enc *anthropicapi.StreamEncoder
}

func (e *anthropicStream) write(evs []sse.Event) error {
	for _, ev := range evs {
		if err := sse.WriteEvent(e.w, ev); err != nil {
			return err
		}
	}
	return nil
}

func (e *anthropicStream) chunk(c *openai.Chunk) error { return e.write(e.enc.Chunk(c)) }

func (e *anthropicStream) finish() error { return e.write(e.enc.Finish()) }

// geminiWire is the generateContent API of Gemini, or of Vertex AI when
// vertex is set.
type geminiWire struct{ vertex bool }

func (g geminiWire) parse(r *http.Request, body []byte) (*openai.ChatRequest, error) {
	model, method, ok := strings.Cut(r.PathValue("call"), ":")
	stream := method == "streamGenerateContent"
	if !ok || model == "" || (method != "generateContent" && !stream) {
		return nil, &openai.RequestError{Message: fmt.Sprintf("path must end in models/{model}:generateContent or :streamGenerateContent, got %q", r.PathValue("call"))}
	}
	if stream && r.URL.Query().Get("alt") != "sse" {
		return nil, &openai.RequestError{Param: "alt", Message: "the simulator streams only with ?alt=sse"}
	}
	var req gemini.Request
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, &openai.RequestError{Message: "request body is not a GenerateContentRequest: " + err.Error()}
	}
	if len(req.Contents) == 0 {
		return nil, &openai.RequestError{Param: "contents", Message: "contents is empty; send at least one user turn"}
	}
	out, err := req.ToOpenAI(model, stream)
	if err != nil {
		return nil, err
	}
	if len(out.Messages) == 0 {
		return nil, &openai.RequestError{Param: "contents", Message: "contents has no text, image or function part"}
	}
	return out, nil
}

func (g geminiWire) credential(r *http.Request) (string, string) {
	if g.vertex {
		v, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return v, "Authorization: Bearer"
	}
	if v := r.Header.Get("X-Goog-Api-Key"); v != "" {
		return v, "the x-goog-api-key header"
	}
	return r.URL.Query().Get("key"), "the x-goog-api-key header"
}

func (geminiWire) encode(resp *openai.ChatResponse) ([]byte, error) {
	g, err := gemini.FromOpenAIResponse(resp)
	if err != nil {
		return nil, err
	}
	return json.Marshal(g)
}

func geminiError(status int, msg string, retryAfter time.Duration) []byte {
	e := gemini.ErrorResponse{Error: gemini.ErrorDetail{Code: status, Message: msg, Status: gemini.StatusName(status)}}
	if retryAfter > 0 {
		d, _ := json.Marshal(map[string]string{
			"@type":      "type.googleapis.com/google.rpc.RetryInfo",
			"retryDelay": strconv.FormatFloat(retryAfter.Seconds(), 'f', -1, 64) + "s",
		})
		e.Error.Details = []json.RawMessage{d}
	}
	b, _ := json.Marshal(e)
	return b
}

func (geminiWire) writeError(w http.ResponseWriter, status int, _, _, msg string) {
	writeBody(w, status, geminiError(status, msg, 0))
}

func (geminiWire) rateLimited(w http.ResponseWriter, retryAfter time.Duration, msg string) {
	// Google sends the delay in the body's RetryInfo, not in a header.
	writeBody(w, http.StatusTooManyRequests, geminiError(http.StatusTooManyRequests, msg, retryAfter))
}

func (geminiWire) streamEncoder(w io.Writer, id, model string) streamEncoder {
	return &geminiStream{w: w, enc: &gemini.StreamEncoder{ID: id, Model: model}}
}

type geminiStream struct {
	w   io.Writer
	enc *gemini.StreamEncoder
}

func (e *geminiStream) write(rs []gemini.Response) error {
	for i := range rs {
		b, err := json.Marshal(&rs[i])
		if err != nil {
			return err
		}
		if err := sse.WriteData(e.w, b); err != nil {
			return err
		}
	}
	return nil
}

func (e *geminiStream) chunk(c *openai.Chunk) error { return e.write(e.enc.Chunk(c)) }

func (e *geminiStream) finish() error {
	rs, err := e.enc.Finish()
	if err != nil {
		return err
	}
	return e.write(rs)
}
