// Package engine turns a request into the policy input, evaluates the
// policy bundle on an embedded OPA engine and returns a typed Decision.
//
// A bundle is compiled into a Policy once (prepared query), smoke-evaluated,
// and only then made current; requests take the current Policy at their start
// and finish on it, so a swap never mixes revisions within a request.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/engine/pii"
)

// DefaultEntrypoint is the rule the gateway evaluates.
const DefaultEntrypoint = "data.tollgate.main.decision"

// DefaultAdminEntrypoint is the rule the admin endpoints evaluate: the set
// of admin actions the caller may perform.
const DefaultAdminEntrypoint = "data.tollgate.authz.allowed_actions"

// Config is the policy section of the configuration.
type Config struct {
	// Config says where bundles come from: policy.bundle (one folder),
	// policy.bundles (dir, file and http sources) and policy.signing.
	// Nothing configured means the library embedded in the binary.
	bundles.Config `yaml:",inline"`
	// Entrypoint is the rule whose value is the decision.
	Entrypoint string `yaml:"entrypoint"`
	// AdminEntrypoint is the rule whose value is the set of admin actions
	// the caller may perform (the input has only identity filled).
	AdminEntrypoint string `yaml:"admin_entrypoint"`
	// SpecializationCacheMB is the memory, in MiB (estimated), a policy's
	// queries specialized for its callers (more exactly, for the stable
	// parts of their inputs) may take; 0 means
	// DefaultSpecializationCacheMB, a negative number turns specialization
	// off. See specialize.go.
	SpecializationCacheMB int `yaml:"specialization_cache_mb"`
	// Shadow, when set, names a candidate bundle evaluated on every request
	// beside the live one without being enforced (shadow mode).
	Shadow *bundles.Config `yaml:"shadow"`
}

