package tollgate.guardrails_test

import data.tollgate.guardrails

limits := {
	"max_prompt_tokens": {"default": 1000, "teams": {"finance": 100, "research": 0}},
	"max_completion_tokens": {"default": 4096, "teams": {"finance": 256}},
}

req(team, prompt, params) := {
	"identity": {"team": team},
	"tokens": {"prompt": prompt, "max_completion": 4096},
	"params": params,
}

test_limits[tc.note] if {
	some tc in [
		{"note": "small prompt passes", "team": "ml", "prompt": 1000, "params": {}, "want": set()},
		{"note": "long prompt is refused", "team": "ml", "prompt": 1001, "params": {}, "want": {"prompt_too_long"}},
		{"note": "team limit wins", "team": "finance", "prompt": 101, "params": {}, "want": {"prompt_too_long"}},
		{"note": "zero means no limit", "team": "research", "prompt": 999999, "params": {}, "want": set()},
		{"note": "max_tokens under the cap passes", "team": "ml", "prompt": 10, "params": {"max_tokens": 4096}, "want": set()},
		{"note": "max_tokens over the cap is refused", "team": "ml", "prompt": 10, "params": {"max_tokens": 5000}, "want": {"max_tokens_too_high"}},
		{"note": "team cap wins", "team": "finance", "prompt": 10, "params": {"max_tokens": 300}, "want": {"max_tokens_too_high"}},
		{"note": "no max_tokens set is not refused", "team": "finance", "prompt": 10, "params": {}, "want": set()},
		{"note": "both at once", "team": "finance", "prompt": 500, "params": {"max_tokens": 300}, "want": {"prompt_too_long", "max_tokens_too_high"}},
	]
	denies := guardrails.deny with input as req(tc.team, tc.prompt, tc.params)
		with data.data.guardrails as limits
	{d.code | some d in denies} == tc.want
	every d in denies {
		d.status == 400
	}
}

test_prompt_too_long_message[tc.note] if {
	some tc in [
		{"note": "team", "team": "finance", "prompt": 150, "want": `the prompt has 150 tokens, more than the 100 allowed for team "finance"`},
		{"note": "no team", "team": "", "prompt": 1500, "want": "the prompt has 1500 tokens, more than the 1000 allowed for this gateway"},
	]
	denies := guardrails.deny with input as req(tc.team, tc.prompt, {})
		with data.data.guardrails as limits
	some d in denies
	contains(d.message, tc.want)
	contains(d.message, "shorten")
}

test_max_tokens_message if {
	denies := guardrails.deny with input as req("finance", 10, {"max_tokens": 1000})
		with data.data.guardrails as limits
	some d in denies
	d.message == `max_tokens is 1000, more than the 256 allowed for team "finance"; set max_tokens (or max_completion_tokens) to 256 or less`
}

test_no_guardrail_data_no_deny if {
	denies := guardrails.deny with input as req("ml", 99999999, {"max_tokens": 99999999})
		with data.data.guardrails as {}
	count(denies) == 0
}

phrases := {"blocked_phrases": {
	"prompt_injection": {"category": "prompt injection", "phrases": ["ignore previous instructions"], "message": "remove the instructions that try to override the system prompt", "exempt_teams": ["redteam"]},
	"weapons": {"category": "topic", "phrases": ["build a bomb"]},
	"competitors": {"category": "topic", "phrases": ["acme corp"], "mode": "log", "teams": ["sales", "support"]},
	"salaries": {"phrases": ["salary of"], "mode": "typo", "teams": ["support"]},
}}

signals(team, ids) := {"identity": {"team": team}, "tokens": {"prompt": 1}, "params": {}, "signals": {"matched_phrases": ids}}

test_blocked_phrases[tc.note] if {
	some tc in [
		{"note": "injection is refused", "team": "ml", "ids": ["prompt_injection"], "deny": {"prompt_injection"}, "log": null},
		{"note": "exempt team passes", "team": "redteam", "ids": ["prompt_injection"], "deny": set(), "log": null},
		{"note": "several rules", "team": "ml", "ids": ["prompt_injection", "weapons"], "deny": {"prompt_injection", "weapons"}, "log": null},
		{"note": "log mode only tags", "team": "sales", "ids": ["competitors"], "deny": set(), "log": "competitors"},
		{"note": "team-scoped rule skips other teams", "team": "ml", "ids": ["competitors"], "deny": set(), "log": null},
		{"note": "an unknown mode denies", "team": "support", "ids": ["salaries", "competitors", "weapons"], "deny": {"salaries", "weapons"}, "log": "competitors"},
		{"note": "ids without a rule are ignored", "team": "ml", "ids": ["gone"], "deny": set(), "log": null},
		{"note": "nothing matched", "team": "ml", "ids": [], "deny": set(), "log": null},
	]
	r := signals(tc.team, tc.ids)
	denies := guardrails.deny with input as r with data.data.guardrails as phrases
	{id | some d in denies; d.code == "blocked_content"; some id in tc.ids; contains(d.message, sprintf("%q", [id]))} == tc.deny
	every d in denies {
		d.status == 400
	}
	tags := guardrails.tags with input as r with data.data.guardrails as phrases
	object.get(tags, "guardrail_log", null) == tc.log
}

