package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/tollgate/tollgate/bundles"
)

// volatileVariant returns a copy of in whose volatile fields (those a
// specialization leaves unknown) are drawn from r, with token counts around
// the library's limits.
func volatileVariant(in *Input, r *rand.Rand) *Input {
	v := *in
	v.Request.ID = fmt.Sprintf("req_%d", r.Uint64())
	v.Request.ReceivedAt = in.Request.ReceivedAt.Add(time.Duration(r.IntN(1e6)) * time.Second)
	v.Request.ClientIP = fmt.Sprintf("127.0.0.%d", 1+r.IntN(250))
	prompts := []int{0, 1, 99, 101, 999, 1001, 127999, 128000, 128001, 200000}
	v.Tokens.Prompt = prompts[r.IntN(len(prompts))]
	if r.IntN(3) == 0 {
		v.Tokens.Prompt = r.IntN(300000)
	}
	v.Params.MaxTokens = []int{0, 1, 256, 257, 4096, 100000}[r.IntN(6)]
	v.Tokens.MaxCompletion = max(v.Params.MaxTokens, DefaultMaxCompletion)
	v.Tokens.EstimatedTotal = v.Tokens.Prompt + v.Tokens.MaxCompletion
	v.Params.Messages = 1 + r.IntN(20)
	if r.IntN(2) == 0 {
		temp := r.Float64() * 2
		v.Params.Temperature = &temp
	} else {
		v.Params.Temperature = nil
	}
	v.Complexity.Score = r.Float64()
	v.Complexity.Turns = r.IntN(10)
	v.Complexity.PromptTokens = v.Tokens.Prompt
	v.PII.Findings = slices.Clone(in.PII.Findings)
	for i := range v.PII.Findings {
		v.PII.Findings[i].Count = 1 + r.IntN(5)
		v.PII.Findings[i].Message = r.IntN(3)
	}
	return &v
}

// loadDir loads the bundle in the folder dir of the repository.
func loadDir(t testing.TB, dir string) *bundles.Bundle {
	t.Helper()
	b, err := bundles.LoadFS(os.DirFS(dir), dir)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	return b
}

// sameDecision compares a decision and error with the expected ones.
// Errors must be of the same kind: undefined, invalid decision, or OPA's
// error code (their messages name different rules).
func sameDecision(got Decision, gotErr error, want Decision, wantErr error) string {
	if (gotErr == nil) != (wantErr == nil) || errorKind(gotErr) != errorKind(wantErr) {
		return fmt.Sprintf("error %v, want %v", gotErr, wantErr)
	}
	return cmp.Diff(want, got)
}

func errorKind(err error) string {
	var te *topdown.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrUndefined):
		return "undefined"
	case errors.Is(err, ErrInvalidDecision):
		return "invalid"
	case errors.As(err, &te):
		return te.Code
	}
	return err.Error()
}

