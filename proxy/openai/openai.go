// Package openai holds the OpenAI chat-completions wire types that Tollgate
// accepts from clients, sends to OpenAI-compatible upstreams and serves from
// its simulator.
//
// Requests keep the fields Tollgate does not interpret (Extra), so that a
// request forwarded upstream carries everything the client sent.
package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// ChatRequest is a POST /v1/chat/completions body.
type ChatRequest struct {
	Model               string         `json:"model"`
	Messages            []Message      `json:"messages"`
	Stream              bool           `json:"stream,omitempty"`
	StreamOptions       *StreamOptions `json:"stream_options,omitempty"`
	MaxTokens           *int           `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int           `json:"max_completion_tokens,omitempty"`
	Temperature         *float64       `json:"temperature,omitempty"`
	TopP                *float64       `json:"top_p,omitempty"`
	N                   *int           `json:"n,omitempty"`
	User                string         `json:"user,omitempty"`
	Tools               []Tool         `json:"tools,omitempty"`

	// Extra holds every other top-level field as the client sent it.
	Extra map[string]json.RawMessage `json:"-"`
}

// StreamOptions is the stream_options object.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// Tool is one entry of tools.
type Tool struct {
	Type     string          `json:"type"`
	Function json.RawMessage `json:"function,omitempty"`
}

// Message is one chat message.
type Message struct {
	Role       string     `json:"role"`
	Content    Content    `json:"content"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// ToolCall is an assistant's call of a tool.
type ToolCall struct {
	// Index places a streamed tool-call delta among the calls of its
	// choice; only chunks carry it.
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names a function and its JSON-encoded arguments.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Content is a message's content: a plain string, an array of parts, or null.
type Content struct {
	Text  string
	Parts []ContentPart
	// IsParts tells an array of parts from a string; Null a JSON null.
	IsParts bool
	Null    bool
}

// ContentPart is one element of an array content.
type ContentPart struct {
	Type       string          `json:"type"`
	Text       string          `json:"text,omitempty"`
	ImageURL   json.RawMessage `json:"image_url,omitempty"`
	InputAudio json.RawMessage `json:"input_audio,omitempty"`
	File       json.RawMessage `json:"file,omitempty"`
	Refusal    string          `json:"refusal,omitempty"`
}

// TextParts returns the non-empty texts of the content: the string, or
// the text of each text part, in order.
func (c Content) TextParts() []string {
	if !c.IsParts {
		if c.Text == "" {
			return nil
		}
		return []string{c.Text}
	}
	var out []string
	for _, p := range c.Parts {
		if p.Type == "text" && p.Text != "" {
			out = append(out, p.Text)
		}
	}
	return out
}

// TextContent returns a string content.
func TextContent(s string) Content { return Content{Text: s} }

// String returns the text of the content: the string, or the text parts
// joined by newlines.
func (c Content) String() string {
	if !c.IsParts {
		return c.Text
	}
	var b strings.Builder
	for i, p := range c.Parts {
		if p.Type != "text" {
			continue
		}
		if i > 0 && b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Text)
	}
	return b.String()
}

// UnmarshalJSON accepts a string, an array of parts or null.
func (c *Content) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return errors.New("empty content")
	case b[0] == 'n':
		*c = Content{Null: true}
		return nil
	case b[0] == '"':
		*c = Content{}
		return json.Unmarshal(b, &c.Text)
	case b[0] == '[':
		*c = Content{IsParts: true}
		return json.Unmarshal(b, &c.Parts)
	}
	return &json.UnmarshalTypeError{Value: jsonValueKind(b[0]), Type: contentType}
}

var contentType = reflectTypeOfContent()

// jsonValueKind names the JSON kind of a value starting with c, as
// json.UnmarshalTypeError.Value does.
func jsonValueKind(c byte) string {
	switch c {
	case '{':
		return "object"
	case 't', 'f':
		return "bool"
	}
	return "number"
}

// MarshalJSON writes the content in the form it was read.
func (c Content) MarshalJSON() ([]byte, error) {
	switch {
	case c.IsParts:
		return json.Marshal(c.Parts)
	case c.Null:
		return []byte("null"), nil
	}
	return json.Marshal(c.Text)
}

// knownRequestField reports whether ChatRequest decodes key itself.
func knownRequestField(key string) bool {
	switch key {
	case "model", "messages", "stream", "stream_options", "max_tokens",
		"max_completion_tokens", "temperature", "top_p", "n", "user", "tools":
		return true
	}
	return false
}

// knownRequestFields lists the fields of knownRequestField, for messages.
var knownRequestFields = []string{"model", "messages", "stream", "stream_options", "max_tokens",
	"max_completion_tokens", "temperature", "top_p", "n", "user", "tools"}

