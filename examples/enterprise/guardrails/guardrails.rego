# Package tollgate.guardrails refuses requests that are too large or carry
# blocked content, from data.data.guardrails:
#
#   - max_prompt_tokens {"default": N, "teams": {"<team>": N}}: a prompt
#     (input.tokens.prompt) above the limit is denied with prompt_too_long.
#   - max_completion_tokens {"default": N, "teams": {...}}: a max_tokens the
#     caller set (input.params.max_tokens) above the cap is denied with
#     max_tokens_too_high. A request that sets none is not refused.
#   - blocked_phrases {"<id>": {"phrases": [...], "category": "...",
#     "mode": "deny"|"log" (default deny), "teams": [...], "exempt_teams": [...],
#     "message": "..."}}: the gateway's engine matches the phrases against the
#     prompt text (the text never enters the input) and lists the ids of the
#     rules that matched in input.signals.matched_phrases. A matched rule that
#     applies to the caller's team denies with blocked_content, or in mode
#     "log" only tags the inference log (tags.guardrail_log).
#
# A team's limit wins over the default; 0 or a missing limit means none.
package tollgate.guardrails

# limit returns the team's value of the guardrail named name, else the default.
limit(name) := n if {
	n := data.data.guardrails[name].teams[input.identity.team]
} else := data.data.guardrails[name].default

# whom names the limit's owner in messages.
whom := sprintf("team %q", [input.identity.team]) if {
	input.identity.team != ""
} else := "this gateway"

deny contains {
	"code": "prompt_too_long",
	"status": 400,
	"message": sprintf("the prompt has %d tokens, more than the %d allowed for %s; shorten or summarise the messages, or split the request", [input.tokens.prompt, max_prompt, whom]),
} if {
	max_prompt := limit("max_prompt_tokens")
	max_prompt > 0
	input.tokens.prompt > max_prompt
}

deny contains {
	"code": "max_tokens_too_high",
	"status": 400,
	"message": sprintf("max_tokens is %d, more than the %d allowed for %s; set max_tokens (or max_completion_tokens) to %d or less", [input.params.max_tokens, cap, whom, cap]),
} if {
	cap := limit("max_completion_tokens")
	cap > 0
	input.params.max_tokens > cap
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

# matched maps the id of every applicable rule the engine found to its mode.
matched[id] := object.get(rule, "mode", "deny") if {
	some id in input.signals.matched_phrases
	rule := data.data.guardrails.blocked_phrases[id]
	applies(rule)
}

deny contains {
	"code": "blocked_content",
	"status": 400,
	"message": sprintf("the request matches the %s guardrail %q; %s and retry", [category, id, hint]),
} if {
	some id, mode in matched
	mode != "log"
	rule := data.data.guardrails.blocked_phrases[id]
	category := object.get(rule, "category", "content")
	hint := object.get(rule, "message", "rephrase it without that content")
}

# tags are added to the inference log: log-mode rules that matched.
tags["guardrail_log"] := concat(",", sort(logged)) if {
	logged := [id | some id, mode in matched; mode == "log"]
	count(logged) > 0
}
