package gateway

import (
	"os"
	"testing"
)

// TestExampleConfig keeps deploy/tollgate.example.yaml, which documents
// every option, in step with the configuration types: strict decoding
// fails on any key the code does not know.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../deploy/tollgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(raw, "deploy/tollgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("example config does not validate: %v", err)
	}
	if len(cfg.Policy.Bundles) != 2 || cfg.Policy.Shadow == nil || cfg.Policy.Signing == nil || len(cfg.Server.PolicyHeaders) != 2 {
		t.Errorf("example config lost documented options: %+v", cfg.Policy)
	}
}
