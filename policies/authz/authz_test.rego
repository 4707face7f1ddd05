package tollgate.authz_test

import data.tollgate.authz

test_model_allowed[tc.note] if {
	some tc in [
		{"note": "developer may use a small model", "roles": ["developer"], "model": "gpt-4o-mini", "want": true},
		{"note": "developer may use a large model", "roles": ["developer"], "model": "gpt-4o", "want": true},
		{"note": "analyst may not use a large model", "roles": ["analyst"], "model": "gpt-4o", "want": false},
		{"note": "admin may use anything", "roles": ["admin"], "model": "some-new-model", "want": true},
		{"note": "several roles combine", "roles": ["analyst", "developer"], "model": "gpt-4.1", "want": true},
		{"note": "unknown role allows nothing", "roles": ["intern"], "model": "echo", "want": false},
		{"note": "auditor uses no models", "roles": ["auditor"], "model": "echo", "want": false},
	]
	got := authz.model_allowed with input as {"identity": {"subject": "u", "kind": "user", "team": "ml", "roles": tc.roles}, "model": {"requested": tc.model}}
	got == tc.want
}

test_deny_model_not_allowed if {
	denies := authz.deny with input as {"identity": {"subject": "ana", "roles": ["analyst"]}, "model": {"requested": "gpt-4o"}}
	some d in denies
	d.code == "model_not_allowed"
	d.status == 403
	contains(d.message, "gpt-4o")
	contains(d.message, "ana")
}

test_deny_no_role if {
	denies := authz.deny with input as {"identity": {"subject": "u", "roles": []}, "model": {"requested": "echo"}}
	{d.code | some d in denies} == {"no_role"}
}

test_allowed_has_no_deny if {
	denies := authz.deny with input as {"identity": {"subject": "dev", "roles": ["developer"]}, "model": {"requested": "echo"}}
	count(denies) == 0
}

test_allowed_models_from_data if {
	got := authz.allowed_models with input as {"identity": {"roles": ["analyst"]}}
		with data.data.access.roles as {"analyst": {"model_groups": ["g"]}}
		with data.data.access.model_groups as {"g": ["m1", "m2"]}
	got == {"m1", "m2"}
}

teams := {
	"finance": {"model_groups": ["small"]},
	"locked": {"model_groups": []},
	"billing": {"service_model_groups": ["large"]},
}

test_team_allow_list[tc.note] if {
	some tc in [
		{"note": "team list narrows a developer", "team": "finance", "roles": ["developer"], "model": "gpt-4o", "want": false},
		{"note": "team list keeps what it names", "team": "finance", "roles": ["developer"], "model": "gpt-4o-mini", "want": true},
		{"note": "team list narrows an admin too", "team": "finance", "roles": ["admin"], "model": "gpt-4.1", "want": false},
		{"note": "team list does not widen roles", "team": "finance", "roles": ["intern"], "model": "echo", "want": false},
		{"note": "empty team list allows nothing", "team": "locked", "roles": ["admin"], "model": "echo", "want": false},
		{"note": "team without a list is not narrowed", "team": "ml", "roles": ["developer"], "model": "gpt-4o", "want": true},
		{"note": "agents follow the user rules", "team": "finance", "roles": ["developer"], "model": "gpt-4o", "want": false, "kind": "agent"},
	]
	got := authz.model_allowed with input as {"identity": {"subject": "u", "kind": object.get(tc, "kind", "user"), "team": tc.team, "roles": tc.roles}, "model": {"requested": tc.model}}
		with data.data.access.teams as teams
	got == tc.want
}

test_deny_team_allow_list if {
	denies := authz.deny with input as {"identity": {"subject": "fin", "kind": "user", "team": "finance", "roles": ["developer"]}, "model": {"requested": "gpt-4o"}}
		with data.data.access.teams as teams
	count(denies) == 1
	some d in denies
	d.code == "model_not_allowed"
	d.status == 403
	contains(d.message, `team "finance"`)
	contains(d.message, "gpt-4o-mini")
	contains(d.message, "model_groups")
}

