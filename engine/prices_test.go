package engine

import (
	"strings"
	"testing"
	"time"
)

// catalog wraps models the way the bundle loader places
// data/catalog/data.json: under data.data.catalog.
func catalog(models map[string]any) map[string]any {
	return map[string]any{"data": map[string]any{"catalog": map[string]any{"models": models}}}
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPriceBookDefaultLibrary(t *testing.T) {
	t.Parallel()
	p := compile(t, newEngine(t, Config{}), defaultBundle(t))
	pb := p.Prices
	tests := []struct {
		name  string
		model string
		at    string
		usage Usage
		want  int64
		ok    bool
	}{
		{"gpt-4o 1000 prompt tokens at 2.50/M", "gpt-4o", "2025-01-01T00:00:00Z", Usage{PromptTokens: 1000}, 2500, true},
		{"gpt-4o before its first price", "gpt-4o", "2024-05-12T23:59:59Z", Usage{PromptTokens: 1000}, 0, false},
		{"gpt-4o on its first effective date", "gpt-4o", "2024-05-13T00:00:00Z", Usage{PromptTokens: 1000}, 5000, true},
		{"gpt-4o between the two prices", "gpt-4o", "2024-09-30T23:59:59Z", Usage{PromptTokens: 1000}, 5000, true},
		{"gpt-4o on the second effective date", "gpt-4o", "2024-10-01T00:00:00Z", Usage{PromptTokens: 1000}, 2500, true},
		{"gpt-4o long after the last date", "gpt-4o", "2030-06-01T12:00:00Z", Usage{PromptTokens: 1000}, 2500, true},
		{"dates are instants: 01:00 CEST is still Sept 30 in UTC", "gpt-4o", "2024-10-01T01:00:00+02:00", Usage{PromptTokens: 1000}, 5000, true},
		{"completion tokens", "gpt-4o", "2025-01-01T00:00:00Z", Usage{CompletionTokens: 1000}, 10000, true},
		{
			// 600 × 2.50 + 400 × 1.25 + 200 × 10.00 per million = 4000 µ$.
			"cached tokens at the cached rate", "gpt-4o", "2025-01-01T00:00:00Z",
			Usage{PromptTokens: 1000, CachedTokens: 400, CompletionTokens: 200}, 4000, true,
		},
		{"first gpt-4o price has no cache discount", "gpt-4o", "2024-06-01T00:00:00Z", Usage{PromptTokens: 1000, CachedTokens: 1000}, 5000, true},
		{"one million tokens of gpt-4o-mini", "gpt-4o-mini", "2025-01-01T00:00:00Z", Usage{PromptTokens: 1_000_000, CachedTokens: 0, CompletionTokens: 1_000_000}, 750_000, true},
		{"cheap fractions: 0.075/M cached", "gpt-4o-mini", "2025-01-01T00:00:00Z", Usage{PromptTokens: 40_000, CachedTokens: 40_000}, 3000, true},
		{"unknown model", "gpt-9", "2025-01-01T00:00:00Z", Usage{PromptTokens: 1000}, 0, false},
		{"zero usage costs nothing", "echo", "2025-01-01T00:00:00Z", Usage{}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := pb.CostMicros(tt.model, date(tt.at), tt.usage)
			if got != tt.want || ok != tt.ok {
				t.Errorf("CostMicros(%s, %s, %+v) = %d, %v; want %d, %v", tt.model, tt.at, tt.usage, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestPriceBookRounding(t *testing.T) {
	t.Parallel()
	// echo costs 0.10 $/M input = 100 n$ per token.
	pb, err := newPriceBook(catalog(map[string]any{
		"echo": map[string]any{"prices": []any{map[string]any{"effective": "2024-01-01", "input": 0.1, "cached_input": 0.05, "output": 0.4}}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	at := date("2025-01-01T00:00:00Z")
	for _, tt := range []struct {
		prompt int64
		want   int64
	}{
		{1, 0},         // 100 n$
		{4, 0},         // 400 n$
		{5, 1},         // 500 n$ rounds half up
		{14, 1},        // 1400 n$
		{15, 2},        // 1500 n$
		{10_000, 1000}, // exact
	} {
		got, ok := pb.CostMicros("echo", at, Usage{PromptTokens: tt.prompt})
		if !ok || got != tt.want {
			t.Errorf("%d prompt tokens of echo = %d, %v; want %d µ$", tt.prompt, got, ok, tt.want)
		}
	}
}

func TestPriceBookUnsortedDates(t *testing.T) {
	t.Parallel()
	pb, err := newPriceBook(catalog(map[string]any{
		"m": map[string]any{"prices": []any{
			map[string]any{"effective": "2025-01-01", "input": 3.0},
			map[string]any{"effective": "2023-01-01", "input": 1.0},
			map[string]any{"effective": "2024-01-01", "input": 2.0},
		}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	for at, want := range map[string]int64{
		"2022-12-31T00:00:00Z": -1,
		"2023-06-01T00:00:00Z": 1000,
		"2024-06-01T00:00:00Z": 2000,
		"2025-06-01T00:00:00Z": 3000,
	} {
		got, ok := pb.CostMicros("m", date(at), Usage{PromptTokens: 1000})
		if want < 0 {
			if ok {
				t.Errorf("at %s: got %d µ$, want no price", at, got)
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("at %s: got %d, %v; want %d µ$", at, got, ok, want)
		}
	}
}

func TestPriceBookEmpty(t *testing.T) {
	t.Parallel()
	for name, data := range map[string]map[string]any{
		"no data":    nil,
		"no catalog": {"data": map[string]any{"quota": map[string]any{}}},
		"no models":  {"data": map[string]any{"catalog": map[string]any{}}},
	} {
		pb, err := newPriceBook(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got, ok := pb.CostMicros("gpt-4o", date("2025-01-01T00:00:00Z"), Usage{PromptTokens: 1}); ok {
			t.Errorf("%s: CostMicros = %d, true; want no price", name, got)
		}
	}
	var nilBook *PriceBook
	if _, ok := nilBook.CostMicros("gpt-4o", time.Now(), Usage{PromptTokens: 1}); ok {
		t.Error("nil PriceBook has a price")
	}
}

func TestPriceBookBadData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		models map[string]any
		want   []string
	}{
		{
			name: "bad date",
			models: map[string]any{"gpt-4o": map[string]any{"prices": []any{
				map[string]any{"effective": "2024-05-13", "input": 5.0},
				map[string]any{"effective": "2024-13-01", "input": 2.5},
			}}},
			want: []string{`data.data.catalog.models["gpt-4o"].prices[1].effective`, `"2024-13-01"`, "YYYY-MM-DD"},
		},
		{
			name:   "missing date",
			models: map[string]any{"echo": map[string]any{"prices": []any{map[string]any{"input": 0.1}}}},
			want:   []string{`data.data.catalog.models["echo"].prices[0].effective`},
		},
		{
			name:   "negative price",
			models: map[string]any{"echo": map[string]any{"prices": []any{map[string]any{"effective": "2024-01-01", "output": -1.0}}}},
			want:   []string{`data.data.catalog.models["echo"].prices[0]`, "negative"},
		},
		{
			name:   "price is a string",
			models: map[string]any{"echo": map[string]any{"prices": []any{map[string]any{"effective": "2024-01-01", "input": "0.1"}}}},
			want:   []string{"data.data.catalog", "input"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pb, err := newPriceBook(catalog(tt.models))
			if err == nil {
				t.Fatalf("newPriceBook = %+v, want an error", pb)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

// TestPriceBookSubMilliPrices covers published prices finer than a tenth of
// a cent per million tokens (e.g. 0.01875 $/M cached input): they must be
// priced exactly, not rounded to the book's resolution.
func TestPriceBookSubMilliPrices(t *testing.T) {
	t.Parallel()
	pb, err := newPriceBook(catalog(map[string]any{
		"flash": map[string]any{"prices": []any{map[string]any{"effective": "2024-01-01", "input": 0.0375, "cached_input": 0.01875, "output": 0.15}}},
		"micro": map[string]any{"prices": []any{map[string]any{"effective": "2024-01-01", "input": 0.035, "cached_input": 0.00875, "output": 0.14}}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	at := date("2025-01-01T00:00:00Z")
	for _, tt := range []struct {
		model string
		usage Usage
		want  int64
	}{
		{"flash", Usage{PromptTokens: 1_000_000, CachedTokens: 1_000_000}, 18_750},
		{"flash", Usage{PromptTokens: 1_000_000}, 37_500},
		{"micro", Usage{PromptTokens: 2_000_000, CachedTokens: 2_000_000}, 17_500},
		{"micro", Usage{PromptTokens: 3_000_000, CachedTokens: 1_000_000, CompletionTokens: 500_000}, 70_000 + 8_750 + 70_000},
	} {
		got, ok := pb.CostMicros(tt.model, at, tt.usage)
		if !ok || got != tt.want {
			t.Errorf("CostMicros(%s, %+v) = %d, %v; want %d µ$", tt.model, tt.usage, got, ok, tt.want)
		}
	}
}
