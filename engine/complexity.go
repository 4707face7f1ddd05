package engine

import (
	"bytes"
	"math"
)

// Complexity estimation: a cheap, documented heuristic that the routing
// policy uses to choose a model tier for "auto" requests. It is not a model
// of difficulty; it orders requests well enough that short chit-chat goes to
// a small model and long, technical, multi-step requests to a large one, and
// every signal is in the input so that a policy can weigh them differently.
//
// Signals:
//   - length: prompt tokens, on a log scale: 0 at 64 tokens or less, 1 at
//     16,384 or more;
//   - code: a fenced code block (```) in any message, or code-like lines in
//     the last user message (a line starting with "func ", "def ", "class ",
//     "import ", "#include", "SELECT " or ending in "{" or ";");
//   - math: formula cues in the last user message ("\frac", "\sum", "$$",
//     "integral", "derivative", "equation", "prove that", "theorem");
//   - reasoning: multi-step cues in the last user message ("step by step",
//     "explain why", "analyze", "analyse", "compare", "trade-off",
//     "tradeoff", "design", "plan", "evaluate", "pros and cons", "root cause");
//   - turns: the number of messages (1 counts nothing, 12 or more counts 1);
//   - tools: the number of tool definitions (1 or more counts).
//
// score = 0.30·length + 0.20·code + 0.15·math + 0.20·reasoning
// + 0.10·turns + 0.05·tools, in [0,1]. Cues are looked for in the first
// and the last complexityWindow bytes of the last user message, ASCII case
// folded, so that the cost stays flat as prompts grow (a cue split across
// the two windows' seam is not seen).
const complexityWindow = 4096

// Weights of the complexity signals; they sum to 1.
const (
	weightLength    = 0.30
	weightCode      = 0.20
	weightMath      = 0.15
	weightReasoning = 0.20
	weightTurns     = 0.10
	weightTools     = 0.05
)

var (
	mathCues      = []string{`\frac`, `\sum`, `\int`, "$$", "integral", "derivative", "equation", "prove that", "theorem"}
	reasoningCues = []string{"step by step", "explain why", "analyze", "analyse", "compare", "trade-off", "tradeoff", "design", "plan ", "evaluate", "pros and cons", "root cause"}
	codeLineHeads = []string{"func ", "def ", "class ", "import ", "#include", "select ", "const ", "let ", "public "}
)

// estimateComplexity fills the score and signals from what Build gathered.
func estimateComplexity(promptTokens, turns, tools int, fenced bool, lastUser string) Complexity {
	c := Complexity{Turns: turns, Tools: tools, Code: fenced, PromptTokens: promptTokens}
	// The cue windows, ASCII lower-cased into one buffer (on the stack), so
	// that each cue is one fast substring search.
	var buf [2*complexityWindow + 1]byte
	text := buf[:0]
	if len(lastUser) > 2*complexityWindow {
		text = appendLower(text, lastUser[:complexityWindow])
		text = append(text, '\n')
		text = appendLower(text, lastUser[len(lastUser)-complexityWindow:])
	} else {
		text = appendLower(text, lastUser)
	}
	c.Math, c.Reasoning = findCues(text)
	c.Code = c.Code || hasCodeLine(text)

	length := 0.0
	if promptTokens > 64 {
		length = min(1, math.Log2(float64(promptTokens)/64)/8) // 64·2^8 = 16,384
	}
	turnScore := 0.0
	if turns > 1 {
		turnScore = min(1, float64(turns-1)/11)
	}
	score := weightLength*length + weightTurns*turnScore
	for _, s := range []struct {
		on bool
		w  float64
	}{{c.Code, weightCode}, {c.Math, weightMath}, {c.Reasoning, weightReasoning}, {tools > 0, weightTools}} {
		if s.on {
			score += s.w
		}
	}
	// Round to three decimals: the score is a coarse estimate, and a short
	// decimal keeps the input readable.
	c.Score = min(1, math.Round(score*1000)/1000)
	return c
}

// appendLower appends s to dst with ASCII letters in lower case.
func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// cue is a cue word and what it signals.
type cue struct {
	text string
	math bool // else reasoning
}

// cuesByFirstByte lists the cues by their first byte, so that one pass
// over the text checks only the cues that can start at each byte.
var cuesByFirstByte = func() (t [256][]cue) {
	for _, c := range mathCues {
		t[c[0]] = append(t[c[0]], cue{c, true})
	}
	for _, c := range reasoningCues {
		t[c[0]] = append(t[c[0]], cue{c, false})
	}
	return t
}()

// findCues reports whether the lower-cased text holds math and reasoning
// cues, in one pass.
func findCues(text []byte) (math, reasoning bool) {
	for i := 0; i < len(text) && !(math && reasoning); i++ {
		for _, c := range cuesByFirstByte[text[i]] {
			if (c.math && math) || (!c.math && reasoning) {
				continue
			}
			if len(text)-i >= len(c.text) && string(text[i:i+len(c.text)]) == c.text {
				if c.math {
					math = true
				} else {
					reasoning = true
				}
			}
		}
	}
	return math, reasoning
}

// hasCodeLine reports whether a line of the lower-cased text looks like
// source code.
func hasCodeLine(text []byte) bool {
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) < 4 {
			continue
		}
		if last := line[len(line)-1]; (last == '{' || last == ';') && bytes.ContainsAny(line, "()=") {
			return true
		}
		for _, h := range codeLineHeads {
			if len(line) > len(h) && string(line[:len(h)]) == h {
				return true
			}
		}
	}
	return false
}
