package tollgate.pii_test

import data.tollgate.pii

test_default_actions if {
	got := pii.mask with input as {"identity": {"team": "ml"}, "pii": {"types": ["EMAIL", "CREDIT_CARD"]}}
	got == {"rules": {{"types": ["CREDIT_CARD", "EMAIL"], "action": "redact"}}, "response": false}
}

test_team_override[tc.note] if {
	some tc in [
		{"note": "team choice wins", "team": "support", "want": {{"types": ["EMAIL"], "action": "placeholder"}, {"types": ["US_SSN"], "action": "redact"}}},
		{"note": "other team keeps default", "team": "ml", "want": {{"types": ["EMAIL", "US_SSN"], "action": "redact"}}},
	]
	got := pii.rules with input as {"identity": {"team": tc.team}, "pii": {"types": ["EMAIL", "US_SSN"]}}
		with data.data.pii.teams as {"support": {"EMAIL": "placeholder"}}
	got == tc.want
}

test_no_findings_no_rules if {
	got := pii.rules with input as {"identity": {"team": "ml"}, "pii": {"types": []}}
	count(got) == 0
}

test_unknown_type_has_no_action if {
	got := pii.actions with input as {"identity": {"team": "ml"}, "pii": {"types": ["SOMETHING_NEW"]}}
	got == {}
}
