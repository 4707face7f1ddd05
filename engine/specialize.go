package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Specialization.
//
// Most of what a decision depends on repeats from one request to the next:
// the caller, the model, the headers policies read, which PII types and
// guardrail signals were found. What changes on every request is small: the
// token counts, the complexity score, the request id and time. A Policy
// therefore keeps, per distinct stable part of the input, the bundle's
// residual partially evaluated once more with that stable part known and
// only the volatile fields unknown. What is left is usually one or two
// rules on the token count, or a constant; evaluating it costs a fraction
// of the whole residual (see BenchmarkEval).
//
// This is OPA's own partial evaluation, so a specialized query decides
// exactly as the bundle does; each one is also checked against the full
// evaluation of the request that caused it before it serves, and a key
// whose specialization fails or differs keeps the full evaluation.
//
// Specializations are built off the request path, by one goroutine per
// policy, for a key seen a second time (a key seen once, such as one made
// of a per-request header, never costs a build), paced so that partial
// evaluation, which must run alone (see partialMu), holds up evaluations
// at most a tenth of the time. The cache holds what fits in
// Config.SpecializationCacheMB (estimated per entry) and evicts the least
// recently used (CLOCK); a new bundle starts with an empty cache.

// DefaultSpecializationCacheMB is the memory (MiB, estimated) a policy's
// specializations may take when the configuration does not say.
const DefaultSpecializationCacheMB = 64

// volatileFields are the input fields that differ from one request to the
// next; they stay unknown when a policy is specialized, and every other
// field the policy reads is part of the key.
var volatileFields = fieldSet{
	"request":    {"id": true, "received_at": true, "client_ip": true},
	"params":     {"messages": true, "max_tokens": true, "temperature": true},
	"tokens":     nil,
	"complexity": nil,
	"pii":        {"findings": true},
	"guardrails": {"hidden_unicode": true, "bidi_controls": true, "base64_blobs": true},
}

// inputFields lists every field of the input and its second-level fields,
// in valueOf's order.
var inputFields = []struct {
	name string
	subs []string
}{
	{"version", nil},
	{"request", []string{"id", "path", "stream", "received_at", "client_ip", "headers"}},
	{"identity", []string{"subject", "kind", "auth", "key_id", "team", "org", "roles", "groups", "labels", "chain"}},
	{"model", []string{"requested", "provider_hint"}},
	{"params", []string{"tools", "tool_names", "messages", "max_tokens", "temperature"}},
	{"tokens", []string{"prompt", "max_completion", "estimated_total"}},
	{"pii", []string{"types", "findings"}},
	{"complexity", []string{"score", "signals"}},
	{"guardrails", []string{"signals", "hidden_unicode", "bidi_controls", "base64_blobs"}},
	{"moderation", []string{"checked", "flagged", "categories", "unavailable"}},
	{"signals", []string{"matched_phrases"}},
}

// splitFields splits the fields fs reads (nil: all) into those known to a
// specialization and the references to leave unknown.
func splitFields(fs fieldSet) (fieldSet, []*ast.Term) {
	known := fieldSet{}
	// Not nil: OPA takes no unknowns as the whole input unknown.
	unknown := []*ast.Term{}
	for _, f := range inputFields {
		sub, ok := fs.want(f.name)
		if !ok {
			continue
		}
		vol, isVolatile := volatileFields[f.name]
		switch {
		case !isVolatile:
			known[f.name] = sub
		case vol == nil:
			unknown = append(unknown, ast.RefTerm(ast.InputRootDocument, ast.StringTerm(f.name)))
		default:
			keep := map[string]bool{}
			for _, s := range f.subs {
				if !wantSub(sub, s) {
					continue
				}
				if vol[s] {
					unknown = append(unknown, ast.RefTerm(ast.InputRootDocument, ast.StringTerm(f.name), ast.StringTerm(s)))
				} else {
					keep[s] = true
				}
			}
			if len(keep) > 0 {
				known[f.name] = keep
			}
		}
	}
	return known, unknown
}

