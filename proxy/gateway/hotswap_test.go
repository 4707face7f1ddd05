package gateway

import (
	"bufio"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/bundles/bundletest"
	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/provider"
)

// libraryFiles returns the embedded default library (tests and schemas
// left out) as bundle files.
func libraryFiles(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		raw, err := fs.ReadFile(policies.FS, p)
		files[p] = string(raw)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestHotSwapUnderLoad streams requests through the gateway while its HTTP
// bundle server alternates between two revisions on every poll: no request
// may fail, and every request must be decided by one complete revision.
func TestHotSwapUnderLoad(t *testing.T) {
	simSrv, simURL := startSim(t)
	files := libraryFiles(t)
	revA := bundletest.Build(t, files, bundletest.Options{Revision: "rev-a"})
	filesB := libraryFiles(t)
	filesB["data/quota/data.json"] = strings.Replace(filesB["data/quota/data.json"], "200000", "250000", 1)
	revB := bundletest.Build(t, filesB, bundletest.Options{Revision: "rev-b"})
	srv := bundletest.NewServer(t)
	srv.Rotate(revA, revB)

	key, id, _, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte("{}"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Policy.Bundles = []bundles.SourceConfig{{Type: bundles.TypeHTTP, Name: "policy", URL: srv.URL, PollInterval: 10 * time.Millisecond}}
	cfg.Auth.APIKeys = []auth.KeyConfig{{ID: id, Hash: auth.HashKey(key), Subject: "ana", Team: "ml", Roles: []string{"developer"}}}
	cfg.Providers = []provider.Config{{Name: "sim", Kind: "openai", BaseURL: simURL, Models: []string{"gpt-4o-mini"}}}
	cfg.Quota.Backend = "memory"
	events := filepath.Join(t.TempDir(), "events.jsonl")
	cfg.Analytics.File = events
	gw := startGateway(t, cfg, simSrv)

	// Stream from 4 clients until /readyz has shown the revision change at
	// least 4 times (and at least 60 requests were made), so that both
	// revisions serve while requests are in flight.
	const workers, minRequests, minSwaps = 4, 60, 4
	stop := make(chan struct{})
	var mu sync.Mutex
	requests := 0
	var wg sync.WaitGroup
	errs := make(chan string, 10000)
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				body := `{"model":"gpt-4o-mini","stream":true,"max_tokens":30,"messages":[{"role":"user","content":"stream please"}]}`
				req, _ := http.NewRequest(http.MethodPost, gw.url+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := http.DefaultClient.Do(req)
				mu.Lock()
				requests++
				mu.Unlock()
				if err != nil {
					errs <- err.Error()
					continue
				}
				sc := bufio.NewScanner(resp.Body)
				done := false
				for sc.Scan() {
					if sc.Text() == "data: [DONE]" {
						done = true
					}
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !done {
					errs <- resp.Status + " without a complete stream"
				}
			}
		})
	}
	swaps, last := 0, ""
	waitFor(t, "4 revision changes under load", func() bool {
		_, rb := readyz(t, gw.url)
		if rb.Revision != last {
			if last != "" {
				swaps++
			}
			last = rb.Revision
		}
		mu.Lock()
		defer mu.Unlock()
		return swaps >= minSwaps && requests >= minRequests
	})
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	gw.stop(t)

	f, err := os.Open(events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev analytics.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		seen[ev.BundleRevision]++
	}
	total := 0
	for rev, n := range seen {
		if rev != "rev-a" && rev != "rev-b" {
			t.Errorf("%d requests decided by revision %q, want only rev-a or rev-b", n, rev)
		}
		total += n
	}
	if total != requests {
		t.Errorf("%d events, want one per request (%d)", total, requests)
	}
	if seen["rev-a"] == 0 || seen["rev-b"] == 0 {
		t.Errorf("requests per revision %v: want both revisions to have served during the run", seen)
	}
	t.Logf("requests per revision: %v; bundle polls: %d", seen, len(srv.Requests()))
}
