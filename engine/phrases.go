package engine

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/tollgate/tollgate/proxy/openai"
)

// phraseRule is one entry of data.data.guardrails.blocked_phrases: an id
// and the phrases that trigger it, normalised (lower case, single spaces).
type phraseRule struct {
	id      string
	phrases []string
}

// newPhraseRules reads data.data.guardrails.blocked_phrases; no guardrails
// data means no rules.
func newPhraseRules(data map[string]any) ([]phraseRule, error) {
	root, _ := data["data"].(map[string]any)
	g, _ := root["guardrails"].(map[string]any)
	raw, ok := g["blocked_phrases"]
	if !ok {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("data.data.guardrails.blocked_phrases: %w", err)
	}
	var rules map[string]struct {
		Phrases []string `json:"phrases"`
	}
	if err := json.Unmarshal(b, &rules); err != nil {
		return nil, fmt.Errorf("data.data.guardrails.blocked_phrases: want an object of {\"phrases\": [...]} rules: %w", err)
	}
	var out []phraseRule
	for id, r := range rules {
		pr := phraseRule{id: id}
		for _, p := range r.Phrases {
			if n := normalize(p); n != "" {
				pr.phrases = append(pr.phrases, n)
			}
		}
		out = append(out, pr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

// normalize lower-cases s and folds every run of white space into one
// space, so that "Ignore  previous\ninstructions" matches its phrase.
func normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// MatchPhrases fills in.Signals.MatchedPhrases with the ids of the
// guardrail rules whose phrases occur in any message of req.
func (p *Policy) MatchPhrases(req *openai.ChatRequest, in *Input) {
	if len(p.phrases) == 0 {
		return
	}
	texts := make([]string, 0, len(req.Messages))
	for _, m := range req.Messages {
		texts = append(texts, m.Content.String())
	}
	in.Signals.MatchedPhrases = append(in.Signals.MatchedPhrases, p.matchTexts(texts)...)
}

// knownModels reads the model names the bundle knows besides the
// upstreams' lists: the catalog and routing's auto models.
func knownModels(data map[string]any) map[string]bool {
	known := map[string]bool{}
	root, _ := data["data"].(map[string]any)
	if cat, ok := root["catalog"].(map[string]any); ok {
		if ms, ok := cat["models"].(map[string]any); ok {
			for m := range ms {
				known[m] = true
			}
		}
	}
	if rt, ok := root["routing"].(map[string]any); ok {
		if am, ok := rt["auto_models"].([]any); ok {
			for _, m := range am {
				if s, ok := m.(string); ok {
					known[s] = true
				}
			}
		}
	}
	return known
}

// KnowsModel reports whether the bundle's data names model (its catalog or
// routing's auto models), so that a policy may route it.
func (p *Policy) KnowsModel(model string) bool { return p.models[model] }
