package gemini

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tollgate/tollgate/proxy/openai"
)

// StreamError is an error object sent inside a stream.
type StreamError struct {
	Detail ErrorDetail
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("stream error %d %s: %s", e.Detail.Code, e.Detail.Status, e.Detail.Message)
}

// StreamDecoder turns the events of a streamGenerateContent?alt=sse stream
// (one Response per event) into OpenAI chat.completion.chunk values. Gemini
// has no end-of-stream event: the stream is complete when every candidate
// that started has a finishReason and the body ends. Use one decoder per
// stream.
type StreamDecoder struct {
	// ID, Model and Created stamp the chunks until the stream names its
	// own responseId and modelVersion.
	ID, Model string
	Created   int64
	// IncludeUsage makes End yield a usage-only chunk.
	IncludeUsage bool

	started  map[int]bool
	finished map[int]bool
	tools    map[int]int // candidate → tool calls so far
	calls    int         // tool calls in the stream, for generated ids
	usage    *UsageMetadata
}

// Decode translates the data of one event.
func (d *StreamDecoder) Decode(data []byte) ([]openai.Chunk, error) {
	var probe struct {
		Error *ErrorDetail `json:"error"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("event is not valid JSON: %w", err)
	}
	if probe.Error != nil {
		return nil, &StreamError{Detail: *probe.Error}
	}
	var r Response
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("event is not a GenerateContentResponse: %w", err)
	}
	if d.started == nil {
		d.started, d.finished, d.tools = map[int]bool{}, map[int]bool{}, map[int]int{}
	}
	if r.ResponseID != "" {
		d.ID = r.ResponseID
	}
	if r.ModelVersion != "" {
		d.Model = r.ModelVersion
	}
	if r.UsageMetadata != nil {
		u := *r.UsageMetadata
		d.usage = &u
	}
	var out []openai.Chunk
	if len(r.Candidates) == 0 && r.PromptFeedback != nil && r.PromptFeedback.BlockReason != "" {
		out = append(out, d.chunk(0, openai.Delta{Role: "assistant"}, nil))
		f := "content_filter"
		out = append(out, d.chunk(0, openai.Delta{}, &f))
		d.started[0], d.finished[0] = true, true
		return out, nil
	}
	for _, c := range r.Candidates {
		if d.finished[c.Index] {
			return nil, fmt.Errorf("candidate %d continues after its finishReason", c.Index)
		}
		if !d.started[c.Index] {
			d.started[c.Index] = true
			out = append(out, d.chunk(c.Index, openai.Delta{Role: "assistant"}, nil))
		}
		if c.Content != nil {
			for _, p := range c.Content.Parts {
				switch {
				case p.FunctionCall != nil:
					i := d.tools[c.Index]
					d.tools[c.Index]++
					call, err := toolCall(p.FunctionCall, &d.calls)
					if err != nil {
						return nil, err
					}
					call.Index = &i
					out = append(out, d.chunk(c.Index, openai.Delta{ToolCalls: []openai.ToolCall{call}}, nil))
				case p.Text != "" && !p.Thought:
					out = append(out, d.chunk(c.Index, openai.Delta{Content: p.Text}, nil))
				}
			}
		}
		if c.FinishReason != "" {
			d.finished[c.Index] = true
			f := FinishReason(c.FinishReason, d.tools[c.Index] > 0)
			out = append(out, d.chunk(c.Index, openai.Delta{}, &f))
		}
	}
	return out, nil
}

// ErrIncomplete is returned by End when the stream ended before every
// candidate finished.
var ErrIncomplete = errors.New("stream ended before a finishReason")

// End is called at the end of the body. It returns the usage chunk (when
// IncludeUsage), or ErrIncomplete if the stream was cut short.
func (d *StreamDecoder) End() ([]openai.Chunk, error) {
	if len(d.started) == 0 {
		return nil, ErrIncomplete
	}
	for i := range d.started {
		if !d.finished[i] {
			return nil, ErrIncomplete
		}
	}
	if !d.IncludeUsage {
		return nil, nil
	}
	var u openai.Usage
	if d.usage != nil {
		u = UsageToOpenAI(*d.usage)
	}
	c := d.chunk(0, openai.Delta{}, nil)
	c.Choices = []openai.ChunkChoice{}
	c.Usage = &u
	return []openai.Chunk{c}, nil
}

func (d *StreamDecoder) chunk(index int, delta openai.Delta, finish *string) openai.Chunk {
	return openai.Chunk{
		ID: d.ID, Object: "chat.completion.chunk", Created: d.Created, Model: d.Model,
		Choices: []openai.ChunkChoice{{Index: index, Delta: delta, FinishReason: finish}},
	}
}

// StreamEncoder turns OpenAI chunks into streamed Responses (the
// simulator's side). Text deltas go out as they come; a tool call goes out
// whole once its arguments are complete (Gemini does not stream arguments);
// the finishReason waits for the usage so that both ride on the last
// response, as Gemini sends them.
type StreamEncoder struct {
	ID, Model string

	calls  map[int]*openai.ToolCall
	order  []int
	finish string
	usage  *openai.Usage
}

// Chunk translates one chunk (first choice only).
func (e *StreamEncoder) Chunk(c *openai.Chunk) []Response {
	if c.Usage != nil {
		u := *c.Usage
		e.usage = &u
	}
	var out []Response
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		if ch.Delta.Content != "" {
			out = append(out, e.response([]Part{{Text: ch.Delta.Content}}, ""))
		}
		for _, tc := range ch.Delta.ToolCalls {
			i := 0
			if tc.Index != nil {
				i = *tc.Index
			}
			if e.calls == nil {
				e.calls = map[int]*openai.ToolCall{}
			}
			call, ok := e.calls[i]
			if !ok {
				call = &openai.ToolCall{ID: tc.ID, Type: "function", Function: openai.FunctionCall{Name: tc.Function.Name}}
				e.calls[i] = call
				e.order = append(e.order, i)
			}
			call.Function.Arguments += tc.Function.Arguments
		}
		if ch.FinishReason != nil {
			e.finish = *ch.FinishReason
		}
	}
	return out
}

// Finish returns the last responses: the tool calls, and the finishReason
// with the usage.
func (e *StreamEncoder) Finish() ([]Response, error) {
	var parts []Part
	for _, i := range e.order {
		c := e.calls[i]
		args, err := objectJSON(c.Function.Arguments)
		if err != nil {
			return nil, fmt.Errorf("tool call %s: %w", c.Function.Name, err)
		}
		parts = append(parts, Part{FunctionCall: &FunctionCall{ID: c.ID, Name: c.Function.Name, Args: args}})
	}
	if parts == nil {
		parts = []Part{}
	}
	r := e.response(parts, FinishReasonFromOpenAI(e.finish))
	if e.usage != nil {
		u := UsageFromOpenAI(*e.usage)
		r.UsageMetadata = &u
	}
	return []Response{r}, nil
}

func (e *StreamEncoder) response(parts []Part, finish string) Response {
	return Response{
		Candidates:   []Candidate{{Content: &Content{Role: "model", Parts: parts}, FinishReason: finish, Index: 0}},
		ModelVersion: e.Model,
		ResponseID:   e.ID,
	}
}
