# Package tollgate.guardrails refuses requests that are too large or carry
# blocked content, from data.data.guardrails:
#
#   - max_prompt_tokens {"default": N, "teams": {"<team>": N}}: a prompt
#     (input.tokens.prompt) above the limit is denied with prompt_too_long.
#   - max_completion_tokens {"default": N, "teams": {...}}: a max_tokens the
#     caller set (input.params.max_tokens) above the cap is denied with
#     max_tokens_too_high. A request that sets none is not refused: the cap
#     becomes its max_tokens (default_max_tokens, decision params), so that
#     quota reserves for the cap rather than the gateway's default.
#   - blocked_phrases {"<id>": {"phrases": [...], "category": "...",
#     "mode": "deny"|"log" (default deny), "teams": [...], "exempt_teams": [...],
#     "message": "..."}}: the gateway's engine matches the phrases against the
#     prompt text (the text never enters the input) and lists the ids of the
#     rules that matched in input.signals.matched_phrases. A matched rule that
#     applies to the caller's team denies with blocked_content, or in mode
#     "log" only tags the inference log (tags.guardrail_log).
#   - signals {"<signal>": {"category": "...", "mode": "deny"|"log",
#     "teams": [...], "exempt_teams": [...], "message": "..."}}: the same for
#     the content signals the engine counts (input.guardrails.signals:
#     hidden_unicode, bidi_control, base64_blob). A signal without a rule
#     passes.
#   - Answers: a blocked-phrase or signal rule with "responses": true applies
#     to the model's answer too (input.response.matched_phrases and
#     input.response.signals, which the engine fills for the response
#     entrypoint): response_deny holds its denials (code response_blocked,
#     status 502), or in mode "log" nothing.
#   - moderation {"deny_flagged": bool (default true), "deny_unavailable":
#     bool (default false)}: what the external moderation verdict
#     (input.moderation) does: a flagged request is denied with
#     content_flagged; one the service could not check, when the gateway
#     fails open, only if deny_unavailable.
#
# A team's limit wins over the default; 0 or a missing limit means none.
package tollgate.guardrails

# prompt_limits and completion_caps map the teams with their own value to
# it; the defaults are lists of one value, or empty (data only).
default prompt_limits := {}

prompt_limits := data.data.guardrails.max_prompt_tokens.teams if is_object(data.data.guardrails.max_prompt_tokens.teams)

prompt_default := [n | n := data.data.guardrails.max_prompt_tokens.default]

default completion_caps := {}

completion_caps := data.data.guardrails.max_completion_tokens.teams if is_object(data.data.guardrails.max_completion_tokens.teams)

completion_default := [n | n := data.data.guardrails.max_completion_tokens.default]

# team is the caller's team, null when the input names none (no data key is
# null, so lookups fall back to the defaults).
default team := null

team := input.identity.team

# max_prompt is the prompt limit for the caller's team, else the default.
max_prompt := prompt_default[0] if count(prompt_limits) == 0

max_prompt := object.get(prompt_limits, team, prompt_default[0]) if count(prompt_limits) > 0

max_prompt := n if {
	count(prompt_default) == 0
	some t, n in prompt_limits
	t == input.identity.team
}

# max_completion is the max_tokens cap for the caller's team, else the default.
max_completion := completion_default[0] if count(completion_caps) == 0

max_completion := object.get(completion_caps, team, completion_default[0]) if count(completion_caps) > 0

max_completion := n if {
	count(completion_default) == 0
	some t, n in completion_caps
	t == input.identity.team
}

# whom names the limit's owner in messages.
whom := sprintf("team %q", [input.identity.team]) if {
	input.identity.team != ""
} else := "this gateway"

# The deny rules compare first and build their message only when they deny.

deny contains {
	"code": "prompt_too_long",
	"status": 400,
	"message": sprintf("the prompt has %d tokens, more than the %d allowed for %s; shorten or summarise the messages, or split the request", [input.tokens.prompt, max_prompt, whom]),
} if {
	max_prompt > 0
	input.tokens.prompt > max_prompt
}

deny contains {
	"code": "max_tokens_too_high",
	"status": 400,
	"message": sprintf("max_tokens is %d, more than the %d allowed for %s; set max_tokens (or max_completion_tokens) to %d or less", [input.params.max_tokens, max_completion, whom, max_completion]),
} if {
	max_completion > 0
	input.params.max_tokens > max_completion
}

