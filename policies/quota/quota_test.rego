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
