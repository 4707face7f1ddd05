package gemini_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/provider/gemini"
)

func TestFinishReasons(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		tools bool
		want  string
	}{
		{"STOP", false, "stop"}, {"STOP", true, "tool_calls"}, {"MAX_TOKENS", false, "length"},
		{"SAFETY", false, "content_filter"}, {"RECITATION", false, "content_filter"}, {"PROHIBITED_CONTENT", false, "content_filter"},
		{"OTHER", false, "stop"}, {"", false, "stop"},
	}
	for _, tc := range tests {
		if got := gemini.FinishReason(tc.in, tc.tools); got != tc.want {
			t.Errorf("FinishReason(%q, %v) = %q, want %q", tc.in, tc.tools, got, tc.want)
		}
	}
}

// A response as the API documents it, field names and all.
const documented = `{
  "candidates": [{
    "content": {"role": "model", "parts": [
      {"text": "thinking...", "thought": true},
      {"text": "It is "}, {"text": "sunny."},
      {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    ]},
    "finishReason": "STOP", "index": 0,
    "safetyRatings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"}]
  }],
  "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 8, "totalTokenCount": 140,
    "cachedContentTokenCount": 100, "thoughtsTokenCount": 12},
  "modelVersion": "gemini-2.0-flash", "responseId": "resp-1"
}`

func TestResponseToOpenAI(t *testing.T) {
	t.Parallel()
	var r gemini.Response
	if err := json.Unmarshal([]byte(documented), &r); err != nil {
		t.Fatal(err)
	}
	got, err := r.ToOpenAI("fallback", "gemini", 7)
	if err != nil {
		t.Fatal(err)
	}
	content := "It is sunny."
	want := &openai.ChatResponse{ID: "resp-1", Object: "chat.completion", Created: 7, Model: "gemini-2.0-flash",
		Choices: []openai.Choice{{Message: openai.ResponseMessage{Role: "assistant", Content: &content, ToolCalls: []openai.ToolCall{
			{ID: "call_0", Type: "function", Function: openai.FunctionCall{Name: "get_weather", Arguments: `{"city":"Paris"}`}}}}, FinishReason: "tool_calls"}},
		Usage: &openai.Usage{PromptTokens: 120, CompletionTokens: 20, TotalTokens: 140,
			PromptTokensDetails:     &openai.PromptTokensDetails{CachedTokens: 100},
			CompletionTokensDetails: json.RawMessage(`{"reasoning_tokens":12}`)}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}

	blocked := gemini.Response{PromptFeedback: &gemini.PromptFeedback{BlockReason: "SAFETY"}}
	b, err := blocked.ToOpenAI("id", "m", 0)
	if err != nil || b.Choices[0].FinishReason != "content_filter" {
		t.Errorf("blocked prompt: got %+v, %v; want one content_filter choice", b, err)
	}
	if _, err := (&gemini.Response{}).ToOpenAI("id", "m", 0); err == nil {
		t.Error("empty response: got nil error")
	}
	bad := gemini.Response{Candidates: []gemini.Candidate{{Content: &gemini.Content{Parts: []gemini.Part{{FunctionCall: &gemini.FunctionCall{Name: "f", Args: json.RawMessage(`[1]`)}}}}}}}
	if _, err := bad.ToOpenAI("id", "m", 0); err == nil {
		t.Error("function args that are not an object: got nil error")
	}
}

