package engine

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// fieldSet is the part of the input a prepared query can read, so that
// Policy.Eval builds only that part of the input value (building the whole
// input costs about as much as evaluating the default library's residual).
//
// A nil fieldSet stands for the whole input. Otherwise each key is a
// top-level field of the input the policy reads; its value is nil when the
// policy may read all of it, or the set of second-level fields it reads.
// Fields the policy never names are left out of the value: a policy cannot
// tell an absent field from one it does not look at.
type fieldSet map[string]map[string]bool

// want reports whether the top-level field k is read, and which of its
// fields (nil: all of them).
func (fs fieldSet) want(k string) (map[string]bool, bool) {
	if fs == nil {
		return nil, true
	}
	sub, ok := fs[k]
	return sub, ok
}

// wantSub reports whether the second-level field k of a field whose read
// fields are sub (nil: all) is read.
func wantSub(sub map[string]bool, k string) bool { return sub == nil || sub[k] }

// add records that path (at most two keys long, or empty for the whole
// input) is read; it returns false when the whole input is.
func (fs fieldSet) add(path []string) bool {
	if len(path) == 0 {
		return false
	}
	sub, seen := fs[path[0]]
	switch {
	case len(path) == 1:
		fs[path[0]] = nil
	case seen && sub == nil:
		// the whole field is read already
	default:
		if sub == nil {
			sub = map[string]bool{}
			fs[path[0]] = sub
		}
		sub[path[1]] = true
	}
	return true
}

// partialResultModule prefixes the names OPA's PartialResult gives the
// modules it adds to the compiler: the residual query and its support rules.
const partialResultModule = "__partialresult__"

// readFields returns the input fields that evaluating the partial result
// compiled into c can read: every input reference in the residual rules and,
// transitively, in every rule of the bundle they refer to. It returns nil
// (the whole input) when a rule reads the input other than by a path of
// constant keys, e.g. object.get(input, ...), input[x] or walk(input).
func readFields(c *ast.Compiler) fieldSet {
	var todo []*ast.Rule
	for name, m := range c.Modules {
		if strings.HasPrefix(name, partialResultModule) {
			todo = append(todo, m.Rules...)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	return readRules(c, todo)
}

// partialResultQuery is the rule holding the residual query of OPA's
// PartialResult (in its default namespace).
const partialResultQuery = "data.partial.__result__"

// readRules returns the input fields the rules todo read, following the
// rules of c they call (nil: all of the input).
func readRules(c *ast.Compiler, todo []*ast.Rule) fieldSet {
	fs := fieldSet{}
	seen := map[*ast.Rule]bool{}
	whole := false
	for len(todo) > 0 && !whole {
		r := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[r] {
			continue
		}
		seen[r] = true
		ast.WalkRefs(r, func(ref ast.Ref) bool {
			switch {
			case ref.HasPrefix(ast.InputRootRef):
				whole = !fs.add(constantKeys(ref[1:], 2))
			case ref.HasPrefix(ast.DefaultRootRef):
				todo = append(todo, c.GetRules(ref.GroundPrefix())...)
			}
			return whole
		})
	}
	if whole {
		return nil
	}
	return fs
}

// constantKeys returns the leading string keys of path, at most n of them.
func constantKeys(path ast.Ref, n int) []string {
	var keys []string
	for _, t := range path {
		s, ok := t.Value.(ast.String)
		if !ok || len(keys) == n {
			break
		}
		keys = append(keys, string(s))
	}
	return keys
}

// queryRule wraps the query q in a rule, for readRules.
func queryRule(q ast.Body) *ast.Rule {
	m := &ast.Module{Package: &ast.Package{Path: ast.Ref{ast.DefaultRootDocument, ast.StringTerm("tollgate_query")}}}
	r := &ast.Rule{Head: ast.NewHead(ast.Var("q")), Body: q, Module: m}
	m.Rules = []*ast.Rule{r}
	return r
}

// project returns the fields fs names (nil: all) of the input value v,
// which has at least those: what valueOf(fs) would have built.
func project(v ast.Value, fs fieldSet) ast.Value {
	obj, ok := v.(ast.Object)
	if fs == nil || !ok {
		return v
	}
	var b object
	obj.Foreach(func(k, val *ast.Term) {
		ks, ok := k.Value.(ast.String)
		if !ok {
			return
		}
		sub, want := fs.want(string(ks))
		if !want {
			return
		}
		if inner, isObj := val.Value.(ast.Object); isObj && sub != nil {
			var ib object
			inner.Foreach(func(k2, v2 *ast.Term) {
				if s2, ok := k2.Value.(ast.String); ok && sub[string(s2)] {
					ib.addItem([2]*ast.Term{k2, v2})
				}
			})
			val = ib.term()
		}
		b.addItem([2]*ast.Term{k, val})
	})
	return b.value()
}
