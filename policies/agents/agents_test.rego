package tollgate.agents_test

import data.tollgate.agents

registry := {
	"max_chain_depth": 2,
	"agents": {
		"agent:planner": {"act_for": ["*@acme.example"], "models": ["gpt-4o-mini", "gpt-4o"], "tools": ["search"]},
		"agent:coder": {"act_for": ["agent:planner"]},
	},
}

link(s, k) := {"subject": s, "kind": k}

req(chain, model, tools) := {
	"identity": {"subject": "ana@acme.example", "kind": "user", "chain": chain},
	"model": {"requested": model},
	"params": {"tool_names": tools},
}

ana := link("ana@acme.example", "user")

planner := link("agent:planner", "agent")

coder := link("agent:coder", "agent")

test_chains[tc.note] if {
	some tc in [
		{"note": "no chain", "chain": [], "model": "gpt-4.1", "tools": ["shell"], "want": set()},
		{"note": "user calls directly", "chain": [ana], "model": "gpt-4.1", "tools": [], "want": set()},
		{"note": "planner for ana", "chain": [ana, planner], "model": "gpt-4o", "tools": ["search"], "want": set()},
		{"note": "planner for an outsider", "chain": [link("eve@evil.example", "user"), planner], "model": "gpt-4o", "tools": [], "want": {"agent_not_allowed"}},
		{"note": "planner on a model it may not use", "chain": [ana, planner], "model": "gpt-4.1", "tools": [], "want": {"model_not_allowed"}},
		{"note": "planner offering a tool it may not", "chain": [ana, planner], "model": "gpt-4o", "tools": ["search", "shell"], "want": {"tool_not_allowed"}},
		{"note": "two hops allowed within the planner's lists", "chain": [ana, planner, coder], "model": "gpt-4o", "tools": ["search"], "want": set()},
		{"note": "acting for a restricted agent narrows", "chain": [ana, planner, coder], "model": "gpt-4.1", "tools": ["shell"], "want": {"model_not_allowed", "tool_not_allowed"}},
		{"note": "coder may not act for ana directly", "chain": [ana, coder], "model": "gpt-4o", "tools": [], "want": {"agent_not_allowed"}},
		{"note": "unlisted agents pass unless registration is required", "chain": [ana, link("agent:other", "agent")], "model": "gpt-4o", "tools": [], "want": set()},
		{"note": "three hops are too deep", "chain": [ana, planner, coder, link("agent:other", "agent")], "model": "gpt-4o", "tools": [], "want": {"agent_chain_too_deep"}},
	]
	denies := agents.deny with input as req(tc.chain, tc.model, tc.tools) with data.data.agents as registry
	{d.code | some d in denies} == tc.want
	every d in denies {
		d.status == 403
		contains(d.message, "agent")
	}
}

test_registration_required if {
	data_required := object.union(registry, {"require_registration": true})
	denies := agents.deny with input as req([ana, link("agent:other", "agent")], "gpt-4o", []) with data.data.agents as data_required
	{d.code | some d in denies} == {"agent_not_registered"}
	allowed := agents.deny with input as req([ana, planner], "gpt-4o", []) with data.data.agents as data_required
	count(allowed) == 0
}

test_messages if {
	denies := agents.deny with input as req([ana, planner], "gpt-4.1", ["shell"]) with data.data.agents as registry
	{d.message | some d in denies} == {
		`agent "agent:planner" may not use model "gpt-4.1"; use one of ["gpt-4o-mini", "gpt-4o"]`,
		`agent "agent:planner" may not offer the tool "shell" to the model; use only ["search"]`,
	}
}

# The default data: chains of up to three agents, nobody registered.
test_default_data[tc.note] if {
	some tc in [
		{"note": "three agents", "chain": [ana, planner, coder, link("agent:x", "agent")], "want": set()},
		{"note": "four agents", "chain": [ana, planner, coder, link("agent:x", "agent"), link("agent:y", "agent")], "want": {"agent_chain_too_deep"}},
	]
	denies := agents.deny with input as req(tc.chain, "gpt-4o", [])
	{d.code | some d in denies} == tc.want
}

test_bad_data_falls_back if {
	denies := agents.deny with input as req([ana, planner, coder, link("agent:x", "agent")], "gpt-4o", [])
		with data.data.agents as {"max_chain_depth": "two", "agents": [], "require_registration": "yes"}
	count(denies) == 0
}
