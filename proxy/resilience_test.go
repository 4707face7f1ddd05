package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/router"
	"github.com/tollgate/tollgate/proxy/sse"
)

// fault is how a test upstream answers one call.
type fault string

const (
	answerOK    fault = "ok"
	answer429   fault = "429"
	answer500   fault = "500"
	answerHang  fault = "hang"
	breakEarly  fault = "break-before-first-byte"
	breakLate   fault = "break-after-first-byte"
	unreachable fault = "unreachable" // a closed port
)

// scripted is an upstream that answers from faults in turn, the last one
// repeating; it serves JSON and streams.
func scripted(t *testing.T, name string, faults ...fault) (*upstream, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		f := faults[min(i, len(faults)-1)]
		var req struct {
			Stream bool   `json:"stream"`
			Model  string `json:"model"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		switch f {
		case answer429:
			w.Header().Set("Retry-After", "1")
			writeUpstreamError(w, http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded", name+" is busy")
			return
		case answer500:
			writeUpstreamError(w, http.StatusInternalServerError, "api_error", "server_error", name+" crashed")
			return
		case answerHang:
			<-r.Context().Done()
			return
		case breakEarly:
			startStream(w)
			_ = http.NewResponseController(w).Flush()
			return // ends without a chunk or [DONE]
		}
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(completionJSON(req.Model, "answer from "+name, 5, 3))
			return
		}
		startStream(w)
		send(t, w, contentChunk(req.Model, "answer "))
		if f == breakLate {
			return
		}
		send(t, w, contentChunk(req.Model, "from "+name))
		send(t, w, finishChunk(req.Model))
		send(t, w, usageChunk(req.Model, 5, 3))
		_ = sse.WriteDone(w)
	})
	return up, &n
}

// answer reads a JSON or streamed answer: its text and, for a stream, the
// error event's code if one ended it.
func answer(t *testing.T, resp *http.Response, stream bool) (text, streamErr string) {
	t.Helper()
	defer resp.Body.Close()
	if !stream {
		var out openai.ChatResponse
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &out); err != nil || len(out.Choices) == 0 {
			t.Fatalf("answer %s: %v", raw, err)
		}
		return *out.Choices[0].Message.Content, ""
	}
	sr := newStreamReader(resp.Body)
	var b strings.Builder
	for {
		ev, err := sr.next(t)
		if err != nil || string(ev) == "[DONE]" {
			return b.String(), streamErr
		}
		var e openai.ErrorResponse
		if json.Unmarshal(ev, &e) == nil && e.Error.Code != "" {
			streamErr = e.Error.Code
			continue
		}
		var ch openai.Chunk
		if err := json.Unmarshal(ev, &ch); err != nil {
			t.Fatalf("event %s: %v", ev, err)
		}
		for _, c := range ch.Choices {
			b.WriteString(c.Delta.Content)
		}
	}
}

// TestFaultMatrix runs the failures a provider can have against a gateway
// with two upstreams for one model: the first is tried, the second is the
// fallback.
func TestFaultMatrix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		primary    []fault
		secondary  []fault
		stream     bool
		status     int
		text       string // the answer the client gets
		streamErr  string // the error event ending the stream
		calls      [2]int64
		attempts   int
		fallbacks  int
		eventError string
	}{
		{name: "429 falls back", primary: []fault{answer429}, secondary: []fault{answerOK},
			status: 200, text: "answer from b", calls: [2]int64{1, 1}, attempts: 2, fallbacks: 1},
		{name: "500 is retried, then falls back", primary: []fault{answer500}, secondary: []fault{answerOK},
			status: 200, text: "answer from b", calls: [2]int64{2, 1}, attempts: 3, fallbacks: 1},
		{name: "500 then success on the retry", primary: []fault{answer500, answerOK}, secondary: []fault{answerOK},
			status: 200, text: "answer from a", calls: [2]int64{2, 0}, attempts: 2},
		{name: "a hang times out, then falls back", primary: []fault{answerHang}, secondary: []fault{answerOK},
			status: 200, text: "answer from b", calls: [2]int64{1, 1}, attempts: 2, fallbacks: 1},
		{name: "an unreachable upstream falls back", primary: []fault{unreachable}, secondary: []fault{answerOK},
			status: 200, text: "answer from b", calls: [2]int64{0, 1}, attempts: 3, fallbacks: 1},
		{name: "stream: a hang before the first chunk falls back", primary: []fault{answerHang}, secondary: []fault{answerOK}, stream: true,
			status: 200, text: "answer from b", calls: [2]int64{1, 1}, attempts: 2, fallbacks: 1},
		{name: "stream: broken before the first byte falls back", primary: []fault{breakEarly}, secondary: []fault{answerOK}, stream: true,
			status: 200, text: "answer from b", calls: [2]int64{2, 1}, attempts: 3, fallbacks: 1},
		{name: "stream: broken after the first byte ends with an error event", primary: []fault{breakLate}, secondary: []fault{answerOK}, stream: true,
			status: 200, text: "answer ", streamErr: "upstream_stream_broken", calls: [2]int64{1, 0}, attempts: 1, eventError: "upstream_stream_broken"},
		{name: "all down: one clear error", primary: []fault{answer500}, secondary: []fault{answer429},
			status: 429, calls: [2]int64{2, 1}, attempts: 3, fallbacks: 1, eventError: "upstream_429"},
		{name: "stream: all down: one clear error", primary: []fault{answer500}, secondary: []fault{answer500}, stream: true,
			status: 500, calls: [2]int64{2, 2}, attempts: 4, fallbacks: 2, eventError: "upstream_500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, aCalls := scripted(t, "a", tt.primary...)
			if tt.primary[0] == unreachable {
				a.Close()
			}
			b, bCalls := scripted(t, "b", tt.secondary...)
			h := newHarness(t, harnessOpts{
				upstreams: []upstreamSpec{
					{name: "a", url: a.URL, models: []string{"gpt-4o-mini"}, timeout: "200ms"},
					{name: "b", url: b.URL, models: []string{"gpt-4o-mini"}, timeout: "200ms"},
				},
				server: func(c *Config) { c.Router.BackoffBase, c.Router.BackoffMax = time.Millisecond, time.Millisecond },
			})
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			resp := h.do(t, ctx, http.MethodPost, "/v1/chat/completions",
				chatBody("gpt-4o-mini", "hello", map[string]any{"stream": tt.stream, "max_tokens": 20}), nil)
			if resp.StatusCode != tt.status {
				raw, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, raw, tt.status)
			}
			if tt.status == 200 {
				text, streamErr := answer(t, resp, tt.stream)
				if text != tt.text || streamErr != tt.streamErr {
					t.Errorf("answer %q (stream error %q), want %q (%q)", text, streamErr, tt.text, tt.streamErr)
				}
			} else {
				var e openai.ErrorResponse
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error.Message == "" {
					t.Errorf("error body: %+v, %v; want one OpenAI error", e, err)
				}
				resp.Body.Close()
			}
			if got := [2]int64{aCalls.Load(), bCalls.Load()}; got != tt.calls {
				t.Errorf("upstream calls %v, want %v", got, tt.calls)
			}
			ev := h.events.one(t)
			if len(ev.AttemptLog) < tt.attempts || (tt.status == 200 && tt.streamErr == "" && ev.AttemptLog[len(ev.AttemptLog)-1].Outcome != "ok") {
				t.Errorf("attempt log %+v; want every attempt, the last one ok", ev.AttemptLog)
			}
			if tt.fallbacks > 0 && !strings.HasPrefix(ev.AttemptLog[len(ev.AttemptLog)-1].Target, "b/") {
				t.Errorf("attempt log %+v; want the last attempt on the fallback b", ev.AttemptLog)
			}
			if ev.Attempts != tt.attempts || ev.Fallbacks != tt.fallbacks || ev.Error != tt.eventError {
				t.Errorf("event attempts=%d fallbacks=%d error=%q, want %d %d %q", ev.Attempts, ev.Fallbacks, ev.Error, tt.attempts, tt.fallbacks, tt.eventError)
			}
		})
	}
}

// TestCircuitBreaker checks that a failing upstream's breaker opens after
// the threshold (it is then skipped without a call), and that a successful
// probe closes it.
func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	zero := 0
	for _, tt := range []struct {
		name    string
		openFor time.Duration
	}{{"open: skipped", time.Hour}, {"half-open: probed and closed", time.Nanosecond}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, aCalls := scripted(t, "a", answer500, answer500, answerOK)
			b, _ := scripted(t, "b", answerOK)
			h := newHarness(t, harnessOpts{
				upstreams: []upstreamSpec{
					{name: "a", url: a.URL, models: []string{"gpt-4o-mini"}},
					{name: "b", url: b.URL, models: []string{"gpt-4o-mini"}},
				},
				server: func(c *Config) {
					c.Retries = &zero
					c.Router.Breaker = router.BreakerConfig{ConsecutiveFailures: 2, OpenFor: tt.openFor, Probes: 1}
				},
			})
			for i := range 3 {
				resp := h.chat(t, chatBody("gpt-4o-mini", "hello", nil))
				text, _ := answer(t, resp, false)
				want := "answer from b"
				if i == 2 && tt.openFor < time.Millisecond {
					want = "answer from a" // the probe succeeds
				}
				if text != want {
					t.Fatalf("request %d answered %q, want %q", i, text, want)
				}
			}
			state := testutil.ToFloat64(h.srv.router.StateGauge("a", "gpt-4o-mini"))
			if tt.openFor == time.Hour {
				if aCalls.Load() != 2 || state != float64(router.Open) {
					t.Fatalf("a called %d times, state %v; want 2 calls and open", aCalls.Load(), state)
				}
			} else if aCalls.Load() != 3 || state != float64(router.Closed) {
				t.Fatalf("a called %d times, state %v; want a third call (the probe) and closed", aCalls.Load(), state)
			}
		})
	}
}
