// Package moderation calls an external content-moderation service that
// speaks OpenAI's moderation API (POST {base_url}/moderations), such as
// OpenAI itself or `tollgate sim`, and turns its verdict into a Result for
// the policy input (input.moderation).
//
// A call is bounded by Config.Timeout. When the service cannot answer (a
// timeout, a connection error, a non-2xx status, a malformed body), the
// configured fail mode decides: "closed" returns an error wrapping
// ErrUnavailable, which the caller answers with 503 moderation_unavailable;
// "open" returns a Result that says Unavailable and lets the policy decide.
// Each input text is cut to Config.MaxInputBytes before it is sent.
//
// The API key is read from the environment or a file, sent as a bearer
// token, and never appears in errors, logs or printed values.
package moderation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// maxResponseBytes bounds the body read from the service: far above what
// a verdict on a few inputs takes, far below what could hurt the gateway.
const maxResponseBytes = 1 << 20

// maxErrorBytes bounds the body read from a non-2xx answer.
const maxErrorBytes = 4 << 10

// ErrUnavailable is wrapped by every error that means the moderation service
// gave no usable verdict. Test with errors.Is; errors.As with
// *UnavailableError gives the reason.
var ErrUnavailable = errors.New("moderation unavailable")

// Reasons of UnavailableError; they are also the outcome label values of
// tollgate_moderation_requests_total.
const (
	ReasonTimeout    = "timeout"    // no answer within Config.Timeout
	ReasonConnection = "connection" // dial, TLS, reset or truncated body
	ReasonStatus     = "status"     // non-2xx answer
	ReasonMalformed  = "malformed"  // 2xx answer that is not a verdict on every input
)

// UnavailableError says why the service gave no verdict. It never holds the
// API key, the input texts or the service's error message.
type UnavailableError struct {
	// Reason is one of the Reason constants.
	Reason string
	// Status is the HTTP status for ReasonStatus, else 0.
	Status int
	// Err is the underlying error, when there is one.
	Err error
}

