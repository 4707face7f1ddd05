package bpe

import (
	"math/rand/v2"
	"strings"
	"unicode/utf8"
)

// fixedCorpus holds hand-picked texts that exercise each alternative of the
// split patterns and their edge cases.
var fixedCorpus = []string{
	"",
	"hello world",
	"Hello, World! I'm fine; you'RE not. DON'T, WON'T, it'll, we'VE, he'd, I'M, she'S, 'Tis",
	"'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D 'x 'Ll 'lL 'r 'v 'l ' 'ſ x'ſ Xſ'ſ",
	"rock'n'roll o'clock O'NEIL McDONALD'S iPhone'S eBay iOS NASA's CamelCaseWord snake_case_word",
	"The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX. tHE qUICK.",
	"supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
	"<|endoftext|> <|fim_prefix|> <|endofprompt|> <|im_start|>user\nhi<|im_end|>",
	"func main() {\n\tfmt.Println(\"hello\")\n\tfor i := 0; i < 10; i++ {\n\t\tx += i\n\t}\n}\n",
	"def f(x):\n    if x > 0:\n        return x ** 2\n    \n    return -x  # comment\n\n\nclass A(object):\n    pass\n",
	"#include <stdio.h>\nint main(int argc, char **argv) {\n  printf(\"%d\\n\", argc);\n  return 0;\n}\r\n",
	"SELECT u.id, COUNT(*) AS n FROM users u JOIN orders o ON o.user_id = u.id WHERE o.total >= 100.50 GROUP BY u.id;",
	"const x = async () => { await fetch('/api/v1/items?limit=10&offset=20'); return [...a, ...b]; };",
	"<div class=\"container\"><p>Hello &amp; welcome</p><!-- comment --></div>",
	`{"model":"gpt-4o","messages":[{"role":"user","content":"Hi!\nHow are you?"}],"temperature":0.7,"max_tokens":1024,"stream":true}`,
	"https://example.com/path/to/resource?query=value&other=123#frag //comment /* block */ a//b a/b/ c:\\Windows\\System32",
	"1 12 123 1234 12345 123456 1234567 3.14159 -42 +7 1e10 0x1F 1,000,000 2024-01-02T03:04:05Z 12:30:45.123",
	"٠١٢٣٤٥٦٧٨٩ ١٢٣٤ १२३४५ ①②③ ²³¹ Ⅻ ⅰⅱ ½¾ 𝟙𝟚𝟛 １２３４",
	"   leading and trailing   ",
	"a  b   c    d\t\te\t \tf \t g",
	"line1\nline2\r\nline3\rline4\n\nline5\r\n\r\n\r\nend",
	"  \n  \n  x",
	"a\n \n b",
	"x\n \n \n",
	"{\n    \n    x",
	"text\n\t\n\t\nmore\n \t \n",
	" \n",
	"\n ",
	"   \n\n   ",
	"\u00a0\u2003\u3000x\u0085y\u2028z\u2029w\u000bv\u000cu",
	"trailing spaces   ",
	"trailing newline\n",
	"trailing mixed \n \t ",
	"日本語のテキストです。東京は大きい都市だ！ カタカナ ひらがな 漢字",
	"中文文本，包括标点符号。这是一个测试！",
	"한국어 텍스트입니다. 안녕하세요!",
	"مرحبا بالعالم! هذا نص عربي مع تشكيل: بِسْمِ اللَّهِ الرَّحْمَٰنِ الرَّحِيمِ",
	"नमस्ते दुनिया! यह हिंदी पाठ है। क्षत्रिय",
	"Привет, мир! Это русский текст. ПРИВЕТ МИР",
	"Γειά σου Κόσμε! ΑΒΓ αβγ",
	"עברית: שלום עולם",
	"ไทย: สวัสดีชาวโลก",
	"e\u0301 a\u0300\u0316 \u0301\u0302x \u20dd \u0301 x\u0301\u0301\u0301Y \u0301ABC \u0301abc A\u0301B\u0301c",
	"ǅungla ǈ ǋ ǲ ᾈ ǅA ǅa Aǅa",
	"ʰʲʷ ˆ ー 々 ªº ƻ ABʰ ABʰcd Aʰ'S xʰY ʰ",
	"😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇺🇸 🤖🤖🤖 a😀b 😀's",
	"\xff\xfe\xfd abc \xe2\x82 \xe2\x82\xac \xc3 \xed\xa0\x80 \xf4\x90\x80\x80 \x80\x80 x\xffy 'x\xff's",
	"\ufffd replacement \ufffd\ufffd",
	"\x00\x01\x02\x7f \x1b[31mred\x1b[0m",
	"!!! ??? ... --- === *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}} ||| ~~~ ``` ''' \"\"\"",
	" !x !X !1 ,a ,A .abc .ABC \"quoted\" 'single' (paren) [brack] {brace}",
	"/path/to/file.go:12:34: error: something\n//\n///\n/ \n/\n",
	"a/\nb/\r\n/ /\n",
	strings.Repeat("a", 300),
	strings.Repeat("ab", 200),
	strings.Repeat("A", 150) + strings.Repeat("b", 150),
	strings.Repeat(" ", 100) + "x",
	strings.Repeat("\n", 50),
	strings.Repeat("😀", 40),
	strings.Repeat("日本", 100),
	strings.Repeat("!?", 100),
	strings.Repeat("1", 100),
	strings.Repeat("\u0301", 70),
	strings.Repeat("x\u0301", 70),
}

