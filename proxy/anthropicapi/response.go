package anthropicapi

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/proxy/openai"
)

// FinishReason maps an Anthropic stop_reason to an OpenAI finish_reason.
func FinishReason(stopReason string) string {
	switch stopReason {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	// end_turn, stop_sequence, pause_turn and anything new.
	return "stop"
}

// StopReason maps an OpenAI finish_reason to an Anthropic stop_reason.
func StopReason(finishReason string) string {
	switch finishReason {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	}
	return "end_turn"
}

// UsageToOpenAI normalises Anthropic usage: prompt tokens are all input
// tokens, cached ones (cache reads) included, as OpenAI counts them.
func UsageToOpenAI(u Usage) openai.Usage {
	prompt := u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
	out := openai.Usage{PromptTokens: prompt, CompletionTokens: u.OutputTokens, TotalTokens: prompt + u.OutputTokens}
	if u.CacheReadInputTokens > 0 {
		out.PromptTokensDetails = &openai.PromptTokensDetails{CachedTokens: u.CacheReadInputTokens}
	}
	return out
}

// UsageFromOpenAI is the inverse of UsageToOpenAI (cache writes, which
// OpenAI does not report, count as plain input).
func UsageFromOpenAI(u openai.Usage) Usage {
	out := Usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens}
	if d := u.PromptTokensDetails; d != nil && d.CachedTokens > 0 && d.CachedTokens <= u.PromptTokens {
		out.CacheReadInputTokens = d.CachedTokens
		out.InputTokens -= d.CachedTokens
	}
	return out
}

// ToOpenAI translates a Messages answer into a chat completion with one
// choice. created is its Unix time. Thinking blocks are dropped.
func (r *Response) ToOpenAI(created int64) (*openai.ChatResponse, error) {
	var text strings.Builder
	hasText := false
	var calls []openai.ToolCall
	for i, b := range r.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
			hasText = true
		case "tool_use":
			args, err := compactObject(b.Input)
			if err != nil {
				return nil, fmt.Errorf("content[%d] (tool_use %s): %w", i, b.Name, err)
			}
			calls = append(calls, openai.ToolCall{ID: b.ID, Type: "function", Function: openai.FunctionCall{Name: b.Name, Arguments: args}})
		}
	}
	msg := openai.ResponseMessage{Role: "assistant", ToolCalls: calls}
	if hasText || len(calls) == 0 {
		s := text.String()
		msg.Content = &s
	}
	finish := "stop"
	if r.StopReason != nil {
		finish = FinishReason(*r.StopReason)
	}
	u := UsageToOpenAI(r.Usage)
	return &openai.ChatResponse{
		ID:      r.ID,
		Object:  "chat.completion",
		Created: created,
		Model:   r.Model,
		Choices: []openai.Choice{{Index: 0, Message: msg, FinishReason: finish}},
		Usage:   &u,
	}, nil
}

// FromOpenAIResponse translates a chat completion into a Messages answer,
// from its first choice. Tool-call arguments that are not a JSON object are
// an error: the Messages API cannot carry them.
func FromOpenAIResponse(resp *openai.ChatResponse) (*Response, error) {
	out := &Response{ID: MessageID(resp.ID), Type: "message", Role: "assistant", Model: resp.Model, Content: []Block{}}
	stop := "end_turn"
	if len(resp.Choices) > 0 {
		ch := resp.Choices[0]
		if c := ch.Message.Content; c != nil && *c != "" {
			out.Content = append(out.Content, Block{Type: "text", Text: *c})
		}
		for i, tc := range ch.Message.ToolCalls {
			in, err := argumentsObject(tc.Function.Arguments)
			if err != nil {
				return nil, fmt.Errorf("tool_calls[%d] (%s): %w", i, tc.Function.Name, err)
			}
			out.Content = append(out.Content, Block{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: in})
		}
		stop = StopReason(ch.FinishReason)
	}
	out.StopReason = &stop
	if resp.Usage != nil {
		out.Usage = UsageFromOpenAI(*resp.Usage)
	}
	return out, nil
}

// MessageID returns an Anthropic-style id for a completion id.
func MessageID(id string) string {
	if strings.HasPrefix(id, "msg_") {
		return id
	}
	return "msg_" + id
}

// ErrorFromOpenAI turns an OpenAI error into the Anthropic error body.
func ErrorFromOpenAI(status int, e openai.ErrorDetail) ErrorResponse {
	out := NewError(status, e.Message)
	return out
}

// ErrorBody encodes the Anthropic error body for status and message.
func ErrorBody(status int, message string) []byte {
	b, _ := json.Marshal(NewError(status, message))
	return b
}
