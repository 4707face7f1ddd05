package bundles_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/bundles/bundletest"
	"github.com/tollgate/tollgate/policies"
)

// writeAtomic replaces a file in dir as editors and deploy tools do.
func writeAtomic(t *testing.T, dir, name, content string) {
	t.Helper()
	bundletest.WriteFileAtomic(t, filepath.Join(dir, filepath.FromSlash(name)), []byte(content))
}

func TestManagerDirReload(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"t/t.rego":           module("A"),
		"tag/data.json":      `{"value": "A"}`,
		"t/t_test.rego":      "package t_test\n\ntest_x if true\n",
		"docs/not-policy.md": "x",
	})
	h := newHarness(t, bundles.Config{Bundles: []bundles.SourceConfig{{Type: bundles.TypeDir, Path: dir, Debounce: 5 * time.Millisecond}}})
	h.run()
	st := h.waitFor("first activation", func(s bundles.Status) bool { return s.Ready })
	want, err := bundles.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != want.Revision {
		t.Errorf("Revision: got %q, want %q as LoadDir", st.Revision, want.Revision)
	}
	if got := h.evalCurrent(); got["mod"] != "A" || got["data"] != "A" {
		t.Errorf("eval: got %v, want mod A, data A", got)
	}
	first := st.Revision

	// An edit of the module and of the data: one new revision.
	writeAtomic(t, dir, "t/t.rego", module("B"))
	writeAtomic(t, dir, "tag/data.json", `{"value": "B"}`)
	st = h.waitFor("revision B", func(s bundles.Status) bool {
		return s.Revision != first && h.evalCurrent()["data"] == "B" && h.evalCurrent()["mod"] == "B"
	})
	want, _ = bundles.LoadDir(dir)
	if st.Revision != want.Revision || h.current.Load().revision != want.Revision {
		t.Errorf("Revision: got status %q, policy %q; want %q", st.Revision, h.current.Load().revision, want.Revision)
	}
	if got := h.series("tollgate_bundle_revision_info"); got != 1 {
		t.Errorf("tollgate_bundle_revision_info: got %d series, want 1", got)
	}
	if got := h.metric("tollgate_bundle_revision_info", "revision", st.Revision); got != 1 {
		t.Errorf("tollgate_bundle_revision_info{revision=%q}: got %v, want 1", st.Revision, got)
	}
	if got := h.metric("tollgate_bundle_last_success_timestamp_seconds"); got < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("tollgate_bundle_last_success_timestamp_seconds: got %v, want about now", got)
	}

	// A file in a new sub-directory is seen too.
	if err := os.MkdirAll(filepath.Join(dir, "extra", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, dir, "extra/deeper/x.rego", "package t.extra\n\nx := 1\n")
	before := st.Revision
	h.waitFor("new sub-directory", func(s bundles.Status) bool { return s.Revision != before })
	if h.metric("tollgate_bundle_loads_total", "result", "failure") != 0 {
		t.Errorf("tollgate_bundle_loads_total{result=failure}: got %v, want 0", h.metric("tollgate_bundle_loads_total", "result", "failure"))
	}
}

func TestManagerDirDebounce(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"t/t.rego": module("A"), "tag/data.json": `{"value": "A"}`})
	h := newHarness(t, bundles.Config{Bundles: []bundles.SourceConfig{{Type: bundles.TypeDir, Path: dir, Debounce: 200 * time.Millisecond}}})
	h.run()
	h.waitFor("first activation", func(s bundles.Status) bool { return s.Ready })
	compiles := h.compiles.Load()

	// A burst of writes, like a git checkout.
	for i := range 20 {
		writeAtomic(t, dir, fmt.Sprintf("t/m%02d.rego", i), fmt.Sprintf("package t.m%02d\n\nx := %d\n", i, i))
	}
	writeAtomic(t, dir, "t/t.rego", module("B"))
	want, err := bundles.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	h.waitFor("the burst's revision", func(s bundles.Status) bool { return s.Revision == want.Revision })
	if got := h.compiles.Load() - compiles; got > 2 {
		t.Errorf("compiles for a burst of 21 writes: got %d, want 1 (2 if the burst was split)", got)
	}
}

