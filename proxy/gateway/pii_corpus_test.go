package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"

	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/sim"
)

// gatewayCorpusPath is the labelled corpus of issue 9's proof: one JSON
// object a line, {"text", "types", "values", "note"}. types[i] is the type of
// values[i], and the values occur in text in that order; a near-miss has no
// values and a note naming its kind ("luhn-invalid", "version", ...).
const gatewayCorpusPath = "../../engine/pii/testdata/gateway_corpus.jsonl"

// Thresholds of issue 9: share of the values of each type that come back as
// [REDACTED:TYPE], and share of the near-misses that come back unchanged.
const (
	minRecall    = 0.98
	minUnchanged = 0.98
)

// corpusWorkers bounds the requests in flight; the machine is small.
const corpusWorkers = 4

// corpusSample is one line of the corpus.
type corpusSample struct {
	Line   int      `json:"-"`
	Text   string   `json:"text"`
	Types  []string `json:"types"`
	Values []string `json:"values"`
	Note   string   `json:"note,omitempty"`
}

// loadGatewayCorpus reads and checks the corpus: every value occurs in the
// text in order, every type is built in, and the corpus is as large as the
// issue asks (300 samples, 100 near-misses, every type present).
func loadGatewayCorpus(t testing.TB) []corpusSample {
	t.Helper()
	f, err := os.Open(gatewayCorpusPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	known := pii.BuiltinTypes()
	perType := map[string]int{}
	var out []corpusSample
	negatives := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		s := corpusSample{Line: n}
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("%s:%d: %v", gatewayCorpusPath, n, err)
		}
		if len(s.Types) != len(s.Values) {
			t.Fatalf("%s:%d: %d types for %d values, want one type per value", gatewayCorpusPath, n, len(s.Types), len(s.Values))
		}
		if len(s.Values) == 0 {
			negatives++
			if s.Note == "" {
				t.Fatalf("%s:%d: near-miss without a note naming its kind", gatewayCorpusPath, n)
			}
		}
		pos := 0
		for i, v := range s.Values {
			if !slices.Contains(known, s.Types[i]) {
				t.Fatalf("%s:%d: type %q is not built in (want one of %v)", gatewayCorpusPath, n, s.Types[i], known)
			}
			k := strings.Index(s.Text[pos:], v)
			if v == "" || k < 0 {
				t.Fatalf("%s:%d: value %q is not in the text after byte %d", gatewayCorpusPath, n, v, pos)
			}
			pos += k + len(v)
			perType[s.Types[i]]++
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 300 || negatives < 100 {
		t.Fatalf("corpus has %d samples and %d near-misses, want at least 300 and 100", len(out), negatives)
	}
	for _, typ := range known {
		if perType[typ] < 10 {
			t.Fatalf("corpus has %d values of %s, want at least 10", perType[typ], typ)
		}
	}
	return out
}

// expectedEcho returns the text with each value replaced by its
// [REDACTED:TYPE] label, and the byte span of every label in the result.
func expectedEcho(s corpusSample) (string, [][2]int) {
	var b strings.Builder
	spans := make([][2]int, len(s.Values))
	pos := 0
	for i, v := range s.Values {
		k := pos + strings.Index(s.Text[pos:], v)
		b.WriteString(s.Text[pos:k])
		spans[i][0] = b.Len()
		b.WriteString(pii.RedactLabel(s.Types[i]))
		spans[i][1] = b.Len()
		pos = k + len(v)
	}
	b.WriteString(s.Text[pos:])
	return b.String(), spans
}

// labelContext is how many bytes of text on each side of a label must come
// back unchanged for the value to count as masked exactly.
const labelContext = 8

// maskedExactly reports whether value i of s came back as its label in
// place: the label with up to labelContext bytes of the neighbouring text
// (not crossing into another label) occurs in got as often as in the
// expected echo, anchored when it reaches the start or end of the text. A
// finding that is too short ("o'[REDACTED:EMAIL]"), too long, or of
// another type does not count.
func maskedExactly(want string, spans [][2]int, i int, got string) bool {
	lo, hi := spans[i][0]-labelContext, spans[i][1]+labelContext
	if i > 0 {
		lo = max(lo, spans[i-1][1])
	}
	if i+1 < len(spans) {
		hi = min(hi, spans[i+1][0])
	}
	lo, hi = max(lo, 0), min(hi, len(want))
	w := want[lo:hi]
	switch {
	case lo == 0 && hi == len(want):
		return got == w
	case lo == 0:
		return strings.HasPrefix(got, w)
	case hi == len(want):
		return strings.HasSuffix(got, w)
	}
	return strings.Count(got, w) >= strings.Count(want, w)
}

// typeScore counts, for one PII type, the corpus values, those masked
// exactly, and the labels of that type the gateway returned.
type typeScore struct {
	values, masked, labels int
}

func (s typeScore) recall() float64 { return ratio(s.masked, s.values) }

func (s typeScore) precision() float64 { return ratio(s.masked, s.labels) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// corpusScore scores one pass of the corpus (streaming or not).
type corpusScore struct {
	types              map[string]*typeScore
	negatives, intact  int
	positives, exact   int
	missed, overmasked []string // descriptions of samples not echoed as expected
}

func newCorpusScore() *corpusScore {
	sc := &corpusScore{types: map[string]*typeScore{}}
	for _, typ := range pii.BuiltinTypes() {
		sc.types[typ] = &typeScore{}
	}
	return sc
}

// add scores the echo got of sample s.
func (sc *corpusScore) add(s corpusSample, got string) {
	for typ, ts := range sc.types {
		ts.labels += strings.Count(got, pii.RedactLabel(typ))
	}
	if len(s.Values) == 0 {
		sc.negatives++
		if got == s.Text {
			sc.intact++
		} else {
			sc.overmasked = append(sc.overmasked, fmt.Sprintf("line %d (%s): %q came back as %q", s.Line, s.Note, s.Text, got))
		}
		return
	}
	sc.positives++
	want, spans := expectedEcho(s)
	if got == want {
		sc.exact++
	}
	var missed []string
	for i, typ := range s.Types {
		ts := sc.types[typ]
		ts.values++
		if maskedExactly(want, spans, i, got) {
			ts.masked++
		} else {
			missed = append(missed, fmt.Sprintf("%s %q", typ, s.Values[i]))
		}
	}
	if len(missed) > 0 || got != want {
		sc.missed = append(sc.missed, fmt.Sprintf("line %d: %q came back as %q; not masked exactly: %v", s.Line, s.Text, got, missed))
	}
}

// report logs the per-type table and checks the thresholds.
func (sc *corpusScore) report(t *testing.T, mode string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s: PII corpus through the gateway (echo model)\n", mode)
	fmt.Fprintf(&b, "  %-15s %6s %6s %6s %7s %9s\n", "type", "values", "masked", "labels", "recall", "precision")
	tv, tm, tl := 0, 0, 0
	for _, typ := range pii.BuiltinTypes() {
		ts := sc.types[typ]
		tv, tm, tl = tv+ts.values, tm+ts.masked, tl+ts.labels
		fmt.Fprintf(&b, "  %-15s %6d %6d %6d %7.3f %9.3f\n", typ, ts.values, ts.masked, ts.labels, ts.recall(), ts.precision())
	}
	all := typeScore{values: tv, masked: tm, labels: tl}
	fmt.Fprintf(&b, "  %-15s %6d %6d %6d %7.3f %9.3f\n", "all", tv, tm, tl, all.recall(), all.precision())
	fmt.Fprintf(&b, "  near-misses unchanged: %d of %d (%.3f); positive samples echoed exactly: %d of %d (%.3f)",
		sc.intact, sc.negatives, ratio(sc.intact, sc.negatives), sc.exact, sc.positives, ratio(sc.exact, sc.positives))
	t.Log(b.String())
	for _, m := range sc.missed {
		t.Logf("%s: missed: %s", mode, m)
	}
	for _, m := range sc.overmasked {
		t.Logf("%s: near-miss changed: %s", mode, m)
	}
	for _, typ := range pii.BuiltinTypes() {
		if r := sc.types[typ].recall(); r < minRecall {
			t.Errorf("%s: recall of %s = %.3f (%d of %d), want >= %.2f", mode, typ, r, sc.types[typ].masked, sc.types[typ].values, minRecall)
		}
	}
	if u := ratio(sc.intact, sc.negatives); u < minUnchanged {
		t.Errorf("%s: near-misses unchanged = %.3f (%d of %d), want >= %.2f", mode, u, sc.intact, sc.negatives, minUnchanged)
	}
}

// corpusGateway is a running gateway with the simulator, and a client key
// whose token limit the corpus cannot exhaust.
type corpusGateway struct {
	*e2e
	sim    *sim.Server
	client *openai.Client
	http   *http.Client
	key    testKey
}

// startCorpusGateway starts a gateway on the policy library plus the given
// bundle, with events to JSON lines under dir; the key belongs to team
// "corpus". A nil start uses startGateway (logs discarded).
func startCorpusGateway(t *testing.T, bundle, dir string, key testKey, extraKeys []testKey, start func(*Config) *e2e) *corpusGateway {
	t.Helper()
	simSrv, simURL := startSim(t)
	cfg, err := Parse([]byte("{}"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Policy.Bundle = bundle
	cfg.Auth.APIKeys = []auth.KeyConfig{keyConfig(key)}
	for _, k := range extraKeys {
		cfg.Auth.APIKeys = append(cfg.Auth.APIKeys, keyConfig(k))
	}
	cfg.Providers = []provider.Config{{Name: "sim", Kind: "openai", BaseURL: simURL, Models: []string{"echo"}, Timeout: "30s"}}
	cfg.Analytics.File = dir + "/events.jsonl"
	cfg.Analytics.Writer.FlushInterval = 50 * time.Millisecond
	var gw *e2e
	if start != nil {
		gw = start(cfg)
	} else {
		gw = startGateway(t, cfg, simSrv)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: corpusWorkers}}
	t.Cleanup(hc.CloseIdleConnections)
	return &corpusGateway{e2e: gw, sim: simSrv, http: hc, key: key, client: newCorpusClient(gw.url, key.key, hc)}
}

func newCorpusClient(url, key string, hc *http.Client) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0), option.WithHTTPClient(hc))
	return &c
}

