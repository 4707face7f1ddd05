package tollgate.quota_test

import data.tollgate.quota

test_limits[tc.note] if {
	some tc in [
		{
			"note": "product has a team budget",
			"identity": {"key_id": "k_1", "team": "product"},
			"want": {
				{"scope": "key:k_1", "window": "minute", "tokens": 100000},
				{"scope": "team:product", "window": "day", "usd": 25},
				{"scope": "team:product", "window": "month", "usd": 300},
			},
		},
		{
			"note": "other teams only have the key rate",
			"identity": {"key_id": "k_2", "team": "growth"},
			"want": {{"scope": "key:k_2", "window": "minute", "tokens": 100000}},
		},
		{
			"note": "no key, no team: no limit",
			"identity": {"key_id": "", "team": ""},
			"want": set(),
		},
	]
	got := quota.limits with input as {"identity": tc.identity}
	got == tc.want
}

# Budgets use windows and amounts the gateway knows.
test_data_budgets_valid if {
	every budget in data.data.budgets.teams {
		every window, amounts in budget {
			window in {"minute", "hour", "day", "month"}
			count(amounts) > 0
			every kind, amount in amounts {
				kind in {"tokens", "requests", "usd"}
				amount > 0
			}
		}
	}
}
