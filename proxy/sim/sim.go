// Package sim is a provider simulator: the upstream of `tollgate sim`, of
// the tests and of the benchmarks. It speaks the OpenAI, Azure OpenAI,
// Anthropic Messages and Google Gemini / Vertex AI wire formats.
//
// Endpoints: POST /v1/chat/completions (OpenAI), POST
// /openai/deployments/{deployment}/chat/completions?api-version=V (Azure; the
// deployment is the model), POST /v1/messages (Anthropic, JSON and SSE
// events), POST /v1beta/models/{model}:generateContent and
// :streamGenerateContent?alt=sse (Gemini), the same under
// /v1/projects/{project}/locations/{location}/publishers/google/models/
// (Vertex), and GET /v1/models. Every format gets the same answers: each
// request is translated into the OpenAI request it stands for, answered,
// and the answer translated back.
//
// The model "echo" answers with the last user message exactly as received;
// "tool-echo" calls the request's first tool with {"input": <last user
// text>} and, once the last message is a tool result, answers with that
// result; other models answer with deterministic generated text (the same
// request always gets the same answer). Usage is counted with
// engine/tokens, so it is what the gateway's own tokenizer says; the
// CachedTokensHeader makes part of the prompt count as cached. Latency (time
// to first token, tokens per second) and faults (429, 500, hangs, broken
// streams) are set in Config, and a fault can be forced per request with the
// X-Sim-Fault header, in every format.
package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/openai"
)

// FaultHeader forces a fault on one request, whatever the configured rates.
// Its values are the Fault constants.
const FaultHeader = "X-Sim-Fault"

// Values of FaultHeader.
const (
	// Fault429 answers 429 rate_limit_exceeded with Retry-After.
	Fault429 = "429"
	// Fault500 answers 500 server_error.
	Fault500 = "500"
	// FaultHang never answers; the handler returns when the client goes away.
	FaultHang = "hang"
	// FaultBreak starts a normal answer and aborts the connection midway: a
	// stream gets the role chunk and up to two content chunks and no [DONE]; a
	// JSON answer gets half its body.
	FaultBreak = "break"
)

// maxBodyBytes bounds request bodies.
const maxBodyBytes = 32 << 20

// breakAfter is the number of content chunks a broken stream sends.
const breakAfter = 2

// Server is the simulator. It is an http.Handler and safe for concurrent use.
type Server struct {
	cfg       Config
	counter   *tokens.Counter
	codecs    codecs
	models    map[string]bool
	modelList []byte // GET /v1/models body
	starters  []string
	words     []string
	mux       *http.ServeMux
	requests  atomic.Int64
	ids       atomic.Int64 // completion IDs

	mu  sync.Mutex // guards rng
	rng *rand.Rand // fault draws

	// hangHook, when set (by tests), runs as a request starts to hang.
	hangHook func()
}

// New validates cfg, fills in its defaults and returns a Server that counts
// tokens with counter.
func New(cfg Config, counter *tokens.Counter) (*Server, error) {
	if counter == nil {
		return nil, errors.New("sim: nil token counter; pass the result of tokens.New()")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sim config: %w", err)
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if len(cfg.Models) == 0 {
		cfg.Models = DefaultModels()
	}
	cfg.Models = append([]string(nil), cfg.Models...)
	cd, err := newCodecs()
	if err != nil {
		return nil, fmt.Errorf("sim: load tokenizer: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		counter:  counter,
		codecs:   cd,
		models:   make(map[string]bool, len(cfg.Models)),
		starters: strings.Fields(loremStarters),
		words:    strings.Fields(loremWords),
		mux:      http.NewServeMux(),
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x7a11_9a7e)),
	}
	list := openai.ModelList{Object: "list", Data: make([]openai.Model, 0, len(cfg.Models))}
	created := time.Now().Unix()
	for _, m := range cfg.Models {
		s.models[m] = true
		list.Data = append(list.Data, openai.Model{ID: m, Object: "model", Created: created, OwnedBy: ownerOf(m)})
	}
	if s.modelList, err = json.Marshal(list); err != nil {
		return nil, fmt.Errorf("sim: encode model list: %w", err)
	}
	s.mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.chat(w, r, openaiWire{}) })
	s.mux.HandleFunc("POST /openai/deployments/{deployment}/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.chat(w, r, openaiWire{azure: true}) })
	s.mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) { s.chat(w, r, anthropicWire{}) })
	s.mux.HandleFunc("POST /v1beta/models/{call}", func(w http.ResponseWriter, r *http.Request) { s.chat(w, r, geminiWire{}) })
	s.mux.HandleFunc("POST /v1/projects/{project}/locations/{location}/publishers/google/models/{call}", func(w http.ResponseWriter, r *http.Request) { s.chat(w, r, geminiWire{vertex: true}) })
	s.mux.HandleFunc("GET /v1/models", s.listModels)
	s.mux.HandleFunc("POST /v1/moderations", s.moderations)
	s.mux.HandleFunc("/", s.notFound)
	return s, nil
}

