package bpe

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestMergeHeapMatchesScan checks that the O(n log n) merge used for long
// pieces gives the parts of tiktoken's quadratic scan.
func TestMergeHeapMatchesScan(t *testing.T) {
	t.Parallel()
	e, err := O200kBase()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	alphabets := []string{"ab", "abc ", "aaaaab", "0123456789", "the quick brown fox", "日本語カタカナ", "😀👍🏽", "\x00\xff\x80"}
	for i := range 3000 {
		alpha := alphabets[i%len(alphabets)]
		n := 2 + rng.IntN(smallPiece-1)
		var b strings.Builder
		for b.Len() < n {
			j := rng.IntN(len(alpha))
			b.WriteString(alpha[j : j+1])
		}
		p := b.String()[:n]
		var buf [smallPiece + 1]part
		scan := e.ranks.mergeScan(p, buf[:len(p)+1])
		heap := e.ranks.mergeHeap(p)
		if !slices.EqualFunc(scan, heap, func(a, b part) bool { return a.start == b.start }) {
			t.Fatalf("piece %q: scan parts %v, heap parts %v", p, scan, heap)
		}
	}
}

// TestLongPieces checks long pieces, merged by mergeHeap, against textbook
// byte-pair encoding with the reference's vocabulary.
func TestLongPieces(t *testing.T) {
	t.Parallel()
	for _, r := range loadRefs(t) {
		vocab, err := r.vocab()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{
			strings.Repeat("a", 200),
			strings.Repeat("ab", 100),
			strings.Repeat("abc", 70),
			"pneumonoultramicroscopicsilicovolcanoconiosispneumonoultramicroscopicsilicovolcanoconiosis",
			strings.Repeat("日本語", 30),
			strings.Repeat("!?", 80),
			strings.Repeat("\xff\xfe", 50),
		} {
			got := r.enc.Encode(p, nil)
			// Encode splits p first; merge the same pieces naively.
			if want := naiveEncode(vocab, pieces(r.enc, p)); !slices.Equal(got, want) {
				t.Errorf("%s: Encode(%q)\n got %v\nwant %v", r.enc.name, p, got, want)
			}
		}
	}
}

// TestMergeLinear guards against quadratic merging of one huge piece.
func TestMergeLinear(t *testing.T) {
	t.Parallel()
	e, err := O200kBase()
	if err != nil {
		t.Fatal(err)
	}
	// One 256 KB piece; the quadratic scan would take minutes.
	text := strings.Repeat("xq", 1<<17)
	if got := e.Count(text); got < 1000 {
		t.Errorf("Count(256 KB of xq) = %d, want many tokens", got)
	}
}
