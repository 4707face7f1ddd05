package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/moderation"
	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/quota"
	"github.com/tollgate/tollgate/proxy/sim"
	"github.com/tollgate/tollgate/proxy/sse"
)

// testNow is the harness clock. It is fixed half-way through a minute, so
// that a request and the checks after it see the same quota window and
// Retry-After and x-ratelimit-reset-* are exact (30 s).
var testNow = time.Date(2025, 6, 2, 12, 0, 30, 0, time.UTC)

// waitTimeout bounds every wait of a test on the gateway; a correct gateway
// answers in milliseconds.
const waitTimeout = 10 * time.Second

// upstreamSpec is one upstream the harness configures.
type upstreamSpec struct {
	name    string
	url     string // base URL of the server; "/v1" is appended
	models  []string
	timeout string // provider timeout; empty means the provider default
}

// harnessOpts configures newHarness.
type harnessOpts struct {
	// policy is the bundle to load; nil means the embedded library.
	policy fs.FS
	// noPolicy starts the gateway without a loaded bundle.
	noPolicy  bool
	upstreams []upstreamSpec
	// maxBody is server.max_body_bytes; 0 means the default.
	maxBody int64
	// discardEvents keeps only the count of events (benchmarks).
	discardEvents bool
	// now is the gateway's clock; nil means the fixed testNow.
	now func() time.Time
	// shadow is a candidate bundle evaluated in shadow mode; nil means none.
	shadow fs.FS
	// server adjusts the server configuration (retries, router).
	server func(*Config)
	// moderation is the moderation client; nil means none.
	moderation *moderation.Client
}

// steppingClock starts at testNow and advances by step at every reading, so
// that durations the gateway measures are positive and predictable.
func steppingClock(step time.Duration) func() time.Time {
	var n atomic.Int64
	return func() time.Time { return testNow.Add(time.Duration(n.Add(1)-1) * step) }
}

// harness is a gateway wired from real parts (engine, memory limiter, API
// keys, provider adapters) behind an httptest server.
type harness struct {
	srv       *Server
	gw        *httptest.Server
	client    *http.Client
	engine    *engine.Engine
	bundle    *bundles.Bundle
	limiter   *quota.Memory
	events    *eventSink
	counter   *tokens.Counter
	registry  *prometheus.Registry
	key       string
	keyID     string
	decisions *decisionSink
}

// decisionSink collects decision-log events.
type decisionSink struct {
	mu     sync.Mutex
	events []analytics.DecisionEvent
}

func (s *decisionSink) Enqueue(ev analytics.DecisionEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
}

func (s *decisionSink) all() []analytics.DecisionEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]analytics.DecisionEvent(nil), s.events...)
}