func TestManagerDirBrokenEditKeepsOld(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"t/t.rego": module("A"), "tag/data.json": `{"value": "A"}`})
	h := newHarness(t, bundles.Config{Bundles: []bundles.SourceConfig{{Type: bundles.TypeDir, Path: dir, Debounce: 5 * time.Millisecond}}})
	h.run()
	good := h.waitFor("first activation", func(s bundles.Status) bool { return s.Ready })

	// A syntax error: the old revision keeps serving.
	writeAtomic(t, dir, "t/t.rego", "package t\n\nv := {\"mod\": \n")
	st := h.waitFor("the failure", func(s bundles.Status) bool { return s.LastError != "" })
	if st.Revision != good.Revision || !st.Ready {
		t.Errorf("after a broken edit: got revision %q ready %v, want %q ready", st.Revision, st.Ready, good.Revision)
	}
	if !containsAll(st.LastError, "t/t.rego:", "rego_parse_error") {
		t.Errorf("LastError: got %q, want the file, line and rego_parse_error", st.LastError)
	}
	if st.LastErrorAt.Before(st.LastSuccessAt) {
		t.Errorf("LastErrorAt %v before LastSuccessAt %v, want the failure to be the newest", st.LastErrorAt, st.LastSuccessAt)
	}
	if st.Sources[0].LastError == "" || st.Sources[0].Name != dir || st.Sources[0].Type != "dir" {
		t.Errorf("Sources[0]: got %+v, want the dir with its error", st.Sources[0])
	}
	// Each reload of the broken tree counts; a burst of events may be more
	// than one reload.
	if got := h.metric("tollgate_bundle_loads_total", "result", "failure"); got < 1 {
		t.Errorf("tollgate_bundle_loads_total{result=failure}: got %v, want at least 1", got)
	}
	if got := h.evalCurrent(); got["mod"] != "A" {
		t.Errorf("eval after broken edit: got %v, want the old policy", got)
	}

	// It parses but does not compile (undefined function): still the old.
	writeAtomic(t, dir, "t/t.rego", "package t\n\nv := no_such_function(1)\n")
	st = h.waitFor("the compile failure", func(s bundles.Status) bool { return strings.Contains(s.LastError, "no_such_function") })
	if st.Revision != good.Revision || !st.Ready {
		t.Errorf("after a compile error: got revision %q, want %q", st.Revision, good.Revision)
	}
	if st.Sources[0].Revision == good.Revision {
		t.Errorf("Sources[0].Revision: got the active %q, want the newer failed one", st.Sources[0].Revision)
	}

	// Reverting to the active content is a success without a compile.
	compiles := h.compiles.Load()
	writeAtomic(t, dir, "t/t.rego", module("A"))
	st = h.waitFor("the revert", func(s bundles.Status) bool { return s.LastSuccessAt.After(s.LastErrorAt) })
	if st.Revision != good.Revision || h.compiles.Load() != compiles {
		t.Errorf("after revert: got revision %q and %d more compiles, want %q and none", st.Revision, h.compiles.Load()-compiles, good.Revision)
	}

	// A good edit activates.
	writeAtomic(t, dir, "t/t.rego", module("C"))
	h.waitFor("revision C", func(bundles.Status) bool { return h.evalCurrent()["mod"] == "C" })
}

func TestManagerFileReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.tar.gz")
	files := func(v string) map[string]string {
		return map[string]string{"t/t.rego": module(v), "tag/data.json": `{"value": "` + v + `"}`}
	}
	bundletest.WriteFileAtomic(t, path, bundletest.Build(t, files("A"), bundletest.Options{Revision: "rev-a"}))
	h := newHarness(t, bundles.Config{Bundles: []bundles.SourceConfig{{Type: bundles.TypeFile, Path: path, Debounce: 5 * time.Millisecond}}})
	h.run()
	h.waitFor("rev-a", func(s bundles.Status) bool { return s.Revision == "rev-a" })

	bundletest.WriteFileAtomic(t, path, bundletest.Build(t, files("B"), bundletest.Options{Revision: "rev-b"}))
	h.waitFor("rev-b", func(s bundles.Status) bool { return s.Revision == "rev-b" })
	if got := h.evalCurrent(); got["mod"] != "B" || got["data"] != "B" {
		t.Errorf("eval: got %v, want B", got)
	}

	// Same manifest revision, new content (a forgotten bump): still new.
	bundletest.WriteFileAtomic(t, path, bundletest.Build(t, files("C"), bundletest.Options{Revision: "rev-b"}))
	h.waitFor("content C", func(bundles.Status) bool { return h.evalCurrent()["mod"] == "C" })

	if err := os.WriteFile(path, []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := h.waitFor("the failure", func(s bundles.Status) bool { return s.LastError != "" })
	if !containsAll(st.LastError, path, "gzip") || st.Revision != "rev-b" {
		t.Errorf("got revision %q, error %q; want rev-b kept and a gzip error naming the file", st.Revision, st.LastError)
	}
}

