package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// decodeDecision turns the policy's result into a Decision without a JSON
// round trip, rejecting unknown fields and wrong types, then validates it.
// The result is either the AST value of the evaluation (what Policy.Eval
// passes: OPA then skips its conversion to Go values) or the JSON-like value
// OPA returns by default (maps, slices, strings, bools and json.Number).
// Every error wraps ErrInvalidDecision: the caller fails closed.
func decodeDecision(v any) (Decision, error) { return decodeOnto(Decision{}, v) }

// decodeOnto decodes v onto d, whose fields the fields of v replace, and
// validates the result: a specialization's decision is its constant part
// (d) completed by what it evaluated (v).
func decodeOnto(d Decision, v any) (Decision, error) {
	if isNull(v) { // null decodes to the zero decision: a default denial
		d = Decision{}
	} else {
		dec := decoder{}
		dec.decision(v, &d)
		if dec.err != nil {
			return Decision{}, fmt.Errorf("%w: %v", ErrInvalidDecision, dec.err)
		}
	}
	if err := d.validate(); err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrInvalidDecision, err)
	}
	return d, nil
}

// decoder keeps the first error; later calls are no-ops once it is set.
type decoder struct {
	err error
}

func (x *decoder) fail(path, format string, args ...any) {
	if x.err == nil {
		x.err = fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
	}
}

// isNull reports whether v is absent or null in either representation.
func isNull(v any) bool {
	switch v.(type) {
	case nil, ast.Null:
		return true
	}
	return false
}

func kind(v any) string {
	switch v.(type) {
	case nil, ast.Null:
		return "null"
	case bool, ast.Boolean:
		return "a boolean"
	case string, ast.String:
		return "a string"
	case json.Number, float64, int, int64, ast.Number:
		return "a number"
	case []any, *ast.Array:
		return "an array"
	case ast.Set:
		return "a set"
	case map[string]any, ast.Object:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// objectKV calls each for every key and value of the object v and reports
// whether v is an object. An AST object whose key is not a string fails
// with the key's text.
func (x *decoder) objectKV(path string, v any, each func(key string, val any)) bool {
	switch m := v.(type) {
	case map[string]any:
		for k, val := range m {
			each(k, val)
		}
		return true
	case ast.Object:
		m.Foreach(func(k, val *ast.Term) {
			ks, ok := k.Value.(ast.String)
			if !ok {
				x.fail(path, "key %v is not a string", k)
				return
			}
			each(string(ks), val.Value)
		})
		return true
	}
	return false
}

// object checks that v is an object whose keys are all in fields and calls
// each for every present key.
func (x *decoder) object(path string, v any, fields []string, each func(key string, val any)) {
	stop := false
	ok := x.objectKV(path, v, func(k string, val any) {
		if stop {
			return
		}
		known := false
		for _, f := range fields {
			if f == k {
				known = true
				break
			}
		}
		if !known {
			x.fail(path, "unknown field %q (allowed: %s)", k, strings.Join(fields, ", "))
			stop = true
			return
		}
		each(k, val)
	})
	if !ok {
		x.fail(path, "got %s, want an object", kind(v))
	}
}

func (x *decoder) array(path string, v any, each func(i int, val any)) {
	switch a := v.(type) {
	case []any:
		for i, val := range a {
			each(i, val)
		}
	case *ast.Array:
		for i := range a.Len() {
			each(i, a.Elem(i).Value)
		}
	case ast.Set: // sets (a partial rule's result) decode in sorted order
		i := 0
		a.Foreach(func(t *ast.Term) {
			each(i, t.Value)
			i++
		})
	default:
		if !isNull(v) {
			x.fail(path, "got %s, want an array", kind(v))
		}
	}
}

func (x *decoder) str(path string, v any) string {
	switch s := v.(type) {
	case string:
		return s
	case ast.String:
		return string(s)
	}
	x.fail(path, "got %s, want a string", kind(v))
	return ""
}

func (x *decoder) boolean(path string, v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case ast.Boolean:
		return bool(b)
	}
	x.fail(path, "got %s, want true or false", kind(v))
	return false
}

func (x *decoder) number(path string, v any) float64 {
	if n, ok := v.(ast.Number); ok {
		v = json.Number(n)
	}
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		if err != nil {
			x.fail(path, "%q is not a number", n.String())
		}
		return f
	case float64:
		return n
	case int:
		return float64(n)
	case int64:
		return float64(n)
	}
	x.fail(path, "got %s, want a number", kind(v))
	return 0
}

func (x *decoder) integer(path string, v any) int64 {
	f := x.number(path, v)
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		x.fail(path, "%v is not a whole number", f)
		return 0
	}
	return int64(f)
}