// ServeHTTP serves the simulator's endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mux.ServeHTTP(w, r)
}

// Requests returns how many HTTP requests the server has received, on any
// path and whatever their outcome.
func (s *Server) Requests() int64 { return s.requests.Load() }

func ownerOf(model string) string {
	switch {
	case model == "echo", model == ToolEchoModel:
		return "tollgate"
	case strings.HasPrefix(model, "claude"):
		return "anthropic"
	case strings.HasPrefix(model, "gemini"):
		return "google"
	}
	return "openai"
}

func (s *Server) listModels(w http.ResponseWriter, _ *http.Request) {
	writeBody(w, http.StatusOK, s.modelList)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", "",
		fmt.Sprintf("no route for %s %s; the simulator serves POST /v1/chat/completions, /openai/deployments/{deployment}/chat/completions, /v1/messages, /v1beta/models/{model}:generateContent and GET /v1/models", r.Method, r.URL.Path))
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request, wf wire) {
	body, err := readBody(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			wf.writeError(w, http.StatusRequestEntityTooLarge, "request_too_large", "",
				fmt.Sprintf("request body is larger than %d bytes; send a shorter prompt", tooBig.Limit))
			return
		}
		wf.writeError(w, http.StatusBadRequest, "invalid_request", "", "read request body: "+err.Error())
		return
	}
	if status, msg := s.authorize(r, wf); status != 0 {
		wf.writeError(w, status, "invalid_api_key", "", msg)
		return
	}
	req, err := wf.parse(r, body)
	if err != nil {
		var re *openai.RequestError
		param := ""
		if errors.As(err, &re) {
			param = re.Param
		}
		wf.writeError(w, http.StatusBadRequest, "invalid_request", param, err.Error())
		return
	}
	if !s.models[req.Model] {
		wf.writeError(w, http.StatusNotFound, "model_not_found", "model",
			fmt.Sprintf("the model %q does not exist; use one of %s", req.Model, strings.Join(s.cfg.Models, ", ")))
		return
	}
	fault, err := s.fault(r)
	if err != nil {
		wf.writeError(w, http.StatusBadRequest, "invalid_fault", "", err.Error())
		return
	}
	switch fault {
	case Fault429:
		secs := int64(math.Ceil(s.cfg.RetryAfter.Seconds()))
		wf.rateLimited(w, s.cfg.RetryAfter, fmt.Sprintf("simulated rate limit on %s; retry after %d s", req.Model, secs))
		return
	case Fault500:
		wf.writeError(w, http.StatusInternalServerError, "server_error", "",
			"simulated server error; retry the request")
		return
	case FaultHang:
		if s.hangHook != nil {
			s.hangHook()
		}
		<-r.Context().Done()
		return
	}

	a := s.answer(req)
	id := "chatcmpl-sim-" + strconv.FormatInt(s.ids.Add(1), 10)
	usage := &openai.Usage{
		PromptTokens:     s.promptTokens(req),
		CompletionTokens: a.tokens,
	}
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	if v := r.Header.Get(CachedTokensHeader); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			wf.writeError(w, http.StatusBadRequest, "invalid_request", "", fmt.Sprintf("%s %q is not a non-negative integer", CachedTokensHeader, v))
			return
		}
		usage.PromptTokensDetails = &openai.PromptTokensDetails{CachedTokens: min(n, usage.PromptTokens)}
	}
	if req.Stream {
		s.stream(w, r, wf, req, id, a, usage, fault == FaultBreak)
		return
	}
	s.complete(w, r, wf, req, id, a, usage, fault == FaultBreak)
}

