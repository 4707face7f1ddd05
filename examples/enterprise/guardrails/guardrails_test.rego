package tollgate.guardrails_test

import data.tollgate.guardrails

req(team, prompt, max_tokens, ids) := {
	"identity": {"team": team},
	"tokens": {"prompt": prompt},
	"params": {"max_tokens": max_tokens},
	"signals": {"matched_phrases": ids},
}

test_guardrails[tc.note] if {
	some tc in [
		{"note": "ordinary request", "team": "support", "prompt": 2000, "max": 1000, "ids": [], "want": set()},
		{"note": "finance prompt limit", "team": "finance", "prompt": 16001, "max": 100, "ids": [], "want": {"prompt_too_long"}},
		{"note": "ml may send long prompts", "team": "ml", "prompt": 100000, "max": 100, "ids": [], "want": set()},
		{"note": "default prompt limit", "team": "support", "prompt": 64001, "max": 100, "ids": [], "want": {"prompt_too_long"}},
		{"note": "finance max_tokens cap", "team": "finance", "prompt": 10, "max": 4096, "ids": [], "want": {"max_tokens_too_high"}},
		{"note": "default max_tokens cap", "team": "ml", "prompt": 10, "max": 8193, "ids": [], "want": {"max_tokens_too_high"}},
		{"note": "prompt injection", "team": "support", "prompt": 10, "max": 100, "ids": ["prompt_injection"], "want": {"blocked_content"}},
		{"note": "security may test injections", "team": "security", "prompt": 10, "max": 100, "ids": ["prompt_injection"], "want": set()},
		{"note": "secrets are refused everywhere", "team": "security", "prompt": 10, "max": 100, "ids": ["credentials"], "want": {"blocked_content"}},
		{"note": "confidential topic is only logged", "team": "finance", "prompt": 10, "max": 100, "ids": ["project_falcon"], "want": set()},
	]
	denies := guardrails.deny with input as req(tc.team, tc.prompt, tc.max, tc.ids)
	{d.code | some d in denies} == tc.want
}

test_messages[tc.note] if {
	some tc in [
		{"note": "prompt", "team": "finance", "prompt": 20000, "max": 100, "ids": [], "want": `the prompt has 20000 tokens, more than the 16000 allowed for team "finance"`},
		{"note": "max_tokens", "team": "finance", "prompt": 10, "max": 3000, "ids": [], "want": "set max_tokens (or max_completion_tokens) to 2048 or less"},
		{"note": "secret", "team": "ml", "prompt": 10, "max": 100, "ids": ["credentials"], "want": "remove the private key or secret from the prompt and rotate it"},
	]
	denies := guardrails.deny with input as req(tc.team, tc.prompt, tc.max, tc.ids)
	some d in denies
	contains(d.message, tc.want)
}

test_log_tags[tc.note] if {
	some tc in [
		{"note": "finance match is tagged", "team": "finance", "want": {"guardrail_log": "project_falcon"}},
		{"note": "support is not covered", "team": "support", "want": {}},
	]
	got := guardrails.tags with input as req(tc.team, 10, 100, ["project_falcon"])
	got == tc.want
}

test_data_phrases_valid if {
	every rule in data.data.guardrails.blocked_phrases {
		count(rule.phrases) > 0
		every p in rule.phrases {
			p == lower(trim_space(p))
		}
		object.get(rule, "mode", "deny") in {"deny", "log"}
	}
}
