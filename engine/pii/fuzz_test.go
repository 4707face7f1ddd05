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
		"DE89 3704 0044 0532 0130 00 GB82WEST12345698765432 DE88370400440532013000",
		"10.0.0.1:8080/v1 2001:db8::1 [fe80::1%eth0] ::ffff:192.0.2.1 1.2.3.4-beta v1.2.3.4 12:30::",
		"AKIAIOSFODNN7EXAMPLE sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z ghp_16C7e42F292c6912E7710c838347Ae178B4a",
		"xoxb-123456789012-abc sk_live_4eC39HqLyjWDarjtT1zdp7dc github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
		"-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY----- -----END PRIVATE KEY-----",
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln eyJhbGciOiJIUzI1NiJ9.eyJ.a.b.c",
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
		if again := s.Scan(out, nil); len(again) != 0 {
			t.Fatalf("Scan(Redact(%q)) = %v, want nothing", text, render(out, again))
		}
		for _, f := range fs {
			if !strings.Contains(out, RedactLabel(f.Type)) {
				t.Fatalf("Redact output lacks %s", RedactLabel(f.Type))
			}
		}
		_ = Redact(text, []Finding{{Phone, len(text) / 2, len(text) + 1}, {Email, -5, 3}}, nil)
		if got, want := nextTrigger(text, 0), strings.IndexFunc(text, func(r rune) bool { return r >= '-' && r <= 'A' || r == '_' }); want >= 0 && got != want || want < 0 && got != len(text) {
			t.Fatalf("nextTrigger = %d, want %d", got, want)
		}
	})
}

// TestFastPathsExact checks that the skips Scan takes for speed (fewDigits,
// skipToken) never change its result, on many random strings built from the
// bytes and pieces that matter to the matchers.
func TestFastPathsExact(t *testing.T) {
	t.Parallel()
	alphabets := []string{
		"0123456789012345678901234567890123456789   ---...//::()++@ax_,#é",
		"0123456789abcdefABCDEF::::....---  ()+/_[]%xyzé",
	}
	pieces := []string{"sk-", "ghp_", "AKIA", "eyJ", "-----BEGIN ", "-----END ", "PRIVATE KEY-----", "DE89", "::", "10.0.0.1", "fe80", " ", "-", "1", "a"}
	fast := NewScanner()
	slow := NewScanner()
	slow.slow = true
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 0, 128)
	for n := range 300_000 {
		buf = buf[:0]
		alphabet := alphabets[n%len(alphabets)]
		for range 4 + r.IntN(60) {
			if n%3 == 2 && r.IntN(4) == 0 {
				buf = append(buf, pieces[r.IntN(len(pieces))]...)
				continue
			}
			buf = append(buf, alphabet[r.IntN(len(alphabet))])
		}
		text := string(buf)
		if got, want := fast.Scan(text, nil), slow.Scan(text, nil); !slices.Equal(got, want) {
			t.Fatalf("Scan(%q) = %v, without fast paths = %v", text, got, want)
		}
	}
}

func FuzzRestorer(f *testing.F) {
	for _, s := range []string{"", "<EMAIL_1>", "a<EMAIL_1><PHONE_12>b", "<<EMAIL_1", "<EMAIL_", "<<<>>>", "x<EMAIL_1>y<EMAIL_2>"} {
		f.Add(s, uint8(3), uint8(9))
	}
	p := NewPlaceholders()
	p.Placeholder(Email, "jane@example.com")
	p.Placeholder(Email, "bob@example.org")
	for range 12 {
		p.Placeholder(Phone, "+1 415 555 2671"+strings.Repeat("1", p.Len()))
	}
	f.Fuzz(func(t *testing.T, text string, a, b uint8) {
		want := p.Restore(text)
		r := p.NewRestorer()
		var out strings.Builder
		for _, c := range chunks(text, int(a), int(b)) {
			out.WriteString(r.Write(c))
			if r.Held() >= len("<PHONE_12>") {
				t.Fatalf("Restorer holds %d bytes", r.Held())
			}
		}
		out.WriteString(r.Flush())
		if out.String() != want {
			t.Fatalf("streamed restore of %q = %q, want %q", text, out.String(), want)
		}
	})
}

func FuzzStreamMasker(f *testing.F) {
	for _, s := range []string{
		"", "please mail jane@example.com now", "card 4111 1111 1111 1111 ok",
		"key AKIAIOSFODNN7EXAMPLE and ip 10.0.0.1 done", "電話+81 3 1234 5678です and 2001:db8::1 x",
		"-----BEGIN PRIVATE KEY-----\nMC4CAQAw\n-----END PRIVATE KEY----- after",
	} {
		f.Add(s, uint8(5), uint8(17))
	}
	sc := NewScanner()
	cfg := StreamConfig{MaxHold: 1024}
	f.Fuzz(func(t *testing.T, text string, a, b uint8) {
		one, _ := streamMask(t, sc, cfg, []string{text})
		got, held := streamMask(t, sc, cfg, chunks(text, int(a), int(b)))
		if got != one {
			t.Fatalf("chunked masking of %q = %q, one chunk = %q", text, got, one)
		}
		if held > cfg.MaxHold+255 {
			t.Fatalf("held %d bytes", held)
		}
		if len(text) < cfg.MaxHold/2 {
			// No forced cut can happen: equal to the plain transform, and
			// nothing maskable left.
			if want := Mask(text, sc.Scan(text, nil), redactAll); got != want {
				t.Fatalf("masking of %q = %q, Mask(Scan) = %q", text, got, want)
			}
			if again := sc.Scan(got, nil); len(again) != 0 {
				t.Fatalf("Scan(masked %q) = %v, want nothing", got, render(got, again))
			}
		}
	})
}

// chunks cuts text into pieces of sizes cycling through a+1 and b+1.
func chunks(text string, a, b int) []string {
	var out []string
	for i, k := 0, 0; i < len(text); k++ {
		n := a + 1
		if k%2 == 1 {
			n = b + 1
		}
		out = append(out, text[i:min(len(text), i+n)])
		i += n
	}
	return out
}
