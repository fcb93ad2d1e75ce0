package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// TestConsoleServed: the web console (internal/console) is served at
// /ui/ without a key on a node with auth on, with its security and cache
// headers; /ui and / redirect to it. These routes are not in
// api/openapi.yaml (they serve files, not the API), so the server is not
// wrapped by the contract validator here. internal/console's
// browser_test.go drives the pages in a real browser.
func TestConsoleServed(t *testing.T) {
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	srv, err := httpapi.New(db, httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, header ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := noRedirect.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}

	resp, body := get("/ui/")
	require.Equal(t, http.StatusOK, resp.StatusCode, "no key needed: the files hold no data")
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Contains(t, body, `<script type="module" src="app.js"></script>`)
	csp := resp.Header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "script-src 'self'")
	assert.NotContains(t, csp, "unsafe-inline")
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag)

	resp, _ = get("/ui/", "If-None-Match", etag)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode, "an unchanged file is revalidated, not sent again")

	resp, body = get("/ui/app.js")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/javascript; charset=utf-8", resp.Header.Get("Content-Type"), "modules need a JavaScript type")
	assert.Contains(t, body, "import")

	for path, want := range map[string]int{"/ui/nope.js": http.StatusNotFound, "/ui/static/app.js": http.StatusNotFound} {
		resp, _ = get(path)
		assert.Equal(t, want, resp.StatusCode, path)
	}
	resp, _ = get("/ui")
	assert.Equal(t, http.StatusMovedPermanently, resp.StatusCode)
	assert.Equal(t, "/ui/", resp.Header.Get("Location"))
	resp, _ = get("/")
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, "/ui/", resp.Header.Get("Location"))

	post, err := http.Post(ts.URL+"/ui/", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	post.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, post.StatusCode)
}
