package bpe

import (
	"unicode"
	"unicode/utf8"
)

// Character classes used by the split patterns. A rune carries at most one
// general-category bit (cUpper, cLower, cLetter, cMark, cNumber), plus cSpace
// if unicode.IsSpace reports it (regexp2's \s) and cNewline for '\r' and '\n'.
// The tables are Go's unicode package, as in regexp2, which the reference
// tokenizer (github.com/tiktoken-go/tokenizer) runs.
const (
	cUpper   uint8 = 1 << iota // \p{Lu}, \p{Lt}
	cLower                     // \p{Ll}
	cLetter                    // \p{Lm}, \p{Lo}: in both of o200k's letter sets
	cMark                      // \p{M}
	cNumber                    // \p{N}
	cSpace                     // \s
	cNewline                   // [\r\n]

	// cMulti marks a byte that starts (or is part of) a multi-byte rune.
	cMulti uint8 = 0xff
)

const (
	// cL is \p{L}.
	cL = cUpper | cLower | cLetter
	// cUpperSet is o200k's [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}].
	cUpperSet = cUpper | cLetter | cMark
	// cLowerSet is o200k's [\p{Ll}\p{Lm}\p{Lo}\p{M}].
	cLowerSet = cLower | cLetter | cMark
	// notPrefix is the complement of [^\r\n\p{L}\p{N}].
	notPrefix = cNewline | cL | cNumber
	// notPunct is the complement of [^\s\p{L}\p{N}].
	notPunct = cSpace | cL | cNumber
)

// blockBits sets the granularity of the two-level class table: runes are
// grouped in blocks of 1<<blockBits, and identical blocks are stored once.
const blockBits = 8

// classTable maps every rune to its class bits. It is built once per process
// and never modified.
type classTable struct {
	// byByte holds the classes of ASCII bytes, and cMulti for the others.
	byByte [256]uint8
	index  [(unicode.MaxRune + 1) >> blockBits]uint16
	blocks []uint8
}

func newClassTable() *classTable {
	full := make([]uint8, unicode.MaxRune+1)
	mark := func(t *unicode.RangeTable, c uint8) {
		for _, r := range t.R16 {
			for x := int(r.Lo); x <= int(r.Hi); x += int(r.Stride) {
				full[x] |= c
			}
		}
		for _, r := range t.R32 {
			for x := int(r.Lo); x <= int(r.Hi); x += int(r.Stride) {
				full[x] |= c
			}
		}
	}
	mark(unicode.Lu, cUpper)
	mark(unicode.Lt, cUpper)
	mark(unicode.Ll, cLower)
	mark(unicode.Lm, cLetter)
	mark(unicode.Lo, cLetter)
	mark(unicode.M, cMark)
	mark(unicode.N, cNumber)
	// unicode.IsSpace is the White_Space property (it special-cases Latin-1
	// only for speed, with the same result).
	mark(unicode.White_Space, cSpace)
	full['\r'] |= cNewline
	full['\n'] |= cNewline

	t := &classTable{}
	copy(t.byByte[:], full[:utf8.RuneSelf])
	for b := utf8.RuneSelf; b < len(t.byByte); b++ {
		t.byByte[b] = cMulti
	}
	seen := make(map[string]uint16)
	const size = 1 << blockBits
	for b := range t.index {
		block := full[b*size : (b+1)*size]
		id, ok := seen[string(block)]
		if !ok {
			id = uint16(len(t.blocks) >> blockBits)
			seen[string(block)] = id
			t.blocks = append(t.blocks, block...)
		}
		t.index[b] = id
	}
	return t
}

// of returns the class bits of r, a valid rune.
func (t *classTable) of(r rune) uint8 {
	return t.blocks[int(t.index[r>>blockBits])<<blockBits|int(r&(1<<blockBits-1))]
}

// at returns the class bits and the width of the rune starting at s[i]. s
// must be valid UTF-8.
func (t *classTable) at(s string, i int) (c uint8, w int) {
	c, w = t.byByte[s[i]], 1
	if c == cMulti {
		c, w = t.atRune(s, i)
	}
	return
}

// atRune is at for a non-ASCII rune, kept out of line so that at inlines.
func (t *classTable) atRune(s string, i int) (uint8, int) {
	r, w := utf8.DecodeRuneInString(s[i:])
	return t.of(r), w
}
