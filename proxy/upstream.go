package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/router"
)

// plan turns the decision's route into the router's plan: its targets and
// fallbacks, or, without a route, every upstream that serves the model, the
// first as the target and the others as fallbacks.
func (s *Server) plan(model string, rt *engine.Route) (router.Plan, error) {
	if rt != nil && len(rt.Targets) > 0 {
		var p router.Plan
		for _, list := range []struct {
			from []engine.Target
			to   *[]router.Target
		}{{rt.Targets, &p.Targets}, {rt.Fallbacks, &p.Fallbacks}} {
			for _, t := range list.from {
				if _, ok := s.upstreams[t.Provider]; !ok {
					return router.Plan{}, apiError(http.StatusInternalServerError, "route_invalid", fmt.Sprintf("the policy routed to provider %q, which this gateway does not configure", t.Provider))
				}
				*list.to = append(*list.to, router.Target{Provider: t.Provider, Model: t.Model, Weight: t.Weight})
			}
		}
		p.Retries = rt.Retries
		return p, nil
	}
	names := s.deps.Models[model]
	if len(names) == 0 {
		return router.Plan{}, apiError(http.StatusNotFound, "model_not_found", fmt.Sprintf("model %q is not served by this gateway; GET /v1/models lists the models you can use", model))
	}
	p := router.Plan{Targets: []router.Target{{Provider: names[0], Model: model}}, Retries: *s.cfg.Retries}
	for _, n := range names[1:] {
		p.Fallbacks = append(p.Fallbacks, router.Target{Provider: n, Model: model})
	}
	return p, nil
}

// attemptTimeout bounds one attempt: the decision's route.timeout_ms, else
// the upstream's configured timeout. For a stream it bounds the wait for
// the first chunk.
func attemptTimeout(up Upstream, rt *engine.Route) time.Duration {
	if rt != nil && rt.TimeoutMS > 0 {
		return time.Duration(rt.TimeoutMS) * time.Millisecond
	}
	return up.Timeout()
}

// attemptError classifies an upstream failure for the router.
type attemptError struct {
	err    error
	status int
	wait   time.Duration
}

func (e *attemptError) Error() string             { return e.err.Error() }
func (e *attemptError) Unwrap() error             { return e.err }
func (e *attemptError) HTTPStatus() int           { return e.status }
func (e *attemptError) RetryAfter() time.Duration { return e.wait }

// classifyAttempt wraps err of an attempt whose own context is actx, under
// the request's ctx, so that the router retries, falls back or stops:
// a request the provider cannot take is the caller's error (no fallback);
// an upstream's own refusal of its credentials or of the model (401, 403,
// 404) falls back like a server error; an attempt that ran out of time is a
// timeout; a client that left stops everything.
func classifyAttempt(ctx, actx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	var ue *provider.UpstreamError
	var re *openai.RequestError
	var be *provider.BadResponseError
	switch {
	case errors.As(err, &ue):
		status := ue.Status
		switch status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			status = http.StatusBadGateway
		}
		return &attemptError{err: err, status: status, wait: ue.Wait}
	case errors.As(err, &re):
		return &attemptError{err: err, status: http.StatusBadRequest}
	case actx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", router.ErrTimeout, err)
	case errors.As(err, &be):
		return &attemptError{err: err, status: http.StatusBadGateway}
	}
	return err // a connection error or a broken stream: retried
}

// recordAttempts puts the router's attempts on the event and the metrics.
func (s *Server) recordAttempts(st *call, p router.Plan, attempts []router.Attempt) {
	primary := map[router.Target]bool{}
	for _, t := range p.Targets {
		primary[router.Target{Provider: t.Provider, Model: t.Model}] = true
	}
	st.ev.Attempts, st.ev.Fallbacks = 0, 0
	st.ev.AttemptLog = st.ev.AttemptLog[:0]
	for _, a := range attempts {
		st.ev.AttemptLog = append(st.ev.AttemptLog, analytics.Attempt{
			Target: a.Target.Provider + "/" + a.Target.Model, Outcome: string(a.Outcome),
			LatencyMS: float64(a.Latency.Microseconds()) / 1000,
		})
		if a.Outcome == router.Skipped {
			continue
		}
		st.ev.Attempts++
		if !primary[router.Target{Provider: a.Target.Provider, Model: a.Target.Model}] {
			st.ev.Fallbacks++
		}
		outcome := string(a.Outcome)
		if a.Status != 0 && a.Outcome != router.OK {
			outcome = strconv.Itoa(a.Status)
		}
		s.metrics.upstream.WithLabelValues(a.Target.Provider, outcome).Inc()
	}
	if n := len(attempts); n > 0 {
		last := attempts[n-1].Target
		st.ev.ModelRouted, st.ev.Provider = last.Model, last.Provider
	}
}