// Fragments for random texts, by kind.
var (
	words = []string{
		"the", "of", "and", "a", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on",
		"are", "as", "with", "his", "they", "I", "at", "be", "this", "have", "from", "or", "one",
		"token", "gateway", "quota", "encoding", "prompt", "completion", "tiktoken", "Summarise",
		"quarterly", "report", "Kubernetes", "PostgreSQL", "JSON", "HTTP", "API", "iPhone", "eBay",
		"McDonald", "NASA", "OpenAI", "GPT", "xyzzy", "qwrtplk", "ZZZ", "aBcDeF", "HTTPServer",
	}
	contractions = []string{
		"'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D",
		"'Re", "'rE", "'lL", "'x", "'", "''", "'ſ", "’s", "n't", "N'T",
	}
	puncts = []string{
		".", ",", "!", "?", ";", ":", "-", "--", "...", "(", ")", "[", "]", "{", "}", "<", ">",
		"\"", "'", "`", "/", "//", "\\", "|", "@", "#", "$", "%", "^", "&", "*", "+", "=", "~", "_",
		"«", "»", "“", "”", "—", "…", "。", "、", "！", "？", "€", "£", "©", "™", "→", "∑", "√",
	}
	numbers = []string{
		"0", "7", "42", "123", "2024", "31415", "1000000", "3.14", "-1", "1e9", "0x7f", "١٢٣",
		"१२३४", "²", "Ⅻ", "½", "１２３", "𝟙𝟚", "12:30", "2024-01-02",
	}
	spaces = []string{
		" ", " ", " ", "  ", "   ", "\t", "\n", "\n", "\r\n", "\r", "\n\n", " \n", "\n ", " \n ",
		"\t\n", "\n\t", "\n \n", "\r\n \r\n", "\u00a0", "\u2003", "\u3000", "\u0085", "\u2028",
		"\u000b", "\u000c", "    ",
	}
	scripts = []string{
		"日本語", "東京", "カタカナ", "ひらがな", "中文", "测试", "한국어", "안녕", "مرحبا", "العالم",
		"بِسْمِ", "नमस्ते", "क्षत्रिय", "Привет", "МИР", "мир", "Γειά", "ΑΒΓ", "שלום", "สวัสดี",
		"ǅungla", "ǈ", "ʰʲ", "ー", "々", "ª", "ƻ", "Straße", "ÉCOLE", "école", "ﬁ", "İstanbul",
	}
	marks = []string{"\u0301", "\u0300\u0316", "\u20dd", "\u094d", "\u093e", "\u064e", "\ufe0f", "\u200d", "\u200c"}
	emoji = []string{
		"😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇺🇸", "🤖", "✅", "⚠️", "🔥",
	}
	snippets = []string{
		"func (e *Encoding) Count(text string) int {\n\treturn 0\n}\n",
		"for i in range(10):\n    print(i)\n",
		"if (x != null && y >= 0) { return x[y]; }",
		`{"key": "value", "n": [1, 2, 3], "ok": true, "nested": {"a": null}}`,
		"SELECT * FROM t WHERE id = 42;",
		"<a href=\"/x\">link</a>",
		"$ go test -race ./...\nok  \tgithub.com/x/y\t1.234s\n",
		"https://example.com/a/b?c=d&e=f",
		"C:\\Users\\me\\file.txt",
		"  - item one\n  - item two\n",
		"# Title\n\n## Subtitle\n\n* bullet\n",
	}
)

