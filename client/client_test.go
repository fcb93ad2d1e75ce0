package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/api"
	"github.com/featurelog/featurelog/client"
)

// requireError checks that err is a *client.Error with status, gRPC code
// (0: the ingest API's shape) and a message containing msg.
func requireError(t *testing.T, err error, status, code int, msg string) *client.Error {
	t.Helper()
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, status, ce.Status, "%v", err)
	assert.Equal(t, code, ce.Code, "%v", err)
	assert.Contains(t, ce.Message, msg)
	assert.Contains(t, err.Error(), msg)
	return ce
}

func TestNew(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://h", "http://", "http://h/?q=1", "://x"} {
		_, err := client.New(bad, client.Options{})
		assert.Error(t, err, "%q", bad)
	}
	c, err := client.New("http://127.0.0.1:8080/", client.Options{})
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:8080", c.BaseURL())
	_, err = client.New("http://127.0.0.1:8080", client.Options{APIKey: "key\r\nX-Evil: 1"})
	require.ErrorContains(t, err, "Options.APIKey holds a line break")
	_, err = client.New("http://127.0.0.1:8080", client.Options{UserAgent: "a\x00b"})
	require.ErrorContains(t, err, "Options.UserAgent")

	// A node that is not there: the transport error names the URL.
	c, err = client.New("http://127.0.0.1:1", client.Options{})
	require.NoError(t, err)
	err = c.Health(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "http://127.0.0.1:1")
	var ce *client.Error
	assert.False(t, errors.As(err, &ce), "not an answer of the node")
}

