package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// shadowModule denies gpt-4o for everyone; the live default library allows
// it for developers.
const shadowModule = `package tollgate.main

deny contains {"code": "candidate_blocks_gpt4o", "status": 403, "message": "the candidate policy blocks gpt-4o"} if input.model.requested == "gpt-4o"

decision := {"allow": count(deny) == 0, "deny": deny}
`

func TestShadowMode(t *testing.T) {
	t.Parallel()
	up := newSimUpstream(t)
	h := newHarness(t, harnessOpts{
		upstreams: []upstreamSpec{{name: "sim", url: up.URL, models: []string{"echo", "gpt-4o"}}},
		shadow:    regoBundle(shadowModule),
	})
	// echo: live allows with a mask and a limit, the candidate allows with
	// neither, so the decisions differ; gpt-4o: the candidate denies.
	for _, model := range []string{"echo", "gpt-4o", "gpt-4o"} {
		resp := h.chat(t, chatBody(model, "write to ana@example.com", nil))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, want 200: the shadow policy must never be enforced", model, resp.StatusCode)
		}
		readAll(t, resp)
	}
	if got := testutil.ToFloat64(h.srv.metrics.shadow.WithLabelValues("different")); got != 3 {
		t.Errorf("shadow differences = %v, want 3", got)
	}
	evs := h.decisions.all()
	if len(evs) != 3 {
		t.Fatalf("decision events = %d, want 3", len(evs))
	}
	for _, ev := range evs {
		if !ev.Allowed || ev.BundleRevision != h.bundle.Revision || ev.ShadowRevision == "" || !ev.ShadowDiffers {
			t.Errorf("decision event %+v: want live allowed on %s with a differing shadow", ev, h.bundle.Revision)
		}
		if ev.ModelRequested == "gpt-4o" && (ev.ShadowAllowed || len(ev.ShadowDenyCodes) != 1 || ev.ShadowDenyCodes[0] != "candidate_blocks_gpt4o") {
			t.Errorf("gpt-4o shadow = allowed %v codes %v, want denied by candidate_blocks_gpt4o", ev.ShadowAllowed, ev.ShadowDenyCodes)
		}
		raw, _ := json.Marshal(ev)
		if strings.Contains(string(raw), "ana@example.com") {
			t.Errorf("decision event holds the raw email: %s", raw)
		}
	}
}

func TestShadowSameDecision(t *testing.T) {
	t.Parallel()
	up := newSimUpstream(t)
	// The candidate is the live library itself: every decision agrees.
	h := newHarness(t, harnessOpts{
		upstreams: []upstreamSpec{{name: "sim", url: up.URL, models: []string{"echo"}}},
		shadow:    libraryWith(t, nil),
	})
	readAll(t, h.chat(t, chatBody("echo", "hello", nil)))
	if same, diff := testutil.ToFloat64(h.srv.metrics.shadow.WithLabelValues("same")), testutil.ToFloat64(h.srv.metrics.shadow.WithLabelValues("different")); same != 1 || diff != 0 {
		t.Errorf("shadow same=%v different=%v, want 1 and 0", same, diff)
	}
}

func TestDecisionLogEvent(t *testing.T) {
	t.Parallel()
	up := newSimUpstream(t)
	h := newHarness(t, harnessOpts{upstreams: []upstreamSpec{{name: "sim", url: up.URL, models: []string{"echo"}}}})
	readAll(t, h.chat(t, chatBody("echo", "call 415-555-2671 or mail bob@example.org", nil)))
	evs := h.decisions.all()
	if len(evs) != 1 {
		t.Fatalf("decision events = %d, want 1", len(evs))
	}
	ev := evs[0]
	if !ev.Allowed || ev.Subject != "alice" || ev.Team != "ml" || ev.KeyID != h.keyID || ev.ModelRequested != "echo" {
		t.Errorf("identity/allow fields: %+v", ev)
	}
	if strings.Join(ev.MaskTypes, ",") != "EMAIL,PHONE" || strings.Join(ev.MaskActions, ",") != "redact,redact" {
		t.Errorf("mask = %v %v, want EMAIL,PHONE redacted", ev.MaskTypes, ev.MaskActions)
	}
	if len(ev.Limits) != 1 || !strings.HasPrefix(ev.Limits[0], "key:"+h.keyID+"|minute|") {
		t.Errorf("limits = %v, want the key's minute limit", ev.Limits)
	}
	if ev.EvalMicros <= 0 || ev.ShadowRevision != "" {
		t.Errorf("eval micros %d, shadow %q", ev.EvalMicros, ev.ShadowRevision)
	}
	raw, _ := json.Marshal(ev)
	for _, v := range []string{"bob@example.org", "415-555-2671"} {
		if strings.Contains(string(raw), v) {
			t.Errorf("decision event holds a PII value %q: %s", v, raw)
		}
	}
}
