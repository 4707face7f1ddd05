package tollgate.authz_test

import data.tollgate.authz

test_model_allowed[tc.note] if {
	some tc in [
		{"note": "developer may use a small model", "roles": ["developer"], "model": "gpt-4o-mini", "want": true},
		{"note": "developer may use a large model", "roles": ["developer"], "model": "gpt-4o", "want": true},
		{"note": "analyst may not use a large model", "roles": ["analyst"], "model": "gpt-4o", "want": false},
		{"note": "admin may use anything", "roles": ["admin"], "model": "some-new-model", "want": true},
		{"note": "several roles combine", "roles": ["analyst", "developer"], "model": "gpt-4.1", "want": true},
		{"note": "unknown role allows nothing", "roles": ["intern"], "model": "echo", "want": false},
	]
	got := authz.model_allowed with input as {"identity": {"subject": "u", "roles": tc.roles}, "model": {"requested": tc.model}}
	got == tc.want
}

test_deny_model_not_allowed if {
	denies := authz.deny with input as {"identity": {"subject": "ana", "roles": ["analyst"]}, "model": {"requested": "gpt-4o"}}
	some d in denies
	d.code == "model_not_allowed"
	d.status == 403
	contains(d.message, "gpt-4o")
	contains(d.message, "ana")
}

test_deny_no_role if {
	denies := authz.deny with input as {"identity": {"subject": "svc", "roles": []}, "model": {"requested": "echo"}}
	{d.code | some d in denies} == {"no_role"}
}

test_allowed_has_no_deny if {
	denies := authz.deny with input as {"identity": {"subject": "dev", "roles": ["developer"]}, "model": {"requested": "echo"}}
	count(denies) == 0
}

test_allowed_models_from_data if {
	got := authz.allowed_models with input as {"identity": {"roles": ["analyst"]}}
		with data.data.access.roles as {"analyst": {"model_groups": ["g"]}}
		with data.data.access.model_groups as {"g": ["m1", "m2"]}
	got == {"m1", "m2"}
}
