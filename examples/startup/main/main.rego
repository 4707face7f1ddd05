# Package tollgate.main assembles the decision the gateway enforces
# (entrypoint data.tollgate.main.decision) for a small company: role-based
# model access, every PII type redacted, a key rate and one team budget.
package tollgate.main

import data.tollgate.authz
import data.tollgate.pii
import data.tollgate.quota

default allow := false

allow if count(authz.deny) == 0

decision := {
	"allow": allow,
	"deny": authz.deny,
	"mask": pii.mask,
	"limits": quota.limits,
	"stream": {"cutoff": true},
	"log": {"store_prompt": false, "tags": {}},
}
