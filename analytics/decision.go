package analytics

import "time"

// DecisionEvent is one decision-log row, for audit: what the policy decided
// for one request, under which bundle revision, and, when a shadow bundle
// is evaluated beside the active one, what it would have decided.
//
// It never holds prompt or completion text, nor PII values: MaskTypes names
// the PII types the policy masks ("EMAIL"), never what was found, and Error
// and ShadowError are evaluation error codes or reasons, never request text.
// Subject is the authenticated identity, as in Event.
type DecisionEvent struct {
	RequestID string    `json:"request_id"`
	Time      time.Time `json:"timestamp"`

	Subject string `json:"subject"`
	KeyID   string `json:"key_id,omitempty"`
	Team    string `json:"team,omitempty"`
	Org     string `json:"org,omitempty"`
	// Kind is KindUser, KindService or KindAgent.
	Kind string `json:"kind,omitempty"`

	ModelRequested string `json:"model_requested"`
	// BundleRevision is the revision of the bundle that decided.
	BundleRevision string `json:"bundle_revision,omitempty"`

	Allowed bool `json:"allowed"`
	// DenyCodes lists the policy's deny codes, empty when allowed.
	DenyCodes []string `json:"deny_codes,omitempty"`
	// Route lists the route targets as "provider/model:weight".
	Route []string `json:"route,omitempty"`
	// Fallbacks lists the fallback targets, formatted as Route.
	Fallbacks []string `json:"fallbacks,omitempty"`
	// MaskTypes and MaskActions are parallel: PII type MaskTypes[i] gets
	// action MaskActions[i] ("redact", "hash", ...). They have equal lengths.
	MaskTypes   []string `json:"mask_types,omitempty"`
	MaskActions []string `json:"mask_actions,omitempty"`
	// Limits lists the limits the policy applied, each
	// "scope|window|tokens|requests|usd_micros".
	Limits []string `json:"limits,omitempty"`
	// StorePrompt is the policy's verdict on keeping the prompt; the prompt
	// itself is never in this log.
	StorePrompt bool `json:"store_prompt"`
	// EvalMicros is the policy evaluation time in microseconds.
	EvalMicros int64 `json:"eval_micros"`
	// Error is the evaluation error code or reason, empty on success.
	Error string `json:"error,omitempty"`

	// ShadowRevision is the revision of the shadow bundle, empty when none
	// was evaluated; the other Shadow fields are then zero.
	ShadowRevision string `json:"shadow_revision,omitempty"`
	// ShadowDiffers is true when the shadow decision differs from the
	// active one.
	ShadowDiffers   bool     `json:"shadow_differs,omitempty"`
	ShadowAllowed   bool     `json:"shadow_allowed,omitempty"`
	ShadowDenyCodes []string `json:"shadow_deny_codes,omitempty"`
	// ShadowError is the shadow evaluation's error code or reason.
	ShadowError string `json:"shadow_error,omitempty"`
}
