package pii

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// DefaultMaxHold is the most a StreamMasker holds back by default.
const DefaultMaxHold = 8 << 10

// minMaxHold is the smallest MaxHold accepted: it must hold the longest
// value worth keeping whole (a PEM block of a 4096-bit RSA key is ~3.3 KB
// and must fit in half of it).
const minMaxHold = 1 << 10

// StreamConfig configures a StreamMasker.
type StreamConfig struct {
	// MaxHold is the most bytes held back; DefaultMaxHold when 0, at least
	// 1024.
	MaxHold int
}

// StreamMasker masks values in a streamed model response so that no value
// split across chunks reaches the client unmasked.
//
// It holds back the text after the last safe cut: a position between a
// lowercase ASCII letter + space and a lowercase ASCII letter ("word |word")
// or between two non-ASCII characters. No built-in finding can span such a
// position, so the text before it can be scanned and sent. A private-key
// BEGIN line blocks cuts until its END line. In ordinary prose the hold-back
// is the last partial word or number (tens of bytes), so the added latency
// is usually until the next chunk arrives plus a scan of about 200 bytes
// (well under a microsecond). Text without safe cuts (long numbers, code
// without spaces, base64) is held up to MaxHold bytes; then the masker cuts
// at MaxHold/2 and a value crossing that cut is masked on both sides.
//
// Guarantee: for any chunking, the concatenated output of Write and Close
// equals the output of one Write of the whole text and Close; when no
// MaxHold cut occurs, that equals Mask(text, Scan(text), replace). Custom
// detectors whose matches contain a safe cut may be split.
//
// A StreamMasker is used from one goroutine. Its errors are fail-closed:
// after an error it emits nothing more, and the caller ends the stream.
type StreamMasker struct {
	s       *Scanner
	replace func(typ, value string) (string, bool)
	maxHold int
	ctxN    int    // bytes of sent text kept for scanning context
	buf     string // sent context (ctxLen bytes), then pending text
	ctxLen  int
	carry   Finding // the rest of a value split by a MaxHold cut, in buf offsets
	err     error
}

// NewStreamMasker returns a masker that replaces each finding of s for
// which replace returns ok (a Replacer's Replace, say).
func NewStreamMasker(s *Scanner, replace func(typ, value string) (string, bool), cfg StreamConfig) (*StreamMasker, error) {
	if s == nil || replace == nil {
		return nil, errors.New("pii stream masker: nil scanner or replace function")
	}
	hold := cfg.MaxHold
	if hold == 0 {
		hold = DefaultMaxHold
	}
	if hold < minMaxHold {
		return nil, fmt.Errorf("pii stream masker: max_hold %d is below %d", hold, minMaxHold)
	}
	return &StreamMasker{s: s, replace: replace, maxHold: hold, ctxN: max(128, s.maxContextWindow()+16)}, nil
}

// Held returns the number of bytes held back.
func (m *StreamMasker) Held() int { return len(m.buf) - m.ctxLen }

// Write takes the next chunk and returns the masked text that may be sent
// now, possibly empty.
func (m *StreamMasker) Write(chunk string) (string, error) {
	if m.err != nil {
		return "", m.err
	}
	m.buf += chunk
	var out strings.Builder
	s := m.ctxLen // end of the text known to be cut-safe
	for {
		if q := m.nextCut(s); q > 0 {
			s = q
			continue
		}
		if s+m.maxHold > len(m.buf) {
			break
		}
		// No safe cut within MaxHold bytes after s.
		if s > m.ctxLen {
			if err := m.emit(&out, s, nil); err != nil {
				return "", err
			}
			s = m.ctxLen
		}
		if err := m.forcedCut(&out); err != nil {
			return "", err
		}
		s = m.ctxLen
	}
	if s > m.ctxLen {
		if err := m.emit(&out, s, nil); err != nil {
			return "", err
		}
	}
	return out.String(), nil
}

// Close returns the rest of the masked text at the end of the stream.
func (m *StreamMasker) Close() (string, error) {
	if m.err != nil {
		return "", m.err
	}
	var out strings.Builder
	if len(m.buf) > m.ctxLen {
		if err := m.emit(&out, len(m.buf), nil); err != nil {
			return "", err
		}
	}
	return out.String(), nil
}

