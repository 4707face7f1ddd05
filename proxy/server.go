// Package proxy is Tollgate's HTTP front: an Echo server that authenticates
// callers, asks the policy engine for a decision, enforces it (deny, mask,
// quota, route) and relays the provider's answer, streaming included.
package proxy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tollgate/tollgate/analytics"
	"github.com/tollgate/tollgate/bundles"
	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/engine/pii"
	"github.com/tollgate/tollgate/engine/tokens"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/moderation"
	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/provider"
	"github.com/tollgate/tollgate/proxy/quota"
	"github.com/tollgate/tollgate/proxy/router"
)

// Config is the server section of the configuration.
type Config struct {
	Listen            string `yaml:"listen"`
	MaxBodyBytes      int64  `yaml:"max_body_bytes"`
	ReadHeaderTimeout string `yaml:"read_header_timeout"`
	ReadTimeout       string `yaml:"read_timeout"`
	IdleTimeout       string `yaml:"idle_timeout"`
	// WriteTimeout bounds writing a non-streaming answer; streams lift it
	// once they start (the upstream deadline bounds their wait).
	WriteTimeout    string `yaml:"write_timeout"`
	ShutdownTimeout string `yaml:"shutdown_timeout"`
	// TrustForwardedFor takes the client IP from X-Forwarded-For.
	TrustForwardedFor bool `yaml:"trust_forwarded_for"`
	// PolicyHeaders are the request headers the policy sees as
	// input.request.headers (never credentials).
	PolicyHeaders []string `yaml:"policy_headers"`
	// UpstreamDeadline bounds the search for an answer across retries and
	// fallbacks: the whole call when not streaming, until the first chunk
	// when streaming (default 120s).
	UpstreamDeadline string `yaml:"upstream_deadline"`
	// Retries is how often a failing upstream is retried (5xx, connection
	// errors) before the next one, when the decision has no route (default
	// 1); a route sets its own.
	Retries *int `yaml:"retries"`
	// Router tunes circuit breakers and backoff.
	Router router.Config `yaml:"router"`
	// TLS serves HTTPS; with auth.mtls it also verifies client
	// certificates.
	TLS TLSConfig `yaml:"tls"`
}

// TLSConfig names the server's certificate and key (PEM files).
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Defaults fills empty fields.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 4 << 20
	}
	if c.ReadHeaderTimeout == "" {
		c.ReadHeaderTimeout = "10s"
	}
	if c.ReadTimeout == "" {
		c.ReadTimeout = "60s"
	}
	if c.IdleTimeout == "" {
		c.IdleTimeout = "120s"
	}
	if c.WriteTimeout == "" {
		c.WriteTimeout = "180s"
	}
	if c.ShutdownTimeout == "" {
		c.ShutdownTimeout = "30s"
	}
	if c.PolicyHeaders == nil {
		c.PolicyHeaders = []string{"X-Tollgate-Preference", "X-Tollgate-Project"}
	}
	if c.UpstreamDeadline == "" {
		c.UpstreamDeadline = "120s"
	}
	if c.Retries == nil {
		one := 1
		c.Retries = &one
	}
}

// Validate reports every problem.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("server.listen: %q is not host:port (want e.g. 127.0.0.1:8080)", c.Listen))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("server.max_body_bytes: %d is too small (want at least 1024)", c.MaxBodyBytes))
	}
	for i, h := range c.PolicyHeaders {
		switch strings.ToLower(h) {
		case "authorization", "x-api-key", "cookie", "proxy-authorization":
			errs = append(errs, fmt.Errorf("server.policy_headers[%d]: %q carries credentials and must not reach policies or logs", i, h))
		}
	}
	for _, d := range []struct{ name, v string }{
		{"read_header_timeout", c.ReadHeaderTimeout}, {"read_timeout", c.ReadTimeout},
		{"idle_timeout", c.IdleTimeout}, {"shutdown_timeout", c.ShutdownTimeout}, {"write_timeout", c.WriteTimeout},
		{"upstream_deadline", c.UpstreamDeadline},
	} {
		if x, err := time.ParseDuration(d.v); err != nil || x <= 0 {
			errs = append(errs, fmt.Errorf("server.%s: %q is not a positive duration (want e.g. \"30s\")", d.name, d.v))
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("server.tls: set both cert_file and key_file, or neither"))
	}
	if c.Retries != nil && (*c.Retries < 0 || *c.Retries > 10) {
		errs = append(errs, fmt.Errorf("server.retries: %d is out of range (want 0 to 10)", *c.Retries))
	}
	return errors.Join(errs...)
}

func mustDuration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

// Upstream is a provider adapter as the proxy uses it.
type Upstream interface {
	Name() string
	Timeout() time.Duration
	Complete(ctx context.Context, req *openai.ChatRequest) (*provider.Completion, error)
	Stream(ctx context.Context, req *openai.ChatRequest) (*provider.Stream, error)
}

