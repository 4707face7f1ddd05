package pii

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Validators a CustomDetector may name.
const (
	ValidatorNone  = "none"
	ValidatorLuhn  = "luhn"
	ValidatorMod97 = "mod97"
)

// Limits on custom detectors.
const (
	DefaultContextWindow = 32   // bytes searched for context words by default
	maxContextWindow     = 1024 // largest Window accepted
	maxCustomType        = 40   // longest custom type name
)

// CustomDetector describes a detector from policy data, for values the
// built-in detectors do not know (employee ids, internal account numbers).
// It decodes from JSON as {"type": ..., "pattern": ..., ...}.
//
// Cost: when the pattern starts with a literal (regexp.LiteralPrefix, as in
// "EMP-[0-9]{6}"), the scanner looks only for that literal and runs the
// pattern anchored at each occurrence. Otherwise, when Trigger is set, the
// pattern runs over the text only if the trigger occurs in it. Otherwise the
// pattern runs over every text: prefer patterns with a literal prefix.
//
// A match must start and end on token boundaries: if its first (last) byte
// is a letter, digit or '_', the byte before (after) it must not be one.
type CustomDetector struct {
	// Type is the finding type, capital letters, digits and '_', starting
	// with a letter, at most 40 bytes, and not a built-in type.
	Type string `json:"type"`
	// Pattern is a Go (RE2) regular expression.
	Pattern string `json:"pattern"`
	// Trigger is an optional literal that every match contains; see above.
	Trigger string `json:"trigger,omitempty"`
	// Validator checks a match: "" or "none", "luhn" (the digits of the
	// match pass the Luhn check), "mod97" (capital letters and digits of the
	// match pass the IBAN mod-97 check).
	Validator string `json:"validator,omitempty"`
	// Context, when not empty, keeps a match only when one of these words
	// (ASCII case-insensitive, at a word start) occurs in the Window bytes
	// before it.
	Context []string `json:"context,omitempty"`
	// Window is the context distance in bytes, DefaultContextWindow when 0,
	// at most 1024.
	Window int `json:"window,omitempty"`
}

// customDetector is a validated, compiled CustomDetector.
type customDetector struct {
	typ       string
	re        *regexp.Regexp // the pattern
	anchored  *regexp.Regexp // ^(?:pattern), run at each prefix occurrence
	prefix    string         // literal prefix of the pattern, or ""
	trigger   string
	validator string
	context   []string // lowercase
	window    int
}

// DefaultMaxBytes is the largest text ScanContext accepts by default.
const DefaultMaxBytes = 8 << 20

// Config configures a Scanner built by New.
type Config struct {
	// Custom detectors, run after the built-in ones.
	Custom []CustomDetector
	// MaxBytes is the largest text ScanContext accepts; DefaultMaxBytes when
	// 0.
	MaxBytes int
}

