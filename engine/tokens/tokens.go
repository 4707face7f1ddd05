// Package tokens counts tokens the way OpenAI models do, offline.
//
// The vocabularies are compiled into the binary (tiktoken-go-loader's
// embedded rank files), so no network access is needed at run time. Counting
// uses package bpe, an allocation-free tokenizer whose counts equal OpenAI's
// tiktoken for o200k_base and cl100k_base (proven on a golden corpus made
// with tiktoken itself), about 20 times faster than tiktoken-go/tokenizer.
package tokens

import (
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/engine/tokens/bpe"
)

// Encoding names as tiktoken spells them.
const (
	O200kBase  = "o200k_base"
	Cl100kBase = "cl100k_base"
)

// Chat-format overhead, as documented for OpenAI chat models: every message
// is wrapped in <|start|>{role}\n{content}<|end|>\n (3 tokens besides role
// and content), a name adds one token, and every reply is primed with
// <|start|>assistant<|message|> (3 tokens).
const (
	perMessage   = 3
	perName      = 1
	replyPriming = 3
)

// Message is one chat message reduced to what costs tokens.
type Message struct {
	Role    string
	Name    string
	Content string
}

// Counter counts tokens. It is safe for concurrent use.
type Counter struct {
	o200k  *bpe.Encoding
	cl100k *bpe.Encoding
}

// New loads both vocabularies (once per process, about 70 ms and 15 MB; later
// calls share them).
func New() (*Counter, error) {
	o, err := bpe.O200kBase()
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", O200kBase, err)
	}
	c, err := bpe.Cl100kBase()
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", Cl100kBase, err)
	}
	return &Counter{o200k: o, cl100k: c}, nil
}

// EncodingFor names the encoding used for model: o200k_base for the gpt-4o,
// gpt-4.1, gpt-5, o1, o3 and o4 families, cl100k_base for everything else
// (older OpenAI models and, as an approximation, other providers' models).
func EncodingFor(model string) string {
	m := strings.ToLower(model)
	if i := strings.LastIndexByte(m, '/'); i >= 0 { // "openai/gpt-4o" style names
		m = m[i+1:]
	}
	m = strings.TrimPrefix(m, "ft:")
	for _, p := range []string{"gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "gpt-oss"} {
		if strings.HasPrefix(m, p) {
			return O200kBase
		}
	}
	return Cl100kBase
}

func (c *Counter) codec(model string) *bpe.Encoding {
	if EncodingFor(model) == O200kBase {
		return c.o200k
	}
	return c.cl100k
}

// Count returns the number of tokens of text under model's encoding.
func (c *Counter) Count(model, text string) int {
	if text == "" {
		return 0
	}
	return c.codec(model).Count(text)
}

// CountChat returns the prompt tokens of a chat request: every message's role,
// name and content plus the chat-format overhead.
func (c *Counter) CountChat(model string, msgs []Message) int {
	cd := c.codec(model)
	n := replyPriming
	for _, m := range msgs {
		n += perMessage + countWith(cd, m.Role) + countWith(cd, m.Content)
		if m.Name != "" {
			n += perName + countWith(cd, m.Name)
		}
	}
	return n
}

func countWith(cd *bpe.Encoding, s string) int {
	if s == "" {
		return 0
	}
	return cd.Count(s)
}