// Authenticator returns the principal of a request, or an error that
// wraps auth.ErrUnauthenticated (as *auth.Failure for the log).
type Authenticator interface {
	Authenticate(r *http.Request) (engine.Identity, error)
}

// KeyAdmin lists and revokes the keys of a key store.
type KeyAdmin interface {
	List(ctx context.Context) ([]auth.KeyRecord, error)
	Revoke(ctx context.Context, id string) (auth.KeyRecord, error)
}

// keysAuth authenticates with API keys alone.
type keysAuth struct{ keys *auth.Keys }

func (k keysAuth) Authenticate(r *http.Request) (engine.Identity, error) {
	return k.keys.Verify(auth.FromHeaders(r.Header.Get("Authorization"), r.Header.Get("X-Api-Key")))
}

// Limiter reserves and reconciles quota.
type Limiter interface {
	Reserve(ctx context.Context, now time.Time, limits []quota.Limit, amt quota.Amount) (*quota.Reservation, error)
	Reconcile(ctx context.Context, r *quota.Reservation, actual quota.Amount) error
	Refund(ctx context.Context, r *quota.Reservation) error
}

// EventSink receives one inference-log event per request; it must not block.
type EventSink interface {
	Enqueue(analytics.Event)
}

// Deps are the parts the server is wired from.
type Deps struct {
	Engine  *engine.Engine
	Builder *engine.Builder
	Counter *tokens.Counter
	// Auth authenticates callers (API keys, OIDC/JWT, mTLS). When nil, Keys
	// does, with API keys only.
	Auth      Authenticator
	Keys      *auth.Keys
	Limiter   Limiter
	Events    EventSink
	Upstreams []Upstream
	// Models maps a model name to the upstreams that serve it, in order.
	Models   map[string][]string
	Registry *prometheus.Registry
	Log      *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Decisions receives the decision log; nil disables it.
	Decisions DecisionSink
	// Shadow is a candidate policy evaluated on every request without being
	// enforced; nil disables shadow mode.
	Shadow *engine.Engine
	// Bundles reports the policy bundle loader's state for /readyz; nil
	// when the engine is loaded by hand (tests).
	Bundles func() bundles.Status
	// Moderation asks an external moderation service before the policy;
	// nil or disabled skips it.
	Moderation *moderation.Client
	// ConfigKeys are the API keys of the config file, listed by the admin
	// API (never their hashes); KeyStore, when set, the keys in Redis.
	ConfigKeys []auth.KeyConfig
	KeyStore   KeyAdmin
	// HashSecret keys the PII hash action (per tenant: the caller's org).
	// Empty means a random secret for this process: hashes are then stable
	// only until it restarts and differ across replicas.
	HashSecret []byte
}

// Server is the gateway's HTTP server.
type Server struct {
	cfg       Config
	deps      Deps
	e         *echo.Echo
	upstreams map[string]Upstream
	models    []string
	metrics   *metrics
	now       func() time.Time
	router    *router.Router
	// deadline is cfg.UpstreamDeadline.
	deadline time.Duration
	// hashers caches the PII hasher of each tenant.
	hashers sync.Map
}

// New validates cfg and wires the server.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Engine == nil || deps.Builder == nil || (deps.Auth == nil && deps.Keys == nil) || deps.Limiter == nil || deps.Events == nil || deps.Counter == nil {
		return nil, errors.New("proxy: engine, builder, counter, keys, limiter and events are required")
	}
	if deps.Auth == nil {
		deps.Auth = keysAuth{deps.Keys}
	}
	if len(deps.HashSecret) == 0 {
		deps.HashSecret = make([]byte, 32)
		if _, err := rand.Read(deps.HashSecret); err != nil {
			return nil, fmt.Errorf("proxy: random PII hash secret: %w", err)
		}
	} else if len(deps.HashSecret) < pii.MinHashSecretBytes {
		return nil, fmt.Errorf("proxy: the PII hash secret has %d bytes; it needs at least %d (use 32 random bytes)", len(deps.HashSecret), pii.MinHashSecretBytes)
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, deps: deps, upstreams: map[string]Upstream{}, now: deps.Now}
	if s.now == nil {
		s.now = time.Now
	}
	for _, u := range deps.Upstreams {
		s.upstreams[u.Name()] = u
	}
	for m, names := range deps.Models {
		for _, n := range names {
			if _, ok := s.upstreams[n]; !ok {
				return nil, fmt.Errorf("proxy: model %q names unknown upstream %q", m, n)
			}
		}
		s.models = append(s.models, m)
	}
	sort.Strings(s.models)
	var err error
	if s.metrics, err = newMetrics(deps.Registry); err != nil {
		return nil, err
	}
	if deps.Engine != nil {
		if err := deps.Registry.Register(newSpecializationCollector(deps.Engine)); err != nil {
			return nil, err
		}
	}
	if s.router, err = router.New(cfg.Router, deps.Registry); err != nil {
		return nil, err
	}
	s.deadline = mustDuration(cfg.UpstreamDeadline)

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(deps.Log)
	e.IPExtractor = echo.ExtractIPDirect()
	if cfg.TrustForwardedFor {
		e.IPExtractor = echo.ExtractIPFromXFFHeader()
	}
	e.POST("/v1/chat/completions", s.chatCompletions)
	e.POST("/v1/messages", s.messages)
	e.GET("/v1/models", s.listModels, s.authenticate)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(deps.Registry, promhttp.HandlerOpts{})))
	s.registerAdmin(e)
	s.e = e
	return s, nil
}

