package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/proxy"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/quota"
)

// Gateway is a wired Tollgate: the proxy server and the parts it owns.
type Gateway struct {
	Server   *proxy.Server
	Engine   *engine.Engine
	Registry *prometheus.Registry
	writer   *analytics.Writer
	closers  []io.Closer
	log      *slog.Logger
}

// LoadBundle loads the configured policy bundle, or the embedded library.
func LoadBundle(cfg engine.Config) (*bundles.Bundle, error) {
	if cfg.Bundle == "" {
		return bundles.LoadFS(policies.FS, "embedded")
	}
	return bundles.LoadDir(cfg.Bundle)
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
	keys, err := auth.NewKeys(cfg.Auth)
	if err != nil {
		return nil, err
	}
	if g.Engine, err = engine.New(cfg.Policy, log); err != nil {
		return nil, err
	}
	if b, err := LoadBundle(cfg.Policy); err != nil {
		log.Error("policy bundle not loaded; the gateway denies every request until one loads", "err", err)
	} else if err := g.Engine.Load(ctx, b); err != nil {
		log.Error("policy bundle not loaded; the gateway denies every request until one loads", "err", err)
	}

	limiter, closer, err := quota.Open(cfg.Quota, log)
	if err != nil {
		return nil, err
	}
	g.closers = append(g.closers, closer)

	var out analytics.Inserter
	if len(cfg.Analytics.ClickHouse.Addr) > 0 {
		ch, err := analytics.OpenClickHouse(ctx, cfg.Analytics.ClickHouse)
		if err != nil {
			return nil, fmt.Errorf("analytics.clickhouse: %w", err)
		}
		g.closers = append(g.closers, ch)
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := ch.Migrate(mctx); err != nil {
			return nil, fmt.Errorf("analytics.clickhouse: %w", err)
		}
		out = ch
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
	}
	if g.writer, err = analytics.NewWriter(cfg.Analytics.Writer, out, g.Registry, log); err != nil {
		return nil, err
	}

	ups := make([]proxy.Upstream, 0, len(cfg.Providers))
	models := map[string][]string{}
	client := provider.NewHTTPClient()
	for _, pc := range cfg.Providers {
		up, err := provider.NewOpenAI(pc, client)
		if err != nil {
			return nil, err
		}
		ups = append(ups, up)
		for _, m := range pc.Models {
			models[m] = append(models[m], pc.Name)
		}
	}

	g.Server, err = proxy.New(cfg.Server, proxy.Deps{
		Engine:    g.Engine,
		Builder:   engine.NewBuilder(counter, pii.NewScanner()),
		Counter:   counter,
		Keys:      keys,
		Limiter:   limiter,
		Events:    g.writer,
		Upstreams: ups,
		Models:    models,
		Registry:  g.Registry,
		Log:       log,
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// Run serves on l until ctx is done, then drains: the server finishes
// in-flight requests, the event writer flushes, and the stores close.
func (g *Gateway) Run(ctx context.Context, l net.Listener) error {
	g.writer.Start()
	err := g.Server.Serve(ctx, l)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if werr := g.writer.Stop(sctx); werr != nil {
		err = errors.Join(err, fmt.Errorf("flush inference log: %w", werr))
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
