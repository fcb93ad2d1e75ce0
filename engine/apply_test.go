package engine

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/repo"
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
	_, err = db.ApplyWait(context.Background(), "features.yaml", src)
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
	res, err := db.ApplyWait(context.Background(), "features.yaml", meta)
	require.NoError(t, err)
	assert.Empty(t, res.Rebuilt, "a description change must not rebuild")
	assert.Equal(t, before, read(), "state survives a metadata-only apply")

	changed := bytes.Replace(meta, []byte("{input: clicked, function: count, window: 1h}"), []byte("{input: clicked, function: count, window: 2h}"), 1)
	res, err = db.ApplyWait(context.Background(), "features.yaml", changed)
	require.NoError(t, err)
	assert.Equal(t, []string{"user_click_counts"}, res.Rebuilt)
	require.Len(t, res.Jobs, 1)
	assert.Equal(t, JobSuccess, res.Jobs[0].State)
	assert.Equal(t, int64(5), res.Jobs[0].Result.LogRecords, "the backfill reads the logged records")
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
	_, err = db.ApplyWait(context.Background(), "features.yaml", src)
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

// TestNextMetaVersions: what gets a new version on apply (issue 10's
// review of what a version's identity leaves out).
func TestNextMetaVersions(t *testing.T) {
	const repoText = `workspace: w
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: s
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: %s}
      - {name: clicked, type: Int64}
feature_views:
  - name: filtered
    source: s
    entities: [user]
    transform:
      filter: "amount > 0"
    features:
      - aggregate: {input: clicked, function: count, window: 1d}
  - name: plain
    source: s
    entities: [user]
    features:
      - aggregate: {input: clicked, function: sum, window: 1d}
feature_services:
  - name: fs
    features: [plain]
`
	parse := func(amount string, drop ...string) *repo.Repo {
		text := fmt.Sprintf(repoText, amount)
		for _, d := range drop { // remove a view by its name line and the lines up to the next view
			i := strings.Index(text, "  - name: "+d+"\n")
			j := i + 1 + strings.Index(text[i+1:], "  - name: ")
			text = text[:i] + text[j:]
		}
		r, err := repo.Parse("w.yaml", []byte(text))
		require.NoError(t, err)
		return r
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r1 := parse("Int64")
	meta, rebuilt := nextMeta("w.yaml", nil, r1, nil, nil, now)
	require.Equal(t, []string{"filtered", "plain"}, rebuilt)

	// Only a filter reads amount: retyping it changes what "filtered"
	// computes (logged Int64 values read as null now), not "plain".
	r2 := parse("Float64")
	meta2, rebuilt := nextMeta("w.yaml", nil, r2, r1, &meta, now)
	require.Equal(t, []string{"filtered"}, rebuilt)
	require.Equal(t, 2, meta2.Views["filtered"].Version)
	require.Equal(t, 1, meta2.Views["plain"].Version)

	// A catalog written before the fix holds legacy fingerprints: an
	// unchanged view keeps its version (and its legacy fingerprint, which
	// its checkpoint names); a retyped input still gives a new version.
	legacy := meta
	legacy.Views = map[string]viewMeta{}
	for name, vm := range meta.Views {
		vm.Fingerprint = r1.FeatureView(name).LegacyFingerprint()
		legacy.Views[name] = vm
	}
	require.NotEqual(t, legacy.Views["filtered"].Fingerprint, meta.Views["filtered"].Fingerprint, "the test's premise")
	kept, rebuilt := nextMeta("w.yaml", nil, r1, r1, &legacy, now)
	require.Empty(t, rebuilt)
	require.Equal(t, legacy.Views, kept.Views)
	_, rebuilt = nextMeta("w.yaml", nil, r2, r1, &legacy, now)
	require.Equal(t, []string{"filtered"}, rebuilt)

	// A view removed and added back never reuses a version.
	r3 := parse("Float64", "filtered")
	meta3, rebuilt := nextMeta("w.yaml", nil, r3, r2, &meta2, now)
	require.Empty(t, rebuilt)
	require.Equal(t, map[string]int{"filtered": 2}, meta3.Retired)
	meta4, rebuilt := nextMeta("w.yaml", nil, r2, r3, &meta3, now)
	require.Equal(t, []string{"filtered"}, rebuilt)
	require.Equal(t, 3, meta4.Views["filtered"].Version)
	require.Empty(t, meta4.Retired)
}
