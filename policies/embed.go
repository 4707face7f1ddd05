// Package policies embeds Tollgate's default policy library, so that the
// gateway runs without any files beside the binary (make run).
package policies

import "embed"

// FS holds the default library: the Rego modules of agents, authz, guardrails,
// main, pii, quota and routing, their tests, and data/.
//
//go:embed agents authz guardrails main pii quota routing data
var FS embed.FS
