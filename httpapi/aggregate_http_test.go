//go:build unix

package httpapi_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/httpapi"
)

func (n *node) get(path, authz string) (int, []byte) {
	n.t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.srv.URL+path, nil)
	require.NoError(n.t, err)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return do(n.t, req)
}

// TestAggregatesOverHTTP reads the example's aggregate view through
// get-features: values, int64 as strings, float sums as numbers, data
// types, effective times at the window end, PRESENT even when empty.
func TestAggregatesOverHTTP(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	at := t0.Add(-10 * time.Minute)
	status, body := n.ingest(n.editor, adsSample(false, "agg1", "agg1", at, at.Add(-2*time.Hour)))
	require.Equal(t, http.StatusOK, status, string(body))

	status, body = n.getFeatures(n.viewer, `{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service_v2",
	  "join_key_map": {"user_id": "agg1"}, "metadata_options": {"include_names": true, "include_data_types": true,
	  "include_effective_times": true, "include_serving_status": true}}}`)
	require.Equal(t, http.StatusOK, status, string(body))
	var resp struct {
		Result struct {
			Features []any `json:"features"`
		} `json:"result"`
		Metadata struct {
			Features []struct {
				Name          string         `json:"name"`
				DataType      map[string]any `json:"dataType"`
				EffectiveTime string         `json:"effectiveTime"`
				Status        string         `json:"status"`
			} `json:"features"`
		} `json:"metadata"`
	}
	require.NoError(t, json.Unmarshal(body, &resp), string(body))
	// click_events_fv.clicked, then counts over 1h, 12h, 1d and the sum of
	// clicked² over 1d: one click 10m ago, one 2h10m ago.
	assert.Equal(t, []any{"1", "1", "2", "2", 2.0}, resp.Result.Features)
	names := []string{"click_events_fv.clicked", "user_click_counts.clicked_count_1h_continuous",
		"user_click_counts.clicked_count_12h_continuous", "user_click_counts.clicked_count_1d_continuous",
		"user_click_counts.clicked_squared_sum_1d_continuous"}
	for i, m := range resp.Metadata.Features {
		assert.Equal(t, names[i], m.Name)
		assert.Equal(t, "PRESENT", m.Status)
		if i > 0 {
			assert.Equal(t, ts(t0), m.EffectiveTime, "an aggregate's effective time is its window end: now")
		}
	}
	assert.Equal(t, "int64", resp.Metadata.Features[1].DataType["type"])
	assert.Equal(t, "float64", resp.Metadata.Features[4].DataType["type"])

	// A key with no events: counts 0, the sum null, all PRESENT.
	status, body = n.getFeatures(n.viewer, `{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service_v2",
	  "join_key_map": {"user_id": "nobody"}}}`)
	require.Equal(t, http.StatusOK, status, string(body))
	assert.JSONEq(t, `{"result": {"features": [null, "0", "0", "0", null]}}`, string(body))

	// as_of an hour ago: only the older click is in the windows.
	status, body = n.getFeatures(n.viewer, `{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service_v2",
	  "join_key_map": {"user_id": "agg1"}, "as_of": "`+ts(t0.Add(-time.Hour))+`"}}`)
	require.Equal(t, http.StatusOK, status, string(body))
	assert.JSONEq(t, `{"result": {"features": ["1", "0", "1", "1", 1.0]}}`, string(body))
}

