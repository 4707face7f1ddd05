# Package tollgate.quota returns the limits the gateway enforces for a
# request. Amounts live in data: data.data.quota holds the token rate per API
# key, data.data.budgets the token, request and USD budgets per key, user and
# team. The gateway reserves them atomically before the call and reconciles
# with real usage after it.
#
# data.data.budgets:
#
#   {"keys":  {"<key id>":  {"<window>": {"tokens": N, "requests": N, "usd": X}}},
#    "users": {"<subject>": {...}},
#    "teams": {"<team>":    {...}},
#    "stream_cutoff": true}
#
# The entry "*" of keys, users or teams applies to every key, user or team
# without an entry of its own. Scopes are "key:<id>", "user:<subject>" and
# "team:<team>"; windows are minute, hour, day and month (others are
# ignored); an amount that is missing or not above zero sets no limit.
package tollgate.quota

# windows are the limit windows the gateway knows.
windows := ["minute", "hour", "day", "month"]

# amount_kinds are the amounts a limit may carry.
amount_kinds := ["tokens", "requests", "usd"]

# key_tokens_per_minute is the key's own limit, else the default.
key_tokens_per_minute := n if {
	n := data.data.quota.keys[input.identity.key_id].tokens_per_minute
} else := data.data.quota.default_key_tokens_per_minute

key_scope := concat(":", ["key", input.identity.key_id])

# positive is true for numbers above zero; zero or a missing amount means
# no limit.
positive(n) if {
	is_number(n)
	n > 0
}

# amounts keeps the known, positive amounts of one budget window.
amounts(window) := {kind: n |
	some kind in amount_kinds
	n := window[kind]
	positive(n)
}

# budget_for returns the budget of id in section (keys, users, teams), else
# the section's "*" budget.
budget_for(section, id) := budget if {
	budget := data.data.budgets[section][id]
} else := data.data.budgets[section]["*"]

# budgets holds [scope, budget] for every principal scope with a budget.
budgets contains [concat(":", [prefix, id]), budget] if {
	some [section, prefix, id] in [
		["keys", "key", input.identity.key_id],
		["users", "user", input.identity.subject],
		["teams", "team", input.identity.team],
	]
	id != ""
	budget := budget_for(section, id)
}

# key_minute_budget holds the key's minute budget amounts ({} when none).
key_minute_budget := amounts(budget.minute) if {
	input.identity.key_id != ""
	budget := budget_for("keys", input.identity.key_id)
} else := {}

# key_minute merges the key's token rate into its minute budget: when both
# set tokens, the smaller wins.
key_minute := object.union(key_minute_budget, {"tokens": min(tokens)}) if {
	tokens := {n |
		some n in [key_tokens_per_minute, object.get(key_minute_budget, "tokens", 0)]
		positive(n)
	}
	count(tokens) > 0
} else := key_minute_budget

# limits is the limits part of the decision: one limit per scope and window,
# holding every amount configured for it.
limits contains object.union({"scope": key_scope, "window": "minute"}, key_minute) if {
	input.identity.key_id != ""
	count(key_minute) > 0
}

limits contains object.union({"scope": scope, "window": window}, set) if {
	some [scope, budget] in budgets
	some window in windows
	not key_minute_scope(scope, window)
	set := amounts(budget[window])
	count(set) > 0
}

key_minute_scope(scope, "minute") if scope == key_scope

default stream_cutoff := false

# stream_cutoff asks the gateway to end a stream when a budget runs out
# mid-answer, instead of letting it finish and going over.
stream_cutoff if data.data.budgets.stream_cutoff == true
