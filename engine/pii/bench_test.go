package pii

import (
	"strings"
	"testing"
)

// Best of 5, AMD EPYC, 2 shared vCPUs, go1.26, -cpu 1 (runs varied up to 2x
// with machine load). The prose is deliberately number-dense: every sentence
// has a date, version, amount, id, IP or UUID to reject.
//
//	                      first version        with fewDigits/skipToken
//	BenchmarkScan/1KB      160 MB/s, 0 allocs   1080 MB/s, 0 allocs
//	BenchmarkScan/10KB     210 MB/s, 0 allocs    840 MB/s, 0 allocs
//	BenchmarkScan/100KB    240 MB/s, 0 allocs   1100 MB/s, 0 allocs
//	BenchmarkScanClean/*   140-200 MB/s         1270-1480 MB/s, 0 allocs
//	digit-free prose       -                    ~5000 MB/s
//	BenchmarkRedact (10KB) 1170 MB/s            ~2000 MB/s, 1 alloc

// prose builds about n bytes of chat-like English: mostly words, with dates,
// times, versions, amounts and ids, and one finding roughly every 700 bytes.
func prose(n int, withPII bool) string {
	sentences := []string{
		"The quarterly review is scheduled for 2026-11-25 at 10:30 in the main conference room. ",
		"Please summarize the attached report and highlight any risks for the next release. ",
		"We upgraded the cluster to v1.29.4 last week, and latency dropped by about 12 percent. ",
		"Invoice INV-2024-000123 for $1,234.56 is still open; order #987654 shipped on 11/20/2026. ",
		"Could you rewrite this paragraph so that it sounds friendlier, but keep it under 200 words? ",
		"The server at 10.0.0.12 restarted twice, see trace 550e8400-e29b-41d4-a716-446655440000. ",
		"Honestly, I think the second option is better because it keeps the migration reversible. ",
		"Draft an email to the team explaining the new on-call rotation and the holiday schedule. ",
	}
	findings := []string{
		"You can reach Jane at jane.doe@example.com if anything is unclear. ",
		"My card number is 4111 1111 1111 1111, please do not store it. ",
		"Call me on +1 (415) 555-2671 after lunch. ",
		"Her SSN is 123-45-6789 according to the form. ",
	}
	var b strings.Builder
	b.Grow(n + 128)
	for i, f := 0, 0; b.Len() < n; i++ {
		b.WriteString(sentences[i%len(sentences)])
		if withPII && i%8 == 7 {
			b.WriteString(findings[f%len(findings)])
			f++
		}
	}
	return b.String()[:n]
}

var benchSizes = []struct {
	name string
	n    int
}{
	{"1KB", 1 << 10},
	{"10KB", 10 << 10},
	{"100KB", 100 << 10},
}

func BenchmarkScan(b *testing.B) {
	s := NewScanner()
	for _, size := range benchSizes {
		text := prose(size.n, true)
		b.Run(size.name, func(b *testing.B) {
			dst := s.Scan(text, nil)
			b.ReportAllocs()
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				dst = s.Scan(text, dst[:0])
			}
		})
	}
}

func BenchmarkScanClean(b *testing.B) {
	s := NewScanner()
	for _, size := range benchSizes {
		text := prose(size.n, false)
		b.Run(size.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				_ = s.Scan(text, nil)
			}
		})
	}
}

func BenchmarkRedact(b *testing.B) {
	s := NewScanner()
	text := prose(10<<10, true)
	fs := s.Scan(text, nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		_ = Redact(text, fs, nil)
	}
}

func TestProseFindings(t *testing.T) {
	t.Parallel()
	text := prose(10<<10, true)
	fs := NewScanner().Scan(text, nil)
	// Only the planted findings and the filler's IP address: the dates,
	// versions, ids and UUIDs in the filler must not be reported.
	planted := 0
	for _, f := range fs {
		switch got := text[f.Start:f.End]; got {
		case "jane.doe@example.com", "4111 1111 1111 1111", "+1 (415) 555-2671", "123-45-6789":
			planted++
		case "10.0.0.12":
			if f.Type != IPAddress {
				t.Errorf("finding %q has type %s, want %s", got, f.Type, IPAddress)
			}
		default:
			t.Errorf("unexpected finding %s %q", f.Type, got)
		}
	}
	if planted < 12 || planted > 20 {
		t.Errorf("Scan(prose) found %d planted values, want 12–20", planted)
	}
}
