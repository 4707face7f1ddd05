package pii

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// Mask returns text with each finding for which replace returns ok
// replaced by the returned string; replace also gets the original value.
// Like Redact, it ignores out-of-range and overlapping findings and returns
// text itself when nothing is replaced.
func Mask(text string, findings []Finding, replace func(typ, value string) (string, bool)) string {
	var b strings.Builder
	last := 0
	changed := false
	for _, f := range findings {
		if f.Start < last || f.End <= f.Start || f.End > len(text) {
			continue
		}
		repl, ok := replace(f.Type, text[f.Start:f.End])
		if !ok {
			continue
		}
		if !changed {
			b.Grow(len(text) + len(repl))
			changed = true
		}
		b.WriteString(text[last:f.Start])
		b.WriteString(repl)
		last = f.End
	}
	if !changed {
		return text
	}
	b.WriteString(text[last:])
	return b.String()
}

// Mask actions, as in the policy decision's mask rules.
const (
	ActionRedact      = "redact"
	ActionPlaceholder = "placeholder"
	ActionHash        = "hash"
	ActionBlock       = "block"
)

// Replacer turns findings into replacements following per-type actions; its
// Replace method is the replace function of Mask and of StreamMasker.
type Replacer struct {
	// ActionFor returns the action for a type: ActionRedact, ActionHash or
	// ActionPlaceholder replace the value; anything else ("", ActionBlock)
	// leaves it, and the caller must deny on ActionBlock before forwarding.
	ActionFor func(typ string) string
	// Hasher serves ActionHash; without one, hash redacts.
	Hasher *Hasher
	// Placeholders serves ActionPlaceholder; without one, placeholder redacts.
	Placeholders *Placeholders
}

// Replace returns the replacement of value, of type typ, and whether there
// is one. It never returns the value itself.
func (r Replacer) Replace(typ, value string) (string, bool) {
	action := ""
	if r.ActionFor != nil {
		action = r.ActionFor(typ)
	}
	switch action {
	case ActionRedact:
		return RedactLabel(typ), true
	case ActionHash:
		if r.Hasher == nil {
			return RedactLabel(typ), true
		}
		return r.Hasher.Token(typ, value), true
	case ActionPlaceholder:
		if r.Placeholders == nil {
			return RedactLabel(typ), true
		}
		return r.Placeholders.Placeholder(typ, value), true
	}
	return "", false
}

// Normalize returns the form of value that hashing and placeholders
// compare, so that spellings of one value match: EMAIL lowercased; PHONE
// its digits, without a leading 1 when eleven ("+1 (415) 555-2671" and
// "415-555-2671" are one number); CREDIT_CARD and US_SSN their digits;
// IBAN its capital letters and digits; IP_ADDRESS the canonical netip form
// when it parses; PRIVATE_KEY without whitespace; anything else as is.
func Normalize(typ, value string) string {
	switch typ {
	case Email:
		return strings.ToLower(value)
	case Phone:
		d := keep(value, isDigit)
		if len(d) == 11 && d[0] == '1' {
			d = d[1:]
		}
		return d
	case CreditCard, USSSN:
		return keep(value, isDigit)
	case IBAN:
		return keep(strings.ToUpper(value), func(c byte) bool { return isDigit(c) || isUpper(c) })
	case IPAddress:
		if a, err := netip.ParseAddr(value); err == nil {
			return a.String()
		}
		return strings.ToLower(value)
	case PrivateKey:
		return keep(value, func(c byte) bool { return c != ' ' && c != '\n' && c != '\r' && c != '\t' })
	}
	return value
}

// keep returns the bytes of s for which ok holds.
func keep(s string, ok func(byte) bool) string {
	b := make([]byte, 0, len(s))
	for i := range len(s) {
		if ok(s[i]) {
			b = append(b, s[i])
		}
	}
	return string(b)
}

// Hasher makes keyed, stable tokens for values: the same tenant and value
// always give the same token, so analytics can count distinct values
// without storing them, and tokens of different tenants cannot be joined.
// It is safe for concurrent use.
type Hasher struct {
	key []byte
}

// MinHashSecretBytes is the shortest secret NewHasher accepts.
const MinHashSecretBytes = 16

// NewHasher returns a Hasher for one tenant. Its key is
// HMAC-SHA256(secret, "tollgate/pii/hash/v1\x00" + tenant), so one gateway
// secret serves every tenant; rotating the secret changes every token.
func NewHasher(secret []byte, tenant string) (*Hasher, error) {
	if len(secret) < MinHashSecretBytes {
		return nil, errors.New("pii hasher: secret shorter than 16 bytes; use 32 random bytes")
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("tollgate/pii/hash/v1\x00"))
	m.Write([]byte(tenant))
	return &Hasher{key: m.Sum(nil)}, nil
}

