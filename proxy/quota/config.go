package quota

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
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

// RedisEndpoint says how to reach Redis.
type RedisEndpoint struct {
	// Addr is host:port.
	Addr string `yaml:"addr"`
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
	if e.Addr == "" {
		errs = append(errs, errors.New("quota.redis.addr: empty; set host:port"))
	} else if _, port, err := net.SplitHostPort(e.Addr); err != nil || port == "" {
		errs = append(errs, fmt.Errorf("quota.redis.addr: invalid value %q (want host:port, e.g. %q)", e.Addr, "127.0.0.1:6379"))
	}
	if e.DB < 0 {
		errs = append(errs, fmt.Errorf("quota.redis.db: negative value %d (want 0 or more)", e.DB))
	}
	if strings.ContainsAny(e.Prefix, "{}") {
		errs = append(errs, fmt.Errorf("quota.redis.prefix: invalid value %q (must not contain '{' or '}', which would break the Redis Cluster hash tags)", e.Prefix))
	}
	return errs
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
	client := redis.NewClient(&redis.Options{
		Addr:                  cfg.Redis.Addr,
		Password:              cfg.Redis.Password,
		DB:                    cfg.Redis.DB,
		DialTimeout:           timeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		ContextTimeoutEnabled: true,
		// A script whose reply is lost may have run: retrying it would
		// charge twice.
		MaxRetries: -1,
		// Fail fast when Redis is down instead of spending CallTimeout on
		// dial retries.
		DialerRetries: 1,
	})
	primary := NewRedis(client, RedisConfig{Prefix: cfg.Redis.Prefix, Location: loc, CallTimeout: timeout})
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
