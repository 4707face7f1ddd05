package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// DefaultResponseEntrypoint is the rule that decides on a model's answer.
const DefaultResponseEntrypoint = "data.tollgate.main.response_decision"

// ResponseVerdict is the policy's decision on a model's answer.
type ResponseVerdict struct {
	// Allow is false when the answer must not reach the client.
	Allow bool
	// Deny says why, as in Decision.
	Deny []Deny
	// Signals and Phrases are what the engine found in the answer.
	Signals []string
	Phrases []string
}

// CheckResponse applies the policy's guardrails to a model's answer: the
// engine finds the content signals (hidden Unicode, bidi controls, base64
// blobs) and the blocked-phrase rules in text, and the response entrypoint
// decides on them (nothing is scanned when the bundle's data has no rule
// for answers), with the request's input plus input.response =
// {"signals": [...], "matched_phrases": [...]}. An answer with neither is
// allowed without an evaluation; an undefined entrypoint allows.
func (p *Policy) CheckResponse(ctx context.Context, in *Input, text string) (ResponseVerdict, error) {
	if !p.answerRules {
		return ResponseVerdict{Allow: true}, nil
	}
	var g GuardrailSignals
	g.add(text)
	v := ResponseVerdict{Allow: true, Signals: g.IDs(), Phrases: p.matchTexts([]string{text})}
	if len(v.Signals) == 0 && len(v.Phrases) == 0 {
		return v, nil
	}
	// Decoding reads the result's terms too (see partialMu).
	partialMu.RLock()
	defer partialMu.RUnlock()
	val, ok := in.Value().(ast.Object)
	if !ok {
		return v, fmt.Errorf("evaluate response: the input is not an object")
	}
	val.Insert(ast.StringTerm("response"), ast.ObjectTerm(
		item("signals", stringArray(v.Signals)),
		item("matched_phrases", stringArray(v.Phrases)),
	))
	rs, err := p.response.Eval(ctx, rego.EvalParsedInput(val), rego.EvalGenerateJSON(astResult))
	if err != nil {
		return v, fmt.Errorf("evaluate response: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return v, nil
	}
	var d Decision
	x := decoder{}
	x.object("response decision", rs[0].Expressions[0].Value, []string{"allow", "deny"}, func(k string, val any) {
		switch k {
		case "allow":
			d.Allow = x.boolean("allow", val)
		case "deny":
			x.array("deny", val, func(i int, e any) {
				var dn Deny
				x.object(fmt.Sprintf("deny[%d]", i), e, []string{"code", "message", "status"}, func(k string, val any) {
					switch k {
					case "code":
						dn.Code = x.str("code", val)
					case "message":
						dn.Message = x.str("message", val)
					case "status":
						dn.Status = int(x.integer("status", val))
					}
				})
				d.Deny = append(d.Deny, dn)
			})
		}
	})
	if x.err == nil {
		x.err = d.validate()
	}
	if x.err != nil {
		return v, fmt.Errorf("%w: response decision: %v", ErrInvalidDecision, x.err)
	}
	v.Allow, v.Deny = d.Allow, d.Deny
	return v, nil
}

// hasAnswerRules reports whether the bundle's guardrail data has a phrase
// or signal rule for answers ("responses": true); without one, answers are
// not scanned at all.
func hasAnswerRules(data map[string]any) bool {
	root, _ := data["data"].(map[string]any)
	g, _ := root["guardrails"].(map[string]any)
	for _, key := range []string{"blocked_phrases", "signals"} {
		rules, _ := g[key].(map[string]any)
		for _, r := range rules {
			if rule, ok := r.(map[string]any); ok && rule["responses"] == true {
				return true
			}
		}
	}
	return false
}

// matchTexts returns the ids of the blocked-phrase rules whose phrases
// occur in one of texts (case and white space folded).
func (p *Policy) matchTexts(texts []string) []string {
	if len(p.phrases) == 0 {
		return nil
	}
	norm := make([]string, 0, len(texts))
	for _, t := range texts {
		if t != "" {
			norm = append(norm, normalize(t))
		}
	}
	var ids []string
	for _, r := range p.phrases {
	rule:
		for _, ph := range r.phrases {
			for _, t := range norm {
				if strings.Contains(t, ph) {
					ids = append(ids, r.id)
					break rule
				}
			}
		}
	}
	return ids
}
