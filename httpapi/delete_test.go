package httpapi_test

// delete-keys over HTTP (SPEC §6): 202 and the job; online and offline
// default to true; an int64 key is exact, so its neighbour, which a
// float64 cannot tell apart from it, is kept.

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

const intsRepo = `workspace: ints
entities:
  - name: account
    join_keys: [account_id]
sources:
  - name: events
    schema:
      - {name: account_id, type: Int64}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Int64}
feature_views:
  - name: last_amount
    source: events
    entities: [account]
    timestamp_field: ts
    features:
      - attribute: {name: amount}
feature_services:
  - name: amounts
    features:
      - last_amount
`

func TestDeleteKeysHTTP(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	_, err := n.db.ApplyWait(context.Background(), "ints.yaml", []byte(intsRepo))
	require.NoError(t, err)
	const deleted, kept = int64(9007199254740993), int64(9007199254740992) // 2^53+1 and 2^53: one float64
	_, err = n.db.Ingest(&engine.IngestRequest{Workspace: "ints", Records: map[string][]map[string]any{"events": {
		{"account_id": deleted, "ts": t0.Add(-time.Hour), "amount": int64(1)},
		{"account_id": kept, "ts": t0.Add(-time.Hour), "amount": int64(2)},
	}}})
	require.NoError(t, err)
	owner := n.account("ints-owner", map[string]auth.Role{"ints": auth.Owner})

	r := n.send(postJSON("/api/v1/workspaces/ints/feature-views/last_amount/delete-keys", `{"keys":[{"account_id":9007199254740993}]}`), bearer(owner))
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	var j engine.Job
	require.NoError(t, json.Unmarshal(r.body, &j))
	assert.Equal(t, engine.JobDeletion, j.Type)
	assert.Equal(t, "last_amount", j.FeatureView)
	require.NotNil(t, j.Params.Online)
	require.NotNil(t, j.Params.Offline)
	assert.True(t, *j.Params.Online, "online defaults to true")
	assert.True(t, *j.Params.Offline, "offline defaults to true")
	j, err = n.db.WaitJob(context.Background(), "ints", j.ID)
	require.NoError(t, err)
	require.Equal(t, engine.JobSuccess, j.State, "%v", j.Error)
	assert.Equal(t, 1, j.Result.KeysFound)

	for key, want := range map[int64]engine.Status{deleted: engine.MissingData, kept: engine.Present} {
		vec, err := n.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ints", Service: "amounts", JoinKeys: map[string]any{"account_id": key}})
		require.NoError(t, err)
		assert.Equal(t, want, vec.Features[0].Status, "account %d", key)
	}
	r = n.send(get("/api/v1/workspaces/ints/jobs?type=deletion"), bearer(owner))
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var listed struct{ Jobs []engine.Job }
	require.NoError(t, json.Unmarshal(r.body, &listed))
	require.Len(t, listed.Jobs, 1, "deletion_status: the jobs filtered by type")
	assert.Equal(t, j.ID, listed.Jobs[0].ID)
}
