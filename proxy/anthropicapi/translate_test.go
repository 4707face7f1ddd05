package anthropicapi_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate/tollgate/proxy/anthropicapi"
	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/sse"
)

func TestStopReasons(t *testing.T) {
	t.Parallel()
	tests := []struct{ anthropic, openai, back string }{
		{"end_turn", "stop", "end_turn"},
		{"stop_sequence", "stop", "end_turn"},
		{"max_tokens", "length", "max_tokens"},
		{"tool_use", "tool_calls", "tool_use"},
		{"refusal", "content_filter", "refusal"},
		{"pause_turn", "stop", "end_turn"},
		{"model_context_window_exceeded", "length", "max_tokens"},
		{"something_new", "stop", "end_turn"},
	}
	for _, tc := range tests {
		if got := anthropicapi.FinishReason(tc.anthropic); got != tc.openai {
			t.Errorf("FinishReason(%q) = %q, want %q", tc.anthropic, got, tc.openai)
		}
		if got := anthropicapi.StopReason(tc.openai); got != tc.back {
			t.Errorf("StopReason(%q) = %q, want %q", tc.openai, got, tc.back)
		}
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	u := anthropicapi.Usage{InputTokens: 10, OutputTokens: 7, CacheReadInputTokens: 90, CacheCreationInputTokens: 5}
	got := anthropicapi.UsageToOpenAI(u)
	want := openai.Usage{PromptTokens: 105, CompletionTokens: 7, TotalTokens: 112, PromptTokensDetails: &openai.PromptTokensDetails{CachedTokens: 90}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UsageToOpenAI mismatch (-want +got):\n%s", diff)
	}
	back := anthropicapi.UsageFromOpenAI(want)
	if back.InputTokens != 15 || back.CacheReadInputTokens != 90 || back.OutputTokens != 7 {
		t.Errorf("UsageFromOpenAI = %+v, want input 15 (cache writes count as input), cache read 90, output 7", back)
	}
	if got := anthropicapi.UsageToOpenAI(anthropicapi.Usage{InputTokens: 3, OutputTokens: 1}); got.PromptTokensDetails != nil {
		t.Errorf("no cache: got details %+v, want none", got.PromptTokensDetails)
	}
}

func mustReq(t *testing.T, body string) *openai.ChatRequest {
	t.Helper()
	r, err := openai.ParseChatRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFromOpenAIRequest(t *testing.T) {
	t.Parallel()
	req := mustReq(t, `{"model":"claude","temperature":1.5,"stop":"END","user":"u1","parallel_tool_calls":false,
	 "tool_choice":{"type":"function","function":{"name":"f"}},
	 "tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}},
	          {"type":"function","function":{"name":"g"}}],
	 "messages":[
	  {"role":"system","content":"sys one"},
	  {"role":"user","content":"hi"},
	  {"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"image_url","image_url":{"url":"https://x/y.jpg"}}]},
	  {"role":"developer","content":"sys two"},
	  {"role":"assistant","content":"calling","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\": \"x\"}"}},{"id":"c2","type":"function","function":{"name":"g","arguments":""}}]},
	  {"role":"tool","tool_call_id":"c1","content":"r1"},
	  {"role":"user","content":"more"},
	  {"role":"tool","tool_call_id":"c2","content":"r2"}
	 ]}`)
	got, err := anthropicapi.FromOpenAIRequest(req, 1000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	want := `{"model":"claude","messages":[` +
		`{"role":"user","content":[{"type":"text","text":"hi"},{"type":"text","text":"look"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},{"type":"image","source":{"type":"url","url":"https://x/y.jpg"}}]},` +
		`{"role":"assistant","content":[{"type":"text","text":"calling"},{"type":"tool_use","id":"c1","name":"f","input":{"a":"x"}},{"type":"tool_use","id":"c2","name":"g","input":{}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":"r1"},{"type":"tool_result","tool_use_id":"c2","content":"r2"},{"type":"text","text":"more"}]}],` +
		`"system":[{"type":"text","text":"sys one"},{"type":"text","text":"sys two"}],"max_tokens":1000,"metadata":{"user_id":"u1"},"stop_sequences":["END"],"temperature":1,` +
		`"tools":[{"name":"f","description":"d","input_schema":{"type":"object","properties":{"a":{"type":"string"}}}},{"name":"g","input_schema":{"type":"object","properties":{}}}],` +
		`"tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true}}`
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
}

func TestToolChoiceMapping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`"auto"`, `{"type":"auto"}`},
		{`"required"`, `{"type":"any"}`},
		{`"none"`, `{"type":"none"}`},
	} {
		req := mustReq(t, `{"model":"m","tool_choice":`+tc.in+`,"tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"x"}]}`)
		got, err := anthropicapi.FromOpenAIRequest(req, 10)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := json.Marshal(got.ToolChoice); string(b) != tc.want {
			t.Errorf("tool_choice %s: got %s, want %s", tc.in, b, tc.want)
		}
		back, err := got.ToOpenAI()
		if err != nil {
			t.Fatal(err)
		}
		if string(back.Extra["tool_choice"]) != tc.in {
			t.Errorf("tool_choice %s: back to OpenAI as %s", tc.in, back.Extra["tool_choice"])
		}
	}
}

func TestFromOpenAIRequestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, body, wantParam string }{
		{"bad arguments", `{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"audio", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, "messages[0].content[0].type"},
		{"bad data url", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,AAAA"}}]}]}`, "messages[0].content[0].image_url"},
		{"n", `{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`, "n"},
		{"non-function tool", `{"model":"m","tools":[{"type":"web_search"}],"messages":[{"role":"user","content":"x"}]}`, "tools[0].type"},
		{"bad tool choice", `{"model":"m","tool_choice":"sometimes","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"x"}]}`, "tool_choice"},
	}
	for _, tc := range tests {
		_, err := anthropicapi.FromOpenAIRequest(mustReq(t, tc.body), 10)
		var re *openai.RequestError
		if !errors.As(err, &re) || re.Param != tc.wantParam || re.Message == "" {
			t.Errorf("%s: got %v, want a RequestError on %s", tc.name, err, tc.wantParam)
		}
	}
}

func TestInboundToOpenAI(t *testing.T) {
	t.Parallel()
	r, err := anthropicapi.ParseRequest([]byte(`{"model":"claude","max_tokens":50,"stream":true,"system":[{"type":"text","text":"be nice","cache_control":{"type":"ephemeral"}}],
	 "stop_sequences":["X"],"tool_choice":{"type":"any","disable_parallel_tool_use":true},
	 "tools":[{"name":"f","input_schema":{"type":"object"}}],
	 "messages":[
	  {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image","source":{"type":"base64","media_type":"image/gif","data":"R0lG"}}]},
	  {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"ok"},{"type":"tool_use","id":"t1","name":"f","input":{"b": 1}}]},
	  {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"type":"text","text":"next"}]}
	 ]}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.ToOpenAI()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	var gotMap, wantMap map[string]any
	_ = json.Unmarshal(b, &gotMap)
	want := `{"model":"claude","stream":true,"stream_options":{"include_usage":true},"max_tokens":50,
	 "stop":["X"],"tool_choice":"required","parallel_tool_calls":false,
	 "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
	 "messages":[
	  {"role":"system","content":"be nice"},
	  {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/gif;base64,R0lG"}}]},
	  {"role":"assistant","content":"ok","tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"b\":1}"}}]},
	  {"role":"tool","tool_call_id":"t1","content":"a\nb"},
	  {"role":"user","content":"next"}
	 ]}`
	if err := json.Unmarshal([]byte(want), &wantMap); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantMap, gotMap); diff != "" {
		t.Errorf("ToOpenAI mismatch (-want +got):\n%s", diff)
	}
}

func TestParseRequestErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ body, param string }{
		{`[]`, ""},
		{`{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, "model"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{`{"model":"m","max_tokens":5}`, "messages"},
		{`{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}`, "messages[0].role"},
		{`{"model":"m","max_tokens":"5","messages":[]}`, "max_tokens"},
	} {
		_, err := anthropicapi.ParseRequest([]byte(tc.body))
		var re *openai.RequestError
		if !errors.As(err, &re) || re.Param != tc.param {
			t.Errorf("%s: got %v, want a RequestError on %q", tc.body, err, tc.param)
		}
	}
	r, _ := anthropicapi.ParseRequest([]byte(`{"model":"m","max_tokens":5,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"x"}]}`))
	if _, err := r.ToOpenAI(); err == nil || !strings.Contains(err.Error(), "web_search_20250305") {
		t.Errorf("server tool: got %v, want an error naming it", err)
	}
}

