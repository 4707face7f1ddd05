package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/policies"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startLoggedGateway is startGateway with the given logger.
func startLoggedGateway(t *testing.T, cfg *Config, log *slog.Logger) *e2e {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	e := &e2e{url: "http://" + l.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() {
		e.err = g.Run(ctx, l)
		close(e.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-e.done
	})
	return e
}

// writeBundleData replaces or adds one JSON data file in a bundle folder.
func writeBundleData(t *testing.T, dir, relPath string, data any) {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, relPath)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// libraryData decodes a data file of the default policy library.
func libraryData(t *testing.T, relPath string) map[string]any {
	t.Helper()
	raw, err := fs.ReadFile(policies.FS, relPath)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", relPath, err)
	}
	return m
}

// piiNeedles returns the strings whose presence would show that value
// leaked: the value, its JSON-escaped forms, its digits without separators
// (cards, IBANs, phones, SSNs written as one number), and each body line of
// a multi-line value (a PEM block logged line by line).
func piiNeedles(value string) []string {
	out := []string{value}
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	raw, _ := json.Marshal(value)
	add(string(raw[1 : len(raw)-1]))
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(value)
	add(strings.TrimSuffix(strings.TrimSpace(b.String()), `"`)[1:])
	d := strings.NewReplacer(" ", "", "-", "", ".", "", "(", "", ")", "", "+", "").Replace(value)
	if len(d) >= 9 && d != value && strings.Trim(d, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") == "" {
		add(d)
	}
	for _, line := range regexp.MustCompile(`\r?\n|\\r\\n|\\n`).Split(value, -1) {
		if line = strings.TrimSpace(line); len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			add(line)
		}
	}
	return out
}

// leakCheck looks for needles in a named text.
type leakCheck struct {
	t       *testing.T
	needles map[string]string // needle -> the corpus value it stands for
}

// none reports every needle found in text.
func (c *leakCheck) none(where, text string) {
	c.t.Helper()
	found := 0
	for n, v := range c.needles {
		if strings.Contains(text, n) {
			found++
			if found <= 10 {
				c.t.Errorf("%s holds %q (from the corpus value %q)", where, n, v)
			}
		}
	}
	if found > 10 {
		c.t.Errorf("%s holds %d values in all", where, found)
	}
}