func (x *decoder) decision(v any, d *Decision) {
	x.object("decision", v, []string{"allow", "deny", "route", "mask", "limits", "stream", "log", "params"}, func(k string, val any) {
		switch k {
		case "allow":
			d.Allow = x.boolean("allow", val)
		case "deny":
			if !isNull(val) {
				d.Deny = []Deny{}
			}
			x.array("deny", val, func(i int, e any) {
				p := fmt.Sprintf("deny[%d]", i)
				var dn Deny
				x.object(p, e, []string{"code", "message", "status"}, func(k string, val any) {
					switch k {
					case "code":
						dn.Code = x.str(p+".code", val)
					case "message":
						dn.Message = x.str(p+".message", val)
					case "status":
						dn.Status = int(x.integer(p+".status", val))
					}
				})
				d.Deny = append(d.Deny, dn)
			})
		case "route":
			if isNull(val) {
				return
			}
			r := &Route{}
			x.object("route", val, []string{"targets", "fallbacks", "timeout_ms", "retries"}, func(k string, val any) {
				switch k {
				case "targets":
					r.Targets = x.targets("route.targets", val)
				case "fallbacks":
					r.Fallbacks = x.targets("route.fallbacks", val)
				case "timeout_ms":
					r.TimeoutMS = int(x.integer("route.timeout_ms", val))
				case "retries":
					r.Retries = int(x.integer("route.retries", val))
				}
			})
			d.Route = r
		case "mask":
			x.object("mask", val, []string{"rules", "response"}, func(k string, val any) {
				switch k {
				case "rules":
					if !isNull(val) {
						d.Mask.Rules = []MaskRule{}
					}
					x.array("mask.rules", val, func(i int, e any) {
						p := fmt.Sprintf("mask.rules[%d]", i)
						var r MaskRule
						x.object(p, e, []string{"types", "action"}, func(k string, val any) {
							switch k {
							case "types":
								if !isNull(val) {
									r.Types = []string{}
								}
								x.array(p+".types", val, func(j int, t any) {
									r.Types = append(r.Types, x.str(fmt.Sprintf("%s.types[%d]", p, j), t))
								})
							case "action":
								r.Action = x.str(p+".action", val)
							}
						})
						d.Mask.Rules = append(d.Mask.Rules, r)
					})
				case "response":
					d.Mask.Response = x.boolean("mask.response", val)
				}
			})
		case "limits":
			if !isNull(val) {
				d.Limits = []Limit{}
			}
			x.array("limits", val, func(i int, e any) {
				p := fmt.Sprintf("limits[%d]", i)
				var l Limit
				x.object(p, e, []string{"scope", "window", "tokens", "requests", "usd"}, func(k string, val any) {
					switch k {
					case "scope":
						l.Scope = x.str(p+".scope", val)
					case "window":
						l.Window = x.str(p+".window", val)
					case "tokens":
						l.Tokens = x.integer(p+".tokens", val)
					case "requests":
						l.Requests = x.integer(p+".requests", val)
					case "usd":
						l.USD = x.number(p+".usd", val)
					}
				})
				d.Limits = append(d.Limits, l)
			})
		case "params":
			x.object("params", val, []string{"default_max_tokens"}, func(_ string, val any) {
				d.Params.DefaultMaxTokens = int(x.integer("params.default_max_tokens", val))
			})
		case "stream":
			x.object("stream", val, []string{"cutoff"}, func(_ string, val any) {
				d.Stream.Cutoff = x.boolean("stream.cutoff", val)
			})
		case "log":
			x.object("log", val, []string{"store_prompt", "tags"}, func(k string, val any) {
				switch k {
				case "store_prompt":
					d.Log.StorePrompt = x.boolean("log.store_prompt", val)
				case "tags":
					tags := map[string]string{}
					if !x.objectKV("log.tags", val, func(tk string, tv any) {
						tags[tk] = x.str("log.tags."+tk, tv)
					}) {
						x.fail("log.tags", "got %s, want an object of strings", kind(val))
						return
					}
					d.Log.Tags = tags
				}
			})
		}
	})
}

func (x *decoder) targets(path string, v any) []Target {
	var ts []Target
	if !isNull(v) {
		ts = []Target{}
	}
	x.array(path, v, func(i int, e any) {
		p := fmt.Sprintf("%s[%d]", path, i)
		var t Target
		x.object(p, e, []string{"provider", "model", "weight"}, func(k string, val any) {
			switch k {
			case "provider":
				t.Provider = x.str(p+".provider", val)
			case "model":
				t.Model = x.str(p+".model", val)
			case "weight":
				t.Weight = int(x.integer(p+".weight", val))
			}
		})
		ts = append(ts, t)
	})
	return ts
}
