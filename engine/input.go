package engine

import (
	"encoding/json"
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
	Guardrails GuardrailSignals
	Moderation Moderation
}

// Moderation is the verdict of the external moderation service, when the
// gateway has one: Checked is false when none is configured.
type Moderation struct {
	Checked     bool
	Flagged     bool
	Categories  []string
	Unavailable bool
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
	// ToolNames are the names of the function tools, in request order.
	ToolNames []string
	Messages  int
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
	Type  string
	Count int
	// Message is the message's index, -1 for tool definitions.
	Message int
	// Role is the message's role, "" for tool definitions.
	Role string
	// Where is WhereContent, WhereToolCall or WhereToolDefinition.
	Where string
}

// Complexity is a prompt-complexity estimate in [0,1] with its signals; see
// estimateComplexity for how they are computed and weighed.
type Complexity struct {
	Score        float64
	Turns        int
	Code         bool
	Math         bool
	Reasoning    bool
	Tools        int
	PromptTokens int
}

// Value returns the input as an OPA value, built directly so that no JSON
// round trip is needed per evaluation.
func (in *Input) Value() ast.Value { return in.valueOf(nil) }

// valueOf builds the fields of the input that fs names (nil: all of them).
func (in *Input) valueOf(fs fieldSet) ast.Value {
	var b object
	if _, ok := fs.want("version"); ok {
		b.add("version", ast.InternedTerm(InputVersion))
	}
	if sub, ok := fs.want("request"); ok {
		b.add("request", ast.NewTerm(in.Request.value(sub)))
	}
	if sub, ok := fs.want("identity"); ok {
		b.add("identity", ast.NewTerm(in.Identity.value(sub)))
	}
	if _, ok := fs.want("model"); ok {
		b.add("model", ast.ObjectTerm(
			item("requested", ast.StringTerm(in.Model.Requested)),
			item("provider_hint", ast.StringTerm(in.Model.ProviderHint)),
		))
	}
	if _, ok := fs.want("params"); ok {
		b.add("params", ast.NewTerm(in.Params.value()))
	}
	if _, ok := fs.want("tokens"); ok {
		b.add("tokens", ast.ObjectTerm(
			item("prompt", ast.InternedTerm(in.Tokens.Prompt)),
			item("max_completion", ast.InternedTerm(in.Tokens.MaxCompletion)),
			item("estimated_total", ast.InternedTerm(in.Tokens.EstimatedTotal)),
		))
	}
	if _, ok := fs.want("pii"); ok {
		b.add("pii", ast.NewTerm(in.PII.value()))
	}
	if _, ok := fs.want("complexity"); ok {
		b.add("complexity", ast.ObjectTerm(
			item("score", ast.NumberTerm(json.Number(strconv.FormatFloat(in.Complexity.Score, 'f', -1, 64)))),
			item("signals", ast.ObjectTerm(
				item("turns", ast.InternedTerm(in.Complexity.Turns)),
				item("code", ast.InternedTerm(in.Complexity.Code)),
				item("math", ast.InternedTerm(in.Complexity.Math)),
				item("reasoning", ast.InternedTerm(in.Complexity.Reasoning)),
				item("tools", ast.InternedTerm(in.Complexity.Tools)),
				item("prompt_tokens", ast.InternedTerm(in.Complexity.PromptTokens)),
			)),
		))
	}
	if _, ok := fs.want("guardrails"); ok {
		b.add("guardrails", ast.ObjectTerm(
			item("signals", stringArray(in.Guardrails.IDs())),
			item("hidden_unicode", ast.InternedTerm(in.Guardrails.HiddenUnicode)),
			item("bidi_controls", ast.InternedTerm(in.Guardrails.BidiControls)),
			item("base64_blobs", ast.InternedTerm(in.Guardrails.Base64Blobs)),
		))
	}
	if _, ok := fs.want("moderation"); ok {
		b.add("moderation", ast.ObjectTerm(
			item("checked", ast.InternedTerm(in.Moderation.Checked)),
			item("flagged", ast.InternedTerm(in.Moderation.Flagged)),
			item("categories", stringArray(in.Moderation.Categories)),
			item("unavailable", ast.InternedTerm(in.Moderation.Unavailable)),
		))
	}
	if _, ok := fs.want("signals"); ok {
		b.add("signals", ast.ObjectTerm(item("matched_phrases", stringArray(in.Signals.MatchedPhrases))))
	}
	return ast.NewObject(b.items...)
}

// object collects the items of an object value; it has room for the input's
// largest objects without growing.
type object struct {
	items []([2]*ast.Term)
	buf   [14][2]*ast.Term
}

func (o *object) add(k string, v *ast.Term) {
	if o.items == nil {
		o.items = o.buf[:0]
	}
	o.items = append(o.items, item(k, v))
}

