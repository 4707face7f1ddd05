package engine

import (
	"context"
	"testing"
)

type zzCase struct {
	name     string
	rego     string
	variants []func(*Input)
}

func zzRun(t *testing.T, tc zzCase) {
	ctx := context.Background()
	full := compile(t, newEngine(t, Config{SpecializationCache: -1}), mainBundle(t, tc.rego))
	spec := compile(t, newEngine(t, Config{}), mainBundle(t, tc.rego))
	if spec.spec == nil {
		t.Logf("%s: no specializer (partial off)", tc.name)
		return
	}
	t.Logf("%s: fields %v known %v unknown %v", tc.name, spec.fields, spec.spec.known, spec.spec.unknown)
	base := chatInput("ana", []string{"dev"}, "echo")
	base.Request.ID = "abc"
	for range 2 {
		spec.Eval(ctx, base)
	}
	spec.spec.pending.Wait()
	st := spec.SpecializationStats()
	t.Logf("%s: stats %+v", tc.name, st)
	for _, e := range spec.spec.entries {
		t.Logf("%s: entry undefined=%v full=%v hasQuery=%v binding=%v tmpl=%+v fields=%v", tc.name, e.undefined, e.full, e.hasQuery, e.binding, e.tmpl, e.fields)
	}
	for i, f := range tc.variants {
		v := *base
		f(&v)
		want, wantErr := full.Eval(ctx, &v)
		h := spec.SpecializationStats().Hits
		got, gotErr := spec.Eval(ctx, &v)
		hit := spec.SpecializationStats().Hits > h
		if diff := sameDecision(got, gotErr, want, wantErr); diff != "" {
			t.Errorf("%s variant %d (hit %v): DIFFERS (-full +spec):\n%s", tc.name, i, hit, diff)
		} else {
			t.Logf("%s variant %d (hit %v): same (%v, %v)", tc.name, i, hit, want.Allow, wantErr)
		}
	}
}

func TestZZReview(t *testing.T) {
	idEmpty := func(in *Input) { in.Request.ID = "" }
	idOther := func(in *Input) { in.Request.ID = "zzz" }
	cases := []zzCase{
		{"object.get request id", `decision := {"allow": object.get(input.request, "id", "") == "abc"}`, []func(*Input){idEmpty, idOther}},
		{"count request", `decision := {"allow": count(input.request) == 6}`, []func(*Input){idOther}},
		{"request whole eq", `r := input.request
decision := {"allow": r.id == "abc"}`, []func(*Input){idOther}},
		{"json marshal request", `decision := {"allow": contains(json.marshal(input.request), "abc")}`, []func(*Input){idOther}},
		{"input dyn key", `decision := {"allow": input[k].id == "abc"} if k := "request"`, []func(*Input){idOther}},
		{"walk input", `decision := {"allow": count([p | walk(input, [p, "abc"])]) > 0}`, []func(*Input){idOther}},
		{"params max_tokens absent", `default a := false
a if not input.params.max_tokens
decision := {"allow": a}`, []func(*Input){func(in *Input) { in.Params.MaxTokens = 5 }}},
		{"params object.get", `decision := {"allow": object.get(input.params, "max_tokens", 0) == 0}`, []func(*Input){func(in *Input) { in.Params.MaxTokens = 5 }}},
		{"params count", `decision := {"allow": count(input.params) == 3}`, []func(*Input){func(in *Input) { in.Params.MaxTokens = 5 }}},
		{"every request", `default a := false
a if { every k, v in input.request { v != "abc" } }
decision := {"allow": a}`, []func(*Input){idOther}},
		{"comprehension over request", `decision := {"allow": count({v | some v in input.request; v == "abc"}) > 0}`, []func(*Input){idOther}},
		{"with input", `default ok := false
ok if input.request.id == "abc"
default a := false
a if { ok with input.identity.team as "x" }
decision := {"allow": a}`, []func(*Input){idOther}},
		{"time", `decision := {"allow": true, "log": {"tags": {"t": sprintf("%d", [time.now_ns()])}}}`, []func(*Input){idOther}},
		{"input whole eq", `decision := {"allow": input.request.id == "abc"} if { x := input; x.request.path != "" }`, []func(*Input){idOther}},
		{"tokens object", `decision := {"allow": input.tokens == {"prompt": 20, "max_completion": 4096, "estimated_total": 4116}}`, []func(*Input){func(in *Input) { in.Tokens.Prompt = 3 }}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { zzRun(t, tc) })
	}
}
