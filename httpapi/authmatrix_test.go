//go:build unix

package httpapi_test

// The auth matrix: every route × {no key, malformed header, unknown key,
// revoked key, key of another workspace, insufficient role}, each with its
// exact status and error type and a check that the refused request changed
// nothing (log entries, catalog files, service accounts), plus the
// positive cell (the least role that suffices gets its 200) so that the
// matrix cannot pass by refusing everything. The table of endpoints is
// checked against the routes registered in server.go.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// testReply is a response, whatever its content type.
type testReply struct {
	status int
	header http.Header
	body   []byte
}

// testRequest is one HTTP request to send to a node.
type testRequest struct {
	method, path, contentType string
	header                    map[string]string
	body                      []byte
	// stream: the answer is a stream that does not end (an output
	// stream); send reads only its status and headers, then closes it.
	stream bool
}

// send sends req with the Authorization header authz (none when empty).
func (n *node) send(req testRequest, authz string) testReply {
	n.t.Helper()
	hr, err := http.NewRequest(req.method, n.srv.URL+req.path, bytes.NewReader(req.body))
	require.NoError(n.t, err)
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	for k, v := range req.header {
		hr.Header.Set(k, v)
	}
	if authz != "" {
		hr.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(hr)
	require.NoError(n.t, err)
	defer resp.Body.Close()
	if req.stream && resp.StatusCode == http.StatusOK {
		return testReply{status: resp.StatusCode, header: resp.Header} // closing the body ends the stream
	}
	data, err := io.ReadAll(resp.Body)
	require.NoError(n.t, err)
	return testReply{status: resp.StatusCode, header: resp.Header, body: data}
}

// nodeState is what a request may write: log entries appended, the
// catalog's files (every applied repo), the service accounts and jobs.
type nodeState struct {
	logEntries uint64
	catalog    string // digest of catalog/*.json, names and contents
	accounts   string // the accounts as JSON
	jobs       int    // job files
}

func (n *node) state() nodeState {
	n.t.Helper()
	paths, err := filepath.Glob(filepath.Join(n.dir, "catalog", "*"))
	require.NoError(n.t, err)
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(n.t, err)
		fmt.Fprintf(h, "%s %d\n", filepath.Base(p), len(data))
		h.Write(data)
	}
	accts, err := json.Marshal(n.db.Accounts().Accounts())
	require.NoError(n.t, err)
	jobs, err := filepath.Glob(filepath.Join(n.dir, "jobs", "*.json"))
	require.NoError(n.t, err)
	return nodeState{logEntries: n.db.LogStats().Entries, catalog: hex.EncodeToString(h.Sum(nil)), accounts: string(accts), jobs: len(jobs)}
}

// requireUnchanged asserts that nothing was written since before.
func (n *node) requireUnchanged(t *testing.T, before nodeState, what string) {
	t.Helper()
	after := n.state()
	assert.Equal(t, before.logEntries, after.logEntries, "%s: the log was written", what)
	assert.Equal(t, before.catalog, after.catalog, "%s: the catalog was written", what)
	assert.Equal(t, before.accounts, after.accounts, "%s: the service accounts were written", what)
	assert.Equal(t, before.jobs, after.jobs, "%s: a job was started", what)
}

// Errors of the two API shapes: the ingest API's requestError and the
// serving and admin APIs' gRPC-coded error.
const (
	unauthenticated  = "Unauthenticated"
	permissionDenied = "PermissionDenied"
)

var grpcCodeOf = map[string]int{unauthenticated: 16, permissionDenied: 7}

// requireAuthError asserts a 401 or 403 of the endpoint's error shape and
// returns its message.
func requireAuthError(t *testing.T, ingestShape bool, r testReply, typ string) string {
	t.Helper()
	status := http.StatusUnauthorized
	if typ == permissionDenied {
		status = http.StatusForbidden
	}
	if ingestShape {
		return requireRequestError(t, r.status, r.body, status, typ)
	}
	requireServingError(t, r.status, r.body, status, grpcCodeOf[typ])
	var e struct{ Message string }
	require.NoError(t, json.Unmarshal(r.body, &e))
	return e.Message
}

