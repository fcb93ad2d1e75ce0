package httpapi

import (
	"errors"
	"net/http"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
)

// caller is who made a request: a principal, or anyone when auth is off.
type caller struct {
	principal auth.Principal
	noAuth    bool
}

// allowed reports whether the caller holds at least role on workspace.
func (c caller) allowed(workspace string, role auth.Role) bool {
	return c.noAuth || c.principal.Allowed(workspace, role)
}

// authenticate resolves the Authorization header. The error's message says
// what to send instead; it never says whether a key's account exists.
func (s *Server) authenticate(r *http.Request) (caller, error) {
	if s.opts.NoAuth {
		return caller{noAuth: true}, nil
	}
	key, err := auth.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		if errors.Is(err, auth.ErrNoCredentials) {
			return caller{}, errors.New("missing API key: send the header `Authorization: Tecton-key <api key>` (or `Bearer <api key>`)")
		}
		return caller{}, err
	}
	p, err := s.db.Accounts().Authenticate(key)
	if err != nil {
		return caller{}, errors.New("invalid API key: it is unknown or has been revoked")
	}
	return caller{principal: p}, nil
}

// require returns an engine.Authorizer that demands role on the workspace.
func (c caller) require(role auth.Role, action string) engine.Authorizer {
	return func(workspace string) error {
		if c.allowed(workspace, role) {
			return nil
		}
		return &engine.Error{Code: engine.CodePermissionDenied,
			Msg: "the service account lacks the " + role.String() + " role on workspace \"" + workspace + "\", needed to " + action}
	}
}
