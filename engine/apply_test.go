package engine

import (
	"bytes"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReapplyKeepsOrRebuildsState: a metadata-only change keeps every
// view's online state (same version); a change to what a view computes
// gives a new version rebuilt from the log, with the same records in it.
func TestReapplyKeepsOrRebuildsState(t *testing.T) {
	src, err := os.ReadFile("../examples/ads/features.yaml")
	require.NoError(t, err)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db, err := Open(Options{Dir: t.TempDir(), Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Apply("features.yaml", src)
	require.NoError(t, err)
	var recs []map[string]any
	for i := 0; i < 5; i++ {
		recs = append(recs, map[string]any{"user_id": "u1", "timestamp": now.Add(-time.Duration(i+1) * time.Minute), "clicked": int64(i % 2)})
	}
	_, err = db.Ingest(&IngestRequest{Workspace: "ads", Records: map[string][]map[string]any{"impressions_event_source": recs}})
	require.NoError(t, err)

	read := func() []FeatureValue {
		vec, err := db.GetFeatures(&GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2", JoinKeys: map[string]any{"user_id": "u1"}})
		require.NoError(t, err)
		return vec.Features
	}
	before := read()
	require.Equal(t, "user_click_counts.clicked_count_1h_continuous", before[1].Name)
	require.Equal(t, int64(5), before[1].Value.I, "five clicks in the last hour")

	meta := bytes.Replace(src, []byte("The aggregated count of ad clicks for a user."), []byte("Clicks per user."), 1)
	res, err := db.Apply("features.yaml", meta)
	require.NoError(t, err)
	assert.Empty(t, res.Rebuilt, "a description change must not rebuild")
	assert.Equal(t, before, read(), "state survives a metadata-only apply")

	changed := bytes.Replace(meta, []byte("{input: clicked, function: count, window: 1h}"), []byte("{input: clicked, function: count, window: 2h}"), 1)
	res, err = db.Apply("features.yaml", changed)
	require.NoError(t, err)
	assert.Equal(t, []string{"user_click_counts"}, res.Rebuilt)
	assert.Equal(t, 5, res.Records, "the rebuild replays the logged records")
	after := read()
	assert.Equal(t, "user_click_counts.clicked_count_2h_continuous", after[1].Name)
	assert.Equal(t, int64(5), after[1].Value.I, "the new version is rebuilt from the log")
	assert.Equal(t, before[0], after[0], "the attribute view is untouched")
}

// TestBatchEqualsSingleReads: a batch large enough to be read in parallel
// returns, row for row, what single reads return; the first bad row (by
// row order) is the error.
func TestBatchEqualsSingleReads(t *testing.T) {
	src, err := os.ReadFile("../examples/ads/features.yaml")
	require.NoError(t, err)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db, err := Open(Options{Dir: t.TempDir(), NoSync: true, Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Apply("features.yaml", src)
	require.NoError(t, err)
	var recs []map[string]any
	keys := make([]map[string]any, 150)
	for i := range keys {
		user := "u" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		keys[i] = map[string]any{"user_id": user}
		for j := 0; j <= i%5; j++ {
			recs = append(recs, map[string]any{"user_id": user, "timestamp": now.Add(-time.Duration(i*7+j) * time.Minute), "clicked": int64(j % 2)})
		}
	}
	_, err = db.Ingest(&IngestRequest{Workspace: "ads", Records: map[string][]map[string]any{"impressions_event_source": recs}})
	require.NoError(t, err)
	batch, err := db.GetFeaturesBatch("ads", "ad_ctr_feature_service_v2", keys, time.Time{})
	require.NoError(t, err)
	require.Len(t, batch, len(keys))
	for i, jk := range keys {
		one, err := db.GetFeatures(&GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2", JoinKeys: jk})
		require.NoError(t, err)
		assert.Equal(t, one.Features, batch[i].Features, "row %d", i)
	}
	bad := append(append([]map[string]any{}, keys...), map[string]any{"user": "x"}, map[string]any{})
	_, err = db.GetFeaturesBatch("ads", "ad_ctr_feature_service_v2", bad, time.Time{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "request_data[150]")
}