// authorize checks the request's credential when Config.APIKey is set; it
// returns a status and message for a request without the right one.
func (s *Server) authorize(r *http.Request, wf wire) (int, string) {
	if s.cfg.APIKey == "" {
		return 0, ""
	}
	got, where := wf.credential(r)
	if got == "" {
		return http.StatusUnauthorized, "missing credential; send the API key in " + where
	}
	if got != s.cfg.APIKey {
		return http.StatusUnauthorized, "invalid credential in " + where
	}
	return 0, ""
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= maxBodyBytes {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	return buf.Bytes(), err
}

// fault returns the fault for r: the forced one from FaultHeader, else a
// random draw against the configured rates, else "".
func (s *Server) fault(r *http.Request) (string, error) {
	if v := r.Header.Get(FaultHeader); v != "" {
		switch v {
		case Fault429, Fault500, FaultHang, FaultBreak:
			return v, nil
		}
		return "", fmt.Errorf("%s %q is not a fault; use one of %s, %s, %s, %s", FaultHeader, v, Fault429, Fault500, FaultHang, FaultBreak)
	}
	c := &s.cfg
	if c.Rate429+c.Rate500+c.RateHang == 0 {
		return "", nil
	}
	s.mu.Lock()
	u := s.rng.Float64()
	s.mu.Unlock()
	switch {
	case u < c.Rate429:
		return Fault429, nil
	case u < c.Rate429+c.Rate500:
		return Fault500, nil
	case u < c.Rate429+c.Rate500+c.RateHang:
		return FaultHang, nil
	}
	return "", nil
}

// answer builds the completion for req: the echo, or generated text of
// exactly max_tokens tokens (finish "length"), or defaultAnswerTokens tokens
// (finish "stop") when the request sets no limit.
func (s *Server) answer(req *openai.ChatRequest) answer {
	limit := req.MaxOutputTokens()
	if req.Model == ToolEchoModel {
		return s.toolEcho(req, requestSeed(s.cfg.Seed, req))
	}
	if req.Model == "echo" {
		return s.echo(req.Model, lastUserText(req.Messages), limit, req.Stream)
	}
	n, finish := limit, "length"
	if n == 0 {
		n, finish = defaultAnswerTokens, "stop"
	}
	text, pieces := s.lorem(requestSeed(s.cfg.Seed, req), n, req.Stream)
	return answer{text: text, pieces: pieces, finish: finish, tokens: s.counter.Count(req.Model, text)}
}

func (s *Server) promptTokens(req *openai.ChatRequest) int {
	msgs := make([]tokens.Message, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = tokens.Message{Role: m.Role, Name: m.Name, Content: m.Content.String()}
	}
	return s.counter.CountChat(req.Model, msgs)
}

// complete sends a JSON answer after the time the tokens would take.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, wf wire, req *openai.ChatRequest, id string, a answer, usage *openai.Usage, broken bool) {
	msg := openai.ResponseMessage{Role: "assistant", Content: &a.text}
	if a.call != nil {
		msg = openai.ResponseMessage{Role: "assistant", ToolCalls: []openai.ToolCall{*a.call}}
	}
	resp := openai.ChatResponse{
		ID:      id,
		Object:  "chat.completion",
		Created: time.Now().Unix(),
		Model:   req.Model,
		Choices: []openai.Choice{{
			Message:      msg,
			FinishReason: a.finish,
		}},
		Usage: usage,
	}
	body, err := wf.encode(&resp)
	if err != nil {
		wf.writeError(w, http.StatusInternalServerError, "server_error", "", "encode response: "+err.Error())
		return
	}
	p := pacer{start: time.Now()}
	defer p.stop()
	if err := p.wait(r, s.cfg.TTFT+s.tokenTime(a.tokens)); err != nil {
		return
	}
	if broken {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	writeBody(w, http.StatusOK, body)
}

// stream sends the answer as chunks, through the wire format's encoder:
// the role, one chunk per piece (text, or a tool call's name and then its
// arguments), the finish reason, the usage when asked for, the end.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, wf wire, req *openai.ChatRequest, id string, a answer, usage *openai.Usage, broken bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)

	rc := http.NewResponseController(w)
	enc := wf.streamEncoder(w, id, req.Model)
	choice := []openai.ChunkChoice{{}}
	chunk := openai.Chunk{ID: id, Object: "chat.completion.chunk", Created: time.Now().Unix(), Model: req.Model, Choices: choice}
	send := func() error {
		if err := enc.chunk(&chunk); err != nil {
			return err
		}
		return rc.Flush()
	}

	choice[0].Delta = openai.Delta{Role: "assistant"}
	if send() != nil {
		return
	}
	p := pacer{start: time.Now()}
	defer p.stop()
	zero := 0
	for i, piece := range a.pieces {
		if broken && i == breakAfter {
			break
		}
		// Piece i is due TTFT + i/tps after the start, so pacing does not drift.
		if p.wait(r, s.cfg.TTFT+s.tokenTime(i)) != nil {
			return
		}
		switch {
		case a.call != nil && i == 0:
			choice[0].Delta = openai.Delta{ToolCalls: []openai.ToolCall{{Index: &zero, ID: a.call.ID, Type: "function",
				Function: openai.FunctionCall{Name: a.call.Function.Name, Arguments: piece}}}}
		case a.call != nil:
			choice[0].Delta = openai.Delta{ToolCalls: []openai.ToolCall{{Index: &zero, Type: "function", Function: openai.FunctionCall{Arguments: piece}}}}
		default:
			choice[0].Delta = openai.Delta{Content: piece}
		}
		if send() != nil {
			return
		}
	}
	if broken {
		panic(http.ErrAbortHandler)
	}
	if p.wait(r, s.cfg.TTFT+s.tokenTime(len(a.pieces))) != nil {
		return
	}
	choice[0].Delta = openai.Delta{}
	choice[0].FinishReason = &a.finish
	if send() != nil {
		return
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		chunk.Choices = []openai.ChunkChoice{}
		chunk.Usage = usage
		if send() != nil {
			return
		}
	}
	if enc.finish() == nil {
		_ = rc.Flush()
	}
}

// tokenTime is how long n tokens take at the configured rate.
func (s *Server) tokenTime(n int) time.Duration {
	if s.cfg.TokensPerSecond == 0 || n == 0 {
		return 0
	}
	return time.Duration(float64(n) / s.cfg.TokensPerSecond * float64(time.Second))
}

// pacer waits until offsets from its creation time, and gives up as soon as
// the request's context is done.
type pacer struct {
	start time.Time
	timer *time.Timer
}

// wait blocks until offset after the pacer's start; it returns the context's
// error if the client goes away first.
func (p *pacer) wait(r *http.Request, offset time.Duration) error {
	ctx := r.Context()
	d := time.Until(p.start.Add(offset))
	if d <= 0 {
		return ctx.Err()
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-p.timer.C:
		return nil
	}
}

func (p *pacer) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, status int, typ, code, param, msg string) {
	e := openai.ErrorResponse{Error: openai.ErrorDetail{Message: msg, Type: typ, Code: code}}
	if param != "" {
		e.Error.Param = &param
	}
	body, err := json.Marshal(&e)
	if err != nil { // cannot happen for these plain fields
		http.Error(w, msg, status)
		return
	}
	writeBody(w, status, body)
}