func httpConfig(url string) bundles.SourceConfig {
	return bundles.SourceConfig{Type: bundles.TypeHTTP, URL: url, PollInterval: 30 * time.Second,
		MinBackoff: time.Second, MaxBackoff: 10 * time.Second, Headers: map[string]string{"Authorization": "Bearer t0ken"}}
}

func TestManagerHTTPETag(t *testing.T) {
	t.Parallel()
	srv := bundletest.NewServer(t)
	a := bundletest.Build(t, map[string]string{"t/t.rego": module("A"), "tag/data.json": `{"value": "A"}`}, bundletest.Options{Revision: "A"})
	b := bundletest.Build(t, map[string]string{"t/t.rego": module("B"), "tag/data.json": `{"value": "B"}`}, bundletest.Options{Revision: "B"})
	srv.Set(a)
	h := newHarness(t, bundles.Config{Bundles: []bundles.SourceConfig{httpConfig(srv.URL + "?token=secret")}})
	clk := newClock()
	bundles.SetClock(h.m, clk.wait, func() float64 { return 0.5 })
	h.run()

	if d := clk.next(t); d != 30*time.Second {
		t.Errorf("first wait: got %v, want the poll interval 30s (jitter 0.5 is no stretch)", d)
	}
	st := h.m.Status()
	if !st.Ready || st.Revision != "A" || h.compiles.Load() != 1 {
		t.Fatalf("after the first poll: got %+v and %d compiles, want A once", st, h.compiles.Load())
	}
	if strings.Contains(st.Sources[0].Name, "secret") {
		t.Errorf("Sources[0].Name: got %q, want the query left out", st.Sources[0].Name)
	}
	firstSuccess := st.Sources[0].LastSuccessAt

	clk.tick(t)
	clk.next(t) // the second poll is done
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("requests: got %d, want 2", len(reqs))
	}
	if reqs[0].IfNoneMatch != "" {
		t.Errorf("first request If-None-Match: got %q, want none", reqs[0].IfNoneMatch)
	}
	if reqs[1].IfNoneMatch != bundletest.ETag(a) || reqs[1].Status != http.StatusNotModified {
		t.Errorf("second request: got If-None-Match %q status %d, want %q and 304", reqs[1].IfNoneMatch, reqs[1].Status, bundletest.ETag(a))
	}
	if got := reqs[1].Header.Get("Authorization"); got != "Bearer t0ken" {
		t.Errorf("Authorization header: got %q, want the configured one", got)
	}
	st = h.m.Status()
	if h.compiles.Load() != 1 || st.Revision != "A" {
		t.Errorf("after 304: got %d compiles, revision %q; want 1 and A", h.compiles.Load(), st.Revision)
	}
	if !st.Sources[0].LastSuccessAt.After(firstSuccess) && !st.Sources[0].LastSuccessAt.Equal(firstSuccess) {
		t.Errorf("Sources[0].LastSuccessAt: got %v, want at least %v", st.Sources[0].LastSuccessAt, firstSuccess)
	}
	if got := h.metric("tollgate_bundle_loads_total", "result", "success"); got != 1 {
		t.Errorf("loads_total{success}: got %v, want 1 (a 304 is no load)", got)
	}

	srv.Set(b)
	clk.tick(t)
	clk.next(t)
	if st := h.m.Status(); st.Revision != "B" || h.compiles.Load() != 2 {
		t.Errorf("after a new bundle: got revision %q, %d compiles; want B, 2", st.Revision, h.compiles.Load())
	}
	if got := h.evalCurrent(); got["mod"] != "B" || got["data"] != "B" {
		t.Errorf("eval: got %v, want B", got)
	}
}