// randomText returns a deterministic random text of about n fragments mixing
// every kind above, random runes and, if invalid is set, random bytes.
func randomText(r *rand.Rand, n int, invalid bool) string {
	var b strings.Builder
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	for range n {
		switch k := r.IntN(100); {
		case k < 25:
			w := pick(words)
			switch r.IntN(6) {
			case 0:
				w = strings.ToUpper(w)
			case 1:
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			b.WriteString(w)
		case k < 33:
			b.WriteString(pick(contractions))
		case k < 45:
			b.WriteString(pick(puncts))
		case k < 53:
			b.WriteString(pick(numbers))
		case k < 70:
			b.WriteString(pick(spaces))
		case k < 78:
			b.WriteString(pick(scripts))
		case k < 82:
			b.WriteString(pick(marks))
		case k < 86:
			b.WriteString(pick(emoji))
		case k < 89:
			b.WriteString(pick(snippets))
		case k < 96:
			b.WriteRune(randomRune(r))
		default:
			if invalid {
				for range 1 + r.IntN(3) {
					b.WriteByte(byte(r.IntN(256)))
				}
			} else {
				b.WriteRune(randomRune(r))
			}
		}
	}
	return b.String()
}

// randomRune returns a valid rune, mostly from ranges with letters, marks,
// digits and spaces, sometimes from anywhere.
func randomRune(r *rand.Rand) rune {
	ranges := [][2]rune{
		{0x20, 0x7e}, {0x80, 0x24f}, {0x250, 0x36f}, {0x370, 0x52f}, {0x590, 0x6ff},
		{0x900, 0xdff}, {0x1e00, 0x1fff}, {0x2000, 0x206f}, {0x2150, 0x218f}, {0x3000, 0x30ff},
		{0x4e00, 0x4fff}, {0xac00, 0xad00}, {0xfe00, 0xfe2f}, {0xff00, 0xffef}, {0x1f300, 0x1faff},
		{0x1d400, 0x1d7ff},
	}
	if r.IntN(8) == 0 {
		for {
			c := rune(r.IntN(0x110000))
			if utf8.ValidRune(c) {
				return c
			}
		}
	}
	g := ranges[r.IntN(len(ranges))]
	return g[0] + rune(r.IntN(int(g[1]-g[0]+1)))
}

// mixedText returns a deterministic text of at least n bytes resembling
// gateway traffic: mostly English prose, with code, JSON, other scripts,
// numbers and emoji. It is cut at a rune boundary near n.
func mixedText(n int) string {
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for b.Len() < n {
		switch k := r.IntN(20); {
		case k < 12: // prose sentence
			for i, m := 0, 5+r.IntN(15); i < m; i++ {
				if i > 0 {
					b.WriteByte(' ')
				}
				w := words[r.IntN(len(words))]
				if i == 0 {
					w = strings.ToUpper(w[:1]) + w[1:]
				}
				b.WriteString(w)
				if r.IntN(10) == 0 {
					b.WriteString(contractions[r.IntN(7)])
				}
				if r.IntN(12) == 0 {
					b.WriteByte(',')
				}
			}
			b.WriteString(". ")
			if r.IntN(4) == 0 {
				b.WriteString("\n\n")
			}
		case k < 15:
			b.WriteString(snippets[r.IntN(len(snippets))])
		case k < 17:
			b.WriteString(scripts[r.IntN(len(scripts))])
			b.WriteString(scripts[r.IntN(len(scripts))])
			b.WriteString("。")
		case k < 19:
			b.WriteString(numbers[r.IntN(len(numbers))])
			b.WriteByte(' ')
		default:
			b.WriteString(emoji[r.IntN(len(emoji))])
			b.WriteByte(' ')
		}
	}
	s := b.String()
	for n < len(s) && !utf8.RuneStart(s[n]) {
		n++
	}
	return s[:n]
}