// nextCut returns the first safe cut in buf after s and before s+maxHold,
// or 0 when there is none in the text received so far.
func (m *StreamMasker) nextCut(s int) int {
	b := m.buf
	limit := min(len(b), s+m.maxHold)
	for p := s + 1; p < limit; p++ {
		c := b[p-1]
		switch {
		case c == ' ' && p >= 2 && isLower(b[p-2]) && isLower(b[p]):
			return p
		case c >= 0x80 && b[p] >= 0xC0:
			return p
		case c == 'B' && p >= 6 && strings.HasPrefix(b[p-6:], "-----BEGIN "):
			// No cut inside a private key: go on after its END line.
			k := strings.Index(b[p:limit], "-----END ")
			if k < 0 {
				return 0
			}
			e := strings.Index(b[p+k+9:limit], "-----")
			if e < 0 {
				return 0
			}
			p = p + k + 9 + e + 4
		}
	}
	return 0
}

func isLower(c byte) bool { return c-'a' < 26 }

// forcedCut sends about MaxHold/2 bytes of the pending text when no safe
// cut came within MaxHold bytes. Everything it decides depends only on the
// MaxHold bytes after the cut start, so the result does not depend on the
// chunking.
func (m *StreamMasker) forcedCut(out *strings.Builder) error {
	winEnd := m.ctxLen + m.maxHold
	fs, err := m.scanTo(winEnd)
	if err != nil {
		return err
	}
	p := m.ctxLen + m.maxHold/2
	for p > m.ctxLen+1 && !utf8.RuneStart(m.buf[p]) {
		p--
	}
	for _, f := range fs {
		if f.Start < p && p < f.End && f.Start > m.ctxLen {
			p = f.Start // keep the value whole for the next segment
			break
		}
	}
	return m.emit(out, p, fs)
}

// scanTo scans buf[:end], context included, failing closed.
func (m *StreamMasker) scanTo(end int) (fs []Finding, err error) {
	defer func() {
		if r := recover(); r != nil {
			fs, err = nil, fmt.Errorf("pii stream mask: %w", ErrScanFailed)
		}
	}()
	fs, err = m.s.scan(nil, m.buf[:end], nil)
	if err != nil {
		return nil, fmt.Errorf("pii stream mask: %w", err)
	}
	return fs, nil
}

// emit writes buf[ctxLen:end] masked to out, using the findings fs of a
// scan of a longer prefix of buf, or scanning buf[:end] when fs is nil, and
// makes end the start of the pending text.
func (m *StreamMasker) emit(out *strings.Builder, end int, fs []Finding) error {
	if fs == nil {
		var err error
		if fs, err = m.scanTo(end); err != nil {
			m.err = err
			return err
		}
	}
	start := m.ctxLen
	// The spans to mask: the carried rest of a split value, then the
	// findings, clipped to [start, end); a finding crossing end is carried.
	spans := make([]Finding, 0, len(fs)+1)
	if m.carry.End > start {
		spans = append(spans, Finding{Type: m.carry.Type, Start: start, End: min(m.carry.End, end)})
	}
	var carry Finding
	if m.carry.End > end {
		carry = Finding{Type: m.carry.Type, Start: end, End: m.carry.End}
	}
	for _, f := range fs {
		if f.End <= start || f.Start >= end {
			continue
		}
		if f.End > end {
			carry = Finding{Type: f.Type, Start: end, End: max(f.End, carry.End)}
		}
		f.Start, f.End = max(f.Start, start), min(f.End, end)
		if n := len(spans); n > 0 && f.Start < spans[n-1].End {
			spans[n-1].End = max(spans[n-1].End, f.End) // merge into the carry
			continue
		}
		spans = append(spans, f)
	}
	text := m.buf[:end]
	last := start
	for _, f := range spans {
		if repl, ok := m.replace(f.Type, text[f.Start:f.End]); ok {
			out.WriteString(text[last:f.Start])
			out.WriteString(repl)
			last = f.End
		}
	}
	out.WriteString(text[last:end])

	// Keep ctxN bytes of context; rebase the carry.
	cut := max(0, end-m.ctxN)
	m.buf = m.buf[cut:]
	m.ctxLen = end - cut
	m.carry = Finding{}
	if carry.End > 0 {
		m.carry = Finding{Type: carry.Type, Start: carry.Start - cut, End: carry.End - cut}
	}
	return nil
}

// MaskString masks text as a StreamMasker would with one Write and Close:
// the non-streaming form of the response-side transform.
func MaskString(s *Scanner, replace func(typ, value string) (string, bool), cfg StreamConfig, text string) (string, error) {
	m, err := NewStreamMasker(s, replace, cfg)
	if err != nil {
		return "", err
	}
	a, err := m.Write(text)
	if err != nil {
		return "", err
	}
	b, err := m.Close()
	if err != nil {
		return "", err
	}
	return a + b, nil
}
