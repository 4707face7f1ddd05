package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate/proxy/anthropicapi"
	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/sse"
)

// messages serves POST /v1/messages, Anthropic's Messages API, so that
// Anthropic SDK users can point at Tollgate. The request is translated to a
// chat completion and goes through the same pipeline as
// /v1/chat/completions (authentication, policy, masking, quota, routing,
// logging); the answer, JSON or stream, is translated back as it is
// written.
func (s *Server) messages(c echo.Context) error {
	r := c.Request()
	w := c.Response()
	body, err := s.readBody(c)
	if err != nil {
		return writeAnthropicError(w, err)
	}
	areq, err := anthropicapi.ParseRequest(body)
	if err != nil {
		return writeAnthropicError(w, apiError(http.StatusBadRequest, "invalid_request", s.redactAll(err.Error())))
	}
	req, err := areq.ToOpenAI()
	if err != nil {
		return writeAnthropicError(w, apiError(http.StatusBadRequest, "invalid_request", s.redactAll(err.Error())))
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return writeAnthropicError(w, apiError(http.StatusBadRequest, "invalid_request", s.redactAll(err.Error())))
	}
	inner := r.Clone(r.Context())
	inner.Body = io.NopCloser(bytes.NewReader(raw))
	inner.ContentLength = int64(len(raw))
	tw := &messagesWriter{w: w, stream: req.Stream}
	ic := s.e.NewContext(inner, tw)
	if err := s.chatCompletions(ic); err != nil {
		return err
	}
	return tw.finish()
}

// writeAnthropicError answers with an error in Anthropic's shape.
func writeAnthropicError(w *echo.Response, err error) error {
	ae, ok := err.(*APIError)
	if !ok {
		ae = apiError(http.StatusInternalServerError, "internal_error", "internal error")
	}
	for k, vs := range ae.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.Status)
	_, werr := w.Write(anthropicapi.ErrorBody(ae.Status, ae.Message))
	return werr
}

// messagesWriter is the response writer the chat pipeline writes to for a
// /v1/messages request: it translates a JSON chat completion, an OpenAI
// error, or an SSE stream of chunks into Anthropic's format on the way to
// the client.
type messagesWriter struct {
	w      *echo.Response
	stream bool
	status int
	header http.Header
	// body collects a JSON answer, pending the bytes of a stream not yet
	// split into events.
	body    bytes.Buffer
	pending []byte
	enc     *anthropicapi.StreamEncoder
	done    bool
}

func (m *messagesWriter) Header() http.Header {
	if m.header == nil {
		m.header = http.Header{}
	}
	return m.header
}

func (m *messagesWriter) WriteHeader(status int) {
	if m.status != 0 {
		return
	}
	m.status = status
	for k, vs := range m.header {
		if k == "Content-Type" || k == "Content-Length" {
			continue
		}
		m.w.Header()[k] = vs
	}
	if m.streaming() {
		m.w.Header().Set("Content-Type", "text/event-stream")
		m.w.Header().Set("Cache-Control", "no-cache")
		m.w.WriteHeader(status)
	}
}

// streaming reports whether the pipeline is relaying a stream (a stream
// request that failed before its first chunk answers with a JSON error).
func (m *messagesWriter) streaming() bool { return m.stream && m.status == http.StatusOK }

func (m *messagesWriter) Write(p []byte) (int, error) {
	if m.status == 0 {
		m.WriteHeader(http.StatusOK)
	}
	if !m.streaming() {
		return m.body.Write(p)
	}
	m.pending = append(m.pending, p...)
	for {
		i := bytes.Index(m.pending, []byte("\n\n"))
		if i < 0 {
			return len(p), nil
		}
		if err := m.event(m.pending[:i]); err != nil {
			return 0, err
		}
		m.pending = m.pending[i+2:]
	}
}

// Flush passes the translated events on.
func (m *messagesWriter) Flush() {
	if m.streaming() {
		m.w.Flush()
	}
}

// event translates one SSE event of the chat stream.
func (m *messagesWriter) event(frame []byte) error {
	var data []byte
	for line := range bytes.Lines(frame) {
		if d, ok := bytes.CutPrefix(bytes.TrimRight(line, "\n"), []byte("data: ")); ok {
			data = append(data, d...)
		}
	}
	if len(data) == 0 || m.done {
		return nil
	}
	if string(data) == "[DONE]" {
		m.done = true
		if m.enc == nil {
			return nil
		}
		return m.writeEvents(m.enc.Finish())
	}
	var e openai.ErrorResponse
	if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
		m.done = true
		return sse.WriteEvent(m.w, anthropicapi.ErrorEvent(http.StatusBadGateway, e.Error.Message))
	}
	var ch openai.Chunk
	if err := json.Unmarshal(data, &ch); err != nil {
		return err
	}
	if m.enc == nil {
		m.enc = anthropicapi.NewStreamEncoder(ch.ID, ch.Model)
	}
	return m.writeEvents(m.enc.Chunk(&ch))
}

func (m *messagesWriter) writeEvents(evs []sse.Event) error {
	for _, ev := range evs {
		if err := sse.WriteEvent(m.w, ev); err != nil {
			return err
		}
	}
	return nil
}

// finish writes a JSON answer or error, translated, once the pipeline is
// done.
func (m *messagesWriter) finish() error {
	if m.streaming() {
		if !m.done && m.enc != nil {
			// The stream ended without [DONE] (cut short): close it cleanly.
			return m.writeEvents(m.enc.Finish())
		}
		return nil
	}
	w := m.w
	w.Header().Set("Content-Type", "application/json")
	if m.status != http.StatusOK {
		var e openai.ErrorResponse
		msg := "request failed with status " + strconv.Itoa(m.status)
		if json.Unmarshal(m.body.Bytes(), &e) == nil && e.Error.Message != "" {
			msg = e.Error.Message
		}
		w.WriteHeader(m.status)
		_, err := w.Write(anthropicapi.ErrorBody(m.status, msg))
		return err
	}
	var resp openai.ChatResponse
	if err := json.Unmarshal(m.body.Bytes(), &resp); err != nil {
		return writeAnthropicError(w, apiError(http.StatusBadGateway, "upstream_bad_response", "the answer could not be translated to the Messages format"))
	}
	out, err := anthropicapi.FromOpenAIResponse(&resp)
	if err != nil {
		return writeAnthropicError(w, apiError(http.StatusBadGateway, "upstream_bad_response", "the answer could not be translated to the Messages format: "+err.Error()))
	}
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(out)
}