// authMatrix is the auth matrix's node and keys.
type authMatrix struct {
	*node
	repo       string // the shop repo the matrix applies: shopRepo and a view of a batch source
	admin      string // owner of shop and ads: creates and revokes accounts over HTTP
	shopOwner  string // owner of shop only
	otherOwner string // owner of workspace "other" only
	seq        atomic.Int64
}

func (m *authMatrix) next() int64 { return m.seq.Add(1) }

// authEndpoint is one route of the matrix.
type authEndpoint struct {
	pattern string // exactly as registered in server.go routes()
	// public routes answer anyone; the others need a key with a role.
	public bool
	// role is the least role (on workspace shop) that suffices; "owner of
	// any workspace" for the account endpoints not scoped to a workspace.
	role string
	// ingestShape: errors are requestError bodies (the ingest API).
	ingestShape bool
	// request builds a fresh, valid request; it may set up what the
	// request needs (such as an account to delete). Requests that write
	// write something new each time, so a refused request that wrote would
	// be seen.
	request func(m *authMatrix) testRequest
	// allowed returns the key with the least role that suffices;
	// insufficient one with the role just below it (or none), on shop.
	allowed, insufficient func(m *authMatrix) string
	// otherWorkspace returns a key with full rights, but on another
	// workspace only.
	otherWorkspace func(m *authMatrix) string
	// grant is the role the revoked key holds on shop before revocation.
	grant auth.Role
	// ok is the status of an allowed request (0: 200). Cancelling a job
	// that ended answers 409 once the caller may cancel.
	ok int
	// filtered routes answer every authenticated key, listing only the
	// workspaces it holds a role on: a key without a role on shop gets
	// 200 and an answer that does not mention shop.
	filtered bool
}

func (e authEndpoint) okStatus() int {
	if e.ok == 0 {
		return http.StatusOK
	}
	return e.ok
}

func bearer(key string) string { return "Tecton-key " + key }

func postJSON(path string, body string) testRequest {
	return testRequest{method: http.MethodPost, path: path, contentType: "application/json", body: []byte(body)}
}

func (m *authMatrix) applyBody(seq int64) string {
	content := strings.Replace(m.repo, "  - name: last_order\n", fmt.Sprintf("  - name: last_order\n    description: revision %d\n", seq), 1)
	data, err := json.Marshal(httpapi.ApplyRequest{File: "shop.yaml", Content: content})
	require.NoError(m.t, err)
	return string(data)
}

// target creates an account holding the viewer role on shop, for the
// delete and assign-role requests to act on.
func (m *authMatrix) target() string {
	_, acct, err := m.db.Accounts().CreateAccount(fmt.Sprintf("target-%d", m.next()), "")
	require.NoError(m.t, err)
	require.NoError(m.t, m.db.Accounts().AssignRole(acct.ID, "shop", auth.Viewer))
	return acct.ID
}

