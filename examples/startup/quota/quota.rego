# Package tollgate.quota returns the limits the gateway enforces: a token
# rate per API key (data.data.quota.key_tokens_per_minute) and the budgets
# of the caller's team (data.data.budgets.teams.<team>.<window>).
package tollgate.quota

limits contains {
	"scope": concat(":", ["key", input.identity.key_id]),
	"window": "minute",
	"tokens": data.data.quota.key_tokens_per_minute,
} if {
	input.identity.key_id != ""
}

limits contains object.union({"scope": concat(":", ["team", input.identity.team]), "window": window}, amounts) if {
	some window, amounts in data.data.budgets.teams[input.identity.team]
}
