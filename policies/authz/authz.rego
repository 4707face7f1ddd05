# Package tollgate.authz decides which models a principal may call and which
# admin actions it may perform.
#
# Users and agents: roles map to model groups (data.data.access.roles), groups
# map to model names (data.data.access.model_groups); the group entry "*"
# stands for every model. A team with its own model_groups list
# (data.data.access.teams.<team>.model_groups) narrows that further: its
# members may use only models both their roles and their team allow.
#
# Services (identity.kind "service") do not get models from roles: a service
# may use the groups its team lists in service_model_groups, else
# data.data.access.services.default_model_groups.
#
# Admin actions ("keys:write", "quota:read", ...) come from the roles'
# permissions; the gateway's admin endpoints query allowed_actions.
package tollgate.authz

import data.data.access

default is_service := false

# is_service is true for service accounts, which have their own model rules.
is_service if input.identity.kind == "service"

# role_models is the set of model names (or "*") the principal's roles grant.
role_models contains model if {
	some role in input.identity.roles
	some group in access.roles[role].model_groups
	some model in access.model_groups[group]
}

# service_groups are the model groups a service may use: its team's list,
# else the default for services.
service_groups := groups if {
	groups := access.teams[input.identity.team].service_model_groups
} else := groups if {
	groups := access.services.default_model_groups
} else := []

# service_models is the set of model names (or "*") a service may use.
service_models contains model if {
	some group in service_groups
	some model in access.model_groups[group]
}

# allowed_models is the set of model names (or "*") the principal may use
# before any team restriction.
allowed_models := service_models if {
	is_service
} else := role_models

# team_restricted is true when the caller's team lists its own model groups;
# it never applies to services, whose team list is service_model_groups.
team_restricted if {
	not is_service
	access.teams[input.identity.team].model_groups
}

# team_models is the set of model names (or "*") the caller's team allows.
team_models contains model if {
	some group in access.teams[input.identity.team].model_groups
	some model in access.model_groups[group]
}

# permits reports whether the model set models includes model m.
permits(models, _) if "*" in models

permits(models, m) if m in models

team_blocks(m) if {
	team_restricted
	not permits(team_models, m)
}

# model_permitted reports whether the principal may use model m; routing
# uses it to pick only models the caller may use.
model_permitted(m) if {
	permits(allowed_models, m)
	not team_blocks(m)
}

default model_allowed := false

# model_allowed is true when the principal may use the requested model.
model_allowed if model_permitted(input.model.requested)

deny contains {
	"code": "no_role",
	"status": 403,
	"message": sprintf("principal %q has no role; give the API key or token a role such as developer", [input.identity.subject]),
} if {
	not is_service
	count(input.identity.roles) == 0
}

deny contains {
	"code": "model_not_allowed",
	"status": 403,
	"message": sprintf("principal %q (roles %v) may not use model %q; use one of %v or ask an admin to grant a role that includes it", [input.identity.subject, input.identity.roles, input.model.requested, sort(allowed_models)]),
} if {
	not is_service
	count(input.identity.roles) > 0
	not permits(allowed_models, input.model.requested)
}

deny contains {
	"code": "model_not_allowed",
	"status": 403,
	"message": sprintf("team %q may only use the model groups %v, which do not include %q; use one of %v or ask an admin to add the model to the team's model_groups", [input.identity.team, access.teams[input.identity.team].model_groups, input.model.requested, sort(team_models)]),
} if {
	team_restricted
	count(input.identity.roles) > 0
	permits(allowed_models, input.model.requested)
	not permits(team_models, input.model.requested)
}

deny contains {
	"code": "model_not_allowed",
	"status": 403,
	"message": sprintf("service %q of team %q may only use the model groups %v, which do not include %q; use one of %v or ask an admin to add a group with it to the team's service_model_groups", [input.identity.subject, input.identity.team, service_groups, input.model.requested, sort(service_models)]),
} if {
	is_service
	not permits(service_models, input.model.requested)
}

# permissions is the set of admin permissions the principal's roles grant:
# action names such as "keys:write", "<resource>:*" or "*".
permissions contains p if {
	some role in input.identity.roles
	some p in access.roles[role].permissions
}

# allowed_actions is the set of admin actions the principal may perform. The
# gateway's admin endpoints evaluate data.tollgate.authz.allowed_actions with
# the caller's input (only identity needs to be filled) and check their action.
allowed_actions contains action if {
	some action in access.actions
	some p in permissions
	grants(p, action)
}

allowed_actions contains p if {
	some p in permissions
	not contains(p, "*")
}

grants("*", _) := true

grants(p, action) if {
	endswith(p, ":*")
	startswith(action, trim_suffix(p, "*"))
}

default admin_allowed(_) := false

# admin_allowed reports whether the principal may perform admin action.
admin_allowed(action) if action in allowed_actions
