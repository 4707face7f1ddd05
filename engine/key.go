package engine

import (
	"encoding/binary"
	"math"
	"slices"
)

// appendKey appends to b an encoding of the input value valueOf(fs) would
// build, without building it: two inputs with the same key have the same
// value. The specialization cache (specialize.go) keys its entries with it,
// so a key that missed a field valueOf builds would hand one caller's
// decision to another; TestKeyFollowsValue changes every field in turn to
// check that the two stay in step. The encoding is only compared with keys
// of the same fs, so it needs no field names: every field is written in
// valueOf's order, strings and lists with their length first.
func (in *Input) appendKey(b []byte, fs fieldSet) []byte {
	if _, ok := fs.want("version"); ok {
		b = append(b, 'v')
	}
	if sub, ok := fs.want("request"); ok {
		r := &in.Request
		b = append(b, 'r')
		if wantSub(sub, "id") {
			b = appendString(b, r.ID)
		}
		if wantSub(sub, "path") {
			b = appendString(b, r.Path)
		}
		if wantSub(sub, "stream") {
			b = appendBool(b, r.Stream)
		}
		if wantSub(sub, "received_at") {
			if r.ReceivedAt.IsZero() {
				b = append(b, 0)
			} else {
				b = append(b, 1)
				b = binary.AppendVarint(b, r.ReceivedAt.UnixNano())
			}
		}
		if wantSub(sub, "client_ip") {
			b = appendString(b, r.ClientIP)
		}
		if wantSub(sub, "headers") {
			b = appendStringMap(b, r.Headers)
		}
	}
	if sub, ok := fs.want("identity"); ok {
		id := &in.Identity
		b = append(b, 'i')
		for _, f := range id.stringFields() {
			if wantSub(sub, f.key) {
				b = appendString(b, f.val)
			}
		}
		if wantSub(sub, "roles") {
			b = appendStrings(b, id.Roles)
		}
		if wantSub(sub, "groups") {
			b = appendStrings(b, id.Groups)
		}
		if wantSub(sub, "labels") {
			b = appendStringMap(b, id.Labels)
		}
		if wantSub(sub, "chain") {
			b = binary.AppendUvarint(b, uint64(len(id.Chain)))
			for _, c := range id.Chain {
				b = appendString(appendString(b, c.Subject), c.Kind)
			}
		}
	}
	if sub, ok := fs.want("model"); ok {
		b = append(b, 'm')
		if wantSub(sub, "requested") {
			b = appendString(b, in.Model.Requested)
		}
		if wantSub(sub, "provider_hint") {
			b = appendString(b, in.Model.ProviderHint)
		}
	}
	if sub, ok := fs.want("params"); ok {
		p := &in.Params
		b = append(b, 'p')
		if wantSub(sub, "tools") {
			b = binary.AppendVarint(b, int64(p.Tools))
		}
		if wantSub(sub, "tool_names") {
			b = appendStrings(b, p.ToolNames)
		}
		if wantSub(sub, "messages") {
			b = binary.AppendVarint(b, int64(p.Messages))
		}
		if wantSub(sub, "max_tokens") {
			// valueOf leaves max_tokens out when it is not positive.
			b = binary.AppendVarint(b, int64(max(p.MaxTokens, 0)))
		}
		if wantSub(sub, "temperature") {
			if p.Temperature == nil {
				b = append(b, 0)
			} else {
				b = appendFloat(append(b, 1), *p.Temperature)
			}
		}
	}
	if sub, ok := fs.want("tokens"); ok {
		b = append(b, 't')
		if wantSub(sub, "prompt") {
			b = binary.AppendVarint(b, int64(in.Tokens.Prompt))
		}
		if wantSub(sub, "max_completion") {
			b = binary.AppendVarint(b, int64(in.Tokens.MaxCompletion))
		}
		if wantSub(sub, "estimated_total") {
			b = binary.AppendVarint(b, int64(in.Tokens.EstimatedTotal))
		}
	}
	if sub, ok := fs.want("pii"); ok {
		b = append(b, 'x')
		if wantSub(sub, "types") {
			b = appendStrings(b, in.PII.Types)
		}
		if wantSub(sub, "findings") {
			b = binary.AppendUvarint(b, uint64(len(in.PII.Findings)))
			for _, f := range in.PII.Findings {
				b = appendString(b, f.Type)
				b = binary.AppendVarint(b, int64(f.Count))
				b = binary.AppendVarint(b, int64(f.Message))
				b = appendString(appendString(b, f.Role), f.Where)
			}
		}
	}
	if sub, ok := fs.want("complexity"); ok {
		c := &in.Complexity
		b = append(b, 'c')
		if wantSub(sub, "score") {
			b = appendFloat(b, c.Score)
		}
		if wantSub(sub, "signals") {
			b = binary.AppendVarint(b, int64(c.Turns))
			b = appendBool(appendBool(appendBool(b, c.Code), c.Math), c.Reasoning)
			b = binary.AppendVarint(b, int64(c.Tools))
			b = binary.AppendVarint(b, int64(c.PromptTokens))
		}
	}
	if sub, ok := fs.want("guardrails"); ok {
		g := &in.Guardrails
		b = append(b, 'g')
		if wantSub(sub, "signals") {
			// The ids are whether each count is positive.
			b = appendBool(appendBool(appendBool(b, g.Base64Blobs > 0), g.BidiControls > 0), g.HiddenUnicode > 0)
		}
		if wantSub(sub, "hidden_unicode") {
			b = binary.AppendVarint(b, int64(g.HiddenUnicode))
		}
		if wantSub(sub, "bidi_controls") {
			b = binary.AppendVarint(b, int64(g.BidiControls))
		}
		if wantSub(sub, "base64_blobs") {
			b = binary.AppendVarint(b, int64(g.Base64Blobs))
		}
	}
	if sub, ok := fs.want("moderation"); ok {
		m := &in.Moderation
		b = append(b, 'o')
		if wantSub(sub, "checked") {
			b = appendBool(b, m.Checked)
		}
		if wantSub(sub, "flagged") {
			b = appendBool(b, m.Flagged)
		}
		if wantSub(sub, "categories") {
			b = appendStrings(b, m.Categories)
		}
		if wantSub(sub, "unavailable") {
			b = appendBool(b, m.Unavailable)
		}
	}
	if sub, ok := fs.want("signals"); ok {
		b = append(b, 's')
		if wantSub(sub, "matched_phrases") {
			b = appendStrings(b, in.Signals.MatchedPhrases)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendFloat(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
}

// appendStringMap appends m with its keys sorted: an object value does not
// depend on the order its items were added in.
func appendStringMap(b []byte, m map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	var buf [8]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendString(appendString(b, k), m[k])
	}
	return b
}
