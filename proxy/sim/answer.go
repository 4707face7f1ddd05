package sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode/utf8"

	"github.com/tiktoken-go/tokenizer"

	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/openai"
)

// defaultAnswerTokens is the length of a generated answer when the request
// sets no max_tokens.
const defaultAnswerTokens = 16

// Generated answers are sentences made of these words. Each starter (with or
// without a leading space), each word after a space, and "." are one token in
// both o200k_base and cl100k_base, and the pre-tokenizer splits at each word, so an answer of n
// pieces is exactly n tokens (TestLoremWordsAreSingleTokens checks this).
const (
	loremStarters = "The A It We This In Our Each Every Some Most When Then Now Here"
	loremWords    = "quick brown fox jumps over lazy dog model token stream gateway policy budget " +
		"request answer quiet river light stone small large early late green blue red simple clear " +
		"bright fast slow good new old open close long short high low warm cold soft hard team plan " +
		"data code test text word line page book paper world time day night year way part place case " +
		"point group number system program question work"
)

// answer is a completion ready to send.
type answer struct {
	text   string
	pieces []string // text split into token-sized pieces; only for streams
	finish string   // "stop", "length" or "tool_calls"
	tokens int      // completion tokens of text, or of call's arguments
	// call, when set, is the answer instead of text; pieces are then ""
	// (the chunk naming the function) and the arguments in pieces.
	call *openai.ToolCall
}

// toolEcho answers for ToolEchoModel: the last message's text when it is a
// tool result, else a call of the first function tool with arguments
// {"input": <last user text>}, else the echo of the last user message.
func (s *Server) toolEcho(req *openai.ChatRequest, seed uint64) answer {
	limit := req.MaxOutputTokens()
	if last := req.Messages[len(req.Messages)-1]; last.Role == "tool" {
		return s.echo(req.Model, last.Content.String(), limit, req.Stream)
	}
	name := ""
	for _, t := range req.Tools {
		var fn struct {
			Name string `json:"name"`
		}
		if t.Type == "function" && json.Unmarshal(t.Function, &fn) == nil && fn.Name != "" {
			name = fn.Name
			break
		}
	}
	if name == "" {
		return s.echo(req.Model, lastUserText(req.Messages), limit, req.Stream)
	}
	args, _ := json.Marshal(map[string]string{"input": lastUserText(req.Messages)})
	a := answer{
		finish: "tool_calls",
		tokens: s.counter.Count(req.Model, string(args)),
		call: &openai.ToolCall{ID: fmt.Sprintf("call_%016x", seed), Type: "function",
			Function: openai.FunctionCall{Name: name, Arguments: string(args)}},
	}
	if req.Stream {
		_, toks, err := s.codecs.forModel(req.Model).Encode(string(args))
		if err != nil || !joinsTo(toks, string(args)) {
			toks = []string{string(args)}
		}
		a.pieces = append([]string{""}, runePieces(string(args), toks)...)
	}
	return a
}

// codecs splits text into tokens with the encoding tokens.Counter uses for
// the same model, so pieces and counts agree.
type codecs struct {
	o200k, cl100k tokenizer.Codec
}

func newCodecs() (codecs, error) {
	o, err := tokenizer.Get(tokenizer.O200kBase)
	if err != nil {
		return codecs{}, err
	}
	c, err := tokenizer.Get(tokenizer.Cl100kBase)
	if err != nil {
		return codecs{}, err
	}
	return codecs{o200k: o, cl100k: c}, nil
}

func (c codecs) forModel(model string) tokenizer.Codec {
	if tokens.EncodingFor(model) == tokens.O200kBase {
		return c.o200k
	}
	return c.cl100k
}

// lastUserText returns the text of the last user message, or "".
func lastUserText(msgs []openai.Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return msgs[i].Content.String()
		}
	}
	return ""
}

