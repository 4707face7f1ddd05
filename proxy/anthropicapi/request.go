package anthropicapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/proxy/openai"
)

// ParseRequest decodes and validates a /v1/messages body. Its errors are
// *openai.RequestError with a message that says what to fix.
func ParseRequest(body []byte) (*Request, error) {
	const example = `; send a JSON object such as {"model":"claude-3-5-haiku","max_tokens":256,"messages":[{"role":"user","content":"hi"}]}`
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return nil, &openai.RequestError{Message: "request body must be a JSON object" + example}
	}
	r := &Request{}
	if err := json.Unmarshal(body, r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, &openai.RequestError{Param: te.Field, Message: fmt.Sprintf("field '%s' has the wrong type: got JSON %s", te.Field, te.Value)}
		}
		return nil, &openai.RequestError{Message: "request body is not a valid Messages request: " + err.Error() + example}
	}
	if r.Model == "" {
		return nil, &openai.RequestError{Param: "model", Message: "missing required field 'model': name the model to call, e.g. \"model\": \"claude-3-5-haiku\""}
	}
	if r.MaxTokens < 1 {
		return nil, &openai.RequestError{Param: "max_tokens", Message: fmt.Sprintf("max_tokens must be a positive integer, got %d", r.MaxTokens)}
	}
	if len(r.Messages) == 0 {
		return nil, &openai.RequestError{Param: "messages", Message: "missing required field 'messages': send at least one message, e.g. [{\"role\":\"user\",\"content\":\"hi\"}]"}
	}
	for i, m := range r.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return nil, &openai.RequestError{Param: fmt.Sprintf("messages[%d].role", i), Message: fmt.Sprintf("messages[%d].role %q is not valid; use user or assistant (the system prompt goes in the top-level system field)", i, m.Role)}
		}
	}
	return r, nil
}

// ToOpenAI translates an inbound Messages request into the chat-completions
// request the gateway works with. Tool results become tool messages,
// tool_use blocks tool calls, base64 images data: URLs. Thinking blocks are
// dropped: chat completions cannot carry them.
func (r *Request) ToOpenAI() (*openai.ChatRequest, error) {
	out := &openai.ChatRequest{
		Model:       r.Model,
		Stream:      r.Stream,
		Temperature: r.Temperature,
		TopP:        r.TopP,
	}
	if r.MaxTokens > 0 {
		n := r.MaxTokens
		out.MaxTokens = &n
	}
	if r.Stream {
		out.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	}
	if r.Metadata != nil {
		out.User = r.Metadata.UserID
	}
	if r.System != nil {
		if m, ok := systemMessage(r.System); ok {
			out.Messages = append(out.Messages, m)
		}
	}
	for i, m := range r.Messages {
		msgs, err := messageToOpenAI(m, i)
		if err != nil {
			return nil, err
		}
		out.Messages = append(out.Messages, msgs...)
	}
	for i, t := range r.Tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, &openai.RequestError{Param: fmt.Sprintf("tools[%d].type", i), Message: fmt.Sprintf("tools[%d]: server tool %q is not supported through this gateway; declare client tools (name, description, input_schema) only", i, t.Type)}
		}
		if t.Name == "" {
			return nil, &openai.RequestError{Param: fmt.Sprintf("tools[%d].name", i), Message: fmt.Sprintf("tools[%d].name is empty; name the tool", i)}
		}
		fn, _ := json.Marshal(functionDef{Name: t.Name, Description: t.Description, Parameters: schemaOrEmpty(t.InputSchema)})
		out.Tools = append(out.Tools, openai.Tool{Type: "function", Function: fn})
	}
	extra := map[string]any{}
	if len(r.StopSequences) > 0 {
		extra["stop"] = r.StopSequences
	}
	if tc := r.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			extra["tool_choice"] = "auto"
		case "any":
			extra["tool_choice"] = "required"
		case "none":
			extra["tool_choice"] = "none"
		case "tool":
			extra["tool_choice"] = map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}}
		default:
			return nil, &openai.RequestError{Param: "tool_choice.type", Message: fmt.Sprintf("tool_choice.type %q is not valid; use auto, any, tool or none", tc.Type)}
		}
		if tc.DisableParallelToolUse && len(r.Tools) > 0 {
			extra["parallel_tool_calls"] = false
		}
	}
	for k, v := range extra {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", k, err)
		}
		if out.Extra == nil {
			out.Extra = map[string]json.RawMessage{}
		}
		out.Extra[k] = b
	}
	return out, nil
}

// functionDef is the function object of an OpenAI tool.
type functionDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

func schemaOrEmpty(s json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(s)) == 0 || string(bytes.TrimSpace(s)) == "null" {
		return json.RawMessage(`{"type":"object","properties":{}}`)
	}
	return s
}

