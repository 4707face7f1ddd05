package provider

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/anthropicapi"
	"github.com/tollgate/tollgate/proxy/provider/gemini"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := []Config{
		{Name: "a", Kind: KindOpenAI, BaseURL: "https://api.openai.com/v1", Models: []string{"m"}},
		{Name: "a", Kind: KindAzure, BaseURL: "https://r.openai.azure.com", APIVersion: "2024-10-21", Models: []string{"m"}, Deployments: map[string]string{"m": "dep"}},
		{Name: "a", Kind: KindAnthropic, Models: []string{"m"}},
		{Name: "a", Kind: KindGemini, Models: []string{"m"}},
		{Name: "a", Kind: KindVertex, Project: "p", Location: "europe-west4", Models: []string{"m"}},
	}
	for _, c := range ok {
		if err := c.Validate(0); err != nil {
			t.Errorf("%s: got %v, want valid", c.Kind, err)
		}
	}
	bad := []struct {
		c    Config
		want []string
	}{
		{Config{Kind: "bedrock"}, []string{"providers[3].name", "providers[3].kind", "providers[3].models"}},
		{Config{Name: "a", Kind: KindOpenAI, Models: []string{"m"}}, []string{"providers[3].base_url"}},
		{Config{Name: "a", Kind: KindAzure, BaseURL: "https://x", Models: []string{"m"}, Deployments: map[string]string{"m": "a/b"}}, []string{"providers[3].api_version", "providers[3].deployments.m"}},
		{Config{Name: "a", Kind: KindVertex, Models: []string{"m"}}, []string{"providers[3].project", "providers[3].location"}},
		{Config{Name: "a", Kind: KindVertex, Project: "p", Location: "us/../x", Models: []string{"m"}}, []string{"providers[3].location"}},
		{Config{Name: "a", Kind: KindAnthropic, BaseURL: "ftp://x", Models: []string{"m"}, MaxTokens: -1, Timeout: "soon", APIKeyEnv: "A", APIKeyFile: "B"}, []string{"providers[3].base_url", "providers[3].max_tokens", "providers[3].timeout", "api_key_env or api_key_file"}},
	}
	for _, tc := range bad {
		err := tc.c.Validate(3)
		if err == nil {
			t.Errorf("%+v: got nil, want errors", tc.c)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: got %v, want it to mention %s", tc.c, err, w)
			}
		}
	}
	if _, err := NewOpenAI(Config{Name: "a", Kind: KindAnthropic, Models: []string{"m"}}, nil); err == nil || !strings.Contains(err.Error(), "provider.New") {
		t.Errorf("NewOpenAI for an anthropic config: got %v, want an error pointing to provider.New", err)
	}
}

