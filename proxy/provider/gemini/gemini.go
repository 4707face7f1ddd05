// Package gemini holds the Google Gemini (and Vertex AI) generateContent
// wire types and the translations between them and the OpenAI
// chat-completions types: requests both ways (the adapter sends, the
// simulator receives), responses both ways, and stream chunks both ways.
// It does no I/O.
package gemini

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/proxy/openai"
)

// Request is a generateContent / streamGenerateContent body.
type Request struct {
	Contents          []Content         `json:"contents"`
	SystemInstruction *Content          `json:"systemInstruction,omitempty"`
	Tools             []Tool            `json:"tools,omitempty"`
	ToolConfig        *ToolConfig       `json:"toolConfig,omitempty"`
	GenerationConfig  *GenerationConfig `json:"generationConfig,omitempty"`
}

// Content is one turn: role "user" or "model", and its parts.
type Content struct {
	Role  string `json:"role,omitempty"`
	Parts []Part `json:"parts"`
}

// Part is one piece of a turn; exactly one of its data fields is set.
type Part struct {
	Text             string            `json:"text,omitempty"`
	Thought          bool              `json:"thought,omitempty"`
	InlineData       *Blob             `json:"inlineData,omitempty"`
	FileData         *FileData         `json:"fileData,omitempty"`
	FunctionCall     *FunctionCall     `json:"functionCall,omitempty"`
	FunctionResponse *FunctionResponse `json:"functionResponse,omitempty"`
	ThoughtSignature string            `json:"thoughtSignature,omitempty"`
}

// Blob is inline bytes, base64-encoded.
type Blob struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"`
}

// FileData refers to a file by URI.
type FileData struct {
	MimeType string `json:"mimeType,omitempty"`
	FileURI  string `json:"fileUri"`
}