// TestSpecializedDecidesAsFull is the differential test of specialization:
// for the default library under several data sets and for both example
// policy sets, every request of decisionInputs is made twice (which builds
// its specialization), then many variants of each with other token counts,
// scores, ids, times and parameters are decided by the specialized policy
// and by the same bundle without specialization. The decisions must be
// identical, and the specialized ones must come from the cache.
func TestSpecializedDecidesAsFull(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		bundle func(t testing.TB) *bundles.Bundle
		// reasons is how many deny codes the variants must meet at least.
		reasons int
	}{
		{"default data", defaultBundle, 3},
		{"rich data", func(t testing.TB) *bundles.Bundle { return overrideData(t, defaultBundle(t), richData) }, 3},
		{"routing on", func(t testing.TB) *bundles.Bundle {
			return overrideData(t, defaultBundle(t), map[string]string{"data.routing.enabled": "true"})
		}, 3},
		{"examples/startup", func(t testing.TB) *bundles.Bundle { return loadDir(t, "../examples/startup") }, 1},
		{"examples/enterprise", func(t testing.TB) *bundles.Bundle { return loadDir(t, "../examples/enterprise") }, 2},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			full := compile(t, newEngine(t, Config{SpecializationCacheMB: -1}), tt.bundle(t))
			// Room for every caller (rich data's entries carry routing
			// tables, about 650 KB each).
			spec := compile(t, newEngine(t, Config{SpecializationCacheMB: 1024}), tt.bundle(t))
			if spec.spec == nil || full.spec != nil {
				t.Fatal("specialization is not on (or off) as configured")
			}
			inputs := decisionInputs()
			for _, roles := range [][]string{{"founder"}, {"contractor"}, {"engineer"}, {"analyst"}} {
				for _, model := range []string{"gpt-4o-mini", "gpt-4o", "claude-3-5-haiku"} {
					in := chatInput("maya", roles, model, "EMAIL")
					in.Identity.Team = "product"
					inputs = append(inputs, in)
				}
			}
			for _, in := range inputs {
				for range 2 {
					if _, err := spec.Eval(ctx, in); err != nil && !errors.Is(err, ErrUndefined) {
						t.Fatalf("input %s: %v", in.Request.ID, err)
					}
				}
				spec.SettleSpecializations() // none dropped from a full queue
			}
			built := spec.SpecializationStats()
			if built.Built == 0 || built.Rejected != 0 {
				t.Fatalf("after every input twice: %+v; want specializations built and none rejected", built)
			}
			r := rand.New(rand.NewPCG(7, uint64(len(tt.name))))
			decided, allowed, denied := 0, 0, map[string]int{}
			for _, in := range inputs {
				for range 4 {
					v := volatileVariant(in, r)
					want, wantErr := full.Eval(ctx, v)
					got, gotErr := spec.Eval(ctx, v)
					if diff := sameDecision(got, gotErr, want, wantErr); diff != "" {
						t.Fatalf("input %s (%s %v on %s, %d prompt tokens): specialized decision differs (-full +specialized):\n%s",
							in.Request.ID, in.Identity.Subject, in.Identity.Roles, in.Model.Requested, v.Tokens.Prompt, diff)
					}
					decided++
					if want.Allow {
						allowed++
					}
					for _, d := range want.Deny {
						denied[d.Code]++
					}
				}
			}
			after := spec.SpecializationStats()
			if hits := after.Hits - built.Hits; hits < uint64(decided)/2 {
				t.Errorf("%d of %d variant decisions came from the cache; want most", hits, decided)
			}
			if allowed == 0 || allowed == decided {
				t.Errorf("%d of %d variants allowed; want some allowed and some denied", allowed, decided)
			}
			if len(denied) < tt.reasons {
				t.Errorf("the variants were denied for %v only; want at least %d reasons", denied, tt.reasons)
			}
			t.Logf("%d decisions, %+v, deny codes %v", decided, after, denied)
		})
	}
}

// TestSpecializationShapes covers the forms a specialization takes: a
// constant decision, an undefined one, a query whose decision object keeps
// only the parts that read volatile fields, and several queries (a
// decision defined by more than one rule).
func TestSpecializationShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rego string
		// constant and undefined say which form the key of
		// chatInput("ana", ...) of team ml must take (else a query).
		constant, undefined bool
	}{
		{
			name:     "constant per caller",
			rego:     `decision := {"allow": input.identity.team == "ml", "log": {"tags": {"team": input.identity.team}}}`,
			constant: true,
		},
		{
			name:      "undefined for a team",
			rego:      `decision := {"allow": true} if input.identity.team != "ml"`,
			undefined: true,
		},
		{
			name: "decision reads the token count",
			rego: `decision := {"allow": input.tokens.prompt < 1000, "limits": [{"scope": concat(":", ["user", input.identity.subject]), "window": "day", "tokens": 5000}]}`,
		},
		{
			name: "two rules",
			rego: `default decision := {"allow": false}

decision := {"allow": true, "limits": [{"scope": "team:ml", "window": "hour", "tokens": input.tokens.prompt}]} if {
	input.identity.team == "ml"
	input.tokens.prompt < 1000
}

decision := {"allow": true, "deny": [{"code": "odd", "message": sprintf("%d", [input.tokens.prompt])}]} if {
	input.identity.team == "ml"
	input.tokens.prompt >= 1000
}`,
		},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			full := compile(t, newEngine(t, Config{SpecializationCacheMB: -1}), mainBundle(t, tt.rego))
			spec := compile(t, newEngine(t, Config{}), mainBundle(t, tt.rego))
			in := chatInput("ana", []string{"developer"}, "echo")
			warm(t, spec, in)
			var e *specialized
			for _, x := range spec.spec.entries {
				e = x
			}
			if e.undefined != tt.undefined || (!e.hasQuery && !e.undefined) != tt.constant {
				t.Errorf("entry: undefined %v, query %v; want undefined %v, constant %v",
					e.undefined, e.hasQuery, tt.undefined, tt.constant)
			}
			for _, prompt := range []int{0, 999, 1000, 5000} {
				v := *in
				v.Tokens.Prompt = prompt
				want, wantErr := full.Eval(ctx, &v)
				got, gotErr := spec.Eval(ctx, &v)
				if diff := sameDecision(got, gotErr, want, wantErr); diff != "" {
					t.Errorf("%d prompt tokens: (-full +specialized):\n%s", prompt, diff)
				}
			}
			if st := spec.SpecializationStats(); st.Hits != 4 {
				t.Errorf("stats %+v; want 4 hits", st)
			}
		})
	}
}

