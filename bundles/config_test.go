package bundles_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/bundles"
)

const exampleYAML = `
policy:
  bundles:
    - type: http
      name: policy
      url: https://bundles.example.com/tollgate/policy.tar.gz
      poll_interval: 30s
      timeout: 10s
      max_bytes: 16777216
      min_backoff: 1s
      max_backoff: 2m
      headers:
        Authorization: Bearer not-a-real-token
    - type: file
      name: prices
      path: /etc/tollgate/prices.tar.gz
      debounce: 500ms
  signing:
    scope: write
    keys:
      - id: release-2026
        algorithm: ES256
        public_key_file: /etc/tollgate/keys/release-2026.pub.pem
`

func TestConfigYAML(t *testing.T) {
	t.Parallel()
	var doc struct {
		Policy bundles.Config `yaml:"policy"`
	}
	dec := yaml.NewDecoder(strings.NewReader(exampleYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if err := doc.Policy.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := bundles.Config{
		Bundles: []bundles.SourceConfig{
			{Type: "http", Name: "policy", URL: "https://bundles.example.com/tollgate/policy.tar.gz", PollInterval: 30 * time.Second,
				Timeout: 10 * time.Second, MaxBytes: 16 << 20, MinBackoff: time.Second, MaxBackoff: 2 * time.Minute,
				Headers: map[string]string{"Authorization": "Bearer not-a-real-token"}},
			{Type: "file", Name: "prices", Path: "/etc/tollgate/prices.tar.gz", Debounce: 500 * time.Millisecond},
		},
		Signing: &bundles.SigningConfig{Scope: "write", Keys: []bundles.KeyConfig{
			{ID: "release-2026", Algorithm: "ES256", PublicKeyFile: "/etc/tollgate/keys/release-2026.pub.pem"},
		}},
	}
	if diff := cmp.Diff(want, doc.Policy); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	srcs := doc.Policy.Sources()
	if srcs[1].Timeout != bundles.DefaultTimeout || srcs[1].MaxBytes != bundles.DefaultMaxBytes || srcs[1].PollInterval != 0 {
		t.Errorf("defaults of the file source: got %+v", srcs[1])
	}
	if doc.Policy.Bundles[1].Timeout != 0 {
		t.Error("Sources modified the configuration")
	}

	// Header values never reach the log.
	var buf strings.Builder
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "source", doc.Policy.Bundles[0])
	if strings.Contains(buf.String(), "not-a-real-token") || !strings.Contains(buf.String(), "Authorization") {
		t.Errorf("log: got %q, want the header name without its value", buf.String())
	}

	bad := strings.Replace(exampleYAML, "poll_interval", "poll_intervall", 1)
	dec = yaml.NewDecoder(strings.NewReader(bad))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err == nil || !strings.Contains(err.Error(), "poll_intervall") {
		t.Errorf("unknown key: got %v, want an error naming it", err)
	}
}

func TestConfigSourcesLegacy(t *testing.T) {
	t.Parallel()
	c := bundles.Config{Bundle: "./policies"}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	srcs := c.Sources()
	if len(srcs) != 1 || srcs[0].Type != "dir" || srcs[0].Path != "./policies" || srcs[0].Debounce != bundles.DefaultDebounce {
		t.Errorf("Sources: got %+v, want one dir source with defaults", srcs)
	}
	if got := (&bundles.Config{}).Sources(); len(got) != 0 {
		t.Errorf("Sources of an empty config: got %+v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  bundles.Config
		want []string // empty: valid
	}{
		{name: "empty", cfg: bundles.Config{}},
		{name: "dir", cfg: bundles.Config{Bundles: []bundles.SourceConfig{{Type: "dir", Path: "p"}}}},
		{name: "both bundle and bundles", cfg: bundles.Config{Bundle: "p", Bundles: []bundles.SourceConfig{{Type: "dir", Path: "q"}}},
			want: []string{"policy.bundle: set together with policy.bundles"}},
		{name: "field problems", cfg: bundles.Config{Bundles: []bundles.SourceConfig{
			{Type: "dir"},
			{Type: "http", Path: "x", PollInterval: -time.Second},
			{Type: "http", URL: "ftp://host/x"},
			{Type: "file", Path: "a", URL: "http://x", Headers: map[string]string{"A": "b"}, MaxBytes: -1},
			{Type: "s3", Path: "a"},
			{},
			{Type: "http", URL: "http://h/x", MinBackoff: time.Minute, MaxBackoff: time.Second, Headers: map[string]string{"Bad Name": "x"}},
			{Type: "dir", Path: "a", Name: "n"},
			{Type: "dir", Path: "b", Name: "n"},
		}}, want: []string{
			"policy.bundles[0].path: empty",
			"policy.bundles[1].path: set for type http",
			"policy.bundles[1].url: empty",
			"policy.bundles[1].poll_interval: -1s is negative",
			`policy.bundles[2].url: "ftp://host/x" is not an http(s) URL`,
			"policy.bundles[3].url: set for type file",
			"policy.bundles[3].headers: set for type file",
			"policy.bundles[3].max_bytes: -1 is negative",
			`policy.bundles[4].type: "s3" is not dir, file or http`,
			"policy.bundles[5].type: empty",
			"policy.bundles[6].min_backoff: 1m0s is above max_backoff 1s",
			`policy.bundles[6].headers: "Bad Name" is not a header name`,
			`policy.bundles[8].name: "n" is also the name of policy.bundles[7]`,
		}},
		{name: "signing problems", cfg: bundles.Config{
			Bundles: []bundles.SourceConfig{{Type: "dir", Path: "d"}, {Type: "http", URL: "https://h/b.tar.gz"}},
			Signing: &bundles.SigningConfig{Keys: []bundles.KeyConfig{
				{Algorithm: "XS1"}, {ID: "k", PublicKeyFile: "f"}, {ID: "k", PublicKeyFile: "g"},
			}},
		}, want: []string{
			"policy.bundles[0].type: dir bundles cannot be signature-checked",
			"policy.signing.keys[0].id: empty",
			`policy.signing.keys[0].algorithm: "XS1" is not supported`,
			"policy.signing.keys[0].public_key_file: empty",
			`policy.signing.keys[2].id: "k" is also the id of policy.signing.keys[1]`,
		}},
		{name: "signing without keys or verifiable bundles", cfg: bundles.Config{Signing: &bundles.SigningConfig{}},
			want: []string{"policy.signing.keys: empty", "policy.signing: set, but no bundle of type file or http"}},
		{name: "signing with legacy dir", cfg: bundles.Config{Bundle: "d", Signing: &bundles.SigningConfig{Keys: []bundles.KeyConfig{{ID: "k", PublicKeyFile: "f"}}}},
			want: []string{"policy.bundle: a directory cannot be signature-checked"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("Validate: got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: got nil, want %d problems", len(tt.want))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: got\n%v\nwant a line with %q", err, w)
				}
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tt.want) {
				t.Errorf("Validate: got %d problems, want %d:\n%v", got, len(tt.want), err)
			}
		})
	}
}

func ExampleConfig_Validate() {
	cfg := bundles.Config{Bundles: []bundles.SourceConfig{{Type: "http"}}}
	fmt.Println(cfg.Validate())
	// Output: policy.bundles[0].url: empty; set the bundle's address, e.g. https://bundles.example.com/tollgate.tar.gz
}
