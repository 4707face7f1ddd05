package pii

import (
	"slices"
	"strings"
	"testing"
)

// render shows findings as "TYPE:matched text" for readable comparisons.
func render(text string, fs []Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Type+":"+text[f.Start:f.End])
	}
	return out
}

func TestScanFinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		want []string
	}{
		// EMAIL
		{"email plain", "mail john.doe@example.com today", []string{"EMAIL:john.doe@example.com"}},
		{"email whole text", "a@b.io", []string{"EMAIL:a@b.io"}},
		{"email tags and subdomains", "to x_y%z+tag-1@mail.sub.example.co.uk,", []string{"EMAIL:x_y%z+tag-1@mail.sub.example.co.uk"}},
		{"email sentence end", "Write to bob@example.org.", []string{"EMAIL:bob@example.org"}},
		{"email in parens", "(bob@example.org)", []string{"EMAIL:bob@example.org"}},
		{"email in angle brackets", "Bob <bob@example.org>", []string{"EMAIL:bob@example.org"}},
		{"email hyphen domain", "ops@my-host.example.io;", []string{"EMAIL:ops@my-host.example.io"}},
		{"email leading dots trimmed", "see ...bob@example.org", []string{"EMAIL:bob@example.org"}},
		{"email digits local part", "4155552671@txt.att.net", []string{"EMAIL:4155552671@txt.att.net"}},
		{"email unicode neighbours", "メール:john@example.jp。", []string{"EMAIL:john@example.jp"}},
		{"email after accented word", "écrire à zoë.x@exemple.fr", []string{"EMAIL:x@exemple.fr"}},
		{"two emails", "a@x.io, b@y.io", []string{"EMAIL:a@x.io", "EMAIL:b@y.io"}},
		{"email uppercase", "JOHN@EXAMPLE.COM", []string{"EMAIL:JOHN@EXAMPLE.COM"}},

		// CREDIT_CARD
		{"visa bare", "card 4111111111111111 ok", []string{"CREDIT_CARD:4111111111111111"}},
		{"visa spaces", "4111 1111 1111 1111", []string{"CREDIT_CARD:4111 1111 1111 1111"}},
		{"visa dashes", "pay with 4111-1111-1111-1111.", []string{"CREDIT_CARD:4111-1111-1111-1111"}},
		{"visa 13", "old card 4222222222222", []string{"CREDIT_CARD:4222222222222"}},
		{"visa 19 grouped", "4111 1111 1111 1111 110", []string{"CREDIT_CARD:4111 1111 1111 1111 110"}},
		{"mastercard", "5555555555554444", []string{"CREDIT_CARD:5555555555554444"}},
		{"mastercard 51", "5105 1051 0510 5100", []string{"CREDIT_CARD:5105 1051 0510 5100"}},
		{"mastercard 2-series", "2223000048400011", []string{"CREDIT_CARD:2223000048400011"}},
		{"mastercard 2720", "2720-1234-5678-9010", []string{"CREDIT_CARD:2720-1234-5678-9010"}},
		{"amex 4-6-5", "amex 3782 822463 10005", []string{"CREDIT_CARD:3782 822463 10005"}},
		{"amex bare", "371449635398431", []string{"CREDIT_CARD:371449635398431"}},
		{"discover 6011", "6011000990139424", []string{"CREDIT_CARD:6011000990139424"}},
		{"discover 644", "6445 6445 6445 6445", []string{"CREDIT_CARD:6445 6445 6445 6445"}},
		{"discover 19", "6500000000000000003", []string{"CREDIT_CARD:6500000000000000003"}},
		{"jcb", "3530111333300000", []string{"CREDIT_CARD:3530111333300000"}},
		{"jcb 19", "3589000000000000009", []string{"CREDIT_CARD:3589000000000000009"}},
		{"diners 14", "3056 930902 5904", []string{"CREDIT_CARD:3056 930902 5904"}},
		{"diners 38", "38520000023237", []string{"CREDIT_CARD:38520000023237"}},
		{"diners 36 15 digits", "362272062716664", []string{"CREDIT_CARD:362272062716664"}},
		{"unionpay", "6212 3456 7890 1232", []string{"CREDIT_CARD:6212 3456 7890 1232"}},
		{"unionpay 19", "6212345678901234569", []string{"CREDIT_CARD:6212345678901234569"}},
		{"card in parens", "(4111 1111 1111 1111)", []string{"CREDIT_CARD:4111 1111 1111 1111"}},
		{"card after label colon", "card:4111111111111111", []string{"CREDIT_CARD:4111111111111111"}},
		{"card cjk neighbours", "番号4111111111111111です", []string{"CREDIT_CARD:4111111111111111"}},
		{"card after quantity", "qty 2 4111 1111 1111 1111", []string{"CREDIT_CARD:4111 1111 1111 1111"}},
		{"card then expiry", "4111 1111 1111 1111 12/27", []string{"CREDIT_CARD:4111 1111 1111 1111"}},

		// US_SSN
		{"ssn dashes", "SSN 123-45-6789.", []string{"US_SSN:123-45-6789"}},
		{"ssn spaces", "ssn 123 45 6789", []string{"US_SSN:123 45 6789"}},
		{"ssn start of text", "078-05-1120 is famous", []string{"US_SSN:078-05-1120"}},
		{"ssn label colon", "SSN:123-45-6789", []string{"US_SSN:123-45-6789"}},
		{"ssn bare with cue", "SSN: 123456789", []string{"US_SSN:123456789"}},
		{"ssn bare with long cue", "Social Security number 123456789", []string{"US_SSN:123456789"}},
		{"ssn bare with cue and hash", "ssn #123456789,", []string{"US_SSN:123456789"}},
		{"ssn area 899", "899-99-9999", []string{"US_SSN:899-99-9999"}},
		{"ssn cjk neighbours", "番号123-45-6789です", []string{"US_SSN:123-45-6789"}},

		// PHONE
		{"us dashes", "call 415-555-2671 now", []string{"PHONE:415-555-2671"}},
		{"us dots", "415.555.2671", []string{"PHONE:415.555.2671"}},
		{"us parens space", "(415) 555-2671", []string{"PHONE:(415) 555-2671"}},
		{"us parens no space", "tel (415)555-2671,", []string{"PHONE:(415)555-2671"}},
		{"us parens spaces", "(415) 555 2671", []string{"PHONE:(415) 555 2671"}},
		{"us parens dot", "(415) 555.2671", []string{"PHONE:(415) 555.2671"}},
		{"us leading 1", "1-800-555-0199", []string{"PHONE:1-800-555-0199"}},
		{"us exchange 1xx", "555-123-4567", []string{"PHONE:555-123-4567"}},
		{"us in parens", "(call 415-555-2671)", []string{"PHONE:415-555-2671"}},
		{"us wrapped in parens", "(415-555-2671)", []string{"PHONE:415-555-2671"}},
		{"us after date", "2026-11-25 415-555-2671", []string{"PHONE:415-555-2671"}},
		{"e164 compact", "+14155552671", []string{"PHONE:+14155552671"}},
		{"e164 us spaced", "+1 415 555 2671", []string{"PHONE:+1 415 555 2671"}},
		{"e164 us parens", "+1 (415) 555-2671.", []string{"PHONE:+1 (415) 555-2671"}},
		{"e164 us dashes", "+1-415-555-2671", []string{"PHONE:+1-415-555-2671"}},
		{"e164 us dots", "+1.415.555.2671", []string{"PHONE:+1.415.555.2671"}},
		{"e164 uk", "London +44 20 7946 0958!", []string{"PHONE:+44 20 7946 0958"}},
		{"e164 uk trunk zero", "+44 (0)20 7946 0958", []string{"PHONE:+44 (0)20 7946 0958"}},
		{"e164 uk glued trunk", "+44(0)20-7946-0958", []string{"PHONE:+44(0)20-7946-0958"}},
		{"e164 de", "Tel.: +49 30 1234567", []string{"PHONE:+49 30 1234567"}},
		{"e164 fr pairs", "+33 1 23 45 67 89", []string{"PHONE:+33 1 23 45 67 89"}},
		{"e164 tel uri", "tel:+14155552671", []string{"PHONE:+14155552671"}},
		{"e164 in parens", "(+49 30 1234567)", []string{"PHONE:+49 30 1234567"}},
		{"e164 us stops at 11 digits", "+1 415 555 2671 2 times", []string{"PHONE:+1 415 555 2671"}},
		{"e164 stops before 16th digit", "+44 20 7946 0958 2026", []string{"PHONE:+44 20 7946 0958"}},
		{"phone cjk neighbours", "電話415-555-2671です", []string{"PHONE:415-555-2671"}},
		{"phone end of text", "reach me at +4915112345678", []string{"PHONE:+4915112345678"}},

		// Mixed
		{
			"mixed",
			"Hi, I'm Jane (jane@corp.example). Card 4111 1111 1111 1111, SSN 123-45-6789, cell +1 (415) 555-2671.",
			[]string{
				"EMAIL:jane@corp.example",
				"CREDIT_CARD:4111 1111 1111 1111",
				"US_SSN:123-45-6789",
				"PHONE:+1 (415) 555-2671",
			},
		},
		{
			"csv row",
			"name,ssn,phone\nJane,123-45-6789,415-555-2671\n",
			[]string{"US_SSN:123-45-6789", "PHONE:415-555-2671"},
		},
		{
			"adjacent chain findings",
			"+44 20 7946 0958 +1 415 555 2671",
			[]string{"PHONE:+44 20 7946 0958", "PHONE:+1 415 555 2671"},
		},
	}
	s := NewScanner()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := render(tc.text, s.Scan(tc.text, nil))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Scan(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestScanRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
	}{
		// Cards
		{"luhn invalid visa", "4111111111111112"},
		{"luhn invalid grouped", "4111 1111 1111 1112"},
		{"luhn invalid dashed", "5555-5555-5555-4445"},
		{"luhn valid unknown brand", "7000000000000005"},
		{"luhn valid wrong length for brand", "411111111111111111"},
		{"amex wrong length", "37828224631000"},
		{"card mixed separators", "4111 1111-1111 1111"},
		{"card double spaces", "4111  1111  1111  1111"},
		{"card too long", "41111111111111111111"},
		{"card glued to word", "cc4111111111111111"},
		{"card hex", "0x4111111111111111"},
		{"card in hash", "deadbeef4111111111111111cafe"},
		{"card inside decimal", "0.4111111111111111"},
		{"card in url path", "/orders/4111111111111111"},

		// SSNs
		{"ssn area 000", "000-12-3456"},
		{"ssn area 666", "666-12-3456"},
		{"ssn area 9xx", "912-34-5678"},
		{"ssn area 999", "999-99-9999"},
		{"ssn group 00", "123-00-4567"},
		{"ssn serial 0000", "123-45-0000"},
		{"ssn bare without cue", "order #123456789"},
		{"ssn bare cue too far", "ssn is in the other document, not this one: 123456789"},
		{"ssn cue inside word", "classnumber 123456789"},
		{"ssn spaced in longer run", "12 123 45 6789"},
		{"ssn spaced followed by group", "123 45 6789 0000"},
		{"ssn dotted", "123.45.6789"},
		{"ssn extra group", "123-45-6789-1"},
		{"ssn glued", "A123-45-6789"},

		// Dates, times, versions
		{"iso date", "due 2026-11-25"},
		{"iso datetime", "2026-11-25T10:00:00Z"},
		{"eu date", "25/11/2026"},
		{"us date", "11/25/2026"},
		{"dotted date", "2026.11.25"},
		{"dashed date", "25-11-2026"},
		{"time", "at 12:30:45"},
		{"time range", "09:00-17:30"},
		{"version", "release 1.2.3"},
		{"version v", "v10.4.12"},
		{"long version", "10.4.12.1234"},
		{"semver prerelease", "2.0.0-rc.1"},

		// Identifiers
		{"uuid", "550e8400-e29b-41d4-a716-446655440000"},
		{"uuid digits", "12345678-1234-1234-1234-123456789012"},
		{"invoice id", "INV-2024-000123"},
		{"invoice phone-shaped", "INV-415-555-2671"},
		{"order hash", "order #123456789"},
		{"ticket", "JIRA-4155"},
		{"sha", "commit 4155552671a9c3e1"},

		// Phone-likes
		{"bare 10 digits", "4155552671"},
		{"bare 11 digits", "14155552671"},
		{"us area 1xx", "123-456-7890"},
		{"us area 0xx", "(012) 555-2671"},
		{"us spaces only", "415 555 2671"},
		{"seven digits", "555-1234"},
		{"mixed separators", "415-555.2671"},
		{"inside longer run left", "98765415-555-2671"},
		{"inside longer run right", "415-555-26718"},
		{"extra group", "415-555-2671-99"},
		{"extension word", "415-555-2671x"},
		{"glued suffix", "415-555-2671-ext"},
		{"glued decimal", "415.555.2671.5"},
		{"plus too short", "+1234567"},
		{"plus too long", "+1234567890123456"},
		{"plus one wrong length", "+1 415 555 267"},
		{"plus zero", "+0 415 555 2671"},
		{"plus after digit", "1+4155552671"},
		{"plus after word", "a+4155552671"},
		{"math", "2+2=4, 10*10=100"},
		{"money", "$1,234,567.89"},
		{"long run", "12345678901234567890123456789"},
		{"phone in email domain", "x@415-555-2671"},
		{"number list", "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"},

		// E-mail near misses
		{"email no tld", "john@localhost"},
		{"email short tld", "john@example.c"},
		{"email numeric tld", "john@example.123"},
		{"email trailing dot local", "john.@example.com"},
		{"email double dot local", "jo..hn@example.com"},
		{"email empty local", "@example.com"},
		{"email empty domain", "john@"},
		{"email label hyphen", "john@-example.com"},
		{"email empty label", "john@example..com"},
		{"email double at", "a@b@c.com"},
		{"email twitter handle", "ping @jane about it"},
		{"email non-ascii local only", "café@"},
	}
	s := NewScanner()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := s.Scan(tc.text, nil); len(got) != 0 {
				t.Errorf("Scan(%q) = %q, want none", tc.text, render(tc.text, got))
			}
		})
	}
}

