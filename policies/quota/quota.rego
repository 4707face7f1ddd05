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
#
# Every limit a key, user or team can get is computed from data alone, once
# per bundle when the gateway partially evaluates the library (the tables
# marked "data only"); a request looks its ids up in them.
package tollgate.quota

# windows are the limit windows the gateway knows.
windows := ["minute", "hour", "day", "month"]

# amount_kinds are the amounts a limit may carry.
amount_kinds := ["tokens", "requests", "usd"]

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

# budget_of returns the budget of id in section (keys, users, teams) in a
# list of one, else the section's "*" budget, else an empty list (data
# only).
budget_of(section, id) := [budget] if {
	budget := data.data.budgets[section][id]
} else := [budget] if {
	budget := data.data.budgets[section]["*"]
} else := []

# rate_of returns the tokens_per_minute of key id in a list of one: the key's
# own, else the default, else an empty list (data only).
rate_of(id) := [n] if {
	n := data.data.quota.keys[id].tokens_per_minute
} else := [n] if {
	n := data.data.quota.default_key_tokens_per_minute
} else := []

# key_minute_of merges a key's token rate into its minute budget amounts:
# when both set tokens, the smaller wins (data only).
key_minute_of(rates, budgets) := object.union(minute, {"tokens": min(tokens)}) if {
	minute := minute_amounts(budgets)
	tokens := {n |
		some rate in rates
		some n in [rate, object.get(minute, "tokens", 0)]
		positive(n)
	}
	count(tokens) > 0
} else := minute_amounts(budgets)

minute_amounts(budgets) := m if {
	some budget in budgets
	m := amounts(budget.minute)
} else := {}

# rows returns the limits of a budget without their scope, one per window
# with amounts (data only). A key's minute budget is left out: key_minute
# holds it.
rows(section, budgets) := {object.union({"window": window}, set) |
	some budget in budgets
	some window in windows
	not skipped(section, window)
	set := amounts(budget[window])
	count(set) > 0
}

skipped("keys", "minute")

# key_ids are the keys with a token rate or budget of their own (data only).
key_ids contains id if some id, _ in data.data.quota.keys

key_ids contains id if some id, _ in data.data.budgets.keys

# key_minutes maps every key in key_ids to the amounts of its minute limit;
# key_minute_default applies to every other key (data only).
key_minutes[id] := key_minute_of(rate_of(id), budget_of("keys", id)) if some id in key_ids

key_minute_default := key_minute_of(data_default_rate, star_budget("keys"))

data_default_rate := [n] if {
	n := data.data.quota.default_key_tokens_per_minute
} else := []

star_budget(section) := [budget] if {
	budget := data.data.budgets[section]["*"]
} else := []

# budget_rows maps section → id → the id's limits without scope; star_rows
# maps section → the limits of every id without its own entry (data only).
budget_rows[section][id] := rows(section, budget_of(section, id)) if {
	some section in ["keys", "users", "teams"]
	some id, _ in data.data.budgets[section]
}

star_rows[section] := rows(section, star_budget(section)) if some section in ["keys", "users", "teams"]

# has_budgets is true for the sections with any entry (data only).
has_budgets(section) if count(object.get(data.data, ["budgets", section], {})) > 0

# no_key_entries is true when no key has a rate or budget of its own (data
# only).
no_key_entries if {
	count(object.get(data.data, ["quota", "keys"], {})) == 0
	count(object.get(data.data, ["budgets", "keys"], {})) == 0
}

key_scope := concat(":", ["key", input.identity.key_id])

# key_minute is the key's minute limit amounts ({} when none).
key_minute := object.get(key_minutes, input.identity.key_id, key_minute_default)

# uniform_key_tokens is every key's minute token limit when all keys share
# it and it carries no other amount, as with the default data (data only).
uniform_key_tokens := key_minute_default.tokens if {
	no_key_entries
	object.keys(key_minute_default) == {"tokens"}
}

# limits is the limits part of the decision: one limit per scope and window,
# holding every amount configured for it.
limits contains {"scope": key_scope, "window": "minute", "tokens": uniform_key_tokens} if input.identity.key_id != ""

limits contains object.union({"scope": key_scope, "window": "minute"}, key_minute) if {
	not uniform_key_tokens
	input.identity.key_id != ""
	count(key_minute) > 0
}

limits contains object.union({"scope": concat(":", [prefix, id])}, row) if {
	some [section, prefix, id] in [
		["keys", "key", input.identity.key_id],
		["users", "user", input.identity.subject],
		["teams", "team", input.identity.team],
	]
	has_budgets(section)
	id != ""
	some row in object.get(budget_rows, [section, id], star_rows[section])
}

default stream_cutoff := false

# stream_cutoff asks the gateway to end a stream when a budget runs out
# mid-answer, instead of letting it finish and going over.
stream_cutoff if data.data.budgets.stream_cutoff == true
