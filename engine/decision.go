package engine

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Decision is what a policy returns and the gateway enforces. Fields the
// policy leaves out take the defaults documented in policies/README.md.
type Decision struct {
	Allow  bool           `json:"allow"`
	Deny   []Deny         `json:"deny"`
	Route  *Route         `json:"route,omitempty"`
	Mask   Mask           `json:"mask"`
	Limits []Limit        `json:"limits"`
	Stream Stream         `json:"stream"`
	Log    Log            `json:"log"`
	Params ParamsOverride `json:"params"`
}

// ParamsOverride are request parameters the gateway sets on the upstream request.
type ParamsOverride struct {
	// DefaultMaxTokens caps the completion of a request that sets no
	// max_tokens: the gateway sends it upstream and reserves quota for it
	// instead of DefaultMaxCompletion. 0: no cap.
	DefaultMaxTokens int `json:"default_max_tokens,omitempty"`
}

// Deny is one reason to refuse the request.
type Deny struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"status"`
}

// Route says where to send the request.
type Route struct {
	Targets   []Target `json:"targets"`
	Fallbacks []Target `json:"fallbacks,omitempty"`
	TimeoutMS int      `json:"timeout_ms,omitempty"`
	Retries   int      `json:"retries,omitempty"`
}

// Target is a provider and a model.
type Target struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Weight   int    `json:"weight,omitempty"`
}

// Mask says what to do with personal data.
type Mask struct {
	Rules    []MaskRule `json:"rules"`
	Response bool       `json:"response"`
}

// MaskRule applies one action to some PII types.
type MaskRule struct {
	Types  []string `json:"types"`
	Action string   `json:"action"`
}

// Mask actions.
const (
	ActionRedact      = "redact"
	ActionPlaceholder = "placeholder"
	ActionHash        = "hash"
	ActionBlock       = "block"
)

// Limit is a quota the gateway enforces.
type Limit struct {
	Scope    string  `json:"scope"`
	Window   string  `json:"window"`
	Tokens   int64   `json:"tokens,omitempty"`
	Requests int64   `json:"requests,omitempty"`
	USD      float64 `json:"usd,omitempty"`
}

// Stream holds streaming options.
type Stream struct {
	Cutoff bool `json:"cutoff"`
}

// Log says what goes into the inference log.
type Log struct {
	StorePrompt bool              `json:"store_prompt"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// ActionFor returns the mask action for PII type typ, or "" for none.
func (m Mask) ActionFor(typ string) string {
	for _, r := range m.Rules {
		for _, t := range r.Types {
			if t == typ {
				return r.Action
			}
		}
	}
	return ""
}

// ErrInvalidDecision marks a decision that does not match the contract.
var ErrInvalidDecision = errors.New("invalid decision")

var validWindows = map[string]bool{"minute": true, "hour": true, "day": true, "month": true}

var validActions = map[string]bool{ActionRedact: true, ActionPlaceholder: true, ActionHash: true, ActionBlock: true}

// validate checks the contract and fills defaults. A decision that allows
// and denies at once is a denial.
func (d *Decision) validate() error {
	var errs []error
	for i := range d.Deny {
		x := &d.Deny[i]
		if x.Code == "" {
			errs = append(errs, fmt.Errorf("deny[%d].code: empty", i))
		}
		if x.Status == 0 {
			x.Status = 403
		}
		if x.Status < 400 || x.Status > 599 {
			errs = append(errs, fmt.Errorf("deny[%d].status: %d is not an HTTP error status (want 400-599)", i, x.Status))
		}
		if x.Message == "" {
			x.Message = "request denied by policy (" + x.Code + ")"
		}
	}
	if len(d.Deny) > 0 {
		d.Allow = false
	}
	if !d.Allow && len(d.Deny) == 0 {
		d.Deny = []Deny{{Code: "denied", Message: "request denied by policy", Status: 403}}
	}
	if d.Route != nil {
		errs = append(errs, validateTargets("route.targets", d.Route.Targets)...)
		errs = append(errs, validateTargets("route.fallbacks", d.Route.Fallbacks)...)
	}
	for i, r := range d.Mask.Rules {
		if !validActions[r.Action] {
			errs = append(errs, fmt.Errorf("mask.rules[%d].action: %q is not one of redact, placeholder, hash, block", i, r.Action))
		}
	}
	if d.Params.DefaultMaxTokens < 0 {
		errs = append(errs, fmt.Errorf("params.default_max_tokens: %d is negative", d.Params.DefaultMaxTokens))
	}
	for i, l := range d.Limits {
		if l.Scope == "" {
			errs = append(errs, fmt.Errorf("limits[%d].scope: empty", i))
		}
		if !validWindows[l.Window] {
			errs = append(errs, fmt.Errorf("limits[%d].window: %q is not one of minute, hour, day, month", i, l.Window))
		}
		if l.Tokens < 0 || l.Requests < 0 || l.USD < 0 {
			errs = append(errs, fmt.Errorf("limits[%d]: negative amount", i))
		}
		if l.Tokens == 0 && l.Requests == 0 && l.USD == 0 {
			errs = append(errs, fmt.Errorf("limits[%d]: no amount; set tokens, requests or usd", i))
		}
	}
	return errors.Join(errs...)
}

// validateTargets checks the targets of the list named field.
func validateTargets(field string, ts []Target) []error {
	var errs []error
	for i, t := range ts {
		if t.Provider == "" || t.Model == "" {
			errs = append(errs, fmt.Errorf("%s[%d]: provider and model are required", field, i))
		}
		if t.Weight < 0 {
			errs = append(errs, fmt.Errorf("%s[%d].weight: negative weight %d", field, i, t.Weight))
		}
	}
	return errs
}

// clone returns a copy of d that shares no slice or map with it.
func (d Decision) clone() Decision {
	c := d
	c.Deny = slices.Clone(d.Deny)
	if d.Route != nil {
		r := *d.Route
		r.Targets = slices.Clone(r.Targets)
		r.Fallbacks = slices.Clone(r.Fallbacks)
		c.Route = &r
	}
	if d.Mask.Rules != nil {
		c.Mask.Rules = make([]MaskRule, len(d.Mask.Rules))
		for i, r := range d.Mask.Rules {
			c.Mask.Rules[i] = MaskRule{Types: slices.Clone(r.Types), Action: r.Action}
		}
	}
	c.Limits = slices.Clone(d.Limits)
	c.Log.Tags = maps.Clone(d.Log.Tags)
	return c
}
