# Package tollgate.main assembles the decision the gateway enforces
# (entrypoint data.tollgate.main.decision). See policies/README.md for the
# contract. Each domain package contributes its part: authz, agents,
# guardrails and routing deny; pii masks; quota limits; routing routes. A domain module left
# out of a bundle contributes nothing.
package tollgate.main

import data.tollgate.agents
import data.tollgate.authz
import data.tollgate.guardrails
import data.tollgate.pii
import data.tollgate.quota
import data.tollgate.routing

deny contains d if some d in authz.deny

deny contains d if some d in agents.deny

deny contains d if some d in guardrails.deny

deny contains d if some d in routing.deny

default allow := false

allow if count(deny) == 0

# team is the caller's team, null when the input names none (no data key is
# null, so lookups fall back to the defaults).
default team := null

team := input.identity.team

# store_prompt_default and store_prompt_teams hold the boolean flags of
# data.data.log.store_prompt (data only).
default store_prompt_default := false

store_prompt_default := flag if {
	flag := data.data.log.store_prompt.default
	is_boolean(flag)
}

store_prompt_teams[t] := flag if {
	some t, flag in data.data.log.store_prompt.teams
	is_boolean(flag)
}

# store_prompt says whether the inference log keeps the prompt text: the
# team's choice, else the default (data.data.log.store_prompt), else false.
store_prompt := store_prompt_default if count(store_prompt_teams) == 0

store_prompt := object.get(store_prompt_teams, team, store_prompt_default) if count(store_prompt_teams) > 0

# team_tag_table maps every team to its string tags (data only).
team_tag_table[t] := {k: v | some k, v in tags; is_string(v)} if some t, tags in data.data.log.teams

# team_tags are the calling team's log tags (data.data.log.teams.<team>),
# e.g. its cost center.
team_tags := {} if count(team_tag_table) == 0

team_tags := object.get(team_tag_table, team, {}) if count(team_tag_table) > 0

# label_tags copy the API key's labels named in data.data.log.label_tags.
label_tags[k] := v if {
	some k in data.data.log.label_tags
	v := input.identity.labels[k]
	is_string(v)
}

# policy_tags are set by the policies themselves: routing tier, log-only
# guardrail matches.
policy_tags[k] := v if some k, v in routing.tags

policy_tags[k] := v if some k, v in guardrails.tags

# tags are the log tags: team tags, overridden by key labels, overridden by
# the policies' own tags.
tags := label_tags if only_labels

tags := object.union_n([team_tags, label_tags, policy_tags]) if not only_labels

# only_labels is true when neither the team nor the policies can add tags:
# the data alone tells, and routing and guardrails say so in may_tag (a
# module without may_tag may tag), so partial evaluation keeps one of the
# two tags rules.
only_labels if {
	count(team_tag_table) == 0
	routing.may_tag == false
	guardrails.may_tag == false
}

base := {
	"allow": count(deny) == 0,
	"deny": deny,
	"mask": pii.mask,
	"limits": quota.limits,
	"stream": {"cutoff": quota.stream_cutoff},
	"log": {"store_prompt": store_prompt, "tags": tags},
	"params": params,
}

# params are the request parameters the gateway sets: the completion cap
# of guardrails for a request that sets no max_tokens.
default params := {}

params := {"default_max_tokens": n} if n := guardrails.default_max_tokens

# routes holds the route of an allowed request when routing has one (a set,
# so that partial evaluation keeps it one rule however many routes the data
# holds).
routes contains r if {
	allow
	r := routing.route
}

# routing_off is true when routing says, from the data alone, that it routes
# nothing (a routing module without may_route may route).
routing_off if routing.may_route == false

# decision carries a route only when routing has one for an allowed request;
# without it the gateway uses its configured upstream for the model. When the
# data turns routing off, partial evaluation keeps only the first rule.
decision := base if routing_off

decision := base if {
	not routing_off
	count(routes) == 0
}

decision := object.union(base, {"route": r}) if {
	not routing_off
	found := routes
	some r in found
}

# response_decision decides on the model's answer (the response entrypoint,
# evaluated only when the engine found guardrail phrases or signals in it).
response_decision := {"allow": count(guardrails.response_deny) == 0, "deny": guardrails.response_deny}
