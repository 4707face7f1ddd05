package tollgate.quota_test

import data.tollgate.quota

test_key_limit[tc.note] if {
	some tc in [
		{"note": "default limit", "key": "k_a", "want": 200000},
		{"note": "key's own limit", "key": "k_small", "want": 50},
	]
	got := quota.limits with input as {"identity": {"key_id": tc.key}}
		with data.data.quota.keys as {"k_small": {"tokens_per_minute": 50}}
	got == {{"scope": concat(":", ["key", tc.key]), "window": "minute", "tokens": tc.want}}
}

test_no_key_no_limit if {
	got := quota.limits with input as {"identity": {"key_id": ""}}
	count(got) == 0
}

test_zero_rate_is_no_limit[tc.note] if {
	some tc in [
		{"note": "zero default", "quota": {"default_key_tokens_per_minute": 0, "keys": {}}},
		{"note": "no default", "quota": {"keys": {}}},
		{"note": "key set to zero", "quota": {"default_key_tokens_per_minute": 10, "keys": {"k_1": {"tokens_per_minute": 0}}}},
	]
	got := quota.limits with input as {"identity": {"key_id": "k_1"}}
		with data.data.quota as tc.quota
	count(got) == 0
}

# The default data adds only the per-key rate to a request, so an API key
# without configured budgets gets exactly one limit.
test_default_data_one_limit if {
	got := quota.limits with input as {"identity": {"key_id": "k_1", "subject": "ana", "team": "ml"}}
	got == {{"scope": "key:k_1", "window": "minute", "tokens": 200000}}
}

budgets := {
	"keys": {"k_1": {"minute": {"tokens": 1000, "requests": 10}, "day": {"usd": 2.5}}},
	"users": {
		"ana": {"day": {"tokens": 50000}},
		"*": {"month": {"usd": 20}},
	},
	"teams": {
		"ml": {"day": {"tokens": 2000000, "usd": 50.0}, "month": {"usd": 1000}},
		"fin": {"hour": {"requests": 0, "tokens": -5}, "fortnight": {"tokens": 5}, "day": {"tokens": "lots"}},
	},
}

id(key, subject, team) := {"identity": {"key_id": key, "subject": subject, "team": team}}

test_budgets[tc.note] if {
	some tc in [
		{
			"note": "key, user and team budgets together",
			"input": id("k_1", "ana", "ml"),
			"want": {
				{"scope": "key:k_1", "window": "minute", "tokens": 1000, "requests": 10},
				{"scope": "key:k_1", "window": "day", "usd": 2.5},
				{"scope": "user:ana", "window": "day", "tokens": 50000},
				{"scope": "team:ml", "window": "day", "tokens": 2000000, "usd": 50.0},
				{"scope": "team:ml", "window": "month", "usd": 1000},
			},
		},
		{
			"note": "users without a budget take the * budget",
			"input": id("k_2", "bo", "other"),
			"want": {
				{"scope": "key:k_2", "window": "minute", "tokens": 200000},
				{"scope": "user:bo", "window": "month", "usd": 20},
			},
		},
		{
			"note": "zero, negative, non-numeric amounts and unknown windows set nothing",
			"input": id("", "ana", "fin"),
			"want": {{"scope": "user:ana", "window": "day", "tokens": 50000}},
		},
		{
			"note": "empty ids have no scope",
			"input": id("", "", ""),
			"want": set(),
		},
	]
	got := quota.limits with input as tc.input with data.data.budgets as budgets
	got == tc.want
}

test_same_scope_and_window_take_the_smaller_amount[tc.note] if {
	some tc in [
		{"note": "budget below the key rate", "budget": 1000, "want": 1000},
		{"note": "key rate below the budget", "budget": 900000, "want": 200000},
	]
	got := quota.limits with input as id("k_1", "", "")
		with data.data.budgets as {"keys": {"k_1": {"minute": {"tokens": tc.budget, "requests": 10}}}}
	got == {{"scope": "key:k_1", "window": "minute", "tokens": tc.want, "requests": 10}}
}

test_stream_cutoff[tc.note] if {
	some tc in [
		{"note": "on", "budgets": {"stream_cutoff": true}, "want": true},
		{"note": "off", "budgets": {"stream_cutoff": false}, "want": false},
		{"note": "not set", "budgets": {}, "want": false},
	]
	got := quota.stream_cutoff with data.data.budgets as tc.budgets
	got == tc.want
}

# The default data configures budgets only for teams and users the gateway's
# tests do not use, with known windows and positive amounts.
test_data_budgets_valid if {
	every section in ["keys", "users", "teams"] {
		every budget in object.get(data.data.budgets, section, {}) {
			every window, amounts in budget {
				window in quota.windows
				every kind, amount in amounts {
					kind in quota.amount_kinds
					amount > 0
				}
			}
		}
	}
	every team in ["ml", "search", "finance", "perf", "demo"] {
		not data.data.budgets.teams[team]
	}
	not data.data.budgets.teams["*"]
	not data.data.budgets.users["*"]
	not data.data.budgets.keys["*"]
}