// hasher returns the PII hasher of tenant, nil when none can be made (the
// hash action then redacts).
func (s *Server) hasher(tenant string) *pii.Hasher {
	if h, ok := s.hashers.Load(tenant); ok {
		return h.(*pii.Hasher)
	}
	h, err := pii.NewHasher(s.deps.HashSecret, tenant)
	if err != nil {
		s.deps.Log.Error("PII hasher", "err", err)
		return nil
	}
	actual, _ := s.hashers.LoadOrStore(tenant, h)
	return actual.(*pii.Hasher)
}

// Handler returns the HTTP handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.e }

// HTTPServer returns an http.Server for the handler with the configured
// timeouts. The write timeout covers non-streaming answers; a stream lifts
// it when it starts, since it lasts as long as the model writes (the
// upstream deadline bounds the wait for its first chunk).
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Addr:              s.cfg.Listen,
		Handler:           s.e,
		ReadHeaderTimeout: mustDuration(s.cfg.ReadHeaderTimeout),
		ReadTimeout:       mustDuration(s.cfg.ReadTimeout),
		IdleTimeout:       mustDuration(s.cfg.IdleTimeout),
		WriteTimeout:      mustDuration(s.cfg.WriteTimeout),
		MaxHeaderBytes:    64 << 10,
		// TLS handshake failures and other connection errors go to the
		// gateway's structured log, not the standard logger.
		ErrorLog: slog.NewLogLogger(s.deps.Log.Handler(), slog.LevelWarn),
	}
}

// Serve serves on l until ctx is done, then shuts down gracefully, letting
// in-flight requests (streams included) finish within the shutdown timeout.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := s.HTTPServer()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mustDuration(s.cfg.ShutdownTimeout))
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is ready once a good policy bundle serves. A later bundle that
// failed to load does not make it unready (the last good one keeps
// serving), but shows as last_error.
func (s *Server) readyz(c echo.Context) error {
	body := map[string]any{}
	if s.deps.Bundles != nil {
		body["bundles"] = s.deps.Bundles()
	}
	p := s.deps.Engine.Current()
	if p == nil {
		body["status"] = "not_ready"
		body["reason"] = "no policy bundle loaded"
		return c.JSON(http.StatusServiceUnavailable, body)
	}
	body["status"] = "ready"
	body["bundle_revision"] = p.Revision
	return c.JSON(http.StatusOK, body)
}

func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if _, err := s.identify(r); err != nil {
			return errUnauthenticated
		}
		return next(c)
	}
}

// errUnauthenticated is the one answer to every refused credential, so that
// it reveals nothing about which check failed; the log has the reason.
var errUnauthenticated = apiError(http.StatusUnauthorized, "invalid_api_key", "invalid or missing credentials; send an API key or token as 'Authorization: Bearer <credential>'")

// identify authenticates the request and returns the caller's principal;
// a refusal is counted and logged with its reason (never the credential).
func (s *Server) identify(r *http.Request) (engine.Identity, error) {
	id, err := s.deps.Auth.Authenticate(r)
	if err != nil {
		method, reason := "", "error"
		var f *auth.Failure
		if errors.As(err, &f) {
			method, reason = f.Method, f.Reason
		}
		s.metrics.authFailures.WithLabelValues(method, reason).Inc()
		s.deps.Log.Info("authentication refused", "path", r.URL.Path, "client_ip", r.RemoteAddr, "auth", err)
	}
	return id, err
}

func (s *Server) listModels(c echo.Context) error {
	list := openai.ModelList{Object: "list", Data: make([]openai.Model, 0, len(s.models))}
	for _, m := range s.models {
		owner := ""
		if ups := s.deps.Models[m]; len(ups) > 0 {
			owner = ups[0]
		}
		list.Data = append(list.Data, openai.Model{ID: m, Object: "model", OwnedBy: owner})
	}
	return c.JSON(http.StatusOK, list)
}