func TestManagerHTTPBackoff(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		jitter float64
		want   []time.Duration
	}{
		{name: "no jitter", jitter: 0, want: []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}},
		{name: "most jitter", jitter: 0.99, want: []time.Duration{1099 * time.Millisecond, 2198 * time.Millisecond, 4396 * time.Millisecond, 8792 * time.Millisecond, 10 * time.Second, 10 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := bundletest.NewServer(t)
			srv.SetStatus(http.StatusInternalServerError)
			h := newHarness(t, bundles.Config{Bundles: []bundles.SourceConfig{httpConfig(srv.URL)}})
			clk := newClock()
			bundles.SetClock(h.m, clk.wait, func() float64 { return tt.jitter })
			h.run()

			var got []time.Duration
			for i := range tt.want {
				got = append(got, clk.next(t))
				if i < len(tt.want)-1 {
					clk.tick(t)
				}
			}
			for i := range got {
				if d := got[i] - tt.want[i]; d < -time.Millisecond || d > time.Millisecond {
					t.Errorf("delays: got %v, want %v", got, tt.want)
					break
				}
				if i > 0 && got[i] < got[i-1] {
					t.Errorf("delays: got %v, want them not to decrease", got)
				}
			}
			st := h.m.Status()
			if st.Ready || !containsAll(st.LastError, "500", srv.URL) {
				t.Errorf("status: got ready %v, error %q; want not ready and the 500", st.Ready, st.LastError)
			}
			if got := h.metric("tollgate_bundle_loads_total", "result", "failure"); got != float64(len(tt.want)) {
				t.Errorf("loads_total{failure}: got %v, want %d", got, len(tt.want))
			}

			// The server recovers: the next delay is the poll interval again.
			srv.SetStatus(0)
			srv.Set(bundletest.Build(t, map[string]string{"t/t.rego": module("A"), "tag/data.json": `{"value": "A"}`}, bundletest.Options{Revision: "A"}))
			clk.tick(t)
			d := clk.next(t)
			if lo, hi := 27*time.Second, 33*time.Second; d < lo || d > hi {
				t.Errorf("delay after recovery: got %v, want the poll interval 30s ±10%%", d)
			}
			if st := h.m.Status(); !st.Ready || st.Revision != "A" {
				t.Errorf("after recovery: got %+v, want A active", st)
			}
		})
	}
}

func TestManagerHTTPSigned(t *testing.T) {
	t.Parallel()
	key := bundletest.NewKey(t, "release", "ES256")
	files := func(v string) map[string]string {
		return map[string]string{"t/t.rego": module(v), "tag/data.json": `{"value": "` + v + `"}`}
	}
	srv := bundletest.NewServer(t)
	srv.Set(bundletest.Build(t, files("A"), bundletest.Options{Revision: "A", SignWith: key}))
	cfg := bundles.Config{
		Bundles: []bundles.SourceConfig{httpConfig(srv.URL)},
		Signing: &bundles.SigningConfig{Keys: []bundles.KeyConfig{{ID: "release", Algorithm: "ES256", PublicKeyFile: key.WritePublicKey(t, t.TempDir())}}},
	}
	h := newHarness(t, cfg)
	clk := newClock()
	bundles.SetClock(h.m, clk.wait, nil)
	h.run()
	clk.next(t)
	if st := h.m.Status(); st.Revision != "A" {
		t.Fatalf("signed bundle: got %+v, want A active", st)
	}

	for _, tt := range []struct {
		name string
		body []byte
		want []string
	}{
		{name: "unsigned", body: bundletest.Build(t, files("B"), bundletest.Options{Revision: "B"}), want: []string{"no .signatures.json"}},
		{name: "tampered", body: bundletest.Build(t, files("B"), bundletest.Options{Revision: "B", SignWith: key,
			TamperAfterSigning: map[string]string{"t/t.rego": module("evil")}}), want: []string{"digest mismatch"}},
		{name: "wrong key", body: bundletest.Build(t, files("B"), bundletest.Options{Revision: "B", SignWith: bundletest.NewKey(t, "release", "ES256")}),
			want: []string{"verify"}},
	} {
		srv.Set(tt.body)
		clk.tick(t)
		clk.next(t)
		st := h.m.Status()
		if st.Revision != "A" || !containsAll(st.LastError, append(tt.want, bundles.ErrVerification.Error())...) {
			t.Errorf("%s: got revision %q error %q; want A kept and an error with %q", tt.name, st.Revision, st.LastError, tt.want)
		}
	}
	if got := h.evalCurrent(); got["mod"] != "A" {
		t.Errorf("eval: got %v, want A", got)
	}
}

