package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/quota"
	"github.com/tollgate/tollgate/proxy/router"
	"github.com/tollgate/tollgate/proxy/sse"
)

// maxUpstreamBody bounds a non-streaming upstream answer.
const maxUpstreamBody = 32 << 20

// streamGrant is how many output tokens a stream with cut-off reserves at a
// time: first with its prompt, then each time the relayed tokens reach what
// is reserved. Smaller grants stop closer to the budget when many streams
// share it; each grant after the first costs one quota round trip.
const streamGrant = 128

// extender is a limiter that can grow a live reservation; the quota backends
// implement it.
type extender interface {
	Extend(ctx context.Context, now time.Time, r *quota.Reservation, add quota.Amount) error
}

// call is the state of one chat request, gathered for its log event.
type call struct {
	ev          analytics.Event
	start       time.Time
	reservation *quota.Reservation
	settled     bool
	// meter is set for a stream with cut-off: its reservation grows with
	// the relayed tokens.
	meter *meter
	// resp masks the answer and restores placeholders; nil when the answer
	// is relayed as it is.
	resp *respMask
	// storePrompt keeps the prompt and the answer, masked, in the log.
	storePrompt bool
	// doneAfterLog asks for the stream's [DONE] after the event is logged.
	doneAfterLog bool
	// scanner is the PII scanner of the request's policy.
	scanner *pii.Scanner
	// in is the policy input, for the response's guardrails.
	in *engine.Input
}

// meter tracks the output tokens of a stream with cut-off against its
// reservation.
//
// The design: the reservation holds the prompt and a grant of output tokens
// (with their cost); before relaying a chunk whose tokens would pass the
// grant, the relay extends the reservation by another grant (at least the
// chunk) under the same limits, all or nothing. When an extension is
// refused the chunk is not relayed and the stream ends. So every relayed
// token is covered by a charge that was admitted under the limits, and
// reservations alone never push a counter past its limit: the total charged
// to a scope never exceeds its budget, across replicas, because the check is
// the backend's (Redis) atomic check. At the end the reservation is
// reconciled with what was relayed (never more than is reserved, see
// Server.settle).
type meter struct {
	ext    extender
	model  string
	prompt int64 // tokens of the prompt, as reserved
	// granted is the output tokens reserved, relayed the output tokens
	// relayed so far (the sum of the chunks' counts).
	granted, relayed int64
	maxCompletion    int64
}

// chatCompletions serves POST /v1/chat/completions. Whatever happens, the
// request leaves exactly one inference-log event.
func (s *Server) chatCompletions(c echo.Context) error {
	r := c.Request()
	st := &call{start: s.now()}
	rid := requestID(r.Header.Get(echo.HeaderXRequestID))
	c.Response().Header().Set(echo.HeaderXRequestID, rid)
	st.ev = analytics.Event{
		RequestID: rid,
		Time:      st.start,
		Path:      r.URL.Path,
		ClientIP:  c.RealIP(),
	}
	if p := s.deps.Engine.Current(); p != nil {
		st.ev.BundleRevision = p.Revision
	}
	err := s.serveChat(c, st)
	if st.reservation != nil && !st.settled {
		// The request ended before reconciliation: nothing was delivered.
		if rerr := s.deps.Limiter.Refund(context.WithoutCancel(r.Context()), st.reservation); rerr != nil {
			s.deps.Log.Warn("quota refund", "request_id", rid, "err", rerr)
		}
	}
	var ae *APIError
	if err != nil {
		if !errors.As(err, &ae) {
			s.deps.Log.Error("chat request", "request_id", rid, "err", err)
			ae = apiError(http.StatusInternalServerError, "internal_error", "internal error; the gateway logged the details under this request's id")
		}
		if !c.Response().Committed {
			writeAPIError(c, ae)
		}
		if st.ev.Error == "" {
			st.ev.Error = ae.Code
		}
	}
	st.ev.Status = c.Response().Status
	if ae != nil && !c.Response().Committed {
		st.ev.Status = ae.Status
	}
	end := s.now()
	st.ev.LatencyMS = float64(end.Sub(st.start).Microseconds()) / 1000
	s.metrics.requests.WithLabelValues(strconv.Itoa(st.ev.Status)).Inc()
	s.metrics.duration.WithLabelValues(strconv.FormatBool(st.ev.Stream)).Observe(end.Sub(st.start).Seconds())
	s.deps.Events.Enqueue(st.ev)
	s.journal(r.Context(), rid)
	if st.doneAfterLog {
		// The stream's end marker goes last: a client that has it knows its
		// request is logged.
		w := c.Response()
		_ = sse.WriteDone(w)
		w.Flush()
	}
	return nil
}

