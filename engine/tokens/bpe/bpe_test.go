package bpe

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pkoukk/tiktoken-go-loader/assets"
)

// TestRanksFile checks the embedded vocabularies against the SHA-256 sums
// tiktoken pins for OpenAI's published files, then checks that every token
// of the file looks up to its rank, and that the reference decodes every ID
// to the same bytes.
func TestRanksFile(t *testing.T) {
	t.Parallel()
	sums := map[string]string{
		"o200k_base":  "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
		"cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
	}
	for _, r := range loadRefs(t) {
		data, err := assets.Assets.ReadFile(r.enc.name + ".tiktoken")
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != sums[r.enc.name] {
			t.Errorf("%s.tiktoken: sha256 %x, want %s", r.enc.name, sum, sums[r.enc.name])
		}
		tokens := make([]string, r.enc.ranks.size)
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			b64, num, _ := strings.Cut(sc.Text(), " ")
			tok, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				t.Fatal(err)
			}
			rank, err := strconv.Atoi(num)
			if err != nil {
				t.Fatal(err)
			}
			tokens[rank] = string(tok)
			if got := r.enc.ranks.lookup(string(tok)); got != uint32(rank) {
				t.Fatalf("%s: lookup(%q) = %d, want %d", r.enc.name, tok, got, rank)
			}
		}
		ids := make([]uint, len(tokens))
		for i := range ids {
			ids[i] = uint(i)
		}
		all, err := r.codec.Decode(ids)
		if err != nil {
			t.Fatal(err)
		}
		if all != strings.Join(tokens, "") {
			t.Errorf("%s: the reference vocabulary differs from the embedded file", r.enc.name)
		}
	}
}

func TestLoadOnce(t *testing.T) {
	t.Parallel()
	a, err := O200kBase()
	if err != nil {
		t.Fatal(err)
	}
	b, err := O200kBase()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Cl100kBase()
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("O200kBase returned two Encodings")
	}
	if a.Name() != "o200k_base" || c.Name() != "cl100k_base" {
		t.Errorf("names %q, %q", a.Name(), c.Name())
	}
}

func TestEncodeAppends(t *testing.T) {
	t.Parallel()
	e, err := Cl100kBase()
	if err != nil {
		t.Fatal(err)
	}
	dst := e.Encode("hello world", []int{-1})
	if want := []int{-1, 15339, 1917}; !slices.Equal(dst, want) {
		t.Errorf("Encode = %v, want %v", dst, want)
	}
	if got := e.Encode("", nil); len(got) != 0 {
		t.Errorf("Encode(\"\") = %v, want none", got)
	}
}

// TestInvalidUTF8 pins how invalid bytes count: each as one U+FFFD.
func TestInvalidUTF8(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"\xff", "a\xffb", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ok \xc3(", "\x80\x80\x80"} {
		if got, want := replaceInvalid(s), string([]rune(s)); got != want {
			t.Errorf("replaceInvalid(%q) = %q, want %q", s, got, want)
		}
		for _, r := range loadRefs(t) {
			if got, want := r.enc.Count(s), r.enc.Count(replaceInvalid(s)); got != want {
				t.Errorf("%s: Count(%q) = %d, want %d as for %q", r.enc.name, s, got, want, replaceInvalid(s))
			}
			r.check(t, s)
		}
	}
}

// TestCountAllocs pins that counting valid text allocates nothing.
func TestCountAllocs(t *testing.T) {
	text := mixedText(4 << 10)
	for _, r := range loadRefs(t) {
		if n := testing.AllocsPerRun(5, func() { r.enc.Count(text) }); n != 0 {
			t.Errorf("%s: Count allocates %v times, want 0", r.enc.name, n)
		}
		dst := make([]int, 0, len(text))
		if n := testing.AllocsPerRun(5, func() { r.enc.Encode(text, dst[:0]) }); n != 0 {
			t.Errorf("%s: Encode into a large enough slice allocates %v times, want 0", r.enc.name, n)
		}
	}
}

// TestCountConcurrent runs Count from many goroutines at once, so that the
// race detector sees the shared piece cache at work.
func TestCountConcurrent(t *testing.T) {
	t.Parallel()
	texts := []string{mixedText(4 << 10), fixedCorpus[5], fixedCorpus[9], strings.Repeat("qwrtplk xyzzy ", 50)}
	for _, r := range loadRefs(t) {
		want := make([]int, len(texts))
		for i, s := range texts {
			want[i] = len(r.enc.Encode(s, nil))
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for k := range 20 {
					i := (g + k) % len(texts)
					if got := r.enc.Count(texts[i]); got != want[i] {
						t.Errorf("%s: concurrent Count = %d, want %d", r.enc.name, got, want[i])
						return
					}
				}
			})
		}
		wg.Wait()
	}
}

// TestCache checks that the cache returns only what was put for the very same
// piece, across pieces that share an entry.
func TestCache(t *testing.T) {
	t.Parallel()
	var c countCache
	pieces := []string{"abc", "abd", "abcd", "abcdefgh", "abcdefgi", "abcdefghijklmnop", "abcdefghijklmnoq", strings.Repeat("x", maxCached), strings.Repeat("x", maxCached-1) + "y"}
	for i, p := range pieces {
		k := packPiece(p)
		if _, ok := c.get(&k); ok {
			t.Errorf("get(%q) hit before put", p)
		}
		c.put(&k, i+1)
		if n, ok := c.get(&k); !ok || n != i+1 {
			t.Errorf("get(%q) = %d, %v, want %d, true", p, n, ok, i+1)
		}
	}
	// Same length, different bytes: never confused, even in one entry.
	for _, p := range pieces {
		for _, q := range pieces {
			kp, kq := packPiece(p), packPiece(q)
			if p != q && kp.n == kq.n && kp.w == kq.w {
				t.Errorf("packPiece(%q) == packPiece(%q)", p, q)
			}
		}
	}
	// Flood the cache: earlier pieces may be evicted, never mistaken.
	for i := range 2 << cacheBits {
		k := packPiece("p" + strconv.Itoa(i) + "xyz")
		c.put(&k, 99)
	}
	for i, p := range pieces {
		k := packPiece(p)
		if n, ok := c.get(&k); ok && n != i+1 {
			t.Errorf("get(%q) = %d after eviction, want %d or a miss", p, n, i+1)
		}
	}
}
