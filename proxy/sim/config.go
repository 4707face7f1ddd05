package sim

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strings"
	"time"
)

// DefaultRetryAfter is the Retry-After of simulated 429s when
// Config.RetryAfter is zero.
const DefaultRetryAfter = time.Second

// DefaultModels returns the models served when Config.Models is empty.
func DefaultModels() []string {
	return []string{"echo", ToolEchoModel, "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-3.5-turbo", "claude-3-5-haiku", "gemini-2.0-flash"}
}

// Config sets the simulator's latency, faults and models. The zero value is a
// fast, fault-free simulator serving DefaultModels.
type Config struct {
	// TTFT is the delay before the first content token.
	TTFT time.Duration
	// TokensPerSecond paces output tokens after the first; 0 means unlimited.
	TokensPerSecond float64
	// Rate429 is the probability that a request gets 429 with Retry-After.
	Rate429 float64
	// RetryAfter is sent with 429s; 0 means DefaultRetryAfter.
	RetryAfter time.Duration
	// Rate500 is the probability that a request gets 500.
	Rate500 float64
	// RateHang is the probability that a request is never answered; the
	// handler waits until the client goes away.
	RateHang float64
	// Seed seeds the fault draws, and is mixed into generated answers.
	Seed int64
	// Models lists the model IDs served; empty means DefaultModels. "echo"
	// answers with the last user message; "tool-echo" with tool calls (see
	// ToolEchoModel); the others with generated text.
	Models []string
	// APIKey, when set, is the credential every request must carry, where
	// its format puts it (Authorization: Bearer, api-key, x-api-key,
	// x-goog-api-key); requests without it get 401. Empty accepts any.
	APIKey string
}

// RegisterFlags defines the simulator flags on fs, bound to c. Values already
// in c (or the defaults, where c has zero values) become the flag defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if len(c.Models) == 0 {
		c.Models = DefaultModels()
	}
	fs.DurationVar(&c.TTFT, "ttft", c.TTFT, "delay before the first content token, e.g. 300ms")
	fs.Float64Var(&c.TokensPerSecond, "tokens-per-second", c.TokensPerSecond, "output tokens per second after the first (0 = unlimited)")
	fs.Float64Var(&c.Rate429, "rate-429", c.Rate429, "probability of answering 429 with Retry-After, in [0,1]")
	fs.DurationVar(&c.RetryAfter, "retry-after", c.RetryAfter, "Retry-After sent with 429s (rounded up to whole seconds)")
	fs.Float64Var(&c.Rate500, "rate-500", c.Rate500, "probability of answering 500, in [0,1]")
	fs.Float64Var(&c.RateHang, "rate-hang", c.RateHang, "probability of never answering until the client goes away, in [0,1]")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed of fault draws and generated answers")
	fs.Var((*modelsFlag)(&c.Models), "models", "comma-separated model IDs to serve")
}

// modelsFlag is a comma-separated list flag.
type modelsFlag []string

func (m *modelsFlag) String() string {
	if m == nil {
		return ""
	}
	return strings.Join(*m, ",")
}

func (m *modelsFlag) Set(s string) error {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return fmt.Errorf("no model in %q; give a comma-separated list such as echo,gpt-4o", s)
	}
	*m = out
	return nil
}

// Validate reports every problem with c, each naming the flag and the fix.
func (c *Config) Validate() error {
	var errs []error
	if c.TTFT < 0 {
		errs = append(errs, fmt.Errorf("-ttft %v is negative; use 0 for no delay or a duration such as 300ms", c.TTFT))
	}
	if math.IsNaN(c.TokensPerSecond) || math.IsInf(c.TokensPerSecond, 0) || c.TokensPerSecond < 0 {
		errs = append(errs, fmt.Errorf("-tokens-per-second %v is not a finite number ≥ 0; use 0 for unlimited or a rate such as 50", c.TokensPerSecond))
	}
	if c.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("-retry-after %v is negative; use a duration such as 1s", c.RetryAfter))
	}
	rates := []struct {
		flag string
		v    float64
	}{{"-rate-429", c.Rate429}, {"-rate-500", c.Rate500}, {"-rate-hang", c.RateHang}}
	sum, ok := 0.0, true
	for _, r := range rates {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			errs = append(errs, fmt.Errorf("%s %v is not a probability; use a value between 0 and 1, e.g. 0.05", r.flag, r.v))
			ok = false
			continue
		}
		sum += r.v
	}
	if ok && sum > 1 {
		errs = append(errs, fmt.Errorf("-rate-429 + -rate-500 + -rate-hang = %v exceeds 1; lower them so that at most every request fails", sum))
	}
	seen := make(map[string]bool, len(c.Models))
	for i, m := range c.Models {
		switch {
		case strings.TrimSpace(m) == "":
			errs = append(errs, fmt.Errorf("-models entry %d is empty; remove it or name a model", i))
		case seen[m]:
			errs = append(errs, fmt.Errorf("-models lists %q twice; list each model once", m))
		}
		seen[m] = true
	}
	return errors.Join(errs...)
}