// FunctionCall is the model's call of a declared function.
type FunctionCall struct {
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

// FunctionResponse is the result of a function call, sent back by the
// client. Response must be a JSON object.
type FunctionResponse struct {
	ID       string          `json:"id,omitempty"`
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

// Tool declares functions.
type Tool struct {
	FunctionDeclarations []FunctionDeclaration `json:"functionDeclarations,omitempty"`
}

// FunctionDeclaration is one declared function; Parameters is an OpenAPI
// schema object.
type FunctionDeclaration struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// ToolConfig constrains function calling.
type ToolConfig struct {
	FunctionCallingConfig *FunctionCallingConfig `json:"functionCallingConfig,omitempty"`
}

// FunctionCallingConfig: Mode is AUTO, ANY or NONE.
type FunctionCallingConfig struct {
	Mode                 string   `json:"mode,omitempty"`
	AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
}

// GenerationConfig holds the sampling parameters.
type GenerationConfig struct {
	Temperature      *float64 `json:"temperature,omitempty"`
	TopP             *float64 `json:"topP,omitempty"`
	TopK             *int     `json:"topK,omitempty"`
	MaxOutputTokens  *int     `json:"maxOutputTokens,omitempty"`
	StopSequences    []string `json:"stopSequences,omitempty"`
	CandidateCount   *int     `json:"candidateCount,omitempty"`
	ResponseMimeType string   `json:"responseMimeType,omitempty"`
}

// Response is a GenerateContentResponse; a stream sends one per event.
type Response struct {
	Candidates     []Candidate     `json:"candidates,omitempty"`
	PromptFeedback *PromptFeedback `json:"promptFeedback,omitempty"`
	UsageMetadata  *UsageMetadata  `json:"usageMetadata,omitempty"`
	ModelVersion   string          `json:"modelVersion,omitempty"`
	ResponseID     string          `json:"responseId,omitempty"`
}

// Candidate is one generated answer.
type Candidate struct {
	Content      *Content `json:"content,omitempty"`
	FinishReason string   `json:"finishReason,omitempty"`
	Index        int      `json:"index"`
}

// PromptFeedback tells why a prompt was blocked.
type PromptFeedback struct {
	BlockReason string `json:"blockReason,omitempty"`
}

// UsageMetadata is the token usage. PromptTokenCount includes the cached
// tokens; thoughts are counted apart from candidates.
type UsageMetadata struct {
	PromptTokenCount        int `json:"promptTokenCount"`
	CandidatesTokenCount    int `json:"candidatesTokenCount"`
	TotalTokenCount         int `json:"totalTokenCount"`
	CachedContentTokenCount int `json:"cachedContentTokenCount,omitempty"`
	ThoughtsTokenCount      int `json:"thoughtsTokenCount,omitempty"`
	ToolUsePromptTokenCount int `json:"toolUsePromptTokenCount,omitempty"`
}

// ErrorResponse is the Google API error body.
type ErrorResponse struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes an error; Status is the canonical code name
// (RESOURCE_EXHAUSTED, INVALID_ARGUMENT, ...). Details may carry a
// google.rpc.RetryInfo with a retryDelay such as "30s".
type ErrorDetail struct {
	Code    int               `json:"code"`
	Message string            `json:"message"`
	Status  string            `json:"status"`
	Details []json.RawMessage `json:"details,omitempty"`
}

// RetryDelay returns the RetryInfo delay in seconds, if the error has one.
func (e ErrorDetail) RetryDelay() (float64, bool) {
	for _, raw := range e.Details {
		var d struct {
			Type       string `json:"@type"`
			RetryDelay string `json:"retryDelay"`
		}
		if json.Unmarshal(raw, &d) != nil || !strings.HasSuffix(d.Type, "google.rpc.RetryInfo") {
			continue
		}
		s, ok := strings.CutSuffix(d.RetryDelay, "s")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(s, 64); err == nil && v >= 0 {
			return v, true
		}
	}
	return 0, false
}

// StatusName returns the canonical status name for an HTTP status.
func StatusName(status int) string {
	switch status {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	return "INTERNAL"
}

// FinishReason maps a Gemini finishReason to an OpenAI finish_reason;
// toolCalls says whether the candidate called functions.
func FinishReason(reason string, toolCalls bool) string {
	switch reason {
	case "MAX_TOKENS":
		return "length"
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY":
		return "content_filter"
	}
	if toolCalls {
		return "tool_calls"
	}
	return "stop"
}

// FinishReasonFromOpenAI is the inverse of FinishReason; tool calls end
// with STOP, as Gemini reports them.
func FinishReasonFromOpenAI(reason string) string {
	switch reason {
	case "length":
		return "MAX_TOKENS"
	case "content_filter":
		return "SAFETY"
	}
	return "STOP"
}

// UsageToOpenAI normalises usage: completion tokens include thoughts, which
// are also reported as reasoning tokens.
func UsageToOpenAI(u UsageMetadata) openai.Usage {
	prompt := u.PromptTokenCount + u.ToolUsePromptTokenCount
	completion := u.CandidatesTokenCount + u.ThoughtsTokenCount
	out := openai.Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
	if u.CachedContentTokenCount > 0 {
		out.PromptTokensDetails = &openai.PromptTokensDetails{CachedTokens: u.CachedContentTokenCount}
	}
	if u.ThoughtsTokenCount > 0 {
		out.CompletionTokensDetails = json.RawMessage(`{"reasoning_tokens":` + strconv.Itoa(u.ThoughtsTokenCount) + `}`)
	}
	return out
}

// UsageFromOpenAI is the inverse of UsageToOpenAI for usage without
// reasoning tokens.
func UsageFromOpenAI(u openai.Usage) UsageMetadata {
	out := UsageMetadata{PromptTokenCount: u.PromptTokens, CandidatesTokenCount: u.CompletionTokens, TotalTokenCount: u.PromptTokens + u.CompletionTokens}
	if d := u.PromptTokensDetails; d != nil {
		out.CachedContentTokenCount = d.CachedTokens
	}
	return out
}

// functionDef is the function object of an OpenAI tool.
type functionDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// FromOpenAIRequest translates a chat-completions request into a
// generateContent request. System and developer messages become the
// systemInstruction; assistant turns role "model"; tool messages
// functionResponse parts of a user turn (the function name comes from the
// assistant call with the same id); consecutive turns of one role are
// merged; data: image URLs become inlineData.
func FromOpenAIRequest(req *openai.ChatRequest) (*Request, error) {
	out := &Request{}
	names := map[string]string{} // tool_call_id → function name
	var system []Part
	for i, m := range req.Messages {
		where := fmt.Sprintf("messages[%d]", i)
		var role string
		var parts []Part
		switch m.Role {
		case "system", "developer":
			for _, t := range m.Content.TextParts() {
				system = append(system, Part{Text: t})
			}
			continue
		case "user":
			role = "user"
			ps, err := userParts(m.Content, where)
			if err != nil {
				return nil, err
			}
			parts = ps
		case "assistant":
			role = "model"
			for _, t := range m.Content.TextParts() {
				parts = append(parts, Part{Text: t})
			}
			for j, tc := range m.ToolCalls {
				args, err := objectJSON(tc.Function.Arguments)
				if err != nil {
					return nil, &openai.RequestError{Param: fmt.Sprintf("%s.tool_calls[%d].function.arguments", where, j), Message: fmt.Sprintf("%s.tool_calls[%d].function.arguments: %v", where, j, err)}
				}
				names[tc.ID] = tc.Function.Name
				parts = append(parts, Part{FunctionCall: &FunctionCall{Name: tc.Function.Name, Args: args}})
			}
		case "tool":
			role = "user"
			name, ok := names[m.ToolCallID]
			if !ok {
				return nil, &openai.RequestError{Param: where + ".tool_call_id", Message: fmt.Sprintf("%s.tool_call_id %q matches no earlier assistant tool call; Gemini needs the function's name", where, m.ToolCallID)}
			}
			parts = []Part{{FunctionResponse: &FunctionResponse{Name: name, Response: ResponseObject(m.Content.String())}}}
		default:
			return nil, &openai.RequestError{Param: where + ".role", Message: fmt.Sprintf("%s.role %q cannot be sent to a Gemini model; use system, user, assistant or tool", where, m.Role)}
		}
		if len(parts) == 0 {
			continue
		}
		if n := len(out.Contents); n > 0 && out.Contents[n-1].Role == role {
			out.Contents[n-1].Parts = append(out.Contents[n-1].Parts, parts...)
			continue
		}
		out.Contents = append(out.Contents, Content{Role: role, Parts: parts})
	}
	if len(system) > 0 {
		out.SystemInstruction = &Content{Parts: system}
	}
	var decls []FunctionDeclaration
	for i, t := range req.Tools {
		var fn functionDef
		if t.Type != "function" || json.Unmarshal(t.Function, &fn) != nil || fn.Name == "" {
			return nil, &openai.RequestError{Param: fmt.Sprintf("tools[%d]", i), Message: fmt.Sprintf("tools[%d] must be a function tool with a name", i)}
		}
		decls = append(decls, FunctionDeclaration{Name: fn.Name, Description: fn.Description, Parameters: SanitizeSchema(fn.Parameters)})
	}
	if len(decls) > 0 {
		out.Tools = []Tool{{FunctionDeclarations: decls}}
	}
	gc := &GenerationConfig{Temperature: req.Temperature, TopP: req.TopP, CandidateCount: req.N}
	if n := req.MaxOutputTokens(); n > 0 {
		gc.MaxOutputTokens = &n
	}
	if raw, ok := req.Extra["stop"]; ok {
		stops, err := stopList(raw)
		if err != nil {
			return nil, &openai.RequestError{Param: "stop", Message: "stop must be a string or an array of strings"}
		}
		gc.StopSequences = stops
	}
	if raw, ok := req.Extra["response_format"]; ok {
		var rf struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &rf) == nil && (rf.Type == "json_object" || rf.Type == "json_schema") {
			gc.ResponseMimeType = "application/json"
		}
	}
	if gc.Temperature != nil || gc.TopP != nil || gc.CandidateCount != nil || gc.MaxOutputTokens != nil ||
		len(gc.StopSequences) > 0 || gc.ResponseMimeType != "" {
		out.GenerationConfig = gc
	}
	if raw, ok := req.Extra["tool_choice"]; ok && len(decls) > 0 {
		fc, err := toolChoice(raw)
		if err != nil {
			return nil, err
		}
		out.ToolConfig = &ToolConfig{FunctionCallingConfig: fc}
	}
	return out, nil
}

func toolChoice(raw json.RawMessage) (*FunctionCallingConfig, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "auto":
			return &FunctionCallingConfig{Mode: "AUTO"}, nil
		case "required":
			return &FunctionCallingConfig{Mode: "ANY"}, nil
		case "none":
			return &FunctionCallingConfig{Mode: "NONE"}, nil
		}
	}
	var obj struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Function.Name != "" {
		return &FunctionCallingConfig{Mode: "ANY", AllowedFunctionNames: []string{obj.Function.Name}}, nil
	}
	return nil, &openai.RequestError{Param: "tool_choice", Message: `tool_choice must be "auto", "required", "none" or {"type":"function","function":{"name":"..."}}`}
}