// journaler is a log sink that can wait until what was enqueued is on disk
// (the analytics writer with a spool).
type journaler interface {
	Journal(ctx context.Context) error
}

// journal waits until the request's decision and inference events are in
// the spool, so that a response the client has in full is never lost with
// a crash of the gateway. Concurrent requests share one write.
func (s *Server) journal(ctx context.Context, rid string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), journalTimeout)
	defer cancel()
	for _, sink := range []any{s.deps.Decisions, s.deps.Events} {
		if j, ok := sink.(journaler); ok {
			if err := j.Journal(ctx); err != nil {
				s.deps.Log.Error("analytics event not journaled before the response ended", "request_id", rid, "err", err)
			}
		}
	}
}

// journalTimeout bounds the wait for the spool.
const journalTimeout = 5 * time.Second

func (s *Server) serveChat(c echo.Context, st *call) error {
	r := c.Request()
	ctx := r.Context()

	id, err := s.identify(r)
	if err != nil {
		return errUnauthenticated
	}
	st.ev.Subject, st.ev.KeyID, st.ev.Team, st.ev.Org, st.ev.Kind = id.Subject, id.KeyID, id.Team, id.Org, id.Kind
	if len(id.Chain) > 0 {
		st.ev.User = id.Chain[0].Subject
		for _, l := range id.Chain {
			st.ev.AgentChain = append(st.ev.AgentChain, l.Subject)
		}
	}

	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	req, err := openai.ParseChatRequest(body)
	if err != nil {
		var re *openai.RequestError
		if errors.As(err, &re) {
			ae := apiError(http.StatusBadRequest, "invalid_request", s.redactAll(re.Message))
			ae.Param = re.Param
			return ae
		}
		return err
	}
	st.ev.ModelRequested = req.Model
	st.ev.Stream = req.Stream

	policy := s.deps.Engine.Current()
	// A model no upstream serves and the policy's data does not know (its
	// catalog or routing's auto models) cannot be routed anywhere.
	if len(s.deps.Models[req.Model]) == 0 && (policy == nil || !policy.KnowsModel(req.Model)) {
		return apiError(http.StatusNotFound, "model_not_found", fmt.Sprintf("model %q is not served by this gateway; GET /v1/models lists the models you can use", req.Model))
	}
	if policy == nil {
		s.metrics.decisions.WithLabelValues("error").Inc()
		return apiError(http.StatusServiceUnavailable, "policy_not_ready", "the gateway has not loaded a policy bundle yet; retry shortly")
	}
	st.ev.BundleRevision = policy.Revision
	builder := s.deps.Builder.With(policy.Scanner())
	st.scanner = builder.Scanner()
	in, scan, err := builder.Build(ctx, req, engine.RequestInfo{
		ID: st.ev.RequestID, Path: r.URL.Path, ReceivedAt: st.start, ClientIP: st.ev.ClientIP,
		Headers: s.policyHeaders(r.Header),
	}, id)
	if err != nil {
		// Fail closed: a request that could not be scanned is not sent.
		s.deps.Log.Error("PII scan failed; the request is refused", "request_id", st.ev.RequestID, "err", err)
		return apiError(http.StatusServiceUnavailable, "pii_scan_failed", "the gateway could not check this request for personal data, so it is not sent; retry, or shorten the request")
	}
	st.in = in
	policy.MatchPhrases(req, in)
	if err := s.moderate(ctx, st, req, in); err != nil {
		return err
	}
	st.ev.PromptTokensEstimated = int64(in.Tokens.Prompt)
	st.ev.PIITypes = in.PII.Types
	if len(in.PII.Types) > 0 {
		st.ev.PIICounts = make([]int, len(in.PII.Types))
	}
	for _, f := range in.PII.Findings {
		st.ev.PIICount += f.Count
		st.ev.PIICounts[slices.Index(in.PII.Types, f.Type)] += f.Count
	}
	d, err := s.decide(ctx, st, policy, in)
	if err != nil {
		s.metrics.decisions.WithLabelValues("error").Inc()
		s.deps.Log.Error("policy evaluation", "request_id", st.ev.RequestID, "bundle_revision", policy.Revision, "err", err)
		return apiError(http.StatusInternalServerError, "policy_error", "the policy could not decide on this request, so it is denied; the gateway logged the reason")
	}
	st.ev.Tags = s.tags(st.scanner, d.Log.Tags, r.Header.Get(metadataHeader))
	if !d.Allow {
		s.metrics.decisions.WithLabelValues("deny").Inc()
		first := d.Deny[0]
		st.ev.DenyCode = first.Code
		return apiError(first.Status, first.Code, first.Message)
	}
	s.metrics.decisions.WithLabelValues("allow").Inc()
	st.ev.Allowed = true

	if n := d.Params.DefaultMaxTokens; n > 0 && req.MaxOutputTokens() == 0 {
		// The policy's cap for a request that sets none: sent upstream,
		// and what the quota reserves for.
		req.MaxTokens = &n
		in.Tokens.MaxCompletion = n
		in.Tokens.EstimatedTotal = in.Tokens.Prompt + n
	}
	plan, err := s.plan(req.Model, d.Route)
	if err != nil {
		return err
	}
	first := plan.Targets[0]
	st.ev.ModelRouted, st.ev.Provider = first.Model, first.Provider

	var opts engine.MaskOptions
	for _, r := range d.Mask.Rules {
		switch r.Action {
		case engine.ActionPlaceholder:
			opts.Placeholders = pii.NewPlaceholders()
		case engine.ActionHash:
			opts.Hasher = s.hasher(id.Org)
		}
	}
	if d.Mask.Response && opts.Hasher == nil {
		opts.Hasher = s.hasher(id.Org)
	}
	m := engine.ApplyMaskWith(req, scan, d.Mask, opts)
	st.resp = newRespMask(st.scanner, d.Mask, opts.Hasher, opts.Placeholders)
	if len(m.Blocked) > 0 {
		st.ev.Allowed = false
		st.ev.DenyCode = "pii_blocked"
		return apiError(http.StatusBadRequest, "pii_blocked", fmt.Sprintf("the request contains %s, which policy forbids sending to a model; remove it and retry", strings.Join(m.Blocked, ", ")))
	}
	if d.Log.StorePrompt {
		st.storePrompt = true
		st.ev.Prompt = s.promptText(st.scanner, req)
	}

	if err := s.reserve(c, st, policy, d.Limits, in, priciest(policy, st.start, plan, in), req.Stream && d.Stream.Cutoff); err != nil {
		return err
	}

	clientUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	if req.Stream {
		// Always ask for usage so that the charge is the provider's count.
		req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
		return s.relayStream(c, st, policy, plan, d.Route, req, clientUsage)
	}
	return s.relayJSON(c, st, policy, plan, d.Route, req)
}

