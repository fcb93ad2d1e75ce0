package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/client"
)

// newClient returns a client of the node at url with key (none when
// empty); hc, when not nil, carries its calls.
func newClient(t *testing.T, url, key string, hc *http.Client) *client.Client {
	t.Helper()
	c, err := client.New(url, client.Options{APIKey: key, HTTPClient: hc})
	require.NoError(t, err)
	return c
}
