package gateway

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/provider"
)

type readyBody struct {
	Status   string `json:"status"`
	Revision string `json:"bundle_revision"`
	Bundles  struct {
		Ready     bool   `json:"ready"`
		LastError string `json:"last_error"`
	} `json:"bundles"`
}

func readyz(t *testing.T, url string) (int, readyBody) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b readyBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// TestBundleReload edits the policy folder of a running gateway: a broken
// edit keeps the last good revision serving and shows in /readyz; a good
// edit is activated without a restart.
func TestBundleReload(t *testing.T) {
	simSrv, simURL := startSim(t)
	dir := bundleWithData(t, "data/quota/reload.json", map[string]any{})
	key, id, _, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte("{}"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Policy.Bundle = dir
	cfg.Auth.APIKeys = []auth.KeyConfig{{ID: id, Hash: auth.HashKey(key), Subject: "ana", Team: "ml", Roles: []string{"developer"}}}
	cfg.Providers = []provider.Config{{Name: "sim", Kind: "openai", BaseURL: simURL, Models: []string{"echo"}}}
	cfg.Quota.Backend = "memory"
	cfg.Analytics.File = filepath.Join(t.TempDir(), "events.jsonl")
	gw := startGateway(t, cfg, simSrv)

	code, first := readyz(t, gw.url)
	if code != http.StatusOK || first.Status != "ready" || first.Revision == "" || !first.Bundles.Ready {
		t.Fatalf("readyz = %d %+v, want ready with a revision", code, first)
	}

	broken := filepath.Join(dir, "broken.rego")
	if err := os.WriteFile(broken, []byte("package tollgate.broken\n\nx := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var after readyBody
	waitFor(t, "the broken bundle to be reported", func() bool {
		code, after = readyz(t, gw.url)
		return after.Bundles.LastError != ""
	})
	if code != http.StatusOK || after.Revision != first.Revision {
		t.Fatalf("after a broken edit: readyz = %d %+v, want still ready on %s", code, after, first.Revision)
	}

	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data/quota/reload.json"), []byte(`{"keys":{"`+id+`":{"tokens_per_minute":7}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fixed bundle to be activated", func() bool {
		_, after = readyz(t, gw.url)
		return after.Revision != first.Revision
	})
	// The new data is in force: 7 tokens per minute cannot admit a request.
	req, _ := http.NewRequest(http.MethodPost, gw.url+"/v1/chat/completions", jsonBody(`{"model":"echo","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after reload: status %d, want 429 from the new 7-token limit", resp.StatusCode)
	}
}