// SpecializationStats counts what the specialization cache of a policy did.
type SpecializationStats struct {
	// Hits are decisions made by a specialized query; Misses by the full
	// residual.
	Hits, Misses uint64
	// Built counts specializations that serve; Rejected those that did
	// not (not self-contained, failed, or deciding differently), whose
	// keys keep the full residual.
	Built, Rejected uint64
	// Evicted counts keys dropped to make room; Size is the number held.
	Evicted uint64
	Size    int
}

// specializer is the specialization cache of one policy.
type specializer struct {
	p        *Policy
	compiler *ast.Compiler
	store    storage.Store
	log      *slog.Logger
	// budget is the estimated memory the entries may take, maxEntry what
	// one may take (an eighth of it: a few costly callers cannot take the
	// cache from all others).
	budget, maxEntry int64
	// known are the input fields in the key; unknown the references left
	// unknown.
	known   fieldSet
	unknown []*ast.Term

	mu      sync.RWMutex
	entries map[string]*specialized
	ring    []string // keys in insertion order, for CLOCK eviction
	hand    int
	bytes   int64 // sum of the entries' cost

	seenMu sync.Mutex
	seen   map[string]struct{}

	jobs    chan specJob
	running atomic.Bool
	closed  atomic.Bool
	// pace is how many times its exclusive time the worker rests after a
	// build, so that specializing holds up evaluations at most
	// 1/(1+pace) of the time; next is when it may build again. Only the
	// worker uses next (workers run one at a time).
	pace int
	next time.Time
	// timeout bounds one partial evaluation (specTimeout).
	timeout time.Duration
	// exclusive is the last build's time waiting for and holding
	// partialMu's write lock (read by BenchmarkSpecialize).
	exclusive time.Duration
	// pending counts queued and running builds (see settle).
	pendingMu   sync.Mutex
	pendingCond *sync.Cond
	pending     int

	// own counts for this policy, total for every policy of the engine.
	own, total *specCounters
}

// specCounters count what specialization caches did.
type specCounters struct {
	hits, misses, built, rejected, evicted atomic.Uint64
}

// count adds one to the counter f picks, in s's own counters and the
// engine's.
func (s *specializer) count(f func(*specCounters) *atomic.Uint64) {
	f(s.own).Add(1)
	if s.total != nil {
		f(s.total).Add(1)
	}
}

func (c *specCounters) stats(size int) SpecializationStats {
	return SpecializationStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(),
		Built: c.built.Load(), Rejected: c.rejected.Load(),
		Evicted: c.evicted.Load(), Size: size,
	}
}

func hits(c *specCounters) *atomic.Uint64     { return &c.hits }
func misses(c *specCounters) *atomic.Uint64   { return &c.misses }
func built(c *specCounters) *atomic.Uint64    { return &c.built }
func rejected(c *specCounters) *atomic.Uint64 { return &c.rejected }
func evicted(c *specCounters) *atomic.Uint64  { return &c.evicted }

// specialized is one entry: a decision template (tmpl, the ground part of
// the decision) completed by a query when hasQuery; an undefined decision;
// or, when full, a marker that the key keeps the full residual.
type specialized struct {
	tmpl     Decision
	query    rego.PreparedEvalQuery
	hasQuery bool
	// binding is true when query is the residual itself, whose value is
	// the binding of x; else it is the rule holding the residuals.
	binding bool
	// fields are the input fields query reads.
	fields    fieldSet
	undefined bool
	full      bool
	// cost is the estimated memory the entry takes.
	cost int64
	used atomic.Bool
	// in is the input of the request that asked for the entry.
	in *Input
}

// specJob asks for the specialization of key; value and want are the input
// value (every field the policy reads) and the decision of the request that
// asked, to check the specialization with.
type specJob struct {
	key   string
	known ast.Value
	value ast.Value
	want  ast.Value
	// in is a copy of the request's input, kept with the entry so that the
	// next policy can specialize for the same caller (carryOver).
	in *Input
}

const (
	// maxKeyBytes bounds the key of a specialization; a longer one (large
	// labels or headers) is never specialized, which bounds the memory of
	// keys held in the cache and the doorkeeper.
	maxKeyBytes = 1024
	// maxSeen bounds the doorkeeper's keys.
	maxSeen = 4096
	// specTimeout bounds one partial evaluation (it holds up every
	// evaluation while it runs); a key that takes longer keeps the full
	// residual.
	specTimeout = 200 * time.Millisecond
	// specEntryFixed and specTermCost estimate an entry's memory: a
	// compiler and prepared query, plus the compiled terms (measured with
	// the default library: about 40 KB for a small entry, 600 KB for one
	// that carries 2,600 terms of routing tables).
	specEntryFixed = 32 << 10
	specTermCost   = 200
)

