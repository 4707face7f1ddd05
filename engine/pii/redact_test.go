package pii

import (
	"slices"
	"testing"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	const text = "Mail jane@example.com, card 4111 1111 1111 1111, call +1 415 555 2671."
	onlyCards := func(typ string) (string, bool) { return "****", typ == CreditCard }
	labels := func(typ string) (string, bool) { return RedactLabel(typ), true }
	tests := []struct {
		name      string
		text      string
		findings  []Finding // nil: scan text
		actionFor func(string) (string, bool)
		want      string
	}{
		{
			name: "nil action labels all",
			text: text,
			want: "Mail [REDACTED:EMAIL], card [REDACTED:CREDIT_CARD], call [REDACTED:PHONE].",
		},
		{
			name:      "label action",
			text:      text,
			actionFor: labels,
			want:      "Mail [REDACTED:EMAIL], card [REDACTED:CREDIT_CARD], call [REDACTED:PHONE].",
		},
		{
			name:      "selected types only",
			text:      text,
			actionFor: onlyCards,
			want:      "Mail jane@example.com, card ****, call +1 415 555 2671.",
		},
		{
			name:      "empty replacement deletes",
			text:      "ssn 123-45-6789!",
			actionFor: func(string) (string, bool) { return "", true },
			want:      "ssn !",
		},
		{
			name:      "none accepted",
			text:      text,
			actionFor: func(string) (string, bool) { return "x", false },
			want:      text,
		},
		{
			name: "whole text",
			text: "a@b.io",
			want: "[REDACTED:EMAIL]",
		},
		{
			name: "no findings",
			text: "nothing here",
			want: "nothing here",
		},
		{
			name:     "bad findings ignored",
			text:     "0123456789",
			findings: []Finding{{Phone, -1, 2}, {Phone, 2, 4}, {Phone, 3, 5}, {Phone, 6, 6}, {Phone, 8, 11}},
			want:     "01[REDACTED:PHONE]456789",
		},
	}
	s := NewScanner()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := tc.findings
			if fs == nil {
				fs = s.Scan(tc.text, nil)
			}
			if got := Redact(tc.text, fs, tc.actionFor); got != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestRedactLabel(t *testing.T) {
	t.Parallel()
	tests := []struct{ typ, want string }{
		{Email, "[REDACTED:EMAIL]"},
		{Phone, "[REDACTED:PHONE]"},
		{CreditCard, "[REDACTED:CREDIT_CARD]"},
		{USSSN, "[REDACTED:US_SSN]"},
		{"IBAN", "[REDACTED:IBAN]"},
	}
	for _, tc := range tests {
		if got := RedactLabel(tc.typ); got != tc.want {
			t.Errorf("RedactLabel(%q) = %q, want %q", tc.typ, got, tc.want)
		}
	}
}

func TestTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		findings []Finding
		dst      []string
		want     []string
	}{
		{"none", nil, nil, nil},
		{
			"sorted unique",
			[]Finding{{Phone, 0, 1}, {Email, 2, 3}, {Phone, 4, 5}, {CreditCard, 6, 7}, {Email, 8, 9}},
			nil,
			[]string{CreditCard, Email, Phone},
		},
		{
			"appends after existing",
			[]Finding{{USSSN, 0, 1}, {Email, 2, 3}},
			[]string{"zz"},
			[]string{"zz", Email, USSSN},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Types(tc.findings, tc.dst); !slices.Equal(got, tc.want) {
				t.Errorf("Types(%v) = %q, want %q", tc.findings, got, tc.want)
			}
		})
	}
}

func TestTypesNoAllocs(t *testing.T) {
	fs := []Finding{{Phone, 0, 1}, {Email, 2, 3}, {USSSN, 4, 5}, {CreditCard, 6, 7}}
	dst := make([]string, 0, 4)
	if n := testing.AllocsPerRun(100, func() { dst = Types(fs, dst[:0]) }); n != 0 {
		t.Errorf("Types allocs = %v, want 0", n)
	}
}
