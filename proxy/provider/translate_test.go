package provider_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/sim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const simKey = "sk-sim-secret-0123456789"

// headerTransport adds headers to every request: simulator controls such
// as X-Sim-Fault, which the adapters do not send themselves.
type headerTransport struct {
	base   http.RoundTripper
	header http.Header
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.header {
		r.Header[k] = v
	}
	return h.base.RoundTrip(r)
}

type simHarness struct {
	srv     *httptest.Server
	counter *tokens.Counter
}

func newSim(t *testing.T, cfg sim.Config) *simHarness {
	t.Helper()
	counter, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIKey == "" {
		cfg.APIKey = simKey
	}
	s, err := sim.New(cfg, counter)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s) // binds 127.0.0.1
	t.Cleanup(srv.Close)
	return &simHarness{srv: srv, counter: counter}
}

// configs returns one adapter configuration per kind, all pointed at the
// simulator, with the key in an environment variable.
func (h *simHarness) configs(t *testing.T) []provider.Config {
	t.Helper()
	t.Setenv("TOLLGATE_TEST_SIM_KEY", simKey)
	models := []string{"echo", sim.ToolEchoModel, "gpt-4o"}
	return []provider.Config{
		{Name: "oai", Kind: provider.KindOpenAI, BaseURL: h.srv.URL + "/v1", APIKeyEnv: "TOLLGATE_TEST_SIM_KEY", Models: models},
		{Name: "az", Kind: provider.KindAzure, BaseURL: h.srv.URL, APIVersion: "2024-10-21", APIKeyEnv: "TOLLGATE_TEST_SIM_KEY", Models: models},
		{Name: "ant", Kind: provider.KindAnthropic, BaseURL: h.srv.URL, APIKeyEnv: "TOLLGATE_TEST_SIM_KEY", Models: models},
		{Name: "gem", Kind: provider.KindGemini, BaseURL: h.srv.URL + "/v1beta", APIKeyEnv: "TOLLGATE_TEST_SIM_KEY", Models: models},
		{Name: "vtx", Kind: provider.KindVertex, BaseURL: h.srv.URL + "/v1", Project: "p1", Location: "us-central1", APIKeyEnv: "TOLLGATE_TEST_SIM_KEY", Models: models},
	}
}