func TestScanKeepsDst(t *testing.T) {
	t.Parallel()
	prev := Finding{Type: "CUSTOM", Start: 50, End: 60}
	text := "call 415-555-2671"
	got := NewScanner().Scan(text, []Finding{prev})
	want := []Finding{prev, {Type: Phone, Start: 5, End: 17}}
	if !slices.Equal(got, want) {
		t.Errorf("Scan with prefilled dst = %v, want %v", got, want)
	}
}

func TestZeroScannerSkipsBareSSN(t *testing.T) {
	t.Parallel()
	var s Scanner
	text := "SSN: 123456789, 123-45-6789"
	got := render(text, s.Scan(text, nil))
	want := []string{"US_SSN:123-45-6789"}
	if !slices.Equal(got, want) {
		t.Errorf("zero Scanner Scan(%q) = %q, want %q", text, got, want)
	}
}

func TestPush(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		have []Finding
		add  Finding
		want []Finding
	}{
		{
			"no overlap appends",
			[]Finding{{Phone, 0, 5}},
			Finding{Email, 6, 10},
			[]Finding{{Phone, 0, 5}, {Email, 6, 10}},
		},
		{
			"touching appends",
			[]Finding{{Phone, 0, 5}},
			Finding{Email, 5, 10},
			[]Finding{{Phone, 0, 5}, {Email, 5, 10}},
		},
		{
			"longer replaces",
			[]Finding{{Phone, 4, 16}},
			Finding{Email, 4, 28},
			[]Finding{{Email, 4, 28}},
		},
		{
			"shorter dropped",
			[]Finding{{Email, 0, 28}},
			Finding{Phone, 10, 20},
			[]Finding{{Email, 0, 28}},
		},
		{
			"card beats ssn at equal length",
			[]Finding{{USSSN, 0, 11}},
			Finding{CreditCard, 0, 11},
			[]Finding{{CreditCard, 0, 11}},
		},
		{
			"ssn beats phone at equal length",
			[]Finding{{USSSN, 0, 11}},
			Finding{Phone, 0, 11},
			[]Finding{{USSSN, 0, 11}},
		},
		{
			"phone loses to ssn at equal length",
			[]Finding{{Phone, 0, 11}},
			Finding{USSSN, 0, 11},
			[]Finding{{USSSN, 0, 11}},
		},
		{
			"card keeps against phone",
			[]Finding{{CreditCard, 0, 12}},
			Finding{Phone, 2, 14},
			[]Finding{{CreditCard, 0, 12}},
		},
		{
			"replaces several",
			[]Finding{{Phone, 0, 3}, {Phone, 4, 8}, {USSSN, 9, 12}},
			Finding{Email, 2, 20},
			[]Finding{{Email, 2, 20}},
		},
		{
			"must beat every overlapped one",
			[]Finding{{CreditCard, 0, 19}, {Phone, 20, 22}},
			Finding{Email, 18, 30},
			[]Finding{{CreditCard, 0, 19}, {Phone, 20, 22}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := push(slices.Clone(tc.have), 0, tc.add)
			if !slices.Equal(got, tc.want) {
				t.Errorf("push(%v, %v) = %v, want %v", tc.have, tc.add, got, tc.want)
			}
		})
	}
}