func TestIngest(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	c := n.client(t, n.editor)

	dry, err := c.Ingest(ctx, client.IngestRequest{Workspace: "ads", Records: clicks(), DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, "ads", dry.WorkspaceName)
	resp, err := c.Ingest(ctx, client.IngestRequest{Workspace: "ads", Records: clicks(), IdempotencyKey: "batch-1"})
	require.NoError(t, err)
	assert.Equal(t, dry, resp, "a dry run counts what the request writes")
	counts := map[string][2]int64{}
	for _, m := range resp.IngestMetrics.FeatureViewIngestMetrics {
		counts[m.FeatureViewName] = [2]int64{m.OnlineRecordIngestCount, m.OfflineRecordIngestCount}
	}
	assert.Equal(t, map[string][2]int64{"user_click_counts": {4, 4}, "click_events_fv": {4, 4}}, counts)

	again, err := c.Ingest(ctx, client.IngestRequest{Workspace: "ads", Records: clicks(), IdempotencyKey: "batch-1"})
	require.NoError(t, err)
	assert.Equal(t, resp, again, "a retry returns the first response")
	fv, err := c.FeatureView(ctx, "ads", "user_click_counts")
	require.NoError(t, err)
	assert.Equal(t, int64(4), fv.OnlineRecordCount, "the dry run and the retry wrote nothing")

	// Refusals, each an *Error of the ingest API's shape.
	bad := map[string][]map[string]any{"impressions_event_source": {
		{"user_id": "u3", "timestamp": t0.Add(-time.Minute).Format(time.RFC3339), "clicked": 1},
		{"user_id": "u3", "timestamp": t0.Add(-time.Minute).Format(time.RFC3339), "clicked": "lots"},
		{"user_id": "u3", "timestamp": "yesterday", "clicked": 1},
	}}
	_, err = c.Ingest(ctx, client.IngestRequest{Workspace: "ads", Records: bad})
	ce := requireError(t, err, http.StatusBadRequest, 0, "")
	assert.Equal(t, "TectonObjectValidationError", ce.Type)
	require.Len(t, ce.RecordErrors, 2, "every bad record is listed")
	assert.Equal(t, 1, ce.RecordErrors[0].RecordIndex)
	assert.Equal(t, 2, ce.RecordErrors[1].RecordIndex)
	assert.Equal(t, "impressions_event_source", ce.RecordErrors[0].PushSourceName)
	assert.Contains(t, err.Error(), "2 invalid records")

	for _, tc := range []struct {
		name, key, ws string
		records       map[string][]map[string]any
		status        int
		typ           string
	}{
		{"workspace without a role", n.editor, "nope", clicks(), 403, "PermissionDenied"},
		{"unknown source", n.editor, "ads", map[string][]map[string]any{"nope": {}}, 404, "NotFound"},
		{"viewer", n.viewer, "ads", clicks(), 403, "PermissionDenied"},
		{"no key", "", "ads", clicks(), 401, "Unauthenticated"},
		{"bad key", "fl_0000000000000000_bad", "ads", clicks(), 401, "Unauthenticated"},
		{"no workspace", n.editor, "", clicks(), 400, "RequestValidationError"},
	} {
		_, err := n.client(t, tc.key).Ingest(ctx, client.IngestRequest{Workspace: tc.ws, Records: tc.records})
		ce := requireError(t, err, tc.status, 0, "")
		assert.Equal(t, tc.typ, ce.Type, tc.name)
		assert.NotEmpty(t, ce.Message, tc.name)
	}
	_, err = c.Ingest(ctx, client.IngestRequest{Workspace: "ads", Records: map[string][]map[string]any{"impressions_event_source": {{"x": make(chan int)}}}})
	require.Error(t, err, "a value JSON cannot encode")
	assert.Contains(t, err.Error(), "encoding the request")
}

func TestGetFeatures(t *testing.T) {
	n := newTestNode(t)
	n.ingestClicks(t)
	ctx := context.Background()
	c := n.client(t, n.viewer)
	all := client.MetadataOptions{IncludeNames: true, IncludeDataTypes: true, IncludeEffectiveTimes: true, IncludeServingStatus: true}

	resp, err := c.GetFeatures(ctx, client.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2",
		JoinKeyMap: map[string]any{"user_id": "u1"}, Metadata: all})
	require.NoError(t, err)
	assert.Equal(t, []any{"0", "3", "3", "3", 2.0}, decode(t, resp.Result.Features), "latest click, counts (int64 as strings), sum of squares")
	require.Len(t, resp.Metadata.Features, 5)
	m := resp.Metadata.Features
	assert.Equal(t, "click_events_fv.clicked", m[0].Name)
	assert.Equal(t, "user_click_counts.clicked_count_1h_continuous", m[1].Name)
	assert.Equal(t, "int64", m[1].DataType.String())
	assert.Equal(t, "float64", m[4].DataType.String())
	assert.Equal(t, "PRESENT", m[0].Status)
	require.NotNil(t, m[0].EffectiveTime)
	assert.Equal(t, t0.Add(-10*time.Minute), *m[0].EffectiveTime, "an attribute's effective time is its event time")
	assert.Equal(t, t0, *m[1].EffectiveTime, "an aggregate's is its window end")

	// No metadata asked, none sent; as_of reads the past.
	resp, err = c.GetFeatures(ctx, client.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2",
		JoinKeyMap: map[string]any{"user_id": "u1"}, AsOf: t0.Add(-15 * time.Minute)})
	require.NoError(t, err)
	assert.Empty(t, resp.Metadata.Features)
	assert.Equal(t, []any{"1", "2", "2", "2", 2.0}, decode(t, resp.Result.Features))

	resp, err = c.GetFeatures(ctx, client.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service",
		JoinKeyMap: map[string]any{"user_id": "nobody"}, Metadata: client.MetadataOptions{IncludeServingStatus: true}})
	require.NoError(t, err)
	assert.Equal(t, []any{nil}, decode(t, resp.Result.Features))
	assert.Equal(t, "MISSING_DATA", resp.Metadata.Features[0].Status)

	for _, tc := range []struct {
		name, key, ws, svc string
		keys               map[string]any
		status, code       int
		msg                string
	}{
		{"unknown service", n.viewer, "ads", "nope", map[string]any{"user_id": "u1"}, 404, 5, `"nope"`},
		{"workspace without a role", n.viewer, "nope", "ad_ctr_feature_service", map[string]any{"user_id": "u1"}, 403, 7, `workspace "nope"`},
		{"missing join key", n.viewer, "ads", "ad_ctr_feature_service", map[string]any{}, 400, 3, "user_id"},
		{"extra join key", n.viewer, "ads", "ad_ctr_feature_service", map[string]any{"user_id": "u1", "x": 1}, 400, 3, "does not use: x"},
		{"no role", n.noRole, "ads", "ad_ctr_feature_service", map[string]any{"user_id": "u1"}, 403, 7, "ads"},
		{"no key", "", "ads", "ad_ctr_feature_service", map[string]any{"user_id": "u1"}, 401, 16, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.client(t, tc.key).GetFeatures(ctx, client.GetFeaturesRequest{Workspace: tc.ws, Service: tc.svc, JoinKeyMap: tc.keys})
			requireError(t, err, tc.status, tc.code, tc.msg)
		})
	}
	_, err = c.GetFeatures(ctx, client.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service",
		JoinKeyMap: map[string]any{"user_id": "u1"}, AsOf: t0.Add(time.Hour)})
	requireError(t, err, 400, 3, "as_of")
}