func systemMessage(s *System) (openai.Message, bool) {
	if !s.IsBlocks {
		if s.Text == "" {
			return openai.Message{}, false
		}
		return openai.Message{Role: "system", Content: openai.TextContent(s.Text)}, true
	}
	var parts []openai.ContentPart
	for _, b := range s.Blocks {
		if b.Type == "text" && b.Text != "" {
			parts = append(parts, openai.ContentPart{Type: "text", Text: b.Text})
		}
	}
	switch len(parts) {
	case 0:
		return openai.Message{}, false
	case 1:
		return openai.Message{Role: "system", Content: openai.TextContent(parts[0].Text)}, true
	}
	return openai.Message{Role: "system", Content: openai.Content{IsParts: true, Parts: parts}}, true
}

func messageToOpenAI(m Message, i int) ([]openai.Message, error) {
	if m.Content.IsText {
		return []openai.Message{{Role: m.Role, Content: openai.TextContent(m.Content.List[0].Text)}}, nil
	}
	var out []openai.Message
	var parts []openai.ContentPart
	var calls []openai.ToolCall
	for j, b := range m.Content.List {
		where := fmt.Sprintf("messages[%d].content[%d]", i, j)
		switch b.Type {
		case "text":
			parts = append(parts, openai.ContentPart{Type: "text", Text: b.Text})
		case "image":
			if m.Role != "user" {
				return nil, &openai.RequestError{Param: where, Message: where + ": images are only accepted in user messages"}
			}
			p, err := imagePart(b.Source, where)
			if err != nil {
				return nil, err
			}
			parts = append(parts, p)
		case "tool_use":
			if m.Role != "assistant" {
				return nil, &openai.RequestError{Param: where, Message: where + ": tool_use blocks belong in assistant messages"}
			}
			args, err := compactObject(b.Input)
			if err != nil {
				return nil, &openai.RequestError{Param: where + ".input", Message: where + ".input: " + err.Error()}
			}
			calls = append(calls, openai.ToolCall{ID: b.ID, Type: "function", Function: openai.FunctionCall{Name: b.Name, Arguments: args}})
		case "tool_result":
			if m.Role != "user" {
				return nil, &openai.RequestError{Param: where, Message: where + ": tool_result blocks belong in user messages"}
			}
			text := ""
			if b.Content != nil {
				text = blocksText(b.Content.List)
			}
			out = append(out, openai.Message{Role: "tool", ToolCallID: b.ToolUseID, Content: openai.TextContent(text)})
		case "thinking", "redacted_thinking":
			// Chat completions have no place for them.
		default:
			return nil, &openai.RequestError{Param: where + ".type", Message: fmt.Sprintf("%s.type %q is not supported; use text, image, tool_use or tool_result", where, b.Type)}
		}
	}
	if len(parts) == 0 && len(calls) == 0 {
		return out, nil
	}
	msg := openai.Message{Role: m.Role, ToolCalls: calls}
	switch {
	case len(parts) == 0:
		msg.Content = openai.Content{Null: true}
	case len(parts) == 1 && parts[0].Type == "text":
		msg.Content = openai.TextContent(parts[0].Text)
	case m.Role == "assistant":
		// Assistant content is text only: join it.
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(p.Text)
		}
		msg.Content = openai.TextContent(b.String())
	default:
		msg.Content = openai.Content{IsParts: true, Parts: parts}
	}
	return append(out, msg), nil
}

// blocksText joins the text of blocks with newlines.
func blocksText(bs []Block) string {
	var b strings.Builder
	for _, x := range bs {
		if x.Type != "text" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(x.Text)
	}
	return b.String()
}

func imagePart(src *ImageSource, where string) (openai.ContentPart, error) {
	var url string
	switch {
	case src == nil:
		return openai.ContentPart{}, &openai.RequestError{Param: where + ".source", Message: where + ".source is missing"}
	case src.Type == "base64":
		url = "data:" + src.MediaType + ";base64," + src.Data
	case src.Type == "url":
		url = src.URL
	default:
		return openai.ContentPart{}, &openai.RequestError{Param: where + ".source.type", Message: fmt.Sprintf("%s.source.type %q is not supported; use base64 or url", where, src.Type)}
	}
	raw, _ := json.Marshal(struct {
		URL string `json:"url"`
	}{url})
	return openai.ContentPart{Type: "image_url", ImageURL: raw}, nil
}

// compactObject returns the compact JSON of a tool input, which must be an
// object; empty input is {}.
func compactObject(in json.RawMessage) (string, error) {
	in = bytes.TrimSpace(in)
	if len(in) == 0 || string(in) == "null" {
		return "{}", nil
	}
	if in[0] != '{' {
		return "", errors.New("tool input must be a JSON object")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, in); err != nil {
		return "", fmt.Errorf("tool input is not valid JSON: %w", err)
	}
	return b.String(), nil
}

