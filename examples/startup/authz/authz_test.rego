package tollgate.authz_test

import data.tollgate.authz

test_model_allowed[tc.note] if {
	some tc in [
		{"note": "founder uses anything", "roles": ["founder"], "model": "gpt-4.1", "want": true},
		{"note": "engineer uses gpt-4o", "roles": ["engineer"], "model": "gpt-4o", "want": true},
		{"note": "engineer may not use gpt-4.1", "roles": ["engineer"], "model": "gpt-4.1", "want": false},
		{"note": "contractor uses the small model", "roles": ["contractor"], "model": "gpt-4o-mini", "want": true},
		{"note": "contractor may not use gpt-4o", "roles": ["contractor"], "model": "gpt-4o", "want": false},
		{"note": "no role, no model", "roles": [], "model": "echo", "want": false},
	]
	got := authz.model_allowed with input as {"identity": {"subject": "u", "roles": tc.roles}, "model": {"requested": tc.model}}
	got == tc.want
}

test_deny_message if {
	denies := authz.deny with input as {"identity": {"subject": "kim", "roles": ["contractor"]}, "model": {"requested": "gpt-4o"}}
	denies == {{
		"code": "model_not_allowed",
		"status": 403,
		"message": `"kim" (roles ["contractor"]) may not use model "gpt-4o"; use one of ["echo", "gpt-4o-mini"] or ask a founder for the engineer role`,
	}}
}

test_allowed_actions[tc.note] if {
	some tc in [
		{"note": "founder administers", "roles": ["founder"], "want": {"bundles:read", "keys:read", "keys:write", "quota:read", "quota:write", "usage:read"}},
		{"note": "engineer reads usage", "roles": ["engineer"], "want": {"usage:read"}},
		{"note": "contractor has none", "roles": ["contractor"], "want": set()},
	]
	got := authz.allowed_actions with input as {"identity": {"roles": tc.roles}}
	got == tc.want
}
