// Package pii finds personal data and secrets in free text and masks them.
//
// A Scanner makes one forward pass over the text. Cheap triggers start the
// expensive work, and everything else is skipped eight bytes at a time: an
// '@' starts an e-mail match; a digit starts a numeric match over a "chain"
// of digit groups, or an IBAN when two capital letters precede it, or an IPv6
// address; a ':' an IPv6 address; '-', '_' and 'A' start the checks for
// known secret prefixes ("sk-", "ghp_", "AKIA", "-----BEGIN"), and a '.'
// the check for a JWT header ("eyJ…") before it. Candidates are then checked by exact validators (Luhn and card
// brand, SSN number ranges, NANP area codes, IBAN lengths and mod-97, octet
// ranges, base64url JSON headers). The built-in detectors use no regular
// expressions, and a Scan that finds nothing allocates nothing. Custom
// detectors from policy data (see CustomDetector) run after the built-in pass
// and are merged into its findings.
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
//   - IBAN: two capital letters of a country in the IBAN registry, two check
//     digits and the BBAN, with the registry's length for that country and a
//     valid ISO 7064 mod-97 check, written without spaces or in groups of
//     four separated by single spaces ("DE89 3704 0044 0532 0130 00"). Only
//     capital letters are accepted.
//   - IP_ADDRESS: IPv4 dotted quads with octets 0–255 (a ":port" or "/prefix"
//     after it is not part of the finding), and IPv6 addresses in the RFC
//     4291 text forms, "::" compression and a dotted-quad tail included. An
//     IPv6 finding must contain a decimal digit and either a group of three
//     or more hex digits or a dotted-quad tail, which keeps "a::b", "1::2"
//     slices and "::" out. Zone suffixes ("%eth0") are not part of it.
//   - AWS_ACCESS_KEY: "AKIA" or "ASIA" and 16 capital letters or digits.
//   - API_KEY: vendor tokens by prefix, one type for all vendors so that one
//     policy rule covers them: OpenAI "sk-", "sk-proj-", "sk-svcacct-",
//     "sk-admin-" and Anthropic "sk-ant-" (20 or more [A-Za-z0-9_-] with a
//     digit and a letter after the prefix); GitHub "ghp_", "gho_", "ghu_",
//     "ghs_", "ghr_" (30 or more letters and digits) and "github_pat_" (40 or
//     more [A-Za-z0-9_]); Slack "xoxb-", "xoxp-", "xoxa-", "xoxr-" (10 or
//     more [A-Za-z0-9-] with a digit); Stripe "sk_live_", "rk_live_",
//     "sk_test_", "rk_test_" (16 or more letters and digits).
//   - PRIVATE_KEY: a PEM block from "-----BEGIN ... PRIVATE KEY-----" through
//     the matching "-----END ... PRIVATE KEY-----". Without an END line the
//     finding runs over the base64 body that follows (fail safe for truncated
//     keys), and an END line without its BEGIN is found together with the
//     base64 body before it.
//   - JWT: three non-empty base64url segments joined by '.', the first
//     starting "eyJ" and decoding to a JSON object with an "alg" member.
//
// Secrets, IBANs and IPv6 addresses must not be glued to a word or a '-' on
// the left, nor to a word byte on the right.
//
// # What is not matched
//
// A digit group glued to a word (letters, digits, '_' or '@' next to it, or a
// '-', '.', '/' or ':' joining it to one, as in "INV-2024-000123",
// "v10.4.12", "0x4111…", "/users/415-555-2671" or "12:30") is never PII.
// Groups joined by '-', '.', '/' or ':' form one token that must match a
// format as a whole, so dates, times, versions, UUIDs and digit runs longer
// than a format are rejected, as are numbers inside them.
//
// Version strings: "1.22.2" and "10.0" are not quads; a quad glued to a word
// ("v1.2.3.4"), followed by a pre-release or build suffix ("1.2.3.4-beta",
// "1.2.3.4+b7", "1.2.3.4.5") or preceded within 24 bytes by "version" or
// "release" (any case, as in AssemblyVersion("1.0.0.0")) is a version, not
// an address. Any other valid dotted quad, "1.2.3.4" included, is reported as
// an IP address.
//
// Bare national numbers without separators ("4155552671"), national numbers
// of other countries without a '+' prefix, US numbers written only with
// spaces ("415 555 2671") and bare nine-digit numbers without an SSN cue
// are deliberately not matched: they are indistinguishable from ids and
// amounts. Non-ASCII bytes are treated as word boundaries, so a value
// written directly next to CJK or accented text is found.
package pii

import (
	"context"
	"math/bits"
)

