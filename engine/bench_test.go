package engine

// Specialization (specialize.go), three runs on the 2-core dev machine
// (load average about 1.5, so absolute times are high; compare ratios),
// go test -run '^$' -bench 'Eval$' -benchtime 10000x -cpu 1 ./engine/:
//
//	                   p50 µs           p50/floor  p99 µs (-cpu 1)  B/op  allocs/op
//	Eval/floor         12 / 12 / 13     1          209-243          3984         63
//	Eval/specialized   25 / 20 / 19     1.4-2.1    225-258          6697        113
//	Eval/policy        140 / 168 / 93   7-14       451-623         22422        471
//	Eval/unseen        179 / 136 / 181  12-16      573-660         22611        474
//
// "policy" is Policy.Eval with specialization off (the whole residual),
// "specialized" a caller whose specialization is cached, "unseen" a new
// caller on every request (key and doorkeeper cost: 3 allocations). The
// one-core p99 is set by garbage collection: with GOGC=400 it is 95 µs
// (p50 28, floor p99 52 µs); with -cpu 2 (GC on the other core) 111 µs
// (p50 30, floor p99 65 µs). BenchmarkSpecialize: one build 2.5-4 ms, of
// which 1.2-1.8 ms partial evaluation under the write lock; about 40 KB
// per entry (650 KB with richData's routing tables).
//
// End of the session that added input projection and AST decoding, then
// agents, moderation, guardrail signals, complexity, decision params and
// more PII types to the library (three runs, idle machine, -benchtime
// 5000x -cpu 1); the ratio to floor (OPA's fixed cost, one constant, same
// run) is the figure to compare:
//
//	                p50 µs (3 runs)    p50 / floor    B/op  allocs/op
//	Eval/floor      15 / 11 / 13       1               4005         63
//	Eval/partial    147 / 158 / 107    8-15           19346        380
//	Eval/policy     189 / 178 / 179    13-17          24420        501
//
// Earlier in that session, with the smaller library and a loaded machine:
// policy 446 allocations, 100-158 µs, 12-18x floor; before projection 550.
// What is left is OPA's topdown evaluator running about 25 residual rules
// (roughly 8 µs each here); see the closing notes of issue 4.
//
// BenchmarkEval and BenchmarkEvalRich, before and after the default library
// was made partial-evaluation friendly and Compile began preparing the query
// from rego.PartialResult. Both trees (before: commit ae9fcd9; after: this
// one) were run alternately five times in one session on the 2-core AMD EPYC
// dev machine (Go 1.26, OPA v1.22.2, load average about 1), with
// go test -run '^$' -bench 'Eval' -benchtime 3000x -cpu N ./engine/.
// Medians of the five runs; p50 and p99 in µs (ranges over the runs).
//
//	-cpu 1 (one core)     p50            p99              B/op  allocs/op
//	before Eval/policy    647 (507-695)  2735 (1758-2878)  68014       1463
//	before Eval/prepared  609 (553-643)  2661 (2352-2817)  59883       1260
//	before EvalRich      1483            4073             114000       2624
//	after  Eval/policy    168 (99-180)    728 (455-753)    26620        550
//	after  Eval/partial   123 (77-132)    562 (391-584)    18478        348
//	after  Eval/plain     771 (577-897)  5014 (3577-5837)  72664       1548
//	after  EvalRich       770            5720              74798       1544
//
//	-cpu 2                p50            p99              B/op  allocs/op
//	before Eval/policy    609            2165              68254       1464
//	before Eval/prepared  571            1898              60087       1262
//	after  Eval/policy    149             811              26613        550
//	after  Eval/partial   120             504              18485        348
//	after  Eval/plain     797            2751              72860       1549
//
// "prepared" (before) and "plain" (after) are the entrypoint prepared as
// written; "partial" is what Policy.Eval now runs. EvalRich (routing on, an
// auto-routed request) was copied into the before tree for the comparison. The residual of the
// default data is five small rules of lookups in constants (the data-only
// tables folded at Compile). What is left is mostly OPA's own cost: any eval
// of a one-constant query takes about 60 allocations and 8-12 µs here, a
// decision built only from sort and concat of the input about 226
// allocations and 30-40 µs, and Input.Value about 190 of Eval/policy's
// allocations. p99 is set by garbage collection and the shared machine (a
// one-constant query has a p99 of 125-200 µs). Plain evaluation of the new
// library computes the data tables per query, so it is slower than before;
// it runs only for Explain and for bundles whose partial evaluation fails.
// Compile of the default library takes about 85 ms (14 ms before).
//
// Older figures, from the same machine while other jobs shared it (load
// average 2 to 7), go test -run '^$' -bench . -benchtime 2000x -timeout 30m
// ./engine/; times in µs, ranges from repeated runs:
//
//	benchmark                 µs/op      p50     p99    B/op  allocs/op
//	Eval/policy    (first)      499      229    4228   36409        756
//	Eval/prepared  (first)      447      184    4740   26397        520
//	Eval/policy    (current)    607      541    2083   60661       1270
//	Eval/prepared  (current)    660      493    3534   50431       1028
//	InputValue                23-57                    10632        289
//	DecodeDecision            20-46                     3048         64
//
//	benchmark          µs/op     MB/s       B/op  allocs/op
//	Build/1KB        289-1049   1.0-3.7      84813       1729
//	Build/10KB      2906-5706   1.8-3.6     756279      15348
//	Build/100KB         44354       2.3    7369015     150916
//	Build/1MB          322284       3.3   75438326    1546162
//
// "first" is the walking skeleton's policies/ (authz, pii, quota);
// "current" adds routing, guardrails and budgets (both before partial
// evaluation). Latencies are inflated by the shared machine; allocations are
// not. Build is bound by the tokenizer (about 80% of its CPU; the PII scan
// about 1%). 2000 iterations of Build/1MB take about 11 minutes, past go
// test's default 10m timeout.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tollgate/tollgate/proxy/openai"
)