// checkResponse applies the policy's guardrails to the model's answer. A
// JSON answer they deny is withheld (block); a streamed one, already
// delivered, is flagged in the log (tag guardrail_response). A check that
// fails withholds a JSON answer too (fail closed).
func (s *Server) checkResponse(ctx context.Context, st *call, p *engine.Policy, text string, block bool) error {
	if text == "" || st.in == nil {
		return nil
	}
	v, err := p.CheckResponse(ctx, st.in, text)
	if err != nil {
		s.deps.Log.Error("response guardrails failed", "request_id", st.ev.RequestID, "err", err)
		if block {
			st.ev.Error = "response_check_failed"
			return apiError(http.StatusBadGateway, "response_check_failed", "the gateway could not check the model's answer against its guardrails, so it is withheld; retry")
		}
		return nil
	}
	if v.Allow {
		return nil
	}
	ids := strings.Join(slices.Concat(v.Phrases, v.Signals), ",")
	if st.ev.Tags == nil {
		st.ev.Tags = map[string]string{}
	}
	st.ev.Tags["guardrail_response"] = ids
	first := v.Deny[0]
	if !block {
		s.deps.Log.Warn("streamed answer matched a response guardrail; flagged", "request_id", st.ev.RequestID, "code", first.Code, "guardrails", ids)
		return nil
	}
	st.ev.Error = first.Code
	return apiError(first.Status, first.Code, first.Message)
}