// TestSpecializedDecisionsAreCopies checks that a caller changing its
// decision does not change the next one served from the same entry.
func TestSpecializedDecisionsAreCopies(t *testing.T) {
	t.Parallel()
	p := compile(t, newEngine(t, Config{}), defaultBundle(t))
	in := chatInput("dev", []string{"developer"}, "gpt-4o-mini", "EMAIL")
	warm(t, p, in)
	d, err := p.Eval(context.Background(), in)
	if err != nil || len(d.Limits) != 1 || len(d.Mask.Rules) != 1 {
		t.Fatalf("Eval = %+v, %v", d, err)
	}
	want := d.clone()
	d.Limits[0].Tokens = 1
	d.Mask.Rules[0].Types[0] = "CHANGED"
	d.Limits = append(d.Limits, Limit{Scope: "x"})
	again, err := p.Eval(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, again); diff != "" {
		t.Errorf("a caller's change reached the next decision (-want +got):\n%s", diff)
	}
}

// TestSpecializationEviction fills a cache with room for four entries with
// twelve callers: it stays within its budget, evicts, and still decides as
// the full policy.
func TestSpecializationEviction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	full := compile(t, newEngine(t, Config{SpecializationCacheMB: -1}), defaultBundle(t))
	spec := compile(t, newEngine(t, Config{}), defaultBundle(t))
	in := chatInput("dev", []string{"developer"}, "gpt-4o-mini")
	warm(t, spec, in)
	var cost int64
	for _, e := range spec.spec.entries {
		cost = e.cost
	}
	spec.spec.budget = 4*cost + cost/2
	for i := range 12 {
		in.Identity.KeyID = fmt.Sprintf("k_%d", i)
		for range 3 {
			spec.Eval(ctx, in)
		}
		spec.SettleSpecializations()
	}
	st := spec.SpecializationStats()
	if st.Size != 4 || st.Evicted != 9 || st.Built != 13 {
		t.Errorf("stats %+v; want 4 held, 9 evicted, 13 built", st)
	}
	if spec.spec.bytes > spec.spec.budget {
		t.Errorf("the entries take %d bytes, more than the budget of %d", spec.spec.bytes, spec.spec.budget)
	}
	for i := range 12 {
		in.Identity.KeyID = fmt.Sprintf("k_%d", i)
		want, wantErr := full.Eval(ctx, in)
		got, gotErr := spec.Eval(ctx, in)
		if diff := sameDecision(got, gotErr, want, wantErr); diff != "" {
			t.Errorf("key %d: (-full +specialized):\n%s", i, diff)
		}
	}
}

// TestSpecializationClock checks the eviction order: entries used since
// the hand last passed are kept, the others go oldest first, and a new entry
// is the last the hand reaches.
func TestSpecializationClock(t *testing.T) {
	t.Parallel()
	s := newSpecializer(&Policy{}, nil, nil, 4<<10, 0, nil, nil)
	add := func(k string) { s.insert(k, &specialized{cost: 1 << 10}) }
	for _, k := range []string{"A", "B", "C", "D"} {
		add(k)
	}
	s.entries["A"].used.Store(true)
	s.entries["B"].used.Store(true)
	held := func() string {
		keys := slices.Sorted(maps.Keys(s.entries))
		return strings.Join(keys, "")
	}
	steps := []struct{ add, want string }{
		{"E", "ABDE"}, // A and B were used: C goes
		{"F", "ABEF"}, // D is next
		{"G", "BEFG"}, // A's use was cleared by the first pass
		{"H", "EFGH"}, // then B
		{"I", "FGHI"}, // then the oldest of the new ones
	}
	for _, st := range steps {
		add(st.add)
		if got := held(); got != st.want {
			t.Fatalf("after adding %s: held %s, want %s (ring %v, hand %d)", st.add, got, st.want, s.ring, s.hand)
		}
	}
	if s.bytes != 4<<10 || len(s.ring) != 4 {
		t.Errorf("bytes %d, ring %v; want 4 entries of 1 KB", s.bytes, s.ring)
	}
}

