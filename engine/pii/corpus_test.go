package pii

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
)

// sample is one corpus line: the text and the findings it must yield.
type sample struct {
	line int
	text string
	want []string // "TYPE:value", in order
}

// loadCorpus reads testdata/corpus.txt; see the comment at its top.
func loadCorpus(t *testing.T) []sample {
	t.Helper()
	f, err := os.Open("testdata/corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []sample
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.ReplaceAll(line, `\n`, "\n")
		var text strings.Builder
		var want []string
		for {
			a := strings.Index(line, "⟦")
			if a < 0 {
				text.WriteString(line)
				break
			}
			b := strings.Index(line[a:], "⟧")
			bar := strings.Index(line[a:], "|")
			if b < 0 || bar < 0 || bar > b {
				t.Fatalf("corpus line %d: bad mark", n)
			}
			text.WriteString(line[:a])
			typ, val := line[a+len("⟦"):a+bar], line[a+bar+1:a+b]
			text.WriteString(val)
			want = append(want, typ+":"+val)
			line = line[a+b+len("⟧"):]
		}
		out = append(out, sample{line: n, text: text.String(), want: want})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCorpus asserts the exact findings on every corpus line, and that
// redacting them leaves nothing to find.
func TestCorpus(t *testing.T) {
	t.Parallel()
	samples := loadCorpus(t)
	s := NewScanner()
	types := map[string]int{}
	negatives := 0
	for _, c := range samples {
		fs := s.Scan(c.text, nil)
		if got := render(c.text, fs); !slices.Equal(got, c.want) {
			t.Errorf("corpus line %d: Scan(%q) = %q, want %q", c.line, c.text, got, c.want)
		}
		if again := s.Scan(Redact(c.text, fs, nil), nil); len(again) != 0 {
			t.Errorf("corpus line %d: findings after Redact: %v", c.line, again)
		}
		for _, w := range c.want {
			types[w[:strings.IndexByte(w, ':')]]++
		}
		if len(c.want) == 0 {
			negatives++
		}
	}
	for _, typ := range BuiltinTypes() {
		if types[typ] < 4 {
			t.Errorf("corpus has %d positives of %s, want at least 4", types[typ], typ)
		}
	}
	if negatives < 100 {
		t.Errorf("corpus has %d near-misses, want at least 100", negatives)
	}
}
