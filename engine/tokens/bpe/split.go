package bpe

import "unicode/utf8"

// The pre-tokenizers below implement tiktoken's split patterns by hand, with
// the semantics of a backtracking regex engine: at each position the first
// alternative that matches wins, quantifiers are greedy and give back one
// rune at a time. Every rune is matched by some alternative, so pieces cover
// the text. Comments quote the alternatives; "run" means a maximal sequence
// of runes of one class.
//
// cl100k_base:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//	 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// o200k_base:
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
//	\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+

// nextCl100k returns the end of the cl100k_base piece starting at s[i], where
// i < len(s) and s is valid UTF-8.
func (t *classTable) nextCl100k(s string, i int) int {
	if end := t.asciiWordCl100k(s, i); end >= 0 {
		return end
	}
	if s[i] == '\'' {
		if end := contraction(s, i); end >= 0 {
			return end
		}
	}
	c0, w0 := t.at(s, i)
	switch {
	case c0&cL != 0: // \p{L}+
		return t.run(s, i+w0, cL)
	case c0&cNumber != 0:
		return t.digits(s, i+w0)
	}
	if c0&notPrefix == 0 && i+w0 < len(s) { // [^\r\n\p{L}\p{N}]\p{L}+
		if c1, w1 := t.at(s, i+w0); c1&cL != 0 {
			return t.run(s, i+w0+w1, cL)
		}
	}
	if end := t.punct(s, i, false); end >= 0 {
		return end
	}
	return t.spaces(s, i)
}

// nextO200k returns the end of the o200k_base piece starting at s[i], where
// i < len(s) and s is valid UTF-8.
func (t *classTable) nextO200k(s string, i int) int {
	if end := t.asciiWordO200k(s, i); end >= 0 {
		return end
	}
	c0, w0 := t.at(s, i)
	if c0&cNumber != 0 { // no other alternative can start with \p{N}
		return t.digits(s, i+w0)
	}
	prefix := c0&notPrefix == 0
	if prefix || c0&(cUpperSet|cLowerSet) != 0 {
		if end := t.lettersO200k(s, i, c0, w0, prefix); end >= 0 {
			return end
		}
	}
	if end := t.punct(s, i, true); end >= 0 {
		return end
	}
	return t.spaces(s, i)
}

// asciiWordO200k is a fast path for the commonest piece: ASCII letters,
// maybe after one ASCII byte of [^\r\n\p{L}\p{N}] such as a space, and
// followed by ASCII or the end of the text. It returns -1 for anything else,
// which nextO200k then handles in general. In ASCII the upper and lower sets
// are just [A-Z] and [a-z], so the letter alternatives reduce to [A-Z]*[a-z]+
// or else [A-Z]+, with the prefix if there is one.
func (t *classTable) asciiWordO200k(s string, i int) int {
	j, c := i, t.byByte[s[i]]
	if c == cMulti {
		return -1
	}
	if c&notPrefix == 0 {
		if j++; j == len(s) {
			return -1
		}
		c = t.byByte[s[j]]
	}
	if c != cUpper && c != cLower {
		return -1
	}
	k := j
	for k < len(s) && t.byByte[s[k]] == cUpper {
		k++
	}
	for k < len(s) && t.byByte[s[k]] == cLower {
		k++
	}
	if k < len(s) && s[k] >= utf8.RuneSelf {
		return -1 // a non-ASCII letter or mark may continue the piece
	}
	return contractionSuffix(s, k)
}

// asciiWordCl100k is asciiWordO200k for cl100k_base, where the letter
// alternative is [^\r\n\p{L}\p{N}]?\p{L}+. It leaves pieces starting with
// an apostrophe, maybe a contraction, to nextCl100k.
func (t *classTable) asciiWordCl100k(s string, i int) int {
	j, c := i, t.byByte[s[i]]
	if c == cMulti || s[i] == '\'' {
		return -1
	}
	if c&notPrefix == 0 {
		if j++; j == len(s) {
			return -1
		}
		c = t.byByte[s[j]]
	}
	if c != cUpper && c != cLower {
		return -1
	}
	k := j + 1
	for k < len(s) {
		if c = t.byByte[s[k]]; c != cUpper && c != cLower {
			break
		}
		k++
	}
	if k < len(s) && s[k] >= utf8.RuneSelf {
		return -1
	}
	return k
}