// warm evaluates in twice on p, so that its key is specialized, and waits
// for the specialization to serve.
func warm(tb testing.TB, p *Policy, in *Input) {
	tb.Helper()
	for range 2 {
		if _, err := p.Eval(context.Background(), in); err != nil && !errors.Is(err, ErrUndefined) {
			tb.Fatal(err)
		}
	}
	p.spec.settle()
	if st := p.SpecializationStats(); st.Built != 1 || st.Size != 1 {
		tb.Fatalf("after two evaluations of one input: %+v; want one specialization built", st)
	}
}

// reportLatency reports the median and 99th percentile of ds.
func reportLatency(b *testing.B, ds []time.Duration) {
	b.Helper()
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)*50/100].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(ds[min(len(ds)*99/100, len(ds)-1)].Nanoseconds()), "p99-ns")
}

// BenchmarkEval measures one decision of the default library for a typical
// allowed request with one PII type.
//
//   - policy: Policy.Eval, what the proxy calls: input conversion, the query
//     prepared from the library's partial evaluation, decision decoding and
//     validation.
//   - partial: that prepared query alone on an already parsed input.
//   - plain: the entrypoint prepared as written (no partial evaluation), on
//     the same parsed input: what Eval ran before, and what Explain and the
//     fallback for bundles that cannot be partially evaluated run.
func BenchmarkEval(b *testing.B) {
	ctx := context.Background()
	full := compile(b, newEngine(b, Config{SpecializationCacheMB: -1}), defaultBundle(b))
	if !full.partial {
		b.Fatal("the default library was not prepared from its partial evaluation")
	}
	in := chatInput("dev", []string{"developer"}, "gpt-4o-mini", "EMAIL")
	if d, err := full.Eval(ctx, in); err != nil || !d.Allow || len(d.Mask.Rules) != 1 || len(d.Limits) != 1 {
		b.Fatalf("benchmark input: decision %+v, %v; want allowed with one mask rule and one limit", d, err)
	}
	spec := compile(b, newEngine(b, Config{}), defaultBundle(b))
	warm(b, spec, in)
	// Every request of "unseen" comes from a new caller: none is ever
	// specialized, each pays for its key and the full residual.
	unseen := compile(b, newEngine(b, Config{}), defaultBundle(b))
	var n int
	next := func() *Input { n++; in.Identity.KeyID = fmt.Sprintf("k_%d", n); return in }

	for _, c := range []struct {
		name  string
		p     *Policy
		input func() *Input
	}{
		{"policy", full, func() *Input { return in }},
		{"specialized", spec, func() *Input { return in }},
		{"unseen", unseen, next},
	} {
		b.Run(c.name, func(b *testing.B) {
			ds := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				in := c.input()
				start := time.Now()
				if _, err := c.p.Eval(ctx, in); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(start))
			}
			b.StopTimer()
			reportLatency(b, ds)
		})
	}
	in.Identity.KeyID = "k_dev"
	p := full

	// floor is OPA's fixed cost: a prepared query of one constant, on
	// the same parsed input; the baseline the others are reported against.
	floor, err := rego.New(rego.Query("data.floor.answer"),
		rego.Module("floor.rego", "package floor\n\nanswer := true\n")).PrepareForEval(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []struct {
		name  string
		query rego.PreparedEvalQuery
	}{{"floor", floor}, {"partial", p.eval}, {"plain", p.query}} {
		b.Run(q.name, func(b *testing.B) {
			v := in.Value()
			ds := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				rs, err := q.query.Eval(ctx, rego.EvalParsedInput(v))
				if err != nil || len(rs) != 1 {
					b.Fatal(rs, err)
				}
				ds = append(ds, time.Since(start))
			}
			b.StopTimer()
			reportLatency(b, ds)
		})
	}
}

