package tiles

import (
	"math"
	"testing"

	"github.com/featurelog/featurelog/schema"
)

// aggIngestSpecs returns the specs of the three views of bench's
// agg-ingest (bench/agg_workload.go): count, sum, mean over 1h, 24h, 7d;
// min, max over 1h, 24h; count, sum over 30d; all of one Float64 input.
func aggIngestSpecs() []Spec {
	f64 := schema.ScalarType(schema.Float64)
	view := func(fns []string, windows []int64) Spec {
		s := Spec{Start: math.MinInt64}
		for _, fn := range fns {
			s.Aggs = append(s.Aggs, Agg{Function: fn, Input: f64})
			s.AggInput = append(s.AggInput, 0)
		}
		for _, w := range windows {
			for ai := range fns {
				s.Features = append(s.Features, Feature{Agg: ai, Window: Window{Size: w}})
			}
		}
		return s
	}
	return []Spec{
		view([]string{"count", "sum", "mean"}, []int64{Hour, Day, 7 * Day}),
		view([]string{"min", "max"}, []int64{Hour, Day}),
		view([]string{"count", "sum"}, []int64{30 * Day}),
	}
}

// BenchmarkGroupIngest adds records to the three views of agg-ingest in
// one KeyGroup, as engine.Ingest does: 64,000 keys taking a record each
// in turn, values cut from a slab per 1,000 records (one value for the
// three views, which project alike: engine's sameProjections), and a
// fresh group
// (a flushed memtable) every 1,000,000 records. One op is one record
// added to all three views.
func BenchmarkGroupIngest(b *testing.B) {
	const keys, batch, flush = 64_000, 1000, 1_000_000
	specs := aggIngestSpecs()
	names := make([]string, keys)
	for i := range names {
		names[i] = "user-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676%26)) + string(rune('a'+i/17576))
	}
	t0 := int64(1_700_000_000) * 1e9
	var g *KeyGroup
	var stores []*Store
	fresh := func() {
		g = NewKeyGroup(len(specs))
		stores = stores[:0]
		for _, sp := range specs {
			s, err := g.NewStore(sp, HotTier{})
			if err != nil {
				b.Fatal(err)
			}
			stores = append(stores, s)
		}
	}
	fresh()
	var slab []schema.Value
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%flush == 0 && i > 0 {
			fresh()
		}
		if len(slab) == 0 {
			slab = make([]schema.Value, batch)
		}
		k := i % keys
		o := Order{TS: t0 - int64(k%batch)*Second/batch, Seq: uint64(i / batch), Idx: uint32(i % batch)}
		vals := slab[:1:1]
		slab = slab[1:]
		vals[0] = schema.Float(float64(1 + i%100))
		r := g.Lock(names[k])
		for _, s := range stores {
			s.AddLocked(r, o, vals)
		}
		g.Unlock(r)
		i++
	}
}
