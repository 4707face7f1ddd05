package quota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Default values of RedisConfig.
const (
	DefaultPrefix      = "tollgate"
	DefaultCallTimeout = 250 * time.Millisecond
)

// reserveScript checks every bucket and charges all of them or none.
//
// KEYS[i] is a bucket counter; ARGV[3i-2] the amount to add, ARGV[3i-1] the
// tightest maximum of the bucket, ARGV[3i] its TTL in milliseconds. The reply
// is {1, counter after charging...} when admitted, {0, counter...} when not.
// Every bucket is written (INCRBY 0 included) so that Reconcile finds it.
const reserveScript = `
local n = #KEYS
local used = {}
local ok = 1
for i = 1, n do
  local u = tonumber(redis.call('GET', KEYS[i]) or '0')
  used[i] = u
  if tonumber(ARGV[3*i-2]) > tonumber(ARGV[3*i-1]) - u then
    ok = 0
  end
end
if ok == 1 then
  for i = 1, n do
    used[i] = redis.call('INCRBY', KEYS[i], ARGV[3*i-2])
    redis.call('PEXPIRE', KEYS[i], ARGV[3*i])
  end
end
table.insert(used, 1, ok)
return used
`

// settleScript adds ARGV[i] to KEYS[i] when the bucket still exists; a bucket
// that expired belongs to a window long past and must not be recreated
// without a TTL.
const settleScript = `
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[i])
  end
end
return 0
`

// RedisConfig configures a Redis limiter. Zero values take the defaults.
type RedisConfig struct {
	// Prefix starts every key (default "tollgate"). It must not contain
	// '{' or '}', which would break the hash tags.
	Prefix string
	// Location aligns day and month windows (default UTC).
	Location *time.Location
	// CallTimeout bounds every Redis call (default 250ms). The client must
	// have ContextTimeoutEnabled for the bound to cover network reads.
	CallTimeout time.Duration
	// Cluster sends one script per hash slot instead of one per request, as
	// a Redis Cluster requires. It is implied when the client is a
	// *redis.ClusterClient.
	Cluster bool
	// Log receives failed rollbacks in cluster mode (nil discards them).
	Log *slog.Logger
}

// Redis is a Limiter whose counters live in Redis and are shared by all
// gateway replicas. Each bucket is one integer key,
// <prefix>:{<scope>}:<dimension>:<window>:<window start>, e.g.
// tollgate:{team:ml}:tokens:day:20261125; the hash tag puts all keys of a
// scope in one Redis Cluster slot. Keys expire a grace period after their
// window ends.
//
// On a single server, Reserve, Extend, Reconcile and Refund are one script
// run each, whatever the number of scopes, and a reservation is atomic over
// all of them.
//
// On a Redis Cluster (RedisConfig.Cluster) one script cannot touch keys of
// different slots, so a reservation runs one script per hash slot, slot by
// slot in ascending slot order (the same order for every request and every
// replica). Each script checks and charges the buckets of its slot
// atomically. When a slot refuses, the slots already charged are refunded
// before Reserve returns the refusal. The exact guarantee:
//
//   - No overshoot, ever: a bucket is charged only when the charge fits under
//     its maximum at that moment, exactly as on a single server.
//   - All or nothing, eventually: an admitted request is charged on every
//     slot; a refused one holds charges on the slots before the refusing one
//     for one more round trip (the rollback). Meanwhile a concurrent request
//     may see those buckets fuller than they will be, and be refused when a
//     strictly serial order would have admitted it. It is never admitted
//     wrongly.
//   - On a backend error the slots already charged are refunded too; the
//     slot whose reply was lost may or may not have charged, so it keeps a
//     possible charge until its window ends: an over-count, never an
//     under-count (the same as a lost reply on a single server).
//
// Reconcile and Refund run one script per slot; each applies its slot's
// deltas atomically.
type Redis struct {
	client      redis.UniversalClient
	prefix      string
	loc         *time.Location
	callTimeout time.Duration
	cluster     bool
	log         *slog.Logger
	reserve     *redis.Script
	settle      *redis.Script
}

