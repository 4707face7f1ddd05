package sim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// flaggedOf returns the categories a result flags, sorted as
// moderationCategories lists them.
func flaggedOf(t *testing.T, r moderationResult) []string {
	t.Helper()
	var out []string
	for _, c := range strings.Fields(moderationCategories) {
		flagged, ok := r.Categories[c]
		if !ok {
			t.Errorf("categories: %q missing", c)
		}
		score, ok := r.CategoryScores[c]
		if !ok {
			t.Errorf("category_scores: %q missing", c)
		}
		want := ModerationCleanScore
		if flagged {
			want = ModerationFlaggedScore
			out = append(out, c)
		}
		if score != want {
			t.Errorf("category_scores[%q]: got %v, want %v (flagged %v)", c, score, want, flagged)
		}
	}
	if len(r.Categories) != len(strings.Fields(moderationCategories)) {
		t.Errorf("categories: got %d, want %d", len(r.Categories), len(strings.Fields(moderationCategories)))
	}
	return out
}

func TestModerations(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	tests := []struct {
		name  string
		body  string
		model string
		want  [][]string // flagged categories per input
	}{
		{name: "clean string", body: `{"model":"omni-moderation-latest","input":"hello there"}`, model: "omni-moderation-latest", want: [][]string{nil}},
		{name: "no model", body: `{"input":"hello"}`, model: DefaultModerationModel, want: [][]string{nil}},
		{name: "other model", body: `{"model":"text-moderation-stable","input":"hi"}`, model: "text-moderation-stable", want: [][]string{nil}},
		{name: "violence any case", body: `{"input":"we ATTACK at dawn"}`, want: [][]string{{"violence"}}},
		{name: "violence at edges", body: `{"input":["attack","Attack!","(attack)"]}`, want: [][]string{{"violence"}, {"violence"}, {"violence"}}},
		{name: "not a whole word", body: `{"input":["attacked","counterattack","attack_plan","idiotic"]}`, want: [][]string{nil, nil, nil, nil}},
		{name: "harassment", body: `{"input":"you Idiot"}`, want: [][]string{{"harassment"}}},
		{name: "self-harm", body: `{"input":"I want to Hurt Myself."}`, want: [][]string{{"self-harm"}}},
		{name: "split phrase", body: `{"input":"hurt  myself hurtmyself"}`, want: [][]string{nil}},
		{name: "several", body: `{"input":["attack, idiot","fine","hurt myself"]}`, want: [][]string{{"harassment", "violence"}, nil, {"self-harm"}}},
		{name: "unicode around", body: `{"input":"é attack ü"}`, want: [][]string{{"violence"}}},
		{name: "letter before", body: `{"input":"éattack"}`, want: [][]string{nil}},
		{name: "empty string", body: `{"input":[""]}`, want: [][]string{nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, hdr, body := rawPost(t, h, "/v1/moderations", tc.body, "Content-Type", "application/json")
			if status != http.StatusOK {
				t.Fatalf("status: got %d, want 200 (body %s)", status, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
			var resp moderationResponse
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			if !strings.HasPrefix(resp.ID, "modr-sim-") {
				t.Errorf("id: got %q, want modr-sim-…", resp.ID)
			}
			if tc.model != "" && resp.Model != tc.model {
				t.Errorf("model: got %q, want %q", resp.Model, tc.model)
			}
			if len(resp.Results) != len(tc.want) {
				t.Fatalf("results: got %d, want %d", len(resp.Results), len(tc.want))
			}
			for i, r := range resp.Results {
				got := flaggedOf(t, r)
				if diff := cmp.Diff(tc.want[i], got); diff != "" {
					t.Errorf("result %d categories (-want +got):\n%s", i, diff)
				}
				if r.Flagged != (len(tc.want[i]) > 0) {
					t.Errorf("result %d flagged: got %v, want %v", i, r.Flagged, len(tc.want[i]) > 0)
				}
			}
		})
	}
}

// TestModerationsWireShape checks the JSON field names against OpenAI's
// documented response.
func TestModerationsWireShape(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	status, _, body := rawPost(t, h, "/v1/moderations", `{"input":"attack"}`)
	if status != http.StatusOK {
		t.Fatalf("status: got %d, want 200 (body %s)", status, body)
	}
	var raw struct {
		ID      *string `json:"id"`
		Model   *string `json:"model"`
		Results []map[string]json.RawMessage
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	if raw.ID == nil || raw.Model == nil || len(raw.Results) != 1 {
		t.Fatalf("got %s, want id, model and one result", body)
	}
	for _, k := range []string{"flagged", "categories", "category_scores"} {
		if _, ok := raw.Results[0][k]; !ok {
			t.Errorf("result: %q missing in %s", k, body)
		}
	}
}

func TestModerationsDeterministic(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	const req = `{"input":["attack","calm"]}`
	_, _, first := rawPost(t, h, "/v1/moderations", req)
	_, _, second := rawPost(t, h, "/v1/moderations", req)
	if first != second {
		t.Errorf("same request, different answers:\n%s\n%s", first, second)
	}
	_, _, other := rawPost(t, h, "/v1/moderations", `{"input":["attack","calm "]}`)
	if first == other {
		t.Errorf("different requests got the same answer (and id): %s", other)
	}
}

func TestModerationsErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	keyed := newHarness(t, Config{APIKey: "sk-sim-secret"})
	tests := []struct {
		name   string
		h      *harness
		body   string
		header []string
		status int
		code   string
	}{
		{name: "not JSON", h: h, body: `{`, status: 400, code: "invalid_request"},
		{name: "no input", h: h, body: `{"model":"m"}`, status: 400, code: "invalid_request"},
		{name: "null input", h: h, body: `{"input":null}`, status: 400, code: "invalid_request"},
		{name: "empty array", h: h, body: `{"input":[]}`, status: 400, code: "invalid_request"},
		{name: "multimodal", h: h, body: `{"input":[{"type":"text","text":"hi"}]}`, status: 400, code: "invalid_request"},
		{name: "bad fault", h: h, body: `{"input":"x"}`, header: []string{FaultHeader, "teapot"}, status: 400, code: "invalid_fault"},
		{name: "429", h: h, body: `{"input":"x"}`, header: []string{FaultHeader, Fault429}, status: 429, code: "rate_limit_exceeded"},
		{name: "500", h: h, body: `{"input":"x"}`, header: []string{FaultHeader, Fault500}, status: 500, code: "server_error"},
		{name: "missing key", h: keyed, body: `{"input":"x"}`, status: 401, code: "invalid_api_key"},
		{name: "wrong key", h: keyed, body: `{"input":"x"}`, header: []string{"Authorization", "Bearer nope"}, status: 401, code: "invalid_api_key"},
		{name: "GET", h: h, status: 404, code: "unknown_url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			method := http.MethodPost
			if tc.name == "GET" {
				method = http.MethodGet
			}
			req, err := http.NewRequestWithContext(t.Context(), method, tc.h.srv.URL+"/v1/moderations", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			resp, err := tc.h.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tc.status)
			}
			var e struct {
				Error struct{ Code string } `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("decode error body: %v", err)
			}
			if e.Error.Code != tc.code {
				t.Errorf("error code: got %q, want %q", e.Error.Code, tc.code)
			}
			if tc.status == 429 && resp.Header.Get("Retry-After") != "1" {
				t.Errorf("Retry-After: got %q, want 1", resp.Header.Get("Retry-After"))
			}
		})
	}

	t.Run("right key", func(t *testing.T) {
		t.Parallel()
		status, _, body := rawPost(t, keyed, "/v1/moderations", `{"input":"x"}`, "Authorization", "Bearer sk-sim-secret")
		if status != http.StatusOK {
			t.Errorf("status: got %d, want 200 (body %s)", status, body)
		}
	})
}

func TestModerationsRandomFault(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{Rate500: 1})
	status, _, body := rawPost(t, h, "/v1/moderations", `{"input":"x"}`)
	if status != http.StatusInternalServerError {
		t.Errorf("status: got %d, want 500 with -rate-500 1 (body %s)", status, body)
	}
}

func TestModerationsBreak(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.srv.URL+"/v1/moderations", strings.NewReader(`{"input":"attack"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(FaultHeader, FaultBreak)
	r, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Errorf("status: got %d, want 200 before the break", r.StatusCode)
	}
	if _, err := io.ReadAll(r.Body); err == nil {
		t.Error("got a complete body, want a read error")
	}
}

func TestModerationsHang(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{})
	hanging := make(chan struct{}, 1)
	s.hangHook = func() { hanging <- struct{}{} }
	done := make(chan struct{}, 1)
	srv := httptest.NewServer(trackHandler(s, done))
	defer srv.Close()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/moderations", strings.NewReader(`{"input":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(FaultHeader, FaultHang)
	errc := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	wait(t, hanging, "hang")
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client: got %v, want context.Canceled (no answer before the cancel)", err)
	}
	wait(t, done, "handler return after the client went away")
}

func TestContainsWord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s, phrase string
		want      bool
	}{
		{"attack", "attack", true},
		{"an attack.", "attack", true},
		{"attacks attack", "attack", true}, // second occurrence
		{"attacks", "attack", false},
		{"reattack", "attack", false},
		{"att", "attack", false},
		{"", "attack", false},
		{"9attack", "attack", false},
		{"attack9", "attack", false},
		{"x-attack-y", "attack", true},
	}
	for _, tc := range tests {
		if got := containsWord(tc.s, tc.phrase); got != tc.want {
			t.Errorf("containsWord(%q, %q): got %v, want %v", tc.s, tc.phrase, got, tc.want)
		}
	}
}