func newHarness(tb testing.TB, o harnessOpts) *harness {
	tb.Helper()
	ctx := tb.Context()
	counter, err := tokens.New()
	if err != nil {
		tb.Fatal(err)
	}
	key, keyID, hash, err := auth.NewKey()
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := auth.NewKeys(auth.Config{APIKeys: []auth.KeyConfig{{
		ID: keyID, Hash: hash, Subject: "alice", Kind: "user", Team: "ml", Org: "acme", Roles: []string{"developer"},
	}}})
	if err != nil {
		tb.Fatal(err)
	}
	eng, err := engine.New(engine.Config{}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	h := &harness{
		engine:    eng,
		limiter:   quota.NewMemory(nil),
		events:    &eventSink{discard: o.discardEvents},
		counter:   counter,
		registry:  prometheus.NewRegistry(),
		key:       key,
		keyID:     keyID,
		decisions: &decisionSink{},
	}
	var shadow *engine.Engine
	if o.shadow != nil {
		if shadow, err = engine.New(engine.Config{}, nil); err != nil {
			tb.Fatal(err)
		}
		sb, err := bundles.LoadFS(o.shadow, "shadow")
		if err != nil {
			tb.Fatal(err)
		}
		if err := shadow.Load(ctx, sb); err != nil {
			tb.Fatal(err)
		}
	}
	policy := o.policy
	if policy == nil {
		policy = policies.FS
	}
	if h.bundle, err = bundles.LoadFS(policy, "test"); err != nil {
		tb.Fatal(err)
	}
	if !o.noPolicy {
		if err := eng.Load(ctx, h.bundle); err != nil {
			tb.Fatal(err)
		}
	}

	// One transport for all upstreams, closed with the test so no idle
	// connection outlives it.
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	tb.Cleanup(transport.CloseIdleConnections)
	upClient := &http.Client{Transport: transport}
	var ups []Upstream
	models := map[string][]string{}
	for _, u := range o.upstreams {
		p, err := provider.NewOpenAI(provider.Config{
			Name: u.name, Kind: "openai", BaseURL: u.url + "/v1", Models: u.models, Timeout: u.timeout,
		}, upClient)
		if err != nil {
			tb.Fatal(err)
		}
		ups = append(ups, p)
		for _, m := range u.models {
			models[m] = append(models[m], u.name)
		}
	}
	now := o.now
	if now == nil {
		now = func() time.Time { return testNow }
	}
	cfg := Config{MaxBodyBytes: o.maxBody}
	if o.server != nil {
		o.server(&cfg)
	}
	h.srv, err = New(cfg, Deps{
		Engine:     eng,
		Builder:    engine.NewBuilder(counter, pii.NewScanner()),
		Counter:    counter,
		Keys:       keys,
		Limiter:    h.limiter,
		Events:     h.events,
		Upstreams:  ups,
		Models:     models,
		Registry:   h.registry,
		Now:        now,
		Decisions:  h.decisions,
		Shadow:     shadow,
		Moderation: o.moderation,
	})
	if err != nil {
		tb.Fatal(err)
	}
	h.gw = httptest.NewServer(h.srv.Handler())
	tb.Cleanup(h.gw.Close)
	h.client = h.gw.Client()
	return h
}

// keyUsage returns what the memory limiter counts against the test key in
// the current minute (the default library's only limit).
func (h *harness) keyUsage(tb testing.TB) quota.Amount {
	tb.Helper()
	a, err := h.limiter.Usage(context.Background(), testNow, quota.Limit{Scope: "key:" + h.keyID, Window: quota.Minute, Tokens: 1})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// do sends a request to the gateway with the test key. body is sent as is
// when it is a []byte or io.Reader, else JSON-encoded.
func (h *harness) do(tb testing.TB, ctx context.Context, method, path string, body any, hdr http.Header) *http.Response {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.gw.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := h.client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// chat posts a chat completion request and returns the response.
func (h *harness) chat(tb testing.TB, body any) *http.Response {
	tb.Helper()
	return h.do(tb, tb.Context(), http.MethodPost, "/v1/chat/completions", body, nil)
}

// chatBody is a request body for model with one user message.
func chatBody(model, content string, extra map[string]any) map[string]any {
	b := map[string]any{
		"model":    model,
		"messages": []map[string]any{{"role": "user", "content": content}},
	}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

// readAll reads and closes the body.
func readAll(tb testing.TB, resp *http.Response) []byte {
	tb.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read response body: %v", err)
	}
	return raw
}

// wantAPIError checks that resp is an OpenAI error with status and code,
// that the body has exactly the OpenAI shape with message, type and code
// set, and returns the detail.
func wantAPIError(tb testing.TB, resp *http.Response, status int, typ, code string) openai.ErrorDetail {
	tb.Helper()
	raw := readAll(tb, resp)
	if resp.StatusCode != status {
		tb.Fatalf("status: got %d, want %d (body %s)", resp.StatusCode, status, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("Content-Type: got %q, want application/json", ct)
	}
	return wantErrorShape(tb, raw, typ, code)
}

// wantErrorShape decodes an OpenAI error document strictly.
func wantErrorShape(tb testing.TB, raw []byte, typ, code string) openai.ErrorDetail {
	tb.Helper()
	var body openai.ErrorResponse
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		tb.Fatalf("body %s is not an OpenAI error document: %v", raw, err)
	}
	e := body.Error
	if e.Message == "" {
		tb.Errorf("error.message: empty in %s", raw)
	}
	if e.Type != typ {
		tb.Errorf("error.type: got %q, want %q", e.Type, typ)
	}
	if e.Code != code {
		tb.Errorf("error.code: got %q, want %q", e.Code, code)
	}
	return e
}

// eventSink is the EventSink of the harness: it keeps every event and wakes
// waiters on each one.
type eventSink struct {
	discard bool
	n       atomic.Int64

	mu      sync.Mutex
	events  []analytics.Event
	changed chan struct{} // closed and replaced on every event
}

// Enqueue implements EventSink.
func (s *eventSink) Enqueue(ev analytics.Event) {
	s.n.Add(1)
	if s.discard {
		return
	}
	s.mu.Lock()
	s.events = append(s.events, ev)
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	s.mu.Unlock()
}

// wait returns the events once there are at least n of them. The gateway
// enqueues an event after the response is written, so a test that got its
// answer must wait for the event.
func (s *eventSink) wait(tb testing.TB, n int) []analytics.Event {
	tb.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if len(s.events) >= n {
			evs := append([]analytics.Event(nil), s.events...)
			s.mu.Unlock()
			return evs
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		got := len(s.events)
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			tb.Fatalf("events: got %d after %s, want %d", got, waitTimeout, n)
		}
	}
}

// one waits for the single event of a test.
func (s *eventSink) one(tb testing.TB) analytics.Event {
	tb.Helper()
	evs := s.wait(tb, 1)
	if len(evs) != 1 {
		tb.Fatalf("events: got %d, want 1", len(evs))
	}
	return evs[0]
}

// libraryWith returns the embedded policy library with some files replaced
// or added, e.g. a data file with other limits.
func libraryWith(tb testing.TB, files map[string]string) fstest.MapFS {
	tb.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(policies.FS, p)
		if err != nil {
			return err
		}
		m[p] = &fstest.MapFile{Data: raw}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	for p, data := range files {
		m[p] = &fstest.MapFile{Data: []byte(data)}
	}
	return m
}

// regoBundle is a bundle of a single main module.
func regoBundle(module string) fstest.MapFS {
	return fstest.MapFS{"main/main.rego": &fstest.MapFile{Data: []byte(module)}}
}

// upstream is an httptest upstream that counts its calls and keeps the
// request bodies.
type upstream struct {
	*httptest.Server
	calls atomic.Int64

	mu     sync.Mutex
	bodies [][]byte
}

func newUpstream(tb testing.TB, handler http.HandlerFunc) *upstream {
	tb.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		u.mu.Lock()
		u.bodies = append(u.bodies, raw)
		u.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(raw))
		handler(w, r)
	}))
	tb.Cleanup(u.Close)
	return u
}

