package proxy

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate/proxy/openai"
)

// APIError is an error answered to the client in the OpenAI error shape.
type APIError struct {
	Status  int
	Type    string
	Code    string
	Message string
	Param   string
	// Header holds extra response headers (Retry-After, rate limits).
	Header http.Header
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

func apiError(status int, code, msg string) *APIError {
	return &APIError{Status: status, Type: typeFor(status), Code: code, Message: msg}
}

// typeFor maps a status to the OpenAI error type.
func typeFor(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// errorHandler is the one place that turns errors into responses; internal
// errors are logged and answered without detail.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var ae *APIError
		var he *echo.HTTPError
		switch {
		case errors.As(err, &ae):
		case errors.As(err, &he):
			ae = fromEchoError(he)
		default:
			log.Error("internal error", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err)
			ae = apiError(http.StatusInternalServerError, "internal_error", "internal error; the gateway logged the details under this request's id")
		}
		writeAPIError(c, ae)
	}
}

func writeAPIError(c echo.Context, ae *APIError) {
	h := c.Response().Header()
	for k, vs := range ae.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	body := openai.ErrorResponse{Error: openai.ErrorDetail{Message: ae.Message, Type: ae.Type, Code: ae.Code}}
	if ae.Param != "" {
		p := ae.Param
		body.Error.Param = &p
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ae.Status)
		return
	}
	_ = c.JSON(ae.Status, body)
}

func fromEchoError(he *echo.HTTPError) *APIError {
	switch he.Code {
	case http.StatusNotFound:
		return apiError(he.Code, "unknown_endpoint", "no such endpoint; Tollgate serves POST /v1/chat/completions and GET /v1/models")
	case http.StatusMethodNotAllowed:
		return apiError(he.Code, "method_not_allowed", "method not allowed on this endpoint")
	case http.StatusRequestEntityTooLarge:
		return apiError(he.Code, "request_too_large", "request body is too large")
	}
	msg := http.StatusText(he.Code)
	if s, ok := he.Message.(string); ok {
		msg = s
	}
	return apiError(he.Code, "http_error", msg)
}
