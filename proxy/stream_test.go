package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/sse"
)

const streamModel = "gpt-4o-mini"

// streamBody is a streaming request body; includeUsage nil leaves
// stream_options out.
func streamBody(content string, includeUsage *bool) map[string]any {
	b := chatBody(streamModel, content, map[string]any{"stream": true, "max_tokens": 100})
	if includeUsage != nil {
		b["stream_options"] = map[string]any{"include_usage": *includeUsage}
	}
	return b
}

func TestStreamRelaysChunkByChunk(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	tests := []struct {
		name         string
		includeUsage *bool
		wantUsage    bool
	}{
		{"no stream_options", nil, false},
		{"include_usage false", &no, false},
		{"include_usage true", &yes, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const prompt, completion = 21, 2
			release := make(chan struct{})
			releaseOnce := sync.OnceFunc(func() { close(release) })
			t.Cleanup(releaseOnce)
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				startStream(w)
				send(t, w, contentChunk(streamModel, "Hello"))
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				send(t, w, contentChunk(streamModel, " world"))
				send(t, w, finishChunk(streamModel))
				send(t, w, usageChunk(streamModel, prompt, completion))
				_ = sse.WriteDone(w)
			})
			h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{{name: "openai", url: up.URL, models: []string{streamModel}}}})

			resp := h.chat(t, streamBody("Say hello", tc.includeUsage))
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type: got %q, want text/event-stream", ct)
			}
			if resp.Header.Get("X-Ratelimit-Remaining-Tokens") == "" || resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("headers: got %v, want X-Request-Id and x-ratelimit-*", resp.Header)
			}
			sr := newStreamReader(resp.Body)
			// The upstream holds the rest of its answer until the client has
			// the first chunk: a buffering gateway never delivers it.
			first, err := sr.next(t)
			releaseOnce()
			if err != nil {
				t.Fatalf("first event: %v", err)
			}
			if got := chunkContent(t, first); got != "Hello" {
				t.Errorf("first chunk content: got %q, want Hello", got)
			}

			rest := sr.rest(t)
			if len(rest) == 0 || string(rest[len(rest)-1]) != "[DONE]" {
				t.Fatalf("stream: got %q, want it to end with [DONE]", rest)
			}
			var text strings.Builder
			text.WriteString("Hello")
			sawUsage := false
			for _, data := range rest[:len(rest)-1] {
				var ch openai.Chunk
				if err := json.Unmarshal(data, &ch); err != nil {
					t.Fatalf("chunk %s: %v", data, err)
				}
				if ch.Usage != nil {
					sawUsage = true
					if ch.Usage.PromptTokens != prompt || ch.Usage.CompletionTokens != completion {
						t.Errorf("usage chunk: got %+v, want %d/%d", ch.Usage, prompt, completion)
					}
				}
				for _, c := range ch.Choices {
					text.WriteString(c.Delta.Content)
				}
			}
			if got := text.String(); got != "Hello world" {
				t.Errorf("streamed text: got %q, want %q", got, "Hello world")
			}
			if sawUsage != tc.wantUsage {
				t.Errorf("usage chunk relayed: got %v, want %v", sawUsage, tc.wantUsage)
			}

			// Whatever the client asked, the gateway asks for usage.
			fwd := up.lastRequest(t)
			so, _ := fwd["stream_options"].(map[string]any)
			if fwd["stream"] != true || so["include_usage"] != true {
				t.Errorf("upstream request: got stream=%v stream_options=%v, want stream true and include_usage true", fwd["stream"], fwd["stream_options"])
			}

			ev := h.events.one(t)
			if !ev.Stream || ev.Status != 200 || ev.Error != "" || ev.PromptTokens != prompt || ev.CompletionTokens != completion || ev.CostMicros <= 0 {
				t.Errorf("event: got stream=%v status=%d error=%q tokens=%d/%d cost=%d, want true 200 \"\" %d/%d >0",
					ev.Stream, ev.Status, ev.Error, ev.PromptTokens, ev.CompletionTokens, ev.CostMicros, prompt, completion)
			}
			if got := h.keyUsage(t).Tokens; got != prompt+completion {
				t.Errorf("quota tokens: got %d, want %d (the upstream's usage)", got, prompt+completion)
			}
		})
	}
}

