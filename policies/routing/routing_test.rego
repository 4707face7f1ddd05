package tollgate.routing_test

import data.tollgate.routing

small := {
	"name": "small", "below": 0.3,
	"targets": [
		{"provider": "openai", "model": "gpt-4o-mini", "weight": 90},
		{"provider": "anthropic", "model": "claude-3-5-haiku", "weight": 10},
	],
	"fallbacks": [{"provider": "vertex", "model": "gemini-2.0-flash"}, {"provider": "openai", "model": "gpt-4o"}],
}

medium := {
	"name": "medium", "below": 0.7, "timeout_ms": 45000,
	"targets": [{"provider": "openai", "model": "gpt-4.1"}],
	"fallbacks": [{"provider": "openai", "model": "gpt-4o-mini"}],
}

large := {
	"name": "large",
	"targets": [{"provider": "openai", "model": "gpt-4o", "weight": 1}],
}

config := {
	"enabled": true,
	"auto_models": ["auto"],
	"timeout_ms": 30000,
	"retries": 1,
	"preferences": {"cost": -1, "latency": -1, "quality": 1, "balanced": 0},
	"tiers": [small, medium, large],
	"models": {"gpt-4o": {
		"targets": [
			{"provider": "openai", "model": "gpt-4o", "weight": 80, "note": "extra fields are dropped"},
			{"provider": "azure", "model": "gpt-4o-2024-08-06", "weight": 20},
		],
		"fallbacks": [{"provider": "anthropic", "model": "claude-3-5-haiku"}],
		"retries": 2,
	}},
}

req(roles, model, score, headers) := {
	"request": {"headers": headers},
	"identity": {"subject": "ana", "kind": "user", "team": "ml", "roles": roles},
	"model": {"requested": model},
	"complexity": {"score": score},
}

test_tier_by_score[tc.note] if {
	some tc in [
		{"note": "simple prompt goes small", "score": 0, "want": "small"},
		{"note": "just under the small bound", "score": 0.29, "want": "small"},
		{"note": "medium", "score": 0.3, "want": "medium"},
		{"note": "large", "score": 0.7, "want": "large"},
		{"note": "top score", "score": 1, "want": "large"},
	]
	got := routing.tags.route_tier with input as req(["developer"], "auto", tc.score, {})
		with data.data.routing as config
	got == tc.want
}

test_preference[tc.note] if {
	some tc in [
		{"note": "cost goes one tier cheaper", "score": 0.5, "pref": "cost", "want": "small"},
		{"note": "latency goes one tier cheaper", "score": 0.9, "pref": "latency", "want": "medium"},
		{"note": "quality goes one tier dearer", "score": 0.1, "pref": "quality", "want": "medium"},
		{"note": "cheaper than the cheapest stays cheapest", "score": 0.1, "pref": "cost", "want": "small"},
		{"note": "dearer than the dearest stays dearest", "score": 0.9, "pref": "quality", "want": "large"},
		{"note": "header is case-insensitive", "score": 0.5, "pref": " Quality ", "want": "large"},
		{"note": "a zero shift keeps the tier", "score": 0.5, "pref": "balanced", "want": "medium"},
	]
	got := routing.tags.route_tier with input as req(["developer"], "auto", tc.score, {"x-tollgate-preference": tc.pref})
		with data.data.routing as config
	got == tc.want
}

test_auto_route if {
	got := routing.route with input as req(["developer"], "auto", 0.1, {})
		with data.data.routing as config
	got == {
		"targets": [
			{"provider": "openai", "model": "gpt-4o-mini", "weight": 90},
			{"provider": "anthropic", "model": "claude-3-5-haiku", "weight": 10},
		],
		"fallbacks": [{"provider": "vertex", "model": "gemini-2.0-flash"}, {"provider": "openai", "model": "gpt-4o"}],
		"timeout_ms": 30000,
		"retries": 1,
	}
}

test_tier_settings_and_default_weight if {
	got := routing.route with input as req(["developer"], "auto", 0.5, {})
		with data.data.routing as config
	got == {
		"targets": [{"provider": "openai", "model": "gpt-4.1", "weight": 1}],
		"fallbacks": [{"provider": "openai", "model": "gpt-4o-mini"}],
		"timeout_ms": 45000,
		"retries": 1,
	}
}

test_no_timeout_anywhere_is_zero if {
	got := routing.route with input as req(["developer"], "auto", 0.9, {})
		with data.data.routing as object.remove(config, ["timeout_ms", "retries"])
	got.timeout_ms == 0
	got.retries == 0
	got.fallbacks == []
}

