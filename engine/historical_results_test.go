package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// TestResultsRoundTrip: every value a join can produce reads back from
// the compact result columns exactly as it was set, whatever the
// column's declared type; values of one field are stored in 8 bytes.
func TestResultsRoundTrip(t *testing.T) {
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
		res := newResults(len(vals), []schema.Type{typ})
		c := &res.cols[0]
		for i, v := range vals {
			c.set(i, v)
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
	res := newResults(3, []schema.Type{schema.ScalarType(schema.Float64)})
	res.cols[0].set(0, schema.Float(1))
	res.cols[0].set(1, schema.Int(2))
	res.cols[0].set(2, schema.Time(time.Unix(3, 0)))
	require.Nil(t, res.cols[0].other)
}

// TestResultsConcurrentOther: two workers filling one numeric column may
// both meet values kept whole (the column's other values are allocated on
// first use). Run with -race.
func TestResultsConcurrentOther(t *testing.T) {
	const n = 1000
	res := newResults(2*n, []schema.Type{schema.ScalarType(schema.Int64)})
	odd := schema.Value{Kind: schema.Int64, I: 1, S: "x"}
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * n; i < (w+1)*n; i++ {
				if i%2 == 0 {
					res.cols[0].set(i, odd)
				} else {
					res.cols[0].set(i, schema.Int(int64(i)))
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
		require.Equal(t, want, res.cols[0].get(i))
	}
}

// TestSortRows: the rows come out in (key, time) order for keys that
// share long prefixes, differ past 8 bytes, are prefixes of each other,
// hold zero bytes or are empty, on one core and on two.
func TestSortRows(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 5))
	alphabet := []string{"", "\x00", "a", "b", "user-", "user-1", "user-12345678", "user-123456789", "\xff"}
	for _, n := range []int{0, 1, 50, 1 << 15} {
		keys := make([]string, n)
		ts := make([]int64, n)
		for i := range keys {
			var k strings.Builder
			for range r.IntN(4) {
				k.WriteString(alphabet[r.IntN(len(alphabet))])
			}
			if r.IntN(3) == 0 {
				k.WriteString("common-prefix-")
				k.WriteString(fmt.Sprint(r.IntN(500)))
			}
			keys[i], ts[i] = k.String(), r.Int64N(5)-2
		}
		if n > 0 && r.IntN(2) == 0 { // every key with one long prefix
			for i := range keys {
				keys[i] = "tenant-0000-" + keys[i]
			}
		}
		o := sortRows(keys, ts)
		require.Len(t, o.rows, n)
		require.Len(t, o.first, n)
		require.Len(t, o.ts, n)
		seen := make([]bool, n)
		for i, row := range o.rows {
			require.Equal(t, ts[row], o.ts[i], "row %d: time", i)
			require.False(t, seen[row], "row %d twice", row)
			seen[row] = true
			if i == 0 {
				require.True(t, o.first[i], "the first row does not start a key")
				continue
			}
			p := o.rows[i-1]
			require.Equal(t, keys[p] != keys[row], o.first[i], "row %d (%q after %q): first", i, keys[row], keys[p])
			c := strings.Compare(keys[p], keys[row])
			require.True(t, c < 0 || (c == 0 && ts[p] <= ts[row]), "rows %d (%q, %d) and %d (%q, %d) out of order", p, keys[p], ts[p], row, keys[row], ts[row])
		}
	}
}
