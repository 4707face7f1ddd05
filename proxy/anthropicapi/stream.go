package anthropicapi

import (
	"encoding/json"
	"fmt"

	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/sse"
)

// StreamEvent is one event of a Messages stream, as read (the union of the
// event types' fields).
type StreamEvent struct {
	Type         string       `json:"type"`
	Message      *Response    `json:"message,omitempty"`
	Index        int          `json:"index"`
	ContentBlock *Block       `json:"content_block,omitempty"`
	Delta        *EventDelta  `json:"delta,omitempty"`
	Usage        *Usage       `json:"usage,omitempty"`
	Error        *ErrorDetail `json:"error,omitempty"`
}

// EventDelta is the delta of content_block_delta and message_delta events.
type EventDelta struct {
	Type         string  `json:"type,omitempty"`
	Text         string  `json:"text,omitempty"`
	PartialJSON  string  `json:"partial_json,omitempty"`
	Thinking     string  `json:"thinking,omitempty"`
	StopReason   *string `json:"stop_reason,omitempty"`
	StopSequence *string `json:"stop_sequence,omitempty"`
}

// StreamError is an error event in a Messages stream.
type StreamError struct {
	Detail ErrorDetail
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("stream error event %s: %s", e.Detail.Type, e.Detail.Message)
}

// Status returns the HTTP status of the error's type.
func (e *StreamError) Status() int { return StatusOfErrorType(e.Detail.Type) }

// StreamDecoder turns the events of a Messages stream into OpenAI
// chat.completion.chunk values. Use one per stream; it is not safe for
// concurrent use.
type StreamDecoder struct {
	// IncludeUsage makes message_stop yield a final usage-only chunk, as
	// OpenAI's stream_options.include_usage does.
	IncludeUsage bool
	// Created stamps the chunks.
	Created int64

	id, model string
	usage     Usage
	tools     map[int]int // content block index → tool-call index
	nextTool  int
	started   bool
	done      bool
}

// Done reports whether message_stop was seen.
func (d *StreamDecoder) Done() bool { return d.done }

// Usage returns the usage reported so far, normalised.
func (d *StreamDecoder) Usage() openai.Usage { return UsageToOpenAI(d.usage) }