func stopList(raw json.RawMessage) ([]string, error) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var many []string
	err := json.Unmarshal(raw, &many)
	return many, err
}

// SanitizeSchema drops the JSON Schema keywords that Gemini's OpenAPI
// subset rejects ($schema, additionalProperties), at any depth. An empty
// schema stays empty.
func SanitizeSchema(s json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(s)) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(s, &v) != nil {
		return s
	}
	v = sanitize(v)
	b, err := json.Marshal(v)
	if err != nil {
		return s
	}
	return b
}

func sanitize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		delete(x, "$schema")
		delete(x, "additionalProperties")
		for k, e := range x {
			x[k] = sanitize(e)
		}
	case []any:
		for i, e := range x {
			x[i] = sanitize(e)
		}
	}
	return v
}

// ResponseObject wraps a tool result for functionResponse.response, which
// must be an object: a JSON object passes as it is, anything else becomes
// {"content": text}.
func ResponseObject(text string) json.RawMessage {
	t := strings.TrimSpace(text)
	if strings.HasPrefix(t, "{") && json.Valid([]byte(t)) {
		var b bytes.Buffer
		if json.Compact(&b, []byte(t)) == nil {
			return b.Bytes()
		}
	}
	b, _ := json.Marshal(map[string]string{"content": text})
	return b
}

