package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/proxy/openai"
)

// maxErrorBody bounds the part of an error answer that is read.
const maxErrorBody = 64 << 10

// maxBody bounds a non-streaming answer.
const maxBody = 32 << 20

// ErrStreamBroken is returned (wrapped) by Stream.Next when the provider's
// stream ends without its end marker or the connection fails midway.
var ErrStreamBroken = errors.New("provider stream ended early")

// UpstreamError is a non-2xx answer from the provider (or an error event in
// a stream), normalised to the OpenAI error shape whatever the provider's
// own.
type UpstreamError struct {
	// Provider names the upstream.
	Provider string
	// Status is the HTTP status (for a stream error event, the status its
	// error type stands for, e.g. 529 for Anthropic's overloaded_error).
	Status int
	// RetryAfter is the delay to pass on to a client in a Retry-After
	// header, whole seconds; empty when the provider gave none.
	RetryAfter string
	// Wait is the provider's requested delay before a retry, parsed from
	// retry-after-ms, Retry-After (seconds or HTTP date) or a Google
	// RetryInfo; 0 when none was given.
	Wait time.Duration
	// Body is the error in OpenAI's shape.
	Body openai.ErrorResponse
}

func (e *UpstreamError) Error() string {
	name := e.Provider
	if name == "" {
		name = "upstream"
	}
	return fmt.Sprintf("%s answered %d: %s", name, e.Status, e.Body.Error.Message)
}

// Retryable reports whether the same request may succeed later or
// elsewhere: 408, 409, 425, 429 and 5xx other than 501 and 505.
func (e *UpstreamError) Retryable() bool {
	switch s := e.Status; {
	case s == 408, s == 409, s == 425, s == 429:
		return true
	case s == 501, s == 505:
		return false
	case s >= 500:
		return true
	}
	return false
}

// BadResponseError is a provider answer that cannot be understood: not
// JSON, not the expected shape, or a stream event out of order.
type BadResponseError struct {
	Provider string
	Err      error
}

func (e *BadResponseError) Error() string {
	return fmt.Sprintf("provider %s sent a response that cannot be used: %v", e.Provider, e.Err)
}

func (e *BadResponseError) Unwrap() error { return e.Err }

// Retryable reports whether err, from Complete, Stream or Stream.Next, is
// worth a retry or a fallback: a retryable *UpstreamError, a bad response,
// a broken stream, a connection failure or a timeout. A cancelled context
// (the client left) and request errors (the request cannot be translated
// for this provider) are not. Callers must not retry a stream once they
// have sent any of it to their client.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var ue *UpstreamError
	if errors.As(err, &ue) {
		return ue.Retryable()
	}
	var re *openai.RequestError
	if errors.As(err, &re) {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var be *BadResponseError
	var ne net.Error
	return errors.As(err, &be) || errors.Is(err, ErrStreamBroken) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// RetryAfter returns the delay the provider asked for before a retry.
func RetryAfter(err error) (time.Duration, bool) {
	var ue *UpstreamError
	if errors.As(err, &ue) && ue.Wait > 0 {
		return ue.Wait, true
	}
	return 0, false
}

// ParseRetryAfter reads the delay a provider asks for: retry-after-ms
// (OpenAI, Azure) first, then Retry-After as seconds (fractions allowed)
// or an HTTP date relative to now.
func ParseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 && ms < 1e12 {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 || s > 1e9 || math.IsNaN(s) {
			return 0, false
		}
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// retryAfterHeader formats a wait as whole seconds, rounded up.
func retryAfterHeader(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}

// errorType is the OpenAI error type for an HTTP status.
func errorType(status int) string {
	switch {
	case status == 401:
		return "authentication_error"
	case status == 403:
		return "permission_error"
	case status == 404:
		return "not_found_error"
	case status == 429:
		return "rate_limit_error"
	case status >= 400 && status < 500:
		return "invalid_request_error"
	}
	return "api_error"
}

// newUpstreamError reads a non-2xx answer. detail parses the provider's
// error body into a message and an optional wait from the body; it may be
// nil for bodies in OpenAI's shape.
func (b *base) newUpstreamError(resp *http.Response, detail func(raw []byte) (openai.ErrorDetail, time.Duration, bool)) *UpstreamError {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	ue := &UpstreamError{Provider: b.name, Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}
	if d, ok := ParseRetryAfter(resp.Header, b.now()); ok {
		ue.Wait = d
	}
	var det openai.ErrorDetail
	var bodyWait time.Duration
	ok := false
	if detail != nil {
		det, bodyWait, ok = detail(raw)
	} else {
		var er openai.ErrorResponse
		if err := json.Unmarshal(raw, &er); err == nil && er.Error.Message != "" {
			det, ok = er.Error, true
		}
	}
	if !ok || det.Message == "" {
		det = openai.ErrorDetail{Message: fmt.Sprintf("upstream %s answered HTTP %d", b.name, resp.StatusCode), Code: "upstream_error"}
	}
	if det.Type == "" {
		det.Type = errorType(resp.StatusCode)
	}
	if ue.Wait == 0 && bodyWait > 0 {
		ue.Wait = bodyWait
	}
	if ue.RetryAfter == "" && ue.Wait > 0 {
		ue.RetryAfter = retryAfterHeader(ue.Wait)
	}
	ue.Body.Error = det
	return ue
}