// FromOpenAIRequest translates a chat-completions request into a Messages
// request, for an Anthropic upstream. System and developer messages become
// the system prompt; consecutive messages of one role are merged, since the
// API wants the roles to alternate; tool messages become tool_result blocks
// of a user turn; data: image URLs become base64 image blocks.
// defaultMaxTokens is used when the request sets no limit, since the API
// requires one. Content the API cannot take is an *openai.RequestError.
func FromOpenAIRequest(req *openai.ChatRequest, defaultMaxTokens int) (*Request, error) {
	out := &Request{
		Model:       req.Model,
		Stream:      req.Stream,
		TopP:        req.TopP,
		MaxTokens:   req.MaxOutputTokens(),
		Temperature: req.Temperature,
	}
	if out.MaxTokens == 0 {
		out.MaxTokens = defaultMaxTokens
	}
	if t := req.Temperature; t != nil && *t > 1 {
		// OpenAI's range is [0,2], Anthropic's [0,1].
		one := 1.0
		out.Temperature = &one
	}
	if req.N != nil && *req.N > 1 {
		return nil, &openai.RequestError{Param: "n", Message: "n > 1 is not supported by Anthropic models; send one request per completion"}
	}
	if req.User != "" {
		out.Metadata = &Metadata{UserID: req.User}
	}
	var system []Block
	for i, m := range req.Messages {
		where := fmt.Sprintf("messages[%d]", i)
		var role string
		var blocks []Block
		switch m.Role {
		case "system", "developer":
			for _, p := range m.Content.TextParts() {
				system = append(system, Block{Type: "text", Text: p})
			}
			continue
		case "user":
			role = "user"
			bs, err := userBlocks(m.Content, where)
			if err != nil {
				return nil, err
			}
			blocks = bs
		case "assistant":
			role = "assistant"
			for _, p := range m.Content.TextParts() {
				blocks = append(blocks, Block{Type: "text", Text: p})
			}
			for j, tc := range m.ToolCalls {
				in, err := argumentsObject(tc.Function.Arguments)
				if err != nil {
					return nil, &openai.RequestError{Param: fmt.Sprintf("%s.tool_calls[%d].function.arguments", where, j), Message: fmt.Sprintf("%s.tool_calls[%d].function.arguments: %v", where, j, err)}
				}
				blocks = append(blocks, Block{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: in})
			}
		case "tool":
			role = "user"
			content := TextBlocks(m.Content.String())
			blocks = []Block{{Type: "tool_result", ToolUseID: m.ToolCallID, Content: &content}}
		default:
			return nil, &openai.RequestError{Param: where + ".role", Message: fmt.Sprintf("%s.role %q cannot be sent to an Anthropic model; use system, user, assistant or tool", where, m.Role)}
		}
		if len(blocks) == 0 {
			continue // the API rejects empty turns
		}
		if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == role {
			out.Messages[n-1].Content.List = append(out.Messages[n-1].Content.List, blocks...)
			continue
		}
		out.Messages = append(out.Messages, Message{Role: role, Content: Blocks{List: blocks}})
	}
	for i := range out.Messages {
		m := &out.Messages[i]
		if m.Role == "user" {
			toolResultsFirst(m.Content.List)
		}
		// A single text block goes as a plain string, as most clients send it.
		if len(m.Content.List) == 1 && m.Content.List[0].Type == "text" {
			m.Content.IsText = true
		}
	}
	switch {
	case len(system) == 1:
		out.System = &System{Text: system[0].Text}
	case len(system) > 1:
		out.System = &System{IsBlocks: true, Blocks: system}
	}
	for i, t := range req.Tools {
		if t.Type != "function" {
			return nil, &openai.RequestError{Param: fmt.Sprintf("tools[%d].type", i), Message: fmt.Sprintf("tools[%d].type %q is not supported by Anthropic models; use function tools", i, t.Type)}
		}
		var fn functionDef
		if err := json.Unmarshal(t.Function, &fn); err != nil || fn.Name == "" {
			return nil, &openai.RequestError{Param: fmt.Sprintf("tools[%d].function", i), Message: fmt.Sprintf("tools[%d].function must be an object with a name", i)}
		}
		out.Tools = append(out.Tools, Tool{Name: fn.Name, Description: fn.Description, InputSchema: schemaOrEmpty(fn.Parameters)})
	}
	if err := applyOpenAIExtras(req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// applyOpenAIExtras maps stop, tool_choice and parallel_tool_calls.
func applyOpenAIExtras(req *openai.ChatRequest, out *Request) error {
	if raw, ok := req.Extra["stop"]; ok {
		stops, err := stopList(raw)
		if err != nil {
			return &openai.RequestError{Param: "stop", Message: "stop must be a string or an array of strings"}
		}
		out.StopSequences = stops
	}
	if raw, ok := req.Extra["tool_choice"]; ok && len(req.Tools) > 0 {
		tc, err := toolChoice(raw)
		if err != nil {
			return err
		}
		out.ToolChoice = tc
	}
	if raw, ok := req.Extra["parallel_tool_calls"]; ok && string(bytes.TrimSpace(raw)) == "false" && len(req.Tools) > 0 {
		if out.ToolChoice == nil {
			out.ToolChoice = &ToolChoice{Type: "auto"}
		}
		if out.ToolChoice.Type != "none" {
			out.ToolChoice.DisableParallelToolUse = true
		}
	}
	return nil
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
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, err
	}
	return many, nil
}

func toolChoice(raw json.RawMessage) (*ToolChoice, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "auto":
			return &ToolChoice{Type: "auto"}, nil
		case "required":
			return &ToolChoice{Type: "any"}, nil
		case "none":
			return &ToolChoice{Type: "none"}, nil
		}
		return nil, &openai.RequestError{Param: "tool_choice", Message: fmt.Sprintf("tool_choice %q is not valid; use auto, required, none or a function", s)}
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Function.Name == "" {
		return nil, &openai.RequestError{Param: "tool_choice", Message: `tool_choice must be "auto", "required", "none" or {"type":"function","function":{"name":"..."}}`}
	}
	return &ToolChoice{Type: "tool", Name: obj.Function.Name}, nil
}