func TestGetFeaturesBatch(t *testing.T) {
	n := newTestNode(t)
	n.ingestClicks(t)
	ctx := context.Background()
	c := n.client(t, n.viewer)
	resp, err := c.GetFeaturesBatch(ctx, client.GetFeaturesBatchRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2",
		JoinKeyMaps: []map[string]any{{"user_id": "u2"}, {"user_id": "nobody"}, {"user_id": "u1"}},
		Metadata:    client.MetadataOptions{IncludeNames: true, IncludeServingStatus: true, IncludeEffectiveTimes: true}})
	require.NoError(t, err)
	require.Len(t, resp.Result, 3)
	assert.Equal(t, []any{"1", "1", "1", "1", 1.0}, decode(t, resp.Result[0].Features))
	assert.Equal(t, []any{nil, "0", "0", "0", nil}, decode(t, resp.Result[1].Features))
	assert.Equal(t, []any{"0", "3", "3", "3", 2.0}, decode(t, resp.Result[2].Features), "request order")
	require.Len(t, resp.Metadata.Features, 5)
	assert.Equal(t, "click_events_fv.clicked", resp.Metadata.Features[0].Name)
	assert.Equal(t, []string{"PRESENT", "MISSING_DATA", "PRESENT"}, resp.Metadata.Features[0].Status, "one status per row")
	require.Len(t, resp.Metadata.Features[0].EffectiveTime, 3)
	assert.Nil(t, resp.Metadata.Features[0].EffectiveTime[1], "a missing value has no effective time")

	_, err = c.GetFeaturesBatch(ctx, client.GetFeaturesBatchRequest{Workspace: "ads", Service: "ad_ctr_feature_service"})
	require.NoError(t, err, "an empty batch is a batch")
	many := make([]map[string]any, 1001)
	for i := range many {
		many[i] = map[string]any{"user_id": "u1"}
	}
	_, err = c.GetFeaturesBatch(ctx, client.GetFeaturesBatchRequest{Workspace: "ads", Service: "ad_ctr_feature_service", JoinKeyMaps: many})
	requireError(t, err, 400, 3, "at most 1000")
	_, err = c.GetFeaturesBatch(ctx, client.GetFeaturesBatchRequest{Workspace: "ads", Service: "nope", JoinKeyMaps: many[:1]})
	requireError(t, err, 404, 5, "nope")
}