func build(t *testing.T, c provider.Config, header http.Header) provider.Provider {
	t.Helper()
	if err := c.Validate(0); err != nil {
		t.Fatalf("config %s: %v", c.Name, err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	var rt http.RoundTripper = tr
	if header != nil {
		rt = headerTransport{base: tr, header: header}
	}
	p, err := provider.New(c, &http.Client{Transport: rt})
	if err != nil {
		t.Fatalf("New %s: %v", c.Name, err)
	}
	if p.Kind() != c.Kind || p.Name() != c.Name {
		t.Fatalf("adapter kind %q name %q, want %q %q", p.Kind(), p.Name(), c.Kind, c.Name)
	}
	return p
}

func text(s string) openai.Content { return openai.TextContent(s) }

var weatherTool = openai.Tool{Type: "function", Function: []byte(`{"name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"input":{"type":"string"}},"required":["input"],"additionalProperties":false}}`)}

const pixel = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

// conversations are the shared test cases: each goes through every adapter.
func conversations() []struct {
	name string
	req  openai.ChatRequest
} {
	img, _ := openaiImagePart(pixel)
	return []struct {
		name string
		req  openai.ChatRequest
	}{
		{name: "echo with system prompt", req: openai.ChatRequest{Model: "echo", Messages: []openai.Message{
			{Role: "system", Content: text("You are terse.")},
			{Role: "user", Content: text("Say: the fox & the <dog>")},
		}}},
		{name: "multi-turn with consecutive users", req: openai.ChatRequest{Model: "echo", Messages: []openai.Message{
			{Role: "user", Content: text("first")},
			{Role: "assistant", Content: text("ok")},
			{Role: "user", Content: text("second")},
		}}},
		{name: "generated with max tokens", req: openai.ChatRequest{Model: "gpt-4o", MaxTokens: intp(7), Messages: []openai.Message{
			{Role: "user", Content: text("write something")},
		}}},
		{name: "image", req: openai.ChatRequest{Model: "echo", Messages: []openai.Message{
			{Role: "user", Content: openai.Content{IsParts: true, Parts: []openai.ContentPart{{Type: "text", Text: "what is this"}, img}}},
		}}},
		{name: "tool call", req: openai.ChatRequest{Model: sim.ToolEchoModel, Tools: []openai.Tool{weatherTool}, Messages: []openai.Message{
			{Role: "system", Content: text("Use tools.")},
			{Role: "user", Content: text("Weather in Paris?")},
		}}},
		{name: "tool result", req: openai.ChatRequest{Model: sim.ToolEchoModel, Tools: []openai.Tool{weatherTool}, Messages: []openai.Message{
			{Role: "user", Content: text("Weather in Paris?")},
			{Role: "assistant", Content: openai.Content{Null: true}, ToolCalls: []openai.ToolCall{{ID: "call_1", Type: "function", Function: openai.FunctionCall{Name: "get_weather", Arguments: `{"input":"Paris"}`}}}},
			{Role: "tool", ToolCallID: "call_1", Content: text(`{"temp_c":21,"sky":"clear"}`)},
		}}},
		{name: "two tool results", req: openai.ChatRequest{Model: sim.ToolEchoModel, Tools: []openai.Tool{weatherTool}, Messages: []openai.Message{
			{Role: "user", Content: text("Paris and Rome?")},
			{Role: "assistant", Content: openai.Content{Null: true}, ToolCalls: []openai.ToolCall{
				{ID: "call_1", Type: "function", Function: openai.FunctionCall{Name: "get_weather", Arguments: `{"input":"Paris"}`}},
				{ID: "call_2", Type: "function", Function: openai.FunctionCall{Name: "get_weather", Arguments: `{"input":"Rome"}`}},
			}},
			{Role: "tool", ToolCallID: "call_1", Content: text("sunny")},
			{Role: "tool", ToolCallID: "call_2", Content: text("rain")},
		}}},
	}
}

func intp(n int) *int { return &n }

func openaiImagePart(url string) (openai.ContentPart, error) {
	return openai.ContentPart{Type: "image_url", ImageURL: []byte(`{"url":"` + url + `"}`)}, nil
}

// normal strips what legitimately differs between adapters: ids, times,
// model names (Gemini reports its modelVersion).
func normal(r *openai.ChatResponse) *openai.ChatResponse {
	c := *r
	c.ID, c.Created, c.Model, c.SystemFingerprint = "", 0, "", ""
	c.Choices = append([]openai.Choice(nil), r.Choices...)
	for i := range c.Choices {
		c.Choices[i].Logprobs = nil
	}
	return &c
}

func TestTranslationEquivalence(t *testing.T) {
	h := newSim(t, sim.Config{})
	cfgs := h.configs(t)
	hdr := http.Header{sim.CachedTokensHeader: {"3"}}
	for _, conv := range conversations() {
		t.Run(conv.name, func(t *testing.T) {
			var want *openai.ChatResponse
			for _, c := range cfgs {
				p := build(t, c, hdr)
				for _, stream := range []bool{false, true} {
					req := conv.req
					before := mustJSON(t, &req)
					var got *openai.ChatResponse
					if stream {
						req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
						s, err := p.Stream(t.Context(), &req)
						if err != nil {
							t.Fatalf("%s stream: %v", c.Name, err)
						}
						got, err = provider.Collect(s)
						s.Close()
						if err != nil {
							t.Fatalf("%s stream: %v", c.Name, err)
						}
						req.StreamOptions = nil
					} else {
						cmpl, err := p.Complete(t.Context(), &req)
						if err != nil {
							t.Fatalf("%s: %v", c.Name, err)
						}
						got = cmpl.Response
						var again openai.ChatResponse
						unmarshal(t, cmpl.Raw, &again)
						if diff := cmp.Diff(got, &again); diff != "" {
							t.Errorf("%s: Raw and Response differ (-Response +Raw):\n%s", c.Name, diff)
						}
					}
					if after := mustJSON(t, &req); after != before {
						t.Errorf("%s: the adapter modified the request:\n%s\n%s", c.Name, before, after)
					}
					got = normal(got)
					if got.Usage == nil || got.Usage.PromptTokens == 0 || got.Usage.TotalTokens != got.Usage.PromptTokens+got.Usage.CompletionTokens {
						t.Fatalf("%s stream=%v: usage %+v, want prompt > 0 and total = prompt + completion", c.Name, stream, got.Usage)
					}
					if d := got.Usage.PromptTokensDetails; d == nil || d.CachedTokens != 3 {
						t.Errorf("%s stream=%v: prompt_tokens_details %+v, want cached_tokens 3", c.Name, stream, d)
					}
					if want == nil {
						want = got
						continue
					}
					if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
						t.Errorf("%s stream=%v differs from openai JSON (-want +got):\n%s", c.Name, stream, diff)
					}
				}
			}
			checkExpected(t, conv.name, want)
		})
	}
}

// checkExpected pins what the simulator must have answered, so that the
// equivalence is not an agreement on something wrong.
func checkExpected(t *testing.T, name string, r *openai.ChatResponse) {
	t.Helper()
	ch := r.Choices[0]
	content := ""
	if ch.Message.Content != nil {
		content = *ch.Message.Content
	}
	switch name {
	case "echo with system prompt":
		if content != "Say: the fox & the <dog>" || ch.FinishReason != "stop" {
			t.Errorf("got %q finish %q, want the echo and stop", content, ch.FinishReason)
		}
	case "generated with max tokens":
		if ch.FinishReason != "length" || r.Usage.CompletionTokens != 7 {
			t.Errorf("got finish %q, %d completion tokens; want length and 7", ch.FinishReason, r.Usage.CompletionTokens)
		}
	case "image":
		if content != "what is this" {
			t.Errorf("got %q, want the text part echoed", content)
		}
	case "tool call":
		if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 {
			t.Fatalf("got finish %q and %d tool calls, want tool_calls and 1", ch.FinishReason, len(ch.Message.ToolCalls))
		}
		tc := ch.Message.ToolCalls[0]
		if tc.Function.Name != "get_weather" || tc.Function.Arguments != `{"input":"Weather in Paris?"}` || !strings.HasPrefix(tc.ID, "call_") {
			t.Errorf("got tool call %+v, want get_weather({\"input\":\"Weather in Paris?\"}) with a call_ id", tc)
		}
		if ch.Message.Content != nil {
			t.Errorf("content: got %q, want null next to tool calls", *ch.Message.Content)
		}
	case "tool result":
		if content != `{"temp_c":21,"sky":"clear"}` || ch.FinishReason != "stop" {
			t.Errorf("got %q finish %q, want the tool result echoed and stop", content, ch.FinishReason)
		}
	case "two tool results":
		if content != "rain" {
			t.Errorf("got %q, want the last tool result", content)
		}
	}
}

func TestStreamChunksAreOpenAIChunks(t *testing.T) {
	h := newSim(t, sim.Config{})
	for _, c := range h.configs(t) {
		t.Run(c.Kind, func(t *testing.T) {
			p := build(t, c, nil)
			req := openai.ChatRequest{Model: sim.ToolEchoModel, Tools: []openai.Tool{weatherTool},
				Messages: []openai.Message{{Role: "user", Content: text("hi")}}}
			s, err := p.Stream(t.Context(), &req)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			n, usage := 0, 0
			for {
				ch, err := s.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				n++
				var back openai.Chunk
				unmarshal(t, ch.Raw, &back)
				if back.Object != "chat.completion.chunk" || back.ID == "" {
					t.Errorf("chunk %s: want object chat.completion.chunk and an id", ch.Raw)
				}
				if ch.UsageOnly() {
					usage++
				}
			}
			if n < 3 || usage != 0 {
				t.Errorf("got %d chunks, %d usage chunks; want at least role, call, finish and no usage chunk (not asked for)", n, usage)
			}
			if _, err := s.Next(); err != io.EOF {
				t.Errorf("Next after the end: got %v, want io.EOF again", err)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	h := newSim(t, sim.Config{RetryAfter: 1500 * time.Millisecond})
	req := openai.ChatRequest{Model: "echo", Messages: []openai.Message{{Role: "user", Content: text("one two three four five")}}}
	for _, c := range h.configs(t) {
		t.Run(c.Kind, func(t *testing.T) {
			t.Run("429", func(t *testing.T) {
				p := build(t, c, http.Header{sim.FaultHeader: {sim.Fault429}})
				for _, stream := range []bool{false, true} {
					err := call(t, p, &req, stream)
					var ue *provider.UpstreamError
					if !errors.As(err, &ue) || ue.Status != 429 || !ue.Retryable() || !provider.Retryable(err) {
						t.Fatalf("stream=%v: got %v, want a retryable *UpstreamError 429", stream, err)
					}
					if ue.Body.Error.Type != "rate_limit_error" || ue.Body.Error.Message == "" || ue.Provider != c.Name {
						t.Errorf("error body %+v provider %q, want rate_limit_error with a message from %s", ue.Body.Error, ue.Provider, c.Name)
					}
					wait, ok := provider.RetryAfter(err)
					want := 2 * time.Second // whole seconds from Retry-After
					if c.Kind == provider.KindOpenAI || c.Kind == provider.KindAzure || c.Kind == provider.KindGemini || c.Kind == provider.KindVertex {
						want = 1500 * time.Millisecond // retry-after-ms, or RetryInfo
					}
					if !ok || wait != want || ue.RetryAfter != "2" {
						t.Errorf("wait %v (%v), header %q; want %v and \"2\"", wait, ok, ue.RetryAfter, want)
					}
				}
			})
			t.Run("500", func(t *testing.T) {
				p := build(t, c, http.Header{sim.FaultHeader: {sim.Fault500}})
				err := call(t, p, &req, false)
				var ue *provider.UpstreamError
				if !errors.As(err, &ue) || ue.Status != 500 || !provider.Retryable(err) || ue.Body.Error.Type != "api_error" {
					t.Fatalf("got %v, want a retryable 500 api_error", err)
				}
			})
			t.Run("break", func(t *testing.T) {
				p := build(t, c, http.Header{sim.FaultHeader: {sim.FaultBreak}})
				if err := call(t, p, &req, false); !provider.Retryable(err) || err == nil {
					t.Errorf("JSON: got %v, want a retryable error", err)
				}
				s, err := p.Stream(t.Context(), &req)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				got, err := provider.Collect(s)
				if !errors.Is(err, provider.ErrStreamBroken) || !provider.Retryable(err) {
					t.Fatalf("stream: got %v, want ErrStreamBroken", err)
				}
				if c := *got.Choices[0].Message.Content; c != "one two" {
					t.Errorf("stream: delivered %q before the break, want \"one two\"", c)
				}
			})
			t.Run("hang", func(t *testing.T) {
				p := build(t, c, http.Header{sim.FaultHeader: {sim.FaultHang}})
				ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
				defer cancel()
				_, err := p.Complete(ctx, &req)
				if !errors.Is(err, context.DeadlineExceeded) || !provider.Retryable(err) {
					t.Errorf("got %v, want a retryable deadline error", err)
				}
			})
			t.Run("unauthorized", func(t *testing.T) {
				c := c
				t.Setenv("TOLLGATE_TEST_WRONG_KEY", "wrong")
				c.APIKeyEnv = "TOLLGATE_TEST_WRONG_KEY"
				p := build(t, c, nil)
				err := call(t, p, &req, false)
				var ue *provider.UpstreamError
				if !errors.As(err, &ue) || ue.Status != 401 || provider.Retryable(err) || ue.Body.Error.Type != "authentication_error" {
					t.Errorf("got %v, want a non-retryable 401 authentication_error", err)
				}
			})
			t.Run("unknown model", func(t *testing.T) {
				p := build(t, c, nil)
				err := call(t, p, &openai.ChatRequest{Model: "nope", Messages: req.Messages}, false)
				var ue *provider.UpstreamError
				if !errors.As(err, &ue) || ue.Status != 404 || provider.Retryable(err) || !strings.Contains(ue.Body.Error.Message, "nope") {
					t.Errorf("got %v, want a non-retryable 404 naming the model", err)
				}
			})
		})
	}
}

func call(t *testing.T, p provider.Provider, req *openai.ChatRequest, stream bool) error {
	t.Helper()
	if !stream {
		_, err := p.Complete(t.Context(), req)
		return err
	}
	s, err := p.Stream(t.Context(), req)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = provider.Collect(s)
	return err
}

func TestUntranslatableRequest(t *testing.T) {
	h := newSim(t, sim.Config{})
	audio := openai.ChatRequest{Model: "echo", Messages: []openai.Message{{Role: "user", Content: openai.Content{IsParts: true,
		Parts: []openai.ContentPart{{Type: "input_audio", InputAudio: []byte(`{"data":"AAA","format":"wav"}`)}}}}}}
	for _, c := range h.configs(t) {
		if c.Kind == provider.KindOpenAI || c.Kind == provider.KindAzure {
			continue
		}
		p := build(t, c, nil)
		_, err := p.Complete(t.Context(), &audio)
		var re *openai.RequestError
		if !errors.As(err, &re) || provider.Retryable(err) || !strings.Contains(re.Message, "input_audio") {
			t.Errorf("%s: got %v, want a non-retryable *openai.RequestError naming input_audio", c.Kind, err)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := jsonMarshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
