# Package tollgate.main assembles the decision the gateway enforces
# (entrypoint data.tollgate.main.decision). See policies/README.md for the
# contract.
package tollgate.main

import data.tollgate.authz
import data.tollgate.pii
import data.tollgate.quota

deny contains d if some d in authz.deny

decision := {
	"allow": count(deny) == 0,
	"deny": deny,
	"mask": pii.mask,
	"limits": quota.limits,
	"log": {"store_prompt": false, "tags": {}},
}
