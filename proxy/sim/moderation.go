package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultModerationModel is the model the moderation endpoint reports when a
// request names none.
const DefaultModerationModel = "omni-moderation-latest"

// Scores of the simulated moderation: a category the input triggers scores
// ModerationFlaggedScore, every other one ModerationCleanScore.
const (
	ModerationFlaggedScore = 0.9
	ModerationCleanScore   = 0.01
)

// moderationCategories are the categories of OpenAI's omni-moderation
// models, separated by spaces; every result lists all of them.
const moderationCategories = "harassment harassment/threatening hate hate/threatening " +
	"illicit illicit/violent self-harm self-harm/instructions self-harm/intent " +
	"sexual sexual/minors violence violence/graphic"

// moderationTrigger flags category when phrase occurs in an input,
// case-insensitively and as whole words: "attack" flags "Attack!" but not
// "attacked" or "counterattack".
type moderationTrigger struct{ category, phrase string }

func moderationTriggers() []moderationTrigger {
	return []moderationTrigger{
		{"violence", "attack"},
		{"harassment", "idiot"},
		{"self-harm", "hurt myself"},
	}
}

// moderationRequest is the body of POST /v1/moderations. Input is a string
// or an array of strings; the multimodal object form is not simulated.
type moderationRequest struct {
	Model string          `json:"model"`
	Input json.RawMessage `json:"input"`
}

type moderationResponse struct {
	ID      string             `json:"id"`
	Model   string             `json:"model"`
	Results []moderationResult `json:"results"`
}

type moderationResult struct {
	Flagged        bool               `json:"flagged"`
	Categories     map[string]bool    `json:"categories"`
	CategoryScores map[string]float64 `json:"category_scores"`
}

// moderations serves POST /v1/moderations, OpenAI's moderation API, with
// deterministic verdicts (see moderationTriggers) so that gateway tests know
// which inputs are flagged. Credentials and X-Sim-Fault work as on
// /v1/chat/completions; the break fault sends half the JSON body.
func (s *Server) moderations(w http.ResponseWriter, r *http.Request) {
	wf := openaiWire{}
	body, err := readBody(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			wf.writeError(w, http.StatusRequestEntityTooLarge, "request_too_large", "",
				fmt.Sprintf("request body is larger than %d bytes; send shorter inputs", tooBig.Limit))
			return
		}
		wf.writeError(w, http.StatusBadRequest, "invalid_request", "", "read request body: "+err.Error())
		return
	}
	if status, msg := s.authorize(r, wf); status != 0 {
		wf.writeError(w, status, "invalid_api_key", "", msg)
		return
	}
	var req moderationRequest
	if err := json.Unmarshal(body, &req); err != nil {
		wf.writeError(w, http.StatusBadRequest, "invalid_request", "", "request body is not a moderation request: "+err.Error())
		return
	}
	inputs, err := moderationInputs(req.Input)
	if err != nil {
		wf.writeError(w, http.StatusBadRequest, "invalid_request", "input", err.Error())
		return
	}
	fault, err := s.fault(r)
	if err != nil {
		wf.writeError(w, http.StatusBadRequest, "invalid_fault", "", err.Error())
		return
	}
	switch fault {
	case Fault429:
		secs := int64(math.Ceil(s.cfg.RetryAfter.Seconds()))
		wf.rateLimited(w, s.cfg.RetryAfter, fmt.Sprintf("simulated rate limit on moderations; retry after %d s", secs))
		return
	case Fault500:
		wf.writeError(w, http.StatusInternalServerError, "server_error", "", "simulated server error; retry the request")
		return
	case FaultHang:
		if s.hangHook != nil {
			s.hangHook()
		}
		<-r.Context().Done()
		return
	}

	model := req.Model
	if model == "" {
		model = DefaultModerationModel
	}
	// The id is a hash of the body, so that the same request always gets
	// the same answer.
	h := fnv.New64a()
	_, _ = h.Write(body)
	resp := moderationResponse{
		ID:      "modr-sim-" + strconv.FormatUint(h.Sum64(), 16),
		Model:   model,
		Results: make([]moderationResult, len(inputs)),
	}
	for i, in := range inputs {
		resp.Results[i] = moderate(in)
	}
	out, err := json.Marshal(&resp)
	if err != nil {
		wf.writeError(w, http.StatusInternalServerError, "server_error", "", "encode response: "+err.Error())
		return
	}
	if fault == FaultBreak {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out[:len(out)/2])
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	writeBody(w, http.StatusOK, out)
}

// moderationInputs reads the input field: a string or an array of strings.
func moderationInputs(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("input is missing; send a string or an array of strings")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("input must be a string or an array of strings (the simulator does not take multimodal inputs)")
	}
	if len(many) == 0 {
		return nil, errors.New("input is an empty array; send at least one string")
	}
	return many, nil
}

// moderate returns the verdict on one input.
func moderate(text string) moderationResult {
	categories := strings.Fields(moderationCategories)
	res := moderationResult{
		Categories:     make(map[string]bool, len(categories)),
		CategoryScores: make(map[string]float64, len(categories)),
	}
	for _, c := range categories {
		res.Categories[c] = false
		res.CategoryScores[c] = ModerationCleanScore
	}
	lower := strings.ToLower(text)
	for _, t := range moderationTriggers() {
		if containsWord(lower, t.phrase) {
			res.Flagged = true
			res.Categories[t.category] = true
			res.CategoryScores[t.category] = ModerationFlaggedScore
		}
	}
	return res
}

// containsWord reports whether phrase occurs in s with no letter or digit
// right before or after it.
func containsWord(s, phrase string) bool {
	for from := 0; from <= len(s)-len(phrase); {
		i := strings.Index(s[from:], phrase)
		if i < 0 {
			return false
		}
		start, end := from+i, from+i+len(phrase)
		before, _ := utf8.DecodeLastRuneInString(s[:start])
		after, _ := utf8.DecodeRuneInString(s[end:])
		if (start == 0 || !isWordRune(before)) && (end == len(s) || !isWordRune(after)) {
			return true
		}
		from = start + 1
	}
	return false
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }
