// Package client is the Go client of a featurelog node's HTTP API. It
// imports only the standard library: a service that reads features or
// ingests records does not pull in the engine.
//
//	c, err := client.New("http://127.0.0.1:8080", client.Options{APIKey: os.Getenv("FEATURELOG_API_KEY")})
//	resp, err := c.GetFeatures(ctx, client.GetFeaturesRequest{
//		Workspace: "ads", Service: "ad_ctr_feature_service",
//		JoinKeyMap: map[string]any{"user_id": "C18947Z5"},
//	})
//
// Every route of the node has a method taking a context first:
//
//	Ingest                               POST   /ingest
//	GetFeatures, GetFeaturesBatch        POST   /api/v1/feature-service/get-features[-batch]
//	GetFeaturesForEvents                 POST   /api/v1/feature-service/get-features-for-events (streamed Rows)
//	GetFeatureServiceMetadata            POST   /api/v1/feature-service/metadata
//	ListWorkspaces                       GET    /api/v1/workspaces
//	ListFeatureViews, FeatureView        GET    /api/v1/workspaces/{ws}/feature-views[/{name}]
//	ListFeatureServices, FeatureService  GET    /api/v1/workspaces/{ws}/feature-services[/{name}]
//	Run                                  POST   .../feature-views/{name}/run (streamed Rows)
//	OutputStream                         GET    .../feature-views/{name}/output-stream (an iterator; NDJSON or SSE)
//	IngestRate                           GET    .../feature-views/{name}/ingest-rate[?minutes=]
//	Materialize                          POST   .../feature-views/{name}/materialization-jobs
//	DeleteKeys                           POST   .../feature-views/{name}/delete-keys
//	ListJobs, GetJob, WaitJob            GET    /api/v1/workspaces/{ws}/jobs[/{id}[?wait=]]
//	CancelJob                            POST   .../jobs/{id}/cancel
//	Plan, Apply                          POST   /api/v1/plan, /api/v1/apply
//	CreateServiceAccount                 POST   /api/v1/service-accounts
//	ListServiceAccounts                  GET    /api/v1/service-accounts
//	DeleteServiceAccount                 DELETE /api/v1/service-accounts/{id}
//	AssignRole                           POST   /api/v1/access-control/assign-role
//	Health, Ready, Metrics, OpenAPI      GET    /healthz, /readyz, /metrics, /api/v1/openapi.yaml
//
// Values. Feature values keep the API's JSON encodings (SPEC §4) as
// json.RawMessage: int64 is a JSON string (exact beyond 2^53), floats are
// numbers, timestamps RFC 3339 strings, arrays JSON arrays, missing
// values null. Decode them by the DataType the metadata or the columns
// give.
//
// Errors. Every refusal of the node is an *Error carrying the HTTP
// status, the gRPC code or ingest error type, and the node's message; an
// error that ends an answer already streaming (historical, run, output
// stream) is an *Error with Status 200. Transport failures are returned
// wrapped, naming the node's URL.
//
// Streaming. GetFeaturesForEvents and Run return once the answer's header
// arrived; their Rows stream until io.EOF and must be closed. A spine
// given as a SpineSource is uploaded as NDJSON while the answer streams
// back, each row's tag returned with its answer, so memory stays bounded
// on both sides. Streaming calls ignore the *http.Client's Timeout; their
// context bounds them.
package client