func endpoints() []authEndpoint {
	viewer := func(m *authMatrix) string { return m.viewer }
	editor := func(m *authMatrix) string { return m.editor }
	shopOwner := func(m *authMatrix) string { return m.shopOwner }
	noRole := func(m *authMatrix) string { return m.noRole }
	otherOwner := func(m *authMatrix) string { return m.otherOwner }
	otherEditor := func(m *authMatrix) string { return m.otherEditor }
	spine := func(m *authMatrix) string {
		return fmt.Sprintf(`{"params":{"workspace_name":"shop","feature_service_name":"shop_fs","spine":[{"customer_id":"c1","ts":%q}]}}`, ts(t0))
	}
	return []authEndpoint{
		{pattern: "POST /ingest", role: "editor", ingestShape: true, grant: auth.Editor,
			allowed: editor, insufficient: viewer, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return postJSON("/ingest", string(shopBody(false, orderRec(fmt.Sprintf("am-%d", m.next()), t0.Add(-time.Minute)))))
			}},
		{pattern: "POST /api/v1/feature-service/get-features", role: "viewer", grant: auth.Viewer,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return postJSON("/api/v1/feature-service/get-features",
					`{"params":{"workspace_name":"shop","feature_service_name":"shop_fs","join_key_map":{"customer_id":"c1"}}}`)
			}},
		{pattern: "POST /api/v1/feature-service/get-features-batch", role: "viewer", grant: auth.Viewer,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return postJSON("/api/v1/feature-service/get-features-batch",
					`{"params":{"workspace_name":"shop","feature_service_name":"shop_fs","request_data":[{"join_key_map":{"customer_id":"c1"}}]}}`)
			}},
		{pattern: "POST /api/v1/feature-service/get-features-for-events", role: "viewer", grant: auth.Viewer,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest { return postJSON(historicalPath, spine(m)) }},
		{pattern: "GET /api/v1/workspaces", role: "viewer", grant: auth.Viewer, filtered: true,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return testRequest{method: http.MethodGet, path: "/api/v1/workspaces"}
			}},
		{pattern: "GET /api/v1/workspaces/{ws}/feature-views", role: "viewer", grant: auth.Viewer,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return testRequest{method: http.MethodGet, path: "/api/v1/workspaces/shop/feature-views"}
			}},
		{pattern: "GET /api/v1/workspaces/{ws}/feature-services", role: "viewer", grant: auth.Viewer,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return testRequest{method: http.MethodGet, path: "/api/v1/workspaces/shop/feature-services"}
			}},
		{pattern: "GET /api/v1/workspaces/{ws}/feature-services/{name}", role: "viewer", grant: auth.Viewer,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return testRequest{method: http.MethodGet, path: "/api/v1/workspaces/shop/feature-services/shop_fs"}
			}},
		{pattern: "POST /api/v1/feature-service/metadata", role: "viewer", grant: auth.Viewer,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return postJSON("/api/v1/feature-service/metadata", `{"params":{"workspace_name":"shop","feature_service_name":"shop_fs"}}`)
			}},
		{pattern: "GET /api/v1/workspaces/{ws}/feature-views/{name}", role: "viewer", grant: auth.Viewer,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return testRequest{method: http.MethodGet, path: "/api/v1/workspaces/shop/feature-views/last_order"}
			}},
		{pattern: "POST /api/v1/plan", role: "owner", grant: auth.Owner,
			allowed: shopOwner, insufficient: editor, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest { return postJSON("/api/v1/plan", m.applyBody(m.next())) }},
		{pattern: "POST /api/v1/apply", role: "owner", grant: auth.Owner,
			allowed: shopOwner, insufficient: editor, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest { return postJSON("/api/v1/apply", m.applyBody(m.next())) }},
		{pattern: "GET /api/v1/workspaces/{ws}/jobs", role: "viewer", grant: auth.Viewer,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return testRequest{method: http.MethodGet, path: "/api/v1/workspaces/shop/jobs?type=backfill"}
			}},
		{pattern: "GET /api/v1/workspaces/{ws}/jobs/{id}", role: "viewer", grant: auth.Viewer,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return testRequest{method: http.MethodGet, path: "/api/v1/workspaces/shop/jobs/" + m.job()}
			}},
		{pattern: "POST /api/v1/workspaces/{ws}/jobs/{id}/cancel", role: "owner", grant: auth.Owner, ok: http.StatusConflict,
			allowed: shopOwner, insufficient: editor, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return postJSON("/api/v1/workspaces/shop/jobs/"+m.job()+"/cancel", "")
			}},
		{pattern: "POST /api/v1/workspaces/{ws}/feature-views/{name}/materialization-jobs", role: "owner", grant: auth.Owner, ok: http.StatusCreated,
			allowed: shopOwner, insufficient: editor, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				m.waitJobs()
				start := t0.Add(time.Duration(m.next()) * time.Hour)
				return postJSON("/api/v1/workspaces/shop/feature-views/refund_totals/materialization-jobs",
					fmt.Sprintf(`{"start_time":%q,"end_time":%q}`, ts(start), ts(start.Add(time.Hour))))
			}},
		{pattern: "POST /api/v1/workspaces/{ws}/feature-views/{name}/delete-keys", role: "owner", grant: auth.Owner, ok: http.StatusAccepted,
			allowed: shopOwner, insufficient: editor, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return postJSON("/api/v1/workspaces/shop/feature-views/last_order/delete-keys",
					fmt.Sprintf(`{"keys":[{"customer_id":"matrix-%d"}],"online":true,"offline":false}`, m.next()))
			}},
		{pattern: "GET /api/v1/workspaces/{ws}/feature-views/{name}/output-stream", role: "viewer", grant: auth.Viewer,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return testRequest{method: http.MethodGet, path: "/api/v1/workspaces/shop/feature-views/order_stream/output-stream?from=earliest", stream: true}
			}},
		{pattern: "GET /api/v1/workspaces/{ws}/feature-views/{name}/ingest-rate", role: "viewer", grant: auth.Viewer,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return testRequest{method: http.MethodGet, path: "/api/v1/workspaces/shop/feature-views/last_order/ingest-rate?minutes=5"}
			}},
		{pattern: "POST /api/v1/workspaces/{ws}/feature-views/{name}/run", role: "viewer", grant: auth.Viewer,
			allowed: viewer, insufficient: noRole, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return postJSON("/api/v1/workspaces/shop/feature-views/last_order/run",
					fmt.Sprintf(`{"start_time":%q,"end_time":%q,"aggregation_level":"full"}`, ts(t0.Add(-time.Hour)), ts(t0)))
			}},
		// Not scoped to a workspace: any owner may list and create
		// accounts (a new account holds no role). The "other workspace"
		// cell is an editor of another workspace, owner of none.
		{pattern: "GET /api/v1/service-accounts", role: "owner of any workspace", grant: auth.Owner,
			allowed: shopOwner, insufficient: editor, otherWorkspace: otherEditor,
			request: func(m *authMatrix) testRequest {
				return testRequest{method: http.MethodGet, path: "/api/v1/service-accounts"}
			}},
		{pattern: "POST /api/v1/service-accounts", role: "owner of any workspace", grant: auth.Owner,
			allowed: shopOwner, insufficient: editor, otherWorkspace: otherEditor,
			request: func(m *authMatrix) testRequest {
				return postJSON("/api/v1/service-accounts", fmt.Sprintf(`{"name":"created-%d","description":""}`, m.next()))
			}},
		// Deleting needs the owner role on every workspace the account
		// holds a role in: here shop.
		{pattern: "DELETE /api/v1/service-accounts/{id}", role: "owner", grant: auth.Owner,
			allowed: shopOwner, insufficient: editor, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return testRequest{method: http.MethodDelete, path: "/api/v1/service-accounts/" + m.target()}
			}},
		{pattern: "POST /api/v1/access-control/assign-role", role: "owner", grant: auth.Owner,
			allowed: shopOwner, insufficient: editor, otherWorkspace: otherOwner,
			request: func(m *authMatrix) testRequest {
				return postJSON("/api/v1/access-control/assign-role",
					fmt.Sprintf(`{"service_account":%q,"workspace":"shop","role":"editor"}`, m.target()))
			}},
		// Probes and metrics are public: load balancers and Prometheus
		// scrape them without keys, and they carry no workspace data
		// (only request counts by handler and code, log counters and
		// process metrics).
		{pattern: "GET /healthz", public: true,
			request: func(m *authMatrix) testRequest { return testRequest{method: http.MethodGet, path: "/healthz"} }},
		{pattern: "GET /readyz", public: true,
			request: func(m *authMatrix) testRequest { return testRequest{method: http.MethodGet, path: "/readyz"} }},
		{pattern: "GET /metrics", public: true,
			request: func(m *authMatrix) testRequest { return testRequest{method: http.MethodGet, path: "/metrics"} }},
		// The API's description is public too: clients and tools fetch
		// it before they hold a key, and it holds no workspace data.
		{pattern: "GET /api/v1/openapi.yaml", public: true,
			request: func(m *authMatrix) testRequest {
				return testRequest{method: http.MethodGet, path: "/api/v1/openapi.yaml"}
			}},
	}
}

