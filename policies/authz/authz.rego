# Package tollgate.authz decides which models a principal may call.
#
# A principal's roles map to model groups (data.data.access.roles), groups map to
# model names (data.data.access.model_groups); the group entry "*" stands for
# every model.
package tollgate.authz

import data.data.access

# allowed_models is the set of model names (or "*") the principal may use.
allowed_models contains model if {
	some role in input.identity.roles
	some group in access.roles[role].model_groups
	some model in access.model_groups[group]
}

default model_allowed := false

model_allowed if "*" in allowed_models

model_allowed if input.model.requested in allowed_models

deny contains {
	"code": "no_role",
	"status": 403,
	"message": sprintf("principal %q has no role; give the API key or token a role such as developer", [input.identity.subject]),
} if {
	count(input.identity.roles) == 0
}

deny contains {
	"code": "model_not_allowed",
	"status": 403,
	"message": sprintf("principal %q (roles %v) may not use model %q; use one of %v or ask an admin to grant a role that includes it", [input.identity.subject, input.identity.roles, input.model.requested, sort(allowed_models)]),
} if {
	count(input.identity.roles) > 0
	not model_allowed
}