// BenchmarkEvalRich measures Policy.Eval with every feature of the default
// library turned on by data (richData: routing, budgets, per-key rates, team
// lists, PII and log settings per team, guardrails) for an auto-routed
// request, so that the routing path stays cheap too.
func BenchmarkEvalRich(b *testing.B) {
	ctx := context.Background()
	bd := defaultBundle(b)
	overrideData(b, bd, richData)
	p := compile(b, newEngine(b, Config{}), bd)
	in := chatInput("ana", []string{"developer", "bigonly"}, "auto", "EMAIL", "PHONE")
	in.Identity.KeyID = "k_ana"
	in.Complexity.Score = 0.5
	in.Request.Headers = map[string]string{"x-tollgate-preference": "quality"}
	in.Identity.Labels = map[string]string{"project": "search"}
	if d, err := p.Eval(ctx, in); err != nil || !d.Allow || d.Route == nil || len(d.Limits) < 3 {
		b.Fatalf("benchmark input: decision %+v, %v; want allowed, routed, with budgets", d, err)
	}
	ds := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := p.Eval(ctx, in); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, ds)
}

// proseSentences is the material of benchmark prompts: prose with the
// numbers that make the PII scanner work (dates, versions, amounts, ids)
// and code.
var proseSentences = []string{
	"The quarterly report shows revenue grew 12% to $4.2 million, driven by the new enterprise tier.",
	"Please summarise the attached meeting notes from 2026-11-25 and list every action item with its owner.",
	"Our build v1.22.2 failed at 10:30 with exit code 137, which usually means the container ran out of memory.",
	"Ticket INV-2024-000123 was reopened because the customer could not reproduce the fix on Windows 11.",
	"The function below retries three times with exponential backoff:\n```go\nfor i := 0; i < 3; i++ {\n\tif err = call(ctx); err == nil {\n\t\tbreak\n\t}\n\twait(backoff(i))\n}\n```\n",
	"Latency p99 dropped from 840 ms to 310 ms after we moved the cache to the same availability zone.",
	"In 1998 the team had 14 engineers; today 230 people work across 6 offices in 4 countries.",
	"Translate the following paragraph into German, keeping the product names in English.",
	"The model should answer politely, cite its sources, and refuse requests for medical diagnoses.",
	"Shipment 7731 left the warehouse on 11/20/2026 and should arrive within 5 business days.",
	"Compare the trade-offs of PostgreSQL logical replication and Debezium for change data capture.",
	"The invoice total is EUR 1,249.50 including 19% VAT, payable within 30 days.",
}

