package baseline

import (
	"slices"
	"strings"
)

// Redaction labels for the known types, so RedactLabel need not allocate.
const (
	emailLabel      = "[REDACTED:" + Email + "]"
	phoneLabel      = "[REDACTED:" + Phone + "]"
	creditCardLabel = "[REDACTED:" + CreditCard + "]"
	usSSNLabel      = "[REDACTED:" + USSSN + "]"
)

// RedactLabel returns the default replacement for a finding of type typ,
// "[REDACTED:TYPE]".
func RedactLabel(typ string) string {
	switch typ {
	case Email:
		return emailLabel
	case Phone:
		return phoneLabel
	case CreditCard:
		return creditCardLabel
	case USSSN:
		return usSSNLabel
	}
	return "[REDACTED:" + typ + "]"
}

// Redact returns text with every finding whose type actionFor accepts
// (ok == true) replaced by the returned replacement; other findings are left
// as they are. A nil actionFor replaces every finding by its RedactLabel.
//
// findings must be sorted and non-overlapping, as Scan returns them; a
// finding that is out of range, empty or overlaps an earlier replaced one is
// ignored. When nothing is replaced, text itself is returned.
func Redact(text string, findings []Finding, actionFor func(typ string) (replacement string, ok bool)) string {
	var b strings.Builder
	last := 0
	changed := false
	for _, f := range findings {
		if f.Start < last || f.End <= f.Start || f.End > len(text) {
			continue
		}
		var repl string
		if actionFor == nil {
			repl = RedactLabel(f.Type)
		} else {
			var ok bool
			if repl, ok = actionFor(f.Type); !ok {
				continue
			}
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

// Types appends to dst the distinct types in findings, sorted, and returns
// the extended slice. With a dst of enough capacity it does not allocate.
func Types(findings []Finding, dst []string) []string {
	base := len(dst)
outer:
	for _, f := range findings {
		for _, t := range dst[base:] {
			if t == f.Type {
				continue outer
			}
		}
		dst = append(dst, f.Type)
	}
	slices.Sort(dst[base:])
	return dst
}