// TestSpecializationTooCostly checks that an entry estimated to take more
// than its share of the budget is not kept: its caller keeps the full
// evaluation.
func TestSpecializationTooCostly(t *testing.T) {
	t.Parallel()
	p := compile(t, newEngine(t, Config{}), defaultBundle(t))
	p.spec.maxEntry = 1 << 10
	in := chatInput("dev", []string{"developer"}, "gpt-4o-mini")
	for range 2 {
		p.Eval(context.Background(), in)
	}
	p.SettleSpecializations()
	d, err := p.Eval(context.Background(), in)
	if st := p.SpecializationStats(); st.Rejected != 1 || st.Built != 0 || st.Hits != 0 || err != nil || !d.Allow {
		t.Errorf("stats %+v, decision %+v, %v; want one rejection, an allowed decision from the full policy", st, d, err)
	}
}

// TestSpecializationTimeout checks that a partial evaluation past its time
// limit is given up: the caller keeps the full evaluation.
func TestSpecializationTimeout(t *testing.T) {
	t.Parallel()
	p := compile(t, newEngine(t, Config{}), defaultBundle(t))
	p.spec.timeout = time.Nanosecond
	in := chatInput("dev", []string{"developer"}, "gpt-4o-mini")
	for range 4 {
		if d, err := p.Eval(context.Background(), in); err != nil || !d.Allow {
			t.Fatalf("Eval = %+v, %v", d, err)
		}
		p.SettleSpecializations()
	}
	// Asked on the 2nd and 4th sightings; nothing kept, so it may ask again.
	if st := p.SpecializationStats(); st.Rejected != 2 || st.Built != 0 || st.Hits != 0 || st.Size != 0 {
		t.Errorf("stats %+v; want two rejections, nothing kept, no hits", st)
	}
}

