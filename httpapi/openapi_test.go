//go:build unix

package httpapi_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/api"
	"github.com/featurelog/featurelog/httpapi"
)

// TestOpenAPIServed: GET /api/v1/openapi.yaml answers, without a key, the
// very bytes of api/openapi.yaml, as application/yaml.
func TestOpenAPIServed(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	resp, err := http.Get(n.srv.URL + "/api/v1/openapi.yaml")
	require.NoError(t, err)
	defer resp.Body.Close()
	served, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", served)
	assert.Equal(t, "application/yaml", resp.Header.Get("Content-Type"))
	onDisk, err := os.ReadFile(filepath.Join("..", "api", "openapi.yaml"))
	require.NoError(t, err)
	assert.Equal(t, string(onDisk), string(served), "the served document must be api/openapi.yaml")
	assert.Equal(t, string(api.OpenAPI()), string(served))
}

// TestOpenAPIDocumentValid: the document is OpenAPI 3.1 and valid against
// the OpenAPI 3.1 schema.
func TestOpenAPIDocumentValid(t *testing.T) {
	doc, err := libopenapi.NewDocument(api.OpenAPI())
	require.NoError(t, err)
	assert.Equal(t, "3.1.0", doc.GetVersion())
	v, errs := validator.NewValidator(doc)
	require.Empty(t, errs)
	ok, verrs := v.ValidateDocument()
	for _, e := range verrs {
		t.Errorf("api/openapi.yaml: %s", e.Error())
	}
	assert.True(t, ok)
}

// TestOpenAPIListsEveryRoute: the document's operations are exactly the
// routes server.go registers.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	c, err := theContract()
	require.NoError(t, err)
	var documented []string
	for _, o := range c.operations() {
		documented = append(documented, o.method+" "+o.path)
	}
	sort.Strings(documented)
	routes := append(registeredRoutes(t), routesOf(t, "cluster_jobs.go", "clusterRoutes")...)
	sort.Strings(routes)
	assert.Equal(t, strings.Join(routes, "\n"), strings.Join(documented, "\n"),
		"api/openapi.yaml must list exactly the routes of server.go routes() and cluster_jobs.go clusterRoutes()")
}
