package bpe

import (
	"testing"
	"unicode"
	"unicode/utf8"
)

// TestClassTable checks every rune's class bits against the unicode package
// calls that the reference's generated regexp code makes.
func TestClassTable(t *testing.T) {
	t.Parallel()
	tbl := classes()
	for r := rune(0); r <= unicode.MaxRune; r++ {
		var want uint8
		switch {
		case unicode.In(r, unicode.Lu, unicode.Lt):
			want = cUpper
		case unicode.Is(unicode.Ll, r):
			want = cLower
		case unicode.In(r, unicode.Lm, unicode.Lo):
			want = cLetter
		case unicode.Is(unicode.M, r):
			want = cMark
		case unicode.Is(unicode.N, r):
			want = cNumber
		}
		if unicode.IsSpace(r) {
			want |= cSpace
		}
		if r == '\r' || r == '\n' {
			want |= cNewline
		}
		if got := tbl.of(r); got != want {
			t.Fatalf("class of %U = %#b, want %#b", r, got, want)
		}
		// Decoding is the same for all runes of one UTF-8 length: sample.
		if !utf8.ValidRune(r) || r >= utf8.RuneSelf && r%61 != 0 {
			continue
		}
		s := string(r)
		if c, w := tbl.at(s, 0); c != want || w != len(s) {
			t.Fatalf("at(%q) = %#b, %d, want %#b, %d", s, c, w, want, len(s))
		}
	}
}
