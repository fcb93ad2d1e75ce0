package tiles

import (
	"fmt"
	"math"
	"testing"

	"github.com/featurelog/featurelog/schema"
)

// benchStore returns a store of hotSpec(interval) holding one key "k"
// with the n events of storeBenchEvents, and the time after the last.
func benchStore(b testing.TB, interval int64, n int) (*Store, int64) {
	s, err := NewStore(hotSpec(interval), HotTier{})
	if err != nil {
		b.Fatal(err)
	}
	evs, end := storeBenchEvents(n)
	for _, e := range evs {
		s.Add("k", e.o, e.vals)
	}
	return s, end
}

// storeBenchEvents returns n events one per 10 seconds, and the time
// after the last.
func storeBenchEvents(n int) (evs []ksEvent, end int64) {
	t0 := int64(1_700_000_000) * 1e9
	rng := newRand(1)
	for i := range n {
		v := schema.Float(math.Round(rng.NormFloat64()*1000) / 8)
		evs = append(evs, ksEvent{key: "k", o: Order{TS: t0 + int64(i)*10*Second, Seq: uint64(i)}, vals: []schema.Value{v}})
	}
	return evs, t0 + int64(n)*10*Second
}

// BenchmarkStoreRead reads every feature of hotSpec for one key, without
// a hot tier: a small key (raw events only) and a tiled one.
func BenchmarkStoreRead(b *testing.B) {
	for _, interval := range []int64{0, 10 * Minute} {
		for _, n := range []int{20, 10000} {
			b.Run(fmt.Sprintf("interval=%s/events=%d", intervalName(interval), n), func(b *testing.B) {
				s, end := benchStore(b, interval, n)
				out := make([]schema.Value, len(s.spec.Features))
				b.ReportAllocs()
				i := int64(0)
				for b.Loop() {
					s.Read("k", end-int64(i%100)*7*Second, out)
					i++
				}
			})
		}
	}
}

func intervalName(ns int64) string {
	if ns == 0 {
		return "continuous"
	}
	return fmt.Sprint(ns/Minute, "m")
}