// priciest returns the model of the plan whose price for the request's
// upper bound is highest, so that the reservation covers any fallback.
func priciest(p *engine.Policy, at time.Time, plan router.Plan, in *engine.Input) string {
	u := engine.Usage{PromptTokens: int64(in.Tokens.Prompt), CompletionTokens: int64(in.Tokens.MaxCompletion)}
	best, bestCost := plan.Targets[0].Model, int64(-1)
	for _, list := range [][]router.Target{plan.Targets, plan.Fallbacks} {
		for _, t := range list {
			if cost, _ := p.Prices.CostMicros(t.Model, at, u); cost > bestCost {
				best, bestCost = t.Model, cost
			}
		}
	}
	return best
}

// policyHeaders returns the allow-listed request headers the policy sees,
// keyed by lower-case name.
func (s *Server) policyHeaders(h http.Header) map[string]string {
	var out map[string]string
	for _, name := range s.cfg.PolicyHeaders {
		if v := h.Get(name); v != "" {
			if out == nil {
				out = make(map[string]string, len(s.cfg.PolicyHeaders))
			}
			out[strings.ToLower(name)] = v
		}
	}
	return out
}

func (s *Server) readBody(c echo.Context) ([]byte, error) {
	r := c.Request()
	tooLarge := apiError(http.StatusRequestEntityTooLarge, "request_too_large",
		fmt.Sprintf("request body is larger than the gateway's limit of %d bytes; shorten the prompt or raise server.max_body_bytes", s.cfg.MaxBodyBytes))
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, apiError(http.StatusBadRequest, "invalid_request", "could not read the request body: "+err.Error())
	}
	return body, nil
}

// reserve charges the upper bound of the request against every limit: the
// prompt and max_tokens (or the default cap), priced by the price book. A
// stream with cut-off reserves the prompt and a first grant of output tokens
// instead, and grows its reservation while it is relayed (see meter).
func (s *Server) reserve(c echo.Context, st *call, p *engine.Policy, limits []engine.Limit, in *engine.Input, model string, cutoff bool) error {
	if len(limits) == 0 {
		return nil
	}
	ql := make([]quota.Limit, len(limits))
	for i, l := range limits {
		ql[i] = quota.Limit{Scope: l.Scope, Window: quota.Window(l.Window), Tokens: l.Tokens, Requests: l.Requests, USDMicros: int64(math.Round(l.USD * 1e6))}
	}
	prompt, completion := int64(in.Tokens.Prompt), int64(in.Tokens.MaxCompletion)
	var m *meter
	if ext, ok := s.deps.Limiter.(extender); ok && cutoff {
		m = &meter{ext: ext, model: model, prompt: prompt, granted: min(completion, streamGrant), maxCompletion: completion}
		completion = m.granted
	}
	cost, _ := p.Prices.CostMicros(model, st.start, engine.Usage{PromptTokens: prompt, CompletionTokens: completion})
	amt := quota.Amount{Tokens: prompt + completion, Requests: 1, USDMicros: cost}
	res, err := s.deps.Limiter.Reserve(c.Request().Context(), st.start, ql, amt)
	h := c.Response().Header()
	var ee *quota.ExceededError
	switch {
	case errors.As(err, &ee):
		st.ev.DenyCode = "rate_limited"
		st.ev.Allowed = false
		retry := int(ee.RetryAfter().Seconds())
		ae := apiError(http.StatusTooManyRequests, "rate_limit_exceeded", fmt.Sprintf("%s limit of %s per %s reached (%d of %d used; this request needs up to %d); retry after %ds, lower max_tokens, or ask for a higher limit",
			ee.Dimension, ee.Limit.Scope, ee.Limit.Window, ee.Used, ee.Limit.Max(ee.Dimension), ee.Requested, retry))
		ae.Header = http.Header{}
		ae.Header.Set("Retry-After", strconv.Itoa(retry))
		if ee.Dimension == "tokens" || ee.Dimension == "requests" {
			ae.Header.Set("X-Ratelimit-Limit-"+ee.Dimension, strconv.FormatInt(ee.Limit.Max(ee.Dimension), 10))
			ae.Header.Set("X-Ratelimit-Remaining-"+ee.Dimension, strconv.FormatInt(ee.Remaining, 10))
			ae.Header.Set("X-Ratelimit-Reset-"+ee.Dimension, resetString(ee.ResetAt.Sub(st.start)))
		}
		return ae
	case errors.Is(err, quota.ErrUnavailable):
		return apiError(http.StatusServiceUnavailable, "quota_unavailable", "the quota store is unavailable and the gateway is configured to fail closed; retry shortly")
	case err != nil:
		return fmt.Errorf("quota reserve: %w", err)
	}
	st.reservation = res
	st.meter = m
	for _, dim := range []string{"tokens", "requests"} {
		if ss, ok := res.Tightest(dim); ok {
			h.Set("X-Ratelimit-Limit-"+dim, strconv.FormatInt(ss.Limit.Max(dim), 10))
			h.Set("X-Ratelimit-Remaining-"+dim, strconv.FormatInt(ss.Remaining, 10))
			h.Set("X-Ratelimit-Reset-"+dim, resetString(ss.ResetAt.Sub(st.start)))
		}
	}
	return nil
}

