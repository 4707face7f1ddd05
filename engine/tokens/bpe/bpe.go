// Package bpe counts and encodes tokens exactly as tiktoken's encode_ordinary
// does for the o200k_base and cl100k_base encodings, without regular
// expressions and without allocating for valid UTF-8 text.
//
// Text is split into pieces by a hand-written equivalent of each encoding's
// split pattern (see split.go), then every piece is looked up whole and, if it
// is not a single token, merged by byte-pair encoding. Special tokens such as
// <|endoftext|> get no special treatment: they are ordinary text.
//
// Invalid UTF-8 is handled as github.com/tiktoken-go/tokenizer does in its
// default error mode: each byte that is not part of a valid UTF-8 sequence
// counts as U+FFFD.
//
// The vocabularies come from github.com/pkoukk/tiktoken-go-loader, which
// embeds OpenAI's .tiktoken files, so nothing is downloaded at run time.
package bpe

import (
	"sync"
	"unicode/utf8"
)

// Encoding is one tiktoken encoding. It is immutable and safe for concurrent
// use.
type Encoding struct {
	name    string
	o200k   bool // split with the o200k_base pattern, else cl100k_base's
	classes *classTable
	ranks   *ranks
	cache   *countCache
}

var (
	classes = sync.OnceValue(newClassTable)
	o200k   = sync.OnceValues(func() (*Encoding, error) {
		return load("o200k_base", true)
	})
	cl100k = sync.OnceValues(func() (*Encoding, error) {
		return load("cl100k_base", false)
	})
)

// O200kBase returns the o200k_base encoding (GPT-4o, GPT-4.1, GPT-5, o-series).
// The first call parses the vocabulary (about 50 ms; the Encoding holds about
// 10 MB); later calls return the same Encoding.
func O200kBase() (*Encoding, error) { return o200k() }

// Cl100kBase returns the cl100k_base encoding (GPT-4, GPT-3.5). The first
// call parses the vocabulary (about 25 ms, 5 MB); later calls return the
// same Encoding.
func Cl100kBase() (*Encoding, error) { return cl100k() }

func load(name string, o200k bool) (*Encoding, error) {
	r, err := loadRanks(name + ".tiktoken")
	if err != nil {
		return nil, err
	}
	return &Encoding{name: name, o200k: o200k, classes: classes(), ranks: r, cache: new(countCache)}, nil
}

// Name returns the encoding's tiktoken name, such as "o200k_base".
func (e *Encoding) Name() string { return e.name }

// Count returns the number of tokens of text. It allocates nothing unless
// text is not valid UTF-8.
func (e *Encoding) Count(text string) int {
	if !utf8.ValidString(text) {
		text = replaceInvalid(text)
	}
	// Pieces go in batches: split several, look them all up, then merge
	// those that are not one token. Most lookups miss the CPU caches (the
	// table has megabytes); done back to back, their misses overlap.
	var ends [batch]int
	var ranks [batch]uint32
	n := 0
	for i := 0; i < len(text); {
		m := 0
		for j := i; m < batch && j < len(text); m++ {
			j = e.next(text, j)
			ends[m] = j
		}
		for k, start := 0, i; k < m; k++ {
			ranks[k] = e.ranks.lookup(text[start:ends[k]])
			start = ends[k]
		}
		for k, start := 0, i; k < m; k++ {
			if ranks[k] != noRank {
				n++
			} else {
				n += e.countMerged(text[start:ends[k]])
			}
			start = ends[k]
		}
		i = ends[m-1]
	}
	return n
}

// batch is the number of pieces Count splits before looking them up.
const batch = 16

// Encode appends the token IDs of text to dst and returns the extended slice.
// len(Encode(text, nil)) == Count(text).
func (e *Encoding) Encode(text string, dst []int) []int {
	if !utf8.ValidString(text) {
		text = replaceInvalid(text)
	}
	for i := 0; i < len(text); {
		j := e.next(text, i)
		dst = e.encodePiece(text[i:j], dst)
		i = j
	}
	return dst
}

// next returns the end of the piece starting at text[i].
func (e *Encoding) next(text string, i int) int {
	if e.o200k {
		return e.classes.nextO200k(text, i)
	}
	return e.classes.nextCl100k(text, i)
}

// countMerged returns the token count of piece p, which is not one token.
func (e *Encoding) countMerged(p string) int {
	if len(p) == 2 { // two bytes that don't merge
		return 2
	}
	if len(p) > maxCached {
		return e.mergeCount(p)
	}
	k := packPiece(p)
	if n, ok := e.cache.get(&k); ok {
		return n
	}
	n := e.mergeCount(p)
	e.cache.put(&k, n)
	return n
}

func (e *Encoding) mergeCount(p string) int {
	var buf [smallPiece + 1]part
	return len(e.ranks.merge(p, buf[:])) - 1
}

func (e *Encoding) encodePiece(p string, dst []int) []int {
	if rank := e.ranks.lookup(p); rank != noRank {
		return append(dst, int(rank))
	}
	var buf [smallPiece + 1]part
	parts := e.ranks.merge(p, buf[:])
	for i := 0; i+1 < len(parts); i++ {
		dst = append(dst, int(e.ranks.lookup(p[parts[i].start:parts[i+1].start])))
	}
	return dst
}

// replaceInvalid replaces each byte of s that is not part of a valid UTF-8
// sequence with U+FFFD, as converting s to []rune does: the reference
// tokenizer's regexp2 matches on runes, so that is the text it tokenizes.
func replaceInvalid(s string) string {
	b := make([]byte, 0, len(s)+len(s)/2)
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && w == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+w]...)
		}
		i += w
	}
	return string(b)
}