func (r RequestInfo) value(sub map[string]bool) ast.Value {
	var b object
	if wantSub(sub, "id") {
		b.add("id", ast.StringTerm(r.ID))
	}
	if wantSub(sub, "path") {
		b.add("path", ast.StringTerm(r.Path))
	}
	if wantSub(sub, "stream") {
		b.add("stream", ast.InternedTerm(r.Stream))
	}
	if wantSub(sub, "received_at") {
		received := ""
		if !r.ReceivedAt.IsZero() {
			received = r.ReceivedAt.UTC().Format(time.RFC3339Nano)
		}
		b.add("received_at", ast.StringTerm(received))
	}
	if wantSub(sub, "client_ip") {
		b.add("client_ip", ast.StringTerm(r.ClientIP))
	}
	if wantSub(sub, "headers") {
		b.add("headers", stringObject(r.Headers))
	}
	return ast.NewObject(b.items...)
}

func (id Identity) value(sub map[string]bool) ast.Value {
	var b object
	for _, f := range [...]struct {
		key string
		val string
	}{
		{"subject", id.Subject}, {"kind", id.Kind}, {"auth", id.Auth},
		{"key_id", id.KeyID}, {"team", id.Team}, {"org", id.Org},
	} {
		if wantSub(sub, f.key) {
			b.add(f.key, ast.StringTerm(f.val))
		}
	}
	if wantSub(sub, "roles") {
		b.add("roles", stringArray(id.Roles))
	}
	if wantSub(sub, "groups") {
		b.add("groups", stringArray(id.Groups))
	}
	if wantSub(sub, "labels") {
		b.add("labels", stringObject(id.Labels))
	}
	if wantSub(sub, "chain") {
		chain := make([]*ast.Term, len(id.Chain))
		for i, c := range id.Chain {
			chain[i] = ast.ObjectTerm(
				item("subject", ast.StringTerm(c.Subject)),
				item("kind", ast.StringTerm(c.Kind)),
			)
		}
		b.add("chain", ast.ArrayTerm(chain...))
	}
	return ast.NewObject(b.items...)
}

func (p Params) value() ast.Value {
	obj := ast.NewObject(
		item("tools", ast.InternedTerm(p.Tools)),
		item("tool_names", stringArray(p.ToolNames)),
		item("messages", ast.InternedTerm(p.Messages)),
	)
	if p.MaxTokens > 0 {
		obj.Insert(keyTerm("max_tokens"), ast.InternedTerm(p.MaxTokens))
	}
	if p.Temperature != nil {
		obj.Insert(keyTerm("temperature"), ast.NumberTerm(json.Number(strconv.FormatFloat(*p.Temperature, 'f', -1, 64))))
	}
	return obj
}

func (s PIISummary) value() ast.Value {
	findings := make([]*ast.Term, len(s.Findings))
	for i, f := range s.Findings {
		findings[i] = ast.ObjectTerm(
			item("type", ast.StringTerm(f.Type)),
			item("count", ast.InternedTerm(f.Count)),
			item("message", ast.InternedTerm(f.Message)),
			item("role", ast.StringTerm(f.Role)),
			item("where", ast.StringTerm(f.Where)),
		)
	}
	return ast.NewObject(
		item("types", stringArray(s.Types)),
		item("findings", ast.ArrayTerm(findings...)),
	)
}

// inputKeys are the keys of the input's objects, as shared terms: OPA treats
// terms as immutable (it interns common ones itself), so one term per key
// serves every input.
var inputKeys = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, k := range []string{
		"version", "request", "identity", "model", "params", "tokens", "pii", "complexity", "signals",
		"id", "path", "stream", "received_at", "client_ip", "headers",
		"subject", "kind", "auth", "key_id", "team", "org", "roles", "groups", "labels", "chain",
		"requested", "provider_hint", "tools", "tool_names", "messages", "max_tokens", "temperature",
		"prompt", "max_completion", "estimated_total", "types", "findings", "type", "count", "message", "role", "where",
		"score", "turns", "code", "math", "reasoning", "prompt_tokens", "matched_phrases",
		"guardrails", "hidden_unicode", "bidi_controls", "base64_blobs",
		"moderation", "checked", "flagged", "categories", "unavailable",
	} {
		m[k] = ast.StringTerm(k)
	}
	return m
}()

// keyTerm returns the shared term of the input key k.
func keyTerm(k string) *ast.Term {
	if t, ok := inputKeys[k]; ok {
		return t
	}
	return ast.StringTerm(k)
}

func item(k string, v *ast.Term) [2]*ast.Term { return [2]*ast.Term{keyTerm(k), v} }

func stringObject(m map[string]string) *ast.Term {
	items := make([][2]*ast.Term, 0, len(m))
	for k, v := range m {
		items = append(items, [2]*ast.Term{ast.StringTerm(k), ast.StringTerm(v)})
	}
	return ast.ObjectTerm(items...)
}

func stringArray(ss []string) *ast.Term {
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(terms...)
}
