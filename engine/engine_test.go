package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/policies"
)

// defaultBundle loads the library embedded in the binary.
func defaultBundle(t testing.TB) *bundles.Bundle {
	t.Helper()
	b, err := bundles.LoadFS(policies.FS, "embedded")
	if err != nil {
		t.Fatalf("load embedded library: %v", err)
	}
	return b
}

// mapBundle loads a bundle from files given as name → content.
func mapBundle(t testing.TB, files map[string]string) *bundles.Bundle {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, content := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	b, err := bundles.LoadFS(fsys, "test-bundle")
	if err != nil {
		t.Fatalf("load test bundle: %v", err)
	}
	return b
}

// mainBundle is a bundle with one module in package tollgate.main.
func mainBundle(t testing.TB, rego string) *bundles.Bundle {
	t.Helper()
	return mapBundle(t, map[string]string{"main/main.rego": "package tollgate.main\n\n" + rego + "\n"})
}

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	// Tests wait for specializations; the worker need not rest between
	// them, and the race detector slows partial evaluation past its
	// production time limit.
	e.specPace = 0
	e.specTimeout = time.Minute
	return e
}

func compile(t testing.TB, e *Engine, b *bundles.Bundle) *Policy {
	t.Helper()
	p, err := e.Compile(context.Background(), b)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

// chatInput is a request by subject with roles for model, holding the PII
// types given.
func chatInput(subject string, roles []string, model string, piiTypes ...string) *Input {
	in := &Input{
		Request: RequestInfo{
			ID: "req_1", Path: "/v1/chat/completions",
			ReceivedAt: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		},
		Identity: Identity{Subject: subject, Kind: "user", Auth: "api_key", KeyID: "k_" + subject, Team: "ml", Roles: roles},
		Model:    ModelInfo{Requested: model},
		Params:   Params{Messages: 1},
		Tokens:   Tokens{Prompt: 20, MaxCompletion: DefaultMaxCompletion, EstimatedTotal: 20 + DefaultMaxCompletion},
	}
	for _, typ := range piiTypes {
		in.PII.Types = append(in.PII.Types, typ)
		in.PII.Findings = append(in.PII.Findings, PIIFinding{Type: typ, Count: 1, Role: "user", Where: "content"})
	}
	return in
}

func TestEvalDefaultLibrary(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Config{})
	p := compile(t, e, defaultBundle(t))
	tests := []struct {
		name string
		in   *Input
		want Decision
		// wantMessage are substrings of the first deny message.
		wantMessage []string
	}{
		{
			name: "developer on echo with an e-mail address",
			in:   chatInput("dev", []string{"developer"}, "echo", "EMAIL"),
			want: Decision{
				Allow:  true,
				Mask:   Mask{Rules: []MaskRule{{Types: []string{"EMAIL"}, Action: ActionRedact}}},
				Limits: []Limit{{Scope: "key:k_dev", Window: "minute", Tokens: 200000}},
			},
		},
		{
			name: "developer on a large model with two PII types",
			in:   chatInput("dev", []string{"developer"}, "gpt-4o", "CREDIT_CARD", "EMAIL"),
			want: Decision{
				Allow:  true,
				Mask:   Mask{Rules: []MaskRule{{Types: []string{"CREDIT_CARD", "EMAIL"}, Action: ActionRedact}}},
				Limits: []Limit{{Scope: "key:k_dev", Window: "minute", Tokens: 200000}},
			},
		},
		{
			name: "no PII means no mask rules",
			in:   chatInput("dev", []string{"developer"}, "gpt-4o-mini"),
			want: Decision{
				Allow:  true,
				Limits: []Limit{{Scope: "key:k_dev", Window: "minute", Tokens: 200000}},
			},
		},
		{
			name: "analyst on gpt-4o",
			in:   chatInput("ana", []string{"analyst"}, "gpt-4o"),
			want: Decision{
				Deny:   []Deny{{Code: "model_not_allowed", Status: 403}},
				Limits: []Limit{{Scope: "key:k_ana", Window: "minute", Tokens: 200000}},
			},
			wantMessage: []string{`"ana"`, `"gpt-4o"`, "analyst"},
		},
		{
			name: "no role",
			in:   chatInput("svc", nil, "echo"),
			want: Decision{
				Deny:   []Deny{{Code: "no_role", Status: 403}},
				Limits: []Limit{{Scope: "key:k_svc", Window: "minute", Tokens: 200000}},
			},
			wantMessage: []string{`"svc"`, "developer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := p.Eval(context.Background(), tt.in)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			checkEnforceable(t, got)
			// Route, stream and log options are the routing and logging
			// policies' business; this checks authz, pii and quota.
			opts := cmp.Options{
				cmpopts.EquateEmpty(),
				cmpopts.IgnoreFields(Deny{}, "Message"),
				cmpopts.IgnoreFields(Decision{}, "Route", "Stream", "Log"),
			}
			if diff := cmp.Diff(tt.want, got, opts); diff != "" {
				t.Errorf("decision mismatch (-want +got):\n%s", diff)
			}
			for _, w := range tt.wantMessage {
				if len(got.Deny) == 0 || !strings.Contains(got.Deny[0].Message, w) {
					t.Errorf("deny = %+v, want a message mentioning %s", got.Deny, w)
				}
			}
		})
	}
}