func TestResponseBothWays(t *testing.T) {
	t.Parallel()
	raw := `{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_1","name":"f","input":{"q": "x"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":9,"cache_read_input_tokens":20,"cache_creation_input_tokens":null}}`
	var m anthropicapi.Response
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	got, err := m.ToOpenAI(42)
	if err != nil {
		t.Fatal(err)
	}
	content := "Let me check."
	want := &openai.ChatResponse{ID: "msg_1", Object: "chat.completion", Created: 42, Model: "claude",
		Choices: []openai.Choice{{Message: openai.ResponseMessage{Role: "assistant", Content: &content,
			ToolCalls: []openai.ToolCall{{ID: "toolu_1", Type: "function", Function: openai.FunctionCall{Name: "f", Arguments: `{"q":"x"}`}}}}, FinishReason: "tool_calls"}},
		Usage: &openai.Usage{PromptTokens: 25, CompletionTokens: 9, TotalTokens: 34, PromptTokensDetails: &openai.PromptTokensDetails{CachedTokens: 20}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ToOpenAI mismatch (-want +got):\n%s", diff)
	}
	back, err := anthropicapi.FromOpenAIResponse(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Content) != 2 || back.Content[1].Type != "tool_use" || *back.StopReason != "tool_use" || back.Usage.CacheReadInputTokens != 20 || back.Usage.InputTokens != 5 {
		t.Errorf("FromOpenAIResponse = %+v, want text + tool_use, tool_use, input 5 + cache 20", back)
	}
	bad := *got
	bad.Choices = []openai.Choice{{Message: openai.ResponseMessage{ToolCalls: []openai.ToolCall{{Function: openai.FunctionCall{Name: "f", Arguments: "not json"}}}}}}
	if _, err := anthropicapi.FromOpenAIResponse(&bad); err == nil {
		t.Error("arguments that are not JSON: got nil error")
	}
	m.Content = []anthropicapi.Block{{Type: "tool_use", Name: "f", Input: json.RawMessage(`"str"`)}}
	if _, err := m.ToOpenAI(0); err == nil {
		t.Error("tool_use input that is not an object: got nil error")
	}
}

// collect decodes a stream with the decoder and reassembles it.
func decodeAll(t *testing.T, events []sse.Event) ([]openai.Chunk, error) {
	t.Helper()
	d := &anthropicapi.StreamDecoder{IncludeUsage: true}
	var out []openai.Chunk
	for _, ev := range events {
		cs, err := d.Decode(ev.Data)
		if err != nil {
			return out, err
		}
		out = append(out, cs...)
	}
	if !d.Done() {
		t.Error("decoder not done after message_stop")
	}
	return out, nil
}

func TestStreamEncodeDecode(t *testing.T) {
	t.Parallel()
	zero, one := 0, 1
	stop := "tool_calls"
	chunks := []openai.Chunk{
		{ID: "c1", Model: "m", Choices: []openai.ChunkChoice{{Delta: openai.Delta{Role: "assistant"}}}},
		{Choices: []openai.ChunkChoice{{Delta: openai.Delta{Content: "Hel"}}}},
		{Choices: []openai.ChunkChoice{{Delta: openai.Delta{Content: "lo"}}}},
		{Choices: []openai.ChunkChoice{{Delta: openai.Delta{ToolCalls: []openai.ToolCall{{Index: &zero, ID: "t1", Type: "function", Function: openai.FunctionCall{Name: "f"}}}}}}},
		{Choices: []openai.ChunkChoice{{Delta: openai.Delta{ToolCalls: []openai.ToolCall{{Index: &zero, Function: openai.FunctionCall{Arguments: `{"a":`}}}}}}},
		{Choices: []openai.ChunkChoice{{Delta: openai.Delta{ToolCalls: []openai.ToolCall{{Index: &zero, Function: openai.FunctionCall{Arguments: `1}`}}}}}}},
		{Choices: []openai.ChunkChoice{{Delta: openai.Delta{ToolCalls: []openai.ToolCall{{Index: &one, ID: "t2", Type: "function", Function: openai.FunctionCall{Name: "g", Arguments: `{}`}}}}}}},
		{Choices: []openai.ChunkChoice{{Delta: openai.Delta{}, FinishReason: &stop}}},
		{Choices: []openai.ChunkChoice{}, Usage: &openai.Usage{PromptTokens: 30, CompletionTokens: 4, TotalTokens: 34, PromptTokensDetails: &openai.PromptTokensDetails{CachedTokens: 10}}},
	}
	enc := anthropicapi.NewStreamEncoder("c1", "m")
	var events []sse.Event
	for i := range chunks {
		events = append(events, enc.Chunk(&chunks[i])...)
	}
	events = append(events, enc.Finish()...)
	if len(enc.Finish()) != 0 {
		t.Error("second Finish returned events")
	}
	var names []string
	for _, ev := range events {
		names = append(names, ev.Name)
	}
	wantNames := "message_start content_block_start content_block_delta content_block_delta content_block_stop " +
		"content_block_start content_block_delta content_block_delta content_block_stop " +
		"content_block_start content_block_delta content_block_stop message_delta message_stop"
	if got := strings.Join(names, " "); got != wantNames {
		t.Errorf("events:\n got %s\nwant %s", got, wantNames)
	}
	decoded, err := decodeAll(t, events)
	if err != nil {
		t.Fatal(err)
	}
	// Reassemble and compare with the original.
	var text, args0, args1, finish string
	var usage *openai.Usage
	for _, c := range decoded {
		if c.Usage != nil {
			usage = c.Usage
		}
		for _, ch := range c.Choices {
			text += ch.Delta.Content
			for _, tc := range ch.Delta.ToolCalls {
				if *tc.Index == 0 {
					args0 += tc.Function.Arguments
				} else {
					args1 += tc.Function.Arguments
				}
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	if text != "Hello" || args0 != `{"a":1}` || args1 != `{}` || finish != "tool_calls" {
		t.Errorf("round trip: text %q args %q %q finish %q", text, args0, args1, finish)
	}
	if diff := cmp.Diff(chunks[len(chunks)-1].Usage, usage, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("usage round trip (-want +got):\n%s", diff)
	}
	if decoded[0].ID != "msg_c1" || decoded[0].Choices[0].Delta.Role != "assistant" {
		t.Errorf("first chunk %+v, want id msg_c1 and the assistant role", decoded[0])
	}
}

func TestStreamDecoderErrors(t *testing.T) {
	t.Parallel()
	start := `{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"x","content":[],"usage":{"input_tokens":1,"output_tokens":0}}}`
	tests := []struct {
		name   string
		events []string
		status int // of a *StreamError; 0 for a plain error
	}{
		{"not json", []string{`{`}, 0},
		{"delta before start", []string{`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}`}, 0},
		{"second start", []string{start, start}, 0},
		{"json delta for text block", []string{start, `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`, `{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}`}, 0},
		{"overloaded", []string{start, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`}, 529},
		{"after stop", []string{start, `{"type":"message_stop"}`, `{"type":"message_start"}`}, 0},
	}
	for _, tc := range tests {
		d := &anthropicapi.StreamDecoder{}
		var err error
		for _, e := range tc.events {
			if _, err = d.Decode([]byte(e)); err != nil {
				break
			}
		}
		var se *anthropicapi.StreamError
		switch {
		case err == nil:
			t.Errorf("%s: got nil error", tc.name)
		case tc.status != 0 && (!errors.As(err, &se) || se.Status() != tc.status):
			t.Errorf("%s: got %v, want a StreamError with status %d", tc.name, err, tc.status)
		case tc.status == 0 && errors.As(err, &se):
			t.Errorf("%s: got a StreamError %v, want a malformed-stream error", tc.name, err)
		}
	}
}

func FuzzStreamDecoder(f *testing.F) {
	f.Add([]byte(`{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"x","content":[],"usage":{"input_tokens":1,"output_tokens":0}}}`))
	f.Add([]byte(`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}`))
	f.Add([]byte(`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}`))
	f.Add([]byte(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}`))
	f.Add([]byte(`{"type":"message_stop"}`))
	f.Add([]byte(`{"type":"error","error":{"type":"api_error","message":"x"}}`))
	f.Add([]byte(`{"type":"message_start","message":null}`))
	f.Add([]byte(`{"type":"content_block_delta","delta":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Feed the event after a valid start, as the second event, and
		// alone; the decoder must answer with chunks or an error, never
		// panic, and chunks must encode.
		start := []byte(`{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"x","content":[],"usage":{"input_tokens":1,"output_tokens":0}}}`)
		for _, seq := range [][][]byte{{data}, {start, data}, {start, data, data}} {
			d := &anthropicapi.StreamDecoder{IncludeUsage: true}
			for _, ev := range seq {
				cs, err := d.Decode(ev)
				if err != nil {
					if err.Error() == "" {
						t.Fatal("error without a message")
					}
					break
				}
				for i := range cs {
					if _, err := json.Marshal(&cs[i]); err != nil {
						t.Fatalf("chunk does not encode: %v", err)
					}
				}
			}
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`))
	f.Add([]byte(`{"model":"m","max_tokens":5,"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"text","text":"r"}]},{"type":"image","source":{"type":"url","url":"https://x"}}]},{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"f","input":null}]}]}`))
	f.Add([]byte(`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image"}]}]}`))
	f.Add([]byte(`{"model":"m","max_tokens":5,"tool_choice":{"type":"tool"},"messages":[{"role":"user","content":"x"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := anthropicapi.ParseRequest(body)
		if err != nil {
			return
		}
		out, err := r.ToOpenAI()
		if err != nil {
			var re *openai.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("ToOpenAI error %v is not a RequestError", err)
			}
			return
		}
		if _, err := json.Marshal(out); err != nil {
			t.Fatalf("translated request does not encode: %v", err)
		}
	})
}
