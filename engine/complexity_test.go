package engine

import (
	"strings"
	"testing"
)

func TestEstimateComplexity(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("Lorem ipsum dolor sit amet. ", 2000)
	tests := []struct {
		name                 string
		tokens, turns, tools int
		fenced               bool
		last                 string
		want                 Complexity
	}{
		{name: "chit-chat", tokens: 12, turns: 1, last: "Hi there! How are you?",
			want: Complexity{Score: 0, Turns: 1, PromptTokens: 12}},
		{name: "code line", tokens: 40, turns: 1, last: "why does this fail?\nfunc main() { panic(1) }",
			want: Complexity{Score: 0.2, Turns: 1, Code: true, PromptTokens: 40}},
		{name: "math and reasoning, any case", tokens: 64, turns: 1, last: "Prove That the INTEGRAL converges, Step By Step.",
			want: Complexity{Score: 0.35, Turns: 1, Math: true, Reasoning: true, PromptTokens: 64}},
		{name: "long conversation with tools", tokens: 16384, turns: 12, tools: 4, last: "ok",
			want: Complexity{Score: 0.45, Turns: 12, Tools: 4, PromptTokens: 16384}},
		{name: "everything, capped at 1", tokens: 1 << 20, turns: 40, tools: 1, fenced: true, last: "compare these designs; $$x^2$$",
			want: Complexity{Score: 1, Turns: 40, Tools: 1, Code: true, Math: true, Reasoning: true, PromptTokens: 1 << 20}},
		{name: "a cue in the tail of a long message", tokens: 14000, turns: 1, last: long + " explain why",
			want: Complexity{Score: 0.491, Turns: 1, Reasoning: true, PromptTokens: 14000}},
		{name: "a cue in the middle of a long message is not looked for", tokens: 14000, turns: 1, last: long + " explain why " + long,
			want: Complexity{Score: 0.291, Turns: 1, PromptTokens: 14000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := estimateComplexity(tt.tokens, tt.turns, tt.tools, tt.fenced, tt.last)
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			if got.Score < 0 || got.Score > 1 {
				t.Errorf("score %v outside [0,1]", got.Score)
			}
		})
	}
}

// TestComplexityOrdersRequests checks the property routing relies on: a
// request that adds a signal never scores lower.
func TestComplexityOrdersRequests(t *testing.T) {
	t.Parallel()
	base := estimateComplexity(100, 2, 0, false, "summarise this")
	for name, c := range map[string]Complexity{
		"longer":     estimateComplexity(5000, 2, 0, false, "summarise this"),
		"more turns": estimateComplexity(100, 8, 0, false, "summarise this"),
		"tools":      estimateComplexity(100, 2, 2, false, "summarise this"),
		"code":       estimateComplexity(100, 2, 0, true, "summarise this"),
		"reasoning":  estimateComplexity(100, 2, 0, false, "summarise this and explain why"),
	} {
		if c.Score <= base.Score {
			t.Errorf("%s: score %v, not above the base %v", name, c.Score, base.Score)
		}
	}
}

func BenchmarkEstimateComplexity(b *testing.B) {
	for _, sz := range []struct {
		name string
		size int
	}{{"1KB", 1 << 10}, {"100KB", 100 << 10}} {
		size := sz.size
		text := prose(size)
		b.Run(sz.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(text)))
			for range b.N {
				estimateComplexity(size/4, 3, 0, false, text)
			}
		})
	}
}
