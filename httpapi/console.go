package httpapi

import (
	"net/http"

	"github.com/featurelog/featurelog/internal/console"
)

// consoleRoutes mounts the web console (package internal/console): its
// static files under /ui/, /ui redirected there, and / too, so that
// opening the node's address in a browser shows it.
//
// These are not API routes: the files hold no data and need no key (the
// page calls the API with the user's key), so api/openapi.yaml does not
// list them, and they are registered here, outside routes(), whose
// patterns the tests hold equal to the document's operations and to the
// auth matrix. TestConsoleServed checks them.
func (s *Server) consoleRoutes() {
	s.mux.Handle("GET "+console.Prefix, console.Handler())
	s.mux.Handle("GET /ui", console.Redirect())
	s.mux.Handle("GET /{$}", http.RedirectHandler(console.Prefix, http.StatusFound))
}
