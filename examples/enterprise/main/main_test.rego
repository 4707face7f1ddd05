package tollgate.main_test

import data.tollgate.main

request(id, model, extra) := object.union(
	{
		"version": "1",
		"request": {"id": "req_1", "path": "/v1/chat/completions", "stream": true, "headers": {}},
		"identity": object.union({"auth": "api_key", "org": "acme", "groups": [], "labels": {}, "chain": []}, id),
		"model": {"requested": model, "provider_hint": ""},
		"params": {"tools": 0, "messages": 2},
		"tokens": {"prompt": 800, "max_completion": 4096, "estimated_total": 4896},
		"pii": {"types": [], "findings": []},
		"complexity": {"score": 0.5, "signals": {"turns": 2, "code": false}},
	},
	extra,
)

ana := {"subject": "ana", "kind": "user", "key_id": "k_ana", "team": "ml", "roles": ["engineer"], "labels": {"project": "ranker"}}

sue := {"subject": "sue", "kind": "user", "key_id": "k_sue", "team": "support", "roles": ["analyst"]}

fred := {"subject": "fred", "kind": "user", "key_id": "k_fred", "team": "finance", "roles": ["analyst"]}

test_ml_engineer_auto if {
	d := main.decision with input as request(ana, "auto", {"pii": {"types": ["EMAIL"]}})
	d == {
		"allow": true,
		"deny": set(),
		"route": {
			"targets": [{"provider": "openai", "model": "gpt-4o", "weight": 100}],
			"fallbacks": [{"provider": "anthropic", "model": "claude-3-5-haiku"}],
			"timeout_ms": 60000,
			"retries": 1,
		},
		"mask": {"rules": {{"types": ["EMAIL"], "action": "redact"}}, "response": false},
		"limits": {
			{"scope": "key:k_ana", "window": "minute", "tokens": 100000, "requests": 120},
			{"scope": "user:ana", "window": "day", "usd": 20},
			{"scope": "team:ml", "window": "day", "tokens": 20000000, "usd": 500},
			{"scope": "team:ml", "window": "month", "usd": 8000},
		},
		"stream": {"cutoff": true},
		"log": {"store_prompt": false, "tags": {"cost_center": "cc-1001", "business_unit": "research", "project": "ranker", "route_tier": "medium"}},
	}
}

test_support_agent if {
	d := main.decision with input as request(sue, "gpt-4o", {"pii": {"types": ["CREDIT_CARD", "EMAIL"]}})
	d.allow
	not d.route
	d.mask == {"rules": {{"types": ["EMAIL"], "action": "placeholder"}, {"types": ["CREDIT_CARD"], "action": "block"}}, "response": true}
	d.log == {"store_prompt": true, "tags": {"cost_center": "cc-3001", "business_unit": "customer"}}
}

test_finance_denials[tc.note] if {
	some tc in [
		{"note": "large model", "model": "gpt-4o", "extra": {}, "want": {"model_not_allowed"}},
		{"note": "long prompt and high max_tokens", "model": "gpt-4o-mini", "extra": {"tokens": {"prompt": 30000}, "params": {"max_tokens": 4000}}, "want": {"prompt_too_long", "max_tokens_too_high"}},
		{"note": "injection", "model": "auto", "extra": {"signals": {"matched_phrases": ["prompt_injection"]}}, "want": {"blocked_content"}},
	]
	d := main.decision with input as request(fred, tc.model, tc.extra)
	not d.allow
	not d.route
	{x.code | some x in d.deny} == tc.want
}

test_finance_auto_routes_small if {
	d := main.decision with input as request(fred, "auto", {"complexity": {"score": 0.9}, "signals": {"matched_phrases": ["project_falcon"]}})
	d.allow
	d.route.targets[0].model == "gpt-4o-mini"
	d.log.tags.route_tier == "small"
	d.log.tags.guardrail_log == "project_falcon"
}

test_smoke_input if {
	d := main.decision with input as request({"subject": "smoke", "kind": "service", "key_id": "k_smoke", "team": "", "roles": []}, "smoke", {})
	not d.allow
	{x.code | some x in d.deny} == {"model_not_allowed"}
}