test_authz_limits_tiers[tc.note] if {
	some tc in [
		{"note": "analyst asking for large gets the nearest cheaper tier", "roles": ["analyst"], "score": 0.9, "want": "small"},
		{"note": "analyst quality preference is capped too", "roles": ["analyst"], "score": 0.5, "pref": "quality", "want": "small"},
		{"note": "developer gets what the score says", "roles": ["developer"], "score": 0.9, "want": "large"},
	]
	got := routing.tags.route_tier with input as req(tc.roles, "auto", tc.score, {"x-tollgate-preference": object.get(tc, "pref", "")})
		with data.data.routing as config
	got == tc.want
}

test_dearer_tier_when_no_cheaper_is_usable if {
	got := routing.tags.route_tier with input as req(["bigonly"], "auto", 0, {})
		with data.data.routing as config
		with data.data.access.roles.bigonly as {"model_groups": ["large", "auto"]}
	got == "medium"
}

test_fallbacks_the_caller_may_not_use_are_dropped if {
	got := routing.route with input as req(["analyst"], "auto", 0, {})
		with data.data.routing as config
	got.fallbacks == [{"provider": "vertex", "model": "gemini-2.0-flash"}]
}

test_no_usable_tier_denies if {
	denies := routing.deny with input as req(["intern"], "auto", 0.5, {})
		with data.data.routing as config
	count(denies) == 1
	some d in denies
	d.code == "model_not_allowed"
	d.status == 403
	contains(d.message, `"auto"`)
	contains(d.message, "small")
}

test_no_usable_tier_has_no_route if {
	not routing.route with input as req(["intern"], "auto", 0.5, {})
		with data.data.routing as config
}

test_invalid_preference_denies if {
	denies := routing.deny with input as req(["developer"], "auto", 0.5, {"x-tollgate-preference": "cheap"})
		with data.data.routing as config
	count(denies) == 1
	some d in denies
	d.code == "invalid_preference"
	d.status == 400
	contains(d.message, `"cheap"`)
	contains(d.message, "quality")
}

test_model_route if {
	got := routing.route with input as req(["developer"], "gpt-4o", 0.9, {"x-tollgate-preference": "whatever"})
		with data.data.routing as config
	got == {
		"targets": [
			{"provider": "openai", "model": "gpt-4o", "weight": 80},
			{"provider": "azure", "model": "gpt-4o-2024-08-06", "weight": 20},
		],
		"fallbacks": [{"provider": "anthropic", "model": "claude-3-5-haiku"}],
		"timeout_ms": 30000,
		"retries": 2,
	}
}

test_no_route[tc.note] if {
	some tc in [
		{"note": "routing off", "data": object.union(config, {"enabled": false}), "model": "auto"},
		{"note": "routing off for a routed model", "data": object.union(config, {"enabled": false}), "model": "gpt-4o"},
		{"note": "model without a route", "data": config, "model": "gpt-4o-mini"},
		{"note": "default data", "data": data.data.routing, "model": "auto"},
	]
	r := req(["admin"], tc.model, 0.5, {"x-tollgate-preference": "nonsense"})
	not routing.route with input as r with data.data.routing as tc.data
	count(routing.deny) == 0 with input as r with data.data.routing as tc.data
	count(routing.tags) == 0 with input as r with data.data.routing as tc.data
}

test_missing_score_is_simple if {
	got := routing.tags.route_tier with input as {"identity": {"kind": "user", "roles": ["developer"]}, "model": {"requested": "auto"}}
		with data.data.routing as config
	got == "small"
}

# Default data keeps routing off, so the gateway's configured upstreams serve
# every model.
test_data_routing_off if {
	data.data.routing.enabled == false
}

# Every target and fallback in the data names a provider and a model, and
# weights are not negative.
test_data_targets_valid if {
	every tier in data.data.routing.tiers {
		valid_targets(tier)
	}
	every entry in data.data.routing.models {
		valid_targets(entry)
	}
}

default valid_targets(_) := false

valid_targets(entry) if {
	count(entry.targets) > 0
	every t in array.concat(entry.targets, object.get(entry, "fallbacks", [])) {
		t.provider != ""
		t.model != ""
		object.get(t, "weight", 0) >= 0
	}
}

test_valid_targets[tc.note] if {
	some tc in [
		{"note": "test config", "entry": small, "want": true},
		{"note": "no targets", "entry": {"targets": []}, "want": false},
		{"note": "no provider", "entry": {"targets": [{"provider": "", "model": "m"}]}, "want": false},
		{"note": "negative weight", "entry": {"targets": [{"provider": "p", "model": "m", "weight": -1}]}, "want": false},
	]
	got := valid_targets(tc.entry)
	got == tc.want
}