// echo answers with text, cut to at most maxTokens tokens (0 = no limit) at a
// token boundary that is also a character boundary.
func (s *Server) echo(model, text string, maxTokens int, stream bool) answer {
	if !stream {
		n := s.counter.Count(model, text)
		if maxTokens == 0 || n <= maxTokens {
			return answer{text: text, finish: "stop", tokens: n}
		}
	}
	_, toks, err := s.codecs.forModel(model).Encode(text)
	exact := err == nil && joinsTo(toks, text)
	if !exact {
		// Not expected for the valid UTF-8 that JSON decoding yields; fall
		// back to one piece per character so the answer stays exact.
		toks = toks[:0]
		for i := 0; i < len(text); {
			_, n := utf8.DecodeRuneInString(text[i:])
			toks = append(toks, text[i:i+n])
			i += n
		}
	}
	a := answer{text: text, finish: "stop"}
	if maxTokens > 0 && len(toks) > maxTokens {
		a.finish = "length"
		for k := maxTokens; ; k-- {
			end := 0
			for _, t := range toks[:k] {
				end += len(t)
			}
			for end > 0 && end < len(text) && !utf8.RuneStart(text[end]) {
				end-- // do not split a character
			}
			// Re-tokenizing a prefix can, rarely, take more tokens.
			if n := s.counter.Count(model, text[:end]); n <= maxTokens || k == 0 {
				a.text, a.tokens = text[:end], n
				break
			}
		}
	} else if exact {
		a.tokens = len(toks)
	} else {
		a.tokens = s.counter.Count(model, text)
	}
	if stream {
		a.pieces = runePieces(a.text, toks)
	}
	return a
}

// joinsTo reports whether toks, concatenated, are text.
func joinsTo(toks []string, text string) bool {
	off := 0
	for _, t := range toks {
		if !strings.HasPrefix(text[off:], t) {
			return false
		}
		off += len(t)
	}
	return off == len(text)
}

// runePieces cuts text at the token boundaries in toks that fall between
// characters, so that every piece is valid UTF-8 and they join to text.
func runePieces(text string, toks []string) []string {
	pieces := make([]string, 0, len(toks))
	start, end := 0, 0
	for _, t := range toks {
		end += len(t)
		if end >= len(text) {
			break
		}
		if utf8.RuneStart(text[end]) {
			pieces = append(pieces, text[start:end])
			start = end
		}
	}
	if start < len(text) {
		pieces = append(pieces, text[start:])
	}
	return pieces
}

// lorem generates n tokens of deterministic English-like text for seed.
func (s *Server) lorem(seed uint64, n int, stream bool) (string, []string) {
	var rng rand.PCG
	rng.Seed(seed, 0)
	intn := func(n int) int { return int(rng.Uint64() % uint64(n)) }
	var b strings.Builder
	b.Grow(n * 7)
	var ends []int
	if stream {
		ends = make([]int, 0, n)
	}
	sentence := 0 // words left in the current sentence; 0 = start one
	for i := range n {
		switch {
		case sentence == 0:
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(s.starters[intn(len(s.starters))])
			sentence = 4 + intn(9)
		case sentence == 1:
			b.WriteByte('.')
			sentence = 0
		default:
			b.WriteByte(' ')
			b.WriteString(s.words[intn(len(s.words))])
			sentence--
		}
		if stream {
			ends = append(ends, b.Len())
		}
	}
	text := b.String()
	if !stream {
		return text, nil
	}
	pieces := make([]string, len(ends))
	start := 0
	for i, end := range ends {
		pieces[i] = text[start:end]
		start = end
	}
	return text, pieces
}

// requestSeed hashes what determines a generated answer (FNV-1a).
func requestSeed(seed int64, req *openai.ChatRequest) uint64 {
	h := uint64(14695981039346656037)
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
		h ^= 0xff // separator that no UTF-8 byte equals
		h *= 1099511628211
	}
	for i := range 8 {
		h ^= uint64(byte(seed >> (8 * i)))
		h *= 1099511628211
	}
	add(req.Model)
	for _, m := range req.Messages {
		add(m.Role)
		add(m.Name)
		add(m.Content.String())
	}
	return h
}