// resetString formats a reset delay the way OpenAI does ("1s", "6m0s").
func resetString(d time.Duration) string {
	if d < time.Second {
		d = time.Second
	}
	return d.Round(time.Second).String()
}

// settle reconciles the reservation with real usage and records tokens and
// cost on the event.
func (s *Server) settle(ctx context.Context, st *call, p *engine.Policy, u engine.Usage) {
	cost, _ := p.Prices.CostMicros(st.ev.ModelRouted, st.start, u)
	st.ev.PromptTokens, st.ev.CompletionTokens, st.ev.CachedTokens = u.PromptTokens, u.CompletionTokens, u.CachedTokens
	st.ev.CostMicros = cost
	s.metrics.tokens.WithLabelValues("prompt").Add(float64(u.PromptTokens))
	s.metrics.tokens.WithLabelValues("completion").Add(float64(u.CompletionTokens))
	s.metrics.costMicros.Add(float64(cost))
	if st.reservation == nil {
		st.settled = true
		return
	}
	ctx = context.WithoutCancel(ctx)
	amt := quota.Amount{Tokens: u.PromptTokens + u.CompletionTokens, Requests: 1, USDMicros: cost}
	if st.meter != nil {
		amt = s.capCharge(ctx, st, amt)
	}
	err := s.deps.Limiter.Reconcile(ctx, st.reservation, amt)
	st.settled = true
	if err != nil {
		s.deps.Log.Warn("quota reconcile", "request_id", st.ev.RequestID, "err", err)
	}
}

// capCharge keeps the charge of a metered stream within its reservation, so
// that the guarantee of meter holds at the end too. The charge can only pass
// the reservation when the provider counts more than the gateway did (its
// prompt count includes a template the tokenizer estimate missed): the
// reservation is then extended by the excess, and when the limits refuse
// that, the charge is the reservation. The event keeps the provider's
// numbers either way.
func (s *Server) capCharge(ctx context.Context, st *call, amt quota.Amount) quota.Amount {
	res := st.reservation.Amount()
	excess := quota.Amount{Tokens: max(0, amt.Tokens-res.Tokens), USDMicros: max(0, amt.USDMicros-res.USDMicros)}
	if excess == (quota.Amount{}) {
		return amt
	}
	if err := st.meter.ext.Extend(ctx, s.now(), st.reservation, excess); err != nil {
		s.deps.Log.Warn("quota charge capped at the reservation", "request_id", st.ev.RequestID,
			"tokens", amt.Tokens, "reserved_tokens", res.Tokens, "usd_micros", amt.USDMicros, "reserved_usd_micros", res.USDMicros, "err", err)
		amt.Tokens, amt.USDMicros = min(amt.Tokens, res.Tokens), min(amt.USDMicros, res.USDMicros)
	}
	return amt
}

// grow makes room in a metered stream's reservation for n more output
// tokens, extending it by at least a grant when needed; an error means the
// stream must end before those tokens.
func (s *Server) grow(ctx context.Context, st *call, p *engine.Policy, n int64) error {
	m := st.meter
	need := m.relayed + n
	if need <= m.granted {
		m.relayed = need
		return nil
	}
	inc := max(need-m.granted, min(streamGrant, m.maxCompletion-m.granted))
	// The cost of the grant is the difference of the totals, so that the
	// rounding of the grants adds up to the rounding of the whole.
	before, _ := p.Prices.CostMicros(m.model, st.start, engine.Usage{PromptTokens: m.prompt, CompletionTokens: m.granted})
	after, _ := p.Prices.CostMicros(m.model, st.start, engine.Usage{PromptTokens: m.prompt, CompletionTokens: m.granted + inc})
	if err := m.ext.Extend(ctx, s.now(), st.reservation, quota.Amount{Tokens: inc, USDMicros: after - before}); err != nil {
		return err
	}
	m.granted += inc
	m.relayed = need
	return nil
}

