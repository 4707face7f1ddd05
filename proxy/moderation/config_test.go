package moderation

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// exampleYAML is the section as documented for deploy/tollgate.example.yaml.
const exampleYAML = `
enabled: true
base_url: https://api.openai.com/v1
api_key_env: OPENAI_API_KEY
model: omni-moderation-latest
timeout: 2s
fail_mode: closed
max_input_bytes: 32768
categories_threshold:
  violence: 0.5
  self-harm/intent: 0.2
`

// decode decodes YAML strictly, as the gateway's root config does.
func decode(t *testing.T, src string) (Config, error) {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	err := dec.Decode(&c)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return c, err
}

func TestConfigYAML(t *testing.T) {
	t.Parallel()
	c, err := decode(t, exampleYAML)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := Config{
		Enabled: true, BaseURL: "https://api.openai.com/v1", APIKeyEnv: "OPENAI_API_KEY",
		Model: "omni-moderation-latest", Timeout: "2s", FailMode: "closed", MaxInputBytes: 32768,
		CategoriesThreshold: map[string]float64{"violence": 0.5, "self-harm/intent": 0.2},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if _, err := decode(t, "enabled: true\napi_key: sk-inline\n"); err == nil || !strings.Contains(err.Error(), "api_key") {
		t.Errorf("unknown key: got %v, want a strict-decoding error naming api_key", err)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	d := DefaultConfig()
	if err := d.Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate(): %v", err)
	}
	s, err := Config{Enabled: true, BaseURL: "http://127.0.0.1:8081/v1/"}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := settings{enabled: true, endpoint: "http://127.0.0.1:8081/v1/moderations", model: DefaultModel,
		timeout: 2 * time.Second, maxInput: 32 << 10}
	if diff := cmp.Diff(want, s, cmp.AllowUnexported(settings{})); diff != "" {
		t.Errorf("empty fields resolve to (-want +got):\n%s", diff)
	}
	ds, err := d.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if ds.model != s.model || ds.timeout != s.timeout || ds.maxInput != s.maxInput || ds.failOpen {
		t.Errorf("DefaultConfig resolves to %+v, want the same defaults as empty fields %+v", ds, s)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want []string // each problem, in order
	}{
		{name: "disabled and empty", cfg: Config{}},
		{name: "open", cfg: Config{Enabled: true, BaseURL: "http://sim:8081/v1", FailMode: "open", Timeout: "150ms", APIKeyFile: "/run/secrets/k"}},
		{name: "enabled without url", cfg: Config{Enabled: true}, want: []string{"moderation.base_url: empty"}},
		{name: "bad scheme", cfg: Config{BaseURL: "ftp://x/v1"}, want: []string{`moderation.base_url: "ftp://x/v1" is not an http(s) URL`}},
		{name: "no host", cfg: Config{BaseURL: "https:///v1"}, want: []string{`moderation.base_url: "https:///v1" is not an http(s) URL`}},
		{name: "query", cfg: Config{BaseURL: "https://x/v1?key=1"}, want: []string{"moderation.base_url: \"https://x/v1?key=1\" has a query"}},
		{name: "every problem", cfg: Config{
			Enabled: true, BaseURL: "http://x", APIKeyEnv: "K", APIKeyFile: "/k", Model: " m", Timeout: "soon",
			FailMode: "maybe", MaxInputBytes: -1,
			CategoriesThreshold: map[string]float64{"": 0.5, "hate": 0, "sexual": 1.5, "violence": math.NaN(), "illicit": 1},
		}, want: []string{
			"moderation: set api_key_env or api_key_file, not both",
			`moderation.model: " m" has surrounding or control white space`,
			`moderation.timeout: invalid duration "soon" (want e.g. "2s")`,
			`moderation.fail_mode: invalid value "maybe" (want "closed" or "open")`,
			"moderation.max_input_bytes: -1 is negative",
			"moderation.categories_threshold: empty category name",
			"moderation.categories_threshold.hate: 0 is not a score in (0, 1]",
			"moderation.categories_threshold.sexual: 1.5 is not a score in (0, 1]",
			"moderation.categories_threshold.violence: NaN is not a score in (0, 1]",
		}},
		{name: "zero timeout", cfg: Config{Timeout: "0s"}, want: []string{`moderation.timeout: "0s" is not positive`}},
		{name: "negative timeout", cfg: Config{Timeout: "-1s"}, want: []string{`moderation.timeout: "-1s" is not positive`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("problems: got %d %q, want %d %q", len(got), got, len(tc.want), tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("problem %d: got %q, want it to start with %q", i, got[i], tc.want[i])
				}
			}
			if _, nerr := New(tc.cfg, nil, nil); err != nil && nerr == nil {
				t.Errorf("New: got no error, want the Validate error %v", err)
			}
		})
	}
}

func TestValidateHidesURLCredentials(t *testing.T) {
	t.Parallel()
	err := Config{Enabled: true, BaseURL: "https://user:hunter2@mod.example/v1"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "moderation.base_url: contains credentials") {
		t.Fatalf("Validate: got %v, want the credentials error", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestConfigLogValue(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	c, err := decode(t, exampleYAML)
	if err != nil {
		t.Fatal(err)
	}
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "moderation", c)
	for _, want := range []string{`"fail_mode":"closed"`, `"api_key_env":"OPENAI_API_KEY"`, `"categories_threshold":2`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log: got %s, want it to contain %s", buf.String(), want)
		}
	}
}
