# Tests that the default library's decisions match the decision schema and
# that the inputs they are made from match the input schema. The schemas are
# data: policies/schema/input.schema.json loads as data.schema.input and
# decision.schema.json as data.schema.decision (a data file lands at its
# folder's path; each file's single top-level key names the schema).
package tollgate.schema_test

import data.tollgate.main

# base is a complete input, as the gateway builds it.
base := {
	"version": "1",
	"request": {
		"id": "req_1", "path": "/v1/chat/completions", "stream": false,
		"received_at": "2026-11-25T10:00:00Z", "client_ip": "127.0.0.1", "headers": {},
	},
	"identity": {
		"subject": "ana", "kind": "user", "auth": "api_key", "key_id": "k_1", "team": "ml",
		"org": "acme", "roles": ["developer"], "groups": [], "labels": {}, "chain": [],
	},
	"model": {"requested": "gpt-4o", "provider_hint": ""},
	"params": {"tools": 0, "tool_names": [], "messages": 1},
	"tokens": {"prompt": 20, "max_completion": 4096, "estimated_total": 4116},
	"pii": {"types": [], "findings": []},
	"complexity": {"score": 0, "signals": {"turns": 1, "code": false, "math": false, "reasoning": false, "tools": 0, "prompt_tokens": 12}},
	"guardrails": {"signals": [], "hidden_unicode": 0, "bidi_controls": 0, "base64_blobs": 0},
	"moderation": {"checked": false, "flagged": false, "categories": [], "unavailable": false},
}

# patched returns base with patch merged in (objects merge, other values
# replace).
patched(patch) := object.union(base, patch)

routing := {
	"enabled": true, "auto_models": ["auto"], "timeout_ms": 30000, "retries": 1,
	"preferences": {"cost": -1, "quality": 1},
	"tiers": [
		{
			"name": "small", "below": 0.3,
			"targets": [
				{"provider": "openai", "model": "gpt-4o-mini", "weight": 90},
				{"provider": "anthropic", "model": "claude-3-5-haiku", "weight": 10},
			],
			"fallbacks": [{"provider": "vertex", "model": "gemini-2.0-flash"}],
		},
		{"name": "large", "targets": [{"provider": "openai", "model": "gpt-4o"}], "timeout_ms": 60000},
	],
	"models": {"gpt-4o": {
		"targets": [
			{"provider": "openai", "model": "gpt-4o", "weight": 80},
			{"provider": "azure", "model": "gpt-4o", "weight": 20},
		],
		"fallbacks": [{"provider": "anthropic", "model": "claude-3-5-sonnet"}],
	}},
}

budgets := {
	"stream_cutoff": true,
	"keys": {"k_1": {"minute": {"tokens": 1000, "requests": 10}, "week": {"tokens": 5}}},
	"users": {"*": {"day": {"usd": 2.5}}},
	"teams": {"ml": {"month": {"usd": 1000, "requests": 0}, "hour": {"requests": 100}, "day": {"tokens": -1}}},
}

guardrails := {
	"max_prompt_tokens": {"default": 1000},
	"max_completion_tokens": {"default": 256},
	"blocked_phrases": {
		"prompt_injection": {"mode": "deny", "phrases": ["ignore previous instructions"], "message": "remove the override"},
		"competitors": {"mode": "log", "phrases": ["acme corp"]},
	},
}