func (s *Server) relayJSON(c echo.Context, st *call, p *engine.Policy, plan router.Plan, rt *engine.Route, req *openai.ChatRequest) error {
	out, err := s.complete(c, st, plan, rt, req)
	if err != nil {
		return err
	}
	raw := out.Raw
	u := engine.Usage{PromptTokens: st.ev.PromptTokensEstimated}
	if out.Response != nil && out.Response.Usage != nil {
		u = usageOf(out.Response.Usage)
	} else if out.Response != nil {
		for _, ch := range out.Response.Choices {
			if ch.Message.Content != nil {
				u.CompletionTokens += int64(s.deps.Counter.Count(req.Model, *ch.Message.Content))
			}
		}
	}
	s.settle(c.Request().Context(), st, p, u)
	var text strings.Builder
	if out.Response != nil {
		for _, ch := range out.Response.Choices {
			if ch.Message.Content != nil {
				text.WriteString(*ch.Message.Content)
			}
		}
	}
	if st.storePrompt {
		st.ev.Response = s.redactWith(st.scanner, text.String())
	}
	if err := s.checkResponse(c.Request().Context(), st, p, text.String(), true); err != nil {
		return err
	}
	if st.resp != nil {
		if raw, err = st.resp.rewriteCompletion(raw); err != nil {
			// Fail closed: an answer that could not be masked is not sent.
			s.deps.Log.Error("response masking failed; the answer is withheld", "request_id", st.ev.RequestID, "err", err)
			st.ev.Error = "response_mask_failed"
			return apiError(http.StatusBadGateway, "response_mask_failed", "the gateway could not check the model's answer for personal data, so it is withheld; retry")
		}
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, raw)
}

func usageOf(u *openai.Usage) engine.Usage {
	x := engine.Usage{PromptTokens: int64(u.PromptTokens), CompletionTokens: int64(u.CompletionTokens)}
	if u.PromptTokensDetails != nil {
		x.CachedTokens = int64(u.PromptTokensDetails.CachedTokens)
	}
	return x
}

// streamChunk is the part of a chunk the relay reads.
type streamChunk struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *openai.Usage `json:"usage"`
}

// cutoffChunk is the last chunk of a stream the gateway ended: the choices
// finish with "length", as when max_tokens is reached, and the tollgate
// field says why. Clients that do not know the field ignore it.
type cutoffChunk struct {
	ID      string               `json:"id"`
	Object  string               `json:"object"`
	Created int64                `json:"created"`
	Model   string               `json:"model"`
	Choices []openai.ChunkChoice `json:"choices"`
	// Tollgate is the gateway's notice.
	Tollgate cutoffNotice `json:"tollgate"`
}

type cutoffNotice struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// cutoffReason describes a refused extension for the client and the event.
func cutoffReason(err error) (code, message string) {
	var ee *quota.ExceededError
	switch {
	case errors.As(err, &ee):
		return "budget_exhausted", fmt.Sprintf("the gateway ended this answer: the %s limit of %s per %s is exhausted (%d of %d used); retry after %ds, or ask for a higher limit",
			ee.Dimension, ee.Limit.Scope, ee.Limit.Window, ee.Used, ee.Limit.Max(ee.Dimension), int(ee.RetryAfter().Seconds()))
	case errors.Is(err, quota.ErrUnavailable):
		return "quota_unavailable", "the gateway ended this answer: the quota store is unavailable, so the rest of the answer cannot be metered against your budget; retry shortly"
	}
	return "quota_error", "the gateway ended this answer: it could not meter the rest against your budget"
}

