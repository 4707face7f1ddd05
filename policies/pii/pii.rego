# Package tollgate.pii says what to do with the personal data found in a
# request: one action per PII type, a team's choice first, then the default
# (data.data.pii). Actions: redact, placeholder, hash, block. Whether the
# response is masked too is a per-team flag (data.data.pii.response).
package tollgate.pii

# action_for returns the action for PII type t for the calling team.
action_for(t) := action if {
	action := data.data.pii.teams[input.identity.team][t]
} else := data.data.pii.default[t]

# actions maps every PII type found in the request to its action.
actions[t] := action_for(t) if some t in input.pii.types

# response is true when the team's responses are masked too: the team's
# flag, else the default, else false.
response := flag if {
	flag := data.data.pii.response.teams[input.identity.team]
	is_boolean(flag)
} else := flag if {
	flag := data.data.pii.response.default
	is_boolean(flag)
} else := false

# mask is the mask part of the decision: types grouped by action.
mask := {"rules": rules, "response": response}

rules contains {"types": types, "action": action} if {
	some action in {a | some a in actions}
	types := sort([t | some t, a in actions; a == action])
}
