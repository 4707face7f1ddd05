package sim

import (
	"flag"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none = valid
	}{
		{name: "zero value", cfg: Config{}},
		{name: "all set", cfg: Config{TTFT: time.Second, TokensPerSecond: 50, Rate429: 0.1, Rate500: 0.2, RateHang: 0.7, RetryAfter: time.Second, Models: []string{"echo"}}},
		{name: "rate above 1", cfg: Config{Rate429: 1.5}, want: []string{"-rate-429 1.5", "between 0 and 1"}},
		{name: "negative rate", cfg: Config{Rate500: -0.1}, want: []string{"-rate-500 -0.1"}},
		{name: "NaN rate", cfg: Config{RateHang: math.NaN()}, want: []string{"-rate-hang NaN"}},
		{name: "sum above 1", cfg: Config{Rate429: 0.5, Rate500: 0.4, RateHang: 0.2}, want: []string{"exceeds 1"}},
		{name: "negative ttft", cfg: Config{TTFT: -time.Second}, want: []string{"-ttft -1s"}},
		{name: "negative tps", cfg: Config{TokensPerSecond: -1}, want: []string{"-tokens-per-second -1"}},
		{name: "infinite tps", cfg: Config{TokensPerSecond: math.Inf(1)}, want: []string{"-tokens-per-second +Inf"}},
		{name: "negative retry-after", cfg: Config{RetryAfter: -time.Second}, want: []string{"-retry-after -1s"}},
		{name: "empty model", cfg: Config{Models: []string{"echo", " "}}, want: []string{"-models entry 1 is empty"}},
		{name: "duplicate model", cfg: Config{Models: []string{"echo", "echo"}}, want: []string{`lists "echo" twice`}},
		{name: "all problems reported", cfg: Config{TTFT: -1, Rate429: 2, Models: []string{""}}, want: []string{"-ttft", "-rate-429", "-models"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("got error %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil error, want one containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRegisterFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want Config
	}{
		{
			name: "defaults",
			want: Config{RetryAfter: DefaultRetryAfter, Models: DefaultModels()},
		},
		{
			name: "all flags",
			args: []string{"-ttft=250ms", "-tokens-per-second=40", "-rate-429=0.1", "-retry-after=3s",
				"-rate-500=0.05", "-rate-hang=0.01", "-seed=7", "-models= echo, gpt-4o ,,"},
			want: Config{TTFT: 250 * time.Millisecond, TokensPerSecond: 40, Rate429: 0.1, RetryAfter: 3 * time.Second,
				Rate500: 0.05, RateHang: 0.01, Seed: 7, Models: []string{"echo", "gpt-4o"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var cfg Config
			fs := flag.NewFlagSet("sim", flag.ContinueOnError)
			cfg.RegisterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, cfg); diff != "" {
				t.Errorf("config mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegisterFlagsEmptyModels(t *testing.T) {
	t.Parallel()
	var cfg Config
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	cfg.RegisterFlags(fs)
	err := fs.Parse([]string{"-models= , "})
	if err == nil || !strings.Contains(err.Error(), "comma-separated") {
		t.Fatalf("got error %v, want one asking for a comma-separated list", err)
	}
}