func newSpecializer(p *Policy, c *ast.Compiler, store storage.Store, budget int64, pace int, total *specCounters, log *slog.Logger) *specializer {
	known, unknown := splitFields(p.fields)
	s := &specializer{
		p: p, compiler: c, store: store, log: log, budget: budget, maxEntry: budget / 8,
		known: known, unknown: unknown,
		entries: map[string]*specialized{},
		seen:    map[string]struct{}{},
		jobs:    make(chan specJob, 64),
		pace:    pace,
		timeout: specTimeout,
		own:     &specCounters{},
		total:   total,
	}
	s.pendingCond = sync.NewCond(&s.pendingMu)
	return s
}

// lookup returns the entry for key, nil when there is none.
func (s *specializer) lookup(key []byte) *specialized {
	s.mu.RLock()
	e := s.entries[string(key)]
	s.mu.RUnlock()
	if e == nil || e.full {
		s.count(misses)
		return nil
	}
	if !e.used.Load() {
		e.used.Store(true)
	}
	s.count(hits)
	return e
}

// admit reports whether key was seen before (and is not cached): the
// second sighting of a key asks for its specialization.
func (s *specializer) admit(key []byte) bool {
	if len(key) > maxKeyBytes || s.closed.Load() {
		return false
	}
	s.mu.RLock()
	_, cached := s.entries[string(key)]
	s.mu.RUnlock()
	if cached {
		return false
	}
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	if _, ok := s.seen[string(key)]; ok {
		delete(s.seen, string(key))
		return true
	}
	s.sawLocked(string(key))
	return false
}

// sawLocked records key in the doorkeeper, which forgets everything when
// full; seenMu is held.
func (s *specializer) sawLocked(key string) {
	if len(s.seen) >= maxSeen {
		s.seen = map[string]struct{}{}
	}
	s.seen[key] = struct{}{}
}

// ask queues the specialization of key for the request whose input is in
// (kept with the entry; it must not change afterwards), input value v
// and decision want. partialMu's read lock is held.
func (s *specializer) ask(key []byte, in *Input, v, want ast.Value) {
	s.enqueue(specJob{key: string(key), known: in.valueOf(s.known), value: v, want: want, in: in})
}

// enqueue hands j to the worker, starting it when it is not running. A full
// queue drops j and puts its key back in the doorkeeper, so that the next
// sighting asks again.
func (s *specializer) enqueue(j specJob) {
	s.addPending(1)
	select {
	case s.jobs <- j:
	default:
		s.addPending(-1)
		s.seenMu.Lock()
		s.sawLocked(j.key)
		s.seenMu.Unlock()
		return
	}
	if s.running.CompareAndSwap(false, true) {
		go s.work()
	}
}

func (s *specializer) addPending(n int) {
	s.pendingMu.Lock()
	s.pending += n
	if s.pending == 0 {
		s.pendingCond.Broadcast()
	}
	s.pendingMu.Unlock()
}

// settle waits until no build is queued or running.
func (s *specializer) settle() {
	s.pendingMu.Lock()
	for s.pending > 0 {
		s.pendingCond.Wait()
	}
	s.pendingMu.Unlock()
}

// stop ends specialization for a policy that no longer serves: queued
// builds are dropped and no new ones are asked for.
func (s *specializer) stop() { s.closed.Store(true) }

