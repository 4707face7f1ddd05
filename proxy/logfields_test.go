package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/proxy/sse"
)

// TestLogFields checks what the inference log gets besides the basics:
// policy and metadata tags, per-type PII counts, and the prompt and answer
// only when the policy says store_prompt, masked.
func TestLogFields(t *testing.T) {
	t.Parallel()
	up := newSimUpstream(t)
	for _, store := range []bool{false, true} {
		policy := libraryWith(t, map[string]string{
			"data/log/data.json": `{"store_prompt": {"default": ` + map[bool]string{false: "false", true: "true"}[store] + `}, "label_tags": [], "teams": {"ml": {"cost_center": "cc-ml"}}}`,
		})
		h := newHarness(t, harnessOpts{policy: policy, upstreams: []upstreamSpec{{name: "sim", url: up.URL, models: []string{"echo"}}}})
		hdr := http.Header{}
		hdr.Set(metadataHeader, "project=search; ticket=T-42, owner=jane.doe@example.com; bad key=x; cost_center=spoofed")
		resp := h.do(t, t.Context(), http.MethodPost, "/v1/chat/completions",
			chatBody("echo", "mail jane.doe@example.com and bob@example.org, call +1 415 555 0100", nil), hdr)
		readAll(t, resp)
		ev := h.events.one(t)
		wantTags := map[string]string{"project": "search", "ticket": "T-42", "owner": "[REDACTED:EMAIL]", "cost_center": "cc-ml"}
		if diff := cmp.Diff(wantTags, ev.Tags); diff != "" {
			t.Errorf("store=%v: tags (-want +got):\n%s", store, diff)
		}
		if !cmp.Equal(ev.PIITypes, []string{"EMAIL", "PHONE"}) || !cmp.Equal(ev.PIICounts, []int{2, 1}) {
			t.Errorf("store=%v: pii %v %v, want [EMAIL PHONE] [2 1]", store, ev.PIITypes, ev.PIICounts)
		}
		if !store {
			if ev.Prompt != "" || ev.Response != "" {
				t.Errorf("prompt %q response %q stored without store_prompt", ev.Prompt, ev.Response)
			}
			continue
		}
		if !strings.Contains(ev.Prompt, "user: mail [REDACTED:EMAIL] and [REDACTED:EMAIL]") || !strings.Contains(ev.Response, "[REDACTED:PHONE]") {
			t.Errorf("stored prompt %q response %q; want both, masked", ev.Prompt, ev.Response)
		}
		if strings.Contains(ev.Prompt+ev.Response, "example.com") || strings.Contains(ev.Prompt+ev.Response, "555") {
			t.Errorf("stored prompt or response holds a value: %q %q", ev.Prompt, ev.Response)
		}
	}
}

// TestErrorMessagesHideValues checks that a request error naming a bad
// value does not echo personal data in it.
func TestErrorMessagesHideValues(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	resp := h.chat(t, map[string]any{"model": "echo", "messages": []map[string]any{{"role": "jane.doe@example.com", "content": "hi"}}})
	e := wantAPIError(t, resp, http.StatusBadRequest, "invalid_request_error", "invalid_request")
	if strings.Contains(e.Message, "jane.doe") || !strings.Contains(e.Message, "[REDACTED:EMAIL]") {
		t.Fatalf("message %q; want the value redacted", e.Message)
	}
}

// TestDefaultMaxTokens checks that the policy's completion cap becomes the
// max_tokens of a request that sets none.
func TestDefaultMaxTokens(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(completionJSON(streamModel, "ok", 5, 2))
	})
	policy := libraryWith(t, map[string]string{
		"data/guardrails/data.json": `{"max_prompt_tokens": {"default": 128000}, "max_completion_tokens": {"default": 300}, "blocked_phrases": {}}`,
	})
	h := newHarness(t, harnessOpts{policy: policy, upstreams: []upstreamSpec{{name: "openai", url: up.URL, models: []string{streamModel}}}})
	readAll(t, h.chat(t, chatBody(streamModel, "hello", nil)))
	if got := up.lastRequest(t)["max_tokens"]; got != 300.0 {
		t.Errorf("upstream max_tokens = %v, want the policy's cap 300", got)
	}
	readAll(t, h.chat(t, chatBody(streamModel, "hello", map[string]any{"max_tokens": 20})))
	if got := up.lastRequest(t)["max_tokens"]; got != 20.0 {
		t.Errorf("upstream max_tokens = %v, want the caller's 20", got)
	}
}