// ResponseText is the inverse of ResponseObject.
func ResponseText(obj json.RawMessage) string {
	var wrapped map[string]json.RawMessage
	if json.Unmarshal(obj, &wrapped) == nil && len(wrapped) == 1 {
		if raw, ok := wrapped["content"]; ok {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				return s
			}
		}
	}
	var b bytes.Buffer
	if json.Compact(&b, obj) != nil {
		return string(obj)
	}
	return b.String()
}

func userParts(c openai.Content, where string) ([]Part, error) {
	if !c.IsParts {
		if c.Text == "" {
			return nil, nil
		}
		return []Part{{Text: c.Text}}, nil
	}
	var out []Part
	for j, p := range c.Parts {
		pw := fmt.Sprintf("%s.content[%d]", where, j)
		switch p.Type {
		case "text":
			if p.Text != "" {
				out = append(out, Part{Text: p.Text})
			}
		case "image_url":
			var iu struct {
				URL string `json:"url"`
			}
			if err := json.Unmarshal(p.ImageURL, &iu); err != nil || iu.URL == "" {
				return nil, &openai.RequestError{Param: pw + ".image_url", Message: pw + `.image_url: want an object {"url": "data:image/png;base64,..."}`}
			}
			if rest, ok := strings.CutPrefix(iu.URL, "data:"); ok {
				meta, data, ok := strings.Cut(rest, ",")
				mt, enc, ok2 := strings.Cut(meta, ";")
				if !ok || !ok2 || enc != "base64" || mt == "" {
					return nil, &openai.RequestError{Param: pw + ".image_url", Message: pw + ".image_url: data: URL must be base64 with a media type, e.g. data:image/png;base64,..."}
				}
				out = append(out, Part{InlineData: &Blob{MimeType: mt, Data: data}})
				continue
			}
			out = append(out, Part{FileData: &FileData{MimeType: mimeFromURL(iu.URL), FileURI: iu.URL}})
		default:
			return nil, &openai.RequestError{Param: pw + ".type", Message: fmt.Sprintf("%s.type %q is not supported for Gemini models; send text and image_url parts", pw, p.Type)}
		}
	}
	return out, nil
}

func mimeFromURL(u string) string {
	u = strings.ToLower(u)
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	switch {
	case strings.HasSuffix(u, ".png"):
		return "image/png"
	case strings.HasSuffix(u, ".webp"):
		return "image/webp"
	case strings.HasSuffix(u, ".gif"):
		return "image/gif"
	}
	return "image/jpeg"
}

// objectJSON parses tool-call arguments, which must be a JSON object.
func objectJSON(args string) (json.RawMessage, error) {
	t := bytes.TrimSpace([]byte(args))
	if len(t) == 0 {
		return json.RawMessage("{}"), nil
	}
	if t[0] != '{' {
		return nil, errors.New("arguments must be a JSON object")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, t); err != nil {
		return nil, fmt.Errorf("arguments are not valid JSON: %w", err)
	}
	return b.Bytes(), nil
}

