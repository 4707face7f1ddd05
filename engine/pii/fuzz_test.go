package pii

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func FuzzScan(f *testing.F) {
	seeds := []string{
		"",
		"jane@example.com",
		"a@b@c.com ...x@y.io john.@x.com",
		"4111 1111 1111 1111 4111-1111-1111-1111 4111111111111111",
		"SSN: 123456789 123-45-6789 123 45 6789",
		"+1 (415) 555-2671 +44 (0)20 7946 0958 (415)555-2671 1-800-555-0199",
		"2026-11-25 25/11/2026 12:30:45 v10.4.12 192.168.1.1 INV-2024-000123",
		"550e8400-e29b-41d4-a716-446655440000",
		"((((+(+1(2)3)4)5 6 7 8 9 0 1 2 3 4 5 6 7 8 9",
		"電話415-555-2671です 415-555-2671%jane@example.com",
		"1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22",
		"+(1) (2) (3) (4) (5) (6) (7) (8) (9) (0)",
		strings.Repeat("9", 300) + "@" + strings.Repeat("a.", 200),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	s := NewScanner()
	slow := NewScanner()
	slow.slow = true
	f.Fuzz(func(t *testing.T, text string) {
		prefix := Finding{Type: "X", Start: -1, End: -1}
		fs := s.Scan(text, []Finding{prefix})
		if fs[0] != prefix {
			t.Fatalf("Scan changed dst[0] to %v", fs[0])
		}
		fs = fs[1:]
		last := 0
		for i, f := range fs {
			if f.Start < 0 || f.End > len(text) || f.Start >= f.End {
				t.Fatalf("finding %d %v out of bounds for len %d", i, f, len(text))
			}
			if f.Start < last {
				t.Fatalf("finding %d %v overlaps or precedes previous end %d", i, f, last)
			}
			if rank(f.Type) == 0 {
				t.Fatalf("finding %d has unknown type %q", i, f.Type)
			}
			last = f.End
		}
		if ref := slow.Scan(text, nil); !slices.Equal(fs, ref) {
			t.Fatalf("Scan = %v, without fast paths = %v", fs, ref)
		}
		out := Redact(text, fs, nil)
		if len(fs) == 0 && out != text {
			t.Fatalf("Redact without findings changed the text")
		}
		for _, f := range fs {
			if !strings.Contains(out, RedactLabel(f.Type)) {
				t.Fatalf("Redact output lacks %s", RedactLabel(f.Type))
			}
		}
		_ = Redact(text, []Finding{{Phone, len(text) / 2, len(text) + 1}, {Email, -5, 3}}, nil)
		if got, want := nextTrigger(text, 0), strings.IndexFunc(text, func(r rune) bool { return r >= '0' && r <= '@' }); want >= 0 && got != want || want < 0 && got != len(text) {
			t.Fatalf("nextTrigger = %d, want %d", got, want)
		}
	})
}

// TestFastPathsExact checks that the skips Scan takes for speed (fewDigits,
// skipToken) never change its result, on many random strings built from the
// bytes that matter to the numeric matchers.
func TestFastPathsExact(t *testing.T) {
	t.Parallel()
	const alphabet = "0123456789012345678901234567890123456789   ---...//::()++@ax_,#é"
	fast := NewScanner()
	slow := NewScanner()
	slow.slow = true
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 0, 64)
	for range 200_000 {
		buf = buf[:0]
		for range 4 + r.IntN(60) {
			buf = append(buf, alphabet[r.IntN(len(alphabet))])
		}
		text := string(buf)
		if got, want := fast.Scan(text, nil), slow.Scan(text, nil); !slices.Equal(got, want) {
			t.Fatalf("Scan(%q) = %v, without fast paths = %v", text, got, want)
		}
	}
}