// unlimitedKeys is policy data that lifts the token limit of the keys, so
// that hundreds of requests within a minute are never refused.
func unlimitedKeys(keys ...testKey) map[string]any {
	m := map[string]any{}
	for _, k := range keys {
		m[k.id] = map[string]any{"tokens_per_minute": 1_000_000_000}
	}
	return map[string]any{"keys": m}
}

// echoResult is what one sample came back as, streaming and not, or the
// errors of the two calls.
type echoResult struct {
	json, stream       string
	jsonErr, streamErr error
}

// echoCorpus sends every sample as the user message to the echo model, once
// as JSON and once streamed, with corpusWorkers requests in flight.
func echoCorpus(ctx context.Context, client *openai.Client, samples []corpusSample) []echoResult {
	out := make([]echoResult, len(samples))
	next := make(chan int)
	var wg sync.WaitGroup
	for range corpusWorkers {
		wg.Go(func() {
			for i := range next {
				out[i].json, out[i].jsonErr = echoJSON(ctx, client, samples[i].Text)
				out[i].stream, out[i].streamErr = echoStream(ctx, client, samples[i].Text)
			}
		})
	}
	for i := range samples {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func echoParams(text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    "echo",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)},
	}
}

func echoJSON(ctx context.Context, client *openai.Client, text string) (string, error) {
	res, err := client.Chat.Completions.New(ctx, echoParams(text))
	if err != nil {
		return "", err
	}
	if len(res.Choices) != 1 {
		return "", fmt.Errorf("got %d choices, want 1", len(res.Choices))
	}
	return res.Choices[0].Message.Content, nil
}

