# Package tollgate.pii says what to do with the personal data found in a
# request: one action per PII type, a team's choice first, then the default
# (data.data.pii). Actions: redact, placeholder, hash, block. Whether the
# response is masked too is a per-team flag (data.data.pii.response).
#
# The tables below read data only; partial evaluation folds them, so a
# request costs one lookup of its team and one object.filter.
package tollgate.pii

# default_actions maps every PII type to its default action (data only).
default default_actions := {}

default_actions := data.data.pii.default if is_object(data.data.pii.default)

# team_actions maps every team with overrides to its action for every type:
# its own choice, else the default (data only).
team_actions[name] := {t: action_of(overrides, t) | some t in (object.keys(overrides) | object.keys(default_actions))} if {
	some name, overrides in data.data.pii.teams
	is_object(overrides)
}

action_of(overrides, t) := overrides[t] if t in object.keys(overrides)

action_of(overrides, t) := default_actions[t] if not t in object.keys(overrides)

# team is the caller's team, null when the input names none (no data key is
# null, so lookups fall back to the defaults).
default team := null

team := input.identity.team

# action_table is the calling team's action per PII type.
action_table := default_actions if count(team_actions) == 0

action_table := object.get(team_actions, team, default_actions) if count(team_actions) > 0

# actions maps every PII type found in the request to its action.
default actions := {}

actions := object.filter(action_table, input.pii.types)

# action_for returns the action for PII type t for the calling team.
action_for(t) := action_table[t]

# response_default is the default response flag (data only).
default response_default := false

response_default := flag if {
	flag := data.data.pii.response.default
	is_boolean(flag)
}

# response_teams maps every team with its own boolean flag to it (data only).
response_teams[name] := flag if {
	some name, flag in data.data.pii.response.teams
	is_boolean(flag)
}

# response is true when the team's responses are masked too: the team's
# flag, else the default, else false.
response := response_default if count(response_teams) == 0

response := object.get(response_teams, team, response_default) if count(response_teams) > 0

# uniform_action is the action of every PII type when the default data
# gives them all the same one and no team overrides it (data only).
uniform_action := a if {
	count(team_actions) == 0
	count({x | some x in default_actions}) == 1
	some a in default_actions
}

# mask is the mask part of the decision: types grouped by action.
mask := {"rules": rules, "response": response}

# rules groups the types found by action. With a uniform action there is one
# group and nothing to compare.
rules contains {"types": sort(found), "action": uniform_action} if {
	types := object.keys(action_table)
	found := {t | some t in input.pii.types; t in types}
	count(found) > 0
}

rules contains {"types": types, "action": action} if {
	not uniform_action
	found := actions
	some action in {a | some a in found}
	types := sort([t | some t, a in found; a == action])
}