func TestCredentials(t *testing.T) {
	const secret = "sk-very-secret-value"
	t.Setenv("TOLLGATE_TEST_KEY", secret)
	p, err := New(Config{Name: "a", Kind: KindAnthropic, APIKeyEnv: "TOLLGATE_TEST_KEY", Models: []string{"m"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("provider", "provider", p)
	a := p.(*Anthropic)
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %s", p, p, p, p), fmt.Sprintf("%+v %#v", *a, *a), logged.String()} {
		if strings.Contains(s, secret) {
			t.Errorf("the key leaked: %s", s)
		}
	}
	if !strings.Contains(logged.String(), "redacted from env TOLLGATE_TEST_KEY") {
		t.Errorf("log %s: want the credential's source, redacted", logged.String())
	}
	if a.cred.get() != secret {
		t.Error("credential value not loaded")
	}

	t.Setenv("TOLLGATE_TEST_EMPTY", "")
	if _, err := New(Config{Name: "a", Kind: KindGemini, APIKeyEnv: "TOLLGATE_TEST_EMPTY", Models: []string{"m"}}, nil); err == nil || !strings.Contains(err.Error(), "TOLLGATE_TEST_EMPTY") {
		t.Errorf("empty env: got %v, want an error naming the variable", err)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if _, err := New(Config{Name: "a", Kind: KindVertex, Project: "p", Location: "l", APIKeyFile: file, Models: []string{"m"}}, nil); err == nil {
		t.Error("missing file: got nil error")
	}
	if err := os.WriteFile(file, []byte("token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadCredential("a", "", file)
	if err != nil || c.get() != "token-1" {
		t.Fatalf("file credential: %q, %v; want token-1", c.get(), err)
	}
	// A rotated token is picked up at the next check.
	if err := os.WriteFile(file, []byte("token-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Minute)
	if err := os.Chtimes(file, future, future); err != nil {
		t.Fatal(err)
	}
	c.checked = time.Time{}
	if got := c.get(); got != "token-2" {
		t.Errorf("after rotation: got %q, want token-2", got)
	}
	// An unreadable file keeps the last good value.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	c.checked = time.Time{}
	if got := c.get(); got != "token-2" {
		t.Errorf("after removal: got %q, want the last good token-2", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		h    http.Header
		want time.Duration
		ok   bool
	}{
		{http.Header{"Retry-After": {"3"}}, 3 * time.Second, true},
		{http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond, true},
		{http.Header{"Retry-After": {"3"}, "Retry-After-Ms": {"1200"}}, 1200 * time.Millisecond, true},
		{http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second, true},
		{http.Header{"Retry-After": {now.Add(-time.Hour).Format(http.TimeFormat)}}, 0, true},
		{http.Header{"Retry-After": {"-1"}}, 0, false},
		{http.Header{"Retry-After": {"soon"}}, 0, false},
		{http.Header{}, 0, false},
	}
	for _, tc := range tests {
		got, ok := ParseRetryAfter(tc.h, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%v: got %v %v, want %v %v", tc.h, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]bool{400: false, 401: false, 404: false, 408: true, 429: true, 500: true, 501: false, 502: true, 503: true, 529: true} {
		if got := Retryable(&UpstreamError{Status: status}); got != want {
			t.Errorf("status %d: Retryable = %v, want %v", status, got, want)
		}
	}
	if Retryable(nil) || Retryable(errors.New("x")) {
		t.Error("nil or unknown errors: want not retryable")
	}
	if !Retryable(fmt.Errorf("x: %w", ErrStreamBroken)) || !Retryable(&BadResponseError{Err: io.EOF}) {
		t.Error("broken stream and bad response: want retryable")
	}
}

// fuzzBody runs a whole body through a stream decoder: Next must end with
// io.EOF or a classified error, in a bounded number of calls, without
// panicking.
func fuzzBody(t *testing.T, body []byte, dec decoder) {
	s := newStream("fuzz", io.NopCloser(bytes.NewReader(body)), dec)
	for i := 0; ; i++ {
		if i > len(body)+10 {
			t.Fatalf("Next did not end after %d calls", i)
		}
		c, err := s.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			var ue *UpstreamError
			var be *BadResponseError
			if !errors.Is(err, ErrStreamBroken) && !errors.As(err, &ue) && !errors.As(err, &be) {
				t.Fatalf("unclassified error %T: %v", err, err)
			}
			if _, again := s.Next(); again != err {
				t.Fatalf("Next after an error: got %v, want the same error", again)
			}
			return
		}
		if len(c.Raw) == 0 {
			t.Fatal("chunk without Raw")
		}
	}
}

func FuzzOpenAIStream(f *testing.F) {
	f.Add([]byte("data: {\"id\":\"1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n"))
	f.Add([]byte("data: {\"error\":{\"message\":\"boom\"}}\n\n"))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\"}}]}}]}\n\n"))
	f.Add([]byte("data: nope\n\n"))
	f.Add([]byte(": comment\n\ndata: {}\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) { fuzzBody(t, body, openaiDecoder{}) })
}

func FuzzAnthropicStream(f *testing.F) {
	f.Add([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: ping\ndata: {\"type\": \"ping\"}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
	f.Add([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"))
	f.Add([]byte("data: {\"type\":\"content_block_delta\"}\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzBody(t, body, &anthropicDecoder{d: anthropicapi.StreamDecoder{IncludeUsage: true}})
	})
}

func FuzzGeminiStream(f *testing.F) {
	f.Add([]byte("data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hi\"}]},\"index\":0}]}\r\n\r\n" +
		"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{\"a\":1}}}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":2,\"candidatesTokenCount\":3,\"totalTokenCount\":5}}\r\n\r\n"))
	f.Add([]byte("data: [{\"error\":{\"code\":429,\"message\":\"quota\",\"status\":\"RESOURCE_EXHAUSTED\"}}]\n\n"))
	f.Add([]byte("data: {\"error\":{\"code\":503,\"message\":\"x\",\"status\":\"UNAVAILABLE\"}}\n\n"))
	f.Add([]byte("data: {\"candidates\":[]}\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzBody(t, body, &geminiDecoder{d: gemini.StreamDecoder{IncludeUsage: true}})
	})
}
