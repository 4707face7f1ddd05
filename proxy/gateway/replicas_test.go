package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/quota"
	"github.com/tollgate/tollgate/proxy/quota/redistest"
	"github.com/tollgate/tollgate/proxy/sim"
	"github.com/tollgate/tollgate/proxy/sse"
)

// replicaResult is what one client saw of one streamed request.
type replicaResult struct {
	status     int
	errBody    string // the body of an error answer
	retryAfter string
	tokens     int64 // content chunks received; the simulator sends one token each
	notice     string
	done       bool
	err        error
}

// streamOnce sends one streaming chat request and reads the answer to its end.
func streamOnce(ctx context.Context, client *http.Client, url, key, requestID string, maxTokens int) replicaResult {
	body := fmt.Sprintf(`{"model":"gpt-4o-mini","stream":true,"max_tokens":%d,"messages":[{"role":"user","content":"Tell request %s a story."}]}`, maxTokens, requestID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return replicaResult{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", requestID)
	resp, err := client.Do(req)
	if err != nil {
		return replicaResult{err: err}
	}
	defer resp.Body.Close()
	res := replicaResult{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		res.errBody = string(raw)
		return res
	}
	rd := sse.NewReader(resp.Body)
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return res
		}
		if err != nil {
			res.err = err
			return res
		}
		if string(ev.Data) == "[DONE]" {
			res.done = true
			continue
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Tollgate *struct {
				Code string `json:"code"`
			} `json:"tollgate"`
		}
		if err := json.Unmarshal(ev.Data, &ch); err != nil {
			res.err = fmt.Errorf("chunk %s: %w", ev.Data, err)
			return res
		}
		for _, c := range ch.Choices {
			if c.Delta.Content != "" {
				res.tokens++
			}
		}
		if ch.Tollgate != nil {
			res.notice = ch.Tollgate.Code
		}
	}
}

// readEvents decodes the inference-log JSON lines of a stopped gateway.
func readEvents(t *testing.T, path string) []analytics.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("inference log: %v", err)
	}
	defer f.Close()
	var out []analytics.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev analytics.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

// TestReplicasShareTeamBudget is the proof that budgets hold across
// replicas, streaming included: three gateways share one Redis (a single
// server, then a 3-master Redis Cluster), and 200 concurrent streams from
// five keys of team ml race for the team's daily token budget, about a third
// of what they ask for, with stream cut-off on. The total charged must never
// exceed the budget, every admitted request must be charged exactly once and
// exactly what its client received, and the Redis counter must equal the sum
// of the inference log.
func TestReplicasShareTeamBudget(t *testing.T) {
	for _, backend := range []string{"redis", "cluster"} {
		t.Run(backend, func(t *testing.T) { testReplicasShareTeamBudget(t, backend) })
	}
}

