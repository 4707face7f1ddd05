package engine

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReadFields checks which input fields Eval builds for policies that
// read the input in different ways, and that the decision sees them.
func TestReadFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rego string
		want fieldSet // nil: the whole input
	}{
		{
			name: "paths, two levels kept",
			rego: `decision := {"allow": input.identity.team == "ml", "log": {"tags": {"m": input.model.requested, "id": object.get(input.request.headers, "x-id", "")}}}`,
			want: fieldSet{"identity": {"team": true}, "model": {"requested": true}, "request": {"headers": true}},
		},
		{
			name: "a whole section",
			rego: `decision := {"allow": count(input.pii) > 0}`,
			want: fieldSet{"pii": nil},
		},
		{
			name: "through a helper rule and a function in another package",
			rego: "import data.tollgate.lib\n\ndecision := {\"allow\": lib.small(input.tokens.prompt), \"log\": {\"tags\": {\"k\": lib.key}}}",
			want: fieldSet{"tokens": {"prompt": true}, "identity": {"key_id": true}},
		},
		{
			name: "object.get on the whole input",
			rego: `decision := {"allow": object.get(input, ["identity", "team"], "") == "ml"}`,
			want: nil,
		},
		{
			name: "a dynamic key",
			rego: "decision := {\"allow\": x} if {\n\tsome k\n\tx := input[k] == 1\n}",
			want: nil,
		},
	}
	lib := "package tollgate.lib\n\nsmall(n) if n < 100\n\nkey := input.identity.key_id\n"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := mapBundle(t, map[string]string{
				"main/main.rego": "package tollgate.main\n\n" + tt.rego + "\n",
				"lib/lib.rego":   lib,
			})
			p := compile(t, newEngine(t, Config{}), b)
			if !p.partial {
				t.Fatal("not prepared from partial evaluation")
			}
			if diff := cmp.Diff(tt.want, p.fields); diff != "" || (tt.want == nil) != (p.fields == nil) {
				t.Fatalf("fields (-want +got):\n%s", diff)
			}
		})
	}
}

// TestProjectedInputDecides checks that a decision reading fields of every
// level gets their values from the projected input.
func TestProjectedInputDecides(t *testing.T) {
	t.Parallel()
	p := compile(t, newEngine(t, Config{}), mainBundle(t, `decision := {
	"allow": input.identity.team == "ml",
	"log": {"tags": {"model": input.model.requested, "key": input.identity.key_id, "h": object.get(input.request.headers, "x-h", "")}},
}`))
	in := chatInput("dev", []string{"developer"}, "gpt-4o", "EMAIL")
	in.Request.Headers = map[string]string{"x-h": "v"}
	d, err := p.Eval(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"model": "gpt-4o", "key": "k_dev", "h": "v"}
	if !d.Allow || !cmp.Equal(d.Log.Tags, want) {
		t.Fatalf("decision %+v; want allowed with tags %v", d, want)
	}
}