// Decode translates the data of one event into zero or more chunks. An
// error event is a *StreamError; malformed data a plain error.
func (d *StreamDecoder) Decode(data []byte) ([]openai.Chunk, error) {
	var ev StreamEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("event is not valid JSON: %w", err)
	}
	if d.done && ev.Type != "ping" {
		return nil, fmt.Errorf("event %q after message_stop", ev.Type)
	}
	if !d.started && ev.Type != "message_start" && ev.Type != "ping" && ev.Type != "error" {
		return nil, fmt.Errorf("event %q before message_start", ev.Type)
	}
	switch ev.Type {
	case "message_start":
		if ev.Message == nil {
			return nil, fmt.Errorf("message_start without a message")
		}
		if d.started {
			return nil, fmt.Errorf("second message_start")
		}
		d.started = true
		d.id, d.model, d.usage = ev.Message.ID, ev.Message.Model, ev.Message.Usage
		return []openai.Chunk{d.chunk(openai.Delta{Role: "assistant"}, nil)}, nil
	case "content_block_start":
		b := ev.ContentBlock
		if b == nil {
			return nil, fmt.Errorf("content_block_start without a content_block")
		}
		switch b.Type {
		case "text":
			if b.Text != "" {
				return []openai.Chunk{d.chunk(openai.Delta{Content: b.Text}, nil)}, nil
			}
		case "tool_use":
			if d.tools == nil {
				d.tools = map[int]int{}
			}
			i := d.nextTool
			d.nextTool++
			d.tools[ev.Index] = i
			call := openai.ToolCall{Index: &i, ID: b.ID, Type: "function", Function: openai.FunctionCall{Name: b.Name}}
			return []openai.Chunk{d.chunk(openai.Delta{ToolCalls: []openai.ToolCall{call}}, nil)}, nil
		}
		return nil, nil
	case "content_block_delta":
		if ev.Delta == nil {
			return nil, fmt.Errorf("content_block_delta without a delta")
		}
		switch ev.Delta.Type {
		case "text_delta":
			if ev.Delta.Text == "" {
				return nil, nil
			}
			return []openai.Chunk{d.chunk(openai.Delta{Content: ev.Delta.Text}, nil)}, nil
		case "input_json_delta":
			i, ok := d.tools[ev.Index]
			if !ok {
				return nil, fmt.Errorf("input_json_delta for block %d, which is not a tool_use block", ev.Index)
			}
			if ev.Delta.PartialJSON == "" {
				return nil, nil
			}
			call := openai.ToolCall{Index: &i, Type: "function", Function: openai.FunctionCall{Arguments: ev.Delta.PartialJSON}}
			return []openai.Chunk{d.chunk(openai.Delta{ToolCalls: []openai.ToolCall{call}}, nil)}, nil
		}
		return nil, nil // thinking, signature and future deltas
	case "message_delta":
		if ev.Usage != nil {
			d.mergeUsage(*ev.Usage)
		}
		if ev.Delta == nil || ev.Delta.StopReason == nil {
			return nil, nil
		}
		f := FinishReason(*ev.Delta.StopReason)
		return []openai.Chunk{d.chunk(openai.Delta{}, &f)}, nil
	case "message_stop":
		d.done = true
		if !d.IncludeUsage {
			return nil, nil
		}
		u := UsageToOpenAI(d.usage)
		c := d.chunk(openai.Delta{}, nil)
		c.Choices = []openai.ChunkChoice{}
		c.Usage = &u
		return []openai.Chunk{c}, nil
	case "error":
		if ev.Error == nil {
			return nil, &StreamError{Detail: ErrorDetail{Type: "api_error", Message: "error event without details"}}
		}
		return nil, &StreamError{Detail: *ev.Error}
	}
	// ping, content_block_stop and event types added later.
	return nil, nil
}

// mergeUsage applies message_delta usage: output_tokens is cumulative; the
// input counts, when present, replace those of message_start.
func (d *StreamDecoder) mergeUsage(u Usage) {
	d.usage.OutputTokens = u.OutputTokens
	if u.InputTokens > 0 {
		d.usage.InputTokens = u.InputTokens
	}
	if u.CacheReadInputTokens > 0 {
		d.usage.CacheReadInputTokens = u.CacheReadInputTokens
	}
	if u.CacheCreationInputTokens > 0 {
		d.usage.CacheCreationInputTokens = u.CacheCreationInputTokens
	}
}

func (d *StreamDecoder) chunk(delta openai.Delta, finish *string) openai.Chunk {
	return openai.Chunk{
		ID: d.id, Object: "chat.completion.chunk", Created: d.Created, Model: d.model,
		Choices: []openai.ChunkChoice{{Index: 0, Delta: delta, FinishReason: finish}},
	}
}

// StreamEncoder turns OpenAI chat.completion.chunk values into the events
// of a Messages stream, for the gateway's /v1/messages. Feed every chunk to
// Chunk and end with Finish; write each returned event with sse.WriteEvent
// and flush. Only the first choice is translated.
type StreamEncoder struct {
	id, model string
	started   bool
	finished  bool
	open      int    // index of the open content block, -1 if none
	openKind  string // "text" or "tool_use"
	next      int    // index of the next content block
	tools     map[int]int
	stop      string
	usage     *openai.Usage
}

// NewStreamEncoder returns an encoder for a message with id and model.
func NewStreamEncoder(id, model string) *StreamEncoder {
	return &StreamEncoder{id: MessageID(id), model: model, open: -1}
}

