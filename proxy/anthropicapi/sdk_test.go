package anthropicapi_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
	"go.uber.org/goleak"

	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/anthropicapi"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/sim"
	"github.com/tollgate/tollgate/proxy/sse"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newSim(t *testing.T) *httptest.Server {
	t.Helper()
	counter, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.New(sim.Config{}, counter)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

// gateway is what the gateway's POST /v1/messages does, minus policy and
// quota: Anthropic request → OpenAI request → an OpenAI-compatible
// upstream → Anthropic answer or events.
func gateway(t *testing.T, up provider.Provider) *httptest.Server {
	t.Helper()
	writeErr := func(w http.ResponseWriter, status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(anthropicapi.ErrorBody(status, msg))
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
			writeErr(w, http.StatusNotFound, "not found")
			return
		}
		body, _ := io.ReadAll(r.Body)
		areq, err := anthropicapi.ParseRequest(body)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err.Error())
			return
		}
		req, err := areq.ToOpenAI()
		if err != nil {
			writeErr(w, http.StatusBadRequest, err.Error())
			return
		}
		if !req.Stream {
			c, err := up.Complete(r.Context(), req)
			var ue *provider.UpstreamError
			if errors.As(err, &ue) {
				writeErr(w, ue.Status, ue.Body.Error.Message)
				return
			}
			if err != nil {
				writeErr(w, http.StatusBadGateway, err.Error())
				return
			}
			m, err := anthropicapi.FromOpenAIResponse(c.Response)
			if err != nil {
				writeErr(w, http.StatusBadGateway, err.Error())
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(m)
			return
		}
		s, err := up.Stream(r.Context(), req)
		if err != nil {
			writeErr(w, http.StatusBadGateway, err.Error())
			return
		}
		defer s.Close()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		var enc *anthropicapi.StreamEncoder
		for {
			c, err := s.Next()
			if enc == nil {
				enc = anthropicapi.NewStreamEncoder(c.ID, c.Model)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				_ = sse.WriteEvent(w, anthropicapi.ErrorEvent(http.StatusBadGateway, err.Error()))
				_ = rc.Flush()
				return
			}
			for _, ev := range enc.Chunk(&c.Chunk) {
				_ = sse.WriteEvent(w, ev)
			}
			_ = rc.Flush()
		}
		for _, ev := range enc.Finish() {
			_ = sse.WriteEvent(w, ev)
		}
		_ = rc.Flush()
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestAnthropicSDK(t *testing.T) {
	simSrv := newSim(t)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	up, err := provider.NewOpenAI(provider.Config{Name: "sim", Kind: "openai", BaseURL: simSrv.URL + "/v1", Models: []string{"echo"}}, &http.Client{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	targets := []struct {
		name string
		url  string
	}{
		{name: "simulator /v1/messages", url: simSrv.URL},
		{name: "anthropicapi translation over the OpenAI simulator", url: gateway(t, up).URL},
	}
	tool := anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
		Name:        "get_weather",
		Description: anthropic.String("Weather of a city"),
		InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"input": map[string]string{"type": "string"}}},
	}}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			ctr := &http.Transport{}
			t.Cleanup(ctr.CloseIdleConnections)
			client := anthropic.NewClient(option.WithBaseURL(tg.url), option.WithAPIKey("sk-test"),
				option.WithHTTPClient(&http.Client{Transport: ctr}), option.WithMaxRetries(0))

			t.Run("text", func(t *testing.T) {
				params := anthropic.MessageNewParams{
					Model:     "echo",
					MaxTokens: 64,
					System:    []anthropic.TextBlockParam{{Text: "Be brief."}},
					Messages: []anthropic.MessageParam{
						anthropic.NewUserMessage(anthropic.NewTextBlock("hello there")),
						anthropic.NewAssistantMessage(anthropic.NewTextBlock("hi")),
						anthropic.NewUserMessage(anthropic.NewTextBlock("say: quick brown fox")),
					},
				}
				msg, err := client.Messages.New(t.Context(), params)
				if err != nil {
					t.Fatal(err)
				}
				if len(msg.Content) != 1 || msg.Content[0].Text != "say: quick brown fox" || msg.StopReason != anthropic.StopReasonEndTurn {
					t.Fatalf("got content %+v stop %q, want the echo and end_turn", msg.Content, msg.StopReason)
				}
				if msg.Usage.InputTokens == 0 || msg.Usage.OutputTokens == 0 || msg.Role != "assistant" {
					t.Errorf("usage %+v role %q, want input and output tokens and assistant", msg.Usage, msg.Role)
				}

				stream := client.Messages.NewStreaming(t.Context(), params)
				acc := anthropic.Message{}
				for stream.Next() {
					if err := acc.Accumulate(stream.Current()); err != nil {
						t.Fatal(err)
					}
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
				stream.Close()
				if len(acc.Content) != 1 || acc.Content[0].Text != msg.Content[0].Text || acc.StopReason != msg.StopReason {
					t.Errorf("stream: got %+v stop %q, want %q and %q", acc.Content, acc.StopReason, msg.Content[0].Text, msg.StopReason)
				}
				if acc.Usage.InputTokens != msg.Usage.InputTokens || acc.Usage.OutputTokens != msg.Usage.OutputTokens {
					t.Errorf("stream usage %d/%d, JSON usage %d/%d; want equal", acc.Usage.InputTokens, acc.Usage.OutputTokens, msg.Usage.InputTokens, msg.Usage.OutputTokens)
				}
			})

			t.Run("tools", func(t *testing.T) {
				params := anthropic.MessageNewParams{
					Model:     sim.ToolEchoModel,
					MaxTokens: 64,
					Tools:     []anthropic.ToolUnionParam{tool},
					Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Oslo?"))},
				}
				msg, err := client.Messages.New(t.Context(), params)
				if err != nil {
					t.Fatal(err)
				}
				if len(msg.Content) != 1 || msg.Content[0].Type != "tool_use" || msg.StopReason != anthropic.StopReasonToolUse {
					t.Fatalf("got %+v stop %q, want one tool_use and stop tool_use", msg.Content, msg.StopReason)
				}
				tu := msg.Content[0].AsToolUse()
				if tu.Name != "get_weather" || string(tu.Input) != `{"input":"Weather in Oslo?"}` || tu.ID == "" {
					t.Errorf("tool_use %s(%s) id %q, want get_weather({\"input\":\"Weather in Oslo?\"}) with an id", tu.Name, tu.Input, tu.ID)
				}

				stream := client.Messages.NewStreaming(t.Context(), params)
				acc := anthropic.Message{}
				for stream.Next() {
					if err := acc.Accumulate(stream.Current()); err != nil {
						t.Fatal(err)
					}
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
				stream.Close()
				if len(acc.Content) != 1 || acc.Content[0].Type != "tool_use" {
					t.Fatalf("stream: got %+v, want one tool_use", acc.Content)
				}
				if stu := acc.Content[0].AsToolUse(); stu.ID != tu.ID || string(stu.Input) != string(tu.Input) || acc.StopReason != anthropic.StopReasonToolUse {
					t.Errorf("stream: tool_use %s %s stop %q, want %s %s tool_use", stu.ID, stu.Input, acc.StopReason, tu.ID, tu.Input)
				}
			})

			t.Run("tool result", func(t *testing.T) {
				msg, err := client.Messages.New(t.Context(), anthropic.MessageNewParams{
					Model:     sim.ToolEchoModel,
					MaxTokens: 64,
					Tools:     []anthropic.ToolUnionParam{tool},
					Messages: []anthropic.MessageParam{
						anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Oslo?")),
						anthropic.NewAssistantMessage(anthropic.NewToolUseBlock("toolu_1", map[string]string{"input": "Oslo"}, "get_weather")),
						anthropic.NewUserMessage(anthropic.NewToolResultBlock("toolu_1", `{"temp_c":3}`, false)),
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				// The last message is the tool result: tool-echo answers with it.
				const want = `{"temp_c":3}`
				if len(msg.Content) != 1 || msg.Content[0].Text != want {
					t.Errorf("got %+v, want %q", msg.Content, want)
				}
			})

			t.Run("errors", func(t *testing.T) {
				_, err := client.Messages.New(t.Context(), anthropic.MessageNewParams{
					Model: "no-such-model", MaxTokens: 5,
					Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
				})
				var apiErr *anthropic.Error
				if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || !strings.Contains(apiErr.Error(), "no-such-model") {
					t.Errorf("got %v, want a 404 anthropic.Error naming the model", err)
				}
			})
		})
	}
}

func TestSimulatorAnthropicFault(t *testing.T) {
	simSrv := newSim(t)
	ctr := &http.Transport{}
	t.Cleanup(ctr.CloseIdleConnections)
	client := anthropic.NewClient(option.WithBaseURL(simSrv.URL), option.WithAPIKey("k"), option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{Transport: ctr}), option.WithHeader(sim.FaultHeader, sim.Fault429))
	_, err := client.Messages.New(t.Context(), anthropic.MessageNewParams{
		Model: "echo", MaxTokens: 5,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	})
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests || apiErr.Response.Header.Get("Retry-After") == "" {
		t.Fatalf("got %v, want a 429 anthropic.Error with Retry-After", err)
	}
	var body anthropicapi.ErrorResponse
	if json.Unmarshal([]byte(apiErr.RawJSON()), &body) != nil || body.Type != "error" || body.Error.Type != "rate_limit_error" {
		t.Errorf("error body %s, want type error / rate_limit_error", apiErr.RawJSON())
	}
}