# applies reports whether a blocked-phrase rule covers the caller's team.
applies(rule) if {
	not rule.teams
	not input.identity.team in object.get(rule, "exempt_teams", [])
}

applies(rule) if {
	input.identity.team in rule.teams
	not input.identity.team in object.get(rule, "exempt_teams", [])
}

# matched_rules maps the id of every applicable rule the engine found to the
# rule.
matched_rules[id] := rule if {
	some id in input.signals.matched_phrases
	rule := data.data.guardrails.blocked_phrases[id]
	applies(rule)
}

# signal_rules maps every content signal the engine found whose rule
# applies to the caller's team to the rule.
signal_rules[id] := rule if {
	some id in input.guardrails.signals
	rule := data.data.guardrails.signals[id]
	applies(rule)
}

# matched maps the id of every applicable rule the engine found to its mode.
matched[id] := object.get(rule, "mode", "deny") if some id, rule in matched_rules

matched[id] := object.get(rule, "mode", "deny") if some id, rule in signal_rules

deny contains {
	"code": "blocked_content",
	"status": 400,
	"message": sprintf("the request matches the %s guardrail %q; %s and retry", [category, id, hint]),
} if {
	some id, rule in matched_rules
	object.get(rule, "mode", "deny") != "log"
	category := object.get(rule, "category", "content")
	hint := object.get(rule, "message", "rephrase it without that content")
}

deny contains {
	"code": "blocked_content",
	"status": 400,
	"message": sprintf("the request carries %s (guardrail %q); %s and retry", [category, id, hint]),
} if {
	some id, rule in signal_rules
	object.get(rule, "mode", "deny") != "log"
	category := object.get(rule, "category", "suspicious content")
	hint := object.get(rule, "message", "remove it")
}

# log_rules are the ids of the rules in mode "log" (data only).
log_rules contains id if {
	some id, rule in data.data.guardrails.blocked_phrases
	object.get(rule, "mode", "deny") == "log"
}

log_rules contains id if {
	some id, rule in data.data.guardrails.signals
	object.get(rule, "mode", "deny") == "log"
}

# may_tag is true when a rule may add a tag (data only).
default may_tag := false

may_tag if count(log_rules) > 0

# tags are added to the inference log: log-mode rules that matched.
tags["guardrail_log"] := concat(",", sort(logged)) if {
	count(log_rules) > 0
	found := matched
	logged := [id | some id, mode in found; mode == "log"]
	count(logged) > 0
}

default deny_flagged := true

deny_flagged := data.data.guardrails.moderation.deny_flagged if is_boolean(data.data.guardrails.moderation.deny_flagged)

default deny_unavailable := false

deny_unavailable := data.data.guardrails.moderation.deny_unavailable if is_boolean(data.data.guardrails.moderation.deny_unavailable)

deny contains {
	"code": "content_flagged",
	"status": 400,
	"message": sprintf("the moderation service flagged the request (%s); rephrase it and retry", [concat(", ", input.moderation.categories)]),
} if {
	deny_flagged
	input.moderation.flagged
}

deny contains {
	"code": "moderation_unavailable",
	"status": 503,
	"message": "the moderation service could not check the request and this gateway requires its verdict; retry shortly",
} if {
	deny_unavailable
	input.moderation.unavailable
}

# default_max_tokens is the cap for a request that sets no max_tokens.
default_max_tokens := max_completion if {
	max_completion > 0
	not input.params.max_tokens
}

# response_rules maps every phrase or signal the engine found in the answer
# whose rule applies to answers and to the caller's team to the rule.
response_rules[id] := rule if {
	some id in input.response.matched_phrases
	some rule in object.filter(data.data.guardrails.blocked_phrases, [id])
	rule.responses == true
	applies(rule)
}

response_rules[id] := rule if {
	some id in input.response.signals
	some rule in object.filter(data.data.guardrails.signals, [id])
	rule.responses == true
	applies(rule)
}

response_deny contains {
	"code": "response_blocked",
	"status": 502,
	"message": sprintf("the model's answer matches the %s guardrail %q, so it is withheld; rephrase the request", [object.get(rule, "category", "content"), id]),
} if {
	some id, rule in response_rules
	object.get(rule, "mode", "deny") != "log"
}