// TestSpecializationCarriesOver checks that a new bundle specializes for
// the old one's callers as soon as it is activated: their first request on
// it is decided by a specialization, the new bundle's.
func TestSpecializationCarriesOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, Config{})
	old := compile(t, e, defaultBundle(t))
	e.Activate(old)
	var callers []*Input
	for i, roles := range [][]string{{"developer"}, {"analyst"}, {}} {
		in := chatInput(fmt.Sprintf("u%d", i), roles, "gpt-4o", "EMAIL")
		for range 2 {
			if _, err := old.Eval(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
		callers = append(callers, in)
	}
	old.SettleSpecializations()
	if st := old.SpecializationStats(); st.Built != 3 {
		t.Fatalf("old policy: %+v; want the 3 callers specialized", st)
	}
	// The new bundle decides differently: a lower prompt limit.
	changed := map[string]string{"data.guardrails.max_prompt_tokens": `{"default": 10}`}
	next := compile(t, e, overrideData(t, defaultBundle(t), changed))
	full := compile(t, newEngine(t, Config{SpecializationCacheMB: -1}), overrideData(t, defaultBundle(t), changed))
	e.Activate(next)
	next.SettleSpecializations()
	if st := next.SpecializationStats(); st.Built != 3 || st.Size != 3 {
		t.Fatalf("new policy after the swap: %+v; want the 3 callers specialized", st)
	}
	for _, in := range callers {
		want, wantErr := full.Eval(ctx, in)
		got, gotErr := next.Eval(ctx, in)
		if diff := sameDecision(got, gotErr, want, wantErr); diff != "" {
			t.Errorf("caller %s: (-full +specialized):\n%s", in.Identity.Subject, diff)
		}
		if !slices.ContainsFunc(got.Deny, func(d Deny) bool { return d.Code == "prompt_too_long" }) {
			t.Errorf("caller %s: %+v; want the new bundle's prompt_too_long", in.Identity.Subject, got.Deny)
		}
	}
	if st := next.SpecializationStats(); st.Hits != 3 {
		t.Errorf("stats %+v; want the callers' first requests on the new bundle from the cache", st)
	}
}

// TestSpecializationStopsOnSwap checks that a policy replaced by another
// asks for no more specializations.
func TestSpecializationStopsOnSwap(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Config{})
	old := compile(t, e, defaultBundle(t))
	e.Activate(old)
	e.Activate(compile(t, e, defaultBundle(t)))
	in := chatInput("dev", []string{"developer"}, "gpt-4o-mini")
	for range 3 {
		if _, err := old.Eval(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	old.SettleSpecializations()
	if st := old.SpecializationStats(); st.Built != 0 || st.Size != 0 || st.Misses < 3 {
		t.Errorf("stats of the replaced policy %+v; want its requests decided in full and nothing built", st)
	}
}

// TestSpecializationConflict checks that a decision with several values
// (an entrypoint that conflicts) fails on a specialized key as it fails on
// the full policy, even when partial evaluation turned the conflicting
// rule into one query with several solutions.
func TestSpecializationConflict(t *testing.T) {
	t.Parallel()
	const rego = `decision := {"allow": true, "log": {"tags": {"c": sprintf("%d", [n])}}} if {
	some n in array.concat([1], [f.count | some f in input.pii.findings])
}`
	ctx := context.Background()
	full := compile(t, newEngine(t, Config{SpecializationCacheMB: -1}), mainBundle(t, rego))
	spec := compile(t, newEngine(t, Config{}), mainBundle(t, rego))
	in := chatInput("ana", []string{"developer"}, "echo", "EMAIL")
	warm(t, spec, in)
	for _, counts := range [][]int{{1}, {1, 2}, {3}, {1, 1}} {
		v := *in
		v.PII.Findings = nil
		for _, c := range counts {
			v.PII.Findings = append(v.PII.Findings, PIIFinding{Type: "EMAIL", Count: c, Role: "user", Where: "content"})
		}
		want, wantErr := full.Eval(ctx, &v)
		got, gotErr := spec.Eval(ctx, &v)
		if (wantErr == nil) != (gotErr == nil) || !cmp.Equal(want, got) {
			t.Errorf("counts %v: specialized %+v, %v; full %+v, %v", counts, got, gotErr, want, wantErr)
		}
		if (len(counts) > 1 && counts[1] != 1 || counts[0] != 1) != (wantErr != nil) {
			t.Errorf("counts %v: full error %v; want a conflict exactly when a count is not 1", counts, wantErr)
		}
	}
	if st := spec.SpecializationStats(); st.Hits != 4 {
		t.Errorf("stats %+v; want the 4 decisions from the specialization", st)
	}
}

// TestSpecializationSeenOnce checks that callers seen once never cost a
// build: the doorkeeper asks only for keys seen twice.
func TestSpecializationSeenOnce(t *testing.T) {
	t.Parallel()
	p := compile(t, newEngine(t, Config{}), defaultBundle(t))
	before := p.SpecializationStats().Misses // the smoke evaluation's
	seenBefore := len(p.spec.seen)
	in := chatInput("dev", []string{"developer"}, "gpt-4o-mini")
	for i := range 100 {
		in.Identity.KeyID = fmt.Sprintf("k_%d", i)
		if _, err := p.Eval(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	p.spec.settle()
	if st := p.SpecializationStats(); st.Built != 0 || st.Misses-before != 100 || st.Size != 0 {
		t.Errorf("stats %+v; want 100 misses and nothing built", st)
	}
	if n := len(p.spec.seen) - seenBefore; n != 100 {
		t.Errorf("the doorkeeper holds %d keys, want the 100 seen once", n)
	}
}

// TestSpecializationBundleRules checks which rules of the bundle a
// specialization takes along: those its output calls, and the rules they
// call in turn; none for data of the store or its own support rules.
func TestSpecializationBundleRules(t *testing.T) {
	t.Parallel()
	p := compile(t, newEngine(t, Config{}), mainBundle(t, `decision := {"allow": allowed}

default allowed := false

allowed if count(helper) > 0

helper contains k if some k, _ in input.identity.labels

other := 1 if input.tokens.prompt > 0
`))
	support := ast.MustParseModule("package " + specNamespace + ".partial.x\n\nr if input.tokens.prompt > 1\n")
	tests := []struct {
		query string
		want  []string // the packages and rules taken along
	}{
		{`x = {"allow": data.` + specNamespace + `.partial.x.r}`, nil},
		{`x = {"allow": count(data.data.pii.default) > 0}`, nil},
		{`x = {"allow": data.tollgate.main.allowed}`, []string{"data.tollgate.main: allowed allowed helper"}}, // the default and the rule
		{`x = {"allow": data.tollgate.main.other > 0}`, []string{"data.tollgate.main: other"}},
	}
	for _, tt := range tests {
		pq := &rego.PartialQueries{Queries: []ast.Body{ast.MustParseBody(tt.query)}, Support: []*ast.Module{support}}
		var got []string
		for _, m := range p.spec.bundleRules(pq) {
			var names []string
			for _, r := range m.Rules {
				names = append(names, r.Head.Name.String())
			}
			slices.Sort(names)
			got = append(got, m.Package.Path.String()+": "+strings.Join(names, " "))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: bundle rules %q, want %q", tt.query, got, tt.want)
		}
	}
}

// TestSpecializationSeveralQueries prepares by hand an output of partial
// evaluation with two queries, a form the gateway's own policies do not
// produce: they become one rule, evaluated for the decision.
func TestSpecializationSeveralQueries(t *testing.T) {
	t.Parallel()
	pq := &rego.PartialQueries{Queries: []ast.Body{
		ast.MustParseBody(`input.tokens.prompt > 5; x = {"allow": true}`),
		ast.MustParseBody(`input.tokens.prompt <= 5; x = {"allow": false, "deny": [{"code": "short", "message": "too short"}]}`),
	}}
	e := &specialized{}
	if err := e.prepare(context.Background(), pq, nil, inmem.New()); err != nil {
		t.Fatal(err)
	}
	if !e.hasQuery || e.binding {
		t.Fatalf("entry: query %v, binding %v; want the queries as one rule", e.hasQuery, e.binding)
	}
	for prompt, allow := range map[int]bool{3: false, 10: true} {
		in := chatInput("ana", nil, "echo")
		in.Tokens.Prompt = prompt
		d, err := e.decide(context.Background(), in.valueOf)
		if err != nil || d.Allow != allow {
			t.Errorf("%d tokens: %+v, %v; want allow %v", prompt, d, err, allow)
		}
	}
}

// TestSpecializeWhileCompiling evaluates from several goroutines, building
// specializations, while other bundles compile (partial evaluation rewrites
// terms OPA shares; see partialMu). Run with -race. Every decision must be
// the one the full policy made for the same input beforehand.
func TestSpecializeWhileCompiling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	full := compile(t, newEngine(t, Config{SpecializationCacheMB: -1}), overrideData(t, defaultBundle(t), richData))
	spec := compile(t, newEngine(t, Config{}), overrideData(t, defaultBundle(t), richData))
	inputs := decisionInputs()
	type result struct {
		d   Decision
		err error
	}
	want := make([]result, len(inputs))
	for i, in := range inputs {
		want[i].d, want[i].err = full.Eval(ctx, in)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for range 2 {
			compile(t, newEngine(t, Config{}), defaultBundle(t))
		}
	})
	for g := range 3 {
		wg.Go(func() {
			for round := 0; ; round++ {
				for i := range inputs {
					in := inputs[(i+g*7)%len(inputs)]
					got, err := spec.Eval(ctx, in)
					w := want[(i+g*7)%len(inputs)]
					if diff := sameDecision(got, err, w.d, w.err); diff != "" {
						t.Errorf("input %s: (-full +specialized):\n%s", in.Request.ID, diff)
						return
					}
				}
				select {
				case <-done:
					if round > 0 {
						return
					}
				default:
				}
			}
		})
	}
	wg.Wait()
	spec.spec.settle()
	if st := spec.SpecializationStats(); st.Built == 0 || st.Rejected != 0 {
		t.Errorf("stats %+v; want specializations built, none rejected", st)
	}
}
