package engine

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// mutations returns, for every field of v (a pointer to a struct) and of
// the structs, slices and maps inside it, a function that changes that
// field of a copy made by clone. Fields are found by reflection, so a field
// added to Input is changed here without anyone listing it.
func mutations(t *testing.T, typ reflect.Type, path string) map[string]func(reflect.Value) {
	t.Helper()
	out := map[string]func(reflect.Value){}
	for i := range typ.NumField() {
		f := typ.Field(i)
		p := path + "." + f.Name
		switch f.Type {
		case reflect.TypeFor[time.Time]():
			out[p] = func(v reflect.Value) {
				fv := v.Field(i)
				fv.Set(reflect.ValueOf(fv.Interface().(time.Time).Add(time.Second)))
			}
			continue
		}
		switch f.Type.Kind() {
		case reflect.String:
			out[p] = func(v reflect.Value) { v.Field(i).SetString(v.Field(i).String() + "x") }
		case reflect.Int:
			out[p] = func(v reflect.Value) { v.Field(i).SetInt(v.Field(i).Int() + 1) }
		case reflect.Bool:
			out[p] = func(v reflect.Value) { v.Field(i).SetBool(!v.Field(i).Bool()) }
		case reflect.Float64:
			out[p] = func(v reflect.Value) { v.Field(i).SetFloat(v.Field(i).Float() + 0.25) }
		case reflect.Pointer: // *float64
			out[p+"(set)"] = func(v reflect.Value) {
				x := 0.5
				if !v.Field(i).IsNil() {
					x = v.Field(i).Elem().Float() + 0.25
				}
				v.Field(i).Set(reflect.ValueOf(&x))
			}
			out[p+"(unset)"] = func(v reflect.Value) { v.Field(i).SetZero() }
		case reflect.Slice:
			elem := f.Type.Elem()
			out[p+"(append)"] = func(v reflect.Value) {
				v.Field(i).Set(reflect.Append(v.Field(i), sampleValue(elem)))
			}
			if elem.Kind() == reflect.Struct {
				for name, m := range mutations(t, elem, p+"[0]") {
					out[name] = func(v reflect.Value) {
						s := v.Field(i)
						if s.Len() == 0 {
							s = reflect.Append(s, sampleValue(elem))
							v.Field(i).Set(s)
						}
						m(s.Index(0))
					}
				}
			} else {
				out[p+"[0]"] = func(v reflect.Value) {
					s := v.Field(i)
					if s.Len() == 0 {
						v.Field(i).Set(reflect.Append(s, sampleValue(elem)))
						return
					}
					s.Index(0).SetString(s.Index(0).String() + "x")
				}
			}
		case reflect.Map:
			out[p+"(add)"] = func(v reflect.Value) {
				m := reflect.MakeMap(f.Type)
				for _, k := range v.Field(i).MapKeys() {
					m.SetMapIndex(k, v.Field(i).MapIndex(k))
				}
				m.SetMapIndex(reflect.ValueOf("added"), reflect.ValueOf("v"))
				v.Field(i).Set(m)
			}
		case reflect.Struct:
			for name, m := range mutations(t, f.Type, p) {
				out[name] = func(v reflect.Value) { m(v.Field(i)) }
			}
		default:
			t.Fatalf("%s: no mutation for kind %s; extend mutations", p, f.Type.Kind())
		}
	}
	return out
}

// sampleValue is a non-zero value of a slice element type.
func sampleValue(typ reflect.Type) reflect.Value {
	v := reflect.New(typ).Elem()
	switch typ.Kind() {
	case reflect.String:
		v.SetString("sample")
	case reflect.Struct:
		for i := range typ.NumField() {
			f := v.Field(i)
			switch f.Kind() {
			case reflect.String:
				f.SetString("s")
			case reflect.Int:
				f.SetInt(1)
			}
		}
	}
	return v
}

