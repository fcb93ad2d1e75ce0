//go:build unix

package main

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/bench"
)

// TestBenchPITJoinAgreesWithModel runs the pitjoin workload as `featurelog
// bench pitjoin` does (files generated, events loaded over HTTP into a
// `featurelog serve` child in random time order, `featurelog historical`
// in a fresh child with the parquet spine) at a small size, for every key
// distribution, and checks every output value against a naive model
// that scans the events file: count and sum over [T−W, T), and the
// latest amount before T. bench/peers checks the same against DuckDB.
func TestBenchPITJoinAgreesWithModel(t *testing.T) {
	t.Setenv(serveChildEnv, "1")
	argv := []string{os.Args[0], "-test.run=^TestServeChild$", "--"}
	for _, dist := range []string{bench.DistUniform, bench.DistZipf, bench.DistHot} {
		t.Run(dist, func(t *testing.T) {
			cfg := bench.PITJoinConfig{Featurelog: argv, CacheDir: t.TempDir(), Events: 20_000, Keys: 500,
				SpineRows: 3_000, Span: 2 * 24 * time.Hour, Dist: dist}
			rows, data, joins, err := bench.RunPITJoin(cfg)
			require.NoError(t, err)
			require.Len(t, joins, 1)
			require.Len(t, rows, 3)
			require.Equal(t, 20_000, data.Load.Events)
			require.Positive(t, joins[0].PeakRSS)

			evs := readParquet[pitTestEvent](t, data.Events)
			spine := readParquet[pitTestSpine](t, data.Spine)
			out := readParquet[pitTestOut](t, joins[0].Out)
			require.Len(t, evs, 20_000)
			require.Len(t, out, len(spine))
			byUser := map[string][]pitTestEvent{}
			for _, e := range evs {
				byUser[e.User] = append(byUser[e.User], e)
			}
			for _, es := range byUser {
				sort.Slice(es, func(i, j int) bool { return es[i].TS < es[j].TS })
			}
			var nonEmpty int
			for i, s := range spine {
				o := out[i]
				require.Equal(t, s.RowID, o.RowID, "output row %d", i)
				want := pitModel(byUser[s.User], s.TS)
				require.Equal(t, want, o.values(), "spine row %d (user %s at %d)", s.RowID, s.User, s.TS)
				if want.c24h > 0 {
					nonEmpty++
				}
			}
			require.Positive(t, nonEmpty, "every 24h window was empty: the check compared nothing")
		})
	}
}

type pitTestEvent struct {
	User   string  `parquet:"user_id"`
	TS     int64   `parquet:"ts,timestamp(microsecond)"`
	Amount float64 `parquet:"amount"`
}

type pitTestSpine struct {
	RowID int64  `parquet:"row_id"`
	User  string `parquet:"user_id"`
	TS    int64  `parquet:"ts,timestamp(microsecond)"`
}

type pitTestOut struct {
	RowID int64    `parquet:"row_id"`
	C1h   *int64   `parquet:"user_amounts.amount_count_1h_continuous,optional"`
	S1h   *float64 `parquet:"user_amounts.amount_sum_1h_continuous,optional"`
	C24h  *int64   `parquet:"user_amounts.amount_count_1d_continuous,optional"`
	S24h  *float64 `parquet:"user_amounts.amount_sum_1d_continuous,optional"`
	Last  *float64 `parquet:"user_last.amount,optional"`
}

// pitValues is one output row; a nil pointer is a null.
type pitValues struct {
	c1h, c24h      int64
	s1h, s24h, lst *float64
}

func (o pitTestOut) values() pitValues {
	v := pitValues{s1h: o.S1h, s24h: o.S24h, lst: o.Last}
	if o.C1h != nil {
		v.c1h = *o.C1h
	} else {
		v.c1h = -1 // counts are never null
	}
	if o.C24h != nil {
		v.c24h = *o.C24h
	} else {
		v.c24h = -1
	}
	return v
}

// pitModel computes a row's values from the user's events sorted by time
// (microseconds): windows [t−W, t), the latest amount strictly before t.
func pitModel(es []pitTestEvent, t int64) pitValues {
	var v pitValues
	add := func(c *int64, s **float64, x float64) {
		*c++
		if *s == nil {
			*s = new(float64)
		}
		**s += x
	}
	for _, e := range es {
		if e.TS >= t {
			break
		}
		if e.TS >= t-int64(time.Hour/time.Microsecond) {
			add(&v.c1h, &v.s1h, e.Amount)
		}
		if e.TS >= t-int64(24*time.Hour/time.Microsecond) {
			add(&v.c24h, &v.s24h, e.Amount)
		}
		a := e.Amount
		v.lst = &a
	}
	return v
}

func readParquet[T any](t *testing.T, path string) []T {
	t.Helper()
	f, err := os.Open(filepath.Clean(path))
	require.NoError(t, err)
	defer f.Close()
	r := parquet.NewGenericReader[T](f)
	defer r.Close()
	rows := make([]T, r.NumRows())
	n, err := r.Read(rows)
	if n < len(rows) {
		require.NoError(t, err)
	}
	require.Equal(t, len(rows), n)
	return rows
}
