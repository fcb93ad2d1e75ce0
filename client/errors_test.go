package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/client"
)

// TestErrorShapes: answers a real node rarely gives on demand (a
// saturated node's 429, a proxy's page, a body that is not the API's),
// from a stub, become the errors a caller can act on.
func TestErrorShapes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		body   string
		want   client.Error
		ok     bool // the call succeeds
		msg    string
	}{
		{name: "saturated", status: 429, header: http.Header{"Retry-After": {"2"}},
			body: `{"requestError":{"errorMessage":"the node is saturated","errorType":"ResourceExhausted"}}`,
			want: client.Error{Status: 429, Type: "ResourceExhausted", Message: "the node is saturated", RetryAfter: 2 * time.Second}},
		{name: "stopped acknowledging", status: 503,
			body: `{"requestError":{"errorMessage":"the log failed","errorType":"Unavailable"}}`,
			want: client.Error{Status: 503, Type: "Unavailable", Message: "the log failed"}},
		{name: "a proxy's page", status: 502, body: "<html>Bad Gateway</html>\n",
			want: client.Error{Status: 502, Message: "<html>Bad Gateway</html>"}},
		{name: "no body", status: 500, want: client.Error{Status: 500, Message: "Internal Server Error"}},
		{name: "serving shape with error only", status: 404, body: `{"code":5,"error":"gone"}`,
			want: client.Error{Status: 404, Code: 5, Message: "gone"}},
		{name: "success that is not the API's", status: 200, body: `{"workspaceName": 7}`, ok: true, msg: "is not what the API defines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				assert.Equal(t, "Tecton-key k", r.Header.Get("Authorization"))
				assert.Equal(t, "stub-test", r.Header.Get("User-Agent"))
				assert.Equal(t, "once", r.Header.Get("Idempotency-Key"))
				for k, v := range tc.header {
					w.Header()[k] = v
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c, err := client.New(srv.URL, client.Options{APIKey: "k", UserAgent: "stub-test"})
			require.NoError(t, err)
			_, err = c.Ingest(context.Background(), client.IngestRequest{Workspace: "ads", IdempotencyKey: "once"})
			require.Error(t, err)
			if tc.ok {
				assert.ErrorContains(t, err, tc.msg)
				return
			}
			var ce *client.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.want, *ce)
		})
	}
}

// TestOptionsHTTPClient: the given client carries the calls; its Timeout
// bounds a call that does not stream.
func TestOptionsHTTPClient(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := client.New(srv.URL, client.Options{HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}})
	require.NoError(t, err)
	err = c.Health(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Client.Timeout")
}
