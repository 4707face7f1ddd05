package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/openai"
)

// DefaultMaxCompletion is the completion-token estimate for a request that
// sets no max_tokens.
const DefaultMaxCompletion = 4096

// Builder builds policy inputs from chat requests. It is safe for
// concurrent use.
type Builder struct {
	counter *tokens.Counter
	scanner *pii.Scanner
}

// NewBuilder returns a Builder.
func NewBuilder(counter *tokens.Counter, scanner *pii.Scanner) *Builder {
	return &Builder{counter: counter, scanner: scanner}
}

// Scanner returns the PII scanner the builder uses, for the response side.
func (b *Builder) Scanner() *pii.Scanner { return b.scanner }

// With returns a builder that scans with s (a policy's custom detectors),
// or b itself when s is nil.
func (b *Builder) With(s *pii.Scanner) *Builder {
	if s == nil {
		return b
	}
	return &Builder{counter: b.counter, scanner: s}
}

// Where a segment's text is, as in input.pii.findings[].where.
const (
	WhereContent        = "content"         // a message's content (string or text part)
	WhereToolCall       = "tool_call"       // the arguments of an assistant's tool call
	WhereToolDefinition = "tool_definition" // a tool definition (name, description, schema)
	WhereParameter      = "parameter"       // another request field forwarded as sent (user, metadata, ...)
)

// Segment is one piece of text the provider will see, with its findings.
type Segment struct {
	// Where is WhereContent, WhereToolCall or WhereToolDefinition.
	Where string
	// Message is the message's index; -1 for a tool definition.
	Message int
	// Part is the index in an array content (-1 for a string content), of
	// the tool call in the message, or of the tool definition.
	Part int
	// Refusal is set for the refusal text of a content part.
	Refusal bool
	// Field names the request field of a WhereParameter segment.
	Field    string
	Role     string
	Findings []pii.Finding
}

// ErrScan wraps a failure of the PII scan; the request must be refused.
var ErrScan = errors.New("PII scan failed")

// ScanTimeout bounds the PII scan of one request.
const ScanTimeout = 2 * time.Second

// Scan holds the PII findings of a request, so that masking needs no
// second scan.
type Scan struct {
	Segments []Segment
}

// Build returns the policy input for req and the PII scan behind it. The
// scan covers everything the provider will see: every message's content
// (string or text parts), the arguments of assistants' tool calls and the
// tool definitions. A scan that fails (too large, timed out, or any fault
// of the scanner) returns an error wrapping ErrScan: nothing is forwarded
// unscanned.
func (b *Builder) Build(ctx context.Context, req *openai.ChatRequest, info RequestInfo, id Identity) (*Input, *Scan, error) {
	ctx, cancel := context.WithTimeout(ctx, ScanTimeout)
	defer cancel()
	msgs := make([]tokens.Message, len(req.Messages))
	sc := scanState{b: b, ctx: ctx, scan: &Scan{}, counts: map[findingKey]int{}}
	var guard GuardrailSignals
	code := false
	for i, m := range req.Messages {
		msgs[i] = tokens.Message{Role: m.Role, Name: m.Name, Content: m.Content.String()}
		if !code && strings.Contains(msgs[i].Content, "```") {
			code = true
		}
		sc.text(WhereContent, i, -1, m.Role, m.Content.Text)
		guard.add(m.Content.Text)
		// Every part's text is scanned whatever its type says: what the
		// provider does with an unknown type is not ours to guess.
		for j, p := range m.Content.Parts {
			sc.text(WhereContent, i, j, m.Role, p.Text)
			guard.add(p.Text)
			if p.Refusal != "" {
				sc.refusal(i, j, m.Role, p.Refusal)
			}
		}
		for j, tc := range m.ToolCalls {
			sc.text(WhereToolCall, i, j, m.Role, tc.Function.Arguments)
			guard.add(tc.Function.Arguments)
		}
	}
	for j, t := range req.Tools {
		sc.text(WhereToolDefinition, -1, j, "", string(t.Function))
	}
	sc.field("user", req.User)
	for _, k := range slices.Sorted(maps.Keys(req.Extra)) {
		sc.field(k, string(req.Extra[k]))
	}
	if sc.err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrScan, sc.err)
	}
	scan, findings, order := sc.scan, sc.counts, sc.order
	in := &Input{
		Request:  info,
		Identity: id,
		Model:    ModelInfo{Requested: req.Model},
		Params: Params{
			MaxTokens:   req.MaxOutputTokens(),
			Temperature: req.Temperature,
			Tools:       len(req.Tools),
			ToolNames:   toolNames(req.Tools),
			Messages:    len(req.Messages),
		},
	}
	in.Request.Stream = req.Stream
	in.Tokens.Prompt = b.counter.CountChat(req.Model, msgs)
	in.Tokens.MaxCompletion = req.MaxOutputTokens()
	if in.Tokens.MaxCompletion == 0 {
		in.Tokens.MaxCompletion = DefaultMaxCompletion
	}
	in.Tokens.EstimatedTotal = in.Tokens.Prompt + in.Tokens.MaxCompletion

	types := map[string]bool{}
	for _, k := range order {
		role := ""
		if k.message >= 0 {
			role = req.Messages[k.message].Role
		}
		in.PII.Findings = append(in.PII.Findings, PIIFinding{Type: k.typ, Count: findings[k], Message: k.message, Role: role, Where: k.where})
		if !types[k.typ] {
			types[k.typ] = true
			in.PII.Types = append(in.PII.Types, k.typ)
		}
	}
	sort.Strings(in.PII.Types)
	lastUser := ""
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			lastUser = msgs[i].Content
			break
		}
	}
	in.Guardrails = guard
	in.Complexity = estimateComplexity(in.Tokens.Prompt, len(req.Messages), len(req.Tools), code, lastUser)
	return in, scan, nil
}

