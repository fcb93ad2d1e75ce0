package tiles

import (
	"testing"

	"github.com/featurelog/featurelog/schema"
)

// benchAggs are the aggregators the micro benchmarks cover: every
// function over Int64 and Float64, the n-functions and
// approx_count_distinct also over String, and the fused states.
func benchAggs() []Agg {
	var out []Agg
	for _, in := range []schema.Type{tInt64, tFloat64} {
		for _, f := range []string{"count", "sum", "min", "max", "mean", "var_samp", "last", FuncMoments, FuncMomentsVar} {
			out = append(out, Agg{Function: f, Input: in})
		}
		out = append(out, Agg{Function: "approx_percentile", Percentile: 0.95, Input: in})
	}
	for _, in := range []schema.Type{tInt64, tString} {
		for _, f := range []string{"last_n", "first_n", "last_distinct_n", "first_distinct_n"} {
			out = append(out, Agg{Function: f, N: 10, Input: in}, Agg{Function: f, N: 100, Input: in})
		}
		out = append(out, Agg{Function: "approx_count_distinct", Input: in},
			Agg{Function: "approx_count_distinct", Precision: 14, Input: in})
	}
	return out
}

// benchEvents returns 1024 events in time order with values from a
// domain of 200 (so distinct states see repeats and churn).
func benchEvents(in schema.Type) []aggEvent {
	rng := newRand(42)
	evs := make([]aggEvent, 1024)
	for i := range evs {
		evs[i] = aggEvent{v: genValue(rng, in, 200), o: Order{TS: int64(i) * 1e9, Seq: uint64(i)}}
	}
	return evs
}

// BenchmarkAdd adds in-order events to one state (a tile being built).
func BenchmarkAdd(b *testing.B) {
	for _, a := range benchAggs() {
		b.Run(aggName(a), func(b *testing.B) {
			evs := benchEvents(a.Input)
			s := a.New()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e := &evs[i&1023]
				s.Add(e.v, Order{TS: int64(i), Seq: uint64(i)})
				i++
			}
		})
	}
}

// BenchmarkMerge merges a tile of 100 events into an accumulator, as a
// read does per tile.
func BenchmarkMerge(b *testing.B) {
	for _, a := range benchAggs() {
		b.Run(aggName(a), func(b *testing.B) {
			tile := addAll(a, benchEvents(a.Input)[:100])
			acc := a.New()
			acc.Merge(tile)
			b.ReportAllocs()
			for b.Loop() {
				acc.Merge(tile)
			}
		})
	}
}

// BenchmarkResult finalizes a state of 1024 events.
func BenchmarkResult(b *testing.B) {
	for _, a := range benchAggs() {
		b.Run(aggName(a), func(b *testing.B) {
			s := addAll(a, benchEvents(a.Input))
			b.ReportAllocs()
			for b.Loop() {
				_ = s.Result()
			}
		})
	}
}
