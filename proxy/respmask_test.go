package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/sse"
)

// TestStreamMaskSplitsAnywhere restores a placeholder and masks a value
// that the stream splits at every pair of byte offsets.
func TestStreamMaskSplitsAnywhere(t *testing.T) {
	t.Parallel()
	ph := pii.NewPlaceholders()
	token := ph.Placeholder("EMAIL", "jane@example.com")
	m := engine.Mask{Response: true, Rules: []engine.MaskRule{{Types: []string{"EMAIL"}, Action: engine.ActionPlaceholder}}}
	r := newRespMask(pii.NewScanner(), m, nil, ph)
	answer := "Write to " + token + ", not to bob@example.org, today."
	want := "Write to jane@example.com, not to [REDACTED:EMAIL], today."
	for i := 0; i <= len(answer); i++ {
		for j := i; j <= len(answer); j += 3 {
			s := r.stream()
			var got strings.Builder
			for _, part := range []string{answer[:i], answer[i:j], answer[j:]} {
				out, err := s.write(0, part)
				if err != nil {
					t.Fatal(err)
				}
				got.WriteString(out)
			}
			rest, err := s.flush(0)
			if err != nil {
				t.Fatal(err)
			}
			got.WriteString(rest)
			if got.String() != want {
				t.Fatalf("split at %d and %d: got %q, want %q", i, j, got.String(), want)
			}
		}
	}
	if whole, err := r.text(answer); err != nil || whole != want {
		t.Fatalf("text: %q, %v; want %q", whole, err, want)
	}
}

func TestNewRespMaskIsNilWhenNothingToDo(t *testing.T) {
	t.Parallel()
	redact := engine.Mask{Rules: []engine.MaskRule{{Types: []string{"EMAIL"}, Action: engine.ActionRedact}}}
	if r := newRespMask(pii.NewScanner(), redact, nil, pii.NewPlaceholders()); r != nil {
		t.Fatalf("no placeholders issued and no response masking, got %+v", r)
	}
	if r := newRespMask(pii.NewScanner(), engine.Mask{Response: true}, nil, nil); r != nil {
		t.Fatalf("response masking without rules has nothing to mask, got %+v", r)
	}
}

// TestPlaceholderRoundTrip sends a prompt with an e-mail address under a
// placeholder policy: the upstream sees only the placeholder, the client
// gets the address back, in JSON and in a stream whose chunks split the
// placeholder.
func TestPlaceholderRoundTrip(t *testing.T) {
	t.Parallel()
	const email = "jane.doe@example.com"
	policy := libraryWith(t, map[string]string{
		"data/pii/data.json": `{"default": {"EMAIL": "placeholder"}, "teams": {}, "response": {"default": true, "teams": {}}}`,
	})
	// The upstream answers with what it was sent, in 3-byte pieces when
	// streaming, plus an address of its own.
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream   bool `json:"stream"`
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		answer := "You said: " + req.Messages[len(req.Messages)-1].Content + " Also try bob@example.org."
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"id": "c1", "object": "chat.completion", "model": streamModel,
				"choices": []map[string]any{{"index": 0, "finish_reason": "stop", "message": map[string]any{"role": "assistant", "content": answer}}},
				"usage":   map[string]any{"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
			})
			return
		}
		startStream(w)
		for i := 0; i < len(answer); i += 3 {
			send(t, w, contentChunk(streamModel, answer[i:min(i+3, len(answer))]))
		}
		send(t, w, finishChunk(streamModel))
		_ = sse.WriteDone(w)
	})
	h := newHarness(t, harnessOpts{policy: policy, upstreams: []upstreamSpec{{name: "openai", url: up.URL, models: []string{streamModel}}}})
	want := "You said: write to " + email + " today Also try [REDACTED:EMAIL]."

	resp := h.chat(t, chatBody(streamModel, "write to "+email+" today", nil))
	raw := readAll(t, resp)
	var out openai.ChatResponse
	if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d body %s: %v", resp.StatusCode, raw, err)
	}
	if got := *out.Choices[0].Message.Content; got != want {
		t.Errorf("JSON answer %q, want %q", got, want)
	}
	sent := up.lastRequest(t)["messages"].([]any)[0].(map[string]any)["content"].(string)
	if strings.Contains(sent, email) || !strings.Contains(sent, "<EMAIL_1>") {
		t.Errorf("the upstream got %q; want the placeholder, not the address", sent)
	}

	resp = h.chat(t, streamBody("write to "+email+" today", nil))
	defer resp.Body.Close()
	sr := newStreamReader(resp.Body)
	var got strings.Builder
	for {
		ev, err := sr.next(t)
		if err != nil || string(ev) == "[DONE]" {
			break
		}
		var ch openai.Chunk
		if err := json.Unmarshal(ev, &ch); err != nil {
			t.Fatalf("event %s: %v", ev, err)
		}
		for _, c := range ch.Choices {
			got.WriteString(c.Delta.Content)
		}
	}
	if got.String() != want {
		t.Errorf("streamed answer %q, want %q", got.String(), want)
	}
}