func TestManagerCombined(t *testing.T) {
	t.Parallel()
	policyDir := t.TempDir()
	policyPath := filepath.Join(policyDir, "policy.tar.gz")
	bundletest.WriteFileAtomic(t, policyPath, bundletest.Build(t, map[string]string{"t/t.rego": module("P1")},
		bundletest.Options{Revision: "p1", Roots: []string{"t"}}))
	data := func(v string, roots ...string) []byte {
		return bundletest.Build(t, map[string]string{"tag/data.json": `{"value": "` + v + `"}`}, bundletest.Options{Revision: v, Roots: roots})
	}
	srv := bundletest.NewServer(t)
	srv.Set(data("d1", "tag"))
	h := newHarness(t, bundles.Config{Bundles: []bundles.SourceConfig{
		{Type: bundles.TypeFile, Path: policyPath, Name: "policy"},
		{Type: bundles.TypeHTTP, URL: srv.URL, Name: "data"},
	}})
	clk := newClock()
	bundles.SetClock(h.m, clk.wait, nil)
	h.run()
	clk.next(t)
	st := h.m.Status()
	if st.Revision != "p1+d1" {
		t.Fatalf("Revision: got %q (error %q), want p1+d1", st.Revision, st.LastError)
	}
	if got := h.evalCurrent(); got["mod"] != "P1" || got["data"] != "d1" {
		t.Errorf("eval: got %v, want mod P1 with data d1", got)
	}
	if st.Sources[0].Name != "policy" || st.Sources[0].Revision != "p1" || st.Sources[1].Name != "data" || st.Sources[1].Revision != "d1" {
		t.Errorf("Sources: got %+v, want policy@p1 and data@d1", st.Sources)
	}

	srv.Set(data("d2", "tag"))
	clk.tick(t)
	clk.next(t)
	if got := h.evalCurrent(); h.m.Status().Revision != "p1+d2" || got["data"] != "d2" {
		t.Errorf("after a data update: got %q %v, want p1+d2", h.m.Status().Revision, got)
	}

	// A data bundle that claims the policy's root is refused.
	srv.Set(bundletest.Build(t, map[string]string{"t/extra/data.json": `{"x": 1}`}, bundletest.Options{Revision: "d3", Roots: []string{"t"}}))
	clk.tick(t)
	clk.next(t)
	st = h.m.Status()
	if st.Revision != "p1+d2" || !containsAll(st.LastError, "roots overlap", `root "t"`) {
		t.Errorf("overlapping roots: got revision %q error %q; want p1+d2 kept and a roots error", st.Revision, st.LastError)
	}
}

func TestManagerDirWithManifestAndHTTPData(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"t/t.rego": module("D"), ".manifest": `{"roots": ["t"]}`})
	srv := bundletest.NewServer(t)
	srv.Set(bundletest.Build(t, map[string]string{"tag/data.json": `{"value": "x"}`}, bundletest.Options{Roots: []string{"tag"}}))
	h := newHarness(t, bundles.Config{Bundles: []bundles.SourceConfig{
		{Type: bundles.TypeDir, Path: dir},
		{Type: bundles.TypeHTTP, URL: srv.URL},
	}})
	if err := h.m.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := h.evalCurrent(); got["mod"] != "D" || got["data"] != "x" {
		t.Errorf("eval: got %v, want D with x", got)
	}
}

func TestManagerLegacyAndDefault(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"t/t.rego": module("L"), "tag/data.json": `{"value": "L"}`})
	h := newHarness(t, bundles.Config{Bundle: dir})
	if err := h.m.Load(context.Background()); err != nil {
		t.Fatalf("Load with policy.bundle: %v", err)
	}
	if got := h.evalCurrent(); got["mod"] != "L" {
		t.Errorf("eval: got %v, want L", got)
	}

	h = newHarness(t, bundles.Config{Default: policies.FS})
	if err := h.m.Load(context.Background()); err != nil {
		t.Fatalf("Load with the embedded default: %v", err)
	}
	want, _ := bundles.LoadFS(policies.FS, "embedded")
	if st := h.m.Status(); st.Revision != want.Revision || st.Sources[0].Name != "embedded" {
		t.Errorf("embedded: got %+v, want revision %q", st, want.Revision)
	}

	if _, err := bundles.NewManager(bundles.Config{}, compileRego, func(*compiled) {}, nil, nil); err == nil {
		t.Error("NewManager with no source and no default: got nil error")
	}
}