# cases are representative requests, each with the data it needs on top of
# the default data and what the decision must show besides matching the
# schema: allow, and its top-level fields.
cases := [
	{
		"note": "allowed developer",
		"input": base,
		"allow": true,
	},
	{
		"note": "denied analyst",
		"input": patched({"identity": {"roles": ["analyst"]}}),
		"allow": false,
	},
	{
		"note": "user without roles",
		"input": patched({"identity": {"roles": []}}),
		"allow": false,
	},
	{
		"note": "service without roles",
		"input": patched({"identity": {"kind": "service", "roles": []}, "model": {"requested": "gpt-4o-mini"}}),
		"allow": true,
	},
	{
		"note": "agent on behalf of a user, key labels",
		"input": patched({"identity": {
			"subject": "agent:planner", "kind": "agent",
			"labels": {"project": "search", "env": "prod"},
			"chain": [{"subject": "ana", "kind": "user"}],
		}}),
		"log": {"store_prompt": {"teams": {"ml": true}}, "label_tags": ["project"], "teams": {"ml": {"cost_center": "cc-42"}}},
		"allow": true,
	},
	{
		"note": "PII present, masked per team",
		"input": patched({"pii": {
			"types": ["CREDIT_CARD", "EMAIL", "US_SSN"],
			"findings": [
				{"type": "EMAIL", "count": 2, "message": 0, "role": "user", "where": "content"},
				{"type": "CREDIT_CARD", "count": 1, "message": 0, "role": "user", "where": "content"},
				{"type": "US_SSN", "count": 1, "message": 1, "role": "tool", "where": "content"},
			],
		}}),
		"pii": {
			"default": {"EMAIL": "redact", "CREDIT_CARD": "redact", "US_SSN": "redact"},
			"teams": {"ml": {"CREDIT_CARD": "block", "US_SSN": "hash", "EMAIL": "placeholder"}},
			"response": {"default": false, "teams": {"ml": true}},
		},
		"allow": true,
	},
	{
		"note": "budgets per key, user and team",
		"input": base,
		"budgets": budgets,
		"allow": true,
	},
	{
		"note": "auto model routed by complexity",
		"input": patched({
			"identity": {"roles": ["admin"]}, "model": {"requested": "auto"},
			"request": {"headers": {"x-tollgate-preference": "cost"}},
			"complexity": {"score": 0.9},
		}),
		"routing": routing,
		"allow": true,
		"route": true,
	},
	{
		"note": "model split over providers",
		"input": patched({"identity": {"roles": ["admin"]}}),
		"routing": routing,
		"allow": true,
		"route": true,
	},
	{
		"note": "unknown routing preference",
		"input": patched({"model": {"requested": "auto"}, "request": {"headers": {"x-tollgate-preference": "fastest"}}}),
		"routing": routing,
		"allow": false,
	},
	{
		"note": "guardrails deny and log",
		"input": patched({
			"params": {"max_tokens": 4096, "temperature": 0.7},
			"tokens": {"prompt": 5000, "max_completion": 4096, "estimated_total": 9096},
			"signals": {"matched_phrases": ["competitors", "prompt_injection"]},
		}),
		"guardrails": guardrails,
		"allow": false,
	},
	{
		"note": "phrase logged only",
		"input": patched({"signals": {"matched_phrases": ["competitors"]}}),
		"guardrails": guardrails,
		"allow": true,
	},
]

# decision evaluates the default library for tc, with tc's data.
decision(tc) := d if {
	d := main.decision with input as tc.input
		with data.data.routing as object.get(tc, "routing", {"enabled": false})
		with data.data.budgets as object.get(tc, "budgets", {})
		with data.data.pii as object.get(tc, "pii", data.data.pii)
		with data.data.log as object.get(tc, "log", data.data.log)
		with data.data.guardrails as object.get(tc, "guardrails", data.data.guardrails)
}

test_decision_matches_schema[tc.note] if {
	some tc in cases
	d := decision(tc)
	[ok, errs] := json.match_schema(d, data.schema.decision)
	print(tc.note, errs, d)
	ok
	d.allow == tc.allow
	is_object(object.get(d, "route", null)) == object.get(tc, "route", false)
}

# The cases cover every part of the decision, so that the test above proves
# the schema accepts what the library returns.
test_cases_cover_decision if {
	ds := [decision(tc) | some tc in cases]
	count({d.deny | some d in ds; count(d.deny) > 0}) > 2
	some d1 in ds
	count(d1.mask.rules) > 2
	d1.mask.response
	some d2 in ds
	count({l.window | some l in d2.limits}) == 4
	d2.stream.cutoff
	some d3 in ds
	count(d3.route.fallbacks) > 0
	some d4 in ds
	d4.log.store_prompt
	count(d4.log.tags) > 1
}

test_input_matches_schema[tc.note] if {
	some tc in cases
	[ok, errs] := json.match_schema(tc.input, data.schema.input)
	print(tc.note, errs)
	ok
}

