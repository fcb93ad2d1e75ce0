package client_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/client"
)

// clientRoutes maps every route the node registers to the methods that
// call it.
var clientRoutes = map[string][]string{
	"POST /ingest": {"Ingest"},
	"POST /api/v1/feature-service/get-features":                              {"GetFeatures"},
	"POST /api/v1/feature-service/get-features-batch":                        {"GetFeaturesBatch"},
	"POST /api/v1/feature-service/get-features-for-events":                   {"GetFeaturesForEvents"},
	"POST /api/v1/feature-service/metadata":                                  {"GetFeatureServiceMetadata"},
	"GET /api/v1/workspaces":                                                 {"ListWorkspaces"},
	"GET /api/v1/workspaces/{ws}/feature-views":                              {"ListFeatureViews"},
	"GET /api/v1/workspaces/{ws}/feature-views/{name}":                       {"FeatureView"},
	"GET /api/v1/workspaces/{ws}/feature-services":                           {"ListFeatureServices"},
	"GET /api/v1/workspaces/{ws}/feature-services/{name}":                    {"FeatureService"},
	"GET /api/v1/workspaces/{ws}/jobs":                                       {"ListJobs"},
	"GET /api/v1/workspaces/{ws}/jobs/{id}":                                  {"GetJob", "WaitJob"},
	"POST /api/v1/workspaces/{ws}/jobs/{id}/cancel":                          {"CancelJob"},
	"POST /api/v1/workspaces/{ws}/feature-views/{name}/materialization-jobs": {"Materialize"},
	"POST /api/v1/workspaces/{ws}/feature-views/{name}/delete-keys":          {"DeleteKeys"},
	"POST /api/v1/workspaces/{ws}/feature-views/{name}/run":                  {"Run"},
	"GET /api/v1/workspaces/{ws}/feature-views/{name}/output-stream":         {"OutputStream"},
	"GET /api/v1/workspaces/{ws}/feature-views/{name}/ingest-rate":           {"IngestRate"},
	"POST /api/v1/plan":                       {"Plan"},
	"POST /api/v1/apply":                      {"Apply"},
	"GET /api/v1/service-accounts":            {"ListServiceAccounts"},
	"POST /api/v1/service-accounts":           {"CreateServiceAccount"},
	"DELETE /api/v1/service-accounts/{id}":    {"DeleteServiceAccount"},
	"POST /api/v1/access-control/assign-role": {"AssignRole"},
	"GET /healthz":                            {"Health"},
	"GET /readyz":                             {"Ready"},
	"GET /metrics":                            {"Metrics"},
	"GET /api/v1/openapi.yaml":                {"OpenAPI"},
}

// TestEveryRouteHasAMethod fails when httpapi/server.go registers a route
// the client does not call (or the table names a method that is gone).
func TestEveryRouteHasAMethod(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join("..", "httpapi", "server.go"), nil, 0)
	require.NoError(t, err)
	var routes []string
	ast.Inspect(f, func(n ast.Node) bool {
		fn, ok := n.(*ast.FuncDecl)
		if ok && fn.Name.Name != "routes" {
			return false
		}
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || (sel.Sel.Name != "handle" && sel.Sel.Name != "Handle") {
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		require.True(t, ok && lit.Kind == token.STRING, "%s: a route pattern that is not a literal", fset.Position(call.Pos()))
		p, err := strconv.Unquote(lit.Value)
		require.NoError(t, err)
		routes = append(routes, p)
		return true
	})
	require.NotEmpty(t, routes)
	var table []string
	for r := range clientRoutes {
		table = append(table, r)
	}
	sort.Strings(routes)
	sort.Strings(table)
	assert.Equal(t, routes, table, "every route of httpapi/server.go has a client method, and only those")
	typ := reflect.TypeFor[*client.Client]()
	for r, methods := range clientRoutes {
		for _, m := range methods {
			_, ok := typ.MethodByName(m)
			assert.True(t, ok, "%s: client.Client has no method %s", r, m)
		}
	}
}