// toolNames returns the names of the function tools; a tool whose name
// cannot be read counts as "" (so a policy that lists allowed tools refuses
// it).
func toolNames(tools []openai.Tool) []string {
	names := make([]string, 0, len(tools))
	for _, t := range tools {
		var fn struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(t.Function, &fn)
		names = append(names, fn.Name)
	}
	return names
}

type findingKey struct {
	typ     string
	message int
	where   string
}

// scanState gathers the findings of one request; the first scan error
// stops it.
type scanState struct {
	b      *Builder
	ctx    context.Context
	scan   *Scan
	counts map[findingKey]int
	order  []findingKey
	err    error
}

func (s *scanState) text(where string, msg, part int, role, text string) {
	s.segment(Segment{Where: where, Message: msg, Part: part, Role: role}, text)
}

func (s *scanState) refusal(msg, part int, role, text string) {
	s.segment(Segment{Where: WhereContent, Message: msg, Part: part, Role: role, Refusal: true}, text)
}

func (s *scanState) field(name, raw string) {
	s.segment(Segment{Where: WhereParameter, Message: -1, Part: -1, Field: name}, raw)
}

// segment scans text and records seg with its findings, if any.
func (s *scanState) segment(seg Segment, text string) {
	if text == "" || s.err != nil {
		return
	}
	fs, err := s.b.scanner.ScanContext(s.ctx, text, nil)
	if err != nil {
		s.err = err
		return
	}
	if len(fs) == 0 {
		return
	}
	seg.Findings = fs
	s.scan.Segments = append(s.scan.Segments, seg)
	for _, f := range fs {
		k := findingKey{typ: f.Type, message: seg.Message, where: seg.Where}
		if s.counts[k] == 0 {
			s.order = append(s.order, k)
		}
		s.counts[k]++
	}
}

// MaskResult tells what masking did.
type MaskResult struct {
	// Masked counts replaced values.
	Masked int
	// Blocked lists the PII types whose action is block; the request must
	// not be forwarded when it is not empty.
	Blocked []string
}

// MaskOptions serve the reversible and keyed mask actions.
type MaskOptions struct {
	// Hasher serves the hash action (a keyed, per-tenant token); without
	// one, hash redacts.
	Hasher *pii.Hasher
	// Placeholders serves the placeholder action (<EMAIL_1>, consistent
	// within the request); the caller restores the originals in the
	// response with it. Without one, placeholder redacts.
	Placeholders *pii.Placeholders
}

// ApplyMask rewrites req in place following the decision's mask rules, with
// the placeholder and hash actions redacting.
func ApplyMask(req *openai.ChatRequest, scan *Scan, m Mask) MaskResult {
	return ApplyMaskWith(req, scan, m, MaskOptions{})
}

// ApplyMaskWith rewrites req in place following the decision's mask rules.
// No value whose type has an action is ever forwarded: block leaves the
// text as it is and lists the type in Blocked, and the caller must then
// refuse the request.
func ApplyMaskWith(req *openai.ChatRequest, scan *Scan, m Mask, opts MaskOptions) MaskResult {
	var res MaskResult
	if scan == nil || len(m.Rules) == 0 {
		return res
	}
	blocked := map[string]bool{}
	r := pii.Replacer{ActionFor: m.ActionFor, Hasher: opts.Hasher, Placeholders: opts.Placeholders}
	replace := func(typ, value string) (string, bool) {
		if m.ActionFor(typ) == ActionBlock {
			if !blocked[typ] {
				blocked[typ] = true
				res.Blocked = append(res.Blocked, typ)
			}
			return "", false
		}
		out, ok := r.Replace(typ, value)
		if ok {
			res.Masked++
		}
		return out, ok
	}
	for _, s := range scan.Segments {
		switch s.Where {
		case WhereToolDefinition:
			t := &req.Tools[s.Part]
			t.Function = json.RawMessage(pii.Mask(string(t.Function), s.Findings, replace))
		case WhereToolCall:
			fn := &req.Messages[s.Message].ToolCalls[s.Part].Function
			fn.Arguments = pii.Mask(fn.Arguments, s.Findings, replace)
		case WhereParameter:
			if s.Field == "user" {
				req.User = pii.Mask(req.User, s.Findings, replace)
			} else {
				req.Extra[s.Field] = json.RawMessage(pii.Mask(string(req.Extra[s.Field]), s.Findings, replace))
			}
		default:
			msg := &req.Messages[s.Message]
			if s.Refusal {
				p := &msg.Content.Parts[s.Part]
				p.Refusal = pii.Mask(p.Refusal, s.Findings, replace)
			} else if s.Part >= 0 {
				msg.Content.Parts[s.Part].Text = pii.Mask(msg.Content.Parts[s.Part].Text, s.Findings, replace)
			} else {
				msg.Content.Text = pii.Mask(msg.Content.Text, s.Findings, replace)
			}
		}
	}
	return res
}
