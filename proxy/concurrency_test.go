package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/sse"
)

func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	const n = 50
	up := newSimUpstream(t)
	h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{{name: "sim", url: up.URL, models: []string{"echo"}}}})

	// The goroutines report with t.Errorf only: t.Fatal belongs to the test
	// goroutine.
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			stream := i%2 == 1
			content := fmt.Sprintf("request number %d says hello", i)
			body := chatBody("echo", content, map[string]any{"max_tokens": 32, "stream": stream})
			if i%4 == 3 {
				body["stream_options"] = map[string]any{"include_usage": true}
			}
			got, err := h.tryChat(t.Context(), body)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			if got != content {
				t.Errorf("request %d (stream %v): got %q, want the echo %q", i, stream, got, content)
			}
		})
	}
	wg.Wait()

	evs := h.events.wait(t, n)
	if len(evs) != n {
		t.Fatalf("events: got %d, want %d", len(evs), n)
	}
	ids := map[string]bool{}
	var charged int64
	for _, ev := range evs {
		if ev.Status != http.StatusOK || ev.Error != "" || !ev.Allowed {
			t.Errorf("event %s: got status=%d error=%q allowed=%v, want 200 \"\" true", ev.RequestID, ev.Status, ev.Error, ev.Allowed)
		}
		if ids[ev.RequestID] {
			t.Errorf("request id %s logged twice", ev.RequestID)
		}
		ids[ev.RequestID] = true
		charged += ev.PromptTokens + ev.CompletionTokens
	}
	if got := h.keyUsage(t).Tokens; got != charged {
		t.Errorf("quota tokens: got %d, want %d (the sum of the events' usage)", got, charged)
	}
	if got := up.sim.Requests(); got != n {
		t.Errorf("upstream requests: got %d, want %d", got, n)
	}
}

// tryChat sends a chat request and returns the answer's text, streamed or
// not; it returns errors instead of failing, for use off the test goroutine.
func (h *harness) tryChat(ctx context.Context, body map[string]any) (string, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.gw.URL+"/v1/chat/completions", bytes.NewReader(raw))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+h.key)
	resp, err := h.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		var out openai.ChatResponse
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return "", err
		}
		if len(out.Choices) != 1 || out.Choices[0].Message.Content == nil {
			return "", fmt.Errorf("answer has no content: %+v", out)
		}
		return *out.Choices[0].Message.Content, nil
	}
	var text strings.Builder
	rd := sse.NewReader(resp.Body)
	for {
		ev, err := rd.Next()
		if err != nil {
			return "", fmt.Errorf("stream ended without [DONE] after %q: %w", text.String(), err)
		}
		if string(ev.Data) == "[DONE]" {
			if _, err := rd.Next(); !errors.Is(err, io.EOF) {
				return "", fmt.Errorf("event after [DONE]: %v", err)
			}
			return text.String(), nil
		}
		var ch openai.Chunk
		if err := json.Unmarshal(ev.Data, &ch); err != nil {
			return "", fmt.Errorf("chunk %s: %w", ev.Data, err)
		}
		for _, c := range ch.Choices {
			text.WriteString(c.Delta.Content)
		}
	}
}
