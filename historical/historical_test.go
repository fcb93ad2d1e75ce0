package historical

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// TestChunkRoundTrip: every value a join can produce reads back from
// the compact result columns exactly as it was set, whatever the
// column's declared type; values of one field are stored in 8 bytes.
func TestChunkRoundTrip(t *testing.T) {
	vals := []schema.Value{
		{},
		schema.Int(0), schema.Int(-7), schema.Int(math.MaxInt64), schema.Int(math.MinInt64),
		schema.Int32Val(-3),
		schema.Float(0), schema.Float(math.Copysign(0, -1)), schema.Float(2.5), schema.Float(math.NaN()),
		schema.Float(math.Inf(-1)), schema.Float32Val(1.5),
		schema.BoolVal(true), schema.BoolVal(false),
		schema.Time(time.Date(2025, 6, 1, 0, 0, 0, 1, time.UTC)), schema.TimeNanos(math.MinInt64),
		schema.Str(""), schema.Str("héllo"),
		schema.ArrayVal(nil), schema.ArrayVal([]schema.Value{schema.Int(1), schema.Str("x")}),
		{Kind: schema.Int64, I: 3, F: 1.5},            // not canonical: kept whole
		{Kind: schema.Float64, F: 1, I: 9},            // not canonical
		{Kind: schema.Null, I: 1},                     // not canonical
		{Kind: schema.Int64, S: "also set"},           // not canonical
		{Kind: schema.Int64, F: math.Copysign(0, -1)}, // -0 in F is not 0 bits
	}
	for _, typ := range []schema.Type{schema.ScalarType(schema.Float64), schema.ScalarType(schema.String), schema.ArrayOf(schema.Int64)} {
		res := MakeChunk(len(vals), []schema.Type{typ})
		for i, v := range vals {
			res.Set(i, 0, v)
		}
		got := make([]schema.Value, 1)
		for i, v := range vals {
			res.row(i, got)
			require.Equal(t, v.Kind, got[0].Kind, "value %d %#v in a %s column", i, v, typ)
			if v.Kind == schema.Float64 && math.IsNaN(v.F) {
				require.True(t, math.IsNaN(got[0].F))
				continue
			}
			require.Equal(t, math.Float64bits(v.F), math.Float64bits(got[0].F), "value %d %#v", i, v)
			require.Equal(t, v, got[0], "value %d in a %s column", i, typ)
		}
	}
	// Numbers take no room beside their kind and 8 bytes.
	res := MakeChunk(3, []schema.Type{schema.ScalarType(schema.Float64)})
	res.Set(0, 0, schema.Float(1))
	res.Set(1, 0, schema.Int(2))
	res.Set(2, 0, schema.Time(time.Unix(3, 0)))
	require.Nil(t, res.cols[0].other)
}

// TestChunkConcurrentOther: two workers filling one numeric column may
// both meet values kept whole (the column's other values are allocated on
// first use). Run with -race.
func TestChunkConcurrentOther(t *testing.T) {
	const n = 1000
	res := MakeChunk(2*n, []schema.Type{schema.ScalarType(schema.Int64)})
	odd := schema.Value{Kind: schema.Int64, I: 1, S: "x"}
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * n; i < (w+1)*n; i++ {
				if i%2 == 0 {
					res.Set(i, 0, odd)
				} else {
					res.Set(i, 0, schema.Int(int64(i)))
				}
			}
		}()
	}
	wg.Wait()
	for i := range 2 * n {
		want := schema.Int(int64(i))
		if i%2 == 0 {
			want = odd
		}
		require.Equal(t, want, res.Feature(i, 0))
	}
}
