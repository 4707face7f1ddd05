package pii

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    Config
		errHas []string
	}{
		{"bad regexp", Config{Custom: []CustomDetector{{Type: "EMP_ID", Pattern: "EMP-(\\d+"}}}, []string{"custom[0]: pattern:", "missing closing )", "RE2"}},
		{"lookahead", Config{Custom: []CustomDetector{{Type: "X", Pattern: "a(?=b)"}}}, []string{"custom[0]: pattern:"}},
		{"empty match", Config{Custom: []CustomDetector{{Type: "X", Pattern: "a*"}}}, []string{"matches the empty string"}},
		{"empty pattern", Config{Custom: []CustomDetector{{Type: "X"}}}, []string{"pattern: empty"}},
		{"bad type", Config{Custom: []CustomDetector{{Type: "emp id", Pattern: "x"}}}, []string{`type: "emp id" is not a type name`}},
		{"builtin type", Config{Custom: []CustomDetector{{Type: "EMAIL", Pattern: "x"}}}, []string{`"EMAIL" is a built-in type`}},
		{"validator", Config{Custom: []CustomDetector{{Type: "X", Pattern: "x", Validator: "crc"}}}, []string{`validator: "crc" is not one of none, luhn, mod97`}},
		{"window", Config{Custom: []CustomDetector{{Type: "X", Pattern: "x", Window: 5000}}}, []string{"window: 5000 is out of range"}},
		{"context word", Config{Custom: []CustomDetector{{Type: "X", Pattern: "x", Context: []string{" "}}}}, []string{"context[0]"}},
		{"duplicate", Config{Custom: []CustomDetector{{Type: "X", Pattern: "x"}, {Type: "X", Pattern: "y"}}}, []string{"custom[1].type: \"X\" is also custom[0].type"}},
		{"max bytes", Config{MaxBytes: -1}, []string{"max_bytes: -1 is negative"}},
		{"all reported", Config{Custom: []CustomDetector{{Type: "x", Pattern: "("}, {Type: "Y", Pattern: "y", Validator: "q"}}}, []string{"custom[0]: type:", "custom[0]: pattern:", "custom[1]: validator:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(tc.cfg)
			if err == nil {
				t.Fatalf("New(%+v) = %v, nil; want an error", tc.cfg, s)
			}
			for _, want := range tc.errHas {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("New error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestCustomDetectors(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Custom: []CustomDetector{
		{Type: "EMPLOYEE_ID", Pattern: `EMP-[0-9]{6}`},
		{Type: "ACCOUNT", Pattern: `[0-9]{4} ?[0-9]{4} ?[0-9]{4}`, Validator: ValidatorLuhn, Context: []string{"account", "acct"}, Window: 20},
		{Type: "REF", Pattern: `(?i)ref[a-z0-9]{8}`, Trigger: "ref"},
		{Type: "BANK_REF", Pattern: `RF[0-9]{2}[A-Z0-9]{4,21}`, Validator: ValidatorMod97},
		{Type: "CODENAME", Pattern: `(?:falcon|osprey)-[0-9]+`},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"prefix", "ask EMP-123456 today", []string{"EMPLOYEE_ID:EMP-123456"}},
		{"prefix glued right", "EMP-1234567", nil},
		{"prefix glued left", "XEMP-123456", nil},
		{"luhn valid with context", "acct no. 1234 5678 9015", []string{"ACCOUNT:1234 5678 9015"}},
		{"luhn invalid with context", "acct no. 1234 5678 9016", nil},
		{"luhn valid without context", "no. 1234 5678 9015", nil},
		{"no trigger", "nothing here", nil},
		{"trigger case", "see REFab12cd34 and refzz99yy00", []string{"REF:REFab12cd34", "REF:refzz99yy00"}},
		{"mod97 valid", "pay RF18539007547034 now", []string{"BANK_REF:RF18539007547034"}},
		{"mod97 invalid", "pay RF19539007547034 now", nil},
		{"no prefix pattern", "project osprey-7 and falcon-12.", []string{"CODENAME:osprey-7", "CODENAME:falcon-12"}},
		{"merged with builtin", "EMP-000001 mailed jane@example.com", []string{"EMPLOYEE_ID:EMP-000001", "EMAIL:jane@example.com"}},
		{"builtin wins longer overlap", "x 4111111111111111 y", []string{"CREDIT_CARD:4111111111111111"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := render(tc.text, s.Scan(tc.text, nil)); !slices.Equal(got, tc.want) {
				t.Errorf("Scan(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestCustomContextWords(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Custom: []CustomDetector{
		{Type: "ACCOUNT", Pattern: `[0-9]{11}`, Validator: ValidatorLuhn, Context: []string{"account"}, Window: 16},
	}})
	if err != nil {
		t.Fatal(err)
	}
	const valid = "79927398713" // Luhn-valid
	tests := []struct {
		text string
		want []string
	}{
		{"Account: " + valid, []string{"ACCOUNT:" + valid}},
		{"account number is " + valid, nil}, // cue 18 bytes before: too far
		{"subaccount " + valid, nil},        // cue inside a word
		{"number " + valid, nil},
		{"account " + "79927398710", nil}, // Luhn-invalid
	}
	for _, tc := range tests {
		if got := render(tc.text, s.Scan(tc.text, nil)); !slices.Equal(got, tc.want) {
			t.Errorf("Scan(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestScanContextFailsClosed(t *testing.T) {
	t.Parallel()
	small, err := New(Config{MaxBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	const secret = "jane@example.com"
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	panics := NewScanner()
	panics.testHook = func() { panic("boom near " + secret) }
	long := strings.Repeat("filler text 12 ", 10_000) + secret

	tests := []struct {
		name string
		s    *Scanner
		ctx  context.Context
		text string
		want error
	}{
		{"too large", small, context.Background(), strings.Repeat("a", 65), ErrTooLarge},
		{"canceled before", NewScanner(), canceled, secret, context.Canceled},
		{"canceled during a long scan", NewScanner(), canceled, long, context.Canceled},
		{"panic", panics, context.Background(), secret, ErrScanFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prev := Finding{Type: "X", Start: 1, End: 2}
			got, err := tc.s.ScanContext(tc.ctx, tc.text, []Finding{prev})
			if !errors.Is(err, tc.want) {
				t.Fatalf("ScanContext error = %v, want %v", err, tc.want)
			}
			if !slices.Equal(got, []Finding{prev}) {
				t.Errorf("ScanContext findings on error = %v, want dst unchanged", got)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the scanned value", err)
			}
		})
	}
	// The mid-scan check: scan with a context that is canceled only after
	// the scan started.
	ctx, stop := context.WithCancel(context.Background())
	s := NewScanner()
	s.testHook = stop
	if _, err := s.ScanContext(ctx, long, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("ScanContext canceled mid-scan: error = %v, want context.Canceled", err)
	}
	if got, err := NewScanner().ScanContext(context.Background(), long, nil); err != nil || len(got) != 1 || got[0].Type != Email {
		t.Errorf("ScanContext(long) = %v, %v; want one EMAIL", got, err)
	}
}