// fullInput is an input with every field set, slices and maps non-empty.
func fullInput() *Input {
	temp := 0.3
	return &Input{
		Request: RequestInfo{ID: "req_1", Path: "/v1/chat/completions", Stream: true,
			ReceivedAt: time.Date(2026, 11, 26, 9, 0, 0, 5, time.UTC), ClientIP: "127.0.0.1",
			Headers: map[string]string{"x-b": "2", "x-a": "1", "x-c": "3"}},
		Identity: Identity{Subject: "ana", Kind: "user", Auth: "api_key", KeyID: "k_ana", Team: "ml", Org: "acme",
			Roles: []string{"developer", "analyst"}, Groups: []string{"g1"},
			Labels: map[string]string{"project": "search", "cost_center": "cc"},
			Chain:  []ChainLink{{Subject: "agent-a", Kind: "agent"}}},
		Model:      ModelInfo{Requested: "gpt-4o", ProviderHint: "openai"},
		Params:     Params{MaxTokens: 100, Temperature: &temp, Tools: 1, ToolNames: []string{"search"}, Messages: 3},
		Tokens:     Tokens{Prompt: 10, MaxCompletion: 100, EstimatedTotal: 110},
		PII:        PIISummary{Types: []string{"EMAIL"}, Findings: []PIIFinding{{Type: "EMAIL", Count: 2, Message: 1, Role: "user", Where: "content"}}},
		Complexity: Complexity{Score: 0.4, Turns: 2, Code: true, Tools: 1, PromptTokens: 10},
		Signals:    Signals{MatchedPhrases: []string{"jailbreak"}},
		Guardrails: GuardrailSignals{HiddenUnicode: 1},
		Moderation: Moderation{Checked: true, Categories: []string{"violence"}},
	}
}

// TestKeyFollowsValue checks the contract of appendKey: for every field of
// the input, changed in turn, and for several field sets, the key changes
// whenever the input value built from the same fields does. A key that
// stayed equal while the value changed would let the specialization cache
// serve one caller's decision to another.
func TestKeyFollowsValue(t *testing.T) {
	t.Parallel()
	known, _ := splitFields(nil)
	sets := map[string]fieldSet{
		"whole input":   nil,
		"stable fields": known,
		"some fields": {
			"identity": {"roles": true, "labels": true, "chain": true},
			"request":  {"headers": true, "received_at": true},
			"params":   {"temperature": true, "max_tokens": true},
			"pii":      {"findings": true},
			"tokens":   {"prompt": true},
		},
	}
	muts := mutations(t, reflect.TypeFor[Input](), "Input")
	if len(muts) < 50 {
		t.Fatalf("only %d mutations; the reflection walk missed fields", len(muts))
	}
	for name, fs := range sets {
		t.Run(name, func(t *testing.T) {
			base := fullInput()
			baseKey := base.appendKey(nil, fs)
			baseValue := base.valueOf(fs)
			// Map order must not matter: rebuild the maps and compare.
			again := fullInput()
			again.Request.Headers = map[string]string{"x-c": "3", "x-a": "1", "x-b": "2"}
			if !bytes.Equal(again.appendKey(nil, fs), baseKey) {
				t.Error("the key depends on the order of a map")
			}
			changed := 0
			for mname, mutate := range muts {
				in := fullInput()
				mutate(reflect.ValueOf(in).Elem())
				sameValue := ast.Compare(in.valueOf(fs), baseValue) == 0
				sameKey := bytes.Equal(in.appendKey(nil, fs), baseKey)
				if sameKey && !sameValue {
					t.Errorf("%s: the value changed but the key did not", mname)
				}
				if !sameValue {
					changed++
				}
			}
			if changed == 0 {
				t.Error("no mutation changed the value")
			}
		})
	}
}

// TestSplitFields checks which fields a specialization knows and which it
// leaves unknown.
func TestSplitFields(t *testing.T) {
	t.Parallel()
	known, unknown := splitFields(fieldSet{
		"identity": {"team": true},
		"tokens":   {"prompt": true},
		"request":  nil,
		"pii":      {"types": true},
	})
	want := fieldSet{
		"identity": {"team": true},
		"request":  {"path": true, "stream": true, "headers": true},
		"pii":      {"types": true},
	}
	if !reflect.DeepEqual(known, want) {
		t.Errorf("known = %v, want %v", known, want)
	}
	var refs []string
	for _, u := range unknown {
		refs = append(refs, u.String())
	}
	wantRefs := []string{"input.request.id", "input.request.received_at", "input.request.client_ip", "input.tokens"}
	if !reflect.DeepEqual(refs, wantRefs) {
		t.Errorf("unknown = %v, want %v", refs, wantRefs)
	}
}

// TestCloneSharesNothing changes every field of a clone in turn and checks
// that the original does not change.
func TestCloneSharesNothing(t *testing.T) {
	t.Parallel()
	want := fullInput().Value()
	for name, mutate := range mutations(t, reflect.TypeFor[Input](), "Input") {
		orig := fullInput()
		c := orig.clone()
		if ast.Compare(c.Value(), want) != 0 {
			t.Fatalf("the clone differs from the original")
		}
		mutate(reflect.ValueOf(c).Elem())
		if ast.Compare(orig.Value(), want) != 0 {
			t.Errorf("%s: changing the clone changed the original", name)
		}
	}
}