// Finding types.
const (
	Email        = "EMAIL"
	Phone        = "PHONE"
	CreditCard   = "CREDIT_CARD"
	USSSN        = "US_SSN"
	IBAN         = "IBAN"
	IPAddress    = "IP_ADDRESS"
	AWSAccessKey = "AWS_ACCESS_KEY"
	APIKey       = "API_KEY"
	PrivateKey   = "PRIVATE_KEY"
	JWT          = "JWT"
)

// BuiltinTypes lists the types the built-in detectors report, sorted.
func BuiltinTypes() []string {
	return []string{APIKey, AWSAccessKey, CreditCard, Email, IBAN, IPAddress, JWT, Phone, PrivateKey, USSSN}
}

// Finding is one detected item: text[Start:End] of the scanned text, in byte
// offsets, End exclusive.
type Finding struct {
	Type       string
	Start, End int
}

// Scanner detects PII. It is immutable and safe for concurrent use; build one
// with NewScanner or New and share it. The zero value runs the built-in
// detectors except bare nine-digit SSNs, which need context words.
type Scanner struct {
	ssnCues   []string // lowercase words that license a bare nine-digit SSN
	ssnWindow int      // bytes before the number searched for a cue
	custom    []*customDetector
	maxBytes  int    // ScanContext rejects longer texts
	slow      bool   // tests only: disable the skips that are pure speedups
	testHook  func() // tests only: called at the start of every scan
}

// NewScanner returns a Scanner with all built-in detectors and no custom
// ones.
func NewScanner() *Scanner {
	return &Scanner{
		ssnCues:   []string{"ssn", "social security", "soc sec"},
		ssnWindow: 32,
		maxBytes:  DefaultMaxBytes,
	}
}

// Scan appends the findings in text to dst, ordered by Start and
// non-overlapping, and returns the extended slice. Elements already in dst are
// left alone. Without custom detectors Scan allocates only when dst must
// grow, so reusing dst[:0] across calls makes it allocation-free.
//
// When two candidates overlap, the longer one is kept; at equal length the
// more specific type wins (see rank), and built-in types beat custom ones.
//
// Scan has no size limit and cannot fail; callers that must fail closed use
// ScanContext.
func (s *Scanner) Scan(text string, dst []Finding) []Finding {
	dst, _ = s.scan(nil, text, dst)
	return dst
}

// checkEvery is how many bytes scan advances between context checks.
const checkEvery = 64 << 10

