// Package anthropicapi holds the Anthropic Messages API wire types and the
// translations between them and the OpenAI chat-completions types that
// Tollgate works with inside.
//
// Both directions are here, because both are needed: the gateway exposes an
// Anthropic-compatible POST /v1/messages (Request.ToOpenAI, FromOpenAIResponse,
// StreamEncoder), and the Anthropic provider adapter and the simulator speak
// to or as Anthropic (FromOpenAIRequest, Response.ToOpenAI, StreamDecoder).
// The package does no I/O.
package anthropicapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// DefaultVersion is the anthropic-version header value the translations
// follow.
const DefaultVersion = "2023-06-01"

// Request is a POST /v1/messages body.
type Request struct {
	Model         string          `json:"model"`
	Messages      []Message       `json:"messages"`
	System        *System         `json:"system,omitempty"`
	MaxTokens     int             `json:"max_tokens"`
	Metadata      *Metadata       `json:"metadata,omitempty"`
	StopSequences []string        `json:"stop_sequences,omitempty"`
	Stream        bool            `json:"stream,omitempty"`
	Temperature   *float64        `json:"temperature,omitempty"`
	TopP          *float64        `json:"top_p,omitempty"`
	TopK          *int            `json:"top_k,omitempty"`
	Tools         []Tool          `json:"tools,omitempty"`
	ToolChoice    *ToolChoice     `json:"tool_choice,omitempty"`
	Thinking      json.RawMessage `json:"thinking,omitempty"`
}

// Metadata is the request's metadata object.
type Metadata struct {
	UserID string `json:"user_id,omitempty"`
}

// System is the system prompt: a string or an array of text blocks.
type System struct {
	Text     string
	Blocks   []Block
	IsBlocks bool
}

// UnmarshalJSON accepts a string or an array of blocks.
func (s *System) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		*s = System{IsBlocks: true}
		return json.Unmarshal(b, &s.Blocks)
	}
	*s = System{}
	return json.Unmarshal(b, &s.Text)
}

// MarshalJSON writes the system prompt in the form it has.
func (s System) MarshalJSON() ([]byte, error) {
	if s.IsBlocks {
		return json.Marshal(s.Blocks)
	}
	return json.Marshal(s.Text)
}

// Message is one turn of the conversation.
type Message struct {
	Role    string `json:"role"`
	Content Blocks `json:"content"`
}

// Blocks is a content: the API accepts a string for a single text block;
// Blocks reads it as one and always writes an array, except that Text keeps
// a string content a string when written back.
type Blocks struct {
	List []Block
	// Text is set, and List holds one text block, when the content was a
	// plain string.
	IsText bool
}

// TextBlocks returns a string content.
func TextBlocks(s string) Blocks {
	return Blocks{List: []Block{{Type: "text", Text: s}}, IsText: true}
}

// UnmarshalJSON accepts a string or an array of blocks.
func (c *Blocks) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return errors.New("empty content")
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*c = TextBlocks(s)
		return nil
	case b[0] == '[':
		*c = Blocks{}
		return json.Unmarshal(b, &c.List)
	}
	return fmt.Errorf("content must be a string or an array of content blocks")
}

// MarshalJSON writes a string for a plain-text content, else the array.
func (c Blocks) MarshalJSON() ([]byte, error) {
	if c.IsText && len(c.List) == 1 && c.List[0].Type == "text" {
		return json.Marshal(c.List[0].Text)
	}
	if c.List == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(c.List)
}

// Block is a content block. Which fields apply depends on Type: text (Text),
// image (Source), tool_use (ID, Name, Input), tool_result (ToolUseID,
// Content, IsError), thinking (Thinking, Signature).
type Block struct {
	Type      string
	Text      string
	Source    *ImageSource
	ID        string
	Name      string
	Input     json.RawMessage
	ToolUseID string
	Content   *Blocks
	IsError   bool
	Thinking  string
	Signature string
	// CacheControl is kept from requests so that it can be forwarded.
	CacheControl json.RawMessage
}