func TestAdmin(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	owner := n.client(t, n.owner)

	plan, err := owner.Plan(ctx, "features.yaml", adsRepo(t))
	require.NoError(t, err)
	assert.False(t, plan.Changed, "the file is applied already")
	assert.Equal(t, "ads", plan.Workspace)
	_, err = owner.Apply(ctx, "features.yaml", []byte("workspace: ads\nfeature_views:\n  - name: x\n    source: nope\n"))
	requireError(t, err, 400, 3, "features.yaml:")
	_, err = n.client(t, n.viewer).Plan(ctx, "features.yaml", adsRepo(t))
	requireError(t, err, 403, 7, "owner")

	acct, err := owner.CreateServiceAccount(ctx, "pusher", "pushes clicks")
	require.NoError(t, err)
	require.NotEmpty(t, acct.APIKey)
	require.NotEmpty(t, acct.ID)
	require.NoError(t, owner.AssignRole(ctx, acct.ID, "ads", "viewer"))
	accts, err := owner.ListServiceAccounts(ctx)
	require.NoError(t, err)
	var found *client.ServiceAccount
	for i := range accts {
		assert.Empty(t, accts[i].APIKey, "keys are shown once")
		if accts[i].ID == acct.ID {
			found = &accts[i]
		}
	}
	require.NotNil(t, found)
	assert.Equal(t, map[string]string{"ads": "viewer"}, found.Roles)
	assert.Equal(t, "pushes clicks", found.Description)

	pusher := n.client(t, acct.APIKey)
	_, err = pusher.GetFeatures(ctx, client.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service", JoinKeyMap: map[string]any{"user_id": "u1"}})
	require.NoError(t, err)
	err = owner.AssignRole(ctx, acct.ID, "ads", "emperor")
	requireError(t, err, 400, 3, "emperor")
	err = owner.AssignRole(ctx, "sa_nope", "ads", "viewer")
	requireError(t, err, 404, 5, "sa_nope")
	require.NoError(t, owner.DeleteServiceAccount(ctx, acct.ID))
	_, err = pusher.GetFeatures(ctx, client.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service", JoinKeyMap: map[string]any{"user_id": "u1"}})
	requireError(t, err, 401, 16, "")
	err = owner.DeleteServiceAccount(ctx, acct.ID)
	requireError(t, err, 404, 5, acct.ID)

	require.NoError(t, n.client(t, "").Health(ctx), "healthz needs no key")
	ready, err := n.client(t, "").Ready(ctx)
	require.NoError(t, err)
	assert.Equal(t, "ready", ready.Status)
	metrics, err := owner.Metrics(ctx)
	require.NoError(t, err)
	assert.Contains(t, string(metrics), "featurelog_")
	doc, err := n.client(t, "").OpenAPI(ctx)
	require.NoError(t, err, "the OpenAPI document needs no key")
	assert.Equal(t, api.OpenAPI(), doc)

	fv, err := n.client(t, n.viewer).FeatureView(ctx, "ads", "click_events_fv")
	require.NoError(t, err)
	assert.Equal(t, "impressions_event_source", fv.Source)
	assert.Equal(t, []string{"user_id"}, fv.JoinKeys)
	assert.Equal(t, "7d", fv.TTL)
	assert.Equal(t, "timestamp", fv.TimestampField)
	assert.Equal(t, time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC), *fv.FeatureStartTime)
	assert.True(t, fv.Online)
	assert.Empty(t, fv.Job, "the view serves")
	_, err = n.client(t, n.viewer).FeatureView(ctx, "ads", "nope")
	requireError(t, err, 404, 5, `"nope"`)
	_, err = n.client(t, n.noRole).FeatureView(ctx, "ads", "click_events_fv")
	requireError(t, err, 403, 7, "")
}

// TestReadyUnavailable: a node whose engine is closed answers /readyz
// 503, an *Error saying why.
func TestReadyUnavailable(t *testing.T) {
	n := newTestNode(t)
	require.NoError(t, n.db.Close())
	_, err := n.client(t, "").Ready(context.Background())
	ce := requireError(t, err, 503, 0, "")
	assert.NotContains(t, ce.Message, "{", "the reason, not the body")
	assert.NotEmpty(t, ce.Message)
}

func TestContextCancels(t *testing.T) {
	n := newTestNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := n.client(t, n.viewer).Health(ctx)
	require.ErrorIs(t, err, context.Canceled)
	_, err = n.client(t, n.viewer).GetFeaturesForEvents(ctx, client.HistoricalRequest{Workspace: "ads", Service: "ad_ctr_feature_service",
		SpineSource: client.NDJSONSpine(strings.NewReader(`{"user_id": "u1", "ts": "2024-05-01T11:00:00Z"}`))})
	require.ErrorIs(t, err, context.Canceled)
}