func event(name string, v any) sse.Event {
	data, err := json.Marshal(v)
	if err != nil { // the values here always encode
		panic(fmt.Sprintf("anthropicapi: encode %s event: %v", name, err))
	}
	return sse.Event{Name: name, Data: data}
}

func (e *StreamEncoder) start(out []sse.Event) []sse.Event {
	if e.started {
		return out
	}
	e.started = true
	msg := Response{ID: e.id, Type: "message", Role: "assistant", Model: e.model, Content: []Block{}}
	return append(out, event("message_start", struct {
		Type    string   `json:"type"`
		Message Response `json:"message"`
	}{"message_start", msg}))
}

func (e *StreamEncoder) closeBlock(out []sse.Event) []sse.Event {
	if e.open < 0 {
		return out
	}
	out = append(out, event("content_block_stop", struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}{"content_block_stop", e.open}))
	e.open, e.openKind = -1, ""
	return out
}

func (e *StreamEncoder) openBlock(out []sse.Event, b Block) []sse.Event {
	out = e.closeBlock(out)
	e.open, e.openKind = e.next, b.Type
	e.next++
	return append(out, event("content_block_start", struct {
		Type         string `json:"type"`
		Index        int    `json:"index"`
		ContentBlock Block  `json:"content_block"`
	}{"content_block_start", e.open, b}))
}

type deltaEvent struct {
	Type  string     `json:"type"`
	Index int        `json:"index"`
	Delta EventDelta `json:"delta"`
}

// Chunk translates one chunk into zero or more events.
func (e *StreamEncoder) Chunk(c *openai.Chunk) []sse.Event {
	out := e.start(nil)
	if c.Model != "" && e.model == "" {
		e.model = c.Model
	}
	if c.Usage != nil {
		u := *c.Usage
		e.usage = &u
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		if t := ch.Delta.Content; t != "" {
			if e.openKind != "text" {
				out = e.openBlock(out, Block{Type: "text"})
			}
			out = append(out, event("content_block_delta", deltaEvent{"content_block_delta", e.open, EventDelta{Type: "text_delta", Text: t}}))
		}
		for _, tc := range ch.Delta.ToolCalls {
			idx := 0
			if tc.Index != nil {
				idx = *tc.Index
			}
			block, seen := e.tools[idx]
			if !seen || tc.ID != "" && e.open != block {
				if e.tools == nil {
					e.tools = map[int]int{}
				}
				out = e.openBlock(out, Block{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: json.RawMessage("{}")})
				e.tools[idx] = e.open
				block = e.open
			}
			if tc.Function.Arguments != "" {
				out = append(out, event("content_block_delta", deltaEvent{"content_block_delta", block, EventDelta{Type: "input_json_delta", PartialJSON: tc.Function.Arguments}}))
			}
		}
		if ch.FinishReason != nil {
			e.stop = StopReason(*ch.FinishReason)
			out = e.closeBlock(out)
		}
	}
	return out
}

// Finish ends the message: it closes the open block and sends message_delta
// (stop reason and usage) and message_stop. It returns nothing when called
// again.
func (e *StreamEncoder) Finish() []sse.Event {
	if e.finished {
		return nil
	}
	e.finished = true
	out := e.start(nil)
	out = e.closeBlock(out)
	stop := e.stop
	if stop == "" {
		stop = "end_turn"
	}
	var u Usage
	if e.usage != nil {
		u = UsageFromOpenAI(*e.usage)
	}
	out = append(out, event("message_delta", struct {
		Type  string     `json:"type"`
		Delta EventDelta `json:"delta"`
		Usage Usage      `json:"usage"`
	}{"message_delta", EventDelta{StopReason: &stop}, u}))
	return append(out, event("message_stop", struct {
		Type string `json:"type"`
	}{"message_stop"}))
}

// ErrorEvent is the event that ends a stream on an error.
func ErrorEvent(status int, message string) sse.Event {
	return event("error", NewError(status, message))
}