test_service_models[tc.note] if {
	some tc in [
		{"note": "service uses its team's groups", "team": "billing", "model": "gpt-4o", "want": true},
		{"note": "service is limited to its team's groups", "team": "billing", "model": "gpt-4o-mini", "want": false},
		{"note": "roles give a service no models", "team": "billing", "roles": ["admin"], "model": "echo", "want": false},
		{"note": "service of a team without a list gets the default groups", "team": "ml", "model": "gpt-4o-mini", "want": true},
		{"note": "default groups keep large models out", "team": "ml", "model": "gpt-4o", "want": false},
		{"note": "a user team list does not apply to services", "team": "finance", "model": "gpt-4o-mini", "want": true},
	]
	got := authz.model_allowed with input as {"identity": {"subject": "svc", "kind": "service", "team": tc.team, "roles": object.get(tc, "roles", [])}, "model": {"requested": tc.model}}
		with data.data.access.teams as teams
	got == tc.want
}

test_service_without_default_groups if {
	got := authz.model_allowed with input as {"identity": {"subject": "svc", "kind": "service", "team": "ml", "roles": []}, "model": {"requested": "echo"}}
		with data.data.access.services as {}
	got == false
}

test_deny_service if {
	denies := authz.deny with input as {"identity": {"subject": "billing-svc", "kind": "service", "team": "billing", "roles": []}, "model": {"requested": "echo"}}
		with data.data.access.teams as teams
	count(denies) == 1
	some d in denies
	d.code == "model_not_allowed"
	contains(d.message, `service "billing-svc"`)
	contains(d.message, "service_model_groups")
}

test_service_needs_no_role if {
	denies := authz.deny with input as {"identity": {"subject": "svc", "kind": "service", "team": "billing", "roles": []}, "model": {"requested": "gpt-4.1"}}
		with data.data.access.teams as teams
	count(denies) == 0
}

test_allowed_actions[tc.note] if {
	some tc in [
		{"note": "admin may do every action", "roles": ["admin"], "want": {"bundles:read", "keys:read", "keys:write", "quota:read", "quota:write", "usage:read"}},
		{"note": "auditor reads", "roles": ["auditor"], "want": {"bundles:read", "quota:read", "usage:read"}},
		{"note": "developer has no admin action", "roles": ["developer"], "want": set()},
		{"note": "roles combine", "roles": ["developer", "auditor"], "want": {"bundles:read", "quota:read", "usage:read"}},
		{"note": "no role no action", "roles": [], "want": set()},
	]
	got := authz.allowed_actions with input as {"identity": {"subject": "u", "roles": tc.roles}}
	got == tc.want
}

test_resource_wildcard if {
	got := authz.allowed_actions with input as {"identity": {"roles": ["keeper"]}}
		with data.data.access.roles as {"keeper": {"permissions": ["keys:*", "reports:export"]}}
	got == {"keys:read", "keys:write", "reports:export"}
}

test_admin_allowed[tc.note] if {
	some tc in [
		{"note": "admin writes keys", "roles": ["admin"], "action": "keys:write", "want": true},
		{"note": "auditor reads quota", "roles": ["auditor"], "action": "quota:read", "want": true},
		{"note": "auditor may not write keys", "roles": ["auditor"], "action": "keys:write", "want": false},
		{"note": "unknown action is refused even to admin", "roles": ["admin"], "action": "cluster:destroy", "want": false},
	]
	got := authz.admin_allowed(tc.action) with input as {"identity": {"roles": tc.roles}}
	got == tc.want
}

# The default data must be consistent: every role and team names known
# model groups, and every permission is "*", "<resource>:*" or a listed action.
test_data_groups_exist if {
	every role in data.data.access.roles {
		every group in role.model_groups {
			data.data.access.model_groups[group]
		}
	}
	every team in data.data.access.teams {
		every group in array.concat(object.get(team, "model_groups", []), object.get(team, "service_model_groups", [])) {
			data.data.access.model_groups[group]
		}
	}
	every group in data.data.access.services.default_model_groups {
		data.data.access.model_groups[group]
	}
}

test_data_permissions_known if {
	every role in data.data.access.roles {
		every p in role.permissions {
			known_permission(p)
		}
	}
}

default known_permission(_) := false

known_permission("*")

known_permission(p) if p in data.data.access.actions

known_permission(p) if {
	endswith(p, ":*")
	some a in data.data.access.actions
	startswith(a, trim_suffix(p, "*"))
}

test_known_permission[tc.note] if {
	some tc in [
		{"note": "everything", "p": "*", "want": true},
		{"note": "listed action", "p": "keys:write", "want": true},
		{"note": "resource wildcard", "p": "quota:*", "want": true},
		{"note": "unknown resource wildcard", "p": "cluster:*", "want": false},
		{"note": "unknown action", "p": "keys:delete", "want": false},
	]
	got := known_permission(tc.p)
	got == tc.want
}
