# Package tollgate.routing picks where a request goes (the decision's route),
# from data.data.routing. Routing is off unless data.data.routing.enabled is
# true; without a route the gateway sends the request to the first upstream
# that serves the requested model.
#
# Two kinds of routes:
#   - a model named in auto_models (e.g. "auto") is routed by complexity:
#     tiers is a list cheapest first, each {"name", "below", "targets",
#     "fallbacks"}; the first tier whose "below" is above
#     input.complexity.score is taken (the last tier has no bound). The
#     x-tollgate-preference header (cost, latency, quality) moves the choice
#     by preferences[<value>] tiers. Only tiers whose every target model the
#     caller may use (tollgate.authz) are candidates; the nearest cheaper one
#     is taken, else the nearest dearer one.
#   - a model with an entry in models gets that entry's targets (weighted
#     A/B split across providers) and fallbacks.
package tollgate.routing

import data.tollgate.authz

default enabled := false

# enabled is true when the data turns routing on.
enabled if data.data.routing.enabled == true

default is_auto := false

# is_auto is true when the caller asked for a complexity-routed model.
is_auto if input.model.requested in data.data.routing.auto_models

# preference is the caller's x-tollgate-preference header, lower case; "" when
# absent.
default preference := ""

preference := lower(trim_space(input.request.headers["x-tollgate-preference"])) if {
	input.request.headers["x-tollgate-preference"]
}

# numeric_preferences maps every preference with a number to it (data only).
numeric_preferences[name] := n if {
	some name, n in data.data.routing.preferences
	is_number(n)
}

# shift is how many tiers the preference moves the choice (negative: cheaper).
shift := object.get(numeric_preferences, preference, 0)

tiers := object.get(data.data.routing, "tiers", [])

# last is the index of the dearest tier.
last := count(tiers) - 1

# score is the complexity estimate in [0,1]; 0 when the gateway sent none.
default score := 0

score := input.complexity.score

# bounds maps the index of every tier with a bound to it (data only).
bounds[i] := t.below if some i, t in tiers

# below are the tiers whose bound is above the score.
below contains i if {
	some i, b in bounds
	score < b
}

# base_index is the tier the complexity score alone asks for.
base_index := min(below | {last})

# wanted is base_index moved by the preference, kept within the tiers. (It
# is always defined; the default makes partial evaluation compute it once.)
default wanted := 0

wanted := max({0, min({last, base_index + shift})})

# route_models are the models the tiers route to, targets and fallbacks
# (data only).
route_models contains t.model if {
	some tier in tiers
	some t in tier.targets
}

route_models contains t.model if {
	some tier in tiers
	some t in tier.fallbacks
}

# permitted are the route_models the caller may use (tollgate.authz). Tiers
# and fallbacks are checked against this set, so the caller's grants are
# looked up once. (It is always defined; the default makes partial
# evaluation compute it once.)
default permitted := set()

permitted := authz.permitted_models(route_models)

# tier_models maps every tier with targets, each naming a model, to the set
# of their models (data only).
tier_models[i] := {t.model | some t in tier.targets} if {
	some i, tier in tiers
	count(tier.targets) > 0
	count([t.model | some t in tier.targets]) == count(tier.targets)
}

# usable is the set of tier indexes whose every target model the caller may use.
usable contains i if {
	some i, models in tier_models
	count(models - permitted) == 0
}

# cheaper are the usable tiers not dearer than wanted.
cheaper contains i if {
	some i in usable
	i <= wanted
}

# chosen is the usable tier nearest to wanted: cheaper first, else dearer;
# -1 (no tier) when none is usable.
default chosen := -1

chosen := max(cheaper) if count(cheaper) > 0

chosen := min(usable) if {
	count(cheaper) == 0
	count(usable) > 0
}

# target normalises a data target to the decision's {provider, model, weight};
# the weight defaults to 1 (an even split).
target(t) := {"provider": t.provider, "model": t.model, "weight": object.get(t, "weight", 1)}

fallback(t) := {"provider": t.provider, "model": t.model}

# build turns a tier or model entry into the decision's route; timeout_ms and
# retries come from the entry, else from data.data.routing, else 0 (the
# provider's own timeout, no retry).
build(entry, fallbacks) := {
	"targets": [target(t) | some t in entry.targets],
	"fallbacks": [fallback(t) | some t in fallbacks],
	"timeout_ms": object.get(entry, "timeout_ms", object.get(data.data.routing, "timeout_ms", 0)),
	"retries": object.get(entry, "retries", object.get(data.data.routing, "retries", 0)),
}

# route is the route part of the decision; undefined when routing is off or
# has nothing to say for the requested model.
route := build(tier, fallbacks) if {
	enabled
	is_auto
	tier := tiers[chosen]
	allowed := permitted
	fallbacks := [t | some t in object.get(tier, "fallbacks", []); t.model in allowed]
}

route := build(entry, object.get(entry, "fallbacks", [])) if {
	enabled
	not is_auto
	entry := data.data.routing.models[input.model.requested]
}

# may_tag and may_route are true when routing may add tags and routes (data
# only).
may_tag := enabled

may_route := enabled

# tags are added to the inference log: which tier served an auto request.
tags["route_tier"] := tiers[chosen].name if {
	enabled
	is_auto
}

deny contains {
	"code": "invalid_preference",
	"status": 400,
	"message": sprintf("header x-tollgate-preference is %q; use one of %v or leave it out", [preference, sort(object.keys(data.data.routing.preferences))]),
} if {
	enabled
	is_auto
	preference != ""
	not data.data.routing.preferences[preference]
}

deny contains {
	"code": "model_not_allowed",
	"status": 403,
	"message": sprintf("model %q routes to tiers %v, and your roles and team allow none of their models; name a model you may use or ask an admin for a role that covers a tier", [input.model.requested, [t.name | some t in tiers]]),
} if {
	enabled
	is_auto
	count(usable) == 0
}
