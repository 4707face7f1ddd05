package tollgate.pii_test

import data.tollgate.pii

test_default_actions if {
	got := pii.mask with input as {"identity": {"team": "ml"}, "pii": {"types": ["EMAIL", "CREDIT_CARD"]}}
	got == {"rules": {{"types": ["CREDIT_CARD", "EMAIL"], "action": "redact"}}, "response": false}
}

test_default_redacts_every_detected_type if {
	got := pii.rules with input as {"identity": {"team": "ml"}, "pii": {"types": ["CREDIT_CARD", "EMAIL", "PHONE", "US_SSN"]}}
	got == {{"types": ["CREDIT_CARD", "EMAIL", "PHONE", "US_SSN"], "action": "redact"}}
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

test_response[tc.note] if {
	some tc in [
		{"note": "team flag wins", "team": "support", "response": {"default": false, "teams": {"support": true}}, "want": true},
		{"note": "team may opt out of a default", "team": "support", "response": {"default": true, "teams": {"support": false}}, "want": false},
		{"note": "other team takes the default", "team": "ml", "response": {"default": true, "teams": {"support": false}}, "want": true},
		{"note": "no data means false", "team": "ml", "response": {}, "want": false},
		{"note": "a non-boolean flag is ignored", "team": "ml", "response": {"default": "yes"}, "want": false},
	]
	got := pii.mask.response with input as {"identity": {"team": tc.team}, "pii": {"types": []}}
		with data.data.pii.response as tc.response
	got == tc.want
}

# The default data names only actions the gateway knows.
test_data_actions_known if {
	actions := {"redact", "placeholder", "hash", "block"}
	every a in data.data.pii.default {
		a in actions
	}
	every team in data.data.pii.teams {
		every a in team {
			a in actions
		}
	}
}
