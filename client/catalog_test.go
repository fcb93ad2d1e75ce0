package client_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/client"
)

func TestListing(t *testing.T) {
	n := newTestNode(t)
	n.ingestClicks(t)
	ctx := context.Background()
	c := n.client(t, n.viewer)

	wss, err := c.ListWorkspaces(ctx)
	require.NoError(t, err)
	assert.Equal(t, []client.Workspace{{Name: "ads", Sources: 1, FeatureViews: 2, FeatureServices: 2}}, wss)
	wss, err = n.client(t, n.noRole).ListWorkspaces(ctx)
	require.NoError(t, err)
	assert.Empty(t, wss, "a key sees the workspaces it holds a role on")
	_, err = n.client(t, "").ListWorkspaces(ctx)
	requireError(t, err, 401, 16, "")

	views, err := c.ListFeatureViews(ctx, "ads")
	require.NoError(t, err)
	require.Len(t, views, 2)
	assert.Equal(t, "user_click_counts", views[0].Name, "the repo file's order")
	assert.Equal(t, int64(4), views[0].OnlineRecordCount)
	one, err := c.FeatureView(ctx, "ads", "user_click_counts")
	require.NoError(t, err)
	assert.Equal(t, views[0], *one, "the list holds the same summaries")
	assert.Equal(t, &client.Transformation{Columns: client.TransformColumns{{Name: "clicked_squared", Expression: "clicked ** 2"}}}, one.Transformation)
	require.Len(t, one.FeatureDefinitions, 4)
	assert.Equal(t, client.FeatureDefinition{Name: "clicked_squared_sum_1d_continuous", DataType: client.DataType{Type: "float64"},
		Function: "sum", Column: "clicked_squared", TimeWindow: &client.Window{Size: "1d"}}, one.FeatureDefinitions[3])
	created := t0
	assert.Equal(t, []client.FeatureViewVersion{{Version: 1, CreatedAt: &created, Serving: true}}, one.Versions)
	assert.Equal(t, int64(4), one.Storage.MemtableRecords)
	assert.Nil(t, views[1].Transformation)
	assert.Equal(t, []client.FeatureDefinition{{Name: "clicked", DataType: client.DataType{Type: "int64"}, Column: "clicked"}}, views[1].FeatureDefinitions)

	rate, err := c.IngestRate(ctx, "ads", "user_click_counts", 0)
	require.NoError(t, err)
	assert.Equal(t, 60, rate.IntervalSeconds)
	require.Len(t, rate.Points, 60)
	assert.Equal(t, client.IngestRatePoint{Start: t0, Records: 4}, rate.Points[59], "the current minute, with the clicks")
	rate, err = c.IngestRate(ctx, "ads", "click_events_fv", 2)
	require.NoError(t, err)
	assert.Equal(t, []client.IngestRatePoint{{Start: t0.Add(-time.Minute)}, {Start: t0, Records: 4}}, rate.Points)

	svcs, err := c.ListFeatureServices(ctx, "ads")
	require.NoError(t, err)
	require.Len(t, svcs, 2)
	assert.Equal(t, "ad_ctr_feature_service", svcs[0].Name, "by name")
	v2, err := c.FeatureService(ctx, "ads", "ad_ctr_feature_service_v2")
	require.NoError(t, err)
	assert.Equal(t, svcs[1], *v2)
	assert.Equal(t, []string{"click_events_fv", "user_click_counts"}, v2.FeatureViews)
	assert.Equal(t, []client.NamedType{{Name: "user_id", DataType: client.DataType{Type: "string"}}}, v2.JoinKeys)
	require.Len(t, v2.Features, 5)
	assert.Equal(t, client.NamedType{Name: "user_click_counts.clicked_squared_sum_1d_continuous", DataType: client.DataType{Type: "float64"}}, v2.Features[4])
	assert.True(t, v2.OnlineServingEnabled)
	assert.Empty(t, v2.Unavailable)

	md, err := c.GetFeatureServiceMetadata(ctx, "ads", "ad_ctr_feature_service_v2")
	require.NoError(t, err)
	assert.Equal(t, "DEFAULT", md.FeatureServiceType)
	assert.Equal(t, v2.JoinKeys, md.InputJoinKeys)
	assert.Empty(t, md.InputRequestContextKeys)
	require.Len(t, md.FeatureValues, 5)
	for i, f := range md.FeatureValues {
		assert.Equal(t, v2.Features[i].Name, f.Name)
		assert.Equal(t, v2.Features[i].DataType, f.DataType)
	}
	assert.Equal(t, "user_click_counts", md.FeatureValues[1].FeatureViewName)

	// Refusals: a workspace the caller may view but which is not applied
	// is a 404 naming the known ones; without a role, 403 whether or not
	// it exists.
	ghostKey, acct, err := n.db.Accounts().CreateAccount("ghost-viewer", "")
	require.NoError(t, err)
	require.NoError(t, n.db.Accounts().AssignRole(acct.ID, "ghost", auth.Viewer))
	ghost := n.client(t, ghostKey)
	for _, tc := range []struct {
		name         string
		call         func() error
		status, code int
		msg          string
	}{
		{"views of a workspace not applied", func() error { _, err := ghost.ListFeatureViews(ctx, "ghost"); return err }, 404, 5, `workspace "ghost" not found (known: ads)`},
		{"services of a workspace not applied", func() error { _, err := ghost.ListFeatureServices(ctx, "ghost"); return err }, 404, 5, `workspace "ghost" not found`},
		{"a service of a workspace not applied", func() error { _, err := ghost.FeatureService(ctx, "ghost", "x"); return err }, 404, 5, `workspace "ghost" not found`},
		{"metadata in a workspace not applied", func() error { _, err := ghost.GetFeatureServiceMetadata(ctx, "ghost", "x"); return err }, 404, 5, `workspace "ghost" not found`},
		{"views of an unknown workspace", func() error { _, err := n.client(t, n.owner).ListFeatureViews(ctx, "nope"); return err }, 403, 7, `workspace "nope"`},
		{"ingest rate of an unknown view", func() error { _, err := c.IngestRate(ctx, "ads", "nope", 0); return err }, 404, 5, `feature view "nope" not found in workspace "ads"`},
		{"ingest rate over a day", func() error { _, err := c.IngestRate(ctx, "ads", "click_events_fv", 1441); return err }, 400, 3, `minutes="1441"`},
		{"ingest rate without a role", func() error { _, err := n.client(t, n.noRole).IngestRate(ctx, "ads", "click_events_fv", 0); return err }, 403, 7, "viewer"},
		{"unknown service", func() error { _, err := c.FeatureService(ctx, "ads", "nope"); return err }, 404, 5, `feature service "nope" not found in workspace "ads"`},
		{"services without a role", func() error { _, err := n.client(t, n.noRole).ListFeatureServices(ctx, "ads"); return err }, 403, 7, "viewer"},
		{"metadata of an unknown service", func() error { _, err := c.GetFeatureServiceMetadata(ctx, "ads", "nope"); return err }, 404, 5, `"nope"`},
		{"metadata without a workspace", func() error { _, err := c.GetFeatureServiceMetadata(ctx, "", "x"); return err }, 400, 3, "workspace_name"},
		{"metadata without a role", func() error {
			_, err := n.client(t, n.noRole).GetFeatureServiceMetadata(ctx, "ads", "ad_ctr_feature_service")
			return err
		}, 403, 7, ""},
	} {
		t.Run(tc.name, func(t *testing.T) { requireError(t, tc.call(), tc.status, tc.code, tc.msg) })
	}
}

