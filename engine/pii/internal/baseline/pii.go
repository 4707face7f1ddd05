// Package baseline is a frozen copy of the pii scanner before issue 9, kept
// only so that benchmarks can report before/after ratios in one run. Do not
// use it elsewhere.
//
// Original package comment: package pii finds personal data in free text — e-mail addresses, phone
// numbers, payment card numbers and US social security numbers — and masks it.
//
// A Scanner makes one forward pass over the text. Cheap triggers start the
// expensive work: an '@' starts an e-mail match that grows left over the local
// part and right over the domain; a digit starts a numeric match over a
// "chain" of digit groups. Everything else is skipped eight bytes at a time.
// Candidates are then checked by exact validators (Luhn and card brand, SSN
// number ranges, NANP area codes, domain syntax). No regular expressions are
// used, and a Scan that finds nothing allocates nothing.
//
// # What is matched
//
//   - EMAIL: local part of [A-Za-z0-9._%+-] (1–64 bytes, no leading, trailing
//     or doubled '.'), '@', two or more domain labels of [A-Za-z0-9-] (not
//     starting or ending with '-'), the last one at least two letters.
//     Trailing '.', ',', ')' and the like are not part of the finding.
//   - CREDIT_CARD: 13–19 digits, written bare or in groups joined by single
//     spaces or single dashes (one kind per number; first group 4–6 digits,
//     the others 3–6), Luhn-valid and with a known brand prefix and length:
//     Visa, Mastercard, Amex, Discover, JCB, Diners Club, UnionPay.
//   - US_SSN: ddd-dd-dddd or ddd dd dddd, or nine bare digits when the text
//     within 32 bytes before them names the number ("SSN", "social security",
//     "soc sec"). Area 000, 666 and 900–999, group 00 and serial 0000 are
//     rejected. The spaced form must not sit inside a longer run of
//     space-separated digit groups.
//   - PHONE: international numbers written with a leading '+' (country code
//     not starting with 0, 8–15 digits in all, exactly 11 for +1), grouped
//     with spaces, dashes, dots or parentheses ("+44 (0)20 7946 0958");
//     US national numbers (ddd) ddd-dddd, (ddd)ddd-dddd, (ddd) ddd dddd,
//     ddd-ddd-dddd, ddd.ddd.dddd and 1-ddd-ddd-dddd, with an area code
//     starting 2–9.
//
// # What is not matched
//
// A digit group glued to a word (letters, digits, '_' or '@' next to it, or a
// '-', '.', '/' or ':' joining it to one, as in "INV-2024-000123",
// "v10.4.12", "0x4111…", "/users/415-555-2671" or "12:30") is never PII.
// Groups joined by '-', '.', '/' or ':' form one token that must match a
// format as a whole, so dates, times, versions, IP addresses, UUIDs and
// digit runs longer than a format are rejected, as are numbers inside them.
// Bare national numbers without separators ("4155552671"), national numbers
// of other countries without a '+' prefix, US numbers written only with
// spaces ("415 555 2671") and bare nine-digit numbers without an SSN cue
// are deliberately not matched: they are indistinguishable from ids and
// amounts. Non-ASCII bytes are treated as word boundaries, so a number or
// address written directly next to CJK or accented text is found.
package baseline

import "math/bits"

// Finding types.
const (
	Email      = "EMAIL"
	Phone      = "PHONE"
	CreditCard = "CREDIT_CARD"
	USSSN      = "US_SSN"
)

// Finding is one detected item: text[Start:End] of the scanned text, in byte
// offsets, End exclusive.
type Finding struct {
	Type       string
	Start, End int
}

// Scanner detects PII. It is immutable and safe for concurrent use; build one
// with NewScanner and share it. The zero value detects everything except
// bare nine-digit SSNs, which need context words.
type Scanner struct {
	ssnCues   []string // lowercase words that license a bare nine-digit SSN
	ssnWindow int      // bytes before the number searched for a cue
	slow      bool     // tests only: disable the skips that are pure speedups
}

// NewScanner returns a Scanner with all detectors enabled.
func NewScanner() *Scanner {
	return &Scanner{
		ssnCues:   []string{"ssn", "social security", "soc sec"},
		ssnWindow: 32,
	}
}

// Scan appends the findings in text to dst, ordered by Start and
// non-overlapping, and returns the extended slice. Elements already in dst are
// left alone. Scan allocates only when dst must grow, so reusing dst[:0]
// across calls makes it allocation-free.
//
// When two candidates overlap, the longer one is kept; at equal length
// CREDIT_CARD beats US_SSN, which beats PHONE, which beats EMAIL.
func (s *Scanner) Scan(text string, dst []Finding) []Finding {
	base := len(dst)
	var ch chain // reused by every numeric match, so it is zeroed once
	for i := 0; i < len(text); {
		t := nextTrigger(text, i)
		if t >= len(text) {
			break
		}
		switch c := text[t]; {
		case c == '@':
			if f, ok := matchEmail(text, t); ok {
				dst = push(dst, base, f)
				i = f.End
			} else {
				i = t + 1
			}
		case isDigit(c):
			start := t
			if start > 0 && text[start-1] == '(' {
				start--
			}
			if start > 0 && text[start-1] == '+' {
				start--
			}
			if blockedLeft(text, start) {
				i = t + 1
				if !s.slow {
					i = skipToken(text, t)
				}
				continue
			}
			if end, few := fewDigits(text, t); few && !s.slow {
				i = end // no format fits; most numbers in prose end here
				continue
			}
			var end int
			dst, end = s.scanChain(&ch, text, start, dst, base)
			i = max(end, t+1)
		default: // one of :;<=>? — shares the trigger byte range
			i = t + 1
		}
	}
	return dst
}