// scan is Scan, checking ctx (when not nil) every checkEvery bytes.
func (s *Scanner) scan(ctx context.Context, text string, dst []Finding) ([]Finding, error) {
	if s.testHook != nil {
		s.testHook()
	}
	base := len(dst)
	var ch chain // reused by every numeric match, so it is zeroed once
	nextCheck := checkEvery
	for i := 0; i < len(text); {
		if ctx != nil && i >= nextCheck {
			if err := ctx.Err(); err != nil {
				return dst, err
			}
			nextCheck = i + checkEvery
		}
		t := nextTrigger(text, i)
		if t >= len(text) {
			break
		}
		var f Finding
		ok := false
		switch c := text[t]; c {
		case '@':
			f, ok = matchEmail(text, t)
		case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			if f, ok = matchIBAN(text, t); ok {
				break
			}
			if f, ok = matchIPv6(text, t); ok {
				break
			}
			start := t
			if start > 0 && text[start-1] == '(' {
				start--
			}
			if start > 0 && text[start-1] == '+' {
				start--
			}
			if start == t && t > 0 && text[t-1] == '@' {
				// "deploy@192.0.2.10", "admin:pw@10.0.0.5:8080": a host
				// after '@' is an address (emails never have numeric
				// domains, see matchEmail).
				if f, ok = matchIPv4After(text, t); ok {
					break
				}
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
			continue
		case ':':
			f, ok = matchIPv6(text, t)
		case '-':
			switch {
			case t+10 < len(text) && text[t+1:t+10] == "----BEGIN":
				f, ok = matchPEM(text, t+5)
			case t+8 < len(text) && text[t+1:t+8] == "----END":
				f, ok = matchPEMEnd(text, t+5)
			default:
				f, ok = matchDash(text, t)
			}
		case '.':
			f, ok = matchJWT(text, t)
		case '_':
			f, ok = matchUnderscore(text, t)
		case 'A':
			f, ok = matchAWS(text, t)
		}
		if ok {
			dst = push(dst, base, f)
			i = max(f.End, t+1)
		} else {
			i = t + 1
		}
	}
	if len(s.custom) > 0 {
		return s.scanCustom(ctx, text, dst, base)
	}
	return dst, nil
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

// beats reports whether a should replace the overlapping b. A secret beats
// an e-mail address it overlaps whatever their lengths: in
// "https://ghp_…@github.com" the token is what matters, and a policy that
// treats API keys more strictly than e-mail addresses must see it as one.
func beats(a, b Finding) bool {
	if sa, sb := isSecret(a.Type), isSecret(b.Type); sa != sb && (a.Type == Email || b.Type == Email) {
		return sa
	}
	la, lb := a.End-a.Start, b.End-b.Start
	if la != lb {
		return la > lb
	}
	return rank(a.Type) > rank(b.Type)
}

// isSecret reports whether typ is a credential type.
func isSecret(typ string) bool {
	switch typ {
	case PrivateKey, JWT, APIKey, AWSAccessKey:
		return true
	}
	return false
}

// rank orders types by specificity for ties between equally long findings;
// custom types rank 0, below every built-in type.
func rank(typ string) int {
	switch typ {
	case PrivateKey:
		return 10
	case JWT:
		return 9
	case APIKey:
		return 8
	case AWSAccessKey:
		return 7
	case IBAN:
		return 6
	case CreditCard:
		return 5
	case USSSN:
		return 4
	case IPAddress:
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

// Trigger bytes: '-' through 'A' (- . / 0-9 : ; < = > ? @ A) and '_'.
const (
	trigLo = '-'
	trigHi = 'A'
)

// isTrigger reports whether c may start a match.
func isTrigger(c byte) bool { return c-trigLo <= trigHi-trigLo || c == '_' }

// triggerBits returns w with the high bit of each byte set exactly when that
// byte is a trigger. Masking to seven bits first keeps every addition inside
// its byte; the final &^ w drops non-ASCII bytes.
func triggerBits(w uint64) uint64 {
	y := w & lo7
	inRange := (y + ones*(0x80-trigLo)) &^ (y + ones*(0x7f-trigHi))
	under := ^((y ^ ones*'_') + lo7) // high bit set where the byte is '_'
	return (inRange | under) &^ w & hi1
}

// nextTrigger returns the index of the first trigger byte at or after i, or
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
		if isTrigger(text[i]) {
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
	dots := 0           // '.' between digits in a row: three make a quad
	for start := i; i < len(text); i++ {
		c := text[i]
		if isDigit(c) {
			if run == 0 && i > start && !isJoiner(text[i-1]) && ip6Start(text, i) {
				return i, true // after '(', ')', '+' or ' ': let matchIPv6 judge it
			}
			if run++; !odd && digits+run >= minDigits {
				return 0, false
			}
			continue
		}
		if (c == ':' || c == '-') && i+1 < len(text) && text[i+1] == c {
			// "::" may start an IPv6 address, "--" a PEM line: let the
			// main loop visit them.
			return i, true
		}
		if c == '.' && isDigit(text[i-1]) && i+1 < len(text) && isDigit(text[i+1]) {
			if dots++; dots == 3 {
				return 0, false // a possible IPv4 address: the chain judges it
			}
		} else {
			dots = 0
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
		case c == ' ' && i+1 < len(text) && startsUnit(text, i+1) && !ip6Start(text, i+1):
		default:
			return i, true
		}
	}
	return i, true
}

// skipToken returns the end of the word starting at i, continuing across
// '-' into further words: every digit in that span is blocked by
// blockedLeft anyway, so skipping it is only faster ("550e8400-e29b-41d4").
// It stops at '.', '/' and ':', after which a secret, an IBAN or an IP
// address may start, and no trigger it skips can start one: each needs a
// left neighbour that is neither a word byte nor '-'.
func skipToken(text string, i int) int {
	for i < len(text) {
		c := text[i]
		if isWordByte(c) {
			i++
			continue
		}
		if c == '-' && i+1 < len(text) && isWordByte(text[i+1]) {
			i++
			continue
		}
		break
	}
	return i
}

// isUpper reports whether c is an ASCII capital letter.
func isUpper(c byte) bool { return c-'A' < 26 }

// isHex reports whether c is an ASCII hex digit.
func isHex(c byte) bool { return isDigit(c) || (c|0x20)-'a' < 6 }

// isTokenByte reports whether c may be part of a secret token: a word byte
// or '-'. A secret must not continue such a token on either side.
func isTokenByte(c byte) bool { return isWordByte(c) || c == '-' }

func isDigit(c byte) bool  { return c-'0' < 10 }
func isLetter(c byte) bool { return (c|0x20)-'a' < 26 }

// isWordByte reports whether c is an ASCII letter, digit or '_'.
func isWordByte(c byte) bool { return isDigit(c) || isLetter(c) || c == '_' }

// isJoiner reports whether c binds digit groups into one token.
func isJoiner(c byte) bool { return c == '-' || c == '.' || c == '/' || c == ':' }