func TestManagerLoadErrorNotReady(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bundles.Config{Bundles: []bundles.SourceConfig{{Type: bundles.TypeDir, Path: filepath.Join(t.TempDir(), "absent")}}})
	err := h.m.Load(context.Background())
	if err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("Load: got %v, want an error naming the dir", err)
	}
	st := h.m.Status()
	if st.Ready || st.LastError == "" {
		t.Errorf("Status: got %+v, want not ready with the error", st)
	}
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if !containsAll(string(raw), `"ready":false`, `"last_error":`, `"sources":[{"name":`) || strings.Contains(string(raw), "last_success_at") {
		t.Errorf("Status JSON: got %s", raw)
	}
}

func TestManagerMetricsRegisteredOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bundles.Config{Default: policies.FS})
	if _, err := bundles.NewManager(bundles.Config{Default: policies.FS}, compileRego, func(*compiled) {}, h.reg, nil); err == nil ||
		!strings.Contains(err.Error(), "register bundle metrics") {
		t.Errorf("second NewManager on one registry: got %v, want a registration error", err)
	}
}

// TestManagerHotSwap evaluates the active policy from many goroutines while
// the server alternates between two revisions on every poll: each observed
// policy must be a whole revision, never nil after the first activation.
func TestManagerHotSwap(t *testing.T) {
	t.Parallel()
	build := func(v string) []byte {
		return bundletest.Build(t, map[string]string{"t/t.rego": module(v), "tag/data.json": `{"value": "` + v + `"}`}, bundletest.Options{Revision: v})
	}
	srv := bundletest.NewServer(t)
	srv.Rotate(build("A"), build("B"))
	h := newHarness(t, bundles.Config{Bundles: []bundles.SourceConfig{httpConfig(srv.URL)}})
	clk := newClock()
	clk.free.Store(true) // poll back to back
	bundles.SetClock(h.m, clk.wait, nil)
	h.run()
	h.waitFor("first activation", func(s bundles.Status) bool { return s.Ready })

	const swaps = 30
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		seen     sync.Map
		failures atomic.Int32
		evals    atomic.Int64
	)
	for range 4 {
		wg.Go(func() {
			ctx := context.Background()
			for !stop.Load() {
				p := h.current.Load()
				if p == nil {
					failures.Add(1)
					t.Error("policy: got nil after the first activation")
					return
				}
				v, err := p.eval(ctx)
				evals.Add(1)
				if err != nil || v["mod"] != p.revision || v["data"] != p.revision {
					failures.Add(1)
					t.Errorf("policy %q: got %v (err %v), want mod and data %q", p.revision, v, err, p.revision)
					return
				}
				seen.Store(p.revision, true)
			}
		})
	}
	h.waitFor("swaps", func(bundles.Status) bool { return h.compiles.Load() >= swaps || failures.Load() > 0 })
	stop.Store(true)
	wg.Wait()
	for _, rev := range []string{"A", "B"} {
		if _, ok := seen.Load(rev); !ok {
			t.Errorf("revision %s never observed in %d evaluations", rev, evals.Load())
		}
	}
	if got := h.metric("tollgate_bundle_loads_total", "result", "failure"); got != 0 {
		t.Errorf("loads_total{failure}: got %v, want 0 (last error %q)", got, h.m.Status().LastError)
	}
	if got := h.series("tollgate_bundle_revision_info"); got != 1 {
		t.Errorf("tollgate_bundle_revision_info: got %d series, want 1", got)
	}
}

func TestManagerRunTwice(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bundles.Config{Default: policies.FS})
	h.run()
	h.waitFor("ready", func(s bundles.Status) bool { return s.Ready })
	if err := h.m.Run(context.Background()); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("second Run: got %v, want an error", err)
	}
}
