package sim

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tollgate/tollgate/engine/tokens"
)

func newTestServer(t testing.TB, cfg Config) (*Server, *tokens.Counter) {
	t.Helper()
	counter, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, counter)
	if err != nil {
		t.Fatal(err)
	}
	return s, counter
}

func TestLoremWordsAreSingleTokens(t *testing.T) {
	t.Parallel()
	s, counter := newTestServer(t, Config{})
	for _, model := range []string{"gpt-4o", "gpt-3.5-turbo"} { // o200k_base, cl100k_base
		// Starters open the answer (no space) and later sentences (space);
		// other words always follow a space.
		pieces := []string{"."}
		for _, w := range s.starters {
			pieces = append(pieces, w, " "+w)
		}
		for _, w := range s.words {
			pieces = append(pieces, " "+w)
		}
		for _, p := range pieces {
			if n := counter.Count(model, p); n != 1 {
				t.Errorf("%s: %q is %d tokens, want 1", model, p, n)
			}
		}
		for seed := range uint64(5) {
			for n := 1; n <= 300; n += 7 {
				text, pieces := s.lorem(seed, n, true)
				if got := counter.Count(model, text); got != n {
					t.Fatalf("%s seed %d: text of %d pieces is %d tokens, want %d: %q", model, seed, n, got, n, text)
				}
				if len(pieces) != n || strings.Join(pieces, "") != text {
					t.Fatalf("%s seed %d: %d pieces do not join to the text", model, seed, len(pieces))
				}
			}
		}
	}
}

func TestEchoTruncation(t *testing.T) {
	t.Parallel()
	s, counter := newTestServer(t, Config{})
	tests := []struct {
		name  string
		model string
		text  string
		max   int
	}{
		{name: "ascii", model: "gpt-4o", text: "The quick brown fox jumps over the lazy dog", max: 3},
		{name: "emoji split inside tokens", model: "gpt-3.5-turbo", text: "🦊🐶🦊🐶🦊🐶 fox dog", max: 1},
		{name: "cjk", model: "gpt-4o", text: "敏捷的棕色狐狸跳过了懒狗。敏捷的棕色狐狸", max: 4},
		{name: "combining marks", model: "gpt-3.5-turbo", text: "e\u0301e\u0301e\u0301 cafe\u0301 nai\u0308ve", max: 2},
		{name: "limit above length", model: "gpt-4o", text: "short", max: 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plain := s.echo(tc.model, tc.text, tc.max, false)
			streamed := s.echo(tc.model, tc.text, tc.max, true)
			full := counter.Count(tc.model, tc.text)
			for _, a := range []answer{plain, streamed} {
				if !strings.HasPrefix(tc.text, a.text) || !utf8.ValidString(a.text) {
					t.Fatalf("answer %q is not a valid prefix of %q", a.text, tc.text)
				}
				if got := counter.Count(tc.model, a.text); got != a.tokens || got > tc.max {
					t.Errorf("answer %q: %d tokens, reported %d, limit %d", a.text, got, a.tokens, tc.max)
				}
				wantFinish := "stop"
				if full > tc.max {
					wantFinish = "length"
				}
				if a.finish != wantFinish {
					t.Errorf("finish: got %q, want %q", a.finish, wantFinish)
				}
			}
			if plain.text != streamed.text {
				t.Errorf("stream answer %q differs from JSON answer %q", streamed.text, plain.text)
			}
			if got := strings.Join(streamed.pieces, ""); got != streamed.text {
				t.Errorf("pieces join to %q, want %q", got, streamed.text)
			}
			for _, p := range streamed.pieces {
				if p == "" || !utf8.ValidString(p) {
					t.Errorf("piece %q is empty or not valid UTF-8", p)
				}
			}
		})
	}
}

func TestRunePieces(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		toks []string
		want []string
	}{
		{name: "aligned", text: "ab cd", toks: []string{"ab", " cd"}, want: []string{"ab", " cd"}},
		{name: "token inside a character", text: "x🦊y", toks: []string{"x\xf0\x9f", "\xa6\x8a", "y"}, want: []string{"x🦊", "y"}},
		{name: "empty", text: "", want: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !joinsTo(tc.toks, tc.text) {
				t.Fatalf("joinsTo(%q, %q) = false, want true", tc.toks, tc.text)
			}
			got := runePieces(tc.text, tc.toks)
			if len(got) != len(tc.want) || strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if joinsTo([]string{"a", "c"}, "abc") || joinsTo([]string{"ab"}, "abc") {
		t.Error("joinsTo accepted tokens that do not join to the text")
	}
}
