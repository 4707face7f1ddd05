package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/proxy"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/moderation"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/quota"
)

// Gateway is a wired Tollgate: the proxy server and the parts it owns.
type Gateway struct {
	Server    *proxy.Server
	Engine    *engine.Engine
	Registry  *prometheus.Registry
	writer    *analytics.Writer
	decisions *analytics.DecisionWriter
	bundles   *bundles.Manager[*engine.Policy]
	shadow    *bundles.Manager[*engine.Policy]
	closers   []io.Closer
	log       *slog.Logger
	// tls is the listener's TLS configuration, nil for plain HTTP.
	tls *tls.Config
}

// NewBundleManager returns the manager that loads the configured policy
// bundles (the embedded library when none is configured) into eng.
func NewBundleManager(eng *engine.Engine, cfg engine.Config, reg prometheus.Registerer, log *slog.Logger) (*bundles.Manager[*engine.Policy], error) {
	bc := cfg.Config
	bc.Default = policies.FS
	if reg != nil {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"policy": "live"}, reg)
	}
	return bundles.NewManager(bc, eng.Compile, eng.Activate, reg, log)
}

// LoadPolicy loads, compiles and activates the configured bundles once and
// returns the resulting policy: for `tollgate check` and `policy eval`.
func LoadPolicy(ctx context.Context, eng *engine.Engine, cfg engine.Config) (*engine.Policy, error) {
	m, err := NewBundleManager(eng, cfg, nil, nil)
	if err != nil {
		return nil, err
	}
	if err := m.Load(ctx); err != nil {
		return nil, err
	}
	return eng.Current(), nil
}