// lastRequest decodes the last request body the upstream received.
func (u *upstream) lastRequest(tb testing.TB) map[string]any {
	tb.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.bodies) == 0 {
		tb.Fatal("upstream received no request")
	}
	var m map[string]any
	if err := json.Unmarshal(u.bodies[len(u.bodies)-1], &m); err != nil {
		tb.Fatalf("upstream request body: %v", err)
	}
	return m
}

// completionJSON is a non-streaming answer with usage.
func completionJSON(model, content string, prompt, completion int) []byte {
	raw, _ := json.Marshal(openai.ChatResponse{
		ID: "chatcmpl-test", Object: "chat.completion", Created: testNow.Unix(), Model: model,
		Choices: []openai.Choice{{Message: openai.ResponseMessage{Role: "assistant", Content: &content}, FinishReason: "stop"}},
		Usage:   &openai.Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion},
	})
	return raw
}

// contentChunk is a streamed chunk carrying content.
func contentChunk(model, content string) []byte {
	raw, _ := json.Marshal(openai.Chunk{
		ID: "chatcmpl-test", Object: "chat.completion.chunk", Created: testNow.Unix(), Model: model,
		Choices: []openai.ChunkChoice{{Delta: openai.Delta{Role: "assistant", Content: content}}},
	})
	return raw
}

