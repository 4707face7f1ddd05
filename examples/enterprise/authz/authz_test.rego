package tollgate.authz_test

import data.tollgate.authz

user(subject, team, roles) := {"subject": subject, "kind": "user", "team": team, "roles": roles}

service(subject, team) := {"subject": subject, "kind": "service", "team": team, "roles": []}

test_models[tc.note] if {
	some tc in [
		{"note": "engineer uses the large model", "id": user("ana", "ml", ["engineer"]), "model": "gpt-4.1", "want": true},
		{"note": "engineer may ask for auto", "id": user("ana", "ml", ["engineer"]), "model": "auto", "want": true},
		{"note": "finance narrows an analyst to small models", "id": user("fred", "finance", ["analyst"]), "model": "gpt-4o", "want": false},
		{"note": "finance analyst uses a small model", "id": user("fred", "finance", ["analyst"]), "model": "gemini-2.0-flash", "want": true},
		{"note": "support analyst uses the medium model", "id": user("sue", "support", ["analyst"]), "model": "gpt-4o", "want": true},
		{"note": "analyst role has no large model", "id": user("sue", "support", ["analyst"]), "model": "gpt-4.1", "want": false},
		{"note": "platform admin uses anything", "id": user("cto", "platform", ["platform-admin"]), "model": "o3", "want": true},
		{"note": "finops uses no model", "id": user("fin", "finance", ["finops"]), "model": "gpt-4o-mini", "want": false},
		{"note": "search service uses medium", "id": service("search-indexer", "search"), "model": "gpt-4o", "want": true},
		{"note": "search service has no large model", "id": service("search-indexer", "search"), "model": "gpt-4.1", "want": false},
		{"note": "support bot uses small only", "id": service("support-bot", "support"), "model": "gpt-4o-mini", "want": true},
		{"note": "support bot may not use auto", "id": service("support-bot", "support"), "model": "auto", "want": false},
		{"note": "service of an unlisted team uses nothing", "id": service("etl", "data"), "model": "gpt-4o-mini", "want": false},
	]
	got := authz.model_allowed with input as {"identity": tc.id, "model": {"requested": tc.model}}
	got == tc.want
}

test_deny_messages[tc.note] if {
	some tc in [
		{"note": "team list", "id": user("fred", "finance", ["analyst"]), "model": "gpt-4o", "want": `team "finance" may only use the model groups ["auto", "small"]`},
		{"note": "role", "id": user("sue", "support", ["analyst"]), "model": "gpt-4.1", "want": `principal "sue" (roles ["analyst"]) may not use model "gpt-4.1"`},
		{"note": "service", "id": service("etl", "data"), "model": "gpt-4o-mini", "want": `service "etl" of team "data" may only use the model groups []`},
		{"note": "no role", "id": user("new", "ml", []), "model": "gpt-4o-mini", "want": `principal "new" has no role`},
	]
	denies := authz.deny with input as {"identity": tc.id, "model": {"requested": tc.model}}
	count(denies) == 1
	some d in denies
	startswith(d.message, tc.want)
}

test_allowed_actions[tc.note] if {
	some tc in [
		{"note": "platform admin", "roles": ["platform-admin"], "want": {"bundles:read", "keys:read", "keys:write", "quota:read", "quota:write", "usage:read"}},
		{"note": "finops manages quota", "roles": ["finops"], "want": {"quota:read", "quota:write", "usage:read"}},
		{"note": "security manages keys", "roles": ["security"], "want": {"bundles:read", "keys:read", "keys:write", "usage:read"}},
		{"note": "engineer", "roles": ["engineer"], "want": set()},
	]
	got := authz.allowed_actions with input as {"identity": {"roles": tc.roles}}
	got == tc.want
	every a in tc.want {
		authz.admin_allowed(a) with input as {"identity": {"roles": tc.roles}}
	}
	not authz.admin_allowed("cluster:destroy") with input as {"identity": {"roles": tc.roles}}
}

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
}

# Every model a group names has a price, so USD budgets can be charged.
test_data_models_priced if {
	every group in data.data.access.model_groups {
		every model in group {
			model in ({"*", "auto"} | object.keys(data.data.catalog.models))
		}
	}
}
