package tollgate.routing_test

import data.tollgate.routing

ana := {"subject": "ana", "kind": "user", "team": "ml", "roles": ["engineer"]}

fred := {"subject": "fred", "kind": "user", "team": "finance", "roles": ["analyst"]}

sue := {"subject": "sue", "kind": "user", "team": "support", "roles": ["analyst"]}

indexer := {"subject": "search-indexer", "kind": "service", "team": "search", "roles": []}

req(id, model, score, pref) := {
	"request": {"headers": {"x-tollgate-preference": pref}},
	"identity": id,
	"model": {"requested": model},
	"complexity": {"score": score},
}

test_tiers[tc.note] if {
	some tc in [
		{"note": "simple prompt, small tier", "id": ana, "score": 0.1, "pref": "", "want": "small"},
		{"note": "medium prompt", "id": ana, "score": 0.5, "pref": "", "want": "medium"},
		{"note": "hard prompt", "id": ana, "score": 0.9, "pref": "", "want": "large"},
		{"note": "cost preference saves a tier", "id": ana, "score": 0.9, "pref": "cost", "want": "medium"},
		{"note": "quality preference adds a tier", "id": ana, "score": 0.5, "pref": "quality", "want": "large"},
		{"note": "finance stays small", "id": fred, "score": 0.9, "pref": "quality", "want": "small"},
		{"note": "support analyst is capped at medium", "id": sue, "score": 0.9, "pref": "", "want": "medium"},
		{"note": "search service is capped at medium", "id": indexer, "score": 0.95, "pref": "", "want": "medium"},
	]
	got := routing.tags.route_tier with input as req(tc.id, "auto", tc.score, tc.pref)
	got == tc.want
}

test_small_tier_spreads_across_providers if {
	got := routing.route with input as req(ana, "auto", 0.1, "")
	got == {
		"targets": [
			{"provider": "openai", "model": "gpt-4o-mini", "weight": 70},
			{"provider": "anthropic", "model": "claude-3-5-haiku", "weight": 20},
			{"provider": "vertex", "model": "gemini-2.0-flash", "weight": 10},
		],
		"fallbacks": [{"provider": "vertex", "model": "gemini-2.0-flash"}, {"provider": "anthropic", "model": "claude-3-5-haiku"}],
		"timeout_ms": 20000,
		"retries": 1,
	}
}

test_large_tier_settings if {
	got := routing.route with input as req(ana, "auto", 0.9, "")
	got == {
		"targets": [{"provider": "openai", "model": "gpt-4.1", "weight": 100}],
		"fallbacks": [{"provider": "openai", "model": "gpt-4o"}],
		"timeout_ms": 120000,
		"retries": 2,
	}
}

test_model_routes[tc.note] if {
	some tc in [
		{"note": "haiku split across anthropic and vertex", "model": "claude-3-5-haiku", "want": {
			"targets": [{"provider": "anthropic", "model": "claude-3-5-haiku", "weight": 80}, {"provider": "vertex", "model": "claude-3-5-haiku", "weight": 20}],
			"fallbacks": [],
			"timeout_ms": 60000,
			"retries": 1,
		}},
		{"note": "mini falls back to gemini", "model": "gpt-4o-mini", "want": {
			"targets": [{"provider": "openai", "model": "gpt-4o-mini", "weight": 100}],
			"fallbacks": [{"provider": "vertex", "model": "gemini-2.0-flash"}],
			"timeout_ms": 60000,
			"retries": 1,
		}},
	]
	got := routing.route with input as req(ana, tc.model, 0, "")
	got == tc.want
}

test_model_without_route if {
	not routing.route with input as req(ana, "gpt-4o", 0, "")
}

test_denials[tc.note] if {
	some tc in [
		{"note": "unknown preference", "id": ana, "pref": "fast", "want": "invalid_preference"},
		{"note": "no tier for a role without models", "id": {"subject": "x", "kind": "user", "team": "ml", "roles": ["finops"]}, "pref": "", "want": "model_not_allowed"},
	]
	denies := routing.deny with input as req(tc.id, "auto", 0.5, tc.pref)
	{d.code | some d in denies} == {tc.want}
}

providers := {"openai", "anthropic", "vertex"}

# Every routed target names a provider the example configuration defines, a
# priced model, and a non-negative weight.
test_data_targets_valid if {
	entries := array.concat(data.data.routing.tiers, [e | some e in data.data.routing.models])
	every entry in entries {
		count(entry.targets) > 0
		every t in array.concat(entry.targets, object.get(entry, "fallbacks", [])) {
			t.provider in providers
			data.data.catalog.models[t.model]
			object.get(t, "weight", 0) >= 0
		}
	}
}