// finishChunk ends the choice.
func finishChunk(model string) []byte {
	stop := "stop"
	raw, _ := json.Marshal(openai.Chunk{
		ID: "chatcmpl-test", Object: "chat.completion.chunk", Created: testNow.Unix(), Model: model,
		Choices: []openai.ChunkChoice{{FinishReason: &stop}},
	})
	return raw
}

// usageChunk is the final chunk OpenAI sends with include_usage.
func usageChunk(model string, prompt, completion int) []byte {
	raw, _ := json.Marshal(openai.Chunk{
		ID: "chatcmpl-test", Object: "chat.completion.chunk", Created: testNow.Unix(), Model: model,
		Choices: []openai.ChunkChoice{},
		Usage:   &openai.Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion},
	})
	return raw
}

// startStream writes the headers of an SSE answer.
func startStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
}

// send writes one data event and flushes it.
func send(tb testing.TB, w http.ResponseWriter, data []byte) {
	if err := sse.WriteData(w, data); err != nil {
		tb.Errorf("upstream write: %v", err)
		return
	}
	if err := http.NewResponseController(w).Flush(); err != nil {
		tb.Errorf("upstream flush: %v", err)
	}
}

// streamEvent is an event the client read from the gateway.
type streamEvent struct {
	data []byte
	err  error
}

// streamReader reads SSE events from a gateway response on its own
// goroutine, so that a test can wait for the next event with a deadline.
type streamReader struct {
	ch chan streamEvent
}

func newStreamReader(body io.Reader) *streamReader {
	sr := &streamReader{ch: make(chan streamEvent, 64)}
	go func() {
		defer close(sr.ch)
		rd := sse.NewReader(body)
		for {
			ev, err := rd.Next()
			if err != nil {
				sr.ch <- streamEvent{err: err}
				return
			}
			sr.ch <- streamEvent{data: ev.Data}
		}
	}()
	return sr
}

// next returns the next event's data, failing when none comes in time.
func (sr *streamReader) next(tb testing.TB) ([]byte, error) {
	tb.Helper()
	select {
	case ev, ok := <-sr.ch:
		if !ok {
			return nil, io.EOF
		}
		return ev.data, ev.err
	case <-time.After(waitTimeout):
		tb.Fatalf("no stream event within %s", waitTimeout)
		return nil, nil
	}
}

// rest reads events until the end of the stream.
func (sr *streamReader) rest(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	for {
		data, err := sr.next(tb)
		if err == io.EOF {
			return out
		}
		if err != nil {
			tb.Fatalf("read stream: %v", err)
		}
		out = append(out, data)
	}
}

// chunkContent returns the content of a chunk's first choice.
func chunkContent(tb testing.TB, data []byte) string {
	tb.Helper()
	var ch openai.Chunk
	if err := json.Unmarshal(data, &ch); err != nil {
		tb.Fatalf("chunk %s: %v", data, err)
	}
	if len(ch.Choices) == 0 {
		return ""
	}
	return ch.Choices[0].Delta.Content
}

// simUpstream is the provider simulator behind an httptest server.
type simUpstream struct {
	*httptest.Server
	sim *sim.Server
}

func newSimUpstream(tb testing.TB) *simUpstream {
	tb.Helper()
	counter, err := tokens.New()
	if err != nil {
		tb.Fatal(err)
	}
	s, err := sim.New(sim.Config{}, counter)
	if err != nil {
		tb.Fatal(err)
	}
	u := &simUpstream{Server: httptest.NewServer(s), sim: s}
	tb.Cleanup(u.Close)
	return u
}
