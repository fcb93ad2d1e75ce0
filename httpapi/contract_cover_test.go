//go:build unix

package httpapi_test

// Exchanges no other test of the package makes, so that every (path,
// method, status) of api/openapi.yaml is exercised (contract_test.go):
// the answers of a node while a new view's first backfill runs (503 for
// reads of it, 409 for an apply, 200 for a cancel), bodies over the limit
// on every route that reads one, and the batch read of an unknown service.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/vfs"
	"github.com/featurelog/featurelog/vfs/errorfs"
)

// slowView adds to the shop repo a view with an output stream and a
// service of it only: a view with no earlier version, which serves once
// its backfill succeeds.
func slowView(description string) string {
	repo := strings.Replace(shopRepo, "feature_views:\n", `feature_views:
  - name: slow_view
    source: orders
    entities: [customer]
    timestamp_field: ts
    description: `+description+`
    output_stream: {include_features: true}
    features:
      - attribute: {name: amount}
`, 1)
	return repo + "  - name: slow_fs\n    features: [slow_view]\n"
}

func TestContractWhileBackfilling(t *testing.T) {
	gate := errorfs.NewGate(vfs.Default)
	n := newNodeFS(t, httpapi.Options{}, gate)
	t.Cleanup(gate.Release) // before the node closes
	owner := n.account("cover-owner", map[string]auth.Role{"shop": auth.Owner})
	r := n.send(postJSON("/ingest", string(shopBody(false, orderRec("c1", t0.Add(-time.Minute))))), bearer(n.editor))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)

	gate.Arm()
	r = n.send(applyReq("shop.yaml", slowView("one")), bearer(owner))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var applied httpapi.ApplyResponse
	require.NoError(t, json.Unmarshal(r.body, &applied))
	require.Len(t, applied.Jobs, 1, "one backfill, of slow_view")
	select {
	case <-gate.Blocked():
	case <-time.After(time.Minute):
		t.Fatal("the backfill wrote no segment within a minute")
	}
	job := applied.Jobs[0].ID

	unavailable := func(what string, r testReply) {
		t.Helper()
		requireServingError(t, r.status, r.body, http.StatusServiceUnavailable, 14)
		assert.Contains(t, string(r.body), job, "%s names the job", what)
	}
	unavailable("get-features", n.send(postJSON("/api/v1/feature-service/get-features",
		`{"params":{"workspace_name":"shop","feature_service_name":"slow_fs","join_key_map":{"customer_id":"c1"}}}`), bearer(n.viewer)))
	unavailable("get-features-batch", n.send(postJSON("/api/v1/feature-service/get-features-batch",
		`{"params":{"workspace_name":"shop","feature_service_name":"slow_fs","request_data":[{"join_key_map":{"customer_id":"c1"}}]}}`), bearer(n.viewer)))
	unavailable("get-features-for-events", n.send(postJSON(historicalPath, fmt.Sprintf(
		`{"params":{"workspace_name":"shop","feature_service_name":"slow_fs","spine":[{"customer_id":"c1","ts":%q}]}}`, ts(t0))), bearer(n.viewer)))
	r = n.send(get("/api/v1/workspaces/shop/feature-views/slow_view/output-stream?from=earliest"), bearer(n.viewer))
	requireServingError(t, r.status, r.body, http.StatusServiceUnavailable, 14)

	r = n.send(applyReq("shop.yaml", slowView("two")), bearer(owner))
	require.Equal(t, http.StatusConflict, r.status, "an apply while the workspace's backfill runs: %s", r.body)
	assert.Contains(t, string(r.body), job)

	r = n.send(postJSON("/api/v1/workspaces/shop/jobs/"+job+"/cancel", ""), bearer(owner))
	require.Equal(t, http.StatusOK, r.status, "cancelling a running job: %s", r.body)
	var cancelled engine.Job
	require.NoError(t, json.Unmarshal(r.body, &cancelled))
	assert.Contains(t, []engine.JobState{engine.JobCancelRequested, engine.JobCancelled}, cancelled.State)

	gate.Release()
	got, err := n.db.WaitJob(context.Background(), "shop", job)
	require.NoError(t, err)
	assert.Equal(t, engine.JobCancelled, got.State)
}

// TestContractBodyLimits: every route that reads a JSON body refuses one
// over MaxBodyBytes with 413 before parsing it.
func TestContractBodyLimits(t *testing.T) {
	const limit = 512
	n := newNode(t, httpapi.Options{MaxBodyBytes: limit})
	admin := n.account("cover-admin", map[string]auth.Role{"shop": auth.Owner, "ads": auth.Owner})
	big := `{"padding":"` + strings.Repeat("x", 2*limit) + `"}`
	for _, path := range []string{
		"/ingest",
		"/api/v1/feature-service/get-features",
		"/api/v1/feature-service/get-features-batch",
		historicalPath,
		"/api/v1/workspaces/shop/feature-views/last_order/materialization-jobs",
		"/api/v1/workspaces/shop/feature-views/last_order/delete-keys",
		"/api/v1/workspaces/shop/feature-views/last_order/run",
		"/api/v1/plan",
		"/api/v1/apply",
		"/api/v1/service-accounts",
		"/api/v1/access-control/assign-role",
		"/api/v1/feature-service/metadata",
	} {
		r := n.send(postJSON(path, big), bearer(admin))
		assert.Equal(t, http.StatusRequestEntityTooLarge, r.status, "%s: %s", path, r.body)
	}
}

func TestContractBatchUnknownService(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	r := n.send(postJSON("/api/v1/feature-service/get-features-batch",
		`{"params":{"workspace_name":"shop","feature_service_name":"nope_fs","request_data":[{"join_key_map":{"customer_id":"c1"}}]}}`), bearer(n.viewer))
	requireServingError(t, r.status, r.body, http.StatusNotFound, 5)
}

// TestContractBatchFilesGone: a run that must read a source's batch files
// answers 503 when they cannot be read.
func TestContractBatchFilesGone(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	csvPath := filepath.Join(t.TempDir(), "refunds.csv")
	require.NoError(t, os.WriteFile(csvPath, []byte("customer_id,ts,amount\nc1,"+ts(t0.Add(-time.Hour))+",5\n"), 0o644))
	repo := strings.Replace(shopRepo, "feature_views:\n", "  "+strings.TrimSpace(fmt.Sprintf(matrixRefunds, csvPath))+`
feature_views:
  - name: refund_totals
    source: refunds
    entities: [customer]
    timestamp_field: ts
    features:
      - aggregate: {input: amount, function: sum, window: lifetime}
`, 1)
	_, err := n.db.ApplyWait(context.Background(), "shop.yaml", []byte(repo))
	require.NoError(t, err)
	require.NoError(t, os.Remove(csvPath))
	r := n.send(postJSON("/api/v1/workspaces/shop/feature-views/refund_totals/run",
		fmt.Sprintf(`{"start_time":%q,"end_time":%q,"aggregation_level":"disabled"}`, ts(t0.Add(-2*time.Hour)), ts(t0))), bearer(n.viewer))
	requireServingError(t, r.status, r.body, http.StatusServiceUnavailable, 14)
}
