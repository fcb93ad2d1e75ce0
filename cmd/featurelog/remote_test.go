package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// TestRemoteAdminRevokesAtOnce drives a running node through --server:
// apply, create an account, grant a role, use the key, delete the account,
// and see the very next request refused.
func TestRemoteAdminRevokesAtOnce(t *testing.T) {
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	ownerKey, owner, err := db.Accounts().CreateAccount("owner", "")
	require.NoError(t, err)
	require.NoError(t, db.Accounts().AssignRole(owner.ID, "ads", auth.Owner))
	srv, err := httpapi.New(db, httpapi.Options{})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	remote := []string{"--server", ts.URL, "--api-key", ownerKey}

	out, err := run(t, append([]string{"apply", "-f", example}, remote...)...)
	require.NoError(t, err)
	assert.Contains(t, out, "Applied.")

	out, err = run(t, append([]string{"service-account", "create", "--name", "pusher"}, remote...)...)
	require.NoError(t, err)
	id := idRE.FindStringSubmatch(out)[1]
	key := regexp.MustCompile(`API Key: (\S+)`).FindStringSubmatch(out)[1]
	_, err = run(t, append([]string{"access-control", "assign-role", "--role", "editor", "--workspace", "ads", "--service-account", id}, remote...)...)
	require.NoError(t, err)

	ingest := func(k string) int {
		body := `{"workspace_name":"ads","dry_run":true,"records":{"impressions_event_source":[]}}`
		req, _ := http.NewRequest("POST", ts.URL+"/ingest", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+k)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, ingest(key))

	_, err = run(t, append([]string{"service-account", "delete", "--service-account", id}, remote...)...)
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, ingest(key), "a deleted key must be refused at once")

	// A key without the owner role cannot administer.
	os.Setenv("FEATURELOG_API_KEY", "fl_0000000000000000_bad")
	defer os.Unsetenv("FEATURELOG_API_KEY")
	_, err = run(t, "service-account", "create", "--name", "x", "--server", ts.URL)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTP 401")
}
