# Package tollgate.pii redacts every type of personal data the gateway finds,
# with the one action of data.data.pii.action.
package tollgate.pii

# mask is the mask part of the decision.
mask := {"rules": [{"types": input.pii.types, "action": data.data.pii.action}], "response": false} if {
	count(input.pii.types) > 0
} else := {"rules": [], "response": false}
