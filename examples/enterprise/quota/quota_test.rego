package tollgate.quota_test

import data.tollgate.quota

test_limits[tc.note] if {
	some tc in [
		{
			"note": "ml engineer",
			"id": {"key_id": "k_ana", "subject": "ana", "team": "ml"},
			"want": {
				{"scope": "key:k_ana", "window": "minute", "tokens": 100000, "requests": 120},
				{"scope": "user:ana", "window": "day", "usd": 20},
				{"scope": "team:ml", "window": "day", "tokens": 20000000, "usd": 500},
				{"scope": "team:ml", "window": "month", "usd": 8000},
			},
		},
		{
			"note": "the cto has a larger daily budget",
			"id": {"key_id": "k_cto", "subject": "cto", "team": "platform"},
			"want": {
				{"scope": "key:k_cto", "window": "minute", "tokens": 100000, "requests": 120},
				{"scope": "user:cto", "window": "day", "usd": 200},
			},
		},
		{
			"note": "search service",
			"id": {"key_id": "k_idx", "subject": "search-indexer", "team": "search"},
			"want": {
				{"scope": "key:k_idx", "window": "minute", "tokens": 100000, "requests": 120},
				{"scope": "user:search-indexer", "window": "day", "usd": 300},
				{"scope": "team:search", "window": "day", "tokens": 50000000},
				{"scope": "team:search", "window": "month", "usd": 5000},
			},
		},
		{
			"note": "support counts requests per hour",
			"id": {"key_id": "k_sue", "subject": "sue", "team": "support"},
			"want": {
				{"scope": "key:k_sue", "window": "minute", "tokens": 100000, "requests": 120},
				{"scope": "user:sue", "window": "day", "usd": 20},
				{"scope": "team:support", "window": "hour", "requests": 5000},
				{"scope": "team:support", "window": "month", "usd": 2000},
			},
		},
	]
	got := quota.limits with input as {"identity": tc.id}
	got == tc.want
}

test_stream_cutoff if {
	quota.stream_cutoff
}

test_data_budgets_valid if {
	every section in ["keys", "users", "teams"] {
		every budget in data.data.budgets[section] {
			every window, amounts in budget {
				window in quota.windows
				every kind, amount in amounts {
					kind in quota.amount_kinds
					amount > 0
				}
			}
		}
	}
}
