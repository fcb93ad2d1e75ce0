package engine_test

// Ingest's and reads' rules on time: the default serving TTL of
// aggregate views (DESIGN.md, "TTL defaults"), and timestamps outside
// the span int64 nanoseconds can hold.

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// timeRepo has an attribute view of a String-keyed source with a TTL and
// a feature_start_time, another without the start, and an Int64-keyed
// source.
var timeRepo = `workspace: diff
entities:
  - name: user
    join_keys: [user_id]
  - name: account
    join_keys: [account_id]
sources:
  - name: events
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: value, type: Int64}
      - {name: label, type: String}
  - name: alt_events
    schema:
      - {name: account_id, type: Int64}
      - {name: event_time, type: Timestamp}
      - {name: score, type: Float64}
feature_views:
  - name: latest_value
    source: events
    entities: [user]
    timestamp_field: ts
    ttl: 1h
    feature_start_time: 2024-01-01T03:30:00Z
    features:
      - attribute: {name: value}
      - attribute: {name: label}
  - name: value_3h
    source: events
    entities: [user]
    timestamp_field: ts
    ttl: 3h
    features:
      - attribute: {name: value}
  - name: alt_score
    source: alt_events
    entities: [account]
    timestamp_field: event_time
    features:
      - attribute: {name: score}
feature_services:
  - name: user_fs
    features: [latest_value, value_3h]
  - name: account_fs
    features: [alt_score]
`

// TestAggDefaultTTL checks the default serving TTL of aggregate views
// (DESIGN.md: the largest window plus its offset) at ingest, on a source
// with no lifetime window: a record is rejected when it is older than
// every view's TTL, and counted only by the views whose TTL it is within.
func TestAggDefaultTTL(t *testing.T) {
	repo := `workspace: aggttl
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: s
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: x, type: Int64}
feature_views:
  - name: wide
    source: s
    entities: [user]
    timestamp_field: ts
    aggregation_interval: 1h
    features:
      - aggregate: {input: x, function: count, window: {size: 1d, offset: 1h}}
      - aggregate: {input: x, function: sum, window: 3h}
  - name: narrow
    source: s
    entities: [user]
    timestamp_field: ts
    features:
      - aggregate: {input: x, function: count, window: 2h}
feature_services:
  - name: fs
    features: [wide, narrow]
`
	now := time.Date(2024, 5, 1, 12, 30, 0, 0, time.UTC)
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Now: func() time.Time { return now }, NoSync: true,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ApplyWait(context.Background(), "ttl.yaml", []byte(repo))
	require.NoError(t, err)
	ingest := func(ts time.Time) (*engine.IngestResponse, error) {
		return db.Ingest(&engine.IngestRequest{Workspace: "aggttl", Records: map[string][]map[string]any{
			"s": {{"user_id": "u", "ts": ts, "x": 1}}}})
	}
	// wide: TTL 25h (1d + 1h offset); narrow: 2h.
	_, err = ingest(now.Add(-25*time.Hour - 1))
	var re *engine.RecordErrors
	require.True(t, errors.As(err, &re), "a record older than every view's TTL was accepted (err %v)", err)
	resp, err := ingest(now.Add(-25 * time.Hour))
	require.NoError(t, err)
	require.Equal(t, []engine.ViewIngestMetrics{{FeatureView: "wide", Online: 1, Offline: 1}, {FeatureView: "narrow"}}, resp.Metrics)
	resp, err = ingest(now.Add(-2 * time.Hour))
	require.NoError(t, err)
	require.Equal(t, []engine.ViewIngestMetrics{{FeatureView: "wide", Online: 1, Offline: 1}, {FeatureView: "narrow", Online: 1, Offline: 1}}, resp.Metrics)

	vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "aggttl", Service: "fs", JoinKeys: map[string]any{"user_id": "u"}})
	if engine.CodeOf(err) == engine.CodeUnimplemented {
		t.Fatalf("aggregate features not served yet: %v", err)
	}
	require.NoError(t, err)
	// As of 12:30: wide's tiles end at 12:00; its count window is
	// [11:00 the day before, 11:00) and holds 11:30 the day before and
	// 10:30; its sum window [09:00, 12:00) holds 10:30. narrow's window
	// [10:30, 12:30) holds 10:30.
	want := []schema.Value{schema.Int(2), schema.Int(1), schema.Int(1)}
	for i, f := range vec.Features {
		require.True(t, want[i].Equal(f.Value), "%s: got %s, want %s", f.Name, aggFmt(f.Value), aggFmt(want[i]))
	}
}

// TestIngestRejectsUnstorableTimestamps: event times are int64 Unix
// nanoseconds (1677 to 2262). A time outside that span must be rejected,
// not wrapped around into one inside it; likewise an as_of.
func TestIngestRejectsUnstorableTimestamps(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Now: func() time.Time { return now }, NoSync: true,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ApplyWait(context.Background(), "diff.yaml", []byte(timeRepo))
	require.NoError(t, err)

	at := now.Add(-time.Minute)
	wrapped := at.Add(math.MaxInt64).Add(math.MaxInt64).Add(2) // 2^64ns later
	require.Equal(t, at.UnixNano(), wrapped.UnixNano(), "the test's premise: UnixNano wraps")
	for name, ts := range map[string]any{
		"time.Time beyond 2262": wrapped,
		"RFC 3339 beyond 2262":  wrapped.Format(time.RFC3339Nano),
		"zero time.Time":        time.Time{},
	} {
		_, err := db.Ingest(&engine.IngestRequest{Workspace: "diff", Records: map[string][]map[string]any{
			"events": {{"user_id": "wrap", "ts": ts, "value": 1}}}})
		var re *engine.RecordErrors
		require.True(t, errors.As(err, &re), "%s: accepted (err %v)", name, err)
	}
	_, err = db.IngestJSON([]byte(`{"workspace_name":"diff","dry_run":false,"records":{"events":[{"record":`+
		`{"user_id":"wrap","ts":"`+wrapped.Format(time.RFC3339Nano)+`","value":1}}]}}`), nil)
	var re *engine.RecordErrors
	require.True(t, errors.As(err, &re), "IngestJSON accepted a year-2608 timestamp (err %v)", err)

	_, err = db.Ingest(&engine.IngestRequest{Workspace: "diff", Records: map[string][]map[string]any{
		"events": {{"user_id": "wrap", "ts": at, "value": 1}}}})
	require.NoError(t, err)
	vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "diff", Service: "user_fs",
		JoinKeys: map[string]any{"user_id": "wrap"}})
	require.NoError(t, err)
	require.Equal(t, engine.Present, vec.Features[2].Status)
	require.Equal(t, int64(1), vec.Features[2].Value.I, "only the valid record was written")
	// An as_of 2^64ns before a time that sees the record must not wrap.
	_, err = db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "diff", Service: "user_fs",
		JoinKeys: map[string]any{"user_id": "wrap"}, AsOf: now.Add(math.MinInt64).Add(math.MinInt64)})
	require.Error(t, err)
	require.Equal(t, engine.CodeInvalidArgument, engine.CodeOf(err))
}