// extraFields returns the top-level members of a valid JSON object that
// ChatRequest does not decode, as raw values. A member whose name differs
// from a known field only in case is an error: encoding/json would have
// decoded it into the known field, and forwarding it too would send the
// value twice.
func extraFields(b []byte) (map[string]json.RawMessage, error) {
	var extra map[string]json.RawMessage
	i := skipSpace(b, 0) + 1 // past '{'
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] == '}' {
			return extra, nil
		}
		ks := i
		i = skipString(b, i)
		key := string(b[ks+1 : i-1])
		if bytes.IndexByte(b[ks:i], '\\') >= 0 {
			if err := json.Unmarshal(b[ks:i], &key); err != nil {
				return nil, &RequestError{Message: "request body: bad field name: " + err.Error()}
			}
		}
		i = skipSpace(b, i) + 1 // past ':'
		i = skipSpace(b, i)
		vs := i
		i = skipValue(b, i)
		if !knownRequestField(key) {
			for _, k := range knownRequestFields {
				if strings.EqualFold(k, key) {
					return nil, &RequestError{Param: key, Message: fmt.Sprintf("field %q: write it in lower case, %q", key, k)}
				}
			}
			if extra == nil {
				extra = make(map[string]json.RawMessage)
			}
			extra[key] = json.RawMessage(b[vs:i])
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value that starts at b[i]; b is
// known to be valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// RequestError is a request body that cannot be used; Param names the field.
type RequestError struct {
	Param   string
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// ParseChatRequest decodes and validates a chat-completions body. Its errors
// are *RequestError with a message that says what to fix.
func ParseChatRequest(body []byte) (*ChatRequest, error) {
	const example = "; send a JSON object such as {\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
	r := &ChatRequest{}
	type plain ChatRequest
	// One decoding pass for the known fields (encoding/json validates the
	// whole body first), then a cheap scan that keeps the other fields.
	if err := json.Unmarshal(body, (*plain)(r)); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return nil, &RequestError{Message: "request body is not valid JSON: " + describeJSONError(err) + example}
		case errors.As(err, &te) && te.Field == "":
			return nil, &RequestError{Message: "request body must be a JSON object, got " + te.Value + example}
		}
		return nil, fieldError(err)
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return nil, &RequestError{Message: "request body must be a JSON object, got null" + example}
	}
	extra, err := extraFields(body)
	if err != nil {
		return nil, err
	}
	r.Extra = extra
	if r.Model == "" {
		return nil, &RequestError{Param: "model", Message: "missing required field 'model': name the model to call, e.g. \"model\": \"gpt-4o-mini\""}
	}
	if len(r.Messages) == 0 {
		return nil, &RequestError{Param: "messages", Message: "missing required field 'messages': send at least one message, e.g. [{\"role\":\"user\",\"content\":\"hi\"}]"}
	}
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool", "function":
		case "":
			return nil, &RequestError{Param: fmt.Sprintf("messages[%d].role", i), Message: fmt.Sprintf("messages[%d].role is missing; use one of system, developer, user, assistant, tool", i)}
		default:
			return nil, &RequestError{Param: fmt.Sprintf("messages[%d].role", i), Message: fmt.Sprintf("messages[%d].role %q is not valid; use one of system, developer, user, assistant, tool", i, m.Role)}
		}
	}
	for _, p := range []struct {
		name string
		v    *int
	}{{"max_tokens", r.MaxTokens}, {"max_completion_tokens", r.MaxCompletionTokens}} {
		if p.v != nil && *p.v < 1 {
			return nil, &RequestError{Param: p.name, Message: fmt.Sprintf("%s must be a positive integer, got %d", p.name, *p.v)}
		}
	}
	return r, nil
}

// MaxOutputTokens returns max_completion_tokens, else max_tokens, else 0.
func (r *ChatRequest) MaxOutputTokens() int {
	if r.MaxCompletionTokens != nil {
		return *r.MaxCompletionTokens
	}
	if r.MaxTokens != nil {
		return *r.MaxTokens
	}
	return 0
}

// MarshalJSON writes the known fields and Extra.
func (r *ChatRequest) MarshalJSON() ([]byte, error) {
	type plain ChatRequest
	b, err := json.Marshal((*plain)(r))
	if err != nil || len(r.Extra) == 0 {
		return b, err
	}
	var buf bytes.Buffer
	buf.Write(b[:len(b)-1])
	for k, v := range r.Extra {
		kb, _ := json.Marshal(k)
		buf.WriteByte(',')
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func fieldError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "body"
		}
		return &RequestError{Param: field, Message: fmt.Sprintf("field '%s' has the wrong type: got JSON %s, want %s", field, te.Value, jsonKind(te.Type.String()))}
	}
	return &RequestError{Message: "request body: " + describeJSONError(err)}
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case goType == "string":
		return "a string"
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	case strings.Contains(goType, "Content"):
		return "a string or an array of content parts"
	}
	return "an object"
}

func describeJSONError(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	}
	return err.Error()
}

// Usage is the token usage of a completion.
type Usage struct {
	PromptTokens            int                  `json:"prompt_tokens"`
	CompletionTokens        int                  `json:"completion_tokens"`
	TotalTokens             int                  `json:"total_tokens"`
	PromptTokensDetails     *PromptTokensDetails `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails json.RawMessage      `json:"completion_tokens_details,omitempty"`
}

// PromptTokensDetails splits prompt tokens.
type PromptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

// ChatResponse is a non-streaming chat completion.
type ChatResponse struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	Choices           []Choice `json:"choices"`
	Usage             *Usage   `json:"usage,omitempty"`
	SystemFingerprint string   `json:"system_fingerprint,omitempty"`
}

// Choice is one completion choice.
type Choice struct {
	Index        int             `json:"index"`
	Message      ResponseMessage `json:"message"`
	FinishReason string          `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs,omitempty"`
}

// ResponseMessage is the assistant message of a choice.
type ResponseMessage struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	Refusal   *string    `json:"refusal,omitempty"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
}

// Chunk is one streamed chat.completion.chunk.
type Chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`
}

// ChunkChoice is one choice of a chunk.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

// Delta is the increment carried by a chunk.
type Delta struct {
	Role      string     `json:"role,omitempty"`
	Content   string     `json:"content,omitempty"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
}

// Model is an entry of GET /v1/models.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// ModelList is the GET /v1/models body.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}

// ErrorResponse is the OpenAI error body.
type ErrorResponse struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes an error. Type is one of invalid_request_error,
// authentication_error, permission_error, not_found_error, rate_limit_error,
// api_error; Code is a stable machine-readable code.
type ErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Code    string  `json:"code"`
	Param   *string `json:"param"`
}

func reflectTypeOfContent() reflect.Type { return reflect.TypeOf(Content{}) }
