package proxy

import (
	"errors"
	"net/http"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
)

// TestMessagesWithAnthropicSDK points the official Anthropic client at the
// gateway's /v1/messages: JSON and streaming answers come back translated,
// the policy masks the prompt, the log has the request, and a refused key
// gets Anthropic's error shape.
func TestMessagesWithAnthropicSDK(t *testing.T) {
	t.Parallel()
	up := newSimUpstream(t)
	h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{{name: "sim", url: up.URL, models: []string{"echo"}}}})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := anthropic.NewClient(option.WithBaseURL(h.gw.URL), option.WithAPIKey(h.key),
		option.WithHTTPClient(&http.Client{Transport: tr}), option.WithMaxRetries(0))
	params := anthropic.MessageNewParams{
		Model:     "echo",
		MaxTokens: 64,
		System:    []anthropic.TextBlockParam{{Text: "Be brief."}},
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("hello")),
			anthropic.NewAssistantMessage(anthropic.NewTextBlock("hi")),
			anthropic.NewUserMessage(anthropic.NewTextBlock("mail jane.doe@example.com please")),
		},
	}
	const want = "mail [REDACTED:EMAIL] please"
	msg, err := client.Messages.New(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != want || msg.StopReason != anthropic.StopReasonEndTurn {
		t.Fatalf("got %+v stop %q, want %q and end_turn", msg.Content, msg.StopReason, want)
	}
	if msg.Usage.InputTokens == 0 || msg.Usage.OutputTokens == 0 {
		t.Errorf("usage %+v, want input and output tokens", msg.Usage)
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
	if len(acc.Content) != 1 || acc.Content[0].Text != want || acc.StopReason != anthropic.StopReasonEndTurn {
		t.Fatalf("stream: got %+v stop %q, want %q", acc.Content, acc.StopReason, want)
	}
	if acc.Usage.OutputTokens != msg.Usage.OutputTokens {
		t.Errorf("stream output tokens %d, JSON %d; want equal", acc.Usage.OutputTokens, msg.Usage.OutputTokens)
	}

	evs := h.events.wait(t, 2)
	for _, ev := range evs {
		if ev.Path != "/v1/messages" || !ev.Allowed || ev.PIICount != 1 || ev.CompletionTokens == 0 {
			t.Errorf("event path=%s allowed=%v pii=%d completion=%d, want /v1/messages, allowed, 1, >0", ev.Path, ev.Allowed, ev.PIICount, ev.CompletionTokens)
		}
	}

	bad := anthropic.NewClient(option.WithBaseURL(h.gw.URL), option.WithAPIKey("tg_kforged00_notarealsecretnotarealsecret00"),
		option.WithHTTPClient(&http.Client{Transport: tr}), option.WithMaxRetries(0))
	_, err = bad.Messages.New(t.Context(), params)
	var ae *anthropic.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged key: error %v, want a 401 anthropic.Error", err)
	}
}