test_input_variants_match_schema[note] if {
	some note, doc in {
		"no signals": object.remove(base, ["signals"]),
		"no matched phrases": patched({"signals": {}}),
		"no phrase matched": patched({"signals": {"matched_phrases": []}}),
		"time unknown": patched({"request": {"received_at": ""}}),
		"nanoseconds": patched({"request": {"received_at": "2026-11-25T09:30:15.123456789Z"}}),
		"oidc": patched({"identity": {"auth": "oidc", "key_id": ""}}),
		"mtls": patched({"identity": {"auth": "mtls"}}),
	}
	[ok, errs] := json.match_schema(doc, data.schema.input)
	print(note, errs)
	ok
}

# Each invalid input names the field the schema must report ("(root)" for
# the top level).
test_invalid_input_fails_schema[note] if {
	some note, tc in {
		"other version": {"doc": patched({"version": "2"}), "field": "version"},
		"numeric version": {"doc": patched({"version": 1}), "field": "version"},
		"unknown kind": {"doc": patched({"identity": {"kind": "robot"}}), "field": "identity.kind"},
		"unknown auth": {"doc": patched({"identity": {"auth": "password"}}), "field": "identity.auth"},
		"prompt text": {"doc": patched({"prompt": "hello"}), "field": "(root)"},
		"unknown identity field": {"doc": patched({"identity": {"email": "ana@acme.example"}}), "field": "identity"},
		"missing pii": {"doc": object.remove(base, ["pii"]), "field": "(root)"},
		"missing roles": {"doc": json.remove(base, ["identity/roles"]), "field": "identity"},
		"header value not a string": {"doc": patched({"request": {"headers": {"x-project": 1}}}), "field": "request.headers.x-project"},
		"header name in upper case": {"doc": patched({"request": {"headers": {"X-Project": "a"}}}), "field": "request.headers"},
		"label not a string": {"doc": patched({"identity": {"labels": {"env": true}}}), "field": "identity.labels.env"},
		"max_tokens zero": {"doc": patched({"params": {"max_tokens": 0}}), "field": "params.max_tokens"},
		"fractional tokens": {"doc": patched({"tokens": {"prompt": 1.5}}), "field": "tokens.prompt"},
		"score above 1": {"doc": patched({"complexity": {"score": 1.5}}), "field": "complexity.score"},
		"received_at not UTC": {"doc": patched({"request": {"received_at": "2026-11-25T10:00:00+01:00"}}), "field": "request.received_at"},
		"malformed PII type": {"doc": patched({"pii": {"types": ["passport number"]}}), "field": "pii.types.0"},
		"matched_phrases not an array": {"doc": patched({"signals": {"matched_phrases": "prompt_injection"}}), "field": "signals.matched_phrases"},
		"repeated phrase": {"doc": patched({"signals": {"matched_phrases": ["a", "a"]}}), "field": "signals.matched_phrases"},
		"unknown signal": {"doc": patched({"signals": {"language": "en"}}), "field": "signals"},
	}
	[ok, errs] := json.match_schema(tc.doc, data.schema.input)
	not ok
	print(note, errs)
	some e in errs
	lower(e.field) == tc.field
}

# valid is a decision using every field.
valid := {
	"allow": true,
	"deny": [],
	"route": {
		"targets": [{"provider": "openai", "model": "gpt-4o-mini", "weight": 90}],
		"fallbacks": [{"provider": "vertex", "model": "gemini-2.0-flash"}],
		"timeout_ms": 30000, "retries": 1,
	},
	"mask": {"rules": [{"types": ["EMAIL"], "action": "redact"}], "response": false},
	"limits": [{"scope": "key:k_1", "window": "minute", "tokens": 40000, "requests": 60, "usd": 5.5}],
	"stream": {"cutoff": false},
	"log": {"store_prompt": false, "tags": {"project": "search"}},
}