// relayStream relays the upstream's stream chunk by chunk, flushing each
// one, and charges what was delivered. The router retries and falls back
// until a stream's first chunk arrives; once anything has been sent to the
// client, a failure ends the stream with an error event instead.
func (s *Server) relayStream(c echo.Context, st *call, p *engine.Policy, plan router.Plan, rt *engine.Route, req *openai.ChatRequest, clientUsage bool) error {
	rctx := c.Request().Context()
	o, err := s.open(c, st, plan, rt, req)
	if err != nil {
		return err
	}
	defer o.cancel()
	defer o.stream.Close()
	up := o.up
	s.metrics.streamsActive.Inc()
	defer s.metrics.streamsActive.Dec()

	w := c.Response()
	// A stream lasts as long as the model writes: lift the server's write
	// timeout (an error means the writer has none to lift).
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Flush()

	var delivered strings.Builder
	var usage *openai.Usage
	clientGone := false
	upstreamBroke := false
	var last streamChunk // id, created and model for the gateway's own chunks
	choices := 1
	var cutErr error
	var masks *streamMask
	if st.resp != nil {
		masks = st.resp.stream()
	}
	maskFailed := false
	for pending := true; ; pending = false {
		ch, err := o.first, o.firstErr
		if !pending {
			ch, err = o.stream.Next()
		}
		if errors.Is(err, io.EOF) {
			if masks != nil && !s.flushHeld(w, st, masks, last, req) {
				maskFailed = true
				break
			}
			st.doneAfterLog = true // written once the event is logged
			break
		}
		if err != nil {
			clientGone = rctx.Err() != nil
			upstreamBroke = !clientGone
			if upstreamBroke {
				s.deps.Log.Warn("upstream stream broke", "request_id", st.ev.RequestID, "provider", up.Name(), "err", err)
			}
			break
		}
		if ch.Usage != nil {
			usage = ch.Usage
		}
		if ch.ID != "" {
			last.ID, last.Created, last.Model = ch.ID, ch.Created, ch.Model
		}
		if st.meter != nil {
			var n int64
			for _, x := range ch.Choices {
				if x.Delta.Content != "" {
					n += int64(s.deps.Counter.Count(req.Model, x.Delta.Content))
				}
				choices = max(choices, x.Index+1)
			}
			if n > 0 {
				if err := s.grow(rctx, st, p, n); err != nil {
					if rctx.Err() != nil {
						clientGone = true
					} else {
						cutErr = err
					}
					break
				}
			}
		}
		if text := ch.Text(); text != "" {
			if st.ev.TTFTMS == 0 {
				st.ev.TTFTMS = float64(s.now().Sub(st.start).Microseconds()) / 1000
			}
			delivered.WriteString(text)
		}
		if ch.UsageOnly() && !clientUsage {
			continue // the client did not ask for the usage chunk
		}
		data := ch.Raw
		if masks != nil && len(ch.Choices) > 0 {
			if data, err = masks.rewriteChunk(ch.Raw); err != nil {
				s.deps.Log.Error("response masking failed; the stream is ended", "request_id", st.ev.RequestID, "err", err)
				maskFailed = true
				break
			}
		}
		if err := sse.WriteData(w, data); err != nil {
			clientGone = true
			break
		}
		w.Flush()
	}
	u := engine.Usage{PromptTokens: st.ev.PromptTokensEstimated}
	switch {
	case usage != nil && !clientGone && cutErr == nil:
		u = usageOf(usage)
	case st.meter != nil:
		// Charge what was relayed, as metered against the reservation.
		u.CompletionTokens = st.meter.relayed
	default:
		// Charge what was delivered: the tokenizer's count of the text.
		if usage != nil {
			u.PromptTokens = int64(usage.PromptTokens)
		}
		u.CompletionTokens = int64(s.deps.Counter.Count(req.Model, delivered.String()))
	}
	if cutErr != nil {
		o.cancel() // stop the upstream generating what nobody pays for
		if masks != nil && !s.flushHeld(w, st, masks, last, req) {
			maskFailed = true
		} else {
			s.endCutOff(w, st, req, last, choices, clientUsage, u, cutErr)
		}
	}
	if maskFailed && !clientGone {
		o.cancel()
		upstreamBroke = false
		st.ev.Error = "response_mask_failed"
		data, _ := json.Marshal(openai.ErrorResponse{Error: openai.ErrorDetail{
			Message: "the gateway could not check the rest of the answer for personal data, so it ended the stream; retry",
			Type:    "api_error", Code: "response_mask_failed",
		}})
		_ = sse.WriteData(w, data)
		w.Flush()
	}
	if upstreamBroke {
		st.ev.Error = "upstream_stream_broken"
		data, _ := json.Marshal(openai.ErrorResponse{Error: openai.ErrorDetail{
			Message: fmt.Sprintf("provider %s ended the stream early; the answer is incomplete", up.Name()),
			Type:    "api_error", Code: "upstream_stream_broken",
		}})
		_ = sse.WriteData(w, data)
		w.Flush()
	}
	if clientGone {
		st.ev.Error = "client_disconnected"
	}
	if st.storePrompt {
		st.ev.Response = s.redactWith(st.scanner, delivered.String())
	}
	// The answer is out: its guardrails can only flag it now.
	_ = s.checkResponse(rctx, st, p, delivered.String(), false)
	s.settle(rctx, st, p, u)
	return nil
}