// TestWindowAndColumnsJSON: a window is a string or {size, offset}, and
// transform columns an object whose order is kept, both ways.
func TestWindowAndColumnsJSON(t *testing.T) {
	in := `{"name":"f","dataType":{"type":"int64"},"function":"sum","column":"x","time_window":{"size":"lifetime","offset":"1h"}}`
	var f client.FeatureDefinition
	require.NoError(t, json.Unmarshal([]byte(in), &f))
	assert.Equal(t, &client.Window{Size: "lifetime", Offset: "1h"}, f.TimeWindow)
	out, err := json.Marshal(f)
	require.NoError(t, err)
	assert.JSONEq(t, in, string(out))
	out, err = json.Marshal(client.Window{Size: "1h"})
	require.NoError(t, err)
	assert.Equal(t, `"1h"`, string(out))

	var tr client.Transformation
	require.NoError(t, json.Unmarshal([]byte(`{"columns":{"z":"x * 2","a":"z + 1"},"filter":null}`), &tr))
	assert.Equal(t, client.TransformColumns{{Name: "z", Expression: "x * 2"}, {Name: "a", Expression: "z + 1"}}, tr.Columns, "declared order, not sorted")
	out, err = json.Marshal(tr.Columns)
	require.NoError(t, err)
	assert.Equal(t, `{"z":"x * 2","a":"z + 1"}`, string(out))
	assert.Error(t, json.Unmarshal([]byte(`{"columns":["x"]}`), &tr))
}