// work builds the queued specializations and returns when there are none.
func (s *specializer) work() {
	for {
		select {
		case j := <-s.jobs:
			if !s.closed.Load() {
				s.build(j)
			}
			s.addPending(-1)
		default:
			s.running.Store(false)
			if len(s.jobs) == 0 || !s.running.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

// specPace is the worker's default pace: partial evaluation holds up
// evaluations at most a tenth of the time.
const specPace = 9

// specNamespace is the package of a specialization's query and rules.
const specNamespace = "tollgate_specialized"

// build specializes the residual for j.key and stores the result.
func (s *specializer) build(j specJob) {
	s.mu.RLock()
	_, done := s.entries[j.key]
	s.mu.RUnlock()
	if done {
		return
	}
	// Rest first, so that partial evaluation holds up evaluations at most
	// 1/(1+pace) of the time; the policy may have been replaced meanwhile.
	if d := time.Until(s.next); d > 0 {
		time.Sleep(d)
	}
	if s.closed.Load() {
		return
	}
	e, err := s.specialize(j)
	s.next = time.Now().Add(time.Duration(s.pace) * s.exclusive)
	if s.closed.Load() {
		return
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// Too slow this time (perhaps another compile held the lock):
		// nothing is kept, and the key may ask again.
		s.count(rejected)
		if s.log != nil {
			s.log.Warn("policy specialization took too long; this caller's requests keep the full evaluation", "revision", s.p.Revision, "error", err)
		}
		return
	}
	if err == nil {
		e.cost += int64(len(j.key))
		if e.cost > s.maxEntry {
			err = fmt.Errorf("the specialized policy would take about %d KB, more than an eighth of policy.specialization_cache_mb", e.cost>>10)
		}
	}
	if err != nil {
		s.count(rejected)
		if s.log != nil {
			s.log.Warn("policy specialization rejected; this caller's requests keep the full evaluation", "revision", s.p.Revision, "error", err)
		}
		e = &specialized{full: true, cost: 1<<10 + int64(len(j.key))}
	} else {
		s.count(built)
		e.in = j.in
	}
	s.insert(j.key, e)
}

// specialize partially evaluates the residual with j.known as the input's
// stable part and checks the result against j.want.
func (s *specializer) specialize(j specJob) (*specialized, error) {
	// Partial evaluation rewrites in place terms it shares with every
	// evaluation (see partialMu): it runs alone, for at most specTimeout.
	// What follows works on copies and only reads shared terms.
	start := time.Now()
	partialMu.Lock()
	// The limit starts once the lock is held: waiting for another
	// compile is not this key's fault (exclusive counts both, for pacing).
	peCtx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	pq, err := rego.New(
		rego.Query(resultVar+" = "+partialResultQuery),
		rego.Compiler(s.compiler),
		rego.Store(s.store),
		rego.StoreReadAST(true),
		rego.ParsedInput(j.known),
		rego.ParsedUnknowns(s.unknown),
		rego.PartialNamespace(specNamespace),
		rego.SetRegoVersion(ast.RegoV1),
	).Partial(peCtx)
	partialMu.Unlock()
	s.exclusive = time.Since(start)
	if peCtx.Err() != nil {
		// Cancelled, or finished past the limit (the next would hold up
		// requests as long).
		err = peCtx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("partial evaluation (limit %v): %w", s.timeout, err)
	}
	ctx := context.Background()
	partialMu.RLock()
	defer partialMu.RUnlock()
	e := &specialized{cost: 1 << 10}
	if len(pq.Queries) == 0 {
		e.undefined = true
	} else if err := e.prepare(ctx, pq, s.bundleRules(pq), s.store); err != nil {
		return nil, err
	}
	want, wantErr := decodeResult(j.want, nil)
	// The check gives the specialized query only the fields it reads, as
	// requests do.
	got, gotErr := e.decide(ctx, func(fs fieldSet) ast.Value { return project(j.value, fs) })
	if (wantErr == nil) != (gotErr == nil) || !reflect.DeepEqual(got, want) {
		return nil, fmt.Errorf("the specialized policy decides the request that asked for it differently: %+v (error %v), not %+v (error %v)", got, gotErr, want, wantErr)
	}
	return e, nil
}

// bundleRules returns the rules of the bundle's residual that the output
// of partial evaluation pq still calls (and those they call), as modules to
// compile with it: partial evaluation leaves some rules as they are, such
// as partial object rules read with a key it does not know.
func (s *specializer) bundleRules(pq *rego.PartialQueries) []*ast.Module {
	ns := ast.DefaultRootRef.Append(ast.StringTerm(specNamespace))
	seen := map[*ast.Rule]bool{}
	var todo []*ast.Rule
	visit := func(x any) {
		ast.WalkRefs(x, func(ref ast.Ref) bool {
			if ref.HasPrefix(ast.DefaultRootRef) && !ref.HasPrefix(ns) {
				for _, r := range s.compiler.GetRules(ref.GroundPrefix()) {
					if !seen[r] {
						seen[r] = true
						todo = append(todo, r)
					}
				}
			}
			return false
		})
	}
	for _, q := range pq.Queries {
		visit(q)
	}
	for _, m := range pq.Support {
		visit(m)
	}
	var modules []*ast.Module
	byPackage := map[string]*ast.Module{}
	for len(todo) > 0 {
		r := todo[0]
		todo = todo[1:]
		visit(r)
		pkg := r.Module.Package.Path.String()
		m := byPackage[pkg]
		if m == nil {
			m = &ast.Module{Package: r.Module.Package.Copy()}
			byPackage[pkg] = m
			modules = append(modules, m)
		}
		c := r.Copy()
		c.Module = m
		m.Rules = append(m.Rules, c)
	}
	return modules
}

// prepare compiles the output of partial evaluation pq, with the modules
// extra it calls, into e. When the
// output is one query binding x to an object, the object's constant items
// are decoded once into e.tmpl and the query keeps only the others; when
// none is left, the decision is that constant and nothing is evaluated.
func (e *specialized) prepare(ctx context.Context, pq *rego.PartialQueries, extra []*ast.Module, store storage.Store) error {
	// Compile copies: the output of partial evaluation holds terms it
	// shares with the bundle, and compiling rewrites terms in place.
	opts := []func(*rego.Rego){
		rego.Store(store),
		rego.StoreReadAST(true),
		rego.SetRegoVersion(ast.RegoV1),
	}
	var query ast.Body
	if len(pq.Queries) == 1 {
		// One query is prepared as it is; its value is the binding of x.
		query = pq.Queries[0].Copy()
		if ground, rest, ok := splitResult(query); ok {
			var dec decoder
			var tmpl Decision
			dec.decision(ast.NewObject(ground...), &tmpl)
			if dec.err == nil {
				e.tmpl = tmpl
				if len(rest) == 0 && len(query) == 1 && len(pq.Support) == 0 && len(extra) == 0 {
					return nil // a constant
				}
				query = setResult(query, ast.ObjectTerm(rest...))
			}
		}
		opts = append(opts, rego.ParsedQuery(query))
		e.binding = true
	} else {
		ns := ast.DefaultRootRef.Append(ast.StringTerm(specNamespace))
		m := &ast.Module{Package: &ast.Package{Path: ns}}
		for _, q := range pq.Queries {
			m.Rules = append(m.Rules, &ast.Rule{Head: ast.NewHead(ast.Var("decision"), nil, ast.VarTerm(resultVar)), Body: q.Copy(), Module: m})
		}
		opts = append(opts, rego.Query("data."+specNamespace+".decision"), rego.ParsedModule(m))
	}
	for _, sm := range pq.Support {
		opts = append(opts, rego.ParsedModule(sm.Copy()))
	}
	for _, m := range extra {
		opts = append(opts, rego.ParsedModule(m))
	}
	// The compiler knows only the built-in functions the output calls: a
	// compiler's type environment of every built-in would be most of an
	// entry's memory.
	c := newCompiler().WithCapabilities(capabilitiesFor(pq, extra))
	compileMu.Lock() // see compileMu
	q, err := rego.New(append(opts, rego.Compiler(c))...).PrepareForEval(ctx)
	compileMu.Unlock()
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	e.query, e.hasQuery = q, true
	// The fields the query reads, following the rules it calls.
	var rules []*ast.Rule
	for _, m := range c.Modules {
		rules = append(rules, m.Rules...)
	}
	if query != nil {
		rules = append(rules, queryRule(query))
	}
	e.fields = readRules(c, rules)
	terms := 0
	count := func(x any) {
		ast.WalkTerms(x, func(*ast.Term) bool { terms++; return false })
	}
	for _, q := range pq.Queries {
		count(q)
	}
	for _, m := range slices.Concat(pq.Support, extra) {
		count(m)
	}
	e.cost = specEntryFixed + specTermCost*int64(terms)
	return nil
}

// capabilitiesFor returns this OPA's capabilities with only the built-in
// functions pq and extra call.
func capabilitiesFor(pq *rego.PartialQueries, extra []*ast.Module) *ast.Capabilities {
	caps := *ast.CapabilitiesForThisVersion()
	used := map[string]bool{}
	note := func(x any) {
		ast.WalkTerms(x, func(t *ast.Term) bool {
			if call, ok := t.Value.(ast.Call); ok && len(call) > 0 {
				used[call[0].String()] = true
			}
			return false
		})
		ast.WalkExprs(x, func(e *ast.Expr) bool {
			if e.IsCall() {
				used[e.Operator().String()] = true
			}
			return false
		})
	}
	for _, q := range pq.Queries {
		note(q)
	}
	for _, m := range slices.Concat(pq.Support, extra) {
		note(m)
	}
	caps.Builtins = nil
	for _, b := range ast.CapabilitiesForThisVersion().Builtins {
		if used[b.Name] || b.Name == ast.Equality.Name || b.Name == ast.Assign.Name {
			caps.Builtins = append(caps.Builtins, b)
		}
	}
	return &caps
}

// resultVar is the variable the specialization query binds the decision to.
const resultVar = "x"

// splitResult finds, in a query, the expression x = {...} binding the
// decision to an object literal, and returns that object's constant items and
// the others. It fails when x occurs elsewhere in the query, where dropping
// items could change what the query means.
func splitResult(query ast.Body) (ground, rest [][2]*ast.Term, ok bool) {
	obj, ok := resultObject(query)
	if !ok {
		return nil, nil, false
	}
	uses := 0
	ast.WalkVars(query, func(v ast.Var) bool {
		if v == resultVar {
			uses++
		}
		return false
	})
	if uses != 1 {
		return nil, nil, false
	}
	obj.Foreach(func(k, v *ast.Term) {
		if ast.IsConstant(k.Value) && ast.IsConstant(v.Value) {
			ground = append(ground, [2]*ast.Term{k, v})
		} else {
			rest = append(rest, [2]*ast.Term{k, v})
		}
	})
	return ground, rest, true
}

// resultObject returns the object literal of the expression x = {...}.
func resultObject(query ast.Body) (ast.Object, bool) {
	for _, expr := range query {
		if i, ok := resultOperand(expr); ok {
			o, ok := expr.Operand(i).Value.(ast.Object)
			return o, ok
		}
	}
	return nil, false
}

// resultOperand reports whether expr is x = T, and the index of T.
func resultOperand(expr *ast.Expr) (int, bool) {
	if !expr.IsEquality() || expr.Negated || len(expr.With) > 0 {
		return 0, false
	}
	for i := range 2 {
		if v, ok := expr.Operand(i).Value.(ast.Var); ok && v == resultVar {
			return 1 - i, true
		}
	}
	return 0, false
}

// setResult replaces T in the expression x = T of query with t.
func setResult(query ast.Body, t *ast.Term) ast.Body {
	for _, expr := range query {
		if i, ok := resultOperand(expr); ok {
			expr.Terms.([]*ast.Term)[i+1] = t
			break
		}
	}
	return query
}

// decide returns e's decision for the request whose input value (with at
// least the fields asked for) value builds.
func (e *specialized) decide(ctx context.Context, value func(fieldSet) ast.Value) (Decision, error) {
	if e.undefined {
		return Decision{}, ErrUndefined
	}
	d := e.tmpl.clone()
	if !e.hasQuery {
		if err := d.validate(); err != nil {
			return Decision{}, fmt.Errorf("%w: %v", ErrInvalidDecision, err)
		}
		return d, nil
	}
	var v ast.Value
	var err error
	if e.binding {
		v, err = evalBinding(ctx, e.query, value(e.fields), resultVar)
	} else {
		v, err = evalValue(ctx, e.query, value(e.fields))
	}
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate policy: %w", err)
	}
	if v == nil {
		return Decision{}, ErrUndefined
	}
	return decodeOnto(d, v)
}

// insert stores e under key, evicting (CLOCK: recently used entries are
// skipped once) until the entries fit the budget.
func (s *specializer) insert(key string, e *specialized) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[key]; ok || s.closed.Load() {
		return
	}
	for s.bytes+e.cost > s.budget && len(s.ring) > 0 {
		s.hand %= len(s.ring)
		k := s.ring[s.hand]
		victim := s.entries[k]
		if victim.used.Load() {
			victim.used.Store(false)
			s.hand++
			continue
		}
		delete(s.entries, k)
		s.bytes -= victim.cost
		s.ring = slices.Delete(s.ring, s.hand, s.hand+1) // the hand now points at the next
		s.count(evicted)
	}
	// The new key goes just behind the hand: the last the hand reaches.
	s.hand = min(s.hand, len(s.ring))
	s.ring = slices.Insert(s.ring, s.hand, key)
	s.hand++
	s.entries[key] = e
	s.bytes += e.cost
}

// carryOverMax is how many callers a new policy specializes for as soon as
// it replaces the old one (at most the worker's queue).
const carryOverMax = 64

// hottest returns the inputs of up to n entries, those used since the
// CLOCK hand last passed first, then the newest.
func (s *specializer) hottest(n int) []*Input {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var used, rest []*Input
	for i := range s.ring {
		// From just behind the hand backwards: newest first.
		k := s.ring[((s.hand-1-i)%len(s.ring)+len(s.ring))%len(s.ring)]
		e := s.entries[k]
		switch {
		case e.in == nil:
		case e.used.Load():
			used = append(used, e.in)
		default:
			rest = append(rest, e.in)
		}
	}
	all := append(used, rest...)
	return all[:min(n, len(all))]
}

// carryOver asks s for the specializations of the callers of old's hottest
// entries, so that a new bundle serves them specialized from the start
// rather than from their second request. Each is built and checked as
// usual, with the decision of s's full policy.
func (s *specializer) carryOver(old *specializer) {
	ctx := context.Background()
	for _, in := range old.hottest(carryOverMax) {
		key := in.appendKey(nil, s.known)
		if len(key) > maxKeyBytes {
			continue
		}
		partialMu.RLock()
		v := in.valueOf(s.p.fields)
		if want, err := evalValue(ctx, s.p.eval, v); err == nil && !s.closed.Load() {
			s.ask(key, in, v, want)
		}
		partialMu.RUnlock()
	}
}

// size is the number of keys held.
func (s *specializer) size() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.entries)
}