func (e *UnavailableError) Error() string {
	var b strings.Builder
	b.WriteString("moderation unavailable: ")
	switch e.Reason {
	case ReasonStatus:
		b.WriteString("status " + strconv.Itoa(e.Status))
	default:
		b.WriteString(e.Reason)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes every UnavailableError match ErrUnavailable.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Result is the verdict on one request's texts.
type Result struct {
	// Checked is true when the service judged the texts (or there was no
	// text to judge). The zero Result, from a disabled or nil Client, is
	// unchecked.
	Checked bool
	// Flagged is true when the service flagged any input or any category
	// counts (see Config.CategoriesThreshold).
	Flagged bool
	// Categories lists the categories that count, over all inputs, sorted
	// and without duplicates.
	Categories []string
	// Unavailable is true when the service gave no verdict.
	Unavailable bool
	// Cause is why, when Unavailable in fail-open mode (in fail-closed mode
	// Check returns it as the error instead). It wraps ErrUnavailable and is
	// safe to log.
	Cause error
}

// Input returns r as the policy sees it in input.moderation:
// {"checked": bool, "flagged": bool, "categories": [string], "unavailable":
// bool}. Categories is never null.
func (r Result) Input() map[string]any {
	cats := make([]any, len(r.Categories))
	for i, c := range r.Categories {
		cats[i] = c
	}
	return map[string]any{
		"checked":     r.Checked,
		"flagged":     r.Flagged,
		"categories":  cats,
		"unavailable": r.Unavailable,
	}
}

// Client calls the moderation service. It is safe for concurrent use.
type Client struct {
	s    settings
	http *http.Client
	// key is held by pointer so that printing a Client shows an address,
	// not the key.
	key *secret

	requests *prometheus.CounterVec
	latency  prometheus.Histogram
}

// New validates cfg and returns a Client. client carries the calls; nil means
// a new http.Client with the default transport; Config.Timeout is applied
// per call whatever client's own Timeout. reg receives
// tollgate_moderation_requests_total{outcome} and
// tollgate_moderation_request_duration_seconds; nil registers nothing. The
// API key is read here, so a missing key fails at start-up, not per request.
func New(cfg Config, client *http.Client, reg prometheus.Registerer) (*Client, error) {
	s, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{}
	}
	c := &Client{
		s:    s,
		http: client,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_moderation_requests_total",
			Help: "Moderation calls by outcome: clean, flagged, timeout, connection, status, malformed, canceled.",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tollgate_moderation_request_duration_seconds",
			Help:    "Time of a moderation call, whatever its outcome.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
	}
	for _, o := range []string{outcomeClean, outcomeFlagged, ReasonTimeout, ReasonConnection, ReasonStatus, ReasonMalformed, outcomeCanceled} {
		c.requests.WithLabelValues(o)
	}
	if s.enabled {
		if c.key, err = loadKey(cfg.APIKeyEnv, cfg.APIKeyFile); err != nil {
			return nil, err
		}
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{c.requests, c.latency} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("register moderation metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Outcome label values that are not failure reasons.
const (
	outcomeClean    = "clean"
	outcomeFlagged  = "flagged"
	outcomeCanceled = "canceled" // the caller's context ended first
)

// Enabled reports whether Check calls the service.
func (c *Client) Enabled() bool { return c != nil && c.s.enabled }

// FailOpen reports whether the client fails open.
func (c *Client) FailOpen() bool { return c != nil && c.s.failOpen }

// LogValue describes c for logs, without its key.
func (c *Client) LogValue() slog.Value {
	if c == nil {
		return slog.StringValue("disabled")
	}
	mode := FailClosed
	if c.s.failOpen {
		mode = FailOpen
	}
	return slog.GroupValue(
		slog.Bool("enabled", c.s.enabled),
		slog.String("endpoint", c.s.endpoint),
		slog.String("model", c.s.model),
		slog.Duration("timeout", c.s.timeout),
		slog.String("fail_mode", mode),
		slog.Int("max_input_bytes", c.s.maxInput),
		slog.String("credential", c.key.String()),
	)
}

// Check asks the service about texts, each cut to Config.MaxInputBytes;
// empty texts are skipped, and with none left Check answers Checked
// without a call. A nil or disabled Client answers the zero Result.
//
// The error is non-nil only when the caller must stop: it wraps
// ErrUnavailable in fail-closed mode (answer 503 moderation_unavailable),
// or is the caller's context error when ctx ended first, in either mode. In
// fail-open mode an unavailable service gives a Result with Unavailable and
// Cause set, and a nil error.
func (c *Client) Check(ctx context.Context, texts []string) (Result, error) {
	if !c.Enabled() {
		return Result{}, nil
	}
	inputs := make([]string, 0, len(texts))
	for _, t := range texts {
		if t != "" {
			inputs = append(inputs, truncate(t, c.s.maxInput))
		}
	}
	if len(inputs) == 0 {
		return Result{Checked: true}, nil
	}
	start := time.Now()
	res, err := c.call(ctx, inputs)
	c.latency.Observe(time.Since(start).Seconds())
	if err == nil {
		outcome := outcomeClean
		if res.Flagged {
			outcome = outcomeFlagged
		}
		c.requests.WithLabelValues(outcome).Inc()
		return res, nil
	}
	if ctx.Err() != nil {
		c.requests.WithLabelValues(outcomeCanceled).Inc()
		return Result{}, fmt.Errorf("moderation: %w", context.Cause(ctx))
	}
	var ue *UnavailableError
	if errors.As(err, &ue) {
		c.requests.WithLabelValues(ue.Reason).Inc()
	}
	if c.s.failOpen {
		return Result{Unavailable: true, Cause: err}, nil
	}
	return Result{Unavailable: true}, err
}

// wireRequest and wireResponse are the moderation API's bodies.
type wireRequest struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
}

type wireResponse struct {
	ID      string       `json:"id"`
	Model   string       `json:"model"`
	Results []wireResult `json:"results"`
}

type wireResult struct {
	// Flagged is a pointer so that a result without it is malformed rather
	// than clean.
	Flagged        *bool              `json:"flagged"`
	Categories     map[string]bool    `json:"categories"`
	CategoryScores map[string]float64 `json:"category_scores"`
}

// call makes one request; every error it returns is an *UnavailableError.
func (c *Client) call(ctx context.Context, inputs []string) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.s.timeout)
	defer cancel()
	unavailable := func(err error) error {
		if ctx.Err() != nil {
			// Say how long, not the transport's wording.
			return &UnavailableError{Reason: ReasonTimeout, Err: fmt.Errorf("no answer within %v", c.s.timeout)}
		}
		return &UnavailableError{Reason: ReasonConnection, Err: err}
	}

	body, err := json.Marshal(wireRequest{Model: c.s.model, Input: inputs})
	if err != nil {
		return Result{}, &UnavailableError{Reason: ReasonMalformed, Err: fmt.Errorf("encode request: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.s.endpoint, bytes.NewReader(body))
	if err != nil {
		return Result{}, &UnavailableError{Reason: ReasonConnection, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if k := c.key.value(); k != "" {
		req.Header.Set("Authorization", "Bearer "+k)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Result{}, unavailable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Read a little so that the connection can be reused; the body
		// itself is not reported, as a service may echo what it was sent.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes))
		return Result{}, &UnavailableError{Reason: ReasonStatus, Status: resp.StatusCode}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return Result{}, unavailable(fmt.Errorf("read response: %w", err))
	}
	if len(data) > maxResponseBytes {
		return Result{}, &UnavailableError{Reason: ReasonMalformed, Err: fmt.Errorf("response larger than %d bytes", maxResponseBytes)}
	}
	res, err := c.verdict(data, len(inputs))
	if err != nil {
		return Result{}, &UnavailableError{Reason: ReasonMalformed, Err: err}
	}
	return res, nil
}

// verdict parses a response body about n inputs into a Result.
func (c *Client) verdict(data []byte, n int) (Result, error) {
	var wr wireResponse
	if err := json.Unmarshal(data, &wr); err != nil {
		return Result{}, fmt.Errorf("decode response: %w", err)
	}
	if len(wr.Results) != n {
		return Result{}, fmt.Errorf("response has %d results for %d inputs", len(wr.Results), n)
	}
	res := Result{Checked: true}
	seen := map[string]bool{}
	for i, r := range wr.Results {
		if r.Flagged == nil {
			return Result{}, fmt.Errorf("result %d has no flagged field", i)
		}
		res.Flagged = res.Flagged || *r.Flagged
		for name, on := range r.Categories {
			if on {
				seen[name] = true
			}
		}
		for name, threshold := range c.s.thresholds {
			if score, ok := r.CategoryScores[name]; ok && score >= threshold {
				seen[name] = true
			}
		}
	}
	for name := range seen {
		res.Categories = append(res.Categories, name)
	}
	slices.Sort(res.Categories)
	res.Flagged = res.Flagged || len(res.Categories) > 0
	return res, nil
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// secret is the API key. Its String, GoString and LogValue say where it
// came from, never what it is.
type secret struct {
	source string // "env NAME" or "file PATH"
	v      string
}

func loadKey(env, file string) (*secret, error) {
	switch {
	case env != "":
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return nil, fmt.Errorf("moderation.api_key_env: environment variable %s is empty; export the moderation service's API key", env)
		}
		return &secret{source: "env " + env, v: v}, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("moderation.api_key_file: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return nil, fmt.Errorf("moderation.api_key_file: %s is empty; write the API key into it", file)
		}
		return &secret{source: "file " + file, v: v}, nil
	}
	return nil, nil
}

func (s *secret) value() string {
	if s == nil {
		return ""
	}
	return s.v
}

func (s *secret) String() string {
	if s == nil {
		return "none"
	}
	return "[redacted from " + s.source + "]"
}

func (s *secret) GoString() string { return s.String() }

func (s *secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