test_blocked_message[tc.note] if {
	some tc in [
		{"note": "rule's own hint", "id": "prompt_injection", "want": `the request matches the prompt injection guardrail "prompt_injection"; remove the instructions that try to override the system prompt and retry`},
		{"note": "generic hint", "id": "weapons", "want": `the request matches the topic guardrail "weapons"; rephrase it without that content and retry`},
		{"note": "no category", "id": "salaries", "want": `the request matches the content guardrail "salaries"; rephrase it without that content and retry`},
	]
	denies := guardrails.deny with input as signals("support", [tc.id]) with data.data.guardrails as phrases
	{d.message | some d in denies} == {tc.want}
}

test_no_signals_no_deny if {
	denies := guardrails.deny with input as {"identity": {"team": "ml"}, "tokens": {"prompt": 1}, "params": {}}
	count(denies) == 0
}

# The default data: a 128k prompt limit, no max_tokens cap, and a
# prompt-injection rule that denies.
test_default_data[tc.note] if {
	some tc in [
		{"note": "ordinary request passes", "prompt": 500, "params": {"max_tokens": 100000}, "ids": [], "want": set()},
		{"note": "huge prompt refused", "prompt": 128001, "params": {}, "ids": [], "want": {"prompt_too_long"}},
		{"note": "injection refused", "prompt": 10, "params": {}, "ids": ["prompt_injection"], "want": {"blocked_content"}},
	]
	denies := guardrails.deny with input as {"identity": {"team": "ml"}, "tokens": {"prompt": tc.prompt}, "params": tc.params, "signals": {"matched_phrases": tc.ids}}
	{d.code | some d in denies} == tc.want
}

# Every blocked-phrase rule in the data has phrases the engine can match and
# a known mode.
test_data_phrases_valid if {
	every rule in data.data.guardrails.blocked_phrases {
		count(rule.phrases) > 0
		every p in rule.phrases {
			trim_space(p) != ""
		}
		object.get(rule, "mode", "deny") in {"deny", "log"}
	}
}

signal_data := {"signals": {
	"hidden_unicode": {"category": "invisible characters", "message": "remove them", "exempt_teams": ["i18n"]},
	"bidi_control": {"mode": "deny", "teams": ["ml"]},
	"base64_blob": {"category": "an encoded blob", "mode": "log"},
}}

content(team, ids) := {"identity": {"team": team}, "tokens": {"prompt": 1}, "params": {}, "guardrails": {"signals": ids}}

test_content_signals[tc.note] if {
	some tc in [
		{"note": "hidden text is refused", "team": "ml", "ids": ["hidden_unicode"], "deny": {"hidden_unicode"}, "log": null},
		{"note": "exempt team passes", "team": "i18n", "ids": ["hidden_unicode"], "deny": set(), "log": null},
		{"note": "team-scoped rule", "team": "ops", "ids": ["bidi_control"], "deny": set(), "log": null},
		{"note": "team-scoped rule applies", "team": "ml", "ids": ["bidi_control", "hidden_unicode"], "deny": {"bidi_control", "hidden_unicode"}, "log": null},
		{"note": "log mode only tags", "team": "ml", "ids": ["base64_blob"], "deny": set(), "log": "base64_blob"},
		{"note": "a signal without a rule passes", "team": "ml", "ids": ["new_signal"], "deny": set(), "log": null},
	]
	r := content(tc.team, tc.ids)
	denies := guardrails.deny with input as r with data.data.guardrails as signal_data
	{id | some d in denies; some id in tc.ids; contains(d.message, sprintf("%q", [id]))} == tc.deny
	tags := guardrails.tags with input as r with data.data.guardrails as signal_data
	object.get(tags, "guardrail_log", null) == tc.log
}