// keyPool holds key buffers.
var keyPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// evalValue evaluates q on the input v and returns the value of its first
// expression, nil when undefined.
func evalValue(ctx context.Context, q rego.PreparedEvalQuery, v ast.Value) (ast.Value, error) {
	rs, err := eval(ctx, q, v)
	if err != nil || len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, err
	}
	return rs[0].Expressions[0].Value.(ast.Value), nil
}

// evalBinding evaluates q on the input v and returns the value bound to
// the variable name, nil when undefined. The query stands for a complete
// rule (the entrypoint): when its solutions bind different values, that is
// the conflict the rule would have raised.
func evalBinding(ctx context.Context, q rego.PreparedEvalQuery, v ast.Value, name string) (ast.Value, error) {
	rs, err := eval(ctx, q, v)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	var x ast.Value
	for i, r := range rs {
		xi, ok := r.Bindings[name].(ast.Value)
		if !ok {
			return nil, fmt.Errorf("the specialized query left %s unbound", name)
		}
		if i == 0 {
			x = xi
		} else if ast.Compare(x, xi) != 0 {
			return nil, errConflict
		}
	}
	return x, nil
}

// errConflict is the error of a complete rule with several values, as OPA
// reports it.
var errConflict = &topdown.Error{Code: topdown.ConflictErr, Message: "complete rules must not produce multiple outputs"}

// eval evaluates q on the input v, with results as AST values. It passes
// no metrics and cancels through context.AfterFunc, which saves OPA's
// per-evaluation metrics and cancellation goroutine.
func eval(ctx context.Context, q rego.PreparedEvalQuery, v ast.Value) (rego.ResultSet, error) {
	c := topdown.NewCancel()
	stop := context.AfterFunc(ctx, c.Cancel)
	defer stop()
	return q.Eval(ctx, rego.EvalParsedInput(v), astResultOption, noMetricsOption, rego.EvalExternalCancel(c))
}

// The evaluation options that are the same for every evaluation.
var (
	astResultOption = rego.EvalGenerateJSON(astResult)
	noMetricsOption = rego.EvalMetrics(metrics.NoOp())
)
