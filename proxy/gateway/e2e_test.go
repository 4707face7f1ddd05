package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/analytics/clickhousetest"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/quota"
	"github.com/tollgate/tollgate/proxy/quota/redistest"
	"github.com/tollgate/tollgate/proxy/sim"
)

// testKey is an API key made for a test, with its principal.
type testKey struct {
	key   string
	id    string
	team  string
	roles []string
}

func newTestKey(t *testing.T, team string, roles ...string) testKey {
	t.Helper()
	key, id, _, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return testKey{key: key, id: id, team: team, roles: roles}
}

// bundleWithData copies the default policy library into a folder and adds
// one more data file, so a test can set e.g. a key's token limit.
func bundleWithData(t testing.TB, relPath string, data any) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(policies.FS, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, raw, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
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
	return dir
}

type e2e struct {
	url    string
	sim    *sim.Server
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error
}

// stop shuts the gateway down and waits until its events are flushed.
func (g *e2e) stop(t *testing.T) {
	t.Helper()
	g.cancel()
	<-g.done
	if g.err != nil {
		t.Fatalf("gateway Run: %v", g.err)
	}
}

func startGateway(t testing.TB, cfg *Config, simSrv *sim.Server) *e2e {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	e := &e2e{url: "http://" + l.Addr().String(), sim: simSrv, cancel: cancel, done: make(chan struct{})}
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

func startSim(t testing.TB) (*sim.Server, string) {
	t.Helper()
	counter, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.New(sim.Config{}, counter)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs.URL + "/v1"
}

func keyConfig(k testKey) auth.KeyConfig {
	return auth.KeyConfig{ID: k.id, Hash: auth.HashKey(k.key), Subject: "user-" + k.id, Kind: "user", Team: k.team, Org: "acme", Roles: k.roles}
}

// TestEndToEnd drives the gateway with the official openai-go client through
// the simulator, with quotas in a real Redis and the inference log in a real
// ClickHouse.
func TestEndToEnd(t *testing.T) {
	rds := redistest.Start(t)
	ch := clickhousetest.Start(t)
	simSrv, simURL := startSim(t)

	dev := newTestKey(t, "ml", "developer")
	small := newTestKey(t, "search", "developer")
	analyst := newTestKey(t, "finance", "analyst")
	bundle := bundleWithData(t, "data/quota/e2e.json", map[string]any{
		"keys": map[string]any{small.id: map[string]any{"tokens_per_minute": 60}},
	})

	cfg, err := Parse([]byte("{}"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.MaxBodyBytes = 64 << 10
	cfg.Policy.Bundle = bundle
	cfg.Auth.APIKeys = []auth.KeyConfig{keyConfig(dev), keyConfig(small), keyConfig(analyst)}
	cfg.Providers = []provider.Config{{Name: "sim", Kind: "openai", BaseURL: simURL, Models: []string{"echo", "gpt-4o", "gpt-4o-mini"}, Timeout: "30s"}}
	cfg.Quota = quota.Config{Backend: "redis", FailMode: "closed"}
	cfg.Quota.Redis.Addr = rds.Addr
	cfg.Analytics.ClickHouse = analytics.ClickHouseConfig{Addr: []string{ch.Addr}, Database: "tollgate"}
	cfg.Analytics.Writer.FlushInterval = 50 * time.Millisecond
	gw := startGateway(t, cfg, simSrv)

	client := func(key string) *openai.Client {
		c := openai.NewClient(option.WithBaseURL(gw.url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
		return &c
	}
	ctx := context.Background()
	want := map[string]expectRow{}

	t.Run("non-streaming echo", func(t *testing.T) {
		prompt := "Hello, gateway! Ünïcødé ✓"
		var hr *http.Response
		res, err := client(dev.key).Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "echo",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
		}, option.WithResponseInto(&hr))
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Choices[0].Message.Content; got != prompt {
			t.Fatalf("echo = %q, want %q", got, prompt)
		}
		if res.Usage.PromptTokens == 0 || res.Usage.CompletionTokens == 0 {
			t.Fatalf("usage = %+v, want non-zero", res.Usage)
		}
		want[hr.Header.Get("X-Request-Id")] = expectRow{team: "ml", status: 200, allowed: true, prompt: res.Usage.PromptTokens, completion: res.Usage.CompletionTokens}
	})

	t.Run("streaming", func(t *testing.T) {
		var hr *http.Response
		stream := client(dev.key).Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:         "gpt-4o-mini",
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story.")},
			MaxTokens:     openai.Int(40),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		}, option.WithResponseInto(&hr))
		acc := openai.ChatCompletionAccumulator{}
		chunks := 0
		for stream.Next() {
			acc.AddChunk(stream.Current())
			chunks++
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if chunks < 10 {
			t.Fatalf("got %d chunks, want one per token (at least 10)", chunks)
		}
		if acc.Usage.CompletionTokens != 40 {
			t.Fatalf("completion tokens = %d, want 40 (max_tokens)", acc.Usage.CompletionTokens)
		}
		counter, _ := tokens.New()
		if n := counter.Count("gpt-4o-mini", acc.Choices[0].Message.Content); n != 40 {
			t.Fatalf("streamed text has %d tokens, want 40", n)
		}
		want[hr.Header.Get("X-Request-Id")] = expectRow{team: "ml", status: 200, allowed: true, stream: true, prompt: acc.Usage.PromptTokens, completion: 40}
	})

	t.Run("PII is redacted before the upstream", func(t *testing.T) {
		prompt := "Mail ana.lopez@example.com, card 4111 1111 1111 1111, order 2024-11-25."
		var hr *http.Response
		res, err := client(dev.key).Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "echo",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
		}, option.WithResponseInto(&hr))
		if err != nil {
			t.Fatal(err)
		}
		wantText := "Mail [REDACTED:EMAIL], card [REDACTED:CREDIT_CARD], order 2024-11-25."
		if got := res.Choices[0].Message.Content; got != wantText {
			t.Fatalf("echo = %q, want %q", got, wantText)
		}
		want[hr.Header.Get("X-Request-Id")] = expectRow{team: "ml", status: 200, allowed: true, prompt: res.Usage.PromptTokens, completion: res.Usage.CompletionTokens, pii: "CREDIT_CARD,EMAIL"}
	})

	t.Run("invalid key gets 401", func(t *testing.T) {
		for _, key := range []string{"tg_knope_wrong", dev.key + "x", ""} {
			_, err := client(key).Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    "echo",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			})
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" {
				t.Fatalf("key %q: err = %v, want 401 invalid_api_key", key, err)
			}
			want[apiErr.Response.Header.Get("X-Request-Id")] = expectRow{status: 401}
		}
	})

	t.Run("small token limit gets 429 with Retry-After", func(t *testing.T) {
		params := openai.ChatCompletionNewParams{
			Model:     "echo",
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("count me")},
			MaxTokens: openai.Int(20),
		}
		// The first request reserves its upper bound (prompt + 20) of 60.
		var hr *http.Response
		res, err := client(small.key).Chat.Completions.New(ctx, params, option.WithResponseInto(&hr))
		if err != nil {
			t.Fatal(err)
		}
		want[hr.Header.Get("X-Request-Id")] = expectRow{team: "search", status: 200, allowed: true, prompt: res.Usage.PromptTokens, completion: res.Usage.CompletionTokens}
		var apiErr *openai.Error
		for i := 0; i < 10; i++ {
			res, err = client(small.key).Chat.Completions.New(ctx, params, option.WithResponseInto(&hr))
			if err != nil {
				break
			}
			want[hr.Header.Get("X-Request-Id")] = expectRow{team: "search", status: 200, allowed: true, prompt: res.Usage.PromptTokens, completion: res.Usage.CompletionTokens}
		}
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 {
			t.Fatalf("err = %v, want 429 after the limit of 60 tokens", err)
		}
		ra, perr := strconv.Atoi(apiErr.Response.Header.Get("Retry-After"))
		if perr != nil || ra < 1 || ra > 60 {
			t.Fatalf("Retry-After = %q, want 1..60 seconds", apiErr.Response.Header.Get("Retry-After"))
		}
		if got := apiErr.Response.Header.Get("X-Ratelimit-Limit-Tokens"); got != "60" {
			t.Fatalf("x-ratelimit-limit-tokens = %q, want 60", got)
		}
		if apiErr.Response.Header.Get("X-Ratelimit-Remaining-Tokens") == "" || apiErr.Response.Header.Get("X-Ratelimit-Reset-Tokens") == "" {
			t.Fatalf("missing x-ratelimit headers: %v", apiErr.Response.Header)
		}
		want[apiErr.Response.Header.Get("X-Request-Id")] = expectRow{team: "search", status: 429, denyCode: "rate_limited"}
	})

	// Denied and malformed requests are logged too; raw HTTP shows the
	// status and error shape exactly.
	rawCases := []struct {
		name, key, body string
		status          int
		code            string
		row             expectRow
	}{
		{"model not allowed for role", analyst.key, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, 403, "model_not_allowed", expectRow{team: "finance", status: 403, denyCode: "model_not_allowed"}},
		{"malformed JSON", dev.key, `{"model":"echo","messages":[`, 400, "invalid_request", expectRow{team: "ml", status: 400}},
		{"missing model", dev.key, `{"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request", expectRow{team: "ml", status: 400}},
		{"missing messages", dev.key, `{"model":"echo"}`, 400, "invalid_request", expectRow{team: "ml", status: 400}},
		{"wrong type", dev.key, `{"model":"echo","messages":"hi"}`, 400, "invalid_request", expectRow{team: "ml", status: 400}},
		{"unknown model", dev.key, `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, 404, "model_not_found", expectRow{team: "ml", status: 404}},
		{"oversized body", dev.key, `{"model":"echo","messages":[{"role":"user","content":"` + strings.Repeat("a", 70<<10) + `"}]}`, 413, "request_too_large", expectRow{team: "ml", status: 413}},
	}
	before := simSrv.Requests()
	for _, tc := range rawCases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, gw.url+"/v1/chat/completions", strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+tc.key)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct {
					Message, Type, Code string
				} `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not the OpenAI error shape: %v", err)
			}
			if resp.StatusCode != tc.status || body.Error.Code != tc.code || body.Error.Message == "" || body.Error.Type == "" {
				t.Fatalf("got %d %+v, want %d code %q with a message", resp.StatusCode, body.Error, tc.status, tc.code)
			}
			want[resp.Header.Get("X-Request-Id")] = tc.row
		})
	}
	if after := simSrv.Requests(); after != before {
		t.Fatalf("bad requests reached the upstream: %d calls, want 0", after-before)
	}

	gw.stop(t)
	checkInferenceLog(t, ch.Addr, want)
	checkDecisionLog(t, ch.Addr, want)
	checkNoPIIStored(t, ch.Addr, []string{"ana.lopez@example.com", "4111 1111 1111 1111", "4111111111111111"})
}

// checkDecisionLog checks that every request that reached the policy has
// exactly one decision-log row, with the same verdict as its inference row.
func checkDecisionLog(t *testing.T, addr string, want map[string]expectRow) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(context.Background(), `SELECT request_id, allowed, arrayStringConcat(deny_codes, ','), bundle_revision, team
		FROM tollgate.decision_log FINAL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]bool{}
	for rows.Next() {
		var id, deny, rev, team string
		var allowed uint8
		if err := rows.Scan(&id, &allowed, &deny, &rev, &team); err != nil {
			t.Fatal(err)
		}
		got[id] = true
		w, ok := want[id]
		if !ok {
			t.Errorf("decision_log row %s belongs to no request of the test", id)
			continue
		}
		// Quota refusals happen after an allowing decision.
		wantAllowed := w.allowed || w.denyCode == "rate_limited"
		if (allowed == 1) != wantAllowed || rev == "" || team != w.team {
			t.Errorf("decision_log %s: allowed=%d deny=%q rev=%q team=%q, want allowed=%v team %q", id, allowed, deny, rev, team, wantAllowed, w.team)
		}
		if w.denyCode == "model_not_allowed" && deny != "model_not_allowed" {
			t.Errorf("decision_log %s: deny codes %q, want model_not_allowed", id, deny)
		}
	}
	for id, w := range want {
		reached := w.allowed || w.denyCode == "rate_limited" || w.denyCode == "model_not_allowed"
		if reached && !got[id] {
			t.Errorf("request %s (%+v) reached the policy but has no decision_log row", id, w)
		}
		if !reached && got[id] {
			t.Errorf("request %s (%+v) never reached the policy but has a decision_log row", id, w)
		}
	}
}

