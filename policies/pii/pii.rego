# Package tollgate.pii says what to do with the personal data found in a
# request: one action per PII type, a team's choice first, then the default
# (data.data.pii). Actions: redact, placeholder, hash, block.
package tollgate.pii

# action_for returns the action for PII type t for the calling team.
action_for(t) := action if {
	action := data.data.pii.teams[input.identity.team][t]
} else := data.data.pii.default[t]

# actions maps every PII type found in the request to its action.
actions[t] := action_for(t) if some t in input.pii.types

# mask is the mask part of the decision: types grouped by action.
mask := {"rules": rules, "response": false}

rules contains {"types": types, "action": action} if {
	some action in {a | some a in actions}
	types := sort([t | some t, a in actions; a == action])
}
