package httpapi_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClusterApplyOverHTTP: plan and apply through any node of a
// cluster. A file applied through one node is applied by every node:
// each plans it as unchanged, and reads through every node, of records
// ingested before and after, equal one node that applied it. A file
// that does not parse is refused with the error a single node gives.
func TestClusterApplyOverHTTP(t *testing.T) {
	c := newHTTPCluster(t, []string{"n1", "n2", "n3"})
	nodes, oracle, repo := c.nodes, c.oracle, c.repo
	for _, n := range nodes {
		resp, err := http.Get(n.url + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s joined and caught up", n.id)
	}

	r := rand.New(rand.NewPCG(7, 8))
	const users = 20
	ingest := func(k int) { ingestClicks(t, r, nodes, oracle, time.Now(), k, users) }
	ingest(10)

	const after = "      - aggregate: {input: clicked_squared, function: sum, window: 24h}\n"
	require.Contains(t, string(repo), after)
	v2 := strings.Replace(string(repo), after, after+"      - aggregate: {input: clicked, function: sum, window: 6h}\n", 1)
	applyBody := func(content string) string {
		b, err := json.Marshal(map[string]string{"file": "ads.yaml", "content": content})
		require.NoError(t, err)
		return string(b)
	}
	type answer struct {
		Workspace string `json:"workspace"`
		Changed   bool   `json:"changed"`
	}
	decode := func(s string) answer {
		var a answer
		require.NoError(t, json.Unmarshal([]byte(s), &a), s)
		return a
	}

	bad := applyBody("workspace: ads\nfeature_views: [oops")
	wantStatus, _, want := post(t, oracle.url("/api/v1/apply"), bad)
	status, _, got := post(t, nodes[0].url+"/api/v1/apply", bad)
	require.Equal(t, http.StatusBadRequest, wantStatus, want)
	require.Equal(t, wantStatus, status, got)
	assert.Equal(t, want, got, "a file that does not parse: the single node's error")

	status, _, got = post(t, nodes[2].url+"/api/v1/plan", applyBody(v2))
	require.Equal(t, http.StatusOK, status, got)
	require.True(t, decode(got).Changed)
	status, _, got = post(t, nodes[1].url+"/api/v1/apply", applyBody(v2))
	require.Equal(t, http.StatusOK, status, got)
	require.Equal(t, answer{Workspace: "ads", Changed: true}, decode(got))
	status, _, got = post(t, oracle.url("/api/v1/apply"), applyBody(v2))
	require.Equal(t, http.StatusOK, status, got)
	for _, n := range nodes {
		require.Eventually(t, func() bool {
			status, _, got := post(t, n.url+"/api/v1/plan", applyBody(v2))
			return status == http.StatusOK && !decode(got).Changed
		}, 10*time.Second, 10*time.Millisecond, "node %s never applied the file", n.id)
	}
	ingest(10)

	asOf := time.Now().UTC().Format(time.RFC3339Nano)
	read := func(url string, u int) (int, string) {
		status, _, b := post(t, url+"/api/v1/feature-service/get-features", fmt.Sprintf(`{"params": {"workspace_name": "ads",
			"feature_service_name": "ad_ctr_feature_service_v2", "join_key_map": {"user_id": "u%d"}, "as_of": %q,
			"metadata_options": {"include_names": true}}}`, u, asOf))
		return status, b
	}
	for u := range users {
		status, want := read(oracle.url(""), u)
		require.Equal(t, http.StatusOK, status, want)
		require.Contains(t, want, "clicked_sum_6h", "the applied file's feature")
		for _, n := range nodes {
			require.Eventually(t, func() bool {
				status, got := read(n.url, u)
				return status == http.StatusOK && got == want
			}, 20*time.Second, 10*time.Millisecond, "user u%d through %s", u, n.id)
		}
	}
}