func echoStream(ctx context.Context, client *openai.Client, text string) (string, error) {
	stream := client.Chat.Completions.NewStreaming(ctx, echoParams(text))
	defer stream.Close()
	var b strings.Builder
	for stream.Next() {
		for _, c := range stream.Current().Choices {
			b.WriteString(c.Delta.Content)
		}
	}
	return b.String(), stream.Err()
}

// TestGatewayPIICorpus is issue 9's proof of detection quality: every corpus
// sample goes through the real gateway to the simulator's echo model, as
// JSON and as a stream, with the default policy (every type redacted). The
// echo is what the provider saw. Per type it reports recall (values that
// came back as [REDACTED:TYPE] in place) and precision (such labels that
// stand for a corpus value of that type), and the share of near-misses that
// came back unchanged.
func TestGatewayPIICorpus(t *testing.T) {
	samples := loadGatewayCorpus(t)
	key := newTestKey(t, "corpus", "developer")
	bundle := bundleWithData(t, "data/quota/corpus.json", unlimitedKeys(key))
	gw := startCorpusGateway(t, bundle, t.TempDir(), key, nil, nil)

	start := time.Now()
	results := echoCorpus(t.Context(), gw.client, samples)
	took := time.Since(start)

	jsonScore, streamScore := newCorpusScore(), newCorpusScore()
	for i, s := range samples {
		r := results[i]
		if r.jsonErr != nil || r.streamErr != nil {
			t.Fatalf("line %d: request failed: json: %v; stream: %v", s.Line, r.jsonErr, r.streamErr)
		}
		if r.stream != r.json {
			t.Errorf("line %d: streamed echo %q differs from the JSON echo %q", s.Line, r.stream, r.json)
		}
		jsonScore.add(s, r.json)
		streamScore.add(s, r.stream)
	}
	t.Logf("%d samples, %d requests in %s", len(samples), 2*len(samples), took.Round(time.Millisecond))
	jsonScore.report(t, "json")
	streamScore.report(t, "stream")
}
