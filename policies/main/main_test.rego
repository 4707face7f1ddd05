package tollgate.main_test

import data.tollgate.main

request(roles, model, types) := {
	"version": "1",
	"request": {"id": "req_1", "path": "/v1/chat/completions", "stream": false, "headers": {}},
	"identity": {"subject": "ana", "kind": "user", "key_id": "k_1", "team": "ml", "roles": roles, "labels": {}},
	"model": {"requested": model},
	"tokens": {"prompt": 20, "max_completion": 4096, "estimated_total": 4116},
	"params": {"tools": 0, "messages": 1},
	"pii": {"types": types},
	"complexity": {"score": 0, "signals": {"turns": 1, "code": false}},
}

test_allowed_decision if {
	d := main.decision with input as request(["developer"], "echo", ["EMAIL"])
	d == {
		"allow": true,
		"deny": set(),
		"mask": {"rules": {{"types": ["EMAIL"], "action": "redact"}}, "response": false},
		"limits": {{"scope": "key:k_1", "window": "minute", "tokens": 200000}},
		"stream": {"cutoff": false},
		"log": {"store_prompt": false, "tags": {}},
		"params": {},
	}
}

# A guardrail cap on max_tokens becomes the default of a request that sets
# none.
test_default_max_tokens if {
	d := main.decision with input as request(["developer"], "echo", [])
		with data.data.guardrails.max_completion_tokens as {"default": 1024}
	d.params == {"default_max_tokens": 1024}
}

test_denied_decision if {
	d := main.decision with input as request(["analyst"], "gpt-4o", [])
	not d.allow
	{x.code | some x in d.deny} == {"model_not_allowed"}
}

test_denials_combine if {
	r := object.union(request(["analyst"], "gpt-4o", []), {"tokens": {"prompt": 200000}, "signals": {"matched_phrases": ["prompt_injection"]}})
	d := main.decision with input as r
	not d.allow
	{x.code | some x in d.deny} == {"model_not_allowed", "prompt_too_long", "blocked_content"}
}

# The gateway's smoke input: a service with no roles asking for an unknown
# model must get a valid, denying decision.
test_smoke_input if {
	d := main.decision with input as {
		"version": "1",
		"request": {"id": "smoke", "path": "/v1/chat/completions", "stream": false, "received_at": "1970-01-01T00:00:00Z", "client_ip": "", "headers": {}},
		"identity": {"subject": "smoke", "kind": "service", "auth": "api_key", "key_id": "k_smoke", "team": "", "org": "", "roles": [], "groups": [], "labels": {}, "chain": []},
		"model": {"requested": "smoke", "provider_hint": ""},
		"params": {"tools": 0, "messages": 0},
		"tokens": {"prompt": 1, "max_completion": 1, "estimated_total": 2},
		"pii": {"types": [], "findings": []},
		"complexity": {"score": 0, "signals": {"turns": 0, "code": false}},
	}
	not d.allow
	{x.code | some x in d.deny} == {"model_not_allowed"}
	object.keys(d) == {"allow", "deny", "mask", "limits", "stream", "log", "params"}
}

routing := {
	"enabled": true,
	"auto_models": ["auto"],
	"preferences": {"quality": 1},
	"tiers": [
		{"name": "small", "below": 0.5, "targets": [{"provider": "openai", "model": "gpt-4o-mini", "weight": 1}]},
		{"name": "large", "targets": [{"provider": "openai", "model": "gpt-4o", "weight": 1}]},
	],
}

test_routed_decision if {
	r := object.union(request(["admin"], "auto", []), {"complexity": {"score": 0.9}})
	d := main.decision with input as r with data.data.routing as routing
	d.allow
	d.route == {"targets": [{"provider": "openai", "model": "gpt-4o", "weight": 1}], "fallbacks": [], "timeout_ms": 0, "retries": 0}
	d.log.tags == {"route_tier": "large"}
}

test_denied_decision_has_no_route if {
	r := object.union(request(["admin"], "auto", []), {"request": {"headers": {"x-tollgate-preference": "fastest"}}})
	d := main.decision with input as r with data.data.routing as routing
	not d.allow
	{x.code | some x in d.deny} == {"invalid_preference"}
	not d.route
}

test_default_data_has_no_route if {
	d := main.decision with input as request(["admin"], "gpt-4o", [])
	d.allow
	not d.route
}

test_log[tc.note] if {
	some tc in [
		{
			"note": "team tags and key labels",
			"log": {"label_tags": ["cost_center", "project"], "teams": {"ml": {"cost_center": "cc-ml", "unit": "research", "bad": 7}}},
			"labels": {"project": "search", "owner": "ana"},
			"want": {"store_prompt": false, "tags": {"cost_center": "cc-ml", "unit": "research", "project": "search"}},
		},
		{
			"note": "a key label overrides the team tag",
			"log": {"label_tags": ["cost_center"], "teams": {"ml": {"cost_center": "cc-ml"}}},
			"labels": {"cost_center": "cc-key"},
			"want": {"store_prompt": false, "tags": {"cost_center": "cc-key"}},
		},
		{
			"note": "team stores prompts",
			"log": {"store_prompt": {"default": false, "teams": {"ml": true}}},
			"labels": {},
			"want": {"store_prompt": true, "tags": {}},
		},
		{
			"note": "default stores prompts",
			"log": {"store_prompt": {"default": true, "teams": {"other": false}}},
			"labels": {},
			"want": {"store_prompt": true, "tags": {}},
		},
		{
			"note": "non-boolean flag is ignored",
			"log": {"store_prompt": {"default": "yes"}},
			"labels": {},
			"want": {"store_prompt": false, "tags": {}},
		},
		{
			"note": "no log data",
			"log": {},
			"labels": {"cost_center": "cc-key"},
			"want": {"store_prompt": false, "tags": {}},
		},
	]
	r := object.union(request(["developer"], "echo", []), {"identity": {"labels": tc.labels}})
	d := main.decision with input as r with data.data.log as tc.log
	d.log == tc.want
}

test_guardrail_log_tag if {
	r := object.union(request(["developer"], "echo", []), {"signals": {"matched_phrases": ["competitors"]}})
	d := main.decision with input as r
		with data.data.guardrails.blocked_phrases as {"competitors": {"phrases": ["acme"], "mode": "log"}}
	d.allow
	d.log.tags == {"guardrail_log": "competitors"}
}

test_budgets_and_cutoff if {
	d := main.decision with input as request(["developer"], "echo", [])
		with data.data.budgets as {"stream_cutoff": true, "teams": {"ml": {"day": {"usd": 5}}}}
	d.stream.cutoff == true
	d.limits == {
		{"scope": "key:k_1", "window": "minute", "tokens": 200000},
		{"scope": "team:ml", "window": "day", "usd": 5},
	}
}

test_pii_response_flag if {
	d := main.decision with input as request(["developer"], "echo", ["PHONE"])
		with data.data.pii.response.teams as {"ml": true}
	d.mask == {"rules": {{"types": ["PHONE"], "action": "redact"}}, "response": true}
}

test_response_decision if {
	d := main.response_decision with input as {"identity": {"team": "ml"}, "response": {"matched_phrases": ["x"], "signals": []}}
		with data.data.guardrails.blocked_phrases as {"x": {"phrases": ["x"], "responses": true}}
	d.allow == false
	{x.code | some x in d.deny} == {"response_blocked"}
	ok := main.response_decision with input as {"identity": {"team": "ml"}, "response": {"matched_phrases": [], "signals": []}}
	ok.allow == true
}
