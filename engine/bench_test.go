package engine

// Figures measured on the 2-core AMD EPYC dev machine (Go 1.26, OPA
// v1.22.2) while other jobs shared it (load average 2 to 7), with
// go test -run '^$' -bench . -benchtime 2000x -timeout 30m ./engine/.
// Times are in µs; ranges are from repeated runs.
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
// "current" adds routing, guardrails and budgets. Latencies are inflated by
// the shared machine; allocations are not. Build is bound by the tokenizer
// (about 80% of its CPU; the PII scan about 1%). 2000 iterations of
// Build/1MB take about 11 minutes, past go test's default 10m timeout.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tollgate/tollgate/proxy/openai"
)

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
//   - policy: Policy.Eval, what the proxy calls: input conversion, prepared
//     query, decision decoding and validation.
//   - prepared: the prepared query alone on an already parsed input.
func BenchmarkEval(b *testing.B) {
	ctx := context.Background()
	p := compile(b, newEngine(b, Config{}), defaultBundle(b))
	in := chatInput("dev", []string{"developer"}, "gpt-4o-mini", "EMAIL")
	if d, err := p.Eval(ctx, in); err != nil || !d.Allow || len(d.Mask.Rules) != 1 || len(d.Limits) != 1 {
		b.Fatalf("benchmark input: decision %+v, %v; want allowed with one mask rule and one limit", d, err)
	}

	b.Run("policy", func(b *testing.B) {
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
	})

	b.Run("prepared", func(b *testing.B) {
		v := in.Value()
		ds := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			rs, err := p.query.Eval(ctx, rego.EvalParsedInput(v))
			if err != nil || len(rs) != 1 {
				b.Fatal(rs, err)
			}
			ds = append(ds, time.Since(start))
		}
		b.StopTimer()
		reportLatency(b, ds)
	})
}

// proseSentences is the material of benchmark prompts: prose with the
// numbers that make the PII scanner work (dates, versions, amounts, ids)
// and code.
var proseSentences = []string{
	"The quarterly report shows revenue grew 12% to $4.2 million, driven by the new enterprise tier.",
	"Please summarise the attached meeting notes from 2026-11-25 and list every action item with its owner.",
	"Our build v1.22.2 failed at 10:30 with exit code 137, which usually means the container ran out of memory.",
	"Ticket INV-2024-000123 was reopened because the customer could not reproduce the fix on Windows 11.",
	"The function below retries three times with exponential backoff:\n```go\nfor i := 0; i < 3; i++ {\n\tif err = call(ctx); err == nil {\n\t\tbreak\n\t}\n\ttime.Sleep(time.Duration(1<<i) * 100 * time.Millisecond)\n}\n```\n",
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
		in, _ := bld.Build(req, info, id)
		if !slices.Equal(in.PII.Types, []string{"CREDIT_CARD", "EMAIL"}) {
			b.Fatalf("%s prompt: PII types %v, want CREDIT_CARD and EMAIL", size.name, in.PII.Types)
		}
		b.Run(size.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				bld.Build(req, info, id)
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
	rs, err := p.query.Eval(context.Background(), rego.EvalParsedInput(in.Value()))
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
