package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/proxy/moderation"
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
func (s *Server) tags(scanner *pii.Scanner, policy map[string]string, meta string) map[string]string {
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
		out[k] = s.redactWith(scanner, v)
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

// redactAll replaces every value the default scanner finds, of any type,
// by its label: what error messages may say of a request.
func (s *Server) redactAll(text string) string { return s.redactWith(nil, text) }

// redactWith is redactAll with scanner (a policy's, with its custom
// detectors; nil for the default): what the inference log stores of
// prompts, answers and tags.
func (s *Server) redactWith(scanner *pii.Scanner, text string) string {
	if scanner == nil {
		scanner = s.deps.Builder.Scanner()
	}
	fs := scanner.Scan(text, nil)
	if len(fs) == 0 {
		return text
	}
	return pii.Redact(text, fs, func(typ string) (string, bool) { return pii.RedactLabel(typ), true })
}

// promptText renders the request the provider gets (after masking) for the
// inference log: one "role: text" line per message.
func (s *Server) promptText(scanner *pii.Scanner, req *openai.ChatRequest) string {
	var b strings.Builder
	for _, m := range req.Messages {
		b.WriteString(m.Role)
		b.WriteString(": ")
		b.WriteString(m.Content.String())
		b.WriteByte('\n')
	}
	return s.redactWith(scanner, b.String())
}

// moderate asks the moderation service about the request, when one is
// configured, and puts its verdict into the policy input. The service gets
// the text with every value the scanner finds redacted, newest user message
// first: personal data never leaves for it. A service that cannot answer
// refuses the request (fail mode closed) or leaves the verdict unavailable
// for the policy (open).
func (s *Server) moderate(ctx context.Context, st *call, req *openai.ChatRequest, in *engine.Input) error {
	if !s.deps.Moderation.Enabled() {
		return nil
	}
	texts := make([]string, 0, len(req.Messages))
	for i := len(req.Messages) - 1; i >= 0; i-- {
		m := req.Messages[i]
		if t := m.Content.String(); t != "" {
			texts = append(texts, s.redactWith(st.scanner, t))
		}
		for _, tc := range m.ToolCalls {
			if tc.Function.Arguments != "" {
				texts = append(texts, s.redactWith(st.scanner, tc.Function.Arguments))
			}
		}
	}
	res, err := s.deps.Moderation.Check(ctx, texts)
	switch {
	case errors.Is(err, moderation.ErrUnavailable):
		st.ev.Error = "moderation_unavailable"
		return apiError(http.StatusServiceUnavailable, "moderation_unavailable", "the moderation service is unavailable and the gateway is configured to fail closed; retry shortly")
	case err != nil:
		return err
	}
	if res.Unavailable {
		s.deps.Log.Warn("moderation unavailable; the policy decides without it", "request_id", st.ev.RequestID, "err", res.Cause)
	}
	in.Moderation = engine.Moderation{Checked: res.Checked, Flagged: res.Flagged, Categories: res.Categories, Unavailable: res.Unavailable}
	return nil
}
