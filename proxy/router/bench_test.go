package router

import (
	"context"
	"testing"
)

// BenchmarkDo measures the router's own cost for a request the first
// target answers: ordering, the breaker check and the attempt record.
func BenchmarkDo(b *testing.B) {
	r, err := New(Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	plan := Plan{Targets: []Target{{Provider: "a", Model: "m", Weight: 90}, {Provider: "b", Model: "m", Weight: 10}},
		Fallbacks: []Target{{Provider: "c", Model: "m"}}, Retries: 1}
	call := func(context.Context, Target, int) (int, error) { return 1, nil }
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Do(ctx, r, plan, call); err != nil {
			b.Fatal(err)
		}
	}
}