// registeredRoutes returns the patterns server.go's routes() registers,
// read from its source: every string literal passed first to a call of
// s.handle or s.mux.Handle.
func registeredRoutes(t *testing.T) []string { return routesOf(t, "server.go", "routes") }

// routesOf returns the patterns function fun of file registers.
func routesOf(t *testing.T, file, fun string) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, 0)
	require.NoError(t, err)
	var routes []string
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Name.Name != fun {
			continue
		}
		ast.Inspect(fn.Body, func(node ast.Node) bool {
			call, ok := node.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "handle" && sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			require.True(t, ok && lit.Kind == token.STRING, "routes(): %s registers a pattern that is not a literal; the auth matrix cannot check it", fset.Position(call.Pos()))
			p, err := strconv.Unquote(lit.Value)
			require.NoError(t, err)
			routes = append(routes, p)
			return true
		})
	}
	require.NotEmpty(t, routes, "no routes found in %s %s()", file, fun)
	sort.Strings(routes)
	return routes
}

// TestAuthMatrixCoversEveryRoute fails when a route is added to server.go
// without a row in the auth matrix (or a row outlives its route).
func TestAuthMatrixCoversEveryRoute(t *testing.T) {
	var table []string
	for _, e := range endpoints() {
		table = append(table, e.pattern)
	}
	sort.Strings(table)
	assert.Equal(t, registeredRoutes(t), table, "the auth matrix's endpoints must be exactly the routes of server.go routes()")
}

