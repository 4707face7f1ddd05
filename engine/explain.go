package engine

import (
	"context"
	"fmt"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// RuleHit is a rule body that succeeded while the decision was made.
type RuleHit struct {
	// Rule is the rule's reference, e.g. data.tollgate.authz.deny.
	Rule string `json:"rule"`
	// Location is file:line of the rule.
	Location string `json:"location"`
}

// Explain evaluates the policy on in with tracing and returns the decision
// with the rules whose bodies succeeded, in file order. It is much slower
// than Eval and meant for `tollgate policy eval --explain`, not requests.
func (p *Policy) Explain(ctx context.Context, in *Input) (Decision, []RuleHit, error) {
	tracer := topdown.NewBufferTracer()
	// The trace and the result hold terms partial evaluation may rewrite
	// (see partialMu).
	partialMu.RLock()
	defer partialMu.RUnlock()
	v := in.Value()
	rs, err := p.query.Eval(ctx, rego.EvalParsedInput(v), rego.EvalQueryTracer(tracer))
	if err != nil {
		return Decision{}, nil, fmt.Errorf("evaluate policy: %w", err)
	}
	seen := map[string]bool{}
	var hits []RuleHit
	for _, ev := range *tracer {
		if ev.Op != topdown.ExitOp {
			continue
		}
		rule, ok := ev.Node.(*ast.Rule)
		if !ok || rule.Location == nil {
			continue
		}
		loc := fmt.Sprintf("%s:%d", rule.Location.File, rule.Location.Row)
		if seen[loc] {
			continue
		}
		seen[loc] = true
		hits = append(hits, RuleHit{Rule: rule.Path().String(), Location: loc})
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].Location < hits[j].Location })
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, hits, ErrUndefined
	}
	d, err := decodeDecision(rs[0].Expressions[0].Value)
	return d, hits, err
}

// JSON returns the input as the plain JSON-like value a policy sees, for
// printing.
func (in *Input) JSON() (any, error) {
	return ast.JSON(in.Value())
}
