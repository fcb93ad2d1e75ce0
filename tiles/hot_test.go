package tiles

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// lossyCache holds at most max entries and forgets at random, on Set and
// on Get: a cache far smaller than any working set.
type lossyCache struct {
	r   *rand.Rand
	max int
	m   map[string][]byte
}

func (c *lossyCache) HasGet(dst, k []byte) ([]byte, bool) {
	v, ok := c.m[string(k)]
	if !ok || c.r.IntN(4) == 0 {
		return dst, false
	}
	return append(dst, v...), true
}

func (c *lossyCache) Set(k, v []byte) {
	if len(c.m) >= c.max {
		for key := range c.m {
			delete(c.m, key)
			break
		}
	}
	if c.r.IntN(3) > 0 {
		c.m[string(k)] = append([]byte(nil), v...)
	}
}

// foreverCache never forgets: the case where a stale entry would be found
// if staleness were not prevented.
type foreverCache map[string][]byte

func (c foreverCache) HasGet(dst, k []byte) ([]byte, bool) {
	v, ok := c[string(k)]
	return append(dst, v...), ok
}

func (c foreverCache) Set(k, v []byte) { c[string(k)] = append([]byte(nil), v...) }

func hotSpec(interval int64) Spec {
	f64 := schema.ScalarType(schema.Float64)
	aggs := []Agg{
		{Function: "count", Input: f64}, {Function: "sum", Input: f64}, {Function: "max", Input: f64},
		{Function: "last_n", N: 3, Input: f64}, {Function: "var_samp", Input: f64},
		{Function: "approx_percentile", Percentile: 0.9, Input: f64}, {Function: "approx_count_distinct", Input: f64},
	}
	spec := Spec{Aggs: aggs, AggInput: make([]int, len(aggs)), Interval: interval, Start: math.MinInt64}
	for ai := range aggs {
		for _, w := range []Window{{Size: Hour}, {Size: Day}, {Size: 3 * Day, Offset: Hour}, {Lifetime: true}} {
			spec.Features = append(spec.Features, Feature{Agg: ai, Window: w})
		}
	}
	return spec
}

// TestHotTierNeverChangesAnswers runs the same random workload (in-order,
// late and very late events interleaved with reads at and before "now")
// against a store without a hot tier and stores whose hot tier forgets at
// random or never forgets: every read must agree. The store without a hot
// tier is checked against a naive model by the engine's differential test.
func TestHotTierNeverChangesAnswers(t *testing.T) {
	for _, interval := range []int64{0, 10 * Minute} {
		r := rand.New(rand.NewPCG(7, uint64(interval)))
		spec := hotSpec(interval)
		plain, err := NewStore(spec, HotTier{})
		require.NoError(t, err)
		caches := map[string]Cache{
			"lossy":     &lossyCache{r: rand.New(rand.NewPCG(1, 2)), max: 8, m: map[string][]byte{}},
			"forever":   foreverCache{},
			"fastcache": fastcache.New(32 << 20),
		}
		hot := map[string]*Store{}
		for name, c := range caches {
			hot[name], err = NewStore(spec, HotTier{Cache: c, ID: 1, MinSpan: 10 * Minute})
			require.NoError(t, err)
		}
		keys := []string{"a", "b", "c"}
		now := int64(1_700_000_000) * 1e9
		want := make([]schema.Value, len(spec.Features))
		got := make([]schema.Value, len(spec.Features))
		steps := 4000
		if testing.Short() {
			steps = 800
		}
		for step := 0; step < steps; step++ {
			now += r.Int64N(2 * Minute)
			key := keys[r.IntN(len(keys))]
			ts := now - r.Int64N(Minute)
			switch r.IntN(10) {
			case 0:
				ts = now - r.Int64N(3*Day) // late, often inside cached ranges
			case 1:
				ts = now - 5*Day - r.Int64N(Day) // very late
			}
			vals := []schema.Value{schema.Float(math.Round(r.NormFloat64()*1000) / 8)}
			o := Order{TS: ts, Seq: uint64(step), Idx: 0}
			plain.Add(key, o, vals)
			for _, s := range hot {
				s.Add(key, o, vals)
			}
			for range 3 {
				at := now + 1
				if r.IntN(3) == 0 {
					at = now - r.Int64N(2*Day)
				}
				rk := keys[r.IntN(len(keys))]
				plain.Read(rk, at, want)
				for name, s := range hot {
					s.Read(rk, at, got)
					for fi := range want {
						sameResult(t, want[fi], got[fi], "%s cache, interval %d, step %d, key %s, feature %d (%s %+v), at %d",
							name, interval, step, rk, fi, spec.Aggs[spec.Features[fi].Agg].Function, spec.Features[fi].Window, at)
					}
				}
			}
		}
	}
}

// sameResult compares exactly, except float results: merging a cached
// body changes the order of compensated additions, so allow 1e-12
// relative.
func sameResult(t *testing.T, want, got schema.Value, msg string, args ...any) {
	t.Helper()
	if want.Kind == schema.Float64 && got.Kind == schema.Float64 {
		d := math.Abs(want.F - got.F)
		require.True(t, d <= 1e-12*math.Max(1, math.Abs(want.F)), append([]any{msg + ": want %v got %v"}, append(args, want.F, got.F)...)...)
		return
	}
	require.True(t, want.Equal(got), append([]any{msg + ": want %+v got %+v"}, append(args, want, got)...)...)
}
