package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/pii"
)

// respMask is the response side of a request's PII handling: the model's
// output is masked when the decision says mask.response (values of every
// type with an action are replaced; placeholders become redactions, since a
// value the model made up has no original to restore), then the request's
// placeholders are restored to the caller's original values.
type respMask struct {
	scanner *pii.Scanner
	// replace masks output values; nil when mask.response is off.
	replace func(typ, value string) (string, bool)
	// ph restores placeholders; nil when none was issued.
	ph *pii.Placeholders
}

// newRespMask returns nil when the response needs no processing.
func newRespMask(scanner *pii.Scanner, m engine.Mask, h *pii.Hasher, ph *pii.Placeholders) *respMask {
	r := &respMask{scanner: scanner}
	if ph != nil && ph.Len() > 0 {
		r.ph = ph
	}
	if m.Response && len(m.Rules) > 0 {
		rep := pii.Replacer{Hasher: h, ActionFor: func(typ string) string {
			switch a := m.ActionFor(typ); a {
			case engine.ActionPlaceholder, engine.ActionBlock:
				return engine.ActionRedact
			default:
				return a
			}
		}}
		r.replace = rep.Replace
	}
	if r.ph == nil && r.replace == nil {
		return nil
	}
	return r
}

// text processes a whole answer.
func (r *respMask) text(s string) (string, error) {
	if r.replace != nil {
		var err error
		if s, err = pii.MaskString(r.scanner, r.replace, pii.StreamConfig{}, s); err != nil {
			return "", err
		}
	}
	if r.ph != nil {
		s = r.ph.Restore(s)
	}
	return s, nil
}

// rewriteCompletion processes the content of every choice of a
// chat.completion body and returns the new body; other fields are kept as
// they were.
func (r *respMask) rewriteCompletion(raw []byte) ([]byte, error) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	choices, _ := doc["choices"].([]any)
	for _, c := range choices {
		msg, _ := c.(map[string]any)["message"].(map[string]any)
		if content, ok := msg["content"].(string); ok {
			out, err := r.text(content)
			if err != nil {
				return nil, err
			}
			msg["content"] = out
		}
	}
	return json.Marshal(doc)
}

// streamMask processes the deltas of a stream, per choice, holding back
// what may still turn out to be a value or a placeholder.
type streamMask struct {
	r       *respMask
	choices map[int]*choiceMask
}

type choiceMask struct {
	masker   *pii.StreamMasker
	restorer *pii.Restorer
}

func (r *respMask) stream() *streamMask {
	return &streamMask{r: r, choices: map[int]*choiceMask{}}
}

func (s *streamMask) choice(i int) (*choiceMask, error) {
	c, ok := s.choices[i]
	if ok {
		return c, nil
	}
	c = &choiceMask{}
	if s.r.replace != nil {
		m, err := pii.NewStreamMasker(s.r.scanner, s.r.replace, pii.StreamConfig{})
		if err != nil {
			return nil, err
		}
		c.masker = m
	}
	if s.r.ph != nil {
		c.restorer = s.r.ph.NewRestorer()
	}
	s.choices[i] = c
	return c, nil
}

// write processes a delta of choice i and returns what may be sent now.
func (s *streamMask) write(i int, delta string) (string, error) {
	c, err := s.choice(i)
	if err != nil {
		return "", err
	}
	if c.masker != nil {
		if delta, err = c.masker.Write(delta); err != nil {
			return "", err
		}
	}
	if c.restorer != nil {
		delta = c.restorer.Write(delta)
	}
	return delta, nil
}

// flush returns what choice i still holds back.
func (s *streamMask) flush(i int) (string, error) {
	c, ok := s.choices[i]
	if !ok {
		return "", nil
	}
	delete(s.choices, i)
	out := ""
	if c.masker != nil {
		rest, err := c.masker.Close()
		if err != nil {
			return "", err
		}
		out = rest
	}
	if c.restorer != nil {
		out = c.restorer.Write(out) + c.restorer.Flush()
	}
	return out, nil
}

// pending lists the choices still holding text, in order.
func (s *streamMask) pending() []int {
	out := make([]int, 0, len(s.choices))
	for i := range s.choices {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// rewriteChunk processes the deltas of a chat.completion.chunk event: each
// choice's content goes through write, and a choice that finishes gets its
// held-back text first. It returns the new event data.
func (s *streamMask) rewriteChunk(data []byte) ([]byte, error) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	choices, _ := doc["choices"].([]any)
	for _, c := range choices {
		ch, _ := c.(map[string]any)
		idx := 0
		if n, ok := ch["index"].(json.Number); ok {
			v, err := n.Int64()
			if err != nil || v < 0 || v > 1<<16 {
				return nil, fmt.Errorf("choice index %v out of range", n)
			}
			idx = int(v)
		}
		delta, _ := ch["delta"].(map[string]any)
		if content, ok := delta["content"].(string); ok {
			out, err := s.write(idx, content)
			if err != nil {
				return nil, err
			}
			delta["content"] = out
		}
		if fr, ok := ch["finish_reason"]; ok && fr != nil {
			rest, err := s.flush(idx)
			if err != nil {
				return nil, err
			}
			if rest != "" {
				if delta == nil {
					delta = map[string]any{}
					ch["delta"] = delta
				}
				prev, _ := delta["content"].(string)
				delta["content"] = prev + rest
			}
		}
	}
	return json.Marshal(doc)
}