// prose returns about size bytes of prompt text with an e-mail address
// every dozen sentences and a card number every forty, starting early so
// that even 1 KB holds both.
func prose(size int) string {
	var sb strings.Builder
	sb.Grow(size + 512)
	for i := 0; sb.Len() < size; i++ {
		sb.WriteString(proseSentences[(i*7)%len(proseSentences)])
		switch {
		case i%12 == 3:
			fmt.Fprintf(&sb, " Send the results to j.doe%d@example.com by Friday.", i)
		case i%40 == 6:
			sb.WriteString(" The card on file is 4111 1111 1111 1111, expiring 09/28.")
		}
		sb.WriteByte(' ')
	}
	return sb.String()
}

// BenchmarkBuild measures input building (token estimate and PII scan) for
// one user prompt of each size.
func BenchmarkBuild(b *testing.B) {
	bld := newBuilder(b)
	info := RequestInfo{ID: "req_1", Path: "/v1/chat/completions", ReceivedAt: time.Now()}
	id := Identity{Subject: "dev", Kind: "user", Auth: "api_key", KeyID: "k_dev", Roles: []string{"developer"}}
	for _, size := range []struct {
		name  string
		bytes int
	}{{"1KB", 1 << 10}, {"10KB", 10 << 10}, {"100KB", 100 << 10}, {"1MB", 1 << 20}} {
		text := prose(size.bytes)
		req := &openai.ChatRequest{Model: "gpt-4o", Messages: []openai.Message{
			{Role: "system", Content: openai.TextContent("You are a helpful assistant.")},
			{Role: "user", Content: openai.TextContent(text)},
		}}
		in, _ := mustBuild(b, bld, req, info, id)
		if !slices.Equal(in.PII.Types, []string{"CREDIT_CARD", "EMAIL"}) {
			b.Fatalf("%s prompt: PII types %v, want CREDIT_CARD and EMAIL", size.name, in.PII.Types)
		}
		b.Run(size.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				mustBuild(b, bld, req, info, id)
			}
		})
	}
}

// BenchmarkInputValue measures the conversion of a full input into the OPA
// value the prepared query reads.
func BenchmarkInputValue(b *testing.B) {
	in := representativeInput()
	b.ReportAllocs()
	for b.Loop() {
		in.Value()
	}
}

// BenchmarkDecodeDecision measures turning the default library's result
// for the BenchmarkEval request into a validated Decision.
func BenchmarkDecodeDecision(b *testing.B) {
	p := compile(b, newEngine(b, Config{}), defaultBundle(b))
	in := chatInput("dev", []string{"developer"}, "gpt-4o-mini", "EMAIL")
	rs, err := p.eval.Eval(context.Background(), rego.EvalParsedInput(in.Value()))
	if err != nil || len(rs) != 1 {
		b.Fatal(rs, err)
	}
	v := rs[0].Expressions[0].Value
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeDecision(v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSpecialize measures building one specialization of the default
// library (partial evaluation, compilation and the check against the full
// decision), and the part of it that holds up evaluations (partial
// evaluation, under partialMu's write lock), reported as exclusive-ns.
func BenchmarkSpecialize(b *testing.B) {
	p := compile(b, newEngine(b, Config{SpecializationCacheMB: 1 << 12}), defaultBundle(b))
	in := chatInput("dev", []string{"developer"}, "gpt-4o-mini", "EMAIL")
	var exclusive time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		in.Identity.KeyID = fmt.Sprintf("k_%d", i)
		for range 2 {
			if _, err := p.Eval(context.Background(), in); err != nil {
				b.Fatal(err)
			}
		}
		p.SettleSpecializations()
		exclusive += p.spec.exclusive
	}
	b.StopTimer()
	if st := p.SpecializationStats(); st.Built != uint64(b.N) {
		b.Fatalf("%+v; want %d built", st, b.N)
	}
	b.ReportMetric(float64(exclusive.Nanoseconds())/float64(b.N), "exclusive-ns")
}