// TestFeatureViewSummary checks GET /api/v1/workspaces/{ws}/feature-views/{name}.
func TestFeatureViewSummary(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	at := t0.Add(-time.Minute)
	status, body := n.ingest(n.editor, adsSample(false, "s1", "s2", at, at.Add(-time.Second)))
	require.Equal(t, http.StatusOK, status, string(body))

	status, body = n.get("/api/v1/workspaces/ads/feature-views/user_click_counts", "Tecton-key "+n.viewer)
	require.Equal(t, http.StatusOK, status, string(body))
	var sum map[string]any
	require.NoError(t, json.Unmarshal(body, &sum))
	assert.Equal(t, "user_click_counts", sum["name"])
	assert.Equal(t, "The aggregated count of ad clicks for a user.", sum["description"])
	assert.Equal(t, "ads-team@example.com", sum["owner"])
	assert.Equal(t, map[string]any{"team": "ads"}, sum["tags"])
	assert.Equal(t, []any{"user"}, sum["entities"])
	assert.Equal(t, []any{"user_id"}, sum["join_keys"])
	assert.Equal(t, []any{"clicked_count_1h_continuous", "clicked_count_12h_continuous", "clicked_count_1d_continuous", "clicked_squared_sum_1d_continuous"}, sum["features"])
	assert.Equal(t, "timestamp", sum["timestamp_field"])
	assert.Equal(t, "continuous", sum["aggregation_interval"])
	assert.Equal(t, "1d", sum["ttl"], "an aggregate view's default TTL is its largest window")
	assert.Equal(t, "1d", sum["batch_schedule"])
	assert.Equal(t, "2022-10-10T00:00:00Z", sum["feature_start_time"])
	assert.Equal(t, true, sum["online"])
	assert.Equal(t, true, sum["offline"])
	assert.Equal(t, 2.0, sum["online_record_count"])
	assert.Equal(t, 2.0, sum["offline_record_count"])
	assert.Equal(t, ts(at), sum["freshness"], "freshness is the newest event time applied")
	assert.Equal(t, 2.0, sum["entity_keys_online"])
	assert.NotEmpty(t, sum["created_at"])

	status, body = n.get("/api/v1/workspaces/ads/feature-views/nope", "Tecton-key "+n.viewer)
	requireServingError(t, status, body, http.StatusNotFound, 5)
	status, body = n.get("/api/v1/workspaces/ads/feature-views/user_click_counts", "")
	requireServingError(t, status, body, http.StatusUnauthorized, 16)
	status, body = n.get("/api/v1/workspaces/ads/feature-views/user_click_counts", "Tecton-key "+n.otherEditor)
	requireServingError(t, status, body, http.StatusForbidden, 7)
}

// sumsRepo has three sums of Float64 columns in one view: a source column,
// a transform column derived from it, and another source column. Builds
// before issue 10's fix served the first one's sum for all three.
const sumsRepo = `workspace: sums
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: tx
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Float64}
      - {name: fee, type: Float64}
feature_views:
  - name: totals
    source: tx
    entities: [user]
    transform:
      columns:
        amount2: "amount * 2.0"
    features:
      - aggregate: {input: amount, function: sum, window: 1d}
      - aggregate: {input: amount2, function: sum, window: 1d}
      - aggregate: {input: fee, function: sum, window: 1d}
feature_services:
  - name: totals_fs
    features: [totals]
`

// TestSumsOverDifferentColumnsHTTP is issue 10's report, as a user met it:
// records pushed over HTTP in random time order, and get-features serving
// sum(amount), sum(amount2 = amount * 2) and sum(fee), each its own,
// before and after a restart.
func TestSumsOverDifferentColumnsHTTP(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	_, err := n.db.Apply("sums.yaml", []byte(sumsRepo))
	require.NoError(t, err)
	key := n.account("sums-editor", map[string]auth.Role{"sums": auth.Editor})
	r := rand.New(rand.NewSource(10))
	var recs []string
	var amount, fee float64
	for i := 0; i < 40; i++ {
		a, f := float64(r.Intn(400))/4, float64(r.Intn(40))/8+1
		amount, fee = amount+a, fee+f
		at := t0.Add(-time.Duration(r.Int63n(int64(20 * time.Hour))))
		recs = append(recs, fmt.Sprintf(`{"record":{"user_id":"u1","ts":%q,"amount":%v,"fee":%v}}`, ts(at), a, f))
	}
	r.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	for i := 0; i < len(recs); i += 10 {
		status, body := n.ingest(key, []byte(`{"workspace_name":"sums","dry_run":false,"records":{"tx":[`+strings.Join(recs[i:i+10], ",")+`]}}`))
		require.Equal(t, 200, status, "%s", body)
	}
	check := func(stage string) {
		status, body := n.getFeatures(key, `{"params":{"workspace_name":"sums","feature_service_name":"totals_fs","join_key_map":{"user_id":"u1"}}}`)
		require.Equal(t, 200, status, "%s", body)
		var out struct {
			Result struct {
				Features []float64 `json:"features"`
			} `json:"result"`
		}
		require.NoError(t, json.Unmarshal(body, &out), "%s", body)
		require.Len(t, out.Result.Features, 3, "%s", body)
		require.InDelta(t, amount, out.Result.Features[0], 1e-9*amount, "%s: sum(amount)", stage)
		require.InDelta(t, 2*amount, out.Result.Features[1], 2e-9*amount, "%s: sum(amount2)", stage)
		require.InDelta(t, fee, out.Result.Features[2], 1e-9*fee, "%s: sum(fee)", stage)
	}
	check("live")
	require.NoError(t, n.db.Flush())
	require.NoError(t, n.db.Close())
	n.open()
	check("after a flush and a restart")
}
