package httpapi_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/internal/clicks"
)

// TestClusterAccountsOverHTTP: with authentication on, a service account
// created, given a role and deleted through any node is known to every
// node: its key reads through every node (forwarded reads authenticate on
// the key's owner), is listed by every node, is refused by every node
// once deleted, and a node that joins later knows the accounts made
// before it started.
func TestClusterAccountsOverHTTP(t *testing.T) {
	withAuth := func(o *httpapi.Options) { o.NoAuth = false }
	c := newHTTPCluster(t, []string{"n1", "n2", "n3"}, withAuth)
	nodes := c.nodes
	ctx := context.Background()
	ownerKey, owner, err := nodes[0].node.CreateAccount(ctx, "owner", "")
	require.NoError(t, err)
	require.NoError(t, nodes[0].node.AssignRole(ctx, owner.ID, "ads", auth.Owner))
	as := func(key string) []string { return []string{"Authorization", "Bearer " + key} }
	// The other nodes apply the change as they read it, a moment later.
	for _, n := range nodes {
		require.Eventually(t, func() bool {
			a, ok := n.node.Catalog().Accounts().Account(owner.ID)
			return ok && a.Roles["ads"] == auth.Owner
		}, 10*time.Second, 5*time.Millisecond, "%s never learned the owner", n.id)
	}

	r := rand.New(rand.NewPCG(11, 12))
	const users = 20
	for range 10 {
		status, _, got := post(t, nodes[r.IntN(len(nodes))].url+"/ingest", string(clicks.Body(r, time.Now(), 1+r.IntN(10), users)), as(ownerKey)...)
		require.Equal(t, http.StatusOK, status, got)
	}

	status, _, got := post(t, nodes[1].url+"/api/v1/service-accounts", `{"name": "reader"}`, as(ownerKey)...)
	require.Equal(t, http.StatusOK, status, got)
	var reader struct {
		ID     string `json:"id"`
		APIKey string `json:"api_key"`
	}
	require.NoError(t, json.Unmarshal([]byte(got), &reader))
	status, _, got = post(t, nodes[2].url+"/api/v1/access-control/assign-role",
		fmt.Sprintf(`{"service_account": %q, "workspace": "ads", "role": "viewer"}`, reader.ID), as(ownerKey)...)
	require.Equal(t, http.StatusOK, status, got)

	read := func(n *clusterNode, u int, key string) (int, string) {
		status, _, b := post(t, n.url+"/api/v1/feature-service/get-features", fmt.Sprintf(`{"params": {"workspace_name": "ads",
			"feature_service_name": "ad_ctr_feature_service_v2", "join_key_map": {"user_id": "u%d"}}}`, u), as(key)...)
		return status, b
	}
	for _, n := range nodes {
		for u := range users {
			require.Eventually(t, func() bool { status, _ := read(n, u, reader.APIKey); return status == http.StatusOK },
				10*time.Second, 10*time.Millisecond, "the reader's key through %s, user u%d (served there or forwarded)", n.id, u)
		}
		req, err := http.NewRequest(http.MethodGet, n.url+"/api/v1/service-accounts", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+ownerKey)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var list []struct {
			ID    string            `json:"id"`
			Roles map[string]string `json:"roles"`
		}
		require.NoError(t, json.UnmarshalRead(resp.Body, &list))
		resp.Body.Close()
		assert.Contains(t, fmt.Sprint(list), reader.ID+" map[ads:viewer]", "the accounts listed by %s", n.id)
	}
	status, _, got = post(t, nodes[0].url+"/ingest", string(clicks.Body(r, time.Now(), 1, users)), as(reader.APIKey)...)
	assert.Equal(t, http.StatusForbidden, status, "a viewer does not ingest: %s", got)

	req, err := http.NewRequest(http.MethodDelete, nodes[2].url+"/api/v1/service-accounts/"+reader.ID, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+ownerKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	status, _ = read(nodes[2], 0, reader.APIKey)
	assert.Equal(t, http.StatusUnauthorized, status, "the node that deleted it refuses the key at once")
	for _, n := range nodes {
		require.Eventually(t, func() bool { status, _ := read(n, 1, reader.APIKey); return status == http.StatusUnauthorized },
			10*time.Second, 10*time.Millisecond, "%s still takes the deleted key", n.id)
	}
	status, _, got = post(t, nodes[0].url+"/api/v1/access-control/assign-role",
		fmt.Sprintf(`{"service_account": %q, "workspace": "ads", "role": "viewer"}`, reader.ID), as(ownerKey)...)
	assert.Equal(t, http.StatusNotFound, status, got)

	c.add("n4")
	nodes = c.nodes
	waitRoutes(t, nodes)
	for u := range users {
		status, got := read(nodes[3], u, ownerKey)
		require.Equal(t, http.StatusOK, status, "n4 knows the owner made before it started: %s", got)
	}
	status, _ = read(nodes[3], 0, reader.APIKey)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.True(t, strings.HasPrefix(ownerKey, "fl_"))
}
