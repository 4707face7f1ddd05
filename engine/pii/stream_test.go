package pii

import (
	"strings"
	"testing"
)

func redactAll(typ, _ string) (string, bool) { return RedactLabel(typ), true }

// streamMask feeds chunks to a new StreamMasker and returns the output.
func streamMask(t testing.TB, s *Scanner, cfg StreamConfig, chunks []string) (string, int) {
	t.Helper()
	m, err := NewStreamMasker(s, redactAll, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	maxHeld := 0
	for _, c := range chunks {
		out, err := m.Write(c)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(out)
		maxHeld = max(maxHeld, m.Held())
	}
	out, err := m.Close()
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString(out)
	return b.String(), maxHeld
}

// TestStreamMaskerEverySplit splits texts with values at every pair of
// offsets: no value may pass unmasked, and the output must equal the
// non-streaming transform.
func TestStreamMaskerEverySplit(t *testing.T) {
	t.Parallel()
	s := NewScanner()
	texts := []string{
		"my card is 4111 1111 1111 1111 and my mail jane@example.com, ok",
		"key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_Q7r then 10.0.0.1 or fe80::1ff:fe23:4567:890a done",
		"iban DE89 3704 0044 0532 0130 00 and ssn 123-45-6789 — 電話+81 3 1234 5678です",
		"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFvC0Q8d0xq3a8n7Zkqk is the key\n-----END PRIVATE KEY-----\nthat was it",
	}
	for _, text := range texts {
		want := Mask(text, s.Scan(text, nil), redactAll)
		if one, _ := streamMask(t, s, StreamConfig{}, []string{text}); one != want {
			t.Fatalf("one chunk: got %q, want %q", one, want)
		}
		for i := 0; i <= len(text); i++ {
			for j := i; j <= len(text); j += 3 {
				got, _ := streamMask(t, s, StreamConfig{}, []string{text[:i], text[i:j], text[j:]})
				if got != want {
					t.Fatalf("split %q at %d,%d:\n got %q\nwant %q", text, i, j, got, want)
				}
			}
		}
	}
}

func TestStreamMaskerHoldBack(t *testing.T) {
	t.Parallel()
	s := NewScanner()
	m, err := NewStreamMasker(s, redactAll, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := m.Write("please write to jane@exa")
	if out != "please write to " || m.Held() != len("jane@exa") {
		t.Errorf("Write = %q, held %d; want %q and the partial address held", out, m.Held(), "please write to ")
	}
	out, _ = m.Write("mple.com today")
	if out != "[REDACTED:EMAIL] " {
		t.Errorf("second Write = %q, want %q", out, "[REDACTED:EMAIL] ")
	}
	if _, err := NewStreamMasker(s, redactAll, StreamConfig{MaxHold: 10}); err == nil {
		t.Error("NewStreamMasker with MaxHold 10: nil error, want one")
	}
}

// TestStreamMaskerMaxHold streams text without safe cuts: the hold-back
// stays within MaxHold, and a value across the forced cut is still masked.
func TestStreamMaskerMaxHold(t *testing.T) {
	t.Parallel()
	s := NewScanner()
	cfg := StreamConfig{MaxHold: 1024}
	var b strings.Builder
	for b.Len() < 5000 {
		b.WriteString("ID:42,X;")
	}
	text := b.String()[:511] + " 4111 1111 1111 1111 " + b.String()[:3000]
	var chunks []string
	for i := 0; i < len(text); i += 7 {
		chunks = append(chunks, text[i:min(len(text), i+7)])
	}
	got, held := streamMask(t, s, cfg, chunks)
	if held > cfg.MaxHold+7 {
		t.Errorf("held %d bytes, want at most MaxHold+chunk = %d", held, cfg.MaxHold+7)
	}
	if strings.Contains(got, "1111") {
		t.Errorf("card digits passed the masker: %q", got[500:560])
	}
	one, _ := streamMask(t, s, cfg, []string{text})
	if got != one {
		t.Errorf("chunked output differs from one-chunk output")
	}
}

func TestStreamMaskerFailsClosed(t *testing.T) {
	t.Parallel()
	s := NewScanner()
	s.testHook = func() { panic("boom") }
	m, err := NewStreamMasker(s, redactAll, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Write("the card is 4111111111111111 ok then")
	if err == nil || out != "" {
		t.Fatalf("Write with a failing scanner = %q, %v; want nothing and an error", out, err)
	}
	if out, err := m.Close(); err == nil || out != "" {
		t.Errorf("Close after an error = %q, %v; want nothing and an error", out, err)
	}
}