// matrixRefunds is a source with batch files and a view of it, which the
// matrix adds to the shop repo for the materialization endpoint.
const matrixRefunds = `  - name: refunds
    schema:
      - {name: customer_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Int64}
    batch:
      uri: %q
      format: csv
      timestamp_field: ts
`

func newMatrix(t *testing.T) *authMatrix {
	m := &authMatrix{node: newNode(t, httpapi.Options{})}
	csvPath := filepath.Join(t.TempDir(), "refunds.csv")
	require.NoError(t, os.WriteFile(csvPath, []byte("customer_id,ts,amount\nc1,"+ts(t0.Add(-time.Hour))+",5\n"), 0o644))
	m.repo = strings.Replace(shopRepo, "feature_views:\n", "  "+strings.TrimSpace(fmt.Sprintf(matrixRefunds, csvPath))+"\nfeature_views:\n", 1)
	m.repo = strings.Replace(m.repo, "feature_views:\n", `feature_views:
  - name: order_stream
    source: orders
    entities: [customer]
    timestamp_field: ts
    output_stream: {include_features: true}
    features:
      - attribute: {name: amount}
  - name: refund_totals
    source: refunds
    entities: [customer]
    timestamp_field: ts
    features:
      - aggregate: {input: amount, function: sum, window: lifetime}
`, 1)
	_, err := m.db.ApplyWait(context.Background(), "shop.yaml", []byte(m.repo))
	require.NoError(t, err)
	m.admin = m.account("admin", map[string]auth.Role{"shop": auth.Owner, "ads": auth.Owner})
	m.shopOwner = m.account("shop-owner", map[string]auth.Role{"shop": auth.Owner})
	m.otherOwner = m.account("other-owner", map[string]auth.Role{"other": auth.Owner})
	return m
}

// job returns the id of one of shop's jobs (one that ended).
func (m *authMatrix) job() string {
	jobs, err := m.db.Jobs("shop", engine.JobFilter{Type: engine.JobBackfill})
	require.NoError(m.t, err)
	require.NotEmpty(m.t, jobs)
	return jobs[len(jobs)-1].ID
}

// waitJobs waits for shop's jobs to end: a materialization refuses to
// start while another of the workspace runs.
func (m *authMatrix) waitJobs() {
	jobs, err := m.db.Jobs("shop", engine.JobFilter{})
	require.NoError(m.t, err)
	require.NoError(m.t, m.db.WaitJobs(context.Background(), jobs))
}

// authCell is one refused cell of the matrix.
type authCell struct {
	name string
	typ  string // unauthenticated or permissionDenied
	// authz returns the Authorization header; it may revoke a key first.
	authz func(t *testing.T, m *authMatrix, e authEndpoint) string
}

var unknownKey = "fl_0123456789abcdef_" + strings.Repeat("a", 52)

func cells() []authCell {
	return []authCell{
		{"no key", unauthenticated, func(*testing.T, *authMatrix, authEndpoint) string { return "" }},
		{"malformed header", unauthenticated, func(*testing.T, *authMatrix, authEndpoint) string { return "Basic dXNlcjpwYXNz" }},
		{"unknown key", unauthenticated, func(*testing.T, *authMatrix, authEndpoint) string { return bearer(unknownKey) }},
		{"revoked key", unauthenticated, func(t *testing.T, m *authMatrix, e authEndpoint) string { return bearer(m.revoked(t, e)) }},
		{"key of another workspace", permissionDenied, func(_ *testing.T, m *authMatrix, e authEndpoint) string { return bearer(e.otherWorkspace(m)) }},
		{"insufficient role", permissionDenied, func(_ *testing.T, m *authMatrix, e authEndpoint) string { return bearer(e.insufficient(m)) }},
	}
}

// revoked creates an account over HTTP, grants it e's role on shop, checks
// it may call e, deletes it over HTTP (what `featurelog service-account
// delete --server` does) and returns its key, which the very next request
// must find revoked.
func (m *authMatrix) revoked(t *testing.T, e authEndpoint) string {
	t.Helper()
	r := m.send(postJSON("/api/v1/service-accounts", fmt.Sprintf(`{"name":"revoked-%d"}`, m.next())), bearer(m.admin))
	require.Equal(t, http.StatusOK, r.status, "create: %s", r.body)
	var acct httpapi.AccountResponse
	require.NoError(t, json.Unmarshal(r.body, &acct))
	r = m.send(postJSON("/api/v1/access-control/assign-role",
		fmt.Sprintf(`{"service_account":%q,"workspace":"shop","role":%q}`, acct.ID, e.grant)), bearer(m.admin))
	require.Equal(t, http.StatusOK, r.status, "assign-role: %s", r.body)
	r = m.send(e.request(m), bearer(acct.APIKey))
	require.Equal(t, e.okStatus(), r.status, "before revocation the key may call %s: %s", e.pattern, r.body)
	r = m.send(testRequest{method: http.MethodDelete, path: "/api/v1/service-accounts/" + acct.ID}, bearer(m.admin))
	require.Equal(t, http.StatusOK, r.status, "delete: %s", r.body)
	return acct.APIKey
}

func TestAuthMatrix(t *testing.T) {
	m := newMatrix(t)
	refused := 0
	for _, e := range endpoints() {
		if e.public {
			continue
		}
		for _, c := range cells() {
			t.Run(e.pattern+"/"+c.name, func(t *testing.T) {
				authz := c.authz(t, m, e)
				req := e.request(m)
				before := m.state()
				r := m.send(req, authz)
				if e.filtered && c.typ == permissionDenied {
					require.Equal(t, http.StatusOK, r.status, "%s", r.body)
					assert.NotContains(t, string(r.body), `"shop"`, "a key without a role on shop does not see it")
					return
				}
				msg := requireAuthError(t, e.ingestShape, r, c.typ)
				assert.NotContains(t, msg, unknownKey, "the message must not echo the key")
				m.requireUnchanged(t, before, c.name)
				refused++
			})
		}
		// The positive cell: the least role that suffices is served, so the
		// matrix cannot pass by refusing everything.
		t.Run(e.pattern+"/allowed", func(t *testing.T) {
			r := m.send(e.request(m), bearer(e.allowed(m)))
			assert.Equal(t, e.okStatus(), r.status, "%s with the %s role: %s", e.pattern, e.role, r.body)
		})
	}
	t.Logf("%d refused cells, 0 bypasses", refused)
}

// TestAuthMatrixPublicRoutes: the probes and metrics answer every caller,
// keys or not, and never with 401 or 403.
func TestAuthMatrixPublicRoutes(t *testing.T) {
	m := newMatrix(t)
	for _, e := range endpoints() {
		if !e.public {
			continue
		}
		for _, authz := range []string{"", "Basic dXNlcjpwYXNz", bearer(unknownKey), bearer(m.noRole), bearer(m.viewer), bearer(m.admin)} {
			r := m.send(e.request(m), authz)
			assert.Equal(t, http.StatusOK, r.status, "%s with Authorization %q: %s", e.pattern, authz, r.body)
		}
	}
}
