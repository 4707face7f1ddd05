package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/gateway"
	"github.com/tollgate/tollgate/proxy/openai"
)

const policyUsage = `usage: tollgate policy eval --input request.json [--bundle DIR|FILE.tar.gz] [identity flags] [--explain]

Builds the policy input the gateway would build for a chat-completions body
and an identity, evaluates the policy, and prints the input, the decision
and the evaluation time. --input - reads the body from standard input.`

func policy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "eval" {
		fmt.Fprintln(stderr, policyUsage)
		return errors.New("policy: unknown or missing subcommand (want eval)")
	}
	fs := flag.NewFlagSet("policy eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	inputPath := fs.String("input", "", "chat-completions request body (JSON file, - for stdin) (required)")
	bundle := fs.String("bundle", "", "policy bundle: a folder or an opa build .tar.gz (default: the embedded library)")
	entry := fs.String("entrypoint", engine.DefaultEntrypoint, "rule whose value is the decision")
	explain := fs.Bool("explain", false, "also print the rules that produced the decision")
	subject := fs.String("subject", "cli", "identity: subject")
	kind := fs.String("kind", "user", "identity: user, service or agent")
	keyID := fs.String("key-id", "kcli", "identity: API key id")
	team := fs.String("team", "", "identity: team")
	org := fs.String("org", "", "identity: organisation")
	roles := fs.String("roles", "developer", "identity: comma-separated roles")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *inputPath == "" {
		fmt.Fprintln(stderr, policyUsage)
		return errors.New("policy eval: --input is required")
	}
	var body []byte
	var err error
	if *inputPath == "-" {
		body, err = io.ReadAll(os.Stdin)
	} else {
		body, err = os.ReadFile(*inputPath)
	}
	if err != nil {
		return fmt.Errorf("policy eval: read input: %w", err)
	}
	req, err := openai.ParseChatRequest(body)
	if err != nil {
		return fmt.Errorf("policy eval: %s: %w", *inputPath, err)
	}

	cfg := engine.Config{Entrypoint: *entry}
	switch {
	case strings.HasSuffix(*bundle, ".tar.gz") || strings.HasSuffix(*bundle, ".tgz"):
		cfg.Bundles = []bundles.SourceConfig{{Type: bundles.TypeFile, Path: *bundle}}
	case *bundle != "":
		cfg.Bundle = *bundle
	}
	eng, err := engine.New(cfg, nil)
	if err != nil {
		return err
	}
	p, err := gateway.LoadPolicy(ctx, eng, cfg)
	if err != nil {
		return err
	}
	counter, err := tokens.New()
	if err != nil {
		return err
	}
	id := engine.Identity{
		Subject: *subject, Kind: *kind, Auth: "api_key", KeyID: *keyID, Team: *team, Org: *org,
		Roles: splitList(*roles), Groups: []string{},
	}
	in, _, err := engine.NewBuilder(counter, pii.NewScanner()).Build(ctx, req, engine.RequestInfo{
		ID: "cli", Path: "/v1/chat/completions", ReceivedAt: time.Now(),
	}, id)
	if err != nil {
		return err
	}

	// The first evaluation warms caches; the second is the one timed, as a
	// running gateway would see it for a new caller. It also asks for the
	// policy specialized for this caller; the third is timed as a repeat
	// caller's request.
	_, _ = p.Eval(ctx, in)
	start := time.Now()
	d, evalErr := p.Eval(ctx, in)
	took := time.Since(start)
	p.SettleSpecializations()
	start = time.Now()
	_, _ = p.Eval(ctx, in)
	tookSpecialized := time.Since(start)

	inJSON, err := in.JSON()
	if err != nil {
		return err
	}
	out := map[string]any{
		"bundle_revision": p.Revision,
		"input":           inJSON,
		"eval_time_us":    took.Microseconds(),
		// A repeat caller's evaluation, with the specialized policy.
		"specialized_eval_time_us": tookSpecialized.Microseconds(),
	}
	if evalErr != nil {
		out["error"] = evalErr.Error()
		out["decision"] = nil
	} else {
		out["decision"] = d
	}
	if *explain {
		_, hits, _ := p.Explain(ctx, in)
		out["explain"] = hits
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	if evalErr != nil {
		return fmt.Errorf("policy eval: the policy failed, so the gateway would deny (fail closed): %w", evalErr)
	}
	return nil
}

func splitList(s string) []string {
	out := []string{}
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}