func TestOverlapPrecedenceInText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"phone glued to local part is email", "415-555-2671.jane@example.com", []string{"EMAIL:415-555-2671.jane@example.com"}},
		{"card glued to local part is email", "4111111111111111@example.com", []string{"EMAIL:4111111111111111@example.com"}},
		{"email replaces phone it overlaps", "415-555-2671%jane@example.com", []string{"EMAIL:415-555-2671%jane@example.com"}},
		{"card over e164 reading", "4111 1111 1111 1111", []string{"CREDIT_CARD:4111 1111 1111 1111"}},
	}
	s := NewScanner()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := render(tc.text, s.Scan(tc.text, nil))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Scan(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestValidators(t *testing.T) {
	t.Parallel()
	cards := []struct {
		num  string
		want bool
	}{
		{"4111111111111111", true},
		{"4111111111111112", false},
		{"378282246310005", true},
		{"5105105105105100", true},
		{"2221000000000009", true},
		{"2721000000000008", false}, // outside the 2-series range
		{"6011111111111117", true},
		{"3566002020360505", true},
		{"30569309025904", true},
		{"6200000000000005", true},
		{"1234567812345670", false},
	}
	for _, tc := range cards {
		if got := validCard([]byte(tc.num)); got != tc.want {
			t.Errorf("validCard(%s) = %v, want %v", tc.num, got, tc.want)
		}
	}
	ssns := []struct {
		num  string
		want bool
	}{
		{"123456789", true},
		{"001010001", true},
		{"000123456", false},
		{"666123456", false},
		{"900123456", false},
		{"123006789", false},
		{"123450000", false},
	}
	for _, tc := range ssns {
		if got := validSSN([9]byte([]byte(tc.num))); got != tc.want {
			t.Errorf("validSSN(%s) = %v, want %v", tc.num, got, tc.want)
		}
	}
}

func TestNextTrigger(t *testing.T) {
	t.Parallel()
	naive := func(s string, i int) int {
		for ; i < len(s); i++ {
			if s[i] >= '-' && s[i] <= 'A' || s[i] == '_' {
				return i
			}
		}
		return len(s)
	}
	var all strings.Builder
	for c := range 256 {
		all.WriteByte(byte(c))
	}
	texts := []string{
		"", "a", "abcdefgh", "abcdefghi9", "/////////0", "aaaaaaaa@", "zzzzzzzzz_", "\xff\xb0\xc0\x80/0", "\xdf\xdf\xde\xad\xdf^", "KKKKKKKKKKA", "BBBBBBBBBBJ",
		"ÀÁÂÃÄÅÆÇÈÉ:", "the quick brown fox jumps over the lazy dog 1", all.String(),
	}
	for _, s := range texts {
		for i := 0; i <= len(s); i++ {
			if got, want := nextTrigger(s, i), naive(s, i); got != want {
				t.Errorf("nextTrigger(%q, %d) = %d, want %d", s, i, got, want)
			}
		}
	}
}

func TestScanNoAllocs(t *testing.T) {
	s := NewScanner()
	clean := strings.Repeat("The meeting moved to 2026-11-25 at 10:30; see v1.2.3 notes (p. 12). ", 20)
	dirty := clean + "Mail jane@example.com or call +1 415 555 2671."
	dst := make([]Finding, 0, 8)
	tests := []struct {
		name string
		text string
	}{
		{"nothing found", clean},
		{"found into reused dst", dirty},
	}
	for _, tc := range tests {
		if n := testing.AllocsPerRun(100, func() { dst = s.Scan(tc.text, dst[:0]) }); n != 0 {
			t.Errorf("%s: Scan allocs = %v, want 0", tc.name, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = s.Scan(clean, nil) }); n != 0 {
		t.Errorf("Scan(clean, nil) allocs = %v, want 0", n)
	}
}