// failure turns the router's last error into the client's error.
func (s *Server) failure(ctx context.Context, st *call, err error) error {
	var ue *provider.UpstreamError
	var re *openai.RequestError
	switch {
	case errors.Is(err, router.ErrNoTarget):
		st.ev.Error = "no_healthy_upstream"
		return apiError(http.StatusServiceUnavailable, "no_healthy_upstream", "every provider that can serve this request is failing (circuit open); retry shortly")
	case errors.As(err, &ue):
		st.ev.Error = "upstream_" + strconv.Itoa(ue.Status)
		ae := &APIError{Status: ue.Status, Type: ue.Body.Error.Type, Code: ue.Body.Error.Code, Message: ue.Body.Error.Message}
		if ae.Type == "" {
			ae.Type = typeFor(ue.Status)
		}
		if ae.Code == "" {
			ae.Code = "upstream_error"
		}
		if ae.Message == "" {
			ae.Message = fmt.Sprintf("provider %s answered %d", ue.Provider, ue.Status)
		}
		if ue.RetryAfter != "" {
			ae.Header = http.Header{"Retry-After": []string{ue.RetryAfter}}
		}
		return ae
	case errors.As(err, &re):
		st.ev.Error = "untranslatable_request"
		ae := apiError(http.StatusBadRequest, "invalid_request", fmt.Sprintf("the provider chosen for this request cannot take it: %s", s.redactAll(re.Message)))
		ae.Param = re.Param
		return ae
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		st.ev.Error = "client_closed_request"
		return apiError(499, "client_closed_request", "the client closed the request")
	case errors.Is(err, router.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		st.ev.Error = "upstream_timeout"
		return apiError(http.StatusGatewayTimeout, "upstream_timeout", fmt.Sprintf("provider %s did not answer in time; retry later", st.ev.Provider))
	}
	st.ev.Error = "upstream_unavailable"
	s.deps.Log.Warn("upstream call", "request_id", st.ev.RequestID, "provider", st.ev.Provider, "err", err)
	return apiError(http.StatusBadGateway, "upstream_unavailable", fmt.Sprintf("provider %s could not be reached or answered badly; retry later", st.ev.Provider))
}

// withModel returns a copy of req for target t. Adapters never change the
// request, so the copy may share its messages.
func withModel(req *openai.ChatRequest, model string) *openai.ChatRequest {
	r := *req
	r.Model = model
	return &r
}

// complete makes the non-streaming call through the router.
func (s *Server) complete(c echo.Context, st *call, plan router.Plan, rt *engine.Route, req *openai.ChatRequest) (*provider.Completion, error) {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.deadline)
	defer cancel()
	res, attempts, err := router.Do(ctx, s.router, plan, func(ctx context.Context, t router.Target, _ int) (*provider.Completion, error) {
		up := s.upstreams[t.Provider]
		actx, cancel := context.WithTimeout(ctx, attemptTimeout(up, rt))
		defer cancel()
		out, err := up.Complete(actx, withModel(req, t.Model))
		if err != nil {
			return nil, classifyAttempt(ctx, actx, err)
		}
		return out, nil
	})
	s.recordAttempts(st, plan, attempts)
	if err != nil {
		return nil, s.failure(c.Request().Context(), st, err)
	}
	return res, nil
}

// opened is a stream whose first chunk arrived in time.
type opened struct {
	up     Upstream
	stream *provider.Stream
	first  provider.Chunk
	// firstErr is the error of the first Next (io.EOF for an empty answer).
	firstErr error
	// cancel ends the stream's context; the relay calls it when done.
	cancel context.CancelFunc
}

// open starts the stream through the router: an attempt succeeds when the
// first chunk arrives within the attempt's time (the time-to-first-token
// deadline); until then a failure is retried or falls back, and nothing has
// reached the client. The whole search is bounded by the server's
// upstream deadline; the stream itself then runs as long as it lasts.
func (s *Server) open(c echo.Context, st *call, plan router.Plan, rt *engine.Route, req *openai.ChatRequest) (*opened, error) {
	rctx := c.Request().Context()
	ctx, cancelSearch := context.WithCancel(rctx)
	defer cancelSearch()
	search := time.AfterFunc(s.deadline, cancelSearch)
	defer search.Stop()
	res, attempts, err := router.Do(ctx, s.router, plan, func(ctx context.Context, t router.Target, _ int) (*opened, error) {
		up := s.upstreams[t.Provider]
		// The stream outlives the search, so its context derives from the
		// request's, not from the search's.
		sctx, cancel := context.WithCancel(rctx)
		stop := context.AfterFunc(ctx, cancel)
		timer := time.AfterFunc(attemptTimeout(up, rt), cancel)
		// fail ends the attempt; the timer tells whether its time ran out.
		fail := func(err error, timedOut bool) (*opened, error) {
			stop()
			defer cancel()
			if timedOut && ctx.Err() == nil {
				return nil, fmt.Errorf("%w: %w", router.ErrTimeout, err)
			}
			return nil, classifyAttempt(ctx, sctx, err)
		}
		stream, err := up.Stream(sctx, withModel(req, t.Model))
		if err != nil {
			return fail(err, !timer.Stop())
		}
		first, firstErr := stream.Next()
		if firstErr != nil && !errors.Is(firstErr, io.EOF) {
			_ = stream.Close()
			return fail(firstErr, !timer.Stop())
		}
		if !timer.Stop() {
			_ = stream.Close()
			return fail(context.DeadlineExceeded, true)
		}
		stop()
		return &opened{up: up, stream: stream, first: first, firstErr: firstErr, cancel: cancel}, nil
	})
	s.recordAttempts(st, plan, attempts)
	if err != nil {
		return nil, s.failure(rctx, st, err)
	}
	return res, nil
}