test_decision_variants_match_schema[note] if {
	some note, d in {
		"every field": valid,
		"empty (a default denial)": {},
		"denial with defaults": {"deny": [{"code": "x"}]},
		"denial with status": {"allow": false, "deny": [{"code": "too_big", "message": "shorten it", "status": 413}]},
		"route without fallbacks": {"allow": true, "route": {"targets": [{"provider": "openai", "model": "gpt-4o"}]}},
		"usd only": {"allow": true, "limits": [{"scope": "team:ml", "window": "month", "usd": 0.5}]},
		"requests only": {"allow": true, "limits": [{"scope": "user:ana", "window": "hour", "requests": 1, "tokens": 0}]},
		"every action": {"allow": true, "mask": {"rules": [
			{"types": ["EMAIL"], "action": "redact"}, {"types": ["PHONE"], "action": "placeholder"},
			{"types": ["US_SSN"], "action": "hash"}, {"types": ["CREDIT_CARD"], "action": "block"},
		]}},
	}
	[ok, errs] := json.match_schema(d, data.schema.decision)
	print(note, errs)
	ok
}

# Each invalid decision names the field the schema must report; the gateway
# rejects every one of them too (engine/schema_test.go checks both agree).
test_invalid_decision_fails_schema[note] if {
	some note, tc in {
		"unknown field": {"patch": {"reason": "x"}, "field": "(root)"},
		"allow not a boolean": {"patch": {"allow": "yes"}, "field": "allow"},
		"unknown deny field": {"patch": {"deny": [{"code": "x", "hint": "y"}]}, "field": "deny.0"},
		"deny without code": {"patch": {"deny": [{"message": "no"}]}, "field": "deny.0"},
		"empty code": {"patch": {"deny": [{"code": ""}]}, "field": "deny.0.code"},
		"status 200": {"patch": {"deny": [{"code": "x", "status": 200}]}, "field": "deny.0.status"},
		"status 600": {"patch": {"deny": [{"code": "x", "status": 600}]}, "field": "deny.0.status"},
		"status as a string": {"patch": {"deny": [{"code": "x", "status": "403"}]}, "field": "deny.0.status"},
		"target without model": {"patch": {"route": {"targets": [{"provider": "openai"}]}}, "field": "route.targets.0"},
		"negative weight": {"patch": {"route": {"targets": [{"provider": "openai", "model": "m", "weight": -1}]}}, "field": "route.targets.0.weight"},
		"fractional weight": {"patch": {"route": {"targets": [{"provider": "openai", "model": "m", "weight": 0.5}]}}, "field": "route.targets.0.weight"},
		"unknown target field": {"patch": {"route": {"fallbacks": [{"provider": "p", "model": "m", "priority": 1}]}}, "field": "route.fallbacks.0"},
		"unknown route field": {"patch": {"route": {"region": "eu"}}, "field": "route"},
		"bad action": {"patch": {"mask": {"rules": [{"types": ["EMAIL"], "action": "encrypt"}]}}, "field": "mask.rules.0.action"},
		"rule without action": {"patch": {"mask": {"rules": [{"types": ["EMAIL"]}]}}, "field": "mask.rules.0"},
		"unknown mask field": {"patch": {"mask": {"mode": "strict"}}, "field": "mask"},
		"limit without amount": {"patch": {"limits": [{"scope": "key:k_1", "window": "day"}]}, "field": "limits.0"},
		"limit with zero amounts": {"patch": {"limits": [{"scope": "key:k_1", "window": "day", "tokens": 0, "usd": 0}]}, "field": "limits.0"},
		"negative amount": {"patch": {"limits": [{"scope": "key:k_1", "window": "day", "tokens": 5, "usd": -1}]}, "field": "limits.0.usd"},
		"bad window": {"patch": {"limits": [{"scope": "key:k_1", "window": "week", "tokens": 5}]}, "field": "limits.0.window"},
		"limit without scope": {"patch": {"limits": [{"window": "day", "tokens": 5}]}, "field": "limits.0"},
		"unknown stream field": {"patch": {"stream": {"cutoff": true, "grace": 5}}, "field": "stream"},
		"tag not a string": {"patch": {"log": {"tags": {"n": 1}}}, "field": "log.tags.n"},
		"unknown log field": {"patch": {"log": {"store_response": true}}, "field": "log"},
	}
	[ok, errs] := json.match_schema(object.union(valid, tc.patch), data.schema.decision)
	not ok
	print(note, errs)
	some e in errs
	lower(e.field) == tc.field
}

test_schemas_are_valid[name] if {
	some name, schema in data.schema
	[ok, _] := json.verify_schema(schema)
	ok
}