// New returns a Scanner with all built-in detectors and the custom ones in
// cfg, or an error naming every invalid field (as "custom[i].field").
func New(cfg Config) (*Scanner, error) {
	s := NewScanner()
	var errs []error
	if cfg.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("max_bytes: %d is negative; use 0 for the default %d", cfg.MaxBytes, DefaultMaxBytes))
	} else if cfg.MaxBytes > 0 {
		s.maxBytes = cfg.MaxBytes
	}
	seen := map[string]int{}
	for i, d := range cfg.Custom {
		cd, cerrs := compileCustom(d)
		for _, err := range cerrs {
			errs = append(errs, fmt.Errorf("custom[%d]: %w", i, err))
		}
		if cd == nil {
			continue
		}
		if j, dup := seen[cd.typ]; dup {
			errs = append(errs, fmt.Errorf("custom[%d].type: %q is also custom[%d].type; merge the patterns with |", i, cd.typ, j))
			continue
		}
		seen[cd.typ] = i
		s.custom = append(s.custom, cd)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// compileCustom validates and compiles one detector, or returns every
// problem with it.
func compileCustom(d CustomDetector) (*customDetector, []error) {
	var errs []error
	if !validTypeName(d.Type) {
		errs = append(errs, fmt.Errorf("type: %q is not a type name (want capital letters, digits and _, starting with a letter, at most %d bytes)", d.Type, maxCustomType))
	} else if rank(d.Type) != 0 {
		errs = append(errs, fmt.Errorf("type: %q is a built-in type; choose another name", d.Type))
	}
	cd := &customDetector{typ: d.Type, trigger: d.Trigger, window: d.Window}
	if d.Pattern == "" {
		errs = append(errs, errors.New("pattern: empty"))
	} else if re, err := regexp.Compile(d.Pattern); err != nil {
		errs = append(errs, fmt.Errorf("pattern: %w (hint: Go RE2 syntax, no lookaround or backreferences)", err))
	} else if re.MatchString("") {
		errs = append(errs, fmt.Errorf("pattern: %q matches the empty string", d.Pattern))
	} else {
		cd.re = re
		cd.anchored = regexp.MustCompile(`^(?:` + d.Pattern + `)`)
		cd.prefix, _ = re.LiteralPrefix()
	}
	switch d.Validator {
	case "", ValidatorNone:
		cd.validator = ValidatorNone
	case ValidatorLuhn, ValidatorMod97:
		cd.validator = d.Validator
	default:
		errs = append(errs, fmt.Errorf("validator: %q is not one of none, luhn, mod97", d.Validator))
	}
	switch {
	case d.Window == 0:
		cd.window = DefaultContextWindow
	case d.Window < 0 || d.Window > maxContextWindow:
		errs = append(errs, fmt.Errorf("window: %d is out of range (want 1-%d, or 0 for %d)", d.Window, maxContextWindow, DefaultContextWindow))
	}
	for j, w := range d.Context {
		w = strings.TrimSpace(w)
		if w == "" || len(w) > cd.window {
			errs = append(errs, fmt.Errorf("context[%d]: %q must be 1 to window (%d) bytes", j, d.Context[j], cd.window))
			continue
		}
		cd.context = append(cd.context, strings.ToLower(w))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cd, nil
}

// validTypeName reports whether t is a usable type name.
func validTypeName(t string) bool {
	if len(t) == 0 || len(t) > maxCustomType || !isUpper(t[0]) {
		return false
	}
	for i := range len(t) {
		if c := t[i]; !isUpper(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

// maxContextWindow returns the largest context window the scanner's
// detectors look back, so that stream masking keeps enough text.
func (s *Scanner) maxContextWindow() int {
	w := max(s.ssnWindow, versionWindow)
	for _, d := range s.custom {
		w = max(w, d.window)
	}
	return w
}

// scanCustom runs the custom detectors over text and merges their findings
// into the built-in ones in dst[base:].
func (s *Scanner) scanCustom(ctx context.Context, text string, dst []Finding, base int) ([]Finding, error) {
	var found []Finding
	for _, d := range s.custom {
		if ctx != nil {
			if err := ctx.Err(); err != nil {
				return dst, err
			}
		}
		found = d.find(text, found)
	}
	if len(found) == 0 {
		return dst, nil
	}
	slices.SortStableFunc(found, func(a, b Finding) int { return a.Start - b.Start })
	builtin := slices.Clone(dst[base:])
	dst = dst[:base]
	i, j := 0, 0
	for i < len(builtin) || j < len(found) {
		// Built-in first on equal starts, so that it wins equal-length ties.
		if j == len(found) || i < len(builtin) && builtin[i].Start <= found[j].Start {
			dst = push(dst, base, builtin[i])
			i++
		} else {
			dst = push(dst, base, found[j])
			j++
		}
	}
	return dst, nil
}

// find appends the matches of d in text to dst.
func (d *customDetector) find(text string, dst []Finding) []Finding {
	if d.prefix != "" {
		for p := 0; p < len(text); {
			k := strings.Index(text[p:], d.prefix)
			if k < 0 {
				break
			}
			p += k
			if loc := d.anchored.FindStringIndex(text[p:]); loc != nil && d.accept(text, p, p+loc[1]) {
				dst = append(dst, Finding{Type: d.typ, Start: p, End: p + loc[1]})
				p += max(loc[1], 1)
				continue
			}
			p++
		}
		return dst
	}
	if d.trigger != "" && !strings.Contains(text, d.trigger) {
		return dst
	}
	for _, loc := range d.re.FindAllStringIndex(text, -1) {
		if d.accept(text, loc[0], loc[1]) {
			dst = append(dst, Finding{Type: d.typ, Start: loc[0], End: loc[1]})
		}
	}
	return dst
}

// accept checks token boundaries, the validator and the context words of
// the match text[a:b].
func (d *customDetector) accept(text string, a, b int) bool {
	if a >= b {
		return false
	}
	if a > 0 && isWordByte(text[a]) && isWordByte(text[a-1]) || b < len(text) && isWordByte(text[b-1]) && isWordByte(text[b]) {
		return false
	}
	switch d.validator {
	case ValidatorLuhn:
		var buf [64]byte
		n := 0
		for i := a; i < b; i++ {
			if isDigit(text[i]) {
				if n == len(buf) {
					return false
				}
				buf[n] = text[i]
				n++
			}
		}
		if n < 2 || !luhn(buf[:n]) {
			return false
		}
	case ValidatorMod97:
		var buf [64]byte
		n := 0
		for i := a; i < b; i++ {
			c := text[i]
			if c-'a' < 26 {
				c -= 'a' - 'A'
			}
			if isDigit(c) || isUpper(c) {
				if n == len(buf) {
					return false
				}
				buf[n] = c
				n++
			}
		}
		if !mod97(buf[:n]) {
			return false
		}
	}
	if len(d.context) == 0 {
		return true
	}
	return hasCue(text, a, d.window, d.context)
}

// hasCue reports whether one of the lowercase cues starts within window
// bytes before i, at a word start.
func hasCue(text string, i, window int, cues []string) bool {
	lo := max(0, i-window)
	for _, cue := range cues {
		for p := lo; p+len(cue) <= i; p++ {
			if (p == 0 || !isLetter(text[p-1])) && hasPrefixFold(text[p:], cue) {
				return true
			}
		}
	}
	return false
}
