package pii

import (
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestHasherToken(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef")
	a, err := NewHasher(secret, "acme")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewHasher(secret, "globex")
	if _, err := NewHasher([]byte("short"), "acme"); err == nil {
		t.Error("NewHasher with a 5-byte secret: nil error, want one")
	}
	shape := regexp.MustCompile(`^\[EMAIL:h_[a-z2-7]{16}\]$`)
	tok := a.Token(Email, "Jane.Doe@Example.com")
	if !shape.MatchString(tok) {
		t.Errorf("Token = %q, want [EMAIL:h_<16 base32>]", tok)
	}
	if got := a.Token(Email, "jane.doe@example.com"); got != tok {
		t.Errorf("Token of the lowercased address = %q, want %q (stable after Normalize)", got, tok)
	}
	if got := b.Token(Email, "jane.doe@example.com"); got == tok {
		t.Errorf("two tenants got the same token %q", got)
	}
	if a.Token(Email, "john@example.com") == tok {
		t.Error("two addresses got the same token")
	}
	if x, y := a.Token(Phone, "+1 (415) 555-2671"), a.Token(Phone, "415-555-2671"); x != y {
		t.Errorf("phone tokens %q and %q differ, want equal", x, y)
	}
	if strings.Contains(tok, "jane") {
		t.Errorf("token %q contains the value", tok)
	}
	if got := NewScanner().Scan("x "+tok+" y", nil); len(got) != 0 {
		t.Errorf("Scan finds %v in a hash token", got)
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct{ typ, in, want string }{
		{Email, "Jane@Example.COM", "jane@example.com"},
		{Phone, "+1 (415) 555-2671", "4155552671"},
		{Phone, "+44 20 7946 0958", "442079460958"},
		{CreditCard, "4111-1111 1111.1111", "4111111111111111"},
		{IBAN, "gb82 west 1234 5698 7654 32", "GB82WEST12345698765432"},
		{IPAddress, "2001:0DB8:0:0::1", "2001:db8::1"},
		{PrivateKey, "-----BEGIN\nA B\r\n", "-----BEGINAB"},
		{"CUSTOM", " x ", " x "},
	}
	for _, tc := range tests {
		if got := Normalize(tc.typ, tc.in); got != tc.want {
			t.Errorf("Normalize(%s, %q) = %q, want %q", tc.typ, tc.in, got, tc.want)
		}
	}
}

func TestPlaceholders(t *testing.T) {
	t.Parallel()
	p := NewPlaceholders()
	r := Replacer{ActionFor: func(string) string { return ActionPlaceholder }, Placeholders: p}
	s := NewScanner()
	text := "Mail jane@example.com and JANE@example.com, then bob@example.org; call 415-555-2671."
	got := Mask(text, s.Scan(text, nil), r.Replace)
	want := "Mail <EMAIL_1> and <EMAIL_1>, then <EMAIL_2>; call <PHONE_1>."
	if got != want {
		t.Fatalf("Mask = %q, want %q", got, want)
	}
	if n := p.Len(); n != 3 {
		t.Errorf("Len = %d, want 3", n)
	}
	resp := "Sure, I wrote to <EMAIL_2> and <EMAIL_1>; <EMAIL_9> and <PHONE_1 stay, <PHONE_1>!"
	wantResp := "Sure, I wrote to bob@example.org and jane@example.com; <EMAIL_9> and <PHONE_1 stay, 415-555-2671!"
	if got := p.Restore(resp); got != wantResp {
		t.Errorf("Restore = %q, want %q", got, wantResp)
	}
	if got := s.Scan(got, nil); len(got) != 0 {
		t.Errorf("Scan finds %v in placeholder text", got)
	}
}

func TestReplacerActions(t *testing.T) {
	t.Parallel()
	h, _ := NewHasher([]byte("0123456789abcdef"), "t")
	actions := map[string]string{Email: ActionHash, Phone: ActionRedact, CreditCard: ActionBlock, USSSN: ActionPlaceholder}
	r := Replacer{ActionFor: func(typ string) string { return actions[typ] }, Hasher: h}
	text := "a@b.io 415-555-2671 4111111111111111 123-45-6789 10.0.0.1"
	got := Mask(text, NewScanner().Scan(text, nil), r.Replace)
	want := h.Token(Email, "a@b.io") + " [REDACTED:PHONE] 4111111111111111 [REDACTED:US_SSN] 10.0.0.1"
	if got != want {
		t.Errorf("Mask = %q, want %q (block and no action keep the value; placeholder without a table redacts)", got, want)
	}
}

// TestRestorerEveryOffset splits a response at every pair of byte offsets
// and checks that streaming restoration equals Restore.
func TestRestorerEveryOffset(t *testing.T) {
	t.Parallel()
	p := NewPlaceholders()
	p.Placeholder(Email, "jane@example.com")
	p.Placeholder(CreditCard, "4111111111111111")
	resp := "Hi <EMAIL_1>, card <CREDIT_CARD_1> <<EMAIL_1>> <EMAIL_2> <EMAIL_1"
	want := p.Restore(resp)
	if !strings.Contains(want, "jane@example.com") || !strings.Contains(want, "4111111111111111") {
		t.Fatalf("Restore = %q, want both values", want)
	}
	maxHeld := 0
	for i := 0; i <= len(resp); i++ {
		for j := i; j <= len(resp); j++ {
			r := p.NewRestorer()
			var b strings.Builder
			for _, c := range []string{resp[:i], resp[i:j], resp[j:]} {
				b.WriteString(r.Write(c))
				maxHeld = max(maxHeld, r.Held())
			}
			b.WriteString(r.Flush())
			if b.String() != want {
				t.Fatalf("split at %d,%d: got %q, want %q", i, j, b.String(), want)
			}
		}
	}
	if limit := len("<CREDIT_CARD_1>") - 1; maxHeld > limit {
		t.Errorf("Restorer held %d bytes, want at most %d", maxHeld, limit)
	}
}

func TestPlaceholdersConcurrent(t *testing.T) {
	t.Parallel()
	p := NewPlaceholders()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				ph := p.Placeholder(Email, strings.Repeat("x", i%10)+"@example.com")
				if got := p.Restore(ph); got != strings.Repeat("x", i%10)+"@example.com" {
					t.Errorf("goroutine %d: Restore(%q) = %q", g, ph, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := p.Len(); n != 10 {
		t.Errorf("Len = %d, want 10", n)
	}
}
