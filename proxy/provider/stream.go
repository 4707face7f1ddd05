package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/sse"
)

// Chunk is one chat.completion.chunk of a stream.
type Chunk struct {
	// Raw is the chunk's JSON, to relay as the data of one SSE event: the
	// provider's own bytes for OpenAI-compatible upstreams.
	Raw []byte
	// Chunk is Raw decoded.
	openai.Chunk
}

// Text returns the content the chunk adds, over all its choices.
func (c *Chunk) Text() string {
	if len(c.Choices) == 1 {
		return c.Choices[0].Delta.Content
	}
	var b strings.Builder
	for _, ch := range c.Choices {
		b.WriteString(ch.Delta.Content)
	}
	return b.String()
}

// UsageOnly reports whether the chunk is the final usage chunk, which
// carries no choices; a relay drops it for clients that did not ask for
// stream_options.include_usage.
func (c *Chunk) UsageOnly() bool { return c.Usage != nil && len(c.Choices) == 0 }

// decoder turns one provider's stream events into chunks.
type decoder interface {
	// event handles one SSE event; done reports the stream's end marker.
	event(ev sse.Event) (out []Chunk, done bool, err error)
	// eof is called when the body ends before an end marker; it returns the
	// last chunks of a stream that may end that way, or an error.
	eof() ([]Chunk, error)
}

// Stream is a streaming answer, read chunk by chunk. It is not safe for
// concurrent use. Always Close it.
type Stream struct {
	provider string
	body     io.ReadCloser
	rd       *sse.Reader
	dec      decoder
	queue    []Chunk
	done     bool
	err      error
}

func newStream(provider string, body io.ReadCloser, dec decoder) *Stream {
	return &Stream{provider: provider, body: body, rd: sse.NewReader(body), dec: dec}
}

// Next returns the next chunk. It returns io.EOF after the last chunk of a
// complete stream; an error wrapping ErrStreamBroken when the stream ends
// early or the connection fails (wrapping the context's error too when ctx
// was cancelled); an *UpstreamError when the provider sends an error event;
// a *BadResponseError when an event cannot be understood. After an error
// every call returns it again.
func (s *Stream) Next() (Chunk, error) {
	for {
		if len(s.queue) > 0 {
			c := s.queue[0]
			s.queue = s.queue[1:]
			return c, nil
		}
		if s.err != nil {
			return Chunk{}, s.err
		}
		if s.done {
			s.err = io.EOF
			continue
		}
		ev, err := s.rd.Next()
		switch {
		case err == io.EOF:
			chunks, err := s.dec.eof()
			if err != nil {
				s.err = fmt.Errorf("%s: %w: %w", s.provider, ErrStreamBroken, err)
				continue
			}
			s.queue, s.done = chunks, true
			continue
		case err != nil:
			s.err = fmt.Errorf("%s: %w: %w", s.provider, ErrStreamBroken, err)
			continue
		}
		chunks, done, err := s.dec.event(ev)
		if err != nil {
			var ue *UpstreamError
			if errors.As(err, &ue) {
				ue.Provider = s.provider
				s.err = ue
			} else {
				s.err = &BadResponseError{Provider: s.provider, Err: err}
			}
			continue
		}
		s.queue, s.done = chunks, done
	}
}

// Close releases the connection. Closing before the end aborts the stream.
func (s *Stream) Close() error { return s.body.Close() }

// encodeChunk wraps a translated chunk with its JSON.
func encodeChunk(c openai.Chunk) (Chunk, error) {
	raw, err := json.Marshal(&c)
	if err != nil {
		return Chunk{}, err
	}
	return Chunk{Raw: raw, Chunk: c}, nil
}

func encodeChunks(cs []openai.Chunk) ([]Chunk, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	out := make([]Chunk, len(cs))
	for i, c := range cs {
		var err error
		if out[i], err = encodeChunk(c); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// openaiDecoder passes OpenAI chunks through untouched.
type openaiDecoder struct{}

func (openaiDecoder) event(ev sse.Event) ([]Chunk, bool, error) {
	if len(ev.Data) == 0 {
		return nil, false, nil
	}
	if string(ev.Data) == "[DONE]" {
		return nil, true, nil
	}
	var c struct {
		openai.Chunk
		Error *openai.ErrorDetail `json:"error"`
	}
	if err := json.Unmarshal(ev.Data, &c); err != nil {
		return nil, false, fmt.Errorf("stream event is not a chat.completion.chunk: %w", err)
	}
	if c.Error != nil {
		return nil, false, &UpstreamError{Status: 500, Body: openai.ErrorResponse{Error: *c.Error}}
	}
	return []Chunk{{Raw: ev.Data, Chunk: c.Chunk}}, false, nil
}

func (openaiDecoder) eof() ([]Chunk, error) {
	return nil, errors.New("the body ended without data: [DONE]")
}

// Collect reads a stream to its end and assembles the chunks into one
// completion, as a client would: content and tool-call arguments
// concatenated per choice, the last finish reason and usage kept. It does
// not close the stream.
func Collect(s *Stream) (*openai.ChatResponse, error) {
	acc := NewAccumulator()
	for {
		c, err := s.Next()
		if err == io.EOF {
			return acc.Response(), nil
		}
		if err != nil {
			return acc.Response(), err
		}
		acc.Add(&c.Chunk)
	}
}

// Accumulator assembles chunks into a completion.
type Accumulator struct {
	resp    openai.ChatResponse
	content map[int]*strings.Builder
	choices map[int]*openai.Choice
	order   []int
}

// NewAccumulator returns an empty Accumulator.
func NewAccumulator() *Accumulator {
	return &Accumulator{content: map[int]*strings.Builder{}, choices: map[int]*openai.Choice{}}
}

// Add folds one chunk in.
func (a *Accumulator) Add(c *openai.Chunk) {
	if a.resp.ID == "" {
		a.resp.ID, a.resp.Created, a.resp.Model = c.ID, c.Created, c.Model
	}
	if c.Usage != nil {
		u := *c.Usage
		a.resp.Usage = &u
	}
	for _, ch := range c.Choices {
		x, ok := a.choices[ch.Index]
		if !ok {
			x = &openai.Choice{Index: ch.Index, Message: openai.ResponseMessage{Role: "assistant"}}
			a.choices[ch.Index] = x
			a.content[ch.Index] = &strings.Builder{}
			a.order = append(a.order, ch.Index)
		}
		a.content[ch.Index].WriteString(ch.Delta.Content)
		for _, tc := range ch.Delta.ToolCalls {
			i := len(x.Message.ToolCalls)
			if tc.Index != nil {
				i = *tc.Index
			}
			for len(x.Message.ToolCalls) <= i {
				x.Message.ToolCalls = append(x.Message.ToolCalls, openai.ToolCall{Type: "function"})
			}
			t := &x.Message.ToolCalls[i]
			if tc.ID != "" {
				t.ID = tc.ID
			}
			t.Function.Name += tc.Function.Name
			t.Function.Arguments += tc.Function.Arguments
		}
		if ch.FinishReason != nil {
			x.FinishReason = *ch.FinishReason
		}
	}
}

// Response returns the completion assembled so far.
func (a *Accumulator) Response() *openai.ChatResponse {
	out := a.resp
	out.Object = "chat.completion"
	out.Choices = make([]openai.Choice, 0, len(a.order))
	for _, i := range a.order {
		ch := *a.choices[i]
		if s := a.content[i].String(); s != "" || len(ch.Message.ToolCalls) == 0 {
			ch.Message.Content = &s
		}
		out.Choices = append(out.Choices, ch)
	}
	return &out
}
