package engine

import (
	"encoding/json"
	"maps"
	"slices"
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

// clone returns a copy of in that shares no slice, map or pointer with it.
func (in *Input) clone() *Input {
	c := *in
	c.Request.Headers = maps.Clone(in.Request.Headers)
	c.Identity.Roles = slices.Clone(in.Identity.Roles)
	c.Identity.Groups = slices.Clone(in.Identity.Groups)
	c.Identity.Labels = maps.Clone(in.Identity.Labels)
	c.Identity.Chain = slices.Clone(in.Identity.Chain)
	c.Params.ToolNames = slices.Clone(in.Params.ToolNames)
	if in.Params.Temperature != nil {
		t := *in.Params.Temperature
		c.Params.Temperature = &t
	}
	c.PII.Types = slices.Clone(in.PII.Types)
	c.PII.Findings = slices.Clone(in.PII.Findings)
	c.Signals.MatchedPhrases = slices.Clone(in.Signals.MatchedPhrases)
	c.Moderation.Categories = slices.Clone(in.Moderation.Categories)
	return &c
}

// Value returns the input as an OPA value, built directly so that no JSON
// round trip is needed per evaluation.
func (in *Input) Value() ast.Value { return in.valueOf(nil) }

// valueOf builds the fields of the input that fs names (nil: all of them).
// appendKey (key.go) must encode exactly what this builds: keep them in step.
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
	if sub, ok := fs.want("model"); ok {
		var m object
		m.addIf(sub, "requested", func() *ast.Term { return ast.StringTerm(in.Model.Requested) })
		m.addIf(sub, "provider_hint", func() *ast.Term { return ast.StringTerm(in.Model.ProviderHint) })
		b.add("model", m.term())
	}
	if sub, ok := fs.want("params"); ok {
		b.add("params", ast.NewTerm(in.Params.value(sub)))
	}
	if sub, ok := fs.want("tokens"); ok {
		var t object
		t.addIf(sub, "prompt", func() *ast.Term { return ast.InternedTerm(in.Tokens.Prompt) })
		t.addIf(sub, "max_completion", func() *ast.Term { return ast.InternedTerm(in.Tokens.MaxCompletion) })
		t.addIf(sub, "estimated_total", func() *ast.Term { return ast.InternedTerm(in.Tokens.EstimatedTotal) })
		b.add("tokens", t.term())
	}
	if sub, ok := fs.want("pii"); ok {
		b.add("pii", ast.NewTerm(in.PII.value(sub)))
	}
	if sub, ok := fs.want("complexity"); ok {
		var c object
		c.addIf(sub, "score", func() *ast.Term { return floatTerm(in.Complexity.Score) })
		c.addIf(sub, "signals", func() *ast.Term {
			return ast.ObjectTerm(
				item("turns", ast.InternedTerm(in.Complexity.Turns)),
				item("code", ast.InternedTerm(in.Complexity.Code)),
				item("math", ast.InternedTerm(in.Complexity.Math)),
				item("reasoning", ast.InternedTerm(in.Complexity.Reasoning)),
				item("tools", ast.InternedTerm(in.Complexity.Tools)),
				item("prompt_tokens", ast.InternedTerm(in.Complexity.PromptTokens)),
			)
		})
		b.add("complexity", c.term())
	}
	if sub, ok := fs.want("guardrails"); ok {
		var g object
		g.addIf(sub, "signals", func() *ast.Term { return stringArray(in.Guardrails.IDs()) })
		g.addIf(sub, "hidden_unicode", func() *ast.Term { return ast.InternedTerm(in.Guardrails.HiddenUnicode) })
		g.addIf(sub, "bidi_controls", func() *ast.Term { return ast.InternedTerm(in.Guardrails.BidiControls) })
		g.addIf(sub, "base64_blobs", func() *ast.Term { return ast.InternedTerm(in.Guardrails.Base64Blobs) })
		b.add("guardrails", g.term())
	}
	if sub, ok := fs.want("moderation"); ok {
		var m object
		m.addIf(sub, "checked", func() *ast.Term { return ast.InternedTerm(in.Moderation.Checked) })
		m.addIf(sub, "flagged", func() *ast.Term { return ast.InternedTerm(in.Moderation.Flagged) })
		m.addIf(sub, "categories", func() *ast.Term { return stringArray(in.Moderation.Categories) })
		m.addIf(sub, "unavailable", func() *ast.Term { return ast.InternedTerm(in.Moderation.Unavailable) })
		b.add("moderation", m.term())
	}
	if sub, ok := fs.want("signals"); ok {
		var m object
		m.addIf(sub, "matched_phrases", func() *ast.Term { return stringArray(in.Signals.MatchedPhrases) })
		b.add("signals", m.term())
	}
	return b.value()
}

// object collects the items of an object value; it has room for the input's
// largest objects without growing.
type object struct {
	buf [14][2]*ast.Term
	n   int
}

func (o *object) add(k string, v *ast.Term) { o.addItem(item(k, v)) }

// addItem adds an item; the input's objects have at most len(o.buf).
func (o *object) addItem(it [2]*ast.Term) {
	o.buf[o.n] = it
	o.n++
}

// addIf adds the field k, built by v, when sub names it (nil: every field).
func (o *object) addIf(sub map[string]bool, k string, v func() *ast.Term) {
	if wantSub(sub, k) {
		o.add(k, v())
	}
}

func (o *object) term() *ast.Term { return ast.NewTerm(o.value()) }

// value returns the object. Its items are copied to a slice of their exact
// size, so that o (and its buffer) can stay on the stack.
func (o *object) value() ast.Value {
	items := make([][2]*ast.Term, o.n)
	copy(items, o.buf[:o.n])
	return ast.NewObject(items...)
}

func floatTerm(f float64) *ast.Term {
	return ast.NumberTerm(json.Number(strconv.FormatFloat(f, 'f', -1, 64)))
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
	return b.value()
}

// stringField is a string field of the input and its key.
type stringField struct{ key, val string }

// stringFields are the identity's string fields, in the input's order.
func (id *Identity) stringFields() [6]stringField {
	return [...]stringField{
		{"subject", id.Subject}, {"kind", id.Kind}, {"auth", id.Auth},
		{"key_id", id.KeyID}, {"team", id.Team}, {"org", id.Org},
	}
}

func (id Identity) value(sub map[string]bool) ast.Value {
	var b object
	for _, f := range id.stringFields() {
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
	return b.value()
}

func (p Params) value(sub map[string]bool) ast.Value {
	var b object
	b.addIf(sub, "tools", func() *ast.Term { return ast.InternedTerm(p.Tools) })
	b.addIf(sub, "tool_names", func() *ast.Term { return stringArray(p.ToolNames) })
	b.addIf(sub, "messages", func() *ast.Term { return ast.InternedTerm(p.Messages) })
	if p.MaxTokens > 0 {
		b.addIf(sub, "max_tokens", func() *ast.Term { return ast.InternedTerm(p.MaxTokens) })
	}
	if p.Temperature != nil {
		b.addIf(sub, "temperature", func() *ast.Term { return floatTerm(*p.Temperature) })
	}
	return b.value()
}

func (s PIISummary) value(sub map[string]bool) ast.Value {
	var b object
	b.addIf(sub, "types", func() *ast.Term { return stringArray(s.Types) })
	b.addIf(sub, "findings", func() *ast.Term {
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
		return ast.ArrayTerm(findings...)
	})
	return b.value()
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
