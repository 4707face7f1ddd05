// Package analytics records, per gateway request, one inference-log event
// (Event: what was asked, routed and spent) and one decision-log event
// (DecisionEvent: what the policy decided, for audit), and ships them, in
// batches and off the request path, to ClickHouse (or to JSON-lines files),
// where FinOps and audit questions become SQL.
//
// The request path calls Writer.Enqueue or DecisionWriter.Enqueue, which
// never block. Both are a BatchWriter, which batches records by size and
// time and hands them to an Inserter: ClickHouse for production, JSONLines
// for local runs. With a disk spool configured, records pass through an
// append-only, checksummed journal first, so ClickHouse outages and
// gateway crashes delay them instead of losing them; queries over
// inference_log FINAL and the FinOps reports (Report, queries/*.sql) count
// each request once although delivery is at least once. README.md
// describes the spool format, fsync policies and metrics. ClickHouse.Migrate creates and upgrades the schema
// (tables inference_log and decision_log), adapting the DDL to the server
// version so the same code runs against ClickHouse 18.16 and current
// releases.
package analytics

import "time"

// Identity kinds, as in the policy input's identity.kind.
const (
	KindUser    = "user"
	KindService = "service"
	KindAgent   = "agent"
)

// Event is one inference-log row: what one request asked for, what the policy
// decided, where it went and what it cost. It holds prompt and completion
// text only in Prompt and Response, filled (after masking) only when the
// decision's log.store_prompt says so; Error is a short code, not a message
// from upstream.
type Event struct {
	RequestID string    `json:"request_id"`
	Time      time.Time `json:"timestamp"`

	Subject string `json:"subject"`
	KeyID   string `json:"key_id,omitempty"`
	Team    string `json:"team,omitempty"`
	Org     string `json:"org,omitempty"`
	// Kind is KindUser, KindService or KindAgent.
	Kind string `json:"kind,omitempty"`

	ModelRequested string `json:"model_requested"`
	ModelRouted    string `json:"model_routed,omitempty"`
	Provider       string `json:"provider,omitempty"`

	// Status is the HTTP status returned to the client.
	Status  int  `json:"status"`
	Allowed bool `json:"allowed"`
	// DenyCode is the policy's deny code when Allowed is false.
	DenyCode       string `json:"deny_code,omitempty"`
	BundleRevision string `json:"bundle_revision,omitempty"`

	// PIITypes lists the PII types found in the request, e.g. "EMAIL".
	PIITypes []string `json:"pii_types,omitempty"`
	PIICount int      `json:"pii_count,omitempty"`

	PromptTokensEstimated int64 `json:"prompt_tokens_estimated"`
	PromptTokens          int64 `json:"prompt_tokens"`
	CompletionTokens      int64 `json:"completion_tokens"`
	CachedTokens          int64 `json:"cached_tokens,omitempty"`
	// CostMicros is the cost in millionths of a US dollar; integers keep
	// sums exact.
	CostMicros int64 `json:"cost_micros"`

	// LatencyMS is the total request duration in milliseconds.
	LatencyMS float64 `json:"latency_ms"`
	// TTFTMS is the time to the first streamed token in milliseconds, 0 when
	// not streaming.
	TTFTMS float64 `json:"ttft_ms,omitempty"`
	Stream bool    `json:"stream"`
	// CutOff is true when the gateway ended a stream because a budget ran out.
	CutOff bool `json:"cut_off,omitempty"`
	// Attempts counts upstream calls, retries and fallbacks included.
	Attempts int `json:"attempts"`
	// Error is a short error code such as "upstream_timeout", empty on success.
	Error    string `json:"error,omitempty"`
	Path     string `json:"path"`
	ClientIP string `json:"client_ip,omitempty"`

	// User is the end user the call is made for, when it differs from
	// Subject or is known besides it: the human at the start of an agent
	// chain, or the request's "user" field. Empty when unknown.
	User string `json:"user,omitempty"`
	// AgentChain lists the subjects of the on-behalf-of chain
	// (identity.chain), in the input's order; empty for direct calls.
	AgentChain []string `json:"agent_chain,omitempty"`
	// Fallbacks counts the upstream attempts that went to a fallback
	// target (decision route.fallbacks); 0 when the first target answered.
	Fallbacks int `json:"fallbacks,omitempty"`
	// AttemptLog lists every upstream attempt in order: target, outcome
	// and latency (stored as parallel arrays).
	AttemptLog []Attempt `json:"attempt_log,omitempty"`
	// PIICounts is parallel to PIITypes: PIICounts[i] findings of type
	// PIITypes[i]. Nil when only the total (PIICount) is known.
	PIICounts []int `json:"pii_counts,omitempty"`
	// Tags come from the decision's log.tags and the request's metadata
	// header; stored as sorted key and value arrays.
	Tags map[string]string `json:"tags,omitempty"`
	// Prompt and Response are stored only when the decision's
	// log.store_prompt is true, and then after masking; empty otherwise
	// (NULL in ClickHouse).
	Prompt   string `json:"prompt,omitempty"`
	Response string `json:"response,omitempty"`
}

// Attempt is one upstream call of a request.
type Attempt struct {
	// Target is "provider/model".
	Target string `json:"target"`
	// Outcome is ok, rate_limited, server_error, timeout, rejected, broken
	// or circuit_open (skipped without a call).
	Outcome   string  `json:"outcome"`
	LatencyMS float64 `json:"latency_ms"`
}

// CostUSD returns the cost in US dollars.
func (e *Event) CostUSD() float64 {
	return float64(e.CostMicros) / 1e6
}
