package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/quota"
)

// budgetLibrary is the default library with a daily token budget for team
// ml (the harness key's team) and stream cut-off on or off.
func budgetLibrary(t *testing.T, teamTokens int64, cutoff bool) map[string]string {
	t.Helper()
	raw, err := json.Marshal(map[string]any{
		"stream_cutoff": cutoff,
		"keys":          map[string]any{},
		"users":         map[string]any{},
		"teams":         map[string]any{"ml": map[string]any{"day": map[string]any{"tokens": teamTokens}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"data/budgets/data.json": string(raw)}
}

// cutoffPrompt is the prompt of the cut-off tests and its token count.
const cutoffPrompt = "Write a long story about a gateway."

func promptTokens(t *testing.T) int64 {
	t.Helper()
	c, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	return int64(c.CountChat(streamModel, []tokens.Message{{Role: "user", Content: cutoffPrompt}}))
}

var teamDay = quota.Limit{Scope: "team:ml", Window: quota.Day, Tokens: 1}

// TestStreamCutOff streams from the simulator with a team budget smaller
// than prompt + max_tokens: with cut-off the stream is admitted, relays
// what the budget covers (whole grants), and ends with a "length" chunk
// carrying the gateway's notice, the usage it is charged, and [DONE]; the
// team is charged exactly what was relayed, never more than its budget.
func TestStreamCutOff(t *testing.T) {
	t.Parallel()
	const maxTokens = 400
	prompt := promptTokens(t)
	// Room for the prompt and two grants and a half: the third grant is
	// refused.
	budget := prompt + 2*streamGrant + streamGrant/2
	sim := newSimUpstream(t)
	h := newHarness(t, harnessOpts{
		policy:    libraryWith(t, budgetLibrary(t, budget, true)),
		upstreams: []upstreamSpec{{name: "openai", url: sim.URL, models: []string{streamModel}}},
	})
	body := chatBody(streamModel, cutoffPrompt, map[string]any{
		"stream": true, "max_tokens": maxTokens, "stream_options": map[string]any{"include_usage": true},
	})
	resp := h.chat(t, body)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, readAll(t, resp))
	}
	events := newStreamReader(resp.Body).rest(t)
	if len(events) < 4 {
		t.Fatalf("got %d events, want content, cut-off chunk, usage, [DONE]", len(events))
	}
	if got := string(events[len(events)-1]); got != "[DONE]" {
		t.Errorf("last event: got %q, want [DONE]", got)
	}
	var final struct {
		Choices []struct {
			Index        int             `json:"index"`
			Delta        json.RawMessage `json:"delta"`
			FinishReason *string         `json:"finish_reason"`
		} `json:"choices"`
		Tollgate struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"tollgate"`
	}
	if err := json.Unmarshal(events[len(events)-3], &final); err != nil {
		t.Fatalf("cut-off chunk %s: %v", events[len(events)-3], err)
	}
	if len(final.Choices) != 1 || final.Choices[0].FinishReason == nil || *final.Choices[0].FinishReason != "length" {
		t.Errorf("cut-off chunk %s: want one choice with finish_reason length", events[len(events)-3])
	}
	if final.Tollgate.Code != "budget_exhausted" || final.Tollgate.Message == "" {
		t.Errorf("cut-off notice: got %+v, want code budget_exhausted and a message", final.Tollgate)
	}
	var usage struct {
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(events[len(events)-2], &usage); err != nil {
		t.Fatalf("usage chunk %s: %v", events[len(events)-2], err)
	}

	// The simulator sends one token per content chunk.
	relayed := int64(0)
	for _, ev := range events[:len(events)-3] {
		if chunkContent(t, ev) != "" {
			relayed++
		}
	}
	const wantRelayed = 2 * streamGrant
	if relayed != wantRelayed {
		t.Errorf("relayed %d content tokens, want %d (two grants)", relayed, wantRelayed)
	}
	if usage.Usage.PromptTokens != prompt || usage.Usage.CompletionTokens != wantRelayed {
		t.Errorf("usage chunk: got %+v, want prompt %d completion %d", usage.Usage, prompt, wantRelayed)
	}

	ev := h.events.one(t)
	if !ev.CutOff || ev.Error != "" || ev.Status != http.StatusOK {
		t.Errorf("event: cut_off %t error %q status %d, want true, none, 200", ev.CutOff, ev.Error, ev.Status)
	}
	if ev.PromptTokens != prompt || ev.CompletionTokens != wantRelayed {
		t.Errorf("event tokens: got prompt %d completion %d, want %d and %d", ev.PromptTokens, ev.CompletionTokens, prompt, wantRelayed)
	}
	wantCost, ok := h.engine.Current().Prices.CostMicros(streamModel, testNow, engine.Usage{PromptTokens: prompt, CompletionTokens: wantRelayed})
	if !ok || wantCost == 0 {
		t.Fatalf("no price for %s", streamModel)
	}
	if ev.CostMicros != wantCost {
		t.Errorf("event cost: got %d µ$, want %d", ev.CostMicros, wantCost)
	}
	used, err := h.limiter.Usage(t.Context(), testNow, teamDay)
	if err != nil {
		t.Fatal(err)
	}
	if used.Tokens != prompt+wantRelayed || used.Tokens > budget {
		t.Errorf("team charged %d tokens, want %d (within the budget %d)", used.Tokens, prompt+wantRelayed, budget)
	}
	if used.Requests != 0 {
		t.Errorf("team requests counted %d, want 0 (not limited)", used.Requests)
	}

	// The budget is spent: the next stream is refused before it starts.
	wantAPIError(t, h.chat(t, body), http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded")
}

// TestStreamCutOffWithinBudget: a metered stream that fits its budget runs
// to its end, grows its reservation grant by grant and is charged the
// provider's usage.
func TestStreamCutOffWithinBudget(t *testing.T) {
	t.Parallel()
	const maxTokens = 300 // three grants, the last partial
	prompt := promptTokens(t)
	sim := newSimUpstream(t)
	h := newHarness(t, harnessOpts{
		policy:    libraryWith(t, budgetLibrary(t, 10_000, true)),
		upstreams: []upstreamSpec{{name: "openai", url: sim.URL, models: []string{streamModel}}},
	})
	resp := h.chat(t, chatBody(streamModel, cutoffPrompt, map[string]any{"stream": true, "max_tokens": maxTokens}))
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200", resp.StatusCode)
	}
	events := newStreamReader(resp.Body).rest(t)
	if got := string(events[len(events)-1]); got != "[DONE]" {
		t.Errorf("last event: got %q, want [DONE]", got)
	}
	for _, e := range events[:len(events)-1] {
		var n struct {
			Tollgate *json.RawMessage `json:"tollgate"`
		}
		if err := json.Unmarshal(e, &n); err != nil {
			t.Fatalf("event %s: %v", e, err)
		}
		if n.Tollgate != nil {
			t.Errorf("gateway notice in a stream within budget: %s", e)
		}
	}
	ev := h.events.one(t)
	if ev.CutOff || ev.CompletionTokens != maxTokens {
		t.Errorf("event: cut_off %t completion %d, want false and %d", ev.CutOff, ev.CompletionTokens, maxTokens)
	}
	used, err := h.limiter.Usage(t.Context(), testNow, teamDay)
	if err != nil {
		t.Fatal(err)
	}
	if used.Tokens != prompt+maxTokens {
		t.Errorf("team charged %d tokens, want %d", used.Tokens, prompt+maxTokens)
	}
}

// TestStreamWithoutCutOffReservesMaxTokens: without cut-off the same
// request reserves prompt + max_tokens up front and is refused when that
// does not fit, so a stream can never run past the budget either way.
func TestStreamWithoutCutOffReservesMaxTokens(t *testing.T) {
	t.Parallel()
	const maxTokens = 400
	prompt := promptTokens(t)
	sim := newSimUpstream(t)
	h := newHarness(t, harnessOpts{
		policy:    libraryWith(t, budgetLibrary(t, prompt+maxTokens-1, false)),
		upstreams: []upstreamSpec{{name: "openai", url: sim.URL, models: []string{streamModel}}},
	})
	body := chatBody(streamModel, cutoffPrompt, map[string]any{"stream": true, "max_tokens": maxTokens})
	detail := wantAPIError(t, h.chat(t, body), http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded")
	if want := fmt.Sprintf("needs up to %d", prompt+maxTokens); !strings.Contains(detail.Message, want) {
		t.Errorf("message %q does not say %q", detail.Message, want)
	}
}
