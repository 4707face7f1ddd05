package quota

import (
	"context"
	"fmt"
	"strconv"
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
}

// Redis is a Limiter whose counters live in Redis and are shared by all
// gateway replicas. Each bucket is one integer key,
// <prefix>:{<scope>}:<dimension>:<window>:<window start>, e.g.
// tollgate:{team:ml}:tokens:day:20261125; the hash tag puts all keys of a
// scope in one Redis Cluster slot. Keys expire a grace period after their
// window ends.
type Redis struct {
	client      redis.UniversalClient
	prefix      string
	loc         *time.Location
	callTimeout time.Duration
	reserve     *redis.Script
	settle      *redis.Script
}

// NewRedis returns a limiter using client, which the caller keeps owning and
// closes. Reserve sends one script over all the buckets of a request.
//
// TODO(tollgate): on Redis Cluster the buckets of different scopes hash to
// different slots and one script cannot span them (CROSSSLOT). Cross-scope
// atomicity there needs a per-slot reserve with compensation, or co-locating
// a request's scopes under one tag.
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
	return &Redis{
		client:      client,
		prefix:      cfg.Prefix,
		loc:         cfg.Location,
		callTimeout: cfg.CallTimeout,
		reserve:     redis.NewScript(reserveScript),
		settle:      redis.NewScript(settleScript),
	}
}

// Reserve implements Limiter with one atomic script run. When the call times
// out after Redis ran the script, the charge stays until its window ends: a
// lost reply over-counts, it never under-counts.
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
		ttl := max(e.end.Sub(now)+bucketGrace, time.Millisecond)
		args = append(args, e.amount, e.max, ttl.Milliseconds())
	}

	cctx, cancel := context.WithTimeout(ctx, r.callTimeout)
	defer cancel()
	reply, err := r.reserve.Run(cctx, r.client, keys, args...).Int64Slice()
	if err != nil {
		return nil, r.fail(ctx, op, err)
	}
	if len(reply) != len(keys)+1 {
		return nil, fmt.Errorf("%s: %w: %w: %d values for %d keys", op, ErrUnavailable, errInconsistent, len(reply), len(keys))
	}
	used := reply[1:]
	if reply[0] == 0 {
		if ex := p.exceeded(limits, used, now); ex != nil {
			return nil, ex
		}
		return nil, fmt.Errorf("%s: %w: %w: rejected within limits", op, ErrUnavailable, errInconsistent)
	}
	res.Status = p.statuses(limits, used)
	res.keys = keys
	return res, nil
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
	cctx, cancel := context.WithTimeout(ctx, r.callTimeout)
	defer cancel()
	if err := r.settle.Run(cctx, r.client, keys, args...).Err(); err != nil {
		return r.fail(ctx, op, err)
	}
	return nil
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

// fail wraps a Redis error. When the caller's own context ended the error is
// the caller's, not the backend's, and does not wrap ErrUnavailable, so a
// cancelled request does not trigger the fail-open fallback.
func (r *Redis) fail(parent context.Context, op string, err error) error {
	if cerr := parent.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", op, cerr)
	}
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}