// TestGatewayPIILeak runs the corpus through a gateway that logs at debug
// level into a buffer, stores prompts and responses of team "corpus" (after
// masking) and writes both event logs as JSON lines, and blocks every PII
// type for team "strict". It then asserts that no corpus value appears in
// the process log, the inference log, the decision log, /metrics, or the
// error messages of blocked and malformed requests. The stored prompts and
// responses may hold only what the gateway forwarded to the model: a value
// the detectors missed is reported by TestGatewayPIICorpus, not here.
func TestGatewayPIILeak(t *testing.T) {
	samples := loadGatewayCorpus(t)
	key := newTestKey(t, "corpus", "developer")
	strict := newTestKey(t, "strict", "developer")
	bundle := bundleWithData(t, "data/quota/corpus.json", unlimitedKeys(key, strict))
	piiData := libraryData(t, "data/pii/data.json")
	blockAll := map[string]any{}
	for _, typ := range pii.BuiltinTypes() {
		blockAll[typ] = "block"
	}
	piiData["teams"] = map[string]any{"strict": blockAll}
	writeBundleData(t, bundle, "data/pii/data.json", piiData)
	logData := libraryData(t, "data/log/data.json")
	logData["store_prompt"] = map[string]any{"default": false, "teams": map[string]any{"corpus": true}}
	writeBundleData(t, bundle, "data/log/data.json", logData)

	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	gw := startCorpusGateway(t, bundle, dir, key, []testKey{strict}, func(cfg *Config) *e2e {
		return startLoggedGateway(t, cfg, log)
	})
	strictClient := newCorpusClient(gw.url, strict.key, gw.http)
	ctx := t.Context()

	needles := map[string]string{}
	var positives []corpusSample
	for _, s := range samples {
		for _, v := range s.Values {
			for _, n := range piiNeedles(v) {
				needles[n] = v
			}
		}
		if len(s.Values) > 0 {
			positives = append(positives, s)
		}
	}
	// Credentials are never logged either.
	needles[key.key], needles[strict.key] = "API key of team corpus", "API key of team strict"
	check := &leakCheck{t: t, needles: needles}
	requests := 0 // chat requests sent, each one inference-log event

	// 1. The corpus, JSON and streamed, for team corpus (prompts stored).
	results := echoCorpus(ctx, gw.client, samples)
	requests += 2 * len(samples)
	var forwarded strings.Builder
	exact := map[int]bool{} // line -> echoed exactly as expected
	found := map[int]bool{} // line -> the gateway masked something
	for i, r := range results {
		s := samples[i]
		if r.jsonErr != nil || r.streamErr != nil {
			t.Fatalf("line %d: request failed: json: %v; stream: %v", s.Line, r.jsonErr, r.streamErr)
		}
		forwarded.WriteString(r.json + "\n" + r.stream + "\n")
		want, _ := expectedEcho(s)
		exact[s.Line] = r.json == want && r.stream == want
		found[s.Line] = r.json != s.Text
	}

	// 2. Team strict blocks every type: each positive is refused with a
	// message that names its types and none of its values, before any
	// upstream call; near-misses pass.
	before := gw.sim.Requests()
	blocked := make([]error, 2*len(positives))
	var wg sync.WaitGroup
	next := make(chan int)
	for range corpusWorkers {
		wg.Go(func() {
			for i := range next {
				s := positives[i/2]
				if i%2 == 0 {
					_, blocked[i] = echoJSON(ctx, strictClient, s.Text)
				} else {
					_, blocked[i] = echoStream(ctx, strictClient, s.Text)
				}
			}
		})
	}
	for i := range blocked {
		next <- i
	}
	close(next)
	wg.Wait()
	requests += len(blocked)
	passed := 0
	for _, err := range blocked {
		if err == nil {
			passed++
		}
	}
	if got := gw.sim.Requests() - before; got != int64(passed) {
		t.Errorf("team strict: the upstream got %d requests, want %d (only the %d not blocked)", got, passed, passed)
	}
	for i, err := range blocked {
		s := positives[i/2]
		var apiErr *openai.Error
		if !exact[s.Line] {
			// A detector miss (see TestGatewayPIICorpus) is not blocked,
			// or is blocked under another type; only the message is
			// checked for values.
			if errors.As(err, &apiErr) {
				check.none(fmt.Sprintf("error message for line %d", s.Line), apiErr.Message+"\n"+apiErr.RawJSON())
			}
			continue
		}
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != "pii_blocked" {
			t.Errorf("line %d (stream=%v): err = %v, want 400 pii_blocked", s.Line, i%2 == 1, err)
			continue
		}
		for _, typ := range s.Types {
			if !strings.Contains(apiErr.Message, typ) {
				t.Errorf("line %d: message %q does not name the blocked type %s", s.Line, apiErr.Message, typ)
			}
		}
		check.none(fmt.Sprintf("pii_blocked message for line %d", s.Line), apiErr.Message+"\n"+apiErr.RawJSON())
	}
	for _, s := range samples {
		if len(s.Values) > 0 {
			continue
		}
		requests++
		if got, err := echoJSON(ctx, strictClient, s.Text); err != nil || got != s.Text {
			t.Errorf("line %d: team strict: echo %q, err %v; want the near-miss unchanged", s.Line, got, err)
		}
	}

	// 3. Refused and malformed requests with PII in their bodies: the
	// error messages must not quote it.
	email, card, jwt, apiKey := "jane.doe@example.com", "4111 1111 1111 1111", "", ""
	for _, s := range samples {
		for i, typ := range s.Types {
			switch typ {
			case pii.JWT:
				jwt = s.Values[i]
			case pii.APIKey:
				if apiKey == "" {
					apiKey = s.Values[i]
				}
			}
		}
	}
	for _, v := range []string{email, card, jwt, apiKey} {
		if _, ok := needles[v]; !ok {
			t.Fatalf("%q is not a corpus value", v)
		}
	}
	bad := []struct {
		name, key, body string
	}{
		{"truncated JSON", key.key, `{"model":"echo","messages":[{"role":"user","content":"mail ` + email + `"`},
		{"content of a wrong type", key.key, `{"model":"echo","messages":[{"role":"user","content":{"card":"` + card + `"}}]}`},
		{"max_tokens as a string", key.key, `{"model":"echo","max_tokens":"` + card + `","messages":[{"role":"user","content":"hi"}]}`},
		{"API key as the credential", apiKey, `{"model":"echo","messages":[{"role":"user","content":"hi"}]}`},
		{"JWT as the credential", jwt, `{"model":"echo","messages":[{"role":"user","content":"hi"}]}`},
		{"too large", key.key, `{"model":"echo","messages":[{"role":"user","content":"` + email + strings.Repeat(" pad", 1<<20) + `"}]}`},
	}
	for _, tc := range bad {
		requests++
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.url+"/v1/chat/completions", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tc.key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := gw.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Message, Code string } `json:"error"`
		}
		if err := json.Unmarshal(raw, &body); err != nil || resp.StatusCode < 400 || resp.StatusCode >= 500 || body.Error.Message == "" {
			t.Errorf("%s: got %d %s, want a 4xx OpenAI error with a message", tc.name, resp.StatusCode, raw)
			continue
		}
		t.Logf("%s: %d %s: %s", tc.name, resp.StatusCode, body.Error.Code, body.Error.Message)
		check.none(tc.name+" error response", string(raw))
	}

	// 4. /metrics, then stop: Run returns after both event logs are flushed.
	resp, err := gw.http.Get(gw.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(metrics, []byte("tollgate_")) {
		t.Fatalf("/metrics: %d, %v, %d bytes; want 200 with tollgate_ metrics", resp.StatusCode, err, len(metrics))
	}
	gw.stop(t)

	check.none("/metrics", string(metrics))
	check.none("the process log", logs.String())

	events := readEvents(t, filepath.Join(dir, "events.jsonl"))
	if len(events) != requests {
		t.Errorf("inference log has %d events, want one per request (%d)", len(events), requests)
	}
	stored, piiEvents := 0, 0
	var withoutText bytes.Buffer
	storedText := map[string]string{} // request id -> stored prompt and response
	for _, ev := range events {
		if ev.Prompt != "" {
			stored++
			storedText[ev.RequestID] = ev.Prompt + "\n" + ev.Response
		}
		if len(ev.PIITypes) > 0 {
			piiEvents++
		}
		ev.Prompt, ev.Response = "", ""
		raw, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		withoutText.Write(raw)
		withoutText.WriteByte('\n')
	}
	if stored < 2*len(samples) {
		t.Errorf("%d events store a prompt, want at least %d (store_prompt is on for team corpus)", stored, 2*len(samples))
	}
	want := 0
	for _, s := range samples {
		if found[s.Line] {
			want += 4 // team corpus and team strict, JSON and streamed
		}
	}
	if piiEvents != want {
		t.Errorf("%d events name PII types, want %d (four per sample the gateway masked)", piiEvents, want)
	}
	// The file itself, not only what analytics.Event decodes.
	rawEvents, err := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	check.none("the inference log (without stored prompts)", withoutText.String())

	// Stored prompts and responses may hold exactly what reached the
	// model; every value the gateway masked must be absent from them, and
	// from the raw file.
	masked := &leakCheck{t: t, needles: map[string]string{}}
	fwd := forwarded.String()
	excluded := map[string]bool{}
	for n, v := range needles {
		if strings.Contains(fwd, n) {
			excluded[v] = true
			continue
		}
		masked.needles[n] = v
	}
	values := map[string]bool{}
	for _, v := range needles {
		values[v] = true
	}
	t.Logf("%d of %d corpus values have a needle (the value, its bare digits, a line of it) in text the model received (a detector miss, or a substring of a near-miss): %v; the stored prompts are checked for the other %d needles",
		len(excluded), len(values), slices.Sorted(maps.Keys(excluded)), len(masked.needles))
	var all strings.Builder
	for _, s := range storedText {
		all.WriteString(s)
	}
	masked.none("the stored prompts and responses", all.String())
	masked.none("the inference-log file", string(rawEvents))

	rawDecisions, err := os.ReadFile(filepath.Join(dir, "events.decisions.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	decisions := 0
	for _, line := range bytes.Split(bytes.TrimSpace(rawDecisions), []byte("\n")) {
		var d analytics.DecisionEvent
		if err := json.Unmarshal(line, &d); err != nil {
			t.Fatalf("decision log: %v", err)
		}
		decisions++
	}
	if want := 2*len(samples) + 2*len(positives) + (len(samples) - len(positives)); decisions != want {
		t.Errorf("decision log has %d rows, want one per request that reached the policy (%d)", decisions, want)
	}
	check.none("the decision log", string(rawDecisions))
	t.Logf("checked %d needles: %d requests, %d inference events (%d with stored prompts), %d decisions, %d bytes of process log, %d bytes of /metrics",
		len(needles), requests, len(events), stored, decisions, len(logs.String()), len(metrics))
}
