package quota

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Backends selectable in Config.Backend.
const (
	BackendMemory = "memory"
	BackendRedis  = "redis"
)

// Config is the quota section of the gateway configuration. Empty fields take
// the values of DefaultConfig.
type Config struct {
	// Backend is "memory" (one replica) or "redis" (shared counters).
	Backend string `yaml:"backend"`
	// Redis is used when Backend is "redis".
	Redis RedisEndpoint `yaml:"redis"`
	// FailMode is "closed" (reject with 503) or "open" (local in-memory
	// limits) for when Redis is unavailable.
	FailMode string `yaml:"fail_mode"`
	// TimeZone is the IANA name aligning day and month windows, e.g.
	// "Europe/Berlin".
	TimeZone string `yaml:"time_zone"`
	// CallTimeout bounds every Redis call, as a duration string ("250ms").
	CallTimeout string `yaml:"call_timeout"`
}

// RedisEndpoint says how to reach Redis: one server at Addr, or a Redis
// Cluster (Cluster true) through the seed nodes in Addrs (and Addr, when
// set).
type RedisEndpoint struct {
	// Addr is host:port of a single server, or one seed node of a cluster.
	Addr string `yaml:"addr"`
	// Addrs are host:port of cluster nodes to discover the cluster from;
	// only with Cluster.
	Addrs []string `yaml:"addrs"`
	// Cluster speaks the Redis Cluster protocol: keys are routed by hash
	// slot, and a reservation runs one script per slot (see Redis).
	Cluster bool `yaml:"cluster"`
	// Password is secret: it is redacted when logged.
	Password string `yaml:"password"`
	DB       int    `yaml:"db"`
	// Prefix starts every key (default "tollgate"), to share a Redis
	// between deployments.
	Prefix string `yaml:"prefix"`
}

// DefaultConfig returns the defaults: memory backend, fail closed, UTC,
// 250ms call timeout.
func DefaultConfig() Config {
	return Config{
		Backend:     BackendMemory,
		FailMode:    FailClosed,
		TimeZone:    "UTC",
		CallTimeout: DefaultCallTimeout.String(),
	}
}

// LogValue redacts the password.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("backend", c.Backend),
		slog.Any("redis", c.Redis),
		slog.String("fail_mode", c.FailMode),
		slog.String("time_zone", c.TimeZone),
		slog.String("call_timeout", c.CallTimeout),
	)
}

// LogValue redacts the password.
func (e RedisEndpoint) LogValue() slog.Value {
	pw := ""
	if e.Password != "" {
		pw = "REDACTED"
	}
	return slog.GroupValue(
		slog.String("addr", e.Addr),
		slog.Any("addrs", e.Addrs),
		slog.Bool("cluster", e.Cluster),
		slog.String("password", pw),
		slog.Int("db", e.DB),
		slog.String("prefix", e.Prefix),
	)
}

// Validate returns every problem of c, each naming its YAML path.
func (c Config) Validate() error {
	_, _, err := c.resolve()
	return err
}

// resolve validates c and returns its parsed location and call timeout.
func (c Config) resolve() (*time.Location, time.Duration, error) {
	var errs []error
	switch c.Backend {
	case "", BackendMemory:
	case BackendRedis:
		errs = append(errs, c.Redis.validate()...)
	default:
		errs = append(errs, fmt.Errorf("quota.backend: invalid value %q (want %q or %q)", c.Backend, BackendMemory, BackendRedis))
	}
	switch c.FailMode {
	case "", FailClosed, FailOpen:
	default:
		errs = append(errs, fmt.Errorf("quota.fail_mode: invalid value %q (want %q or %q)", c.FailMode, FailClosed, FailOpen))
	}
	loc := time.UTC
	if c.TimeZone != "" {
		l, err := time.LoadLocation(c.TimeZone)
		if err != nil {
			errs = append(errs, fmt.Errorf("quota.time_zone: unknown time zone %q (want an IANA name such as %q or %q)", c.TimeZone, "UTC", "Europe/Berlin"))
		} else {
			loc = l
		}
	}
	timeout := DefaultCallTimeout
	if c.CallTimeout != "" {
		d, err := time.ParseDuration(c.CallTimeout)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("quota.call_timeout: invalid duration %q (want e.g. %q)", c.CallTimeout, "250ms"))
		case d <= 0:
			errs = append(errs, fmt.Errorf("quota.call_timeout: %q is not positive (want e.g. %q)", c.CallTimeout, "250ms"))
		default:
			timeout = d
		}
	}
	return loc, timeout, errors.Join(errs...)
}

