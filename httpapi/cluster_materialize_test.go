package httpapi_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClusterMaterialize: a repo with a batch source applied to a
// cluster, then a materialization through any node: every partition
// loads the batch rows of its own keys only (the shares' batch_rows add
// up to one node's), reads through every node equal one node that did
// the same, and an overlapping materialization is refused through any
// node as a single node refuses it.
func TestClusterMaterialize(t *testing.T) {
	c := newHTTPCluster(t, []string{"n1", "n2", "n3"})
	nodes, oracle, repo := c.nodes, c.oracle, c.repo

	// A batch source of refunds per user, and a service reading them.
	now := time.Now().UTC()
	r := rand.New(rand.NewPCG(3, 4))
	var csv strings.Builder
	csv.WriteString("user_id,ts,amount\n")
	const users = 30
	for range 400 {
		fmt.Fprintf(&csv, "u%d,%s,%d\n", r.IntN(users), now.Add(-time.Duration(1+r.IntN(20*24))*time.Hour).Format(time.RFC3339), r.IntN(100))
	}
	csvPath := filepath.Join(t.TempDir(), "refunds.csv")
	require.NoError(t, os.WriteFile(csvPath, []byte(csv.String()), 0o644))
	v2 := strings.Replace(string(repo), "feature_views:\n", fmt.Sprintf(`  - name: refunds
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Int64}
    batch: {uri: %q, format: csv, timestamp_field: ts}

feature_views:
  - name: refund_totals
    source: refunds
    entities: [user]
    timestamp_field: ts
    features:
      - aggregate: {input: amount, function: sum, window: lifetime}
      - aggregate: {input: amount, function: count, window: 7d}
`, csvPath), 1)
	v2 = strings.Replace(v2, "feature_services:\n", `feature_services:
  - name: refunds_service
    features: [refund_totals]
`, 1)
	body, err := json.Marshal(map[string]string{"file": "ads.yaml", "content": v2})
	require.NoError(t, err)
	status, _, got := post(t, nodes[0].url+"/api/v1/apply", string(body))
	require.Equal(t, http.StatusOK, status, got)
	status, _, got = post(t, oracle.url("/api/v1/apply"), string(body))
	require.Equal(t, http.StatusOK, status, got)
	waitJobs := func(url string) {
		require.Eventually(t, func() bool {
			status, _, got := getURL(t, url+"/api/v1/workspaces/ads/jobs")
			return status == http.StatusOK && !strings.Contains(got, `"state":"PENDING"`) && !strings.Contains(got, `"state":"RUNNING"`)
		}, 30*time.Second, 20*time.Millisecond)
	}
	waitJobs(oracle.url(""))
	waitJobs(nodes[1].url) // the partitions' backfills of the new view

	mat := fmt.Sprintf(`{"start_time": %q, "end_time": %q}`, now.Add(-30*24*time.Hour).Format(time.RFC3339), now.Format(time.RFC3339))
	const path = "/api/v1/workspaces/ads/feature-views/refund_totals/materialization-jobs"
	status, _, got = post(t, nodes[2].url+path, mat)
	require.Equal(t, http.StatusCreated, status, got)
	var job clusterJobJSON
	require.NoError(t, json.Unmarshal([]byte(got), &job))
	require.Len(t, job.Params.Partitions, clusterParts, "a materialization runs on every partition")
	status, _, got = post(t, oracle.url(path), mat)
	require.Equal(t, http.StatusCreated, status, got)
	var want struct {
		ID     string `json:"id"`
		State  string `json:"state"`
		Result struct {
			BatchRows int64 `json:"batch_rows"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal([]byte(got), &want))
	status, _, got = getURL(t, oracle.url("/api/v1/workspaces/ads/jobs/"+want.ID+"?wait=30s"))
	require.Equal(t, http.StatusOK, status, got)
	require.NoError(t, json.Unmarshal([]byte(got), &want))
	require.Equal(t, "SUCCESS", want.State)
	require.Positive(t, want.Result.BatchRows)
	status, _, got = getURL(t, nodes[0].url+"/api/v1/workspaces/ads/jobs/"+job.ID+"?wait=30s")
	require.Equal(t, http.StatusOK, status, got)
	var whole struct {
		State  string `json:"state"`
		Result struct {
			BatchRows int64 `json:"batch_rows"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal([]byte(got), &whole))
	require.Equal(t, "SUCCESS", whole.State, got)
	assert.Equal(t, want.Result.BatchRows, whole.Result.BatchRows, "each partition loads only its own keys' rows")

	asOf := now.Format(time.RFC3339Nano)
	for u := range users {
		q := fmt.Sprintf(`{"params": {"workspace_name": "ads", "feature_service_name": "refunds_service", "join_key_map": {"user_id": "u%d"}, "as_of": %q}}`, u, asOf)
		status, _, want := post(t, oracle.url("/api/v1/feature-service/get-features"), q)
		require.Equal(t, http.StatusOK, status, want)
		for _, n := range nodes {
			status, _, got := post(t, n.url+"/api/v1/feature-service/get-features", q)
			require.Equal(t, http.StatusOK, status, got)
			assert.Equal(t, want, got, "user u%d through %s", u, n.id)
		}
	}

	status, _, want1 := post(t, oracle.url(path), mat)
	require.Equal(t, http.StatusConflict, status, want1)
	status, _, got = post(t, nodes[1].url+path, mat)
	assert.Equal(t, http.StatusConflict, status, got)
	assert.Contains(t, got, "overlaps materialization job "+job.ID)
	status, _, got = post(t, nodes[1].url+path, `{"start_time": "2026-01-02T00:00:00Z", "end_time": "2026-01-01T00:00:00Z"}`)
	assert.Equal(t, http.StatusBadRequest, status, got)
	assert.Contains(t, got, "must be before end_time")
}
