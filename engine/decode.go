package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// decodeDecision turns the policy's result (the JSON-like value OPA returns:
// maps, slices, strings, bools and json.Number) into a Decision without a
// JSON round trip, rejecting unknown fields and wrong types, then validates
// it. Every error wraps ErrInvalidDecision: the caller fails closed.
func decodeDecision(v any) (Decision, error) {
	var d Decision
	dec := decoder{}
	if v != nil { // null decodes to the zero decision: a default denial
		dec.decision(v, &d)
	}
	if dec.err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrInvalidDecision, dec.err)
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

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, float64, int, int64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// object checks that v is an object whose keys are all in fields and calls
// each for every present key.
func (x *decoder) object(path string, v any, fields []string, each func(key string, val any)) {
	m, ok := v.(map[string]any)
	if !ok {
		x.fail(path, "got %s, want an object", kind(v))
		return
	}
	for k, val := range m {
		known := false
		for _, f := range fields {
			if f == k {
				known = true
				break
			}
		}
		if !known {
			x.fail(path, "unknown field %q (allowed: %s)", k, strings.Join(fields, ", "))
			return
		}
		each(k, val)
	}
}

func (x *decoder) array(path string, v any, each func(i int, val any)) {
	a, ok := v.([]any)
	if !ok {
		if v == nil {
			return
		}
		x.fail(path, "got %s, want an array", kind(v))
		return
	}
	for i, val := range a {
		each(i, val)
	}
}

func (x *decoder) str(path string, v any) string {
	s, ok := v.(string)
	if !ok {
		x.fail(path, "got %s, want a string", kind(v))
	}
	return s
}

func (x *decoder) boolean(path string, v any) bool {
	b, ok := v.(bool)
	if !ok {
		x.fail(path, "got %s, want true or false", kind(v))
	}
	return b
}

func (x *decoder) number(path string, v any) float64 {
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
	x.object("decision", v, []string{"allow", "deny", "route", "mask", "limits", "stream", "log"}, func(k string, val any) {
		switch k {
		case "allow":
			d.Allow = x.boolean("allow", val)
		case "deny":
			if val != nil {
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
			if val == nil {
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
					if val != nil {
						d.Mask.Rules = []MaskRule{}
					}
					x.array("mask.rules", val, func(i int, e any) {
						p := fmt.Sprintf("mask.rules[%d]", i)
						var r MaskRule
						x.object(p, e, []string{"types", "action"}, func(k string, val any) {
							switch k {
							case "types":
								if val != nil {
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
			if val != nil {
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
					m, ok := val.(map[string]any)
					if !ok {
						x.fail("log.tags", "got %s, want an object of strings", kind(val))
						return
					}
					d.Log.Tags = make(map[string]string, len(m))
					for tk, tv := range m {
						d.Log.Tags[tk] = x.str("log.tags."+tk, tv)
					}
				}
			})
		}
	})
}

func (x *decoder) targets(path string, v any) []Target {
	var ts []Target
	if v != nil {
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
