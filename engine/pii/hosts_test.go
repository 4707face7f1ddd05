package pii

import (
	"slices"
	"testing"
)

// TestHostsAfterAt covers addresses after '@' (ssh targets, URL
// credentials) and secrets in URL credentials, which an e-mail match must
// not hide.
func TestHostsAfterAt(t *testing.T) {
	t.Parallel()
	s := NewScanner()
	tests := []struct {
		text string
		want []string // "TYPE value"
	}{
		{"ssh deploy@192.0.2.10 -p 2222", []string{"IP_ADDRESS 192.0.2.10"}},
		{"http://admin:hunter2@10.0.0.5:8080/x", []string{"IP_ADDRESS 10.0.0.5"}},
		{"ssh root@2001:db8::7", []string{"IP_ADDRESS 2001:db8::7"}},
		{"git clone https://ghp_5wq4pXEHlWHa7QIvQolbdT2LLmQ1vsTivtzc@github.com/acme/app.git", []string{"API_KEY ghp_5wq4pXEHlWHa7QIvQolbdT2LLmQ1vsTivtzc"}},
		{"mail ann@example.com", []string{"EMAIL ann@example.com"}},
		{"not an address: a@1.2.3.4.5 or x@999.1.1.1 or v@1.2.3.4-beta", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, f := range s.Scan(tt.text, nil) {
			got = append(got, f.Type+" "+tt.text[f.Start:f.End])
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Scan(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}