// flushHeld sends what the response masks still hold back, as one chunk
// with a delta per choice, and reports whether it could.
func (s *Server) flushHeld(w *echo.Response, st *call, masks *streamMask, last streamChunk, req *openai.ChatRequest) bool {
	idx := masks.pending()
	if len(idx) == 0 {
		return true
	}
	if last.ID == "" {
		last.ID, last.Created, last.Model = "chatcmpl-"+st.ev.RequestID, s.now().Unix(), req.Model
	}
	ch := openai.Chunk{ID: last.ID, Object: "chat.completion.chunk", Created: last.Created, Model: last.Model}
	for _, i := range idx {
		rest, err := masks.flush(i)
		if err != nil {
			s.deps.Log.Error("response masking failed; the stream is ended", "request_id", st.ev.RequestID, "err", err)
			return false
		}
		if rest != "" {
			ch.Choices = append(ch.Choices, openai.ChunkChoice{Index: i, Delta: openai.Delta{Content: rest}})
		}
	}
	if len(ch.Choices) == 0 {
		return true
	}
	data, _ := json.Marshal(ch)
	if sse.WriteData(w, data) == nil {
		w.Flush()
	}
	return true
}

// endCutOff ends a stream whose budget ran out: a final chunk whose choices
// finish with "length" and carry the gateway's notice, the usage chunk when
// the client asked for usage (what it is charged), and [DONE]. The event
// records the cut-off.
func (s *Server) endCutOff(w *echo.Response, st *call, req *openai.ChatRequest, last streamChunk, choices int, clientUsage bool, u engine.Usage, cause error) {
	code, msg := cutoffReason(cause)
	st.ev.CutOff = true
	if code != "budget_exhausted" {
		st.ev.Error = code
	}
	s.deps.Log.Info("stream cut off", "request_id", st.ev.RequestID, "reason", code,
		"completion_tokens", u.CompletionTokens, "err", cause)
	if last.ID == "" {
		last.ID, last.Created, last.Model = "chatcmpl-"+st.ev.RequestID, s.now().Unix(), req.Model
	}
	length := "length"
	ch := cutoffChunk{
		ID: last.ID, Object: "chat.completion.chunk", Created: last.Created, Model: last.Model,
		Choices:  make([]openai.ChunkChoice, choices),
		Tollgate: cutoffNotice{Code: code, Message: msg},
	}
	for i := range ch.Choices {
		ch.Choices[i] = openai.ChunkChoice{Index: i, FinishReason: &length}
	}
	data, _ := json.Marshal(ch)
	if sse.WriteData(w, data) != nil {
		return
	}
	if clientUsage {
		data, _ = json.Marshal(openai.Chunk{
			ID: last.ID, Object: "chat.completion.chunk", Created: last.Created, Model: last.Model,
			Choices: []openai.ChunkChoice{},
			Usage: &openai.Usage{PromptTokens: int(u.PromptTokens), CompletionTokens: int(u.CompletionTokens),
				TotalTokens: int(u.PromptTokens + u.CompletionTokens)},
		})
		if sse.WriteData(w, data) != nil {
			return
		}
	}
	w.Flush()
	st.doneAfterLog = true
}

// requestID keeps a caller's request id when it is short and printable,
// else makes one.
func requestID(given string) string {
	if n := len(given); n > 0 && n <= 128 {
		ok := true
		for i := 0; i < n; i++ {
			if b := given[i]; b < 0x21 || b > 0x7e {
				ok = false
				break
			}
		}
		if ok {
			return given
		}
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}