// ImageSource is where an image block's bytes come from.
type ImageSource struct {
	Type      string `json:"type"` // base64 or url
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type blockWire struct {
	Type         string          `json:"type"`
	Text         *string         `json:"text,omitempty"`
	Source       *ImageSource    `json:"source,omitempty"`
	ID           string          `json:"id,omitempty"`
	Name         string          `json:"name,omitempty"`
	Input        json.RawMessage `json:"input,omitempty"`
	ToolUseID    string          `json:"tool_use_id,omitempty"`
	Content      *Blocks         `json:"content,omitempty"`
	IsError      bool            `json:"is_error,omitempty"`
	Thinking     *string         `json:"thinking,omitempty"`
	Signature    *string         `json:"signature,omitempty"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

// MarshalJSON writes only the fields of the block's type, since the API
// rejects fields that do not belong to a type.
func (b Block) MarshalJSON() ([]byte, error) {
	w := blockWire{Type: b.Type, CacheControl: b.CacheControl}
	switch b.Type {
	case "text":
		w.Text = &b.Text
	case "image":
		w.Source = b.Source
	case "tool_use":
		w.ID, w.Name, w.Input = b.ID, b.Name, b.Input
		if len(w.Input) == 0 {
			w.Input = json.RawMessage("{}")
		}
	case "tool_result":
		w.ToolUseID, w.Content, w.IsError = b.ToolUseID, b.Content, b.IsError
	case "thinking":
		w.Thinking, w.Signature = &b.Thinking, &b.Signature
	default:
		w.Text, w.Source, w.ID, w.Name, w.Input = nonEmpty(b.Text), b.Source, b.ID, b.Name, b.Input
	}
	return json.Marshal(w)
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// UnmarshalJSON reads a block of any type.
func (b *Block) UnmarshalJSON(data []byte) error {
	var w blockWire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*b = Block{Type: w.Type, Source: w.Source, ID: w.ID, Name: w.Name, Input: w.Input,
		ToolUseID: w.ToolUseID, Content: w.Content, IsError: w.IsError, CacheControl: w.CacheControl}
	if w.Text != nil {
		b.Text = *w.Text
	}
	if w.Thinking != nil {
		b.Thinking = *w.Thinking
	}
	if w.Signature != nil {
		b.Signature = *w.Signature
	}
	return nil
}

// Tool is a tool the model may call. Client tools have no Type (or
// "custom"); server tools (web search and the like) have a versioned Type.
type Tool struct {
	Type         string          `json:"type,omitempty"`
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema,omitempty"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

// ToolChoice is the tool_choice object.
type ToolChoice struct {
	Type                   string `json:"type"` // auto, any, tool, none
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// Response is a non-streaming Messages answer.
type Response struct {
	ID           string  `json:"id"`
	Type         string  `json:"type"`
	Role         string  `json:"role"`
	Model        string  `json:"model"`
	Content      []Block `json:"content"`
	StopReason   *string `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
	Usage        Usage   `json:"usage"`
}

// Usage is the token usage of a message. InputTokens excludes the cached
// and cache-writing input tokens, which are counted apart.
type Usage struct {
	InputTokens              int `json:"input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
}

// ErrorResponse is the API's error body.
type ErrorResponse struct {
	Type  string      `json:"type"` // "error"
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes an error. Type is one of invalid_request_error,
// authentication_error, permission_error, not_found_error,
// request_too_large, rate_limit_error, api_error, overloaded_error.
type ErrorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// StatusOfErrorType returns the HTTP status the API uses for an error type.
func StatusOfErrorType(t string) int {
	switch t {
	case "invalid_request_error":
		return 400
	case "authentication_error":
		return 401
	case "billing_error":
		return 402
	case "permission_error":
		return 403
	case "not_found_error":
		return 404
	case "request_too_large":
		return 413
	case "rate_limit_error":
		return 429
	case "timeout_error":
		return 504
	case "overloaded_error":
		return 529
	}
	return 500
}

// ErrorTypeOfStatus returns the API's error type for an HTTP status.
func ErrorTypeOfStatus(status int) string {
	switch status {
	case 400, 422:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 402:
		return "billing_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 504:
		return "timeout_error"
	case 529, 503:
		return "overloaded_error"
	}
	if status >= 400 && status < 500 {
		return "invalid_request_error"
	}
	return "api_error"
}

// NewError returns the error body for status with message.
func NewError(status int, message string) ErrorResponse {
	return ErrorResponse{Type: "error", Error: ErrorDetail{Type: ErrorTypeOfStatus(status), Message: message}}
}