// checkNoPIIStored dumps both log tables as text and looks for the raw
// values the test sent.
func checkNoPIIStored(t *testing.T, addr string, values []string) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	for _, table := range []string{"tollgate.inference_log", "tollgate.decision_log"} {
		out, err := exec.Command("clickhouse-client", "--host", "127.0.0.1", "--port", port, "--query", "SELECT * FROM "+table+" FORMAT TSV").CombinedOutput()
		if err != nil {
			t.Fatalf("dump %s: %v: %s", table, err, out)
		}
		if len(out) == 0 {
			t.Fatalf("dump %s: empty", table)
		}
		for _, v := range values {
			if strings.Contains(string(out), v) {
				t.Errorf("%s holds the raw value %q", table, v)
			}
		}
	}
}

type expectRow struct {
	team               string
	status             int
	allowed            bool
	stream             bool
	denyCode           string
	prompt, completion int64
	pii                string
}

func checkInferenceLog(t *testing.T, addr string, want map[string]expectRow) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(context.Background(), `SELECT request_id, team, status, allowed, stream, deny_code,
		prompt_tokens, completion_tokens, arrayStringConcat(pii_types, ','), bundle_revision, cost_usd
		FROM tollgate.inference_log FINAL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]expectRow{}
	for rows.Next() {
		var (
			id, team, deny, pii, rev string
			status                   uint16
			allowed, stream          uint8
			prompt, completion       uint32
			cost                     float64
		)
		if err := rows.Scan(&id, &team, &status, &allowed, &stream, &deny, &prompt, &completion, &pii, &rev, &cost); err != nil {
			t.Fatal(err)
		}
		if rev == "" {
			t.Errorf("row %s has no bundle revision", id)
		}
		if status == 200 && cost <= 0 {
			t.Errorf("row %s: cost %v, want > 0 for a served request", id, cost)
		}
		got[id] = expectRow{team: team, status: int(status), allowed: allowed == 1, stream: stream == 1, denyCode: deny, prompt: int64(prompt), completion: int64(completion), pii: pii}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("request %s missing from tollgate.inference_log", id)
			continue
		}
		if g != w {
			t.Errorf("request %s: row %+v, want %+v", id, g, w)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("unexpected row %s: %+v", id, g)
		}
	}
}

func jsonBody(s string) *strings.Reader { return strings.NewReader(s) }