// hashEncoding is lowercase base32 without padding.
var hashEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Token returns "[TYPE:h_<16 base32 characters>]": the first 10 bytes (80
// bits) of HMAC-SHA256(key, TYPE + "\x00" + Normalize(TYPE, value)).
func (h *Hasher) Token(typ, value string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(typ))
	m.Write([]byte{0})
	m.Write([]byte(Normalize(typ, value)))
	var sum [sha256.Size]byte
	return "[" + typ + ":h_" + hashEncoding.EncodeToString(m.Sum(sum[:0])[:10]) + "]"
}

// Placeholders hands out reversible placeholders for one request: the
// first EMAIL becomes "<EMAIL_1>", the next distinct one "<EMAIL_2>", and a
// value seen again (after Normalize) gets its earlier placeholder. Restore
// and Restorer put the originals back into the response. It is safe for
// concurrent use.
//
// A placeholder the client itself wrote in the prompt is indistinguishable
// from one the gateway issued and is restored too.
type Placeholders struct {
	mu      sync.RWMutex
	byValue map[string]string // type + "\x00" + normalized value → placeholder
	values  map[string]string // placeholder → original value
	counts  map[string]int    // type → placeholders issued
	maxLen  int               // longest placeholder issued
}

// NewPlaceholders returns an empty placeholder table.
func NewPlaceholders() *Placeholders {
	return &Placeholders{byValue: map[string]string{}, values: map[string]string{}, counts: map[string]int{}}
}

// Placeholder returns the placeholder for value of type typ.
func (p *Placeholders) Placeholder(typ, value string) string {
	key := typ + "\x00" + Normalize(typ, value)
	p.mu.Lock()
	defer p.mu.Unlock()
	if ph, ok := p.byValue[key]; ok {
		return ph
	}
	p.counts[typ]++
	ph := "<" + typ + "_" + strconv.Itoa(p.counts[typ]) + ">"
	p.byValue[key] = ph
	p.values[ph] = value
	p.maxLen = max(p.maxLen, len(ph))
	return ph
}

// Len returns the number of placeholders issued.
func (p *Placeholders) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.values)
}

// Restore returns text with every issued placeholder replaced by its
// original value. Unknown placeholders and other text are left alone.
func (p *Placeholders) Restore(text string) string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if len(p.values) == 0 || strings.IndexByte(text, '<') < 0 {
		return text
	}
	var b strings.Builder
	done := p.restore(&b, text, true)
	if done != len(text) {
		panic("pii: restore left text behind") // unreachable with final
	}
	return b.String()
}

// isPlaceholderByte reports whether c may appear between '<' and '>'.
func isPlaceholderByte(c byte) bool { return isUpper(c) || isDigit(c) || c == '_' }

// restore writes text to b with placeholders restored and returns how much
// of text it consumed. Unless final, it stops before a trailing '<…' that
// may still become a placeholder when more text arrives. p.mu is held.
func (p *Placeholders) restore(b *strings.Builder, text string, final bool) int {
	last := 0
	for i := 0; i < len(text); {
		k := strings.IndexByte(text[i:], '<')
		if k < 0 {
			break
		}
		lt := i + k
		j := lt + 1
		for j < len(text) && j-lt < p.maxLen && isPlaceholderByte(text[j]) {
			j++
		}
		if j == len(text) && j-lt < p.maxLen && !final {
			// "<EMA" at the end: hold it back.
			b.WriteString(text[last:lt])
			return lt
		}
		if j < len(text) && text[j] == '>' {
			if v, ok := p.values[text[lt:j+1]]; ok {
				b.WriteString(text[last:lt])
				b.WriteString(v)
				last = j + 1
				i = j + 1
				continue
			}
		}
		i = lt + 1
	}
	b.WriteString(text[last:])
	return len(text)
}

// Restorer restores placeholders in a streamed response whose chunks may
// split a placeholder ("…<EMA" + "IL_1>…"). It holds back only a trailing
// '<' and the placeholder characters after it, fewer bytes than the longest
// placeholder issued (for "<EMAIL_1>", at most 8). Use one Restorer per
// stream, from one goroutine.
type Restorer struct {
	p    *Placeholders
	held string
}

// NewRestorer returns a Restorer for a response stream. Issue all
// placeholders before the response starts.
func (p *Placeholders) NewRestorer() *Restorer { return &Restorer{p: p} }

// Write takes the next chunk of the stream and returns the text that can be
// sent now. The concatenated results of Write and Flush equal Restore of the
// concatenated chunks.
func (r *Restorer) Write(chunk string) string {
	text := r.held + chunk
	r.p.mu.RLock()
	defer r.p.mu.RUnlock()
	if len(r.p.values) == 0 {
		r.held = ""
		return text
	}
	var b strings.Builder
	n := r.p.restore(&b, text, false)
	r.held = text[n:]
	return b.String()
}

// Held returns the number of bytes held back.
func (r *Restorer) Held() int { return len(r.held) }

// Flush returns the text still held back at the end of the stream.
func (r *Restorer) Flush() string {
	text := r.held
	r.held = ""
	return r.p.Restore(text)
}