// Validate reports configuration problems.
func (c *Config) Validate() error {
	var errs []error
	for _, ep := range []struct{ name, value, example string }{
		{"entrypoint", c.Entrypoint, DefaultEntrypoint},
		{"admin_entrypoint", c.AdminEntrypoint, DefaultAdminEntrypoint},
	} {
		if ep.value == "" {
			continue
		}
		if _, err := ast.ParseRef(ep.value); err != nil || !strings.HasPrefix(ep.value, "data.") {
			errs = append(errs, fmt.Errorf("policy.%s: %q is not a rule reference (want e.g. %q)", ep.name, ep.value, ep.example))
		}
	}
	errs = append(errs, c.Config.Validate())
	if c.Shadow != nil {
		if len(c.Shadow.Sources()) == 0 {
			errs = append(errs, errors.New("policy.shadow: no bundle; set policy.shadow.bundle (a folder) or policy.shadow.bundles"))
		} else if err := c.Shadow.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("policy.shadow: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Engine holds the current policy.
type Engine struct {
	entrypoint string
	admin      string
	log        *slog.Logger
	current    atomic.Pointer[Policy]
	// specBudget is the specialization cache's memory budget in bytes (0:
	// off); specPace the pace of its worker (see specializer.pace).
	specBudget int64
	specPace   int
	// specTimeout, when set, replaces specTimeout (tests under -race).
	specTimeout time.Duration
	// spec counts what the specialization caches of every policy did.
	spec specCounters
}

// New returns an engine with no policy loaded; it denies until Activate.
func New(cfg Config, log *slog.Logger) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	entry := cfg.Entrypoint
	if entry == "" {
		entry = DefaultEntrypoint
	}
	admin := cfg.AdminEntrypoint
	if admin == "" {
		admin = DefaultAdminEntrypoint
	}
	mb := cfg.SpecializationCacheMB
	switch {
	case mb == 0:
		mb = DefaultSpecializationCacheMB
	case mb < 0:
		mb = 0
	}
	return &Engine{entrypoint: entry, admin: admin, log: log, specBudget: int64(mb) << 20, specPace: specPace}, nil
}

// Policy is a compiled bundle, ready to evaluate.
type Policy struct {
	// Revision identifies the bundle that made every decision of this policy.
	Revision string
	// Source names where the bundle came from; Modules counts its modules.
	Source  string
	Modules int
	// Prices is the bundle's price book.
	Prices *PriceBook
	// query is the entrypoint prepared as written; Explain traces it, so
	// that the rules it reports are the bundle's own.
	query rego.PreparedEvalQuery
	// eval is what Eval runs: the entrypoint prepared from its partial
	// evaluation (see preparePartial), else query.
	eval rego.PreparedEvalQuery
	// partial is true when eval comes from partial evaluation.
	partial bool
	// fields is the part of the input eval can read (nil: all of it).
	fields  fieldSet
	phrases []phraseRule
	models  map[string]bool
	// admin and response are the admin and response entrypoints, prepared.
	admin    rego.PreparedEvalQuery
	response rego.PreparedEvalQuery
	// scanner has the bundle's custom PII detectors; nil when it has none.
	scanner *pii.Scanner
	// answerRules is true when guardrail data has rules for answers.
	answerRules bool
	// spec caches the residual specialized per stable input; nil when
	// off or when the bundle has no residual.
	spec *specializer
}

// Scanner returns the PII scanner with the bundle's custom detectors, or
// nil when the bundle has none (the gateway's default scanner serves).
func (p *Policy) Scanner() *pii.Scanner { return p.scanner }

// Compile prepares b for evaluation and smoke-evaluates it on a sample input;
// the result is not yet current (see Activate).
func (e *Engine) Compile(ctx context.Context, b *bundles.Bundle) (*Policy, error) {
	store := inmem.NewFromObjectWithOpts(b.Data, inmem.OptReturnASTValuesOnRead(true))
	opts := []func(*rego.Rego){
		rego.Query(e.entrypoint),
		rego.Store(store),
		rego.StoreReadAST(true),
		rego.SetRegoVersion(ast.RegoV1),
	}
	modules := make([]func(*rego.Rego), 0, len(b.Modules))
	for _, m := range b.Modules {
		modules = append(modules, rego.ParsedModule(m))
	}
	// Partial evaluation compiles the modules into compiler and adds its
	// support rules to it; the query as written is then prepared from the
	// same compiler rather than compiling the modules again. When partial
	// evaluation fails, the modules are compiled on their own, as before.
	compiler := newCompiler()
	fast, partialErr := preparePartial(ctx, slices.Concat(opts, modules, []func(*rego.Rego){rego.Compiler(compiler)}))
	var q, admin, response rego.PreparedEvalQuery
	var err error
	adminOpts := append([]func(*rego.Rego){rego.Query(e.admin)}, opts[1:]...)
	responseOpts := append([]func(*rego.Rego){rego.Query(DefaultResponseEntrypoint)}, opts[1:]...)
	// Preparing reads terms that another bundle's partial evaluation may be
	// rewriting (see partialMu), and type-checks (see compileMu).
	partialMu.RLock()
	compileMu.Lock()
	if partialErr == nil {
		q, err = rego.New(append(opts, rego.Compiler(compiler))...).PrepareForEval(ctx)
		if err == nil {
			admin, err = rego.New(append(adminOpts, rego.Compiler(compiler))...).PrepareForEval(ctx)
		}
		if err == nil {
			response, err = rego.New(append(responseOpts, rego.Compiler(compiler))...).PrepareForEval(ctx)
		}
	} else {
		q, err = rego.New(slices.Concat(opts, modules)...).PrepareForEval(ctx)
		if err == nil {
			admin, err = rego.New(slices.Concat(adminOpts, modules)...).PrepareForEval(ctx)
		}
		if err == nil {
			response, err = rego.New(slices.Concat(responseOpts, modules)...).PrepareForEval(ctx)
		}
	}
	compileMu.Unlock()
	partialMu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("compile bundle %s: %w", b.Source, err)
	}
	prices, err := newPriceBook(b.Data)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", b.Source, err)
	}
	phrases, err := newPhraseRules(b.Data)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", b.Source, err)
	}
	scanner, err := newScanner(b.Data)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", b.Source, err)
	}
	p := &Policy{Revision: b.Revision, Source: b.Source, Modules: len(b.Modules), Prices: prices, query: q, eval: q, admin: admin, response: response, phrases: phrases, models: knownModels(b.Data), scanner: scanner, answerRules: hasAnswerRules(b.Data)}
	if partialErr == nil {
		partialErr = sameSmokeDecision(ctx, q, fast)
	}
	if partialErr != nil {
		if e.log != nil {
			e.log.Warn("policy partial evaluation failed; decisions are evaluated without it", "source", b.Source, "revision", b.Revision, "error", partialErr)
		}
	} else {
		p.eval, p.partial, p.fields = fast, true, readFields(compiler)
		switch {
		case e.specBudget == 0:
		case usesNamespace(b.Modules, specNamespace):
			if e.log != nil {
				e.log.Warn("policy specialization is off: the bundle has a package under data."+specNamespace+", which specialization uses", "source", b.Source)
			}
		default:
			p.spec = newSpecializer(p, compiler, store, e.specBudget, e.specPace, &e.spec, e.log)
			if e.specTimeout > 0 {
				p.spec.timeout = e.specTimeout
			}
		}
	}
	if _, err := p.Eval(ctx, smokeInput()); err != nil {
		return nil, fmt.Errorf("bundle %s: smoke evaluation: %w", b.Source, err)
	}
	return p, nil
}