// New wires a gateway from validated configuration. A policy bundle that
// does not load is logged and leaves the gateway not ready (it denies every
// request), as the design requires; every other problem is an error.
func New(ctx context.Context, cfg *Config, log *slog.Logger) (_ *Gateway, err error) {
	g := &Gateway{Registry: prometheus.NewRegistry(), log: log}
	defer func() {
		if err != nil {
			err = errors.Join(err, g.closeAll())
		}
	}()
	g.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	counter, err := tokens.New()
	if err != nil {
		return nil, err
	}
	var rdb redis.UniversalClient
	if cfg.Auth.KeyStore.Enabled() {
		r := cfg.Auth.KeyStore.Redis
		rdb = redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.Password, DB: r.DB,
			DialTimeout: 2 * time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
		g.closers = append(g.closers, rdb)
	}
	authn, err := auth.New(cfg.Auth, auth.Options{Redis: rdb})
	if err != nil {
		return nil, err
	}
	wctx, cancelWarm := context.WithTimeout(ctx, 10*time.Second)
	if err := authn.Warm(wctx); err != nil {
		log.Warn("OIDC issuers not reachable at start; their tokens are refused until discovery succeeds", "err", err)
	}
	cancelWarm()
	if g.tls, err = serverTLS(cfg); err != nil {
		return nil, err
	}
	hashSecret, err := cfg.PII.hashSecret()
	if err != nil {
		return nil, err
	}
	if hashSecret == nil {
		log.Warn("no pii.hash_secret_env or pii.hash_secret_file: the PII hash action uses a random secret, so its tokens change when the gateway restarts and differ across replicas")
	}
	if g.Engine, err = engine.New(cfg.Policy, log); err != nil {
		return nil, err
	}
	if g.bundles, err = NewBundleManager(g.Engine, cfg.Policy, g.Registry, log); err != nil {
		return nil, err
	}
	// The first load is synchronous so that a good bundle serves from the
	// first request; a failure leaves the gateway not ready (it denies)
	// while Run keeps trying.
	if err := g.bundles.Load(ctx); err != nil {
		log.Error("policy bundle not loaded; the gateway denies every request until one loads", "err", err)
	}

	limiter, closer, err := quota.Open(cfg.Quota, log)
	if err != nil {
		return nil, err
	}
	g.closers = append(g.closers, closer)

	var shadow *engine.Engine
	if cfg.Policy.Shadow != nil {
		if shadow, err = engine.New(cfg.Policy, log.With("policy", "shadow")); err != nil {
			return nil, err
		}
		sreg := prometheus.WrapRegistererWith(prometheus.Labels{"policy": "shadow"}, g.Registry)
		if g.shadow, err = bundles.NewManager(*cfg.Policy.Shadow, shadow.Compile, shadow.Activate, sreg, log.With("policy", "shadow")); err != nil {
			return nil, fmt.Errorf("policy.shadow: %w", err)
		}
		if err := g.shadow.Load(ctx); err != nil {
			log.Error("shadow policy bundle not loaded; shadow evaluation is off until one loads", "err", err)
		}
	}

	var out analytics.Inserter
	var decOut analytics.DecisionInserter
	if len(cfg.Analytics.ClickHouse.Addr) > 0 {
		ch, err := analytics.NewLazyClickHouse(cfg.Analytics.ClickHouse)
		if err != nil {
			return nil, fmt.Errorf("analytics.clickhouse: %w", err)
		}
		g.closers = append(g.closers, ch)
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := ch.Connect(mctx); err != nil {
			if cfg.Analytics.Writer.Spool.Dir == "" {
				return nil, fmt.Errorf("analytics.clickhouse: %w", err)
			}
			// With a spool, events wait on disk; the first insert after
			// ClickHouse answers connects and migrates.
			log.Error("clickhouse unreachable at start; analytics events wait in the spool", "err", err)
		}
		out = ch
		decOut = analytics.DecisionInserterFunc(ch.InsertDecisions)
	} else {
		path := cfg.Analytics.File
		if path == "" {
			path = "-"
		}
		jl, err := analytics.OpenJSONLines(path)
		if err != nil {
			return nil, fmt.Errorf("analytics.file: %w", err)
		}
		g.closers = append(g.closers, jl)
		out = jl
		dpath := cfg.Analytics.DecisionFile
		if dpath == "" {
			dpath = decisionFileFor(path)
		}
		djl, err := analytics.OpenJSONLines(dpath)
		if err != nil {
			return nil, fmt.Errorf("analytics.decision_file: %w", err)
		}
		g.closers = append(g.closers, djl)
		decOut = analytics.DecisionInserterFunc(djl.InsertDecisions)
	}
	if g.decisions, err = analytics.NewDecisionWriter(cfg.Analytics.Writer, decOut, g.Registry, log); err != nil {
		return nil, err
	}
	if g.writer, err = analytics.NewWriter(cfg.Analytics.Writer, out, g.Registry, log); err != nil {
		return nil, err
	}

	ups := make([]proxy.Upstream, 0, len(cfg.Providers))
	models := map[string][]string{}
	client := provider.NewHTTPClient()
	for _, pc := range cfg.Providers {
		up, err := provider.New(pc, client)
		if err != nil {
			return nil, err
		}
		ups = append(ups, up)
		for _, m := range pc.Models {
			models[m] = append(models[m], pc.Name)
		}
	}

	mod, err := moderation.New(cfg.Moderation, client, g.Registry)
	if err != nil {
		return nil, err
	}
	var keyStore proxy.KeyAdmin
	if st := authn.Store(); st != nil {
		keyStore = st
	}
	g.Server, err = proxy.New(cfg.Server, proxy.Deps{
		Engine:     g.Engine,
		Builder:    engine.NewBuilder(counter, pii.NewScanner()),
		Counter:    counter,
		Auth:       authn,
		ConfigKeys: cfg.Auth.APIKeys,
		KeyStore:   keyStore,
		HashSecret: hashSecret,
		Moderation: mod,
		Limiter:    limiter,
		Events:     g.writer,
		Upstreams:  ups,
		Models:     models,
		Registry:   g.Registry,
		Log:        log,
		Bundles:    g.bundles.Status,
		Decisions:  g.decisions,
		Shadow:     shadow,
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// serverTLS builds the listener's TLS configuration: none without a
// certificate; with auth.mtls, client certificates are verified against
// its CAs.
func serverTLS(cfg *Config) (*tls.Config, error) {
	t := cfg.Server.TLS
	if t.CertFile == "" && t.KeyFile == "" {
		if cfg.Auth.MTLS.Enabled() {
			return nil, errors.New("auth.mtls: client certificates need a TLS listener; set server.tls.cert_file and key_file")
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("server.tls: %w", err)
	}
	return auth.ServerTLSConfig(cfg.Auth.MTLS, []tls.Certificate{cert})
}

// Run serves on l until ctx is done, then drains: the server finishes
// in-flight requests, the event writer flushes, and the stores close.
func (g *Gateway) Run(ctx context.Context, l net.Listener) error {
	g.writer.Start()
	g.decisions.Start()
	bctx, stopBundles := context.WithCancel(ctx)
	managers := []*bundles.Manager[*engine.Policy]{g.bundles}
	if g.shadow != nil {
		managers = append(managers, g.shadow)
	}
	bdone := make(chan error, len(managers))
	for _, m := range managers {
		go func() { bdone <- m.Run(bctx) }()
	}
	if g.tls != nil {
		l = tls.NewListener(l, g.tls)
	}
	err := g.Server.Serve(ctx, l)
	stopBundles()
	for range managers {
		err = errors.Join(err, <-bdone)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if werr := g.writer.Stop(sctx); werr != nil {
		err = errors.Join(err, fmt.Errorf("flush inference log: %w", werr))
	}
	if werr := g.decisions.Stop(sctx); werr != nil {
		err = errors.Join(err, fmt.Errorf("flush decision log: %w", werr))
	}
	return errors.Join(err, g.closeAll())
}

func (g *Gateway) closeAll() error {
	var errs []error
	for i := len(g.closers) - 1; i >= 0; i-- {
		if g.closers[i] != nil {
			errs = append(errs, g.closers[i].Close())
		}
	}
	g.closers = nil
	return errors.Join(errs...)
}

// decisionFileFor names the decision-log file beside the inference-log file.
func decisionFileFor(path string) string {
	if path == "-" {
		return "-"
	}
	return strings.TrimSuffix(path, ".jsonl") + ".decisions.jsonl"
}
