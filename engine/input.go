package engine

import (
	"strconv"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// InputVersion is the version of the input document; policies can check
// input.version to refuse an input shape they were not written for.
const InputVersion = "1"

// Input is the document a policy sees as `input`. See policies/README.md.
type Input struct {
	Request    RequestInfo
	Identity   Identity
	Model      ModelInfo
	Params     Params
	Tokens     Tokens
	PII        PIISummary
	Complexity Complexity
	Signals    Signals
}

// Signals are findings about the prompt text that policies act on without
// seeing the text.
type Signals struct {
	// MatchedPhrases lists the ids of data.data.guardrails.blocked_phrases
	// rules whose phrases occur in the prompt (case and white space folded).
	MatchedPhrases []string
}

// RequestInfo describes the HTTP request.
type RequestInfo struct {
	ID         string
	Path       string
	Stream     bool
	ReceivedAt time.Time
	ClientIP   string
	// Headers holds the allow-listed request headers, lower-case names.
	Headers map[string]string
}

// Identity is the authenticated principal.
type Identity struct {
	Subject string `json:"subject"`
	// Kind is user, service or agent.
	Kind string `json:"kind"`
	// Auth is the credential kind: api_key, oidc or mtls.
	Auth   string            `json:"auth"`
	KeyID  string            `json:"key_id"`
	Team   string            `json:"team"`
	Org    string            `json:"org"`
	Roles  []string          `json:"roles"`
	Groups []string          `json:"groups"`
	Labels map[string]string `json:"labels,omitempty"`
	Chain  []ChainLink       `json:"chain,omitempty"`
}

// ChainLink is one agent in an on-behalf-of chain.
type ChainLink struct {
	Subject string `json:"subject"`
	Kind    string `json:"kind"`
}

// ModelInfo names the requested model.
type ModelInfo struct {
	Requested    string
	ProviderHint string
}

// Params are the generation parameters the caller set.
type Params struct {
	MaxTokens   int // 0 when not set
	Temperature *float64
	Tools       int
	Messages    int
}

// Tokens is the token estimate.
type Tokens struct {
	Prompt         int
	MaxCompletion  int
	EstimatedTotal int
}

// PIISummary tells which personal data the request holds, never the values.
type PIISummary struct {
	Types    []string
	Findings []PIIFinding
}

// PIIFinding counts the findings of one type in one message.
type PIIFinding struct {
	Type    string
	Count   int
	Message int
	Role    string
}

// Complexity is a prompt-complexity estimate in [0,1] with its signals.
type Complexity struct {
	Score float64
	Turns int
	Code  bool
}

// Value returns the input as an OPA value, built directly so that no JSON
// round trip is needed per evaluation.
func (in *Input) Value() ast.Value {
	return ast.NewObject(
		item("version", ast.String(InputVersion)),
		item("request", in.Request.value()),
		item("identity", in.Identity.value()),
		item("model", ast.NewObject(
			item("requested", ast.String(in.Model.Requested)),
			item("provider_hint", ast.String(in.Model.ProviderHint)),
		)),
		item("params", in.Params.value()),
		item("tokens", ast.NewObject(
			item("prompt", intValue(in.Tokens.Prompt)),
			item("max_completion", intValue(in.Tokens.MaxCompletion)),
			item("estimated_total", intValue(in.Tokens.EstimatedTotal)),
		)),
		item("pii", in.PII.value()),
		item("complexity", ast.NewObject(
			item("score", ast.Number(strconv.FormatFloat(in.Complexity.Score, 'f', -1, 64))),
			item("signals", ast.NewObject(
				item("turns", intValue(in.Complexity.Turns)),
				item("code", ast.Boolean(in.Complexity.Code)),
			)),
		)),
		item("signals", ast.NewObject(
			item("matched_phrases", stringArray(in.Signals.MatchedPhrases)),
		)),
	)
}

func (r RequestInfo) value() ast.Value {
	headers := ast.NewObject()
	for k, v := range r.Headers {
		headers.Insert(ast.StringTerm(k), ast.StringTerm(v))
	}
	received := ""
	if !r.ReceivedAt.IsZero() {
		received = r.ReceivedAt.UTC().Format(time.RFC3339Nano)
	}
	return ast.NewObject(
		item("id", ast.String(r.ID)),
		item("path", ast.String(r.Path)),
		item("stream", ast.Boolean(r.Stream)),
		item("received_at", ast.String(received)),
		item("client_ip", ast.String(r.ClientIP)),
		item("headers", headers),
	)
}

func (id Identity) value() ast.Value {
	labels := ast.NewObject()
	for k, v := range id.Labels {
		labels.Insert(ast.StringTerm(k), ast.StringTerm(v))
	}
	chain := make([]*ast.Term, len(id.Chain))
	for i, c := range id.Chain {
		chain[i] = ast.NewTerm(ast.NewObject(
			item("subject", ast.String(c.Subject)),
			item("kind", ast.String(c.Kind)),
		))
	}
	return ast.NewObject(
		item("subject", ast.String(id.Subject)),
		item("kind", ast.String(id.Kind)),
		item("auth", ast.String(id.Auth)),
		item("key_id", ast.String(id.KeyID)),
		item("team", ast.String(id.Team)),
		item("org", ast.String(id.Org)),
		item("roles", stringArray(id.Roles)),
		item("groups", stringArray(id.Groups)),
		item("labels", labels),
		item("chain", ast.NewArray(chain...)),
	)
}

func (p Params) value() ast.Value {
	obj := ast.NewObject(
		item("tools", intValue(p.Tools)),
		item("messages", intValue(p.Messages)),
	)
	if p.MaxTokens > 0 {
		obj.Insert(ast.StringTerm("max_tokens"), ast.NewTerm(intValue(p.MaxTokens)))
	}
	if p.Temperature != nil {
		obj.Insert(ast.StringTerm("temperature"), ast.NewTerm(ast.Number(strconv.FormatFloat(*p.Temperature, 'f', -1, 64))))
	}
	return obj
}

func (s PIISummary) value() ast.Value {
	findings := make([]*ast.Term, len(s.Findings))
	for i, f := range s.Findings {
		findings[i] = ast.NewTerm(ast.NewObject(
			item("type", ast.String(f.Type)),
			item("count", intValue(f.Count)),
			item("message", intValue(f.Message)),
			item("role", ast.String(f.Role)),
		))
	}
	return ast.NewObject(
		item("types", stringArray(s.Types)),
		item("findings", ast.NewArray(findings...)),
	)
}

func item(k string, v ast.Value) [2]*ast.Term {
	return ast.Item(ast.StringTerm(k), ast.NewTerm(v))
}

func intValue(n int) ast.Value { return ast.Number(strconv.Itoa(n)) }

func stringArray(ss []string) ast.Value {
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ast.StringTerm(s)
	}
	return ast.NewArray(terms...)
}
