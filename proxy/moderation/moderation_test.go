package moderation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/sim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newSim starts the simulator on 127.0.0.1.
func newSim(t *testing.T, cfg sim.Config) (*sim.Server, *httptest.Server) {
	t.Helper()
	counter, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.New(cfg, counter)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

// faultTransport adds the simulator's fault header to every request.
type faultTransport struct {
	base  http.RoundTripper
	fault string
}

func (f faultTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(sim.FaultHeader, f.fault)
	return f.base.RoundTrip(r)
}

// httpClient returns srv's client, forcing fault on every call when set.
func httpClient(srv *httptest.Server, fault string) *http.Client {
	c := srv.Client()
	if fault == "" {
		return c
	}
	return &http.Client{Transport: faultTransport{base: c.Transport, fault: fault}}
}

// newClient builds an enabled Client for srv and returns its registry.
func newClient(t *testing.T, cfg Config, srv *httptest.Server, fault string) (*Client, *prometheus.Registry) {
	t.Helper()
	cfg.Enabled = true
	if cfg.BaseURL == "" {
		cfg.BaseURL = srv.URL + "/v1"
	}
	reg := prometheus.NewRegistry()
	c, err := New(cfg, httpClient(srv, fault), reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, reg
}

// counter returns tollgate_moderation_requests_total{outcome}.
func counter(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tollgate_moderation_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelValue(m, "outcome") == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no tollgate_moderation_requests_total{outcome=%q}", outcome)
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// observations returns the sample count of the latency histogram.
func observations(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tollgate_moderation_request_duration_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal("no tollgate_moderation_request_duration_seconds")
	return 0
}

func TestCheck(t *testing.T) {
	t.Parallel()
	s, srv := newSim(t, sim.Config{})
	c, reg := newClient(t, Config{}, srv, "")
	tests := []struct {
		name  string
		texts []string
		want  Result
		calls int64 // requests the simulator gets
	}{
		{name: "clean", texts: []string{"hello there", "how are you"}, want: Result{Checked: true}, calls: 1},
		{name: "violence", texts: []string{"we attack at dawn"}, want: Result{Checked: true, Flagged: true, Categories: []string{"violence"}}, calls: 1},
		{name: "union sorted", texts: []string{"hurt myself", "fine", "attack, you idiot", "ATTACK"},
			want: Result{Checked: true, Flagged: true, Categories: []string{"harassment", "self-harm", "violence"}}, calls: 1},
		{name: "empty texts skipped", texts: []string{"", "idiot", ""}, want: Result{Checked: true, Flagged: true, Categories: []string{"harassment"}}, calls: 1},
		{name: "nothing to check", texts: []string{"", ""}, want: Result{Checked: true}, calls: 0},
		{name: "nil", texts: nil, want: Result{Checked: true}, calls: 0},
	}
	for _, tc := range tests {
		// Sequential: the call count is the simulator's total.
		t.Run(tc.name, func(t *testing.T) {
			before := s.Requests()
			got, err := c.Check(t.Context(), tc.texts)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if n := s.Requests() - before; n != tc.calls {
				t.Errorf("calls: got %d, want %d", n, tc.calls)
			}
		})
	}
	if got := counter(t, reg, "clean"); got != 1 {
		t.Errorf("requests{outcome=clean}: got %v, want 1", got)
	}
	if got := counter(t, reg, "flagged"); got != 3 {
		t.Errorf("requests{outcome=flagged}: got %v, want 3", got)
	}
	if got := observations(t, reg); got != 4 {
		t.Errorf("latency observations: got %d, want 4 (one per call)", got)
	}
}

func TestCheckTruncation(t *testing.T) {
	t.Parallel()
	_, srv := newSim(t, sim.Config{})
	c, _ := newClient(t, Config{MaxInputBytes: 16}, srv, "")
	tests := []struct {
		name string
		text string
		want bool
	}{
		{name: "within", text: "attack", want: true},
		{name: "word ends at the limit", text: "012345678 attack", want: true},
		// Untruncated, "attackx" is no match; cut to 16 bytes it is "attack".
		{name: "cut makes a word", text: "012345678 attackx", want: true},
		{name: "word cut by the limit", text: "0123456789 attack", want: false},
		{name: "word beyond the limit", text: strings.Repeat("x ", 20) + "attack", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := c.Check(t.Context(), []string{tc.text})
			if err != nil {
				t.Fatal(err)
			}
			if got.Flagged != tc.want {
				t.Errorf("flagged: got %v, want %v (%d-byte limit)", got.Flagged, tc.want, 16)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello", 3, "hel"},
		{"héllo", 2, "h"},  // é is 2 bytes: do not split it
		{"héllo", 3, "hé"}, //
		{"🦊x", 3, ""},      // the 4-byte rune does not fit
		{"🦊x", 4, "🦊"},
		{"", 4, ""},
	}
	for _, tc := range tests {
		if got := truncate(tc.s, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d): got %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

// recorder is a moderation service that records what it gets and answers
// body with status.
type recorder struct {
	status int
	body   string
	got    chan *http.Request
	bodies chan []byte
}

func newRecorder(t *testing.T, status int, body string) (*recorder, *httptest.Server) {
	t.Helper()
	rec := &recorder{status: status, body: body, got: make(chan *http.Request, 8), bodies: make(chan []byte, 8)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.got <- r
		rec.bodies <- b
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.status)
		_, _ = io.WriteString(w, rec.body)
	}))
	t.Cleanup(srv.Close)
	return rec, srv
}

func TestRequestShape(t *testing.T) {
	t.Parallel()
	rec, srv := newRecorder(t, 200, `{"id":"x","model":"m","results":[{"flagged":false,"categories":{},"category_scores":{}},{"flagged":false,"categories":{},"category_scores":{}}]}`)
	c, _ := newClient(t, Config{BaseURL: srv.URL + "/api/", Model: "text-moderation-stable", MaxInputBytes: 3}, srv, "")
	if _, err := c.Check(t.Context(), []string{"héllo", "", "ok"}); err != nil {
		t.Fatal(err)
	}
	r, body := <-rec.got, <-rec.bodies
	if r.Method != http.MethodPost || r.URL.Path != "/api/moderations" {
		t.Errorf("request: got %s %s, want POST /api/moderations", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	if a := r.Header.Get("Authorization"); a != "" {
		t.Errorf("Authorization: got %q, want none without a configured key", a)
	}
	var got wireRequest
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := wireRequest{Model: "text-moderation-stable", Input: []string{"hé", "ok"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestThresholds(t *testing.T) {
	t.Parallel()
	_, srv := newSim(t, sim.Config{})
	tests := []struct {
		name       string
		thresholds map[string]float64
		texts      []string
		want       Result
	}{
		{name: "score reaches threshold", thresholds: map[string]float64{"harassment": sim.ModerationCleanScore},
			texts: []string{"hello"}, want: Result{Checked: true, Flagged: true, Categories: []string{"harassment"}}},
		{name: "score below threshold", thresholds: map[string]float64{"harassment": 0.02},
			texts: []string{"hello"}, want: Result{Checked: true}},
		{name: "flagged above threshold still counts", thresholds: map[string]float64{"violence": 0.95},
			texts: []string{"attack"}, want: Result{Checked: true, Flagged: true, Categories: []string{"violence"}}},
		{name: "several sorted", thresholds: map[string]float64{"sexual": 0.005, "hate": 0.01, "illicit": 0.5},
			texts: []string{"attack"}, want: Result{Checked: true, Flagged: true, Categories: []string{"hate", "sexual", "violence"}}},
		{name: "unknown category", thresholds: map[string]float64{"spam": 0.001},
			texts: []string{"hello"}, want: Result{Checked: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newClient(t, Config{CategoriesThreshold: tc.thresholds}, srv, "")
			got, err := c.Check(t.Context(), tc.texts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFailModes(t *testing.T) {
	t.Parallel()
	_, simSrv := newSim(t, sim.Config{})
	_, malformed := newRecorder(t, 200, `{"results": [`)
	_, noFlag := newRecorder(t, 200, `{"results":[{"categories":{"violence":true}}]}`)
	_, tooFew := newRecorder(t, 200, `{"results":[]}`)
	_, notJSON := newRecorder(t, 200, `<html>gateway error</html>`)
	_, status502 := newRecorder(t, 502, `{"error":{"message":"bad gateway"}}`)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // nothing listens there any more

	tests := []struct {
		name    string
		srv     *httptest.Server
		baseURL string
		fault   string
		timeout string
		reason  string
		status  int
	}{
		{name: "500", srv: simSrv, fault: sim.Fault500, reason: ReasonStatus, status: 500},
		{name: "429", srv: simSrv, fault: sim.Fault429, reason: ReasonStatus, status: 429},
		{name: "502 from a proxy", srv: status502, reason: ReasonStatus, status: 502},
		{name: "hang", srv: simSrv, fault: sim.FaultHang, timeout: "50ms", reason: ReasonTimeout},
		{name: "broken body", srv: simSrv, fault: sim.FaultBreak, reason: ReasonConnection},
		{name: "connection refused", srv: simSrv, baseURL: downURL, reason: ReasonConnection},
		{name: "truncated JSON", srv: malformed, reason: ReasonMalformed},
		{name: "not JSON", srv: notJSON, reason: ReasonMalformed},
		{name: "no flagged field", srv: noFlag, reason: ReasonMalformed},
		{name: "result count", srv: tooFew, reason: ReasonMalformed},
	}
	for _, tc := range tests {
		for _, mode := range []string{FailClosed, FailOpen} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				c, reg := newClient(t, Config{FailMode: mode, Timeout: tc.timeout, BaseURL: tc.baseURL}, tc.srv, tc.fault)
				got, err := c.Check(t.Context(), []string{"attack"})
				cause := err
				if mode == FailOpen {
					if err != nil {
						t.Fatalf("Check: got error %v, want none when failing open", err)
					}
					cause = got.Cause
				} else if got.Cause != nil {
					t.Errorf("Cause: got %v, want nil when failing closed (the error carries it)", got.Cause)
				}
				if !errors.Is(cause, ErrUnavailable) {
					t.Fatalf("error: got %v, want one wrapping ErrUnavailable", cause)
				}
				var ue *UnavailableError
				if !errors.As(cause, &ue) || ue.Reason != tc.reason || ue.Status != tc.status {
					t.Errorf("error: got %#v, want reason %q status %d", ue, tc.reason, tc.status)
				}
				if !got.Unavailable || got.Checked || got.Flagged || len(got.Categories) != 0 {
					t.Errorf("result: got %+v, want unavailable and unchecked", got)
				}
				if n := counter(t, reg, tc.reason); n != 1 {
					t.Errorf("requests{outcome=%q}: got %v, want 1", tc.reason, n)
				}
				if n := observations(t, reg); n != 1 {
					t.Errorf("latency observations: got %d, want 1", n)
				}
			})
		}
	}
}

func TestTimeoutMessage(t *testing.T) {
	t.Parallel()
	_, srv := newSim(t, sim.Config{})
	c, _ := newClient(t, Config{Timeout: "50ms"}, srv, sim.FaultHang)
	_, err := c.Check(t.Context(), []string{"x"})
	if want := "moderation unavailable: timeout: no answer within 50ms"; err == nil || err.Error() != want {
		t.Errorf("error: got %v, want %q", err, want)
	}
}

func TestCallerCanceled(t *testing.T) {
	t.Parallel()
	_, srv := newSim(t, sim.Config{})
	for _, mode := range []string{FailClosed, FailOpen} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			c, reg := newClient(t, Config{FailMode: mode}, srv, sim.FaultHang)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			got, err := c.Check(ctx, []string{"x"})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error: got %v, want context.Canceled", err)
			}
			if errors.Is(err, ErrUnavailable) {
				t.Errorf("error: got %v, want not ErrUnavailable (the caller left, the service did not fail)", err)
			}
			if got.Unavailable || got.Checked {
				t.Errorf("result: got %+v, want the zero Result", got)
			}
			if n := counter(t, reg, "canceled"); n != 1 {
				t.Errorf("requests{outcome=canceled}: got %v, want 1", n)
			}
		})
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	s, srv := newSim(t, sim.Config{})
	c, err := New(Config{BaseURL: srv.URL + "/v1", APIKeyEnv: "TOLLGATE_TEST_UNSET_MODERATION_KEY"}, srv.Client(), nil)
	if err != nil {
		t.Fatalf("New: %v (a disabled client needs no key)", err)
	}
	var nilClient *Client
	for name, cl := range map[string]*Client{"disabled": c, "nil": nilClient} {
		got, err := cl.Check(t.Context(), []string{"attack"})
		if err != nil || !cmp.Equal(got, Result{}) {
			t.Errorf("%s: got %+v, %v; want the zero Result, no error", name, got, err)
		}
		if cl.Enabled() {
			t.Errorf("%s: Enabled() is true", name)
		}
	}
	if n := s.Requests(); n != 0 {
		t.Errorf("simulator got %d requests, want 0", n)
	}
}

func TestResultInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    Result
		want string
	}{
		{name: "zero", r: Result{}, want: `{"categories":[],"checked":false,"flagged":false,"unavailable":false}`},
		{name: "flagged", r: Result{Checked: true, Flagged: true, Categories: []string{"hate", "violence"}},
			want: `{"categories":["hate","violence"],"checked":true,"flagged":true,"unavailable":false}`},
		{name: "unavailable", r: Result{Unavailable: true, Cause: ErrUnavailable},
			want: `{"categories":[],"checked":false,"flagged":false,"unavailable":true}`},
	}
	for _, tc := range tests {
		b, err := json.Marshal(tc.r.Input())
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, b, tc.want)
		}
	}
}

const testKey = "sk-mod-Zq9sEcReT0nlyForTests"

// TestAPIKey runs the client against a simulator that requires the key. It
// uses t.Setenv, so it is not parallel.
func TestAPIKey(t *testing.T) {
	_, srv := newSim(t, sim.Config{APIKey: testKey})
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("sk-wrong-"+testKey), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOLLGATE_TEST_MODERATION_KEY", testKey)

	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	tests := []struct {
		name    string
		cfg     Config
		fault   string
		wantErr bool
	}{
		{name: "env", cfg: Config{APIKeyEnv: "TOLLGATE_TEST_MODERATION_KEY"}},
		{name: "file", cfg: Config{APIKeyFile: file}},
		{name: "no key", cfg: Config{}, wantErr: true},
		{name: "wrong key", cfg: Config{APIKeyFile: wrong}, wantErr: true},
		{name: "500", cfg: Config{APIKeyFile: file}, fault: sim.Fault500, wantErr: true},
		{name: "hang", cfg: Config{APIKeyFile: file, Timeout: "50ms"}, fault: sim.FaultHang, wantErr: true},
		{name: "open", cfg: Config{APIKeyFile: file, FailMode: FailOpen}, fault: sim.Fault500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newClient(t, tc.cfg, srv, tc.fault)
			got, err := c.Check(t.Context(), []string{"attack"})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Check: got error %v, want error %v", err, tc.wantErr)
			}
			if err == nil && tc.fault == "" && !cmp.Equal(got.Categories, []string{"violence"}) {
				t.Errorf("categories: got %v, want [violence]", got.Categories)
			}
			if (tc.name == "no key" || tc.name == "wrong key") && !strings.Contains(fmt.Sprint(err), "status 401") {
				t.Errorf("error: got %v, want status 401", err)
			}
			cfg := tc.cfg
			cfg.Enabled, cfg.BaseURL = true, srv.URL+"/v1"
			log.Error("moderation", "err", err, "cause", got.Cause, "client", c, "config", cfg)
			log.Debug("moderation client", "value", fmt.Sprintf("%v %+v %#v %s", c, c, c, c.key))
			for what, s := range map[string]string{"error": fmt.Sprint(err), "cause": fmt.Sprint(got.Cause), "log": logs.String()} {
				if strings.Contains(s, testKey) {
					t.Errorf("%s contains the API key: %s", what, s)
				}
			}
		})
	}
	// The log must show where the key came from, proving the client was
	// logged at all.
	if !strings.Contains(logs.String(), "[redacted from file "+file+"]") {
		t.Errorf("log: got %s, want the redacted credential source", logs.String())
	}
}

// TestKeyHeader checks the exact header against a recorder.
func TestKeyHeader(t *testing.T) {
	t.Parallel()
	rec, srv := newRecorder(t, 200, `{"results":[{"flagged":false}]}`)
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte("  "+testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, Config{APIKeyFile: file}, srv, "")
	if _, err := c.Check(t.Context(), []string{"x"}); err != nil {
		t.Fatal(err)
	}
	<-rec.bodies
	if got, want := (<-rec.got).Header.Get("Authorization"), "Bearer "+testKey; got != want {
		t.Errorf("Authorization: got %q, want %q", got, want)
	}
}

func TestNewKeyErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOLLGATE_TEST_MODERATION_EMPTY", "")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "empty env", cfg: Config{APIKeyEnv: "TOLLGATE_TEST_MODERATION_EMPTY"}, want: "moderation.api_key_env: environment variable TOLLGATE_TEST_MODERATION_EMPTY is empty"},
		{name: "missing file", cfg: Config{APIKeyFile: filepath.Join(dir, "nope")}, want: "moderation.api_key_file: open " + filepath.Join(dir, "nope")},
		{name: "empty file", cfg: Config{APIKeyFile: empty}, want: "moderation.api_key_file: " + empty + " is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Enabled, tc.cfg.BaseURL = true, "http://127.0.0.1:1/v1"
			_, err := New(tc.cfg, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNewRegistersOnce(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := Config{Enabled: true, BaseURL: "http://127.0.0.1:1/v1"}
	if _, err := New(cfg, nil, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, nil, reg); err == nil || !strings.Contains(err.Error(), "register moderation metrics") {
		t.Errorf("second New on one registry: got %v, want a registration error", err)
	}
	// Every outcome is exported from the start, at zero.
	for _, o := range []string{"clean", "flagged", "timeout", "connection", "status", "malformed", "canceled"} {
		if n := counter(t, reg, o); n != 0 {
			t.Errorf("requests{outcome=%q}: got %v, want 0", o, n)
		}
	}
}