// newCompiler returns a compiler set up as rego.New sets up its own.
func newCompiler() *ast.Compiler {
	return ast.NewCompiler().WithUseTypeCheckAnnotations(true).WithDefaultRegoVersion(ast.RegoV1)
}

// partialMu keeps partial evaluation apart from every other evaluation in
// the process, and from preparing queries, building input values and
// decoding results. OPA v1.22.2's partial evaluation writes in place to
// terms it shares with all queries and values (PartialResult to ast.Wildcard
// and interned terms: booleans, small numbers, empty collections; copy
// propagation to the terms of rules and inputs it plugs), so partial
// evaluation while requests evaluate is a data race (go test -race showed
// both). Partial evaluation takes the write lock: once per bundle, and
// once per specialization (specialize.go, paced to a tenth of the time);
// everything else takes the read lock, an uncontended atomic add on the
// request path. During a compile (about 85 ms) or a specialization (about
// 2 ms) requests wait for it. It guards no state of ours.
var partialMu sync.RWMutex

// compileMu keeps compilations that run beside evaluations (under
// partialMu's read lock: preparing a bundle's queries, compiling a
// specialization) apart from each other. OPA v1.22.2's type checker
// widens, in place, object types it shares between compilers (mergeTypes
// on the dynamic properties of a type in an "any"), so two compiling at once
// is a data race (go test -race showed it). Compilations under the write
// lock are alone anyway. Take it after partialMu.
var compileMu sync.Mutex

// compileMu keeps compilations that run beside evaluations (under
// partialMu's read lock: preparing a bundle's queries, compiling a
// specialization) apart from each other. OPA v1.22.2's type checker
// widens, in place, object types it shares between compilers (mergeTypes
// on the dynamic properties of a type in an "any"), so two compiling at once
// is a data race (go test -race showed it). Compilations under the write
// lock are alone anyway. Take it after partialMu.

// preparePartial prepares the entrypoint of opts from its partial evaluation
// with the input unknown: every part of the policy that depends on the
// bundle's data alone (tables built from data, data-only conditions) is
// evaluated here, once per bundle, and what remains reads the input.
func preparePartial(ctx context.Context, opts []func(*rego.Rego)) (rego.PreparedEvalQuery, error) {
	partialMu.Lock()
	defer partialMu.Unlock()
	pr, err := rego.New(opts...).PartialResult(ctx)
	if err != nil {
		return rego.PreparedEvalQuery{}, fmt.Errorf("partial evaluation: %w", err)
	}
	fast, err := pr.Rego(rego.StoreReadAST(true), rego.SetRegoVersion(ast.RegoV1)).PrepareForEval(ctx)
	if err != nil {
		return rego.PreparedEvalQuery{}, fmt.Errorf("prepare partial result: %w", err)
	}
	return fast, nil
}

// sameSmokeDecision checks that the partially evaluated query decides the
// smoke input exactly as the query as written: the residual policy must
// never decide differently, and a bundle where it does keeps plain.
func sameSmokeDecision(ctx context.Context, plain, partial rego.PreparedEvalQuery) error {
	partialMu.RLock()
	in := rego.EvalParsedInput(smokeInput().Value())
	want, wantErr := plain.Eval(ctx, in)
	got, gotErr := partial.Eval(ctx, in)
	partialMu.RUnlock()
	if (wantErr == nil) != (gotErr == nil) || !reflect.DeepEqual(resultValue(got), resultValue(want)) {
		return fmt.Errorf("partial result decides the smoke input differently: got %v (error %v), want %v (error %v)", resultValue(got), gotErr, resultValue(want), wantErr)
	}
	return nil
}

// resultValue is the value of the entrypoint in rs, nil when undefined.
func resultValue(rs rego.ResultSet) any {
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil
	}
	return rs[0].Expressions[0].Value
}

// usesNamespace reports whether a module has a package under data.ns.
func usesNamespace(modules map[string]*ast.Module, ns string) bool {
	root := ast.DefaultRootRef.Append(ast.StringTerm(ns))
	for _, m := range modules {
		if m.Package.Path.HasPrefix(root) {
			return true
		}
	}
	return false
}

// Activate makes p the policy of every request that starts from now on.
func (e *Engine) Activate(p *Policy) {
	old := e.current.Swap(p)
	if old != nil && old != p && old.spec != nil {
		// Requests still running on old finish on it; it builds no more.
		old.spec.stop()
		if p.spec != nil {
			// Its busiest callers are specialized on p straight away
			// (counted as pending, for SettleSpecializations).
			p.spec.addPending(1)
			go func() {
				defer p.spec.addPending(-1)
				p.spec.carryOver(old.spec)
			}()
		}
	}
	if e.log != nil {
		attrs := []any{"revision", p.Revision}
		if old != nil {
			attrs = append(attrs, "previous_revision", old.Revision)
		}
		e.log.Info("policy activated", attrs...)
	}
}

