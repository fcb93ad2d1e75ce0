//go:build unix

package httpapi_test

// The jobs API over HTTP (SPEC §6): an apply that adds a view answers at
// once with its backfill job; the job is listed, waited for and read in
// the documented shape; a finished job cannot be cancelled (409 with the
// job); a materialization is started with 201 and an overlap refused with
// 409 naming the earlier job; the Go client does the same.

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
	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

func TestJobsHTTP(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	owner := n.account("jobs-owner", map[string]auth.Role{"shop": auth.Owner})
	var recs []string
	for i := range 50 {
		recs = append(recs, orderRec(fmt.Sprintf("c%d", i%7), t0.Add(-time.Duration(i)*time.Minute)))
	}
	r := n.send(postJSON("/ingest", string(shopBody(false, recs...))), bearer(n.editor))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)

	csvPath := filepath.Join(t.TempDir(), "refunds.csv")
	require.NoError(t, os.WriteFile(csvPath, []byte("customer_id,ts,amount\nc1,"+ts(t0.Add(-2*time.Hour))+",5\nc1,"+ts(t0.Add(time.Hour))+",7\n"), 0o644))
	repo := strings.Replace(shopRepo, "feature_views:\n", "  "+strings.TrimSpace(fmt.Sprintf(matrixRefunds, csvPath))+`
feature_views:
  - name: order_totals
    source: orders
    entities: [customer]
    timestamp_field: ts
    features:
      - aggregate: {input: amount, function: sum, window: lifetime}
  - name: refund_totals
    source: refunds
    entities: [customer]
    timestamp_field: ts
    features:
      - aggregate: {input: amount, function: sum, window: lifetime}
`, 1)
	r = n.send(applyReq("shop.yaml", repo), bearer(owner))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var applied httpapi.ApplyResponse
	require.NoError(t, json.Unmarshal(r.body, &applied))
	require.Len(t, applied.Jobs, 2, "one backfill job per new view")
	byView := map[string]engine.Job{}
	for _, j := range applied.Jobs {
		assert.Equal(t, engine.JobBackfill, j.Type)
		byView[j.FeatureView] = j
	}
	id := byView["order_totals"].ID

	r = n.send(get("/api/v1/workspaces/shop/jobs/"+id+"?wait=20s"), bearer(n.viewer))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	job := jsonObject(t, r.body, "id", "type", "workspace", "feature_view", "version", "state", "created_at",
		"started_at", "finished_at", "progress", "params", "result", "error", "runs")
	assert.Equal(t, "SUCCESS", job["state"])
	assert.Nil(t, job["error"])
	progress := job["progress"].(map[string]any)
	assert.Equal(t, "bytes", progress["unit"])
	assert.Equal(t, progress["total"], progress["done"])
	assert.Equal(t, float64(50), job["result"].(map[string]any)["log_records"])

	r = n.send(get("/api/v1/workspaces/shop/jobs?feature_view=order_totals&state=SUCCESS"), bearer(n.viewer))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var list httpapi.JobsResponse
	require.NoError(t, json.Unmarshal(r.body, &list))
	require.Len(t, list.Jobs, 1)
	assert.Equal(t, id, list.Jobs[0].ID)

	r = n.send(postJSON("/api/v1/workspaces/shop/jobs/"+id+"/cancel", ""), bearer(owner))
	require.Equal(t, http.StatusConflict, r.status, "%s", r.body)
	conflict := jsonObject(t, r.body, "code", "error", "message", "job")
	assert.Equal(t, float64(9), conflict["code"])
	assert.Equal(t, id, conflict["job"].(map[string]any)["id"])
	assert.Contains(t, conflict["message"], "already ended SUCCESS")

	c := newClient(t, n.srv.URL, owner, nil)
	ctx := context.Background()
	refunds, err := c.WaitJob(ctx, "shop", byView["refund_totals"].ID, 20*time.Second)
	require.NoError(t, err)
	require.Equal(t, string(engine.JobSuccess), refunds.State)
	assert.Equal(t, float64(1), refunds.Result["batch_rows"], "the backfill loads the batch rows before the apply")

	start, end := t0, t0.Add(2*time.Hour)
	j, err := c.Materialize(ctx, "shop", "refund_totals", client.MaterializationRequest{StartTime: start, EndTime: end})
	require.NoError(t, err)
	assert.Equal(t, string(engine.JobMaterialization), j.Type)
	j, err = c.WaitJob(ctx, "shop", j.ID, 20*time.Second)
	require.NoError(t, err)
	require.Equal(t, string(engine.JobSuccess), j.State, "%+v", j)
	assert.Equal(t, float64(2), j.Result["batch_rows"])
	sum := n.send(get("/api/v1/workspaces/shop/feature-views/refund_totals"), bearer(n.viewer))
	require.Equal(t, http.StatusOK, sum.status)
	assert.Contains(t, string(sum.body), `"job":null`, "the view serves")
	assert.Contains(t, string(sum.body), `"online_record_count":2`, "the history row and the materialized one, each once")

	r = n.send(postJSON("/api/v1/workspaces/shop/feature-views/refund_totals/materialization-jobs",
		fmt.Sprintf(`{"start_time":%q,"end_time":%q}`, ts(t0.Add(time.Hour)), ts(t0.Add(3*time.Hour)))), bearer(owner))
	require.Equal(t, http.StatusConflict, r.status, "%s", r.body)
	conflict = jsonObject(t, r.body, "code", "error", "message", "job")
	assert.Equal(t, j.ID, conflict["job"].(map[string]any)["id"], "the 409 names the earlier job")

	jobs, err := c.ListJobs(ctx, "shop", client.JobFilter{Type: string(engine.JobMaterialization)})
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	_, err = c.CancelJob(ctx, "shop", jobs[0].ID)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTP 409")
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	require.NotNil(t, ce.Job, "a 409 carries the job")
	assert.Equal(t, jobs[0].ID, ce.Job.ID)
}