func TestEvalFailsClosedOnInvalidDecision(t *testing.T) {
	t.Parallel()
	// Each bundle returns a valid decision for the smoke input, so it
	// compiles, and an invalid one for real requests.
	tests := []struct {
		name     string
		decision string
	}{
		{"bad window", `{"allow": true, "limits": [{"scope": "k", "window": "week", "tokens": 1}]}`},
		{"deny status 200", `{"allow": false, "deny": [{"code": "x", "status": 200}]}`},
		{"allow is a string", `{"allow": "yes"}`},
		{"unknown field", `{"allow": true, "budget": 1}`},
		{"bad mask action", `{"allow": true, "mask": {"rules": [{"types": ["EMAIL"], "action": "shred"}]}}`},
		{"route without model", `{"allow": true, "route": {"targets": [{"provider": "openai"}]}}`},
		{"not an object", `"allow"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, Config{})
			p := compile(t, e, mainBundle(t, `decision := {"allow": true} if input.identity.subject == "smoke"

decision := `+tt.decision+` if input.identity.subject != "smoke"`))
			got, err := p.Eval(context.Background(), chatInput("dev", []string{"developer"}, "echo"))
			if !errors.Is(err, ErrInvalidDecision) {
				t.Fatalf("Eval = %+v, %v; want ErrInvalidDecision", got, err)
			}
			if got.Allow {
				t.Errorf("invalid decision came back allowed: %+v", got)
			}
		})
	}
}

func TestEvalUndefined(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Config{})
	p := compile(t, e, mainBundle(t, `decision := {"allow": true} if input.identity.subject == "smoke"`))
	got, err := p.Eval(context.Background(), chatInput("dev", []string{"developer"}, "echo"))
	if !errors.Is(err, ErrUndefined) {
		t.Fatalf("Eval = %+v, %v; want ErrUndefined", got, err)
	}
	if got.Allow {
		t.Errorf("undefined decision came back allowed: %+v", got)
	}
}

func TestEvalConflictFailsClosed(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Config{})
	p := compile(t, e, mainBundle(t, `decision := {"allow": true}

decision := {"allow": false} if input.identity.subject == "conflict"`))
	if _, err := p.Eval(context.Background(), chatInput("ok", []string{"developer"}, "echo")); err != nil {
		t.Fatalf("Eval without conflict: %v", err)
	}
	got, err := p.Eval(context.Background(), chatInput("conflict", []string{"developer"}, "echo"))
	if err == nil || got.Allow {
		t.Fatalf("Eval with conflicting rules = %+v, %v; want an error and no allow", got, err)
	}
	if !strings.Contains(err.Error(), "evaluate policy") {
		t.Errorf("error %q does not name the operation", err)
	}
}

func TestCompileRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		bundle map[string]string
		is     error    // when set, the error must wrap it
		want   []string // substrings of the error
	}{
		{
			name:   "unsafe variable",
			bundle: map[string]string{"main/main.rego": "package tollgate.main\n\ndecision := {\"allow\": x}\n"},
			want:   []string{"compile bundle test-bundle", "x"},
		},
		{
			name:   "type error",
			bundle: map[string]string{"main/main.rego": "package tollgate.main\n\ndecision := {\"allow\": count(1) > 0}\n"},
			want:   []string{"compile bundle test-bundle", "count"},
		},
		{
			name:   "decision invalid for every input",
			bundle: map[string]string{"main/main.rego": "package tollgate.main\n\ndecision := {\"allow\": true, \"limits\": [{\"scope\": \"k\", \"window\": \"week\", \"tokens\": 1}]}\n"},
			is:     ErrInvalidDecision,
			want:   []string{"smoke evaluation", "limits[0].window"},
		},
		{
			name:   "decision undefined for the smoke input",
			bundle: map[string]string{"main/main.rego": "package tollgate.main\n\ndecision := {\"allow\": true} if input.identity.subject == \"alice\"\n"},
			is:     ErrUndefined,
			want:   []string{"smoke evaluation"},
		},
		{
			name:   "no entrypoint rule at all",
			bundle: map[string]string{"other/other.rego": "package tollgate.other\n\nx := 1\n"},
			is:     ErrUndefined,
		},
		{
			name: "bad price date",
			bundle: map[string]string{
				"main/main.rego":         "package tollgate.main\n\ndecision := {\"allow\": true}\n",
				"data/catalog/data.json": `{"models": {"gpt-4o": {"prices": [{"effective": "01/10/2024", "input": 2.5}]}}}`,
			},
			want: []string{`data.data.catalog.models["gpt-4o"].prices[0].effective`, "01/10/2024"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, Config{})
			p, err := e.Compile(context.Background(), mapBundle(t, tt.bundle))
			if err == nil {
				t.Fatalf("Compile = %+v, want an error", p)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Compile error %q does not wrap %q", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if e.Current() != nil {
				t.Errorf("a failed Compile made a policy current")
			}
		})
	}
}

func TestLoadKeepsLastGoodPolicy(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Config{})
	ctx := context.Background()
	good := defaultBundle(t)
	if err := e.Load(ctx, good); err != nil {
		t.Fatalf("Load(default): %v", err)
	}
	before := e.Current()
	if before == nil || before.Revision != good.Revision {
		t.Fatalf("Current() = %+v, want revision %s", before, good.Revision)
	}
	if err := e.Load(ctx, mainBundle(t, `decision := {"allow": "yes"}`)); !errors.Is(err, ErrInvalidDecision) {
		t.Fatalf("Load(bad) = %v, want ErrInvalidDecision", err)
	}
	if got := e.Current(); got != before {
		t.Errorf("after a failed Load, Current() = %+v, want the last good policy %s", got, before.Revision)
	}
}

func TestCustomEntrypoint(t *testing.T) {
	t.Parallel()
	b := mapBundle(t, map[string]string{"acme/gate.rego": `package acme.gate

verdict := {"allow": true, "log": {"store_prompt": false, "tags": {"by": "acme"}}} if "developer" in input.identity.roles

verdict := {"allow": false, "deny": [{"code": "acme_only_developers", "status": 401}]} if not "developer" in input.identity.roles
`})
	e := newEngine(t, Config{Entrypoint: "data.acme.gate.verdict"})
	p := compile(t, e, b)
	got, err := p.Eval(context.Background(), chatInput("dev", []string{"developer"}, "echo"))
	if err != nil {
		t.Fatalf("Eval: %v", err)
	}
	if !got.Allow || got.Log.Tags["by"] != "acme" {
		t.Errorf("developer decision = %+v, want allowed with tag by=acme", got)
	}
	got, err = p.Eval(context.Background(), chatInput("ana", []string{"analyst"}, "echo"))
	if err != nil {
		t.Fatalf("Eval: %v", err)
	}
	want := []Deny{{Code: "acme_only_developers", Message: "request denied by policy (acme_only_developers)", Status: 401}}
	if diff := cmp.Diff(want, got.Deny); got.Allow || diff != "" {
		t.Errorf("analyst decision = %+v, want denied (-want +got deny):\n%s", got, diff)
	}

	// The default entrypoint does not exist in this bundle.
	if _, err := newEngine(t, Config{}).Compile(context.Background(), b); !errors.Is(err, ErrUndefined) {
		t.Errorf("Compile with the default entrypoint = %v, want ErrUndefined", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		entrypoint string
		ok         bool
	}{
		{"", true},
		{DefaultEntrypoint, true},
		{"data.acme.gate.verdict", true},
		{`data.acme["gate"].verdict`, true},
		{"input.decision", false},
		{"tollgate.main.decision", false},
		{"data", false},
		{"data.", false},
		{"data.x[", false},
		{"data.x y", false},
		{"data.x.y + 1", false},
		{" data.x", false},
		{"decision", false},
	}
	for _, tt := range tests {
		t.Run(tt.entrypoint, func(t *testing.T) {
			t.Parallel()
			cfg := Config{Entrypoint: tt.entrypoint}
			err := cfg.Validate()
			if tt.ok {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error")
			}
			for _, w := range []string{"policy.entrypoint", fmt.Sprintf("%q", tt.entrypoint), DefaultEntrypoint} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
			if e, err := New(cfg, nil); err == nil {
				t.Errorf("New accepted entrypoint %q: %+v", tt.entrypoint, e)
			}
		})
	}
}

func TestCurrentAndActivate(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e, err := New(Config{}, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if p := e.Current(); p != nil {
		t.Fatalf("Current() before any Load = %+v, want nil", p)
	}
	p1 := compile(t, e, defaultBundle(t))
	p2 := compile(t, e, mainBundle(t, `decision := {"allow": true}`))
	if p1.Revision == p2.Revision {
		t.Fatalf("two different bundles share revision %s", p1.Revision)
	}
	if p := e.Current(); p != nil {
		t.Fatalf("Compile made a policy current: %+v", p)
	}

	e.Activate(p1)
	if got := e.Current(); got != p1 {
		t.Fatalf("after Activate(p1), Current() = %v, want %v", got.Revision, p1.Revision)
	}
	e.Activate(p2)
	if got := e.Current(); got != p2 {
		t.Fatalf("after Activate(p2), Current() = %v, want %v", got.Revision, p2.Revision)
	}
	d, err := e.Current().Eval(context.Background(), chatInput("ana", []string{"analyst"}, "gpt-4o"))
	if err != nil || !d.Allow {
		t.Errorf("Eval on the swapped-in policy = %+v, %v; want allowed", d, err)
	}

	type record struct {
		Msg              string `json:"msg"`
		Revision         string `json:"revision"`
		PreviousRevision string `json:"previous_revision"`
	}
	var got []record
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		got = append(got, r)
	}
	want := []record{
		{Msg: "policy activated", Revision: p1.Revision},
		{Msg: "policy activated", Revision: p2.Revision, PreviousRevision: p1.Revision},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("activation logs mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadActivates(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Config{})
	b := defaultBundle(t)
	if err := e.Load(context.Background(), b); err != nil {
		t.Fatalf("Load: %v", err)
	}
	p := e.Current()
	if p == nil {
		t.Fatal("Current() after Load = nil")
	}
	if p.Revision != b.Revision || !strings.HasPrefix(p.Revision, "sha256:") {
		t.Errorf("Revision = %q, want the bundle's %q", p.Revision, b.Revision)
	}
	if p.Prices == nil {
		t.Error("Prices = nil, want the bundle's price book")
	}
}

// tally counts the decisions of a policy.
type tally struct {
	p         *Policy
	decisions atomic.Int64
}

// TestEvalDuringActivate evaluates from many goroutines while another one
// compiles and activates new bundles. Every decision must come from one
// whole policy: the revision tag a policy writes into its decision must be
// that of the policy the request took, and that policy must be one that was
// activated. Run with -race.
func TestEvalDuringActivate(t *testing.T) {
	t.Parallel()
	const (
		bundleCount = 4
		rounds      = 8
		readers     = 6
	)
	e := newEngine(t, Config{})
	ctx := context.Background()

	// The bundles differ in data only; the module is the same.
	bs := make([]*bundles.Bundle, bundleCount)
	index := map[string]int{} // revision → i; its decisions carry tag "r<i>" and tokens 1000+i
	for i := range bs {
		bs[i] = mapBundle(t, map[string]string{
			"main/main.rego": `package tollgate.main

decision := {
	"allow": "developer" in input.identity.roles,
	"limits": [{"scope": sprintf("key:%s", [input.identity.key_id]), "window": "minute", "tokens": data.data.rev.tokens}],
	"log": {"store_prompt": false, "tags": {"rev": data.data.rev.n}},
}
`,
			"data/rev/data.json": fmt.Sprintf(`{"n": "r%d", "tokens": %d}`, i, 1000+i),
		})
		index[bs[i].Revision] = i
	}
	if len(index) != bundleCount {
		t.Fatalf("%d bundles have %d distinct revisions", bundleCount, len(index))
	}

	var (
		mu        sync.Mutex
		activated = map[string]bool{}
		evals     atomic.Int64
		newest    atomic.Pointer[tally] // the policy activated last
		done      = make(chan struct{})
		wg        sync.WaitGroup
		// swapped is closed at the next activation; readers that did
		// their share on one policy wait for it, so that they do not
		// starve the compiling goroutine on a small GOMAXPROCS.
		swapped atomic.Pointer[chan struct{}]
	)
	activate := func(b *bundles.Bundle) error {
		p, err := e.Compile(ctx, b)
		if err != nil {
			return err
		}
		mu.Lock()
		activated[p.Revision] = true
		mu.Unlock()
		newest.Store(&tally{p: p})
		e.Activate(p)
		next := make(chan struct{})
		if old := swapped.Swap(&next); old != nil {
			close(*old)
		}
		return nil
	}
	if err := activate(bs[0]); err != nil {
		t.Fatal(err)
	}

	seen := make([]map[string]int, readers)
	errs := make([]error, readers)
	for r := range readers {
		seen[r] = map[string]int{}
		wg.Go(func() {
			in := chatInput("dev", []string{"developer"}, "echo")
			onThisPolicy := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				next := swapped.Load()
				p := e.Current()
				d, err := p.Eval(ctx, in)
				if err != nil {
					errs[r] = fmt.Errorf("revision %s: %w", p.Revision, err)
					return
				}
				i := index[p.Revision]
				if tag := d.Log.Tags["rev"]; tag != fmt.Sprintf("r%d", i) {
					errs[r] = fmt.Errorf("policy %s made a decision tagged %q, want r%d", p.Revision, tag, i)
					return
				}
				if !d.Allow || len(d.Limits) != 1 || d.Limits[0].Tokens != 1000+int64(i) {
					errs[r] = fmt.Errorf("policy %s: decision %+v, want allowed with one limit of %d tokens", p.Revision, d, 1000+i)
					return
				}
				seen[r][p.Revision]++
				evals.Add(1)
				if n := newest.Load(); n.p == p {
					n.decisions.Add(1)
				}
				if onThisPolicy++; onThisPolicy == 50 {
					select {
					case <-*next:
					case <-done:
						return
					}
					onThisPolicy = 0
				}
			}
		})
	}

	// Activate bundles in turn; before each swap, wait until a reader
	// decided on the new policy. A reader only waits for a swap after a
	// decision on a policy it loaded after the last swap, so one comes.
	activateErr := func() error {
		deadline := time.Now().Add(time.Minute)
		for i := 1; i <= rounds; i++ {
			if err := activate(bs[i%bundleCount]); err != nil {
				return err
			}
			for newest.Load().decisions.Load() == 0 {
				if time.Now().After(deadline) {
					return fmt.Errorf("round %d: readers made no progress", i)
				}
				runtime.Gosched()
			}
		}
		return nil
	}()
	close(done)
	wg.Wait()

	if activateErr != nil {
		t.Fatalf("activate: %v", activateErr)
	}
	for r, err := range errs {
		if err != nil {
			t.Errorf("reader %d: %v", r, err)
		}
	}
	all := map[string]int{}
	for _, s := range seen {
		for rev, n := range s {
			all[rev] += n
		}
	}
	for rev := range all {
		if !activated[rev] {
			t.Errorf("a decision came from revision %s, which was never activated", rev)
		}
	}
	for rev := range activated {
		if all[rev] == 0 {
			t.Errorf("activated revision %s made no decision", rev)
		}
	}
	t.Logf("%d evaluations over %d revisions", evals.Load(), len(all))
}

func TestAllowedActions(t *testing.T) {
	t.Parallel()
	p := compile(t, newEngine(t, Config{}), defaultBundle(t))
	tests := []struct {
		roles []string
		want  []string
	}{
		{[]string{"admin"}, []string{"bundles:read", "keys:read", "keys:write", "quota:read", "quota:write", "usage:read"}},
		{[]string{"developer"}, []string{}},
		{nil, []string{}},
	}
	for _, tt := range tests {
		got, err := p.AllowedActions(t.Context(), Identity{Subject: "x", Kind: "user", Roles: tt.roles})
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("roles %v: actions %v, %v; want %v", tt.roles, got, err, tt.want)
		}
	}
	// A bundle without the rule allows nothing; one whose rule is not a set
	// of strings fails.
	none := compile(t, newEngine(t, Config{}), mainBundle(t, `decision := {"allow": true}`))
	if got, err := none.AllowedActions(t.Context(), Identity{Roles: []string{"admin"}}); err != nil || len(got) != 0 {
		t.Errorf("bundle without authz: %v, %v; want no actions", got, err)
	}
	bad := compile(t, newEngine(t, Config{AdminEntrypoint: "data.tollgate.main.actions"}), mainBundle(t, "decision := {\"allow\": true}\n\nactions := [1]"))
	if _, err := bad.AllowedActions(t.Context(), Identity{}); !errors.Is(err, ErrInvalidDecision) {
		t.Errorf("actions [1]: error %v, want ErrInvalidDecision", err)
	}
}

func TestCustomDetectorsCompile(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Config{})
	good := overrideData(t, defaultBundle(t), map[string]string{"data.pii.custom_detectors": `[{"type": "EMPLOYEE_ID", "pattern": "EMP-[0-9]{6}"}]`})
	p := compile(t, e, good)
	if p.Scanner() == nil || len(p.Scanner().Scan("badge EMP-123456", nil)) != 1 {
		t.Fatal("the bundle's custom detector does not find its value")
	}
	if compile(t, e, defaultBundle(t)).Scanner() != nil {
		t.Error("a bundle without custom detectors got its own scanner; want the default")
	}
	bad := overrideData(t, defaultBundle(t), map[string]string{"data.pii.custom_detectors": `[{"type": "EMPLOYEE_ID", "pattern": "EMP-[0-9"}]`})
	if _, err := e.Compile(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "custom_detectors") {
		t.Fatalf("a detector that does not compile: %v; want the bundle refused, naming custom_detectors", err)
	}
}