// Load compiles b and activates it.
func (e *Engine) Load(ctx context.Context, b *bundles.Bundle) error {
	p, err := e.Compile(ctx, b)
	if err != nil {
		return err
	}
	e.Activate(p)
	return nil
}

// Current returns the active policy, or nil when none was ever loaded.
func (e *Engine) Current() *Policy { return e.current.Load() }

// ErrUndefined is returned when the entrypoint is undefined for an input.
var ErrUndefined = errors.New("policy decision is undefined")

// Eval evaluates the policy on in: with the query specialized for in's
// stable part when the cache has one (specialize.go), else with the
// bundle's residual.
func (p *Policy) Eval(ctx context.Context, in *Input) (Decision, error) {
	// Building the value, evaluating and decoding read terms that partial
	// evaluation may be rewriting (see partialMu).
	partialMu.RLock()
	defer partialMu.RUnlock()
	s := p.spec
	if s == nil {
		return decodeResult(evalValue(ctx, p.eval, in.valueOf(p.fields)))
	}
	kb := keyPool.Get().(*[]byte)
	key := in.appendKey((*kb)[:0], s.known)
	defer func() {
		if cap(key) <= 4<<10 { // a huge key's buffer is not kept
			*kb = key
			keyPool.Put(kb)
		}
	}()
	if e := s.lookup(key); e != nil {
		return e.decide(ctx, in.valueOf)
	}
	v := in.valueOf(p.fields)
	r, err := evalValue(ctx, p.eval, v)
	if err == nil && s.admit(key) {
		s.ask(key, in.clone(), v, r)
	}
	return decodeResult(r, err)
}

// decodeResult turns the value of the entrypoint into a decision.
func decodeResult(v ast.Value, err error) (Decision, error) {
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate policy: %w", err)
	}
	if v == nil {
		return Decision{}, ErrUndefined
	}
	return decodeDecision(v)
}

// SpecializationStats returns what the policy's specialization cache did;
// zero when specialization is off.
func (p *Policy) SpecializationStats() SpecializationStats {
	if p.spec == nil {
		return SpecializationStats{}
	}
	return p.spec.own.stats(p.spec.size())
}

// SettleSpecializations waits until every specialization asked for so far
// is built or rejected. Requests never need it; tests and benchmarks use it
// to know which path a decision takes.
func (p *Policy) SettleSpecializations() {
	if p.spec != nil {
		p.spec.settle()
	}
}

// SpecializationStats returns what the specialization caches of every
// policy of e did, with the size of the current policy's cache.
func (e *Engine) SpecializationStats() SpecializationStats {
	size := 0
	if p := e.Current(); p != nil && p.spec != nil {
		size = p.spec.size()
	}
	return e.spec.stats(size)
}

// AllowedActions returns the admin actions id may perform, sorted: the
// value of the admin entrypoint for an input with only identity filled. An
// undefined entrypoint allows none; a value that is not a set or array of
// strings is an error (the caller denies).
func (p *Policy) AllowedActions(ctx context.Context, id Identity) ([]string, error) {
	// Decoding reads the result's terms too (see partialMu).
	partialMu.RLock()
	defer partialMu.RUnlock()
	in := ast.NewObject(item("identity", ast.NewTerm(id.value(nil))))
	rs, err := p.admin.Eval(ctx, rego.EvalParsedInput(in), rego.EvalGenerateJSON(astResult))
	if err != nil {
		return nil, fmt.Errorf("evaluate admin actions: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return []string{}, nil
	}
	actions := []string{}
	x := decoder{}
	x.array("allowed actions", rs[0].Expressions[0].Value, func(i int, v any) {
		actions = append(actions, x.str(fmt.Sprintf("allowed actions[%d]", i), v))
	})
	if x.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDecision, x.err)
	}
	slices.Sort(actions)
	return actions, nil
}

// astResult hands the decision to decodeDecision as OPA's AST value, which
// spares converting it to Go maps and slices first.
func astResult(t *ast.Term, _ *rego.EvalContext) (any, error) { return t.Value, nil }

func smokeInput() *Input {
	return &Input{
		Request:  RequestInfo{ID: "smoke", Path: "/v1/chat/completions", ReceivedAt: time.Unix(0, 0)},
		Identity: Identity{Subject: "smoke", Kind: "service", Auth: "api_key", KeyID: "k_smoke", Roles: []string{}},
		Model:    ModelInfo{Requested: "smoke"},
		Tokens:   Tokens{Prompt: 1, MaxCompletion: 1, EstimatedTotal: 2},
	}
}
