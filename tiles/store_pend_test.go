package tiles

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// pendWorkload is hot keys whose events arrive in random time order (the
// case pending events exist for), a key in time order with a few late
// events, and small keys, interleaved at random, in arrival order.
func pendWorkload(rng *rand.Rand, hot int) []ksEvent {
	start := int64(1_700_000_000) * 1e9
	type keyGen struct {
		name string
		left int
		late int // one in late events is late; 0: every event at a random time
		now  int64
	}
	gens := []*keyGen{{name: "ordered", left: 600, late: 15, now: start}, {name: "small", left: 20}}
	for i := range hot {
		gens = append(gens, &keyGen{name: fmt.Sprintf("hot-%d", i), left: 500 + rng.IntN(2500)})
	}
	var out []ksEvent
	seq := uint64(1)
	for len(gens) > 0 {
		gi := rng.IntN(len(gens))
		g := gens[gi]
		var ts int64
		if g.late == 0 {
			ts = start + rng.Int64N(3*Day)
		} else {
			g.now += rng.Int64N(30 * Second)
			ts = g.now
			if rng.IntN(g.late) == 0 {
				ts -= rng.Int64N(Day)
			}
		}
		e := ksEvent{key: g.name, o: Order{TS: ts, Seq: seq}, vals: make([]schema.Value, ksWidth)}
		for c, t := range ksTypes {
			if rng.IntN(9) != 0 {
				e.vals[c] = genValue(rng, t, 50)
			}
		}
		out = append(out, e)
		if rng.IntN(3) != 0 {
			seq++
		}
		if g.left--; g.left == 0 {
			gens[gi] = gens[len(gens)-1]
			gens = gens[:len(gens)-1]
		}
	}
	return fixIdx(out)
}

// TestPendingEqualsInPlace adds out-of-order workloads to a store that
// defers them (pending events, settled in batches and by reads at random
// moments) and to one that settles every event as it comes, as an
// insertion in place does: every read, snapshot and encoding must be the
// same bit for bit, also for float sums, since each tile gets its events
// in arrival order either way.
func TestPendingEqualsInPlace(t *testing.T) {
	for _, interval := range []int64{0, 10 * Minute, Hour} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("%s/seed%d", intervalName(interval), seed), func(t *testing.T) {
				rng := newRand(seed + 70)
				spec := ksSpec(interval)
				lazy, eager := mustStore(t, spec, HotTier{}), mustStore(t, spec, HotTier{})
				eager.settleEach = true
				evs := pendWorkload(rng, 3)
				keys := map[string]bool{}
				for _, e := range evs {
					keys[e.key] = true
				}
				got, want := make([]schema.Value, len(spec.Features)), make([]schema.Value, len(spec.Features))
				compare := func(key string, at int64) {
					t.Helper()
					lazy.Read(key, at, got)
					eager.Read(key, at, want)
					for fi := range want {
						require.True(t, want[fi].Equal(got[fi]), "%s at %d, feature %d: want %+v got %+v", key, at, fi, want[fi], got[fi])
					}
					a, _ := lazy.AppendKeyState(nil, key)
					b, _ := eager.AppendKeyState(nil, key)
					require.Equal(t, b, a, "%s: encodings", key)
				}
				var pending int
				for i, e := range evs {
					lazy.Add(e.key, e.o, e.vals)
					eager.Add(e.key, e.o, e.vals)
					sh := lazy.shard(e.key)
					sh.mu.RLock()
					pending = max(pending, len(sh.keys[e.key].pend))
					sh.mu.RUnlock()
					if rng.IntN(200) == 0 {
						switch rng.IntN(4) {
						case 0:
							compare(e.key, e.o.TS+rng.Int64N(Day))
						case 1:
							require.Equal(t, eager.Own(e.key).MemSize(), lazy.Own(e.key).MemSize(), "%s: Own after event %d", e.key, i)
						case 2:
							if interval == 0 {
								up := Order{TS: math.MaxInt64}
								lazy.ReadLogged(e.key, e.o.TS+1, up, got, true, nil)
								eager.ReadLogged(e.key, e.o.TS+1, up, want, true, nil)
								require.Equal(t, want, got, "%s: ReadLogged after event %d", e.key, i)
							}
						case 3:
							require.Equal(t, eager.KeyCount(), lazy.KeyCount())
							require.Equal(t, eager.Stats(), lazy.Stats())
						}
					}
				}
				require.Positive(t, pending, "the workload left no event pending: it tests nothing")
				for _, at := range []int64{evs[0].o.TS, evs[len(evs)/2].o.TS + Hour, math.MaxInt64} {
					for key := range keys {
						compare(key, at)
					}
				}
				lazy.Freeze()
				for i := range lazy.shards {
					for key, ks := range lazy.shards[i].keys {
						require.Empty(t, ks.pend, "%s: pending after Freeze", key)
					}
				}
				for key := range keys {
					compare(key, math.MaxInt64)
				}
			})
		}
	}
}

// BenchmarkAddOutOfOrder adds a hot key's events in random time order:
// the cost per event must not grow with the key's size.
func BenchmarkAddOutOfOrder(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		for _, interval := range []int64{0, Hour} {
			b.Run(fmt.Sprintf("%s/events=%d", intervalName(interval), n), func(b *testing.B) {
				rng := newRand(1)
				evs := make([]ksEvent, n)
				for i := range evs {
					evs[i] = ksEvent{o: Order{TS: rng.Int64N(30 * Day), Seq: uint64(i + 1)}, vals: []schema.Value{schema.Float(rng.Float64())}}
				}
				spec := Spec{Aggs: []Agg{{Function: "count", Input: tFloat64}, {Function: "sum", Input: tFloat64}}, AggInput: []int{0, 0},
					Features: []Feature{{Agg: 0, Window: Window{Size: Day}}, {Agg: 1, Window: Window{Size: Day}}}, Interval: interval, Start: math.MinInt64}
				b.ReportAllocs()
				for b.Loop() {
					s := mustStore(b, spec, HotTier{})
					for _, e := range evs {
						s.Add("k", e.o, e.vals)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
			})
		}
	}
}