test_content_signal_message if {
	denies := guardrails.deny with input as content("ml", ["hidden_unicode"]) with data.data.guardrails as signal_data
	{d.message | some d in denies} == {`the request carries invisible characters (guardrail "hidden_unicode"); remove them and retry`}
}

test_default_signal_data[tc.note] if {
	some tc in [
		{"note": "invisible characters refused", "ids": ["hidden_unicode"], "want": {"blocked_content"}},
		{"note": "bidi controls refused", "ids": ["bidi_control"], "want": {"blocked_content"}},
		{"note": "a base64 blob passes (no rule by default)", "ids": ["base64_blob"], "want": set()},
	]
	denies := guardrails.deny with input as content("ml", tc.ids)
	{d.code | some d in denies} == tc.want
}

test_data_signals_valid if {
	every id, rule in data.data.guardrails.signals {
		id in {"hidden_unicode", "bidi_control", "base64_blob"}
		object.get(rule, "mode", "deny") in {"deny", "log"}
	}
}

moderated(verdict) := {"identity": {"team": "ml"}, "tokens": {"prompt": 1}, "params": {}, "moderation": verdict}

test_moderation[tc.note] if {
	some tc in [
		{"note": "flagged is denied", "verdict": {"checked": true, "flagged": true, "categories": ["harassment", "violence"]}, "data": {}, "want": {"content_flagged"}},
		{"note": "clean passes", "verdict": {"checked": true, "flagged": false, "categories": []}, "data": {}, "want": set()},
		{"note": "flagged allowed by data", "verdict": {"checked": true, "flagged": true, "categories": ["violence"]}, "data": {"moderation": {"deny_flagged": false}}, "want": set()},
		{"note": "unavailable passes by default", "verdict": {"unavailable": true}, "data": {}, "want": set()},
		{"note": "unavailable denied when required", "verdict": {"unavailable": true}, "data": {"moderation": {"deny_unavailable": true}}, "want": {"moderation_unavailable"}},
	]
	denies := guardrails.deny with input as moderated(tc.verdict) with data.data.guardrails as tc.data
	{d.code | some d in denies} == tc.want
}

test_moderation_message if {
	denies := guardrails.deny with input as moderated({"flagged": true, "categories": ["harassment", "violence"]}) with data.data.guardrails as {}
	{d.message | some d in denies} == {"the moderation service flagged the request (harassment, violence); rephrase it and retry"}
}

test_default_max_tokens[tc.note] if {
	some tc in [
		{"note": "team cap for a request without max_tokens", "team": "finance", "params": {}, "want": 256},
		{"note": "default cap", "team": "ml", "params": {}, "want": 4096},
	]
	got := guardrails.default_max_tokens with input as req(tc.team, 10, tc.params) with data.data.guardrails as limits
	got == tc.want
}

test_default_max_tokens_absent if {
	not guardrails.default_max_tokens with input as req("finance", 10, {"max_tokens": 100}) with data.data.guardrails as limits
	not guardrails.default_max_tokens with input as req("ml", 10, {}) with data.data.guardrails as {}
}

response_data := {
	"blocked_phrases": {
		"secret_project": {"category": "confidential", "phrases": ["project falcon"], "responses": true},
		"injection": {"phrases": ["ignore previous instructions"]},
	},
	"signals": {"hidden_unicode": {"responses": true, "exempt_teams": ["i18n"]}, "base64_blob": {"responses": true, "mode": "log"}},
}

answer(team, phrases, signals) := {"identity": {"team": team}, "response": {"matched_phrases": phrases, "signals": signals}}

test_response_guardrails[tc.note] if {
	some tc in [
		{"note": "a phrase rule for answers blocks", "team": "ml", "phrases": ["secret_project"], "signals": [], "want": {"secret_project"}},
		{"note": "a phrase rule for requests only does not", "team": "ml", "phrases": ["injection"], "signals": [], "want": set()},
		{"note": "hidden text in an answer blocks", "team": "ml", "phrases": [], "signals": ["hidden_unicode"], "want": {"hidden_unicode"}},
		{"note": "exempt team", "team": "i18n", "phrases": [], "signals": ["hidden_unicode"], "want": set()},
		{"note": "log mode does not block", "team": "ml", "phrases": [], "signals": ["base64_blob"], "want": set()},
	]
	denies := guardrails.response_deny with input as answer(tc.team, tc.phrases, tc.signals) with data.data.guardrails as response_data
	{id | some d in denies; some id in array.concat(tc.phrases, tc.signals); contains(d.message, sprintf("%q", [id]))} == tc.want
	every d in denies {
		d.code == "response_blocked"
		d.status == 502
	}
}
