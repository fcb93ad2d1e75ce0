package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

type sliceSpine struct {
	cols []string
	rows [][]any
	i    int
}

func (s *sliceSpine) Columns() []string { return s.cols }
func (s *sliceSpine) Next() ([]any, error) {
	if s.i >= len(s.rows) {
		return nil, io.EOF
	}
	s.i++
	return s.rows[s.i-1], nil
}

type collect struct {
	cols []engine.HistoricalColumn
	lead [][]any
	vals [][]schema.Value
}

func (c *collect) Begin(cols []engine.HistoricalColumn) error { c.cols = cols; return nil }
func (c *collect) Row(lead []any, f []schema.Value) error {
	c.lead = append(c.lead, append([]any(nil), lead...))
	c.vals = append(c.vals, append([]schema.Value(nil), f...))
	return nil
}

func TestHistoricalSmoke(t *testing.T) {
	src, err := os.ReadFile("../examples/ads/features.yaml")
	require.NoError(t, err)
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Now: func() time.Time { return now }, NoSync: true,
		DisableAutoFlush: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ApplyWait(context.Background(), "features.yaml", src)
	require.NoError(t, err)
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 300; i++ {
		u := fmt.Sprintf("u%d", r.Intn(5))
		ts := t0.Add(-time.Duration(r.Int63n(int64(30 * time.Hour))))
		_, err := db.Ingest(&engine.IngestRequest{Workspace: "ads", Records: map[string][]map[string]any{
			"impressions_event_source": {{"user_id": u, "timestamp": ts, "clicked": r.Intn(2)}}}})
		require.NoError(t, err)
		if i%100 == 50 {
			require.NoError(t, db.Flush())
		}
	}
	sp := &sliceSpine{cols: []string{"user_id", "ts", "label"}}
	for i := 0; i < 200; i++ {
		ts := t0.Add(-time.Duration(r.Int63n(int64(40 * time.Hour))))
		sp.rows = append(sp.rows, []any{fmt.Sprintf("u%d", r.Intn(6)), ts.Format(time.RFC3339Nano), i})
	}
	for _, fromSource := range []bool{false, true} {
		sp.i = 0
		var c collect
		err = db.GetFeaturesForEvents(context.Background(), &engine.HistoricalRequest{Workspace: "ads",
			Service: "ad_ctr_feature_service_v2", FromSource: fromSource}, sp, &c)
		require.NoError(t, err)
		require.Len(t, c.vals, len(sp.rows))
		for i, row := range sp.rows {
			ts, _ := time.Parse(time.RFC3339Nano, row[1].(string))
			vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2",
				JoinKeys: map[string]any{"user_id": row[0]}, AsOf: ts})
			require.NoError(t, err)
			for k, f := range vec.Features {
				require.True(t, f.Value.Equal(c.vals[i][k]), "from_source=%v row %d %s: %v vs %v", fromSource, i, f.Name, f.Value, c.vals[i][k])
			}
		}
	}
	var rc collect
	err = db.GetFeaturesForRange(context.Background(), &engine.HistoricalRequest{Workspace: "ads",
		Service: "ad_ctr_feature_service_v2", Start: t0.Add(-48 * time.Hour), End: t0}, &rc)
	require.NoError(t, err)
	t.Logf("%d range rows", len(rc.vals))
	for i, lead := range rc.lead {
		from, to := lead[1].(time.Time), lead[2].(time.Time)
		for _, at := range []time.Time{from, to.Add(-1), from.Add(to.Sub(from) / 2)} {
			vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2",
				JoinKeys: map[string]any{"user_id": lead[0].(schema.Value).S}, AsOf: at})
			require.NoError(t, err)
			for k, f := range vec.Features {
				require.True(t, f.Value.Equal(rc.vals[i][k]), "range row %d at %v %s", i, at, f.Name)
			}
		}
	}
}