// lettersO200k matches o200k's first two alternatives at s[i], whose first
// rune has class c0 and width w0; prefix reports whether that rune can be the
// optional [^\r\n\p{L}\p{N}]. It returns -1 if neither alternative matches.
//
// The regex engine tries, in order: alternative 1 with the prefix, then
// without it, then alternative 2 with the prefix, then without it.
func (t *classTable) lettersO200k(s string, i int, c0 uint8, w0 int, prefix bool) int {
	upper1 := -1 // end of the upper-set run after the prefix
	if prefix && i+w0 < len(s) {
		end, upper := t.cased(s, i+w0)
		if end >= 0 {
			return contractionSuffix(s, end)
		}
		upper1 = upper
	}
	upper0 := -1 // end of the upper-set run at i
	if c0&(cUpperSet|cLowerSet) != 0 {
		end, upper := t.cased(s, i)
		if end >= 0 {
			return contractionSuffix(s, end)
		}
		upper0 = upper
	}
	// Alternative 1 failed, so each upper-set run holds only \p{Lu}\p{Lt}
	// and is not followed by \p{Ll}: alternative 2 matches exactly a
	// non-empty run, its [\p{Ll}\p{Lm}\p{Lo}\p{M}]* matching nothing.
	if upper1 > i+w0 {
		return contractionSuffix(s, upper1)
	}
	if upper0 > i {
		return contractionSuffix(s, upper0)
	}
	return -1
}

// cased matches [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+ at
// s[j], returning the end of the match or -1, and the end of the leading
// upper-set run.
//
// The first loop takes the whole upper-set run. If a \p{Ll} follows it, the
// lower-set loop takes its run. Otherwise the engine gives back runes of the
// upper-set run one at a time until the next rune is in the lower set, which
// inside the run means \p{Lm}, \p{Lo} or \p{M}; the lower-set loop then takes
// just that rune, since the rest of the run is \p{Lu} or \p{Lt} and the rune
// after the run is in neither set.
func (t *classTable) cased(s string, j int) (end, upper int) {
	k, lastBoth := j, -1
	for k < len(s) {
		c, w := t.at(s, k)
		if c&cUpperSet == 0 {
			if c&cLower != 0 {
				return t.run(s, k+w, cLowerSet), k
			}
			break
		}
		k += w
		if c&(cLetter|cMark) != 0 {
			lastBoth = k
		}
	}
	return lastBoth, k
}

// run returns the end of the run of runes with any of the class bits in set
// starting at s[k].
func (t *classTable) run(s string, k int, set uint8) int {
	for k < len(s) {
		c, w := t.at(s, k)
		if c&set == 0 {
			break
		}
		k += w
	}
	return k
}

// digits returns the end of \p{N}{1,3} whose first rune ends at k.
func (t *classTable) digits(s string, k int) int {
	for n := 1; n < 3 && k < len(s); n++ {
		c, w := t.at(s, k)
		if c&cNumber == 0 {
			break
		}
		k += w
	}
	return k
}

// punct matches " ?[^\s\p{L}\p{N}]+[\r\n]*" at s[i] (with [\r\n/]* for
// o200k, slash set), or returns -1. All three quantifiers are effectively
// possessive: ' ' and '/' are outside or inside the middle class, so giving
// them back never helps.
func (t *classTable) punct(s string, i int, slash bool) int {
	j := i
	if s[j] == ' ' {
		j++
	}
	k := j
	for k < len(s) {
		c, w := t.at(s, k)
		if c&notPunct != 0 {
			break
		}
		k += w
	}
	if k == j {
		return -1
	}
	for k < len(s) && (s[k] == '\r' || s[k] == '\n' || slash && s[k] == '/') {
		k++
	}
	return k
}

// spaces matches the whitespace alternatives at s[i], which start with a
// \s rune:
//
//   - \s*[\r\n]+ ends right after the last \r or \n of the \s run;
//   - else \s+(?!\S) takes the run if it ends the text, or gives back its
//     last rune, which must then be preceded by another;
//   - else \s+ takes the single-rune run.
func (t *classTable) spaces(s string, i int) int {
	k, last, newline := i, i, -1
	for k < len(s) {
		c, w := t.at(s, k)
		if c&cSpace == 0 {
			break
		}
		last = k
		k += w
		if c&cNewline != 0 {
			newline = k
		}
	}
	switch {
	case newline >= 0:
		return newline
	case k == len(s) || last == i:
		return k
	default:
		return last
	}
}

// contraction matches (?i:'s|'t|'re|'ve|'m|'ll|'d) at s[i], an apostrophe,
// or returns -1. Under (?i), s also matches U+017F (ſ, long s), whose UTF-8
// is C5 BF.
func contraction(s string, i int) int {
	if i+1 >= len(s) {
		return -1
	}
	switch s[i+1] {
	case 's', 'S', 't', 'T', 'm', 'M', 'd', 'D':
		return i + 2
	case 'r', 'R', 'v', 'V':
		if i+2 < len(s) && s[i+2]|0x20 == 'e' {
			return i + 3
		}
	case 'l', 'L':
		if i+2 < len(s) && s[i+2]|0x20 == 'l' {
			return i + 3
		}
	case 0xC5:
		if i+2 < len(s) && s[i+2] == 0xBF {
			return i + 3
		}
	}
	return -1
}

// contractionSuffix returns the end of an optional contraction at s[k].
func contractionSuffix(s string, k int) int {
	if k < len(s) && s[k] == '\'' {
		if end := contraction(s, k); end >= 0 {
			return end
		}
	}
	return k
}
