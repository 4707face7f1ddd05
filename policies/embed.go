// Package policies embeds Tollgate's default policy library, so that the
// gateway runs without any files beside the binary (make run).
package policies

import "embed"

// FS holds the default library: the Rego modules of authz, main, pii and
// quota, their tests, and data/.
//
//go:embed authz main pii quota data
var FS embed.FS