// NewRedis returns a limiter using client, which the caller keeps owning and
// closes.
func NewRedis(client redis.UniversalClient, cfg RedisConfig) *Redis {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if _, ok := client.(*redis.ClusterClient); ok {
		cfg.Cluster = true
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Redis{
		client:      client,
		prefix:      cfg.Prefix,
		loc:         cfg.Location,
		callTimeout: cfg.CallTimeout,
		cluster:     cfg.Cluster,
		log:         cfg.Log,
		reserve:     redis.NewScript(reserveScript),
		settle:      redis.NewScript(settleScript),
	}
}

// Reserve implements Limiter: one script run on a single server, one per
// hash slot on a cluster. When a call times out after Redis ran the script,
// the charge stays until its window ends: a lost reply over-counts, it never
// under-counts.
func (r *Redis) Reserve(ctx context.Context, now time.Time, limits []Limit, amt Amount) (*Reservation, error) {
	const op = "quota reserve"
	p, err := makePlan(limits, amt, now, r.loc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	res := &Reservation{amount: amt, owner: r, entries: p.entries}
	if len(p.entries) == 0 {
		return res, nil
	}
	keys := make([]string, len(p.entries))
	args := make([]any, 0, 3*len(p.entries))
	for i := range p.entries {
		e := &p.entries[i]
		keys[i] = r.key(e.scope, e.dim, e.window, e.start)
		args = append(args, e.amount, e.max, r.ttl(e, now).Milliseconds())
	}
	used, ok, err := r.charge(ctx, op, keys, args)
	if err != nil {
		return nil, err
	}
	if !ok {
		if ex := p.exceeded(limits, used, now); ex != nil {
			return nil, ex
		}
		return nil, fmt.Errorf("%s: %w: %w: rejected within limits", op, ErrUnavailable, errInconsistent)
	}
	res.Status = p.statuses(limits, used)
	res.keys = keys
	return res, nil
}

// Extend grows a live reservation by add, all or nothing, in the buckets the
// reservation charged (see the package documentation), with the same
// per-slot protocol as Reserve on a cluster.
func (r *Redis) Extend(ctx context.Context, now time.Time, res *Reservation, add Amount) error {
	const op = "quota extend"
	if err := checkExtend(r, res, add); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	idx, amounts := extension(res, add)
	if len(idx) == 0 {
		return nil
	}
	keys := make([]string, len(idx))
	args := make([]any, 0, 3*len(idx))
	for k, i := range idx {
		e := &res.entries[i]
		keys[k] = res.keys[i]
		args = append(args, amounts[k], e.max, r.ttl(e, now).Milliseconds())
	}
	used, ok, err := r.charge(ctx, op, keys, args)
	if err != nil {
		return err
	}
	if !ok {
		if ex := extensionExceeded(res, idx, amounts, used, now); ex != nil {
			return ex
		}
		return fmt.Errorf("%s: %w: %w: rejected within limits", op, ErrUnavailable, errInconsistent)
	}
	res.grow(idx, amounts, add)
	return nil
}

// ttl is how long a bucket written at now must live: until its window ends
// plus the grace.
func (r *Redis) ttl(e *entry, now time.Time) time.Duration {
	return max(e.end.Sub(now)+bucketGrace, time.Millisecond)
}

// charge runs the reserve script over keys, whose ARGV triples are args. It
// reports the counters (after charging when ok, before it when not) in the
// order of keys. On a cluster it runs one script per slot, in ascending slot
// order, and rolls back the slots already charged when a later one refuses
// or fails.
func (r *Redis) charge(ctx context.Context, op string, keys []string, args []any) (used []int64, ok bool, err error) {
	if !r.cluster {
		reply, err := r.runReserve(ctx, op, keys, args)
		if err != nil {
			return nil, false, err
		}
		return reply[1:], reply[0] == 1, nil
	}
	used = make([]int64, len(keys))
	groups := slotGroups(keys)
	var gkeys []string
	var gargs []any
	for gi, g := range groups {
		gkeys, gargs = gkeys[:0], gargs[:0]
		for _, i := range g {
			gkeys = append(gkeys, keys[i])
			gargs = append(gargs, args[3*i:3*i+3]...)
		}
		reply, err := r.runReserve(ctx, op, gkeys, gargs)
		if err != nil {
			r.rollback(ctx, keys, args, groups[:gi])
			return nil, false, err
		}
		for k, i := range g {
			used[i] = reply[1+k]
		}
		if reply[0] == 1 {
			continue
		}
		// Refused: undo the slots before, and report the counters of the
		// admitted slots as they were before this request.
		r.rollback(ctx, keys, args, groups[:gi])
		for _, done := range groups[:gi] {
			for _, i := range done {
				used[i] -= args[3*i].(int64)
			}
		}
		// Read the slots not tried, so that the refusal names the exhausted
		// limit that resets last, as on a single server. This costs round
		// trips on the refusal path only; a failed read leaves zeros, which
		// only makes the report less precise.
		for _, rest := range groups[gi+1:] {
			r.read(ctx, keys, rest, used)
		}
		return used, false, nil
	}
	return used, true, nil
}

// runReserve runs the reserve script once, keys all in one slot on a cluster.
func (r *Redis) runReserve(ctx context.Context, op string, keys []string, args []any) ([]int64, error) {
	cctx, cancel := context.WithTimeout(ctx, r.callTimeout)
	defer cancel()
	reply, err := r.reserve.Run(cctx, r.client, keys, args...).Int64Slice()
	if err != nil {
		return nil, r.fail(ctx, op, err)
	}
	if len(reply) != len(keys)+1 {
		return nil, fmt.Errorf("%s: %w: %w: %d values for %d keys", op, ErrUnavailable, errInconsistent, len(reply), len(keys))
	}
	return reply, nil
}

// read stores the counters of keys[g] (one slot) into used[g].
func (r *Redis) read(ctx context.Context, keys []string, g []int, used []int64) {
	gkeys := make([]string, len(g))
	for k, i := range g {
		gkeys[k] = keys[i]
	}
	cctx, cancel := context.WithTimeout(ctx, r.callTimeout)
	defer cancel()
	vals, err := r.client.MGet(cctx, gkeys...).Result()
	if err != nil {
		return
	}
	for k, v := range vals {
		if s, ok := v.(string); ok {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				used[g[k]] = n
			}
		}
	}
}

// rollback subtracts the amounts charged in groups. It runs even when the
// request was cancelled, with its own timeout per call; a failure leaves an
// over-count until the window ends, and is logged.
func (r *Redis) rollback(ctx context.Context, keys []string, args []any, groups [][]int) {
	ctx = context.WithoutCancel(ctx)
	for _, g := range groups {
		gkeys := make([]string, 0, len(g))
		gargs := make([]any, 0, len(g))
		for _, i := range g {
			if a := args[3*i].(int64); a != 0 {
				gkeys = append(gkeys, keys[i])
				gargs = append(gargs, -a)
			}
		}
		if len(gkeys) == 0 {
			continue
		}
		if err := r.runSettle(ctx, "quota rollback", gkeys, gargs); err != nil {
			r.log.Warn("quota rollback", "keys", gkeys, "err", err)
		}
	}
}

func (r *Redis) runSettle(ctx context.Context, op string, keys []string, args []any) error {
	cctx, cancel := context.WithTimeout(ctx, r.callTimeout)
	defer cancel()
	if err := r.settle.Run(cctx, r.client, keys, args...).Err(); err != nil {
		return r.fail(ctx, op, err)
	}
	return nil
}

// Reconcile implements Limiter by adding actual − reserved to each bucket.
func (r *Redis) Reconcile(ctx context.Context, res *Reservation, actual Amount) error {
	return r.settleWith(ctx, "quota reconcile", res, actual)
}

// Refund implements Limiter by subtracting the reserved amount.
func (r *Redis) Refund(ctx context.Context, res *Reservation) error {
	return r.settleWith(ctx, "quota refund", res, Amount{})
}

func (r *Redis) settleWith(ctx context.Context, op string, res *Reservation, actual Amount) error {
	if err := checkSettle(r, res, actual); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !res.claim() {
		return nil
	}
	var keys []string
	var args []any
	for i := range res.entries {
		e := &res.entries[i]
		if delta := actual.of(e.dim) - e.amount; delta != 0 {
			keys = append(keys, res.keys[i])
			args = append(args, delta)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	if !r.cluster {
		return r.runSettle(ctx, op, keys, args)
	}
	var errs []error
	for _, g := range slotGroups(keys) {
		gkeys := make([]string, len(g))
		gargs := make([]any, len(g))
		for k, i := range g {
			gkeys[k], gargs[k] = keys[i], args[i]
		}
		if err := r.runSettle(ctx, op, gkeys, gargs); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Usage returns the counters of limit's scope in the window containing now,
// for every dimension whether limit restricts it or not.
func (r *Redis) Usage(ctx context.Context, now time.Time, limit Limit) (Amount, error) {
	const op = "quota usage"
	start, _, err := limit.Window.Bounds(now, r.loc)
	if err != nil {
		return Amount{}, fmt.Errorf("%s: %w", op, err)
	}
	cctx, cancel := context.WithTimeout(ctx, r.callTimeout)
	defer cancel()
	vals, err := r.client.MGet(cctx,
		r.key(limit.Scope, dimTokens, limit.Window, start),
		r.key(limit.Scope, dimRequests, limit.Window, start),
		r.key(limit.Scope, dimUSD, limit.Window, start),
	).Result()
	if err != nil {
		return Amount{}, r.fail(ctx, op, err)
	}
	var n [numDimensions]int64
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // missing key
		}
		if n[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			return Amount{}, fmt.Errorf("%s: counter %q: %w", op, s, err)
		}
	}
	return Amount{Tokens: n[dimTokens], Requests: n[dimRequests], USDMicros: n[dimUSD]}, nil
}

// Reset deletes the counters of limit's scope in the window containing
// now (its keys share a hash tag, so one command serves a Cluster too).
// Reservations still in flight settle against the new counters.
func (r *Redis) Reset(ctx context.Context, now time.Time, limit Limit) error {
	const op = "quota reset"
	start, _, err := limit.Window.Bounds(now, r.loc)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	cctx, cancel := context.WithTimeout(ctx, r.callTimeout)
	defer cancel()
	if err := r.client.Del(cctx,
		r.key(limit.Scope, dimTokens, limit.Window, start),
		r.key(limit.Scope, dimRequests, limit.Window, start),
		r.key(limit.Scope, dimUSD, limit.Window, start),
	).Err(); err != nil {
		return r.fail(ctx, op, err)
	}
	return nil
}

// Ping checks that Redis answers within the call timeout, for readiness.
func (r *Redis) Ping(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, r.callTimeout)
	defer cancel()
	if err := r.client.Ping(cctx).Err(); err != nil {
		return r.fail(ctx, "quota ping", err)
	}
	return nil
}

func (r *Redis) owns(res *Reservation) bool { return res != nil && res.owner == r }

// key returns the bucket key, e.g. tollgate:{team:ml}:tokens:day:20261125.
func (r *Redis) key(scope string, d dimension, w Window, start time.Time) string {
	b := make([]byte, 0, len(r.prefix)+len(scope)+40)
	b = append(b, r.prefix...)
	b = append(b, ":{"...)
	b = append(b, scope...)
	b = append(b, "}:"...)
	b = append(b, d.String()...)
	b = append(b, ':')
	b = append(b, w...)
	b = append(b, ':')
	b = w.appendStamp(b, start)
	return string(b)
}

// slotGroups partitions the indices of keys by Redis Cluster hash slot,
// groups in ascending slot order, indices ascending within a group.
func slotGroups(keys []string) [][]int {
	type slotted struct {
		slot uint16
		i    int
	}
	s := make([]slotted, len(keys))
	for i, k := range keys {
		s[i] = slotted{keySlot(k), i}
	}
	slices.SortStableFunc(s, func(a, b slotted) int { return int(a.slot) - int(b.slot) })
	var groups [][]int
	for j, x := range s {
		if j == 0 || x.slot != s[j-1].slot {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], x.i)
	}
	return groups
}

// keySlot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash
// tag (the bytes between the first '{' and the next '}', when not empty) or
// of the whole key, modulo 16384.
func keySlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) % 16384
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum
// of the Redis Cluster specification.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// fail wraps a Redis error. When the caller's own context ended the error is
// the caller's, not the backend's, and does not wrap ErrUnavailable, so a
// cancelled request does not trigger the fail-open fallback.
func (r *Redis) fail(parent context.Context, op string, err error) error {
	if cerr := parent.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", op, cerr)
	}
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}
