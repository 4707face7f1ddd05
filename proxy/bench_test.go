package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/sse"
)

// The benchmarks run a request through the whole handler (auth, parse,
// input building with PII scan, policy evaluation on the embedded library,
// quota reserve and reconcile, upstream call, relay, event) in process. The
// upstream is an httptest server answering a fixed body, so its work (and
// the loopback round trip) is part of the figures; allocations include the
// upstream server's and the HTTP client's.
//
// go test -run=^$ -bench=. -benchmem -benchtime=3000x -count=5 ./proxy/
// (2-core AMD EPYC VM under load average ~6 from other builds; medians, before
// any optimisation):
//
//	BenchmarkChatCompletion        ~740 µs/op  68 KB/op  1118 allocs/op
//	BenchmarkChatCompletionStream  ~830 µs/op  90 KB/op  1393 allocs/op
//	BenchmarkUpstreamRoundTrip     ~140 µs/op   8 KB/op    90 allocs/op
//
// A CPU profile of BenchmarkChatCompletion puts ~290 µs of CPU per request in
// the handler: policy evaluation ~110 µs (decodeDecision's JSON round trip
// ~25 µs of it), prompt token counting ~55 µs, request parse ~25 µs.

// benchPrompt is a 256-byte prompt, as in DESIGN.md's performance budget.
var benchPrompt = strings.Repeat("Summarise the quarterly report for the board. ", 6)[:256]

// benchHarness is a gateway whose key limit never runs out within a
// benchmark (the clock is fixed, so every request falls in one window) and
// whose events are only counted.
func benchHarness(b *testing.B, handler http.HandlerFunc) *harness {
	b.Helper()
	up := httptest.NewServer(handler)
	b.Cleanup(up.Close)
	return newHarness(b, harnessOpts{
		policy: libraryWith(b, map[string]string{
			"data/quota/data.json": `{"default_key_tokens_per_minute": 1000000000000000, "keys": {}}`,
		}),
		upstreams:     []upstreamSpec{{name: "sim", url: up.URL, models: []string{"echo"}}},
		discardEvents: true,
	})
}

func benchRequest(b *testing.B, h *harness, body []byte) int {
	req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.key)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	return rec.Code
}

func BenchmarkChatCompletion(b *testing.B) {
	answer := completionJSON("echo", benchPrompt, 60, 55)
	h := benchHarness(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	})
	body, err := json.Marshal(chatBody("echo", benchPrompt, map[string]any{"max_tokens": 256}))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if code := benchRequest(b, h, body); code != http.StatusOK {
			b.Fatalf("status: got %d, want 200", code)
		}
	}
	if got := h.events.n.Load(); got != int64(b.N) {
		b.Fatalf("events: got %d, want %d", got, b.N)
	}
}

func BenchmarkChatCompletionStream(b *testing.B) {
	// A fixed stream: 16 content chunks, the finish, the usage, [DONE].
	var stream bytes.Buffer
	words := strings.Fields(benchPrompt)
	for _, w := range words[:16] {
		_ = sse.WriteData(&stream, contentChunk("echo", w+" "))
	}
	_ = sse.WriteData(&stream, finishChunk("echo"))
	_ = sse.WriteData(&stream, usageChunk("echo", 60, 16))
	_ = sse.WriteDone(&stream)
	raw := stream.Bytes()
	h := benchHarness(b, func(w http.ResponseWriter, r *http.Request) {
		startStream(w)
		_, _ = w.Write(raw)
	})
	body, err := json.Marshal(chatBody("echo", benchPrompt, map[string]any{"max_tokens": 256, "stream": true}))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if code := benchRequest(b, h, body); code != http.StatusOK {
			b.Fatalf("status: got %d, want 200", code)
		}
	}
	if got := h.events.n.Load(); got != int64(b.N) {
		b.Fatalf("events: got %d, want %d", got, b.N)
	}
}

// BenchmarkUpstreamRoundTrip is the floor of BenchmarkChatCompletion: the
// same upstream call through the provider adapter, without the gateway.
// The difference between the two is the gateway's own cost.
func BenchmarkUpstreamRoundTrip(b *testing.B) {
	answer := completionJSON("echo", benchPrompt, 60, 55)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	b.Cleanup(up.Close)
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(transport.CloseIdleConnections)
	p, err := provider.NewOpenAI(provider.Config{Name: "sim", Kind: "openai", BaseURL: up.URL + "/v1", Models: []string{"echo"}}, &http.Client{Transport: transport})
	if err != nil {
		b.Fatal(err)
	}
	maxTokens := 256
	req := &openai.ChatRequest{Model: "echo", MaxTokens: &maxTokens, Messages: []openai.Message{{Role: "user", Content: openai.TextContent(benchPrompt)}}}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := p.Send(b.Context(), req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
