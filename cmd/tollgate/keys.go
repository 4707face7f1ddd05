package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/gateway"
)

const keysUsage = `usage: tollgate keys COMMAND [flags]

Commands on the Redis key store (auth.key_store):
  create --subject NAME [--team T] [--org O] [--roles r1,r2] [--kind K] [--label k=v] [--expires 720h|RFC3339]
  list                      show every key and its state (never the key itself)
  revoke ID                 refuse the key on every replica within the cache TTL
  rotate ID [--grace 1h]    issue a new key with the same metadata; retire the old one
  disable ID | enable ID    suspend or resume a key

Reaching Redis: --config FILE (its auth.key_store.redis), or --redis HOST:PORT
[--db N] [--prefix P]; the password only from TOLLGATE_AUTH_KEY_STORE_REDIS_PASSWORD.

For a key in the configuration file instead:
  new --subject NAME [flags]   print a key and its auth.api_keys entry
`

// keysCommand runs `tollgate keys ...`. `keys new` (a key for the config
// file) stays as it was; the other commands manage the Redis key store.
func keysCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return errors.New("keys: no command given")
	}
	switch args[0] {
	case "new":
		return keys(args, stdout, stderr)
	case "create", "list", "revoke", "rotate", "disable", "enable":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	default:
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("keys: unknown command %q", args[0])
	}
	cmd := args[0]
	fs := flag.NewFlagSet("keys "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	conn := storeFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var (
		subject, team, org, roles, kind, expires *string
		labels                                   labelFlag
		grace                                    *time.Duration
	)
	switch cmd {
	case "create":
		subject = fs.String("subject", "", "the user or service that owns the key (required)")
		team = fs.String("team", "", "team, for budgets and chargeback")
		org = fs.String("org", "", "organisation")
		roles = fs.String("roles", "developer", "comma-separated roles")
		kind = fs.String("kind", "user", "user, service or agent")
		expires = fs.String("expires", "", "lifetime (\"720h\") or end (RFC 3339); empty: never")
		fs.Var(&labels, "label", "a label key=value (repeatable)")
	case "rotate":
		grace = fs.Duration("grace", 0, "how long the old key keeps working (0: revoked at once)")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var id string
	switch cmd {
	case "create", "list":
		if fs.NArg() != 0 {
			return fmt.Errorf("keys %s: unexpected argument %q", cmd, fs.Arg(0))
		}
	default:
		// Flags may follow the id: "rotate kabc --grace 1h".
		if fs.NArg() > 0 {
			id = fs.Arg(0)
			if err := fs.Parse(fs.Args()[1:]); err != nil {
				return err
			}
		}
		if id == "" || fs.NArg() != 0 {
			return fmt.Errorf("keys %s: want exactly one key id (see 'tollgate keys list')", cmd)
		}
	}
	if cmd == "create" && *subject == "" {
		return errors.New("keys create: --subject is required (the owner of the key)")
	}

	store, closeStore, err := conn.open()
	if err != nil {
		return err
	}
	defer closeStore()
	now := time.Now()
	switch cmd {
	case "create":
		rec := auth.KeyRecord{Subject: *subject, Kind: *kind, Team: *team, Org: *org, Roles: splitList(*roles), Labels: labels.m}
		if rec.ExpiresAt, err = parseExpiry(*expires, now); err != nil {
			return err
		}
		key, rec, err := store.Create(ctx, rec)
		if err != nil {
			return err
		}
		return printNewKey(stdout, *asJSON, key, rec)
	case "list":
		recs, err := store.List(ctx)
		if err != nil {
			return err
		}
		return printKeys(stdout, *asJSON, recs, now)
	case "revoke":
		rec, err := store.Revoke(ctx, id)
		if err != nil {
			return err
		}
		return printRecord(stdout, *asJSON, "revoked", rec, now)
	case "disable", "enable":
		rec, err := store.SetDisabled(ctx, id, cmd == "disable")
		if err != nil {
			return err
		}
		return printRecord(stdout, *asJSON, cmd+"d", rec, now)
	case "rotate":
		key, rec, err := store.Rotate(ctx, id, *grace)
		if err != nil {
			return err
		}
		return printNewKey(stdout, *asJSON, key, rec)
	}
	return nil
}

// storeConn holds the flags that say how to reach the key store.
type storeConn struct {
	config, addr, prefix *string
	db                   *int
}

func storeFlags(fs *flag.FlagSet) *storeConn {
	return &storeConn{
		config: fs.String("config", os.Getenv("TOLLGATE_CONFIG"), "configuration file whose auth.key_store.redis to use"),
		addr:   fs.String("redis", "", "Redis host:port (instead of --config)"),
		db:     fs.Int("db", 0, "Redis database (with --redis)"),
		prefix: fs.String("prefix", "", "key prefix (with --redis; default \"tollgate\")"),
	}
}

func (c *storeConn) open() (*auth.KeyStore, func(), error) {
	var rc auth.RedisConfig
	switch {
	case *c.addr != "":
		rc = auth.RedisConfig{Addr: *c.addr, DB: *c.db, Prefix: *c.prefix,
			Password: os.Getenv("TOLLGATE_AUTH_KEY_STORE_REDIS_PASSWORD")}
	case *c.config != "":
		cfg, err := gateway.Load(*c.config, os.Environ())
		if err != nil {
			return nil, nil, err
		}
		rc = cfg.Auth.KeyStore.Redis
		if rc.Addr == "" {
			return nil, nil, fmt.Errorf("%s: auth.key_store.redis.addr is empty; configure the key store or pass --redis", *c.config)
		}
	default:
		return nil, nil, errors.New("keys: no key store given; pass --redis HOST:PORT or --config FILE")
	}
	rdb := redis.NewClient(&redis.Options{
		Addr: rc.Addr, Password: rc.Password, DB: rc.DB,
		DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		MaxRetries: 1,
	})
	return auth.NewKeyStore(rdb, auth.StoreOptions{Prefix: rc.Prefix}), func() { _ = rdb.Close() }, nil
}

// labelFlag collects repeated --label key=value flags.
type labelFlag struct{ m map[string]string }

func (l *labelFlag) String() string {
	keys := make([]string, 0, len(l.m))
	for k, v := range l.m {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func (l *labelFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	if l.m == nil {
		l.m = map[string]string{}
	}
	l.m[k] = v
	return nil
}

func parseExpiry(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("keys create: --expires %q is not a positive duration", s)
		}
		return now.Add(d).UTC().Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("keys create: --expires %q is neither a duration (\"720h\") nor an RFC 3339 time", s)
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("keys create: --expires %s is in the past", s)
	}
	return t.UTC(), nil
}

func printNewKey(w io.Writer, asJSON bool, key string, rec auth.KeyRecord) error {
	if asJSON {
		return json.NewEncoder(w).Encode(struct {
			Key    string         `json:"key"`
			Record auth.KeyRecord `json:"record"`
		}{key, rec})
	}
	exp := "never"
	if !rec.ExpiresAt.IsZero() {
		exp = rec.ExpiresAt.Format(time.RFC3339)
	}
	_, err := fmt.Fprintf(w, `API key (shown once; give it to %s, store it nowhere else):

  %s

id %s, subject %s, kind %s, team %q, roles %s, expires %s
`, rec.Subject, key, rec.ID, rec.Subject, rec.Kind, rec.Team, strings.Join(rec.Roles, ","), exp)
	return err
}

func printRecord(w io.Writer, asJSON bool, what string, rec auth.KeyRecord, now time.Time) error {
	if asJSON {
		return json.NewEncoder(w).Encode(rec)
	}
	_, err := fmt.Fprintf(w, "%s %s (subject %s); status now %s; replicas follow within the key store's cache TTL\n",
		what, rec.ID, rec.Subject, rec.Status(now))
	return err
}

func printKeys(w io.Writer, asJSON bool, recs []auth.KeyRecord, now time.Time) error {
	if asJSON {
		if recs == nil {
			recs = []auth.KeyRecord{}
		}
		return json.NewEncoder(w).Encode(recs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUBJECT\tKIND\tTEAM\tROLES\tSTATUS\tCREATED\tEXPIRES")
	for _, r := range recs {
		exp := "-"
		if !r.ExpiresAt.IsZero() {
			exp = r.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Subject, r.Kind, orDash(r.Team),
			orDash(strings.Join(r.Roles, ",")), r.Status(now), r.CreatedAt.Format(time.RFC3339), exp)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