// push appends f to dst, resolving overlaps with the findings after base by
// keeping the winner. Candidates are produced left to right and each new one
// ends after every earlier one starts, so only a suffix of dst can overlap.
func push(dst []Finding, base int, f Finding) []Finding {
	k := len(dst)
	for k > base && dst[k-1].End > f.Start {
		if !beats(f, dst[k-1]) {
			return dst
		}
		k--
	}
	return append(dst[:k], f)
}

// beats reports whether a should replace the overlapping b.
func beats(a, b Finding) bool {
	la, lb := a.End-a.Start, b.End-b.Start
	if la != lb {
		return la > lb
	}
	return rank(a.Type) > rank(b.Type)
}

// rank orders types by specificity for ties between equally long findings.
func rank(typ string) int {
	switch typ {
	case CreditCard:
		return 4
	case USSSN:
		return 3
	case Phone:
		return 2
	case Email:
		return 1
	}
	return 0
}

// SWAR constants for testing eight bytes at once.
const (
	lo7  = 0x7f7f7f7f7f7f7f7f
	hi1  = 0x8080808080808080
	ones = 0x0101010101010101
)

// triggerBits returns w with the high bit of each byte set exactly when that
// byte is in '0'..'@' (digits, :;<=>? and '@'). Masking to seven bits first
// keeps every subtraction and addition inside its byte; ^w drops non-ASCII.
func triggerBits(w uint64) uint64 {
	y := w & lo7
	return (ones*(127+'@'+1) - y) & ^w & (y + ones*(127-('0'-1))) & hi1
}

// nextTrigger returns the index of the first byte at or after i that may
// start a match (a digit or '@', plus the few bytes between them), or
// len(text).
func nextTrigger(text string, i int) int {
	for ; i+8 <= len(text); i += 8 {
		b := text[i : i+8]
		w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		if m := triggerBits(w); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(text); i++ {
		if text[i]-'0' <= '@'-'0' {
			return i
		}
	}
	return len(text)
}

// blockedLeft reports whether a numeric token starting at start continues a
// word or a compound token to its left ("abc123", "INV-2024", "1.2", "x@9"),
// in which case it is not PII. A colon after a letter is a label
// ("SSN:123-45-6789") and does not block.
func blockedLeft(text string, start int) bool {
	if start == 0 {
		return false
	}
	c := text[start-1]
	switch {
	case isWordByte(c), c == '@':
		return true
	case isJoiner(c):
		if start < 2 {
			return false
		}
		b := text[start-2]
		if c == ':' {
			return isDigit(b)
		}
		return isWordByte(b)
	}
	return false
}

// minDigits is the fewest digits any numeric format has (E.164's 8).
const minDigits = 8

// fewDigits reports whether the numeric region from i — digits, joiners,
// parentheses, '+' and single spaces before another number — holds fewer
// than minDigits usable digits, and if so returns the region's end. Every
// chain of units lies inside such a region, so nothing in it can match.
//
// Digits joined by '/' or ':' between two digits ("11/20/2026", "10:30")
// are not usable: parseUnit must put them in one unit, and no format
// accepts a unit with such a joiner. Any other non-digit might end a unit,
// so it closes the current run of digits without judging it.
func fewDigits(text string, i int) (end int, few bool) {
	digits, run := 0, 0 // usable digits in closed runs, digits in this run
	odd := false        // this run has a '/' or ':' between digits
	for ; i < len(text); i++ {
		c := text[i]
		if isDigit(c) {
			if run++; !odd && digits+run >= minDigits {
				return 0, false
			}
			continue
		}
		if (c == '/' || c == ':') && isDigit(text[i-1]) && i+1 < len(text) && isDigit(text[i+1]) {
			odd = true
			continue
		}
		if !odd {
			digits += run
		}
		run, odd = 0, false
		switch {
		case isJoiner(c), c == '(', c == ')', c == '+':
		case c == ' ' && i+1 < len(text) && startsUnit(text, i+1):
		default:
			return i, true
		}
	}
	return i, true
}

// skipToken returns the end of the word starting at i, continuing across
// joiners into further words: every digit in that span is blocked by
// blockedLeft anyway, so skipping it is only faster ("550e8400-e29b-41d4").
func skipToken(text string, i int) int {
	for i < len(text) {
		c := text[i]
		if isWordByte(c) {
			i++
			continue
		}
		if isJoiner(c) && i+1 < len(text) && isWordByte(text[i+1]) && (c != ':' || isDigit(text[i-1])) {
			i++
			continue
		}
		break
	}
	return i
}

func isDigit(c byte) bool  { return c-'0' < 10 }
func isLetter(c byte) bool { return (c|0x20)-'a' < 26 }

// isWordByte reports whether c is an ASCII letter, digit or '_'.
func isWordByte(c byte) bool { return isDigit(c) || isLetter(c) || c == '_' }

// isJoiner reports whether c binds digit groups into one token.
func isJoiner(c byte) bool { return c == '-' || c == '.' || c == '/' || c == ':' }
