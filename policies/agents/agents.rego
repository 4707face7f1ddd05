# Package tollgate.agents decides agent-to-agent calls from the verified
# delegation chain (input.identity.chain: the original subject first, the
# agent that sent the request last) and data.data.agents:
#
#   - max_chain_depth N (default 3): a chain with more than N agents acting
#     in turn is denied with agent_chain_too_deep.
#   - agents {"<subject>": {"act_for": [glob, ...], "models": [...],
#     "tools": [...]}}: an agent listed here may act only for the principals
#     its act_for patterns match (default ["*"]; glob.match with no
#     delimiters), and a request made through it may use only its models
#     and its tools (each list unset: no restriction). Every agent of the
#     chain applies its lists, so delegating can only narrow what is
#     allowed: an agent acting for a restricted agent is restricted too.
#   - require_registration (default false): agents not listed are denied.
package tollgate.agents

default chain := []

chain := input.identity.chain

default max_depth := 3

max_depth := data.data.agents.max_chain_depth if is_number(data.data.agents.max_chain_depth)

default registry := {}

registry := data.data.agents.agents if is_object(data.data.agents.agents)

default require_registration := false

require_registration := data.data.agents.require_registration if is_boolean(data.data.agents.require_registration)

# registered is true when the data registers agents (data only, so that
# partial evaluation drops the per-agent rules when it registers none).
default registered := false

registered if count(registry) > 0

# actors counts the agents acting in turn for the original subject.
actors := count(chain) - 1 if count(chain) > 1

deny contains {
	"code": "agent_chain_too_deep",
	"status": 403,
	"message": sprintf("the delegation chain has %d agents acting in turn, more than the %d allowed; call with fewer hops", [actors, max_depth]),
} if {
	actors > max_depth
}

deny contains {
	"code": "agent_not_registered",
	"status": 403,
	"message": sprintf("agent %q is not registered with this gateway; ask an admin to add it to data.agents.agents", [link.subject]),
} if {
	require_registration
	some i, link in chain
	i > 0
	not registry[link.subject]
}

# acts_for reports whether the agent's entry lets it act for principal.
acts_for(entry, principal) if {
	some pattern in object.get(entry, "act_for", ["*"])
	glob.match(pattern, [], principal)
}

deny contains {
	"code": "agent_not_allowed",
	"status": 403,
	"message": sprintf("agent %q may not act for %q; its act_for list is %v", [link.subject, chain[i - 1].subject, entry.act_for]),
} if {
	registered
	some i, link in chain
	i > 0
	entry := registry[link.subject]
	not acts_for(entry, chain[i - 1].subject)
}

# restricting lists, for every registered agent of the chain, its entry.
restricting contains [link.subject, entry] if {
	registered
	some i, link in chain
	i > 0
	entry := registry[link.subject]
}

deny contains {
	"code": "model_not_allowed",
	"status": 403,
	"message": sprintf("agent %q may not use model %q; use one of %v", [agent, input.model.requested, entry.models]),
} if {
	some [agent, entry] in restricting
	is_array(entry.models)
	not input.model.requested in entry.models
}

deny contains {
	"code": "tool_not_allowed",
	"status": 403,
	"message": sprintf("agent %q may not offer the tool %q to the model; use only %v", [agent, name, entry.tools]),
} if {
	some [agent, entry] in restricting
	is_array(entry.tools)
	some name in input.params.tool_names
	not name in entry.tools
}