// ToOpenAI translates an inbound generateContent request for model into a
// chat-completions request (the simulator's view of it). Function calls get
// the ids they carry, else "call_<name>_<n>" numbered in order, and
// function responses take the id of the oldest unanswered call of their
// name.
func (r *Request) ToOpenAI(model string, stream bool) (*openai.ChatRequest, error) {
	out := &openai.ChatRequest{Model: model, Stream: stream}
	if stream {
		out.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	}
	if s := r.SystemInstruction; s != nil {
		var texts []string
		for _, p := range s.Parts {
			if p.Text != "" {
				texts = append(texts, p.Text)
			}
		}
		if len(texts) > 0 {
			out.Messages = append(out.Messages, openai.Message{Role: "system", Content: textContent(texts)})
		}
	}
	pending := map[string][]string{} // function name → unanswered call ids
	n := 0
	for i, c := range r.Contents {
		switch c.Role {
		case "user", "", "function":
			var parts []openai.ContentPart
			for _, p := range c.Parts {
				switch {
				case p.FunctionResponse != nil:
					fr := p.FunctionResponse
					id := fr.ID
					if ids := pending[fr.Name]; id == "" && len(ids) > 0 {
						id, pending[fr.Name] = ids[0], ids[1:]
					}
					out.Messages = append(out.Messages, openai.Message{Role: "tool", ToolCallID: id, Content: openai.TextContent(ResponseText(fr.Response))})
				case p.InlineData != nil:
					raw, _ := json.Marshal(map[string]string{"url": "data:" + p.InlineData.MimeType + ";base64," + p.InlineData.Data})
					parts = append(parts, openai.ContentPart{Type: "image_url", ImageURL: raw})
				case p.FileData != nil:
					raw, _ := json.Marshal(map[string]string{"url": p.FileData.FileURI})
					parts = append(parts, openai.ContentPart{Type: "image_url", ImageURL: raw})
				case p.Text != "":
					parts = append(parts, openai.ContentPart{Type: "text", Text: p.Text})
				}
			}
			if len(parts) == 0 {
				continue
			}
			msg := openai.Message{Role: "user", Content: openai.Content{IsParts: true, Parts: parts}}
			if len(parts) == 1 && parts[0].Type == "text" {
				msg.Content = openai.TextContent(parts[0].Text)
			}
			out.Messages = append(out.Messages, msg)
		case "model":
			msg := openai.Message{Role: "assistant"}
			var texts []string
			for _, p := range c.Parts {
				switch {
				case p.FunctionCall != nil:
					fc := p.FunctionCall
					id := fc.ID
					if id == "" {
						n++
						id = "call_" + fc.Name + "_" + strconv.Itoa(n)
					}
					pending[fc.Name] = append(pending[fc.Name], id)
					args, err := objectJSON(string(fc.Args))
					if err != nil {
						return nil, &openai.RequestError{Param: fmt.Sprintf("contents[%d]", i), Message: fmt.Sprintf("contents[%d]: functionCall %s: %v", i, fc.Name, err)}
					}
					msg.ToolCalls = append(msg.ToolCalls, openai.ToolCall{ID: id, Type: "function", Function: openai.FunctionCall{Name: fc.Name, Arguments: string(args)}})
				case p.Text != "" && !p.Thought:
					texts = append(texts, p.Text)
				}
			}
			switch {
			case len(texts) > 0:
				msg.Content = openai.TextContent(strings.Join(texts, ""))
			case len(msg.ToolCalls) > 0:
				msg.Content = openai.Content{Null: true}
			default:
				continue
			}
			out.Messages = append(out.Messages, msg)
		default:
			return nil, &openai.RequestError{Param: fmt.Sprintf("contents[%d].role", i), Message: fmt.Sprintf("contents[%d].role %q is not valid; use user or model", i, c.Role)}
		}
	}
	for _, t := range r.Tools {
		for _, d := range t.FunctionDeclarations {
			fn, _ := json.Marshal(functionDef{Name: d.Name, Description: d.Description, Parameters: d.Parameters})
			out.Tools = append(out.Tools, openai.Tool{Type: "function", Function: fn})
		}
	}
	if gc := r.GenerationConfig; gc != nil {
		out.Temperature, out.TopP, out.N = gc.Temperature, gc.TopP, gc.CandidateCount
		out.MaxTokens = gc.MaxOutputTokens
	}
	return out, nil
}

