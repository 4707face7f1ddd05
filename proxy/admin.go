package proxy

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate/engine"
)

// Admin endpoints live under /admin/v1. Each requires an admin action that
// the policy grants (data.tollgate.authz.allowed_actions, see
// policies/README.md); the caller authenticates as for the API.
//
//	GET /admin/v1/whoami    the caller's principal and allowed actions (any caller)
//	GET /admin/v1/bundles   bundle sources, revisions and errors (bundles:read)
//
// Further admin routes register with adminRoute.

// adminIdentityKey is where adminAuth leaves the caller's identity.
const adminIdentityKey = "tollgate.admin.identity"

// adminActionsKey is where adminAuth leaves the caller's allowed actions.
const adminActionsKey = "tollgate.admin.actions"

func (s *Server) registerAdmin(e *echo.Echo) {
	g := e.Group("/admin/v1", s.adminAuth)
	g.GET("/whoami", s.adminWhoami)
	g.GET("/bundles", s.adminBundles, requireAction("bundles:read"))
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