func testReplicasShareTeamBudget(t *testing.T, backend string) {
	const (
		replicas  = 3
		requests  = 200
		nKeys     = 5
		maxTokens = 200
		budget    = 15_000 // tokens; the requests ask for about 200 × 212
	)
	qcfg := quota.Config{Backend: quota.BackendRedis, FailMode: quota.FailClosed, CallTimeout: "5s"}
	var rdb redis.UniversalClient
	if backend == "cluster" {
		c := redistest.StartCluster(t)
		qcfg.Redis.Cluster, qcfg.Redis.Addrs = true, c.Addrs
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	} else {
		s := redistest.Start(t)
		qcfg.Redis.Addr = s.Addr
		rdb = redis.NewClient(&redis.Options{Addr: s.Addr})
	}
	t.Cleanup(func() { rdb.Close() })

	counter, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	// Streams last about 200 ms, so that they overlap across replicas.
	simSrv, err := sim.New(sim.Config{TTFT: 5 * time.Millisecond, TokensPerSecond: 1000}, counter)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(simSrv)
	t.Cleanup(hs.Close)

	keys := make([]testKey, nKeys)
	var keyCfg []auth.KeyConfig
	for i := range keys {
		keys[i] = newTestKey(t, "ml", "developer")
		keyCfg = append(keyCfg, keyConfig(keys[i]))
	}
	bundle := bundleWithData(t, "data/budgets/data.json", map[string]any{
		"stream_cutoff": true,
		"keys":          map[string]any{},
		"users":         map[string]any{},
		"teams":         map[string]any{"ml": map[string]any{"day": map[string]any{"tokens": budget}}},
	})
	dir := t.TempDir()
	gws := make([]*e2e, replicas)
	logs := make([]string, replicas)
	for i := range gws {
		cfg, err := Parse([]byte("{}"), "test")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Server.Listen = "127.0.0.1:0"
		cfg.Policy.Bundle = bundle
		cfg.Auth.APIKeys = keyCfg
		cfg.Providers = []provider.Config{{Name: "sim", Kind: "openai", BaseURL: hs.URL + "/v1", Models: []string{"gpt-4o-mini"}, Timeout: "30s"}}
		cfg.Quota = qcfg
		logs[i] = filepath.Join(dir, fmt.Sprintf("replica%d.jsonl", i))
		cfg.Analytics.File = logs[i]
		gws[i] = startGateway(t, cfg, simSrv)
	}

	day := time.Now() // the window the gateways charge
	transport := &http.Transport{MaxIdleConnsPerHost: requests}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport, Timeout: time.Minute}
	results := make([]replicaResult, requests)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			<-start
			results[i] = streamOnce(t.Context(), client, gws[i%replicas].url, keys[i%nKeys].key, fmt.Sprintf("rep-%03d", i), maxTokens)
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)
	for _, g := range gws {
		g.stop(t) // flushes the inference logs
	}

	events := map[string]analytics.Event{}
	for _, path := range logs {
		for _, ev := range readEvents(t, path) {
			if _, dup := events[ev.RequestID]; dup {
				t.Errorf("request %s logged twice", ev.RequestID)
			}
			events[ev.RequestID] = ev
		}
	}
	if len(events) != requests {
		t.Errorf("inference log has %d requests, want %d", len(events), requests)
	}
	var admitted, rejected, cutOff int
	var charged, delivered int64
	for i, res := range results {
		id := fmt.Sprintf("rep-%03d", i)
		if res.err != nil {
			t.Fatalf("%s: %v", id, res.err)
		}
		ev, ok := events[id]
		if !ok {
			t.Errorf("%s: no inference-log event", id)
			continue
		}
		switch res.status {
		case http.StatusOK:
			admitted++
			if !res.done {
				t.Errorf("%s: stream ended without [DONE]", id)
			}
			if res.notice != "" {
				cutOff++
				if res.notice != "budget_exhausted" || !ev.CutOff {
					t.Errorf("%s: notice %q, event cut_off %t; want budget_exhausted and true", id, res.notice, ev.CutOff)
				}
			} else if ev.CutOff {
				t.Errorf("%s: event says cut off, client got no notice", id)
			}
			// Charged exactly what the client received.
			if ev.CompletionTokens != res.tokens {
				t.Errorf("%s: charged %d completion tokens, client received %d", id, ev.CompletionTokens, res.tokens)
			}
			charged += ev.PromptTokens + ev.CompletionTokens
			delivered += res.tokens
		case http.StatusTooManyRequests:
			rejected++
			if res.retryAfter == "" {
				t.Errorf("%s: 429 without Retry-After", id)
			}
			if ev.Status != http.StatusTooManyRequests || ev.CompletionTokens != 0 {
				t.Errorf("%s: event status %d completion %d, want 429 and 0", id, ev.Status, ev.CompletionTokens)
			}
		default:
			t.Errorf("%s: status %d (%s), want 200 or 429", id, res.status, res.errBody)
		}
	}

	l := quota.NewRedis(rdb, quota.RedisConfig{CallTimeout: 5 * time.Second})
	used, err := l.Usage(context.Background(), day, quota.Limit{Scope: "team:ml", Window: quota.Day, Tokens: budget})
	if err != nil {
		t.Fatal(err)
	}
	overshoot := used.Tokens - budget
	t.Logf("%s: %d replicas, %d streams in %s: %d admitted (%.1f%%), %d of them cut off, %d refused with 429; "+
		"team counter %d of budget %d (overshoot %d, %.1f%% used); %d completion tokens delivered",
		backend, replicas, requests, elapsed.Round(time.Millisecond), admitted, 100*float64(admitted)/requests, cutOff, rejected,
		used.Tokens, budget, max(overshoot, 0), 100*float64(used.Tokens)/budget, delivered)
	if overshoot > 0 {
		t.Errorf("team counter %d exceeds the budget %d by %d", used.Tokens, budget, overshoot)
	}
	// No admitted request charged twice, none lost: the shared counter is
	// the sum of the charges the replicas logged.
	if used.Tokens != charged {
		t.Errorf("team counter %d, sum of logged charges %d; want equal", used.Tokens, charged)
	}
	// The budget must bind, through both mechanisms, or the test proves
	// nothing.
	if rejected == 0 || cutOff == 0 || admitted == 0 {
		t.Errorf("admitted %d, cut off %d, refused %d: want all three non-zero", admitted, cutOff, rejected)
	}
}