// toolResultsFirst moves tool_result blocks to the front of a user turn, as
// the API requires, keeping the order within each kind.
func toolResultsFirst(bs []Block) {
	k := 0
	for i := range bs {
		if bs[i].Type == "tool_result" {
			b := bs[i]
			copy(bs[k+1:i+1], bs[k:i])
			bs[k] = b
			k++
		}
	}
}

func userBlocks(c openai.Content, where string) ([]Block, error) {
	if !c.IsParts {
		if c.Text == "" {
			return nil, nil
		}
		return []Block{{Type: "text", Text: c.Text}}, nil
	}
	var out []Block
	for j, p := range c.Parts {
		pw := fmt.Sprintf("%s.content[%d]", where, j)
		switch p.Type {
		case "text":
			if p.Text != "" {
				out = append(out, Block{Type: "text", Text: p.Text})
			}
		case "image_url":
			src, err := ImageSourceOf(p.ImageURL)
			if err != nil {
				return nil, &openai.RequestError{Param: pw + ".image_url", Message: pw + ".image_url: " + err.Error()}
			}
			out = append(out, Block{Type: "image", Source: src})
		default:
			return nil, &openai.RequestError{Param: pw + ".type", Message: fmt.Sprintf("%s.type %q is not supported by Anthropic models; send text and image_url parts", pw, p.Type)}
		}
	}
	return out, nil
}

// ImageSourceOf turns an OpenAI image_url object into an image source: a
// data: URL into base64 data, an http(s) URL into a url source.
func ImageSourceOf(raw json.RawMessage) (*ImageSource, error) {
	var iu struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(raw, &iu); err != nil || iu.URL == "" {
		return nil, errors.New(`want an object {"url": "data:image/png;base64,..." or "https://..."}`)
	}
	if strings.HasPrefix(iu.URL, "data:") {
		mt, data, err := ParseDataURL(iu.URL)
		if err != nil {
			return nil, err
		}
		return &ImageSource{Type: "base64", MediaType: mt, Data: data}, nil
	}
	if strings.HasPrefix(iu.URL, "https://") || strings.HasPrefix(iu.URL, "http://") {
		return &ImageSource{Type: "url", URL: iu.URL}, nil
	}
	return nil, fmt.Errorf("url %.40q is neither a data: URL nor an http(s) URL", iu.URL)
}

// ParseDataURL splits a base64 data: URL into its media type and data.
func ParseDataURL(u string) (mediaType, data string, err error) {
	rest, ok := strings.CutPrefix(u, "data:")
	meta, payload, ok2 := strings.Cut(rest, ",")
	if !ok || !ok2 {
		return "", "", errors.New("data: URL has no comma before its data")
	}
	mt, enc, ok := strings.Cut(meta, ";")
	if !ok || enc != "base64" || mt == "" {
		return "", "", fmt.Errorf("data: URL must be base64 with a media type, e.g. data:image/png;base64,...; got %.40q", meta)
	}
	return mt, payload, nil
}

// argumentsObject parses tool-call arguments, which must be a JSON object;
// empty arguments are {}.
func argumentsObject(args string) (json.RawMessage, error) {
	s, err := compactObject(json.RawMessage(args))
	if err != nil {
		return nil, err
	}
	return json.RawMessage(s), nil
}
