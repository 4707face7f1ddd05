package proxy

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/engine"
)

// DecisionSink receives one decision-log event per evaluated request; it
// must not block.
type DecisionSink interface {
	Enqueue(analytics.DecisionEvent)
}

// decide evaluates the live policy and, when a shadow policy is loaded, the
// candidate on the same input; it records the decision log event and counts
// shadow differences. The live result is returned unchanged: the shadow is
// never enforced.
func (s *Server) decide(ctx context.Context, st *call, p *engine.Policy, in *engine.Input) (engine.Decision, error) {
	start := time.Now()
	d, err := p.Eval(ctx, in)
	took := time.Since(start)
	s.metrics.policyEval.Observe(took.Seconds())

	ev := analytics.DecisionEvent{
		RequestID: st.ev.RequestID, Time: st.start,
		Subject: st.ev.Subject, KeyID: st.ev.KeyID, Team: st.ev.Team, Org: st.ev.Org, Kind: st.ev.Kind,
		ModelRequested: in.Model.Requested, BundleRevision: p.Revision,
		EvalMicros: took.Microseconds(),
	}
	fillDecision(&ev, d, err)

	if s.deps.Shadow != nil {
		if sp := s.deps.Shadow.Current(); sp != nil {
			sd, serr := sp.Eval(ctx, in)
			ev.ShadowRevision = sp.Revision
			ev.ShadowAllowed = serr == nil && sd.Allow
			ev.ShadowDenyCodes = denyCodes(sd)
			if serr != nil {
				ev.ShadowError = serr.Error()
			}
			ev.ShadowDiffers = !sameDecision(d, err, sd, serr)
			result := "same"
			switch {
			case serr != nil:
				result = "error"
			case ev.ShadowDiffers:
				result = "different"
			}
			s.metrics.shadow.WithLabelValues(result).Inc()
			if ev.ShadowDiffers {
				s.deps.Log.Info("shadow decision differs",
					"request_id", st.ev.RequestID,
					"live_revision", p.Revision, "shadow_revision", sp.Revision,
					"live", summary(d, err), "shadow", summary(sd, serr))
			}
		}
	}
	if s.deps.Decisions != nil {
		s.deps.Decisions.Enqueue(ev)
	}
	return d, err
}

func fillDecision(ev *analytics.DecisionEvent, d engine.Decision, err error) {
	if err != nil {
		ev.Error = err.Error()
		return
	}
	ev.Allowed = d.Allow
	ev.DenyCodes = denyCodes(d)
	if d.Route != nil {
		for _, t := range d.Route.Targets {
			ev.Route = append(ev.Route, t.Provider+"/"+t.Model+":"+strconv.Itoa(t.Weight))
		}
		for _, t := range d.Route.Fallbacks {
			ev.Fallbacks = append(ev.Fallbacks, t.Provider+"/"+t.Model+":"+strconv.Itoa(t.Weight))
		}
	}
	for _, r := range d.Mask.Rules {
		for _, t := range r.Types {
			ev.MaskTypes = append(ev.MaskTypes, t)
			ev.MaskActions = append(ev.MaskActions, r.Action)
		}
	}
	for _, l := range d.Limits {
		ev.Limits = append(ev.Limits, fmt.Sprintf("%s|%s|%d|%d|%d", l.Scope, l.Window, l.Tokens, l.Requests, int64(l.USD*1e6+0.5)))
	}
	ev.StorePrompt = d.Log.StorePrompt
}

func denyCodes(d engine.Decision) []string {
	var codes []string
	for _, x := range d.Deny {
		codes = append(codes, x.Code)
	}
	return codes
}

// sameDecision compares what the gateway would enforce: allow, deny codes
// and statuses, route, mask, limits, stream and log options. Deny messages
// are text for people and may differ between revisions without effect.
func sameDecision(a engine.Decision, aerr error, b engine.Decision, berr error) bool {
	if (aerr != nil) != (berr != nil) {
		return false
	}
	if aerr != nil {
		return true
	}
	strip := func(d engine.Decision) engine.Decision {
		deny := make([]engine.Deny, len(d.Deny))
		for i, x := range d.Deny {
			deny[i] = engine.Deny{Code: x.Code, Status: x.Status}
		}
		d.Deny = deny
		return d
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

// summary is a decision for a log line: never prompt text or PII values,
// which decisions do not hold.
func summary(d engine.Decision, err error) any {
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	return map[string]any{
		"allow": d.Allow, "deny": denyCodes(d), "route": d.Route,
		"mask": d.Mask.Rules, "limits": d.Limits,
	}
}
