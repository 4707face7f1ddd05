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
#
# Performance: the rules marked "data only" read no input. The gateway
# partially evaluates the library once per bundle, which folds them into
# constants, so a request pays only for lookups in them (object.get, in),
# never for walking the access data.
package tollgate.authz

import data.data.access

# is_service is true for service accounts, which have their own model rules.
# It has no default so that partial evaluation inlines it as one comparison.
is_service if input.identity.kind == "service"

# group_models maps every model group to the set of its model names (data
# only).
group_models[group] := {m | some m in models} if some group, models in access.model_groups

# grants returns the set of model names (or "*") the model groups groups
# hold (data only).
grants(groups) := {m | some group in groups; some m in group_models[group]}

# role_grants maps every role to the models its model groups grant (data
# only).
role_grants[role] := grants(r.model_groups) if some role, r in access.roles

# team_grants maps every team that lists model_groups to the models they
# hold (data only).
team_grants[team] := grants(t.model_groups) if {
	some team, t in access.teams
	t.model_groups
}

# team_service_groups maps every team that lists service_model_groups to
# that list (data only).
team_service_groups[team] := t.service_model_groups if some team, t in access.teams

# default_service_groups are the groups of services whose team has no list
# (data only).
default_service_groups := groups if {
	groups := access.services.default_model_groups
} else := []

# service_grants maps every team with service_model_groups to the models its
# services may use (data only); default_service_grants applies to the rest.
service_grants[team] := grants(groups) if some team, groups in team_service_groups

default_service_grants := grants(default_service_groups)

# role_models is the set of model names (or "*") the principal's roles grant.
role_models contains model if {
	some role in input.identity.roles
	some model in object.get(role_grants, role, set())
}

# team is the caller's team, null when the input names none (no data key is
# null, so lookups fall back to the defaults).
default team := null

team := input.identity.team

# service_groups are the model groups a service may use: its team's list,
# else the default for services.
service_groups := object.get(team_service_groups, team, default_service_groups)

# service_models is the set of model names (or "*") a service may use.
service_models := object.get(service_grants, team, default_service_grants)

# allowed_models is the set of model names (or "*") the principal may use
# before any team restriction.
allowed_models := service_models if is_service

allowed_models := role_models if not is_service

# team_restricted is true when the caller's team lists its own model groups;
# it never applies to services, whose team list is service_model_groups.
team_restricted if {
	not is_service
	input.identity.team in object.keys(team_grants)
}

# team_models is the set of model names (or "*") the caller's team allows.
team_models := object.get(team_grants, input.identity.team, set())

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

# permitted_models returns the set of models among the set models that the
# principal may use: {m | some m in models; model_permitted(m)}, computed
# with set operations so that routing checks its models at once.
permitted_models(models) := granted(models) if not team_restricted

permitted_models(models) := granted(models) if {
	team_restricted
	"*" in team_models
}

permitted_models(models) := granted(models) & team_models if {
	team_restricted
	not "*" in team_models
}

granted(models) := models if "*" in allowed_models

granted(models) := models & allowed_models if not "*" in allowed_models

# roles_grant is true when one of the principal's roles grants the requested
# model. It looks the roles up one by one instead of building role_models.
roles_grant if {
	some role in input.identity.roles
	permits(role_grants[role], input.model.requested)
}

# requested_permitted is model_permitted(input.model.requested), written so
# that a request evaluates only lookups.
requested_permitted if {
	not is_service
	roles_grant
	not team_blocks(input.model.requested)
}

requested_permitted if {
	is_service
	permits(service_models, input.model.requested)
}

default model_allowed := false

# model_allowed is true when the principal may use the requested model.
model_allowed if requested_permitted

# The deny rules test their conditions first; the message, which sorts and
# formats, is built only when a rule denies.

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
	"message": sprintf("principal %q (roles %v) may not use model %q; use one of %v or ask an admin to grant a role that includes it", [input.identity.subject, input.identity.roles, input.model.requested, sort(role_models)]),
} if {
	not is_service
	count(input.identity.roles) > 0
	not roles_grant
}

deny contains {
	"code": "model_not_allowed",
	"status": 403,
	"message": sprintf("team %q may only use the model groups %v, which do not include %q; use one of %v or ask an admin to add the model to the team's model_groups", [input.identity.team, access.teams[input.identity.team].model_groups, input.model.requested, sort(team_models)]),
} if {
	count(team_grants) > 0
	team_restricted
	count(input.identity.roles) > 0
	roles_grant
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
	grants_action(p, action)
}

allowed_actions contains p if {
	some p in permissions
	not contains(p, "*")
}

grants_action("*", _) := true

grants_action(p, action) if {
	endswith(p, ":*")
	startswith(action, trim_suffix(p, "*"))
}

default admin_allowed(_) := false

# admin_allowed reports whether the principal may perform admin action.
admin_allowed(action) if action in allowed_actions
