package httpapi

import "net/http"

// WrapHandler wraps the handler that Handler and HTTPServer serve, for
// tests that observe every exchange (contract_test.go validates them
// against api/openapi.yaml). Call it before serving.
func WrapHandler(s *Server, wrap func(http.Handler) http.Handler) { s.handler = wrap(s.handler) }
