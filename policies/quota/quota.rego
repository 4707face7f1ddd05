# Package tollgate.quota returns the limits the gateway enforces for a
# request. Amounts live in data.data.quota; the gateway reserves them
# atomically before the call and reconciles with real usage after it.
package tollgate.quota

# key_tokens_per_minute is the key's own limit, else the default.
key_tokens_per_minute := n if {
	n := data.data.quota.keys[input.identity.key_id].tokens_per_minute
} else := data.data.quota.default_key_tokens_per_minute

limits contains {
	"scope": concat(":", ["key", input.identity.key_id]),
	"window": "minute",
	"tokens": key_tokens_per_minute,
} if {
	input.identity.key_id != ""
}
