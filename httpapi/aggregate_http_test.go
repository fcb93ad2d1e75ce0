//go:build unix

package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