func TestFromOpenAIRequest(t *testing.T) {
	t.Parallel()
	req, err := openai.ParseChatRequest([]byte(`{"model":"gemini","max_tokens":9,"temperature":0.5,"stop":["Z"],"tool_choice":"required",
	 "response_format":{"type":"json_object"},
	 "tools":[{"type":"function","function":{"name":"f","parameters":{"$schema":"x","type":"object","additionalProperties":false,"properties":{"o":{"type":"object","additionalProperties":true}}}}}],
	 "messages":[
	  {"role":"system","content":"sys"},
	  {"role":"user","content":[{"type":"text","text":"see"},{"type":"image_url","image_url":{"url":"data:image/webp;base64,UklG"}}]},
	  {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"o\": {}}"}}]},
	  {"role":"tool","tool_call_id":"c1","content":"plain text"},
	  {"role":"user","content":"thanks"}
	 ]}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := gemini.FromOpenAIRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	want := `{"contents":[` +
		`{"role":"user","parts":[{"text":"see"},{"inlineData":{"mimeType":"image/webp","data":"UklG"}}]},` +
		`{"role":"model","parts":[{"functionCall":{"name":"f","args":{"o":{}}}}]},` +
		`{"role":"user","parts":[{"functionResponse":{"name":"f","response":{"content":"plain text"}}},{"text":"thanks"}]}],` +
		`"systemInstruction":{"parts":[{"text":"sys"}]},` +
		`"tools":[{"functionDeclarations":[{"name":"f","parameters":{"properties":{"o":{"type":"object"}},"type":"object"}}]}],` +
		`"toolConfig":{"functionCallingConfig":{"mode":"ANY"}},` +
		`"generationConfig":{"temperature":0.5,"maxOutputTokens":9,"stopSequences":["Z"],"responseMimeType":"application/json"}}`
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}

	// And back, as the simulator reads it.
	back, err := got.ToOpenAI("gemini", false)
	if err != nil {
		t.Fatal(err)
	}
	roles := ""
	for _, m := range back.Messages {
		roles += m.Role + ":" + m.Content.String() + "|"
	}
	if roles != "system:sys|user:see|assistant:|tool:plain text|user:thanks|" {
		t.Errorf("back to OpenAI: %s", roles)
	}
	if back.Messages[3].ToolCallID != back.Messages[2].ToolCalls[0].ID || back.Messages[2].ToolCalls[0].Function.Arguments != `{"o":{}}` {
		t.Errorf("tool call %+v and result id %q do not pair up", back.Messages[2].ToolCalls, back.Messages[3].ToolCallID)
	}
}

func TestFromOpenAIRequestErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body, param string }{
		{"unknown tool call id", `{"model":"m","messages":[{"role":"tool","tool_call_id":"x","content":"r"}]}`, "messages[0].tool_call_id"},
		{"audio", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, "messages[0].content[0].type"},
		{"bad data url", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:,x"}}]}]}`, "messages[0].content[0].image_url"},
		{"bad args", `{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
	} {
		req, err := openai.ParseChatRequest([]byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		_, err = gemini.FromOpenAIRequest(req)
		var re *openai.RequestError
		if !errors.As(err, &re) || re.Param != tc.param {
			t.Errorf("%s: got %v, want a RequestError on %s", tc.name, err, tc.param)
		}
	}
}

func TestResponseObject(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"plain", `{"a":1}`, `[1,2]`, `"quoted"`, ""} {
		if got := gemini.ResponseText(gemini.ResponseObject(s)); got != s {
			t.Errorf("round trip of %q gave %q", s, got)
		}
	}
	if got := string(gemini.ResponseObject(`{ "a" : 1 }`)); got != `{"a":1}` {
		t.Errorf("object: got %s, want it compacted and unwrapped", got)
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	var e gemini.ErrorResponse
	_ = json.Unmarshal([]byte(`{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure"},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"32.5s"}]}}`), &e)
	if d, ok := e.Error.RetryDelay(); !ok || d != 32.5 {
		t.Errorf("RetryDelay = %v, %v; want 32.5, true", d, ok)
	}
}

func TestStreamDecoder(t *testing.T) {
	t.Parallel()
	d := &gemini.StreamDecoder{ID: "x", Model: "m", IncludeUsage: true}
	events := []string{
		`{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi"}]},"index":0}],"usageMetadata":{"promptTokenCount":4,"totalTokenCount":4}}`,
		`{"candidates":[{"content":{"role":"model","parts":[{"text":" there"},{"functionCall":{"name":"f","args":{}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":3,"totalTokenCount":7}}`,
	}
	var text, finish string
	calls := 0
	for _, e := range events {
		cs, err := d.Decode([]byte(e))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			for _, ch := range c.Choices {
				text += ch.Delta.Content
				calls += len(ch.Delta.ToolCalls)
				if ch.FinishReason != nil {
					finish = *ch.FinishReason
				}
			}
		}
	}
	end, err := d.End()
	if err != nil || len(end) != 1 || end[0].Usage == nil || end[0].Usage.TotalTokens != 7 {
		t.Fatalf("End = %+v, %v; want one usage chunk with 7 tokens", end, err)
	}
	if text != "Hi there" || calls != 1 || finish != "tool_calls" {
		t.Errorf("got %q, %d calls, finish %q", text, calls, finish)
	}

	cut := &gemini.StreamDecoder{}
	if _, err := cut.Decode([]byte(events[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := cut.End(); !errors.Is(err, gemini.ErrIncomplete) {
		t.Errorf("stream without finishReason: End = %v, want ErrIncomplete", err)
	}
	var se *gemini.StreamError
	if _, err := (&gemini.StreamDecoder{}).Decode([]byte(`{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}`)); !errors.As(err, &se) || se.Detail.Code != 503 {
		t.Errorf("error event: got %v, want a StreamError 503", err)
	}
}

func FuzzStreamDecoder(f *testing.F) {
	f.Add([]byte(`{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi"}]},"finishReason":"STOP","index":0}]}`))
	f.Add([]byte(`{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":[1]}}]},"index":3}]}`))
	f.Add([]byte(`{"promptFeedback":{"blockReason":"SAFETY"}}`))
	f.Add([]byte(`{"error":{"code":"x"}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"candidates":[{"content":null,"index":-1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := &gemini.StreamDecoder{IncludeUsage: true}
		for range 2 {
			cs, err := d.Decode(data)
			if err != nil {
				break
			}
			for i := range cs {
				if _, err := json.Marshal(&cs[i]); err != nil {
					t.Fatalf("chunk does not encode: %v", err)
				}
			}
		}
		_, _ = d.End()
	})
}
