package tollgate.main_test

import data.tollgate.main

request(roles, model, types) := {
	"version": "1",
	"identity": {"subject": "ana", "key_id": "k_1", "team": "ml", "roles": roles},
	"model": {"requested": model},
	"pii": {"types": types},
}

test_allowed_decision if {
	d := main.decision with input as request(["developer"], "echo", ["EMAIL"])
	d.allow
	count(d.deny) == 0
	d.mask.rules == {{"types": ["EMAIL"], "action": "redact"}}
	d.limits == {{"scope": "key:k_1", "window": "minute", "tokens": 200000}}
	d.log.store_prompt == false
}

test_denied_decision if {
	d := main.decision with input as request(["analyst"], "gpt-4o", [])
	not d.allow
	{x.code | some x in d.deny} == {"model_not_allowed"}
}