func (e RedisEndpoint) validate() []error {
	var errs []error
	checkAddr := func(path, addr string) {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("%s: invalid value %q (want host:port, e.g. %q)", path, addr, "127.0.0.1:6379"))
		}
	}
	if e.Cluster {
		if e.Addr == "" && len(e.Addrs) == 0 {
			errs = append(errs, errors.New("quota.redis.addrs: empty; list host:port of one or more cluster nodes"))
		}
		if e.Addr != "" {
			checkAddr("quota.redis.addr", e.Addr)
		}
		for i, a := range e.Addrs {
			checkAddr(fmt.Sprintf("quota.redis.addrs[%d]", i), a)
		}
		if e.DB != 0 {
			errs = append(errs, fmt.Errorf("quota.redis.db: %d with cluster: true (a Redis Cluster has only database 0; remove db)", e.DB))
		}
	} else {
		switch {
		case len(e.Addrs) > 0:
			errs = append(errs, errors.New("quota.redis.addrs: set only with cluster: true (hint: set quota.redis.cluster: true for a Redis Cluster, or use quota.redis.addr for one server)"))
		case e.Addr == "":
			errs = append(errs, errors.New("quota.redis.addr: empty; set host:port"))
		default:
			checkAddr("quota.redis.addr", e.Addr)
		}
	}
	if e.DB < 0 {
		errs = append(errs, fmt.Errorf("quota.redis.db: negative value %d (want 0 or more)", e.DB))
	}
	if strings.ContainsAny(e.Prefix, "{}") {
		errs = append(errs, fmt.Errorf("quota.redis.prefix: invalid value %q (must not contain '{' or '}', which would break the Redis Cluster hash tags)", e.Prefix))
	}
	return errs
}

// seeds returns the cluster nodes to discover the cluster from.
func (e RedisEndpoint) seeds() []string {
	seeds := slices.Clone(e.Addrs)
	if e.Addr != "" && !slices.Contains(seeds, e.Addr) {
		seeds = append([]string{e.Addr}, seeds...)
	}
	return seeds
}

// Open builds the limiter cfg describes: a Memory, a Redis, or (fail mode
// open) a Failover from Redis to a Memory. The closer releases the Redis
// connections. log receives the failover messages (nil discards them).
func Open(cfg Config, log *slog.Logger) (Limiter, io.Closer, error) {
	loc, timeout, err := cfg.resolve()
	if err != nil {
		return nil, nil, fmt.Errorf("quota open: %w", err)
	}
	if cfg.Backend == "" || cfg.Backend == BackendMemory {
		return NewMemory(loc), closerFunc(func() error { return nil }), nil
	}
	// A script whose reply is lost may have run: retrying it would charge
	// twice, hence no retries. One dial attempt: fail fast when Redis is
	// down instead of spending CallTimeout on dial retries.
	var client redis.UniversalClient
	if cfg.Redis.Cluster {
		client = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                 cfg.Redis.seeds(),
			Password:              cfg.Redis.Password,
			DialTimeout:           timeout,
			ReadTimeout:           timeout,
			WriteTimeout:          timeout,
			ContextTimeoutEnabled: true,
			MaxRetries:            -1,
			DialerRetries:         1,
		})
	} else {
		client = redis.NewClient(&redis.Options{
			Addr:                  cfg.Redis.Addr,
			Password:              cfg.Redis.Password,
			DB:                    cfg.Redis.DB,
			DialTimeout:           timeout,
			ReadTimeout:           timeout,
			WriteTimeout:          timeout,
			ContextTimeoutEnabled: true,
			MaxRetries:            -1,
			DialerRetries:         1,
		})
	}
	primary := NewRedis(client, RedisConfig{Prefix: cfg.Redis.Prefix, Location: loc, CallTimeout: timeout, Cluster: cfg.Redis.Cluster, Log: log})
	if cfg.FailMode != FailOpen {
		return primary, client, nil
	}
	f, err := NewFailover(primary, NewMemory(loc), FailOpen, log)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("quota open: %w", err), client.Close())
	}
	return f, client, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
