package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
)

// TestSplitSpineIsGetFeaturesForEvents: SplitSpine, which cluster mode
// runs on a node's catalog to split a join by partition, fails exactly
// where and as GetFeaturesForEvents fails on the same spine (same code,
// same message naming the same row, in whichever chunk), finds the same
// time column, gives the columns the sink gets, and returns each row's
// partition key as ServiceKey does. PlanRange likewise for range mode.
func TestSplitSpineIsGetFeaturesForEvents(t *testing.T) {
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	src, err := os.ReadFile("../examples/ads/features.yaml")
	require.NoError(t, err)
	_, err = db.ApplyWait(context.Background(), "features.yaml", src)
	require.NoError(t, err)
	ctx := context.Background()
	const svc = "ad_ctr_feature_service_v2"
	r := rand.New(rand.NewSource(3))
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	bad := []func(row []any){
		func(row []any) { row[0] = nil },
		func(row []any) { row[0] = engine.Number("7") },
		func(row []any) { row[0] = true },
		func(row []any) { row[1] = nil },
		func(row []any) { row[1] = "not a time" },
		func(row []any) { row[1] = "9999-12-31T23:59:59Z" },
		func(row []any) { row[2] = at.Format(time.RFC3339) }, // a second time column, when found
	}
	for i := range 60 {
		n := r.Intn(30)
		cols := []string{"user_id", "ts", "label"}
		if i%10 == 9 {
			cols = []string{"ts", "label"} // no join key
		}
		var rows [][]any
		for range n {
			row := []any{fmt.Sprintf("u%d", r.Intn(9)), at.Add(-time.Duration(r.Intn(1000)) * time.Minute).Format(time.RFC3339Nano), engine.Number("1")}
			rows = append(rows, row[:len(cols)])
		}
		if n > 0 && i%3 != 0 {
			bad[r.Intn(len(bad))](rows[r.Intn(n)])
		}
		tsKey := ""
		if i%2 == 0 {
			tsKey = "ts"
		}
		req := &engine.HistoricalRequest{Workspace: "ads", Service: svc, TimestampKey: tsKey, ChunkRows: 5}
		var sinkCols []engine.HistoricalColumn
		sink := &histSink{}
		want := db.GetFeaturesForEvents(ctx, req, &histSpine{cols: cols, rows: rows}, sink)
		sinkCols = sink.cols

		var got error
		var keys []string
		split, got := db.SplitSpine(req, &histSpine{cols: cols, rows: rows})
		for got == nil {
			var k []string
			_, k, got = split.Next(ctx)
			keys = append(keys, k...)
		}
		if errors.Is(got, io.EOF) {
			got = nil
		}
		if want != nil || got != nil {
			require.Error(t, got, "spine %d: GetFeaturesForEvents failed with %v", i, want)
			require.Error(t, want, "spine %d: SplitSpine failed with %v", i, got)
			require.Equal(t, want.Error(), got.Error(), "spine %d", i)
			require.Equal(t, engine.CodeOf(want), engine.CodeOf(got), "spine %d", i)
			var wse, gse *engine.SpineError
			require.Equal(t, errors.As(want, &wse), errors.As(got, &gse), "spine %d", i)
			if wse != nil {
				require.Equal(t, wse.Row, gse.Row, "spine %d", i)
			}
			continue
		}
		require.Equal(t, sinkCols, split.Columns(), "spine %d", i)
		if n > 0 {
			require.Equal(t, "ts", split.TimestampKey(), "spine %d", i)
		}
		require.Len(t, keys, n)
		for k, row := range rows {
			key, err := db.ServiceKey("ads", svc, map[string]any{"user_id": row[0]})
			require.NoError(t, err)
			require.Equal(t, string(key), keys[k], "spine %d row %d", i, k)
		}
	}

	for i, ents := range [][]map[string]any{
		nil,
		{},
		{{"user_id": "u1"}, {"user_id": "u2"}, {"user_id": "u1"}},
		{{"user_id": "u1"}, {"user_id": "u2", "x": "1"}},
		{{"user_id": "u1"}, {}},
		{{"user_id": true}},
	} {
		for _, end := range []time.Time{at, at.Add(-2 * time.Hour)} {
			req := &engine.HistoricalRequest{Workspace: "ads", Service: svc, Start: at.Add(-time.Hour), End: end, Entities: ents}
			sink := &histSink{}
			want := db.GetFeaturesForRange(ctx, req, sink)
			plan, got := db.PlanRange(req)
			if want != nil || got != nil {
				require.Error(t, got, "entities %d: %v", i, want)
				require.Error(t, want, "entities %d: %v", i, got)
				require.Equal(t, want.Error(), got.Error(), "entities %d", i)
				continue
			}
			require.Equal(t, sink.cols, plan.Columns, "entities %d", i)
			require.Equal(t, ents == nil, plan.Keys == nil)
			for k, e := range ents {
				key, err := db.ServiceKey("ads", svc, e)
				require.NoError(t, err)
				require.Equal(t, string(key), plan.Keys[k])
				k2, err := plan.EntityKey(e)
				require.NoError(t, err)
				require.Equal(t, string(key), k2)
			}
		}
	}
}
