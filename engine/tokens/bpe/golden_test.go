package bpe

import (
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite testdata/tiktoken.in.json and, with Node.js and the npm package tiktoken on NODE_PATH, testdata/tiktoken.golden.json")

// goldenExtra holds texts where the reference tokenizer and tiktoken part
// ways, and other corners worth pinning to tiktoken itself.
var goldenExtra = []string{
	"\n \n", "\n\t\n", " \n \n ", "\r\n \r\n", "\n \n\n \nx", "a \n \n \n b", "x\n  \n  \n  y",
	"}\n    \n    return nil\n}\n", "\t\n\t\n\tfoo", "\u00a0\n\u00a0\nx", "\n\u3000\n",
	"\x7f", "a\x7fb", "\x7f\x7f\x7f", " \x7f", "\x7fabc", "!\x7f!", "\x7f\n", "\x7f's",
	"'ſ", "xſ'ſ", "X'ſ", "Don'ſ", "'Ll", "'lL", "A'RE", "ABC'S", "aBC'd",
	"ǅ", "ǅǅ", "aǅ", "ǅa", "ǅA", "Aǅ", "ʰ", "ʰʰa", "Aʰ", "AʰB", "AʰBc", "Aʰb", "ʰA",
	"\u0301", "\u0301\u0301", "a\u0301", "A\u0301", "A\u0301B", "A\u0301Bc", "\u0301A", "\u0301a", "1\u0301", " \u0301a", "!\u0301A",
	"々々", "A々", "々A", "ー", "カー", "ªA", "Aª", "ƻA",
	"¹²³", "1²", "Ⅻ1", "१२३४५", "٠١٢٣",
	"  ", "  x", "   x", " \tx", "\t x", "x  ", "x \n", "x\n ", "\u2028\u2029", "\u0085\u0085x", "\v\fx",
}

// assigned reports whether every rune of s is assigned in Go's Unicode
// tables (version unicode.Version). tiktoken's regex engine may know newer
// characters: a letter it knows is punctuation to us and to the reference,
// which uses Go's tables too.
func assigned(s string) bool {
	for _, r := range s {
		if !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) {
			return false
		}
	}
	return true
}

type goldenRow struct {
	Text   string `json:"text"`
	O200k  []int  `json:"o200k_base"`
	Cl100k []int  `json:"cl100k_base"`
}

// TestGolden checks Encode against token IDs produced by OpenAI's tiktoken
// (see testdata/golden.cjs), for the fixed corpus, the texts above and 1,000
// random ones made of assigned runes.
func TestGolden(t *testing.T) {
	t.Parallel()
	in := filepath.Join("testdata", "tiktoken.in.json")
	golden := filepath.Join("testdata", "tiktoken.golden.json")
	if *update {
		writeGoldenInput(t, in)
		cmd := exec.Command("node", filepath.Join("testdata", "golden.cjs"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("node testdata/golden.cjs: %v\n%s(hint: npm install --prefix DIR tiktoken@1.0.22 and set NODE_PATH=DIR/node_modules)", err, out)
		}
	}
	data, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	var rows []goldenRow
	if err := json.Unmarshal(data, &rows); err != nil {
		t.Fatalf("%s: %v", golden, err)
	}
	if len(rows) < 1000 {
		t.Fatalf("%s: %d rows, want at least 1000", golden, len(rows))
	}
	o200k, err := O200kBase()
	if err != nil {
		t.Fatal(err)
	}
	cl100k, err := Cl100kBase()
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		for _, c := range []struct {
			enc  *Encoding
			want []int
		}{{o200k, row.O200k}, {cl100k, row.Cl100k}} {
			got := c.enc.Encode(row.Text, nil)
			if !slices.Equal(got, c.want) {
				t.Errorf("%s: Encode(%q)\n got %v\nwant %v (tiktoken)", c.enc.name, row.Text, got, c.want)
			}
			if n := c.enc.Count(row.Text); n != len(c.want) {
				t.Errorf("%s: Count(%q) = %d, want %d (tiktoken)", c.enc.name, row.Text, n, len(c.want))
			}
		}
	}
}

func writeGoldenInput(t *testing.T, path string) {
	t.Helper()
	var texts []string
	for _, s := range slices.Concat(fixedCorpus, goldenExtra) {
		// JSON can't carry invalid UTF-8; tiktoken takes Unicode text.
		if utf8.ValidString(s) && s != "" {
			texts = append(texts, s)
		}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for len(texts) < 1000+len(fixedCorpus) {
		if s := randomText(rng, 2+rng.IntN(30), false); assigned(s) {
			texts = append(texts, s)
		}
	}
	var b strings.Builder
	b.WriteString("[\n")
	for i, s := range texts {
		q, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			b.WriteString(",\n")
		}
		b.Write(q)
	}
	b.WriteString("\n]\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
