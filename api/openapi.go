// Package api holds the OpenAPI 3.1 description of featurelog's HTTP API
// (openapi.yaml beside this file), embedded so that a node serves the very
// document its tests validate against (GET /api/v1/openapi.yaml, SPEC §8).
//
//	doc := api.OpenAPI() // the YAML bytes
//
// The document is kept true by package httpapi's tests: every request and
// response they make is validated against it, and every (path, method,
// status) it lists must be exercised by them.
package api

import _ "embed"

//go:embed openapi.yaml
var openapi []byte

// ContentType is the media type the document is served with.
const ContentType = "application/yaml"

// OpenAPI returns the document. The slice is shared: do not modify it.
func OpenAPI() []byte { return openapi }