func TestStreamClientDisconnect(t *testing.T) {
	t.Parallel()
	const delivered = "The quick brown fox jumps"
	upstreamGone := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		defer close(upstreamGone)
		startStream(w)
		send(t, w, contentChunk(streamModel, delivered))
		// Never finish: only the client leaving ends this stream.
		<-r.Context().Done()
	})
	h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{{name: "openai", url: up.URL, models: []string{streamModel}}}})

	const question = "Tell me a story"
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	resp := h.do(t, ctx, http.MethodPost, "/v1/chat/completions", streamBody(question, nil), nil)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200", resp.StatusCode)
	}
	sr := newStreamReader(resp.Body)
	first, err := sr.next(t)
	if err != nil {
		t.Fatalf("first event: %v", err)
	}
	if got := chunkContent(t, first); got != delivered {
		t.Fatalf("first chunk: got %q, want %q", got, delivered)
	}
	cancel() // the client goes away mid-stream

	ev := h.events.one(t)
	select {
	case <-upstreamGone:
	case <-time.After(waitTimeout):
		t.Fatal("the upstream call was not cancelled after the client left")
	}
	wantPrompt := int64(h.counter.CountChat(streamModel, []tokens.Message{{Role: "user", Content: question}}))
	wantCompletion := int64(h.counter.Count(streamModel, delivered))
	if ev.Error != "client_disconnected" || ev.PromptTokens != wantPrompt || ev.CompletionTokens != wantCompletion {
		t.Errorf("event: got error=%q tokens=%d/%d, want client_disconnected %d/%d",
			ev.Error, ev.PromptTokens, ev.CompletionTokens, wantPrompt, wantCompletion)
	}
	if got, want := h.keyUsage(t).Tokens, wantPrompt+wantCompletion; got != want {
		t.Errorf("quota tokens: got %d, want %d (prompt + delivered completion)", got, want)
	}
}

func TestStreamUpstreamBreaks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		abort bool
	}{
		{"ends without DONE", false},
		{"connection aborted", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				startStream(w)
				send(t, w, contentChunk(streamModel, "one"))
				send(t, w, contentChunk(streamModel, " two"))
				if tc.abort {
					panic(http.ErrAbortHandler)
				}
			})
			h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{{name: "openai", url: up.URL, models: []string{streamModel}}}})

			const question = "Count to three"
			resp := h.chat(t, streamBody(question, nil))
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200", resp.StatusCode)
			}
			events := newStreamReader(resp.Body).rest(t)
			if len(events) != 3 {
				t.Fatalf("events: got %d %q, want 2 chunks and an error", len(events), events)
			}
			if a, b := chunkContent(t, events[0]), chunkContent(t, events[1]); a+b != "one two" {
				t.Errorf("chunks: got %q + %q, want one two", a, b)
			}
			wantErrorShape(t, events[2], "api_error", "upstream_stream_broken")

			ev := h.events.one(t)
			wantPrompt := int64(h.counter.CountChat(streamModel, []tokens.Message{{Role: "user", Content: question}}))
			wantCompletion := int64(h.counter.Count(streamModel, "one two"))
			if ev.Error != "upstream_stream_broken" || ev.Status != 200 || ev.PromptTokens != wantPrompt || ev.CompletionTokens != wantCompletion {
				t.Errorf("event: got error=%q status=%d tokens=%d/%d, want upstream_stream_broken 200 %d/%d",
					ev.Error, ev.Status, ev.PromptTokens, ev.CompletionTokens, wantPrompt, wantCompletion)
			}
			if got, want := h.keyUsage(t).Tokens, wantPrompt+wantCompletion; got != want {
				t.Errorf("quota tokens: got %d, want %d (prompt + delivered completion)", got, want)
			}
		})
	}
}
