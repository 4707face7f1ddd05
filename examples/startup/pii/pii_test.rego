package tollgate.pii_test

import data.tollgate.pii

test_mask[tc.note] if {
	some tc in [
		{"note": "every type is redacted", "types": ["CREDIT_CARD", "EMAIL", "PHONE", "US_SSN"], "want": [{"types": ["CREDIT_CARD", "EMAIL", "PHONE", "US_SSN"], "action": "redact"}]},
		{"note": "nothing found, no rule", "types": [], "want": []},
	]
	got := pii.mask with input as {"pii": {"types": tc.types}}
	got == {"rules": tc.want, "response": false}
}
