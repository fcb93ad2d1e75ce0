// Package httpapi serves a featurelog engine over HTTP: the Stream Ingest
// API (POST /ingest), online serving (get-features, get-features-batch),
// historical retrieval (get-features-for-events, streamed NDJSON; see
// historical.go and docs/historical.md), listing (workspaces, feature
// views, feature services, Tecton's feature-service metadata;
// catalog.go), feature-view summaries, a view's run (POST
// .../feature-views/{name}/run, streamed NDJSON; run.go), output streams
// (NDJSON or server-sent events; outstream.go), jobs (materialization,
// delete_keys, list, wait, cancel), the admin calls the CLI uses against a
// running node (plan, apply, service accounts, roles), and /healthz,
// /readyz, /metrics and /api/v1/openapi.yaml. Shapes follow SPEC §2 and §4
// to §8 exactly; api/openapi.yaml describes every route, and the
// package's tests validate every exchange they make against it
// (contract_test.go).
//
//	db, err := engine.Open(engine.Options{Dir: "featurelog-data"})
//	...
//	defer db.Close() // after the server has drained
//	srv, err := httpapi.New(db, httpapi.Options{Addr: "127.0.0.1:8080"})
//	...
//	err = srv.ListenAndServe(ctx, nil) // returns once ctx is done and requests drained
//
// Example (example_test.go) runs this against a temporary data directory,
// with an ingest and a get-features call, and checks their answers.
// Handler serves the same routes inside a server of the caller's own.
//
// Errors travel in two shapes: the ingest API's
// {"requestError": {"errorMessage", "errorType"}} and recordErrors bodies,
// and the serving API's {"code": <gRPC code>, "error", "message"}.
//
// The Go client of these routes is package client, which imports none of
// this; decode.go turns the answers' JSON back into engine values for
// callers that want them typed.
package httpapi