func textContent(texts []string) openai.Content {
	if len(texts) == 1 {
		return openai.TextContent(texts[0])
	}
	parts := make([]openai.ContentPart, len(texts))
	for i, t := range texts {
		parts[i] = openai.ContentPart{Type: "text", Text: t}
	}
	return openai.Content{IsParts: true, Parts: parts}
}

// ToOpenAI translates a (non-streaming) response into a chat completion;
// id, model and created fill what Gemini does not send. Function calls
// without an id get "call_<n>" by position. A response without candidates
// is blocked content: one empty choice finished by content_filter.
func (r *Response) ToOpenAI(id, model string, created int64) (*openai.ChatResponse, error) {
	out := &openai.ChatResponse{ID: id, Object: "chat.completion", Created: created, Model: model}
	if r.ResponseID != "" {
		out.ID = r.ResponseID
	}
	if r.ModelVersion != "" {
		out.Model = r.ModelVersion
	}
	n := 0
	for _, c := range r.Candidates {
		var text strings.Builder
		var calls []openai.ToolCall
		if c.Content != nil {
			for _, p := range c.Content.Parts {
				switch {
				case p.FunctionCall != nil:
					call, err := toolCall(p.FunctionCall, &n)
					if err != nil {
						return nil, err
					}
					calls = append(calls, call)
				case !p.Thought:
					text.WriteString(p.Text)
				}
			}
		}
		msg := openai.ResponseMessage{Role: "assistant", ToolCalls: calls}
		if s := text.String(); s != "" || len(calls) == 0 {
			msg.Content = &s
		}
		out.Choices = append(out.Choices, openai.Choice{Index: c.Index, Message: msg, FinishReason: FinishReason(c.FinishReason, len(calls) > 0)})
	}
	if len(out.Choices) == 0 {
		if r.PromptFeedback == nil || r.PromptFeedback.BlockReason == "" {
			return nil, errors.New("response has no candidates and no block reason")
		}
		empty := ""
		out.Choices = []openai.Choice{{Message: openai.ResponseMessage{Role: "assistant", Content: &empty}, FinishReason: "content_filter"}}
	}
	if r.UsageMetadata != nil {
		u := UsageToOpenAI(*r.UsageMetadata)
		out.Usage = &u
	}
	return out, nil
}

func toolCall(fc *FunctionCall, n *int) (openai.ToolCall, error) {
	args, err := objectJSON(string(fc.Args))
	if err != nil {
		return openai.ToolCall{}, fmt.Errorf("functionCall %s: %w", fc.Name, err)
	}
	id := fc.ID
	if id == "" {
		id = "call_" + strconv.Itoa(*n)
	}
	*n++
	return openai.ToolCall{ID: id, Type: "function", Function: openai.FunctionCall{Name: fc.Name, Arguments: string(args)}}, nil
}

// FromOpenAIResponse translates a chat completion into a response (the
// simulator's answer).
func FromOpenAIResponse(resp *openai.ChatResponse) (*Response, error) {
	out := &Response{ResponseID: resp.ID, ModelVersion: resp.Model}
	for _, ch := range resp.Choices {
		c := Candidate{Index: ch.Index, FinishReason: FinishReasonFromOpenAI(ch.FinishReason), Content: &Content{Role: "model", Parts: []Part{}}}
		if t := ch.Message.Content; t != nil && *t != "" {
			c.Content.Parts = append(c.Content.Parts, Part{Text: *t})
		}
		for _, tc := range ch.Message.ToolCalls {
			args, err := objectJSON(tc.Function.Arguments)
			if err != nil {
				return nil, fmt.Errorf("tool call %s: %w", tc.Function.Name, err)
			}
			c.Content.Parts = append(c.Content.Parts, Part{FunctionCall: &FunctionCall{ID: tc.ID, Name: tc.Function.Name, Args: args}})
		}
		out.Candidates = append(out.Candidates, c)
	}
	if resp.Usage != nil {
		u := UsageFromOpenAI(*resp.Usage)
		out.UsageMetadata = &u
	}
	return out, nil
}