// TestCustomDetectorsFromPolicyData checks that detectors in the bundle's
// data find and mask their values, in the prompt and in the log.
func TestCustomDetectorsFromPolicyData(t *testing.T) {
	t.Parallel()
	up := newSimUpstream(t)
	policy := libraryWith(t, map[string]string{
		"data/pii/data.json": `{"default": {"EMAIL": "redact", "EMPLOYEE_ID": "redact"}, "teams": {}, "response": {"default": false, "teams": {}},
			"custom_detectors": [{"type": "EMPLOYEE_ID", "pattern": "EMP-[0-9]{6}", "context": ["employee", "badge"]}]}`,
	})
	h := newHarness(t, harnessOpts{policy: policy, upstreams: []upstreamSpec{{name: "sim", url: up.URL, models: []string{"echo"}}}})
	resp := h.chat(t, chatBody("echo", "employee EMP-123456 asked; the order EMP-654321 is not a person", nil))
	text, _ := answer(t, resp, false)
	if text != "employee [REDACTED:EMPLOYEE_ID] asked; the order EMP-654321 is not a person" {
		t.Fatalf("echo %q; want the employee id (with its context word) masked and the other left", text)
	}
	if ev := h.events.one(t); !cmp.Equal(ev.PIITypes, []string{"EMPLOYEE_ID"}) {
		t.Errorf("event PII types %v, want [EMPLOYEE_ID]", ev.PIITypes)
	}
}

// TestResponseGuardrails checks the policy's guardrails on answers: a JSON
// answer that matches is withheld, a streamed one is flagged in the log.
func TestResponseGuardrails(t *testing.T) {
	t.Parallel()
	const leak = "The plan for Project  Falcon is ready."
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream bool `json:"stream"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(completionJSON(streamModel, leak, 5, 8))
			return
		}
		startStream(w)
		send(t, w, contentChunk(streamModel, "The plan for Project "))
		send(t, w, contentChunk(streamModel, " Falcon is ready."))
		send(t, w, finishChunk(streamModel))
		_ = sse.WriteDone(w)
	})
	policy := libraryWith(t, map[string]string{
		"data/guardrails/data.json": `{"max_prompt_tokens": {"default": 128000}, "max_completion_tokens": {},
			"blocked_phrases": {"falcon": {"category": "confidential", "phrases": ["project falcon"], "responses": true}}}`,
	})
	h := newHarness(t, harnessOpts{policy: policy, upstreams: []upstreamSpec{{name: "openai", url: up.URL, models: []string{streamModel}}}})

	e := wantAPIError(t, h.chat(t, chatBody(streamModel, "what is the status?", nil)), http.StatusBadGateway, "api_error", "response_blocked")
	if strings.Contains(e.Message, "ready") {
		t.Errorf("message %q leaks the answer", e.Message)
	}
	if ev := h.events.wait(t, 1)[0]; ev.Error != "response_blocked" || ev.Tags["guardrail_response"] != "falcon" {
		t.Errorf("event error %q tags %v; want response_blocked and the guardrail tag", ev.Error, ev.Tags)
	}

	text, _ := answer(t, h.chat(t, streamBody("what is the status?", nil)), true)
	if text != "The plan for Project  Falcon is ready." {
		t.Errorf("streamed answer %q; want it delivered (streams are flagged, not blocked)", text)
	}
	if ev := h.events.wait(t, 2)[1]; ev.Tags["guardrail_response"] != "falcon" {
		t.Errorf("stream event tags %v; want the guardrail flag", ev.Tags)
	}
}
