package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/featurelog/featurelog/httpapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestListing: the listing routes (SPEC §8) describe the applied repos —
// the ads example and the shop repo — and refuse what they must: an
// unknown workspace or service (404, naming what exists, to a caller who
// may view it), a metadata request without its params (400).
func TestListing(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	decode := func(r testReply, into any) {
		t.Helper()
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		require.NoError(t, json.Unmarshal(r.body, into), "%s", r.body)
	}

	var wss struct {
		Workspaces []struct {
			Name     string
			Sources  int
			Views    int `json:"feature_views"`
			Services int `json:"feature_services"`
		}
	}
	decode(n.send(get("/api/v1/workspaces"), bearer(n.viewer)), &wss)
	require.Len(t, wss.Workspaces, 2)
	assert.Equal(t, "ads", wss.Workspaces[0].Name)
	assert.Equal(t, 1, wss.Workspaces[0].Sources, "%+v", wss)
	assert.Equal(t, 2, wss.Workspaces[0].Views)
	assert.Equal(t, 2, wss.Workspaces[0].Services)
	assert.Equal(t, "shop", wss.Workspaces[1].Name)
	// A key with a role on no applied workspace sees none.
	decode(n.send(get("/api/v1/workspaces"), bearer(n.ghostEditor)), &wss)
	assert.Empty(t, wss.Workspaces)

	var views struct {
		FeatureViews []struct{ Name string } `json:"feature_views"`
	}
	decode(n.send(get("/api/v1/workspaces/ads/feature-views"), bearer(n.viewer)), &views)
	require.Len(t, views.FeatureViews, 2)
	assert.Equal(t, "user_click_counts", views.FeatureViews[0].Name, "repo file order")
	assert.Equal(t, "click_events_fv", views.FeatureViews[1].Name)

	type named struct {
		Name     string
		DataType struct{ Type string } `json:"dataType"`
	}
	type service struct {
		Name         string
		FeatureViews []string `json:"feature_views"`
		Features     []named
		JoinKeys     []named `json:"join_keys"`
		Unavailable  *string
	}
	var svcs struct {
		FeatureServices []service `json:"feature_services"`
	}
	decode(n.send(get("/api/v1/workspaces/ads/feature-services"), bearer(n.viewer)), &svcs)
	require.Len(t, svcs.FeatureServices, 2)
	assert.Equal(t, "ad_ctr_feature_service", svcs.FeatureServices[0].Name)
	var v2 service
	decode(n.send(get("/api/v1/workspaces/ads/feature-services/ad_ctr_feature_service_v2"), bearer(n.viewer)), &v2)
	assert.Equal(t, svcs.FeatureServices[1], v2)
	assert.Equal(t, []string{"click_events_fv", "user_click_counts"}, v2.FeatureViews)
	require.Len(t, v2.Features, 5)
	assert.Equal(t, named{Name: "click_events_fv.clicked", DataType: struct{ Type string }{"int64"}}, v2.Features[0])
	assert.Equal(t, []named{{Name: "user_id", DataType: struct{ Type string }{"string"}}}, v2.JoinKeys)
	assert.Nil(t, v2.Unavailable)

	var meta struct {
		FeatureServiceType string `json:"featureServiceType"`
		InputJoinKeys      []named
		FeatureValues      []struct {
			Name, FeatureViewName string
		}
	}
	decode(n.send(postJSON("/api/v1/feature-service/metadata", `{"params":{"workspaceName":"ads","featureServiceName":"ad_ctr_feature_service_v2"}}`), bearer(n.viewer)), &meta)
	assert.Equal(t, "DEFAULT", meta.FeatureServiceType)
	assert.Equal(t, v2.JoinKeys, meta.InputJoinKeys)
	require.Len(t, meta.FeatureValues, 5)
	assert.Equal(t, "user_click_counts", meta.FeatureValues[4].FeatureViewName)

	// Refusals.
	r := n.send(get("/api/v1/workspaces/ghost/feature-views"), bearer(n.ghostEditor))
	requireServingError(t, r.status, r.body, http.StatusNotFound, 5)
	assert.Contains(t, string(r.body), `workspace \"ghost\" not found`)
	r = n.send(get("/api/v1/workspaces/ghost/feature-services"), bearer(n.ghostEditor))
	requireServingError(t, r.status, r.body, http.StatusNotFound, 5)
	r = n.send(get("/api/v1/workspaces/ads/feature-services/nope"), bearer(n.viewer))
	requireServingError(t, r.status, r.body, http.StatusNotFound, 5)
	assert.Contains(t, string(r.body), "nope")
	r = n.send(postJSON("/api/v1/feature-service/metadata", `{"params":{"workspace_name":"ads","feature_service_name":"nope"}}`), bearer(n.viewer))
	requireServingError(t, r.status, r.body, http.StatusNotFound, 5)
	r = n.send(postJSON("/api/v1/feature-service/metadata", `{"params":{"workspace_name":"ads"}}`), bearer(n.viewer))
	requireServingError(t, r.status, r.body, http.StatusBadRequest, 3)
	assert.Contains(t, string(r.body), "params.feature_service_name is required")
	r = n.send(postJSON("/api/v1/feature-service/metadata", `{"params":{"workspace_name":"ads","feature_service_name":"x","extra":1}}`), bearer(n.viewer))
	requireServingError(t, r.status, r.body, http.StatusBadRequest, 3)
}
