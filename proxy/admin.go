package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate/engine"
	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/quota"
)

// Admin endpoints live under /admin/v1. Each requires an admin action that
// the policy grants (data.tollgate.authz.allowed_actions, see
// policies/README.md); the caller authenticates as for the API.
//
//	GET  /admin/v1/whoami                the caller's principal and allowed actions (any caller)
//	GET  /admin/v1/bundles               bundle sources, revisions and errors (bundles:read)
//	GET  /admin/v1/quota?scope=&window=  a scope's usage in the current window (quota:read)
//	DELETE /admin/v1/quota?scope=&window= reset that usage to zero (quota:write)
//	GET  /admin/v1/keys                  API keys of the config and the key store, without hashes (keys:read)
//	POST /admin/v1/keys/:id/revoke       revoke a key of the key store (keys:write)

// adminIdentityKey is where adminAuth leaves the caller's identity.
const adminIdentityKey = "tollgate.admin.identity"

// adminActionsKey is where adminAuth leaves the caller's allowed actions.
const adminActionsKey = "tollgate.admin.actions"

func (s *Server) registerAdmin(e *echo.Echo) {
	g := e.Group("/admin/v1", s.adminAuth)
	g.GET("/whoami", s.adminWhoami)
	g.GET("/bundles", s.adminBundles, requireAction("bundles:read"))
	g.GET("/quota", s.adminQuota, requireAction("quota:read"))
	g.DELETE("/quota", s.adminQuotaReset, requireAction("quota:write"))
	g.GET("/keys", s.adminKeys, requireAction("keys:read"))
	g.POST("/keys/:id/revoke", s.adminRevokeKey, requireAction("keys:write"))
}

// usageReader is a limiter that can report a scope's counters.
type usageReader interface {
	Usage(ctx context.Context, now time.Time, limit quota.Limit) (quota.Amount, error)
}

func (s *Server) adminQuota(c echo.Context) error {
	scope := c.QueryParam("scope")
	if scope == "" {
		return apiError(http.StatusBadRequest, "invalid_request", "name the scope, e.g. ?scope=team:ml&window=day")
	}
	w, err := quota.ParseWindow(c.QueryParam("window"))
	if err != nil {
		return apiError(http.StatusBadRequest, "invalid_request", "window must be minute, hour, day or month")
	}
	ur, ok := s.deps.Limiter.(usageReader)
	if !ok {
		return apiError(http.StatusNotImplemented, "not_supported", "this gateway's quota backend cannot report usage")
	}
	now := s.now()
	u, err := ur.Usage(c.Request().Context(), now, quota.Limit{Scope: scope, Window: w})
	if err != nil {
		return apiError(http.StatusServiceUnavailable, "quota_unavailable", "the quota store did not answer; retry shortly")
	}
	return c.JSON(http.StatusOK, map[string]any{
		"scope": scope, "window": string(w), "at": now,
		"used": map[string]any{"tokens": u.Tokens, "requests": u.Requests, "usd": float64(u.USDMicros) / 1e6, "usd_micros": u.USDMicros},
	})
}

// quotaResetter is a limiter that can reset a scope's counters.
type quotaResetter interface {
	Reset(ctx context.Context, now time.Time, limit quota.Limit) error
}

func (s *Server) adminQuotaReset(c echo.Context) error {
	scope := c.QueryParam("scope")
	w, err := quota.ParseWindow(c.QueryParam("window"))
	if scope == "" || err != nil {
		return apiError(http.StatusBadRequest, "invalid_request", "name the scope and the window, e.g. ?scope=team:ml&window=day")
	}
	qr, ok := s.deps.Limiter.(quotaResetter)
	if !ok {
		return apiError(http.StatusNotImplemented, "not_supported", "this gateway's quota backend cannot reset counters")
	}
	if err := qr.Reset(c.Request().Context(), s.now(), quota.Limit{Scope: scope, Window: w}); err != nil {
		return apiError(http.StatusServiceUnavailable, "quota_unavailable", "the quota store did not answer; retry shortly")
	}
	caller, _ := c.Get(adminIdentityKey).(engine.Identity)
	s.deps.Log.Info("quota reset", "scope", scope, "window", string(w), "by", caller.Subject)
	return c.JSON(http.StatusOK, map[string]any{"scope": scope, "window": string(w), "reset": true})
}

// adminKey is the JSON shape of a key in the admin API: never its hash.
type adminKey struct {
	ID        string            `json:"id"`
	Source    string            `json:"source"`
	Subject   string            `json:"subject"`
	Kind      string            `json:"kind"`
	Team      string            `json:"team,omitempty"`
	Org       string            `json:"org,omitempty"`
	Roles     []string          `json:"roles"`
	Labels    map[string]string `json:"labels,omitempty"`
	Status    string            `json:"status"`
	ExpiresAt *time.Time        `json:"expires_at,omitempty"`
}

