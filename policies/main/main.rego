# Package tollgate.main assembles the decision the gateway enforces
# (entrypoint data.tollgate.main.decision). See policies/README.md for the
# contract. Each domain package contributes its part: authz, guardrails and
# routing deny; pii masks; quota limits; routing routes. A domain module left
# out of a bundle contributes nothing.
package tollgate.main

import data.tollgate.authz
import data.tollgate.guardrails
import data.tollgate.pii
import data.tollgate.quota
import data.tollgate.routing

deny contains d if some d in authz.deny

deny contains d if some d in guardrails.deny

deny contains d if some d in routing.deny

default allow := false

allow if count(deny) == 0

# store_prompt says whether the inference log keeps the prompt text: the
# team's choice, else the default (data.data.log.store_prompt), else false.
store_prompt := flag if {
	flag := data.data.log.store_prompt.teams[input.identity.team]
	is_boolean(flag)
} else := flag if {
	flag := data.data.log.store_prompt.default
	is_boolean(flag)
} else := false

# team_tags are the calling team's log tags (data.data.log.teams.<team>),
# e.g. its cost center.
team_tags[k] := v if {
	some k, v in data.data.log.teams[input.identity.team]
	is_string(v)
}

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
tags := object.union_n([team_tags, label_tags, policy_tags])

base := {
	"allow": allow,
	"deny": deny,
	"mask": pii.mask,
	"limits": quota.limits,
	"stream": {"cutoff": quota.stream_cutoff},
	"log": {"store_prompt": store_prompt, "tags": tags},
}

# decision carries a route only when routing has one for an allowed request;
# without it the gateway uses its configured upstream for the model.
decision := object.union(base, {"route": r}) if {
	allow
	r := routing.route
} else := base
