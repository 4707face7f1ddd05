package tollgate.main_test

import data.tollgate.main

request(subject, roles, model, types) := {
	"version": "1",
	"identity": {"subject": subject, "kind": "user", "key_id": "k_1", "team": "product", "roles": roles},
	"model": {"requested": model},
	"pii": {"types": types},
}

test_decision[tc.note] if {
	some tc in [
		{
			"note": "engineer with an email in the prompt",
			"input": request("sam", ["engineer"], "gpt-4o", ["EMAIL"]),
			"want": {
				"allow": true,
				"deny": set(),
				"mask": {"rules": [{"types": ["EMAIL"], "action": "redact"}], "response": false},
				"limits": {
					{"scope": "key:k_1", "window": "minute", "tokens": 100000},
					{"scope": "team:product", "window": "day", "usd": 25},
					{"scope": "team:product", "window": "month", "usd": 300},
				},
				"stream": {"cutoff": true},
				"log": {"store_prompt": false, "tags": {}},
			},
		},
	]
	got := main.decision with input as tc.input
	got == tc.want
}

test_contractor_denied_large_model if {
	d := main.decision with input as request("kim", ["contractor"], "gpt-4o", [])
	not d.allow
	{x.code | some x in d.deny} == {"model_not_allowed"}
}

test_founder_allowed_anything if {
	d := main.decision with input as request("maya", ["founder"], "gpt-4.1", ["US_SSN", "CREDIT_CARD"])
	d.allow
	d.mask.rules == [{"types": ["US_SSN", "CREDIT_CARD"], "action": "redact"}]
}
