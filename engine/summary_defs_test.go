package engine

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

const defsRepo = `workspace: defs
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: s
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: x, type: Int64}
      - {name: cat, type: String}
feature_views:
  - name: agg
    source: s
    entities: [user]
    timestamp_field: ts
    transform:
      columns:
        y: "x * 2"
        b: "y + 1"
      filter: "x >= 0"
    features:
      - aggregate: {input: x, function: count, window: 1h}
      - aggregate: {input: cat, function: last_distinct_n, n: 3, window: {size: 1h, offset: 30m}}
      - aggregate: {input: x, function: approx_percentile, percentile: 0.9, window: lifetime}
      - aggregate: {input: cat, function: approx_count_distinct, window: 1d}
      - aggregate: {input: y, function: sum, window: 2h, name: ysum}
  - name: attr
    source: s
    entities: [user]
    timestamp_field: ts
    features:
      - attribute: {name: x}
`

// TestSummaryDefinitions: a view's summary gives its transform and
// features as the repo file declares them, its version, and the storage
// the Collector reports for it.
func TestSummaryDefinitions(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db, err := Open(Options{Dir: t.TempDir(), Now: func() time.Time { return t0 }, NoSync: true, DisableAutoFlush: true,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ApplyWait(context.Background(), "defs.yaml", []byte(defsRepo))
	require.NoError(t, err)

	agg, err := db.FeatureViewSummary("defs", "agg")
	require.NoError(t, err)
	assert.Equal(t, &TransformDefinition{Columns: []TransformColumnDefinition{{"y", "x * 2"}, {"b", "y + 1"}}, Filter: "x >= 0"}, agg.Transform)
	i64 := schema.Type{Kind: schema.Int64}
	p90 := 0.9
	assert.Equal(t, []FeatureDefinition{
		{Name: "x_count_1h_continuous", Type: i64, Function: "count", Column: "x", Window: "1h"},
		{Name: "cat_last_distinct_3_1h_offset_30m_continuous", Type: schema.Type{Kind: schema.Array, Elem: schema.String},
			Function: "last_distinct_n", Column: "cat", Window: "1h", Offset: "30m", N: 3},
		{Name: "x_approx_percentile_p90_lifetime_continuous", Type: schema.Type{Kind: schema.Float64},
			Function: "approx_percentile", Column: "x", Window: "lifetime", Percentile: &p90, Precision: 100},
		{Name: "cat_approx_count_distinct_1d_continuous", Type: i64, Function: "approx_count_distinct", Column: "cat", Window: "1d", Precision: 8},
		{Name: "ysum", Type: i64, Function: "sum", Column: "y", Window: "2h"},
	}, agg.FeatureDefinitions)
	assert.Equal(t, []VersionInfo{{Version: 1, CreatedAt: t0, Serving: true}}, agg.Versions)
	assert.Equal(t, ViewStorage{}, agg.Storage)

	attr, err := db.FeatureViewSummary("defs", "attr")
	require.NoError(t, err)
	assert.Nil(t, attr.Transform)
	assert.Equal(t, []FeatureDefinition{{Name: "x", Type: i64, Column: "x"}}, attr.FeatureDefinitions)

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(db.Collector()))
	ingest := func(k int) {
		recs := make([]map[string]any, k)
		for i := range recs {
			recs[i] = map[string]any{"user_id": "u", "ts": t0.Add(-time.Minute), "x": i, "cat": "c"}
		}
		_, err := db.Ingest(&IngestRequest{Workspace: "defs", Records: map[string][]map[string]any{"s": recs}})
		require.NoError(t, err)
	}
	check := func(when string) ViewStorage {
		t.Helper()
		m := scrape(t, reg)
		for _, view := range []string{"agg", "attr"} {
			s, err := db.FeatureViewSummary("defs", view)
			require.NoError(t, err)
			l := `{view="` + view + `",workspace="defs"}`
			assert.Equal(t, ViewStorage{Segments: int(m["featurelog_segments"+l]), SegmentBytes: int64(m["featurelog_segment_bytes"+l]),
				MemtableRecords: int64(m["featurelog_memtable_records"+l]), MemtableBytes: int64(m["featurelog_memtable_bytes"+l])},
				s.Storage, "%s: %s: the summary's storage is the Collector's", when, view)
		}
		s, err := db.FeatureViewSummary("defs", "attr")
		require.NoError(t, err)
		return s.Storage
	}
	ingest(4)
	st := check("after ingest")
	assert.Equal(t, int64(4), st.MemtableRecords)
	assert.Positive(t, st.MemtableBytes)
	require.NoError(t, db.Flush())
	st = check("after a flush")
	assert.Equal(t, 1, st.Segments)
	assert.Positive(t, st.SegmentBytes)
	assert.Zero(t, st.MemtableRecords)
}
