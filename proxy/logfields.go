package proxy

import (
	"strings"

	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/proxy/openai"
)

// metadataHeader carries caller tags for the inference log:
// "key=value; key=value" (commas work too).
const metadataHeader = "X-Tollgate-Metadata"

// Bounds of the metadata header's tags.
const (
	maxMetaTags     = 16
	maxMetaKeyLen   = 64
	maxMetaValueLen = 256
)

// tags merges the decision's log tags and the request's metadata tags; the
// policy's win on conflict. Malformed or oversized pairs are dropped, and a
// value holding personal data is redacted: tags go to ClickHouse.
func (s *Server) tags(policy map[string]string, meta string) map[string]string {
	if len(policy) == 0 && meta == "" {
		return nil
	}
	out := make(map[string]string, len(policy))
	n := 0
	for pair := range strings.FieldsFuncSeq(meta, func(r rune) bool { return r == ';' || r == ',' }) {
		k, v, ok := strings.Cut(pair, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !validTagKey(k) || len(v) > maxMetaValueLen || n == maxMetaTags {
			continue
		}
		out[k] = s.redactAll(v)
		n++
	}
	for k, v := range policy {
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func validTagKey(k string) bool {
	if k == "" || len(k) > maxMetaKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// redactAll replaces every value the scanner finds, of any type, by its
// label: what the inference log stores of prompts, answers and tags.
func (s *Server) redactAll(text string) string {
	scanner := s.deps.Builder.Scanner()
	fs := scanner.Scan(text, nil)
	if len(fs) == 0 {
		return text
	}
	return pii.Redact(text, fs, func(typ string) (string, bool) { return pii.RedactLabel(typ), true })
}

// promptText renders the request the provider gets (after masking) for the
// inference log: one "role: text" line per message.
func (s *Server) promptText(req *openai.ChatRequest) string {
	var b strings.Builder
	for _, m := range req.Messages {
		b.WriteString(m.Role)
		b.WriteString(": ")
		b.WriteString(m.Content.String())
		b.WriteByte('\n')
	}
	return s.redactAll(b.String())
}
