# Package tollgate.authz decides which models a principal may call: each role
# lists its models (data.data.access.roles.<role>.models, "*" for every
# model) and its admin permissions.
package tollgate.authz

import data.data.access

# allowed_models is the set of models (or "*") the principal's roles allow.
allowed_models contains model if {
	some role in input.identity.roles
	some model in access.roles[role].models
}

default model_allowed := false

model_allowed if "*" in allowed_models

model_allowed if input.model.requested in allowed_models

deny contains {
	"code": "model_not_allowed",
	"status": 403,
	"message": sprintf("%q (roles %v) may not use model %q; use one of %v or ask a founder for the engineer role", [input.identity.subject, input.identity.roles, input.model.requested, sort(allowed_models)]),
} if {
	not model_allowed
}

# allowed_actions are the admin actions the principal may perform; the
# gateway's admin endpoints query it.
allowed_actions contains action if {
	some role in input.identity.roles
	some action in access.roles[role].permissions
}
