package tollgate.pii_test

import data.tollgate.pii

test_mask[tc.note] if {
	some tc in [
		{
			"note": "support keeps placeholders and blocks card numbers",
			"team": "support", "types": ["CREDIT_CARD", "EMAIL", "PHONE"],
			"want": {"rules": {{"types": ["EMAIL", "PHONE"], "action": "placeholder"}, {"types": ["CREDIT_CARD"], "action": "block"}}, "response": true},
		},
		{
			"note": "finance blocks SSNs, redacts the rest",
			"team": "finance", "types": ["EMAIL", "US_SSN"],
			"want": {"rules": {{"types": ["EMAIL"], "action": "redact"}, {"types": ["US_SSN"], "action": "block"}}, "response": true},
		},
		{
			"note": "other teams redact, responses untouched",
			"team": "ml", "types": ["CREDIT_CARD", "EMAIL"],
			"want": {"rules": {{"types": ["CREDIT_CARD", "EMAIL"], "action": "redact"}}, "response": false},
		},
	]
	got := pii.mask with input as {"identity": {"team": tc.team}, "pii": {"types": tc.types}}
	got == tc.want
}

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