func (s *Server) adminKeys(c echo.Context) error {
	out := []adminKey{}
	now := s.now()
	for _, k := range s.deps.ConfigKeys {
		st := "active"
		var exp *time.Time
		if k.Disabled {
			st = "disabled"
		}
		if k.ExpiresAt != "" {
			if t, err := time.Parse(time.RFC3339, k.ExpiresAt); err == nil {
				exp = &t
				if !now.Before(t) {
					st = "expired"
				}
			}
		}
		out = append(out, adminKey{ID: k.ID, Source: "config", Subject: k.Subject, Kind: k.Kind, Team: k.Team, Org: k.Org,
			Roles: nonNil(k.Roles), Labels: k.Labels, Status: st, ExpiresAt: exp})
	}
	if s.deps.KeyStore != nil {
		recs, err := s.deps.KeyStore.List(c.Request().Context())
		if err != nil {
			return apiError(http.StatusServiceUnavailable, "key_store_unavailable", "the key store did not answer; retry shortly")
		}
		for _, r := range recs {
			var exp *time.Time
			if !r.ExpiresAt.IsZero() {
				exp = &r.ExpiresAt
			}
			out = append(out, adminKey{ID: r.ID, Source: "store", Subject: r.Subject, Kind: r.Kind, Team: r.Team, Org: r.Org,
				Roles: nonNil(r.Roles), Labels: r.Labels, Status: r.Status(now), ExpiresAt: exp})
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": out})
}

func (s *Server) adminRevokeKey(c echo.Context) error {
	if s.deps.KeyStore == nil {
		return apiError(http.StatusNotImplemented, "not_supported", "this gateway has no key store (auth.key_store); keys in the config file are revoked by removing them from it")
	}
	id := c.Param("id")
	rec, err := s.deps.KeyStore.Revoke(c.Request().Context(), id)
	if errors.Is(err, auth.ErrKeyNotFound) {
		return apiError(http.StatusNotFound, "key_not_found", fmt.Sprintf("the key store has no key %q; GET /admin/v1/keys lists them", id))
	}
	if err != nil {
		return apiError(http.StatusServiceUnavailable, "key_store_unavailable", "the key store did not answer; retry shortly")
	}
	caller, _ := c.Get(adminIdentityKey).(engine.Identity)
	s.deps.Log.Info("API key revoked", "key_id", rec.ID, "by", caller.Subject)
	return c.JSON(http.StatusOK, map[string]any{"id": rec.ID, "status": rec.Status(s.now())})
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

// adminAuth authenticates the caller and asks the current policy which
// admin actions it may perform.
func (s *Server) adminAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := s.identify(c.Request())
		if err != nil {
			return errUnauthenticated
		}
		p := s.deps.Engine.Current()
		if p == nil {
			return apiError(http.StatusServiceUnavailable, "policy_unavailable", "no policy bundle is loaded yet; see /readyz")
		}
		actions, err := p.AllowedActions(c.Request().Context(), id)
		if err != nil {
			s.deps.Log.Error("admin actions evaluation failed; denying", "error", err, "revision", p.Revision)
			return apiError(http.StatusInternalServerError, "policy_error", "the policy could not decide the admin actions; the request is denied")
		}
		c.Set(adminIdentityKey, id)
		c.Set(adminActionsKey, actions)
		return next(c)
	}
}

// requireAction lets the request through only when the policy allows the
// caller action.
func requireAction(action string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			actions, _ := c.Get(adminActionsKey).([]string)
			for _, a := range actions {
				if a == action {
					return next(c)
				}
			}
			id, _ := c.Get(adminIdentityKey).(engine.Identity)
			return apiError(http.StatusForbidden, "admin_action_denied", fmt.Sprintf(
				"principal %q (roles %s) may not perform %s; ask an admin for a role whose permissions include it",
				id.Subject, strings.Join(id.Roles, ", "), action))
		}
	}
}

// adminPrincipal is the JSON shape of a principal: never a credential.
type adminPrincipal struct {
	Subject string   `json:"subject"`
	Kind    string   `json:"kind"`
	Auth    string   `json:"auth"`
	KeyID   string   `json:"key_id,omitempty"`
	Team    string   `json:"team,omitempty"`
	Org     string   `json:"org,omitempty"`
	Roles   []string `json:"roles"`
	Actions []string `json:"actions"`
}

func (s *Server) adminWhoami(c echo.Context) error {
	id, _ := c.Get(adminIdentityKey).(engine.Identity)
	actions, _ := c.Get(adminActionsKey).([]string)
	roles := id.Roles
	if roles == nil {
		roles = []string{}
	}
	return c.JSON(http.StatusOK, adminPrincipal{
		Subject: id.Subject, Kind: id.Kind, Auth: id.Auth, KeyID: id.KeyID,
		Team: id.Team, Org: id.Org, Roles: roles, Actions: actions,
	})
}

func (s *Server) adminBundles(c echo.Context) error {
	body := map[string]any{}
	if p := s.deps.Engine.Current(); p != nil {
		body["revision"] = p.Revision
		body["source"] = p.Source
		body["modules"] = p.Modules
	}
	if s.deps.Bundles != nil {
		body["status"] = s.deps.Bundles()
	}
	return c.JSON(http.StatusOK, body)
}
