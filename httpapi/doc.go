// Package httpapi serves a featurelog engine over HTTP: the Stream Ingest
// API (POST /ingest), online serving (get-features, get-features-batch),
// historical retrieval (get-features-for-events, streamed NDJSON; see
// historical.go and docs/historical.md), feature-view summaries, a view's
// run (POST .../feature-views/{name}/run, streamed NDJSON; run.go), the admin calls the CLI uses against a running
// node (plan, apply, service accounts, roles), and /healthz, /readyz,
// /metrics and /api/v1/openapi.yaml. Shapes follow SPEC §2, §4, §5 and §8
// exactly; api/openapi.yaml describes every route, and the package's tests
// validate every exchange they make against it (contract_test.go).
//
//	db, _ := engine.Open(engine.Options{Dir: "featurelog-data"})
//	srv, _ := httpapi.New(db, httpapi.Options{Addr: "127.0.0.1:8080"})
//	err := srv.ListenAndServe(ctx) // returns after ctx is done and requests drained
//
// Errors travel in two shapes: the ingest API's
// {"requestError": {"errorMessage", "errorType"}} and recordErrors bodies,
// and the serving API's {"code": <gRPC code>, "error", "message"}.
package httpapi
