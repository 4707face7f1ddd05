package engine

import "unicode/utf8"

// Guardrail signals: content features that smuggle instructions past a
// reader or a filter. The engine counts them in every message the provider
// will see; the policy (tollgate.guardrails, data.data.guardrails.signals)
// decides whether they deny, only tag the log, or pass.
//
//   - hidden_unicode: invisible characters that can hide text from a human
//     reviewer: zero-width space (U+200B), word joiner and invisible
//     operators (U+2060–U+2064), a byte-order mark inside the text (U+FEFF),
//     and Unicode tag characters (U+E0000–U+E007F), which can spell out a
//     whole hidden instruction. Zero-width (non-)joiners (U+200C, U+200D)
//     are left alone: emoji sequences and several scripts need them.
//   - bidi_control: bidirectional embedding, override and isolate controls
//     (U+202A–U+202E, U+2066–U+2069), which reorder how text displays.
//     The plain direction marks (U+200E, U+200F) are left alone.
//   - base64_blob: a run of at least base64BlobMin characters of the base64
//     alphabets with upper case, lower case and digits mixed, such as an
//     encoded payload a model is asked to decode and obey.
const (
	SignalHiddenUnicode = "hidden_unicode"
	SignalBidiControl   = "bidi_control"
	SignalBase64Blob    = "base64_blob"
)

// base64BlobMin is the shortest run counted as a base64 blob (192 bytes
// of payload).
const base64BlobMin = 256

// GuardrailSignals counts the signals found in a request.
type GuardrailSignals struct {
	HiddenUnicode int
	BidiControls  int
	Base64Blobs   int
}

// IDs returns the ids of the signals found, sorted.
func (g GuardrailSignals) IDs() []string {
	ids := []string{}
	if g.Base64Blobs > 0 {
		ids = append(ids, SignalBase64Blob)
	}
	if g.BidiControls > 0 {
		ids = append(ids, SignalBidiControl)
	}
	if g.HiddenUnicode > 0 {
		ids = append(ids, SignalHiddenUnicode)
	}
	return ids
}

// Byte classes for the one-pass scan: the base64 alphabets (lower case,
// upper case, digits, other) and the lead bytes of the UTF-8 encodings of
// every hidden and bidi character (0xE2, 0xEF, 0xF3).
const (
	classLower  = 1
	classUpper  = 2
	classDigit  = 4
	classSymbol = 8
	classLead   = 16
)

var byteClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = classLower
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = classUpper
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = classDigit
	}
	for _, c := range "+/-_=" {
		t[c] = classSymbol
	}
	for _, c := range []byte{0xE2, 0xEF, 0xF3} {
		t[c] = classLead
	}
	return t
}()

// add counts the signals of text in one pass.
func (g *GuardrailSignals) add(text string) {
	run := 0
	var seen uint8
	for i := 0; i < len(text); i++ {
		c := byteClass[text[i]]
		if c&^classLead != 0 {
			run++
			seen |= c
			continue
		}
		if run >= base64BlobMin && seen&(classLower|classUpper|classDigit) == classLower|classUpper|classDigit {
			g.Base64Blobs++
		}
		run, seen = 0, 0
		if c == classLead {
			i += g.invisible(text, i) - 1
		}
	}
	if run >= base64BlobMin && seen&(classLower|classUpper|classDigit) == classLower|classUpper|classDigit {
		g.Base64Blobs++
	}
}

// invisible counts the character at text[i] if it is hidden or a bidi
// control, and returns its length.
func (g *GuardrailSignals) invisible(text string, i int) int {
	r, size := utf8.DecodeRuneInString(text[i:])
	switch {
	case r == 0x200B, r >= 0x2060 && r <= 0x2064, r >= 0xE0000 && r <= 0xE007F:
		g.HiddenUnicode++
	case r == 0xFEFF && i > 0:
		g.HiddenUnicode++
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		g.BidiControls++
	}
	return size
}
