package tiles

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// TestMergeEqualsSingleAndNaive is the differential test of every
// function: random events split into random groups, each group Added into
// its own state (some of them round-tripped through their encoding), the
// states merged in a random grouping and order, must give what one state
// fed every event gives, and what the naiveResult model computes.
func TestMergeEqualsSingleAndNaive(t *testing.T) {
	trials := 60
	if testing.Short() {
		trials = 10
	}
	for ai, a := range testAggs() {
		t.Run(aggName(a), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ai), 7))
			for trial := range trials {
				unique := trial%4 != 3
				evs := genWorkload(rng, a.Input, rng.IntN(300), unique)
				single := addAll(a, evs)
				shuffled := append([]aggEvent(nil), evs...)
				rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				requireSameResults(t, a, single, addAll(a, shuffled))
				requireSameResults(t, a, single, mergeRandomly(t, rng, a, evs))
				if unique {
					checkModel(t, a, evs, single)
				}
			}
		})
	}
}

// checkModel compares a state's results with the naiveResult model.
func checkModel(t *testing.T, a Agg, evs []aggEvent, s State) {
	t.Helper()
	if a.Function != FuncMoments && a.Function != FuncMomentsVar {
		checkNaive(t, a, evs, s.Result())
		return
	}
	for _, r := range fusedReaders(a) {
		checkNaive(t, r, evs, r.ResultFrom(s))
	}
}

func addAll(a Agg, evs []aggEvent) State {
	s := a.New()
	for _, e := range evs {
		s.Add(e.v, e.o)
	}
	return s
}

// mergeRandomly splits evs into random groups (some empty), and merges
// their states pairwise in random order until one is left. Like a read,
// it sometimes merges into a Reset accumulator instead.
func mergeRandomly(t *testing.T, rng *rand.Rand, a Agg, evs []aggEvent) State {
	t.Helper()
	states := make([]State, 1+rng.IntN(8))
	for i := range states {
		states[i] = a.New()
	}
	for _, e := range evs {
		states[rng.IntN(len(states))].Add(e.v, e.o)
	}
	for i, s := range states {
		if rng.IntN(3) == 0 {
			d, err := a.Decode(s.AppendBinary(nil))
			require.NoError(t, err)
			states[i] = d
		}
	}
	for len(states) > 1 {
		i, j := rng.IntN(len(states)), rng.IntN(len(states)-1)
		if j >= i {
			j++
		}
		dst := states[i]
		if rng.IntN(4) == 0 && len(evs) > 0 {
			acc := a.New()
			acc.Add(evs[0].v, evs[0].o) // dirty it, then Reset as a read does
			acc.Reset()
			acc.Merge(states[i])
			dst = acc
		}
		dst.Merge(states[j])
		states[i] = dst
		states = append(states[:j], states[j+1:]...)
	}
	return states[0]
}

// TestHLLAccuracy checks approx_count_distinct at cardinalities far past
// the small mode, at several precisions, against 3 standard errors.
func TestHLLAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, p := range []int{4, 8, 12, 16} {
		for _, n := range []int{100, 5000, 100000} {
			a := Agg{Function: "approx_count_distinct", Precision: p, Input: tInt64}
			parts := []State{a.New(), a.New(), a.New()}
			single := a.New()
			var evs []aggEvent
			for i := range n {
				e := aggEvent{v: schema.Int(int64(i)), o: Order{TS: int64(i)}}
				evs = append(evs, e)
				single.Add(e.v, e.o)
				parts[rng.IntN(3)].Add(e.v, e.o)
			}
			parts[1].Merge(parts[2])
			parts[1].Merge(parts[0])
			require.Equal(t, single.Result(), parts[1].Result(), "p=%d n=%d", p, n)
			checkHLL(t, a, single.Result(), naiveResult(a, evs))
		}
	}
}

// TestPercentileAccuracy checks approx_percentile on wide, signed data
// with zeros, at every percentile step, against the exact rank element.
func TestPercentileAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var evs []aggEvent
	for i := range 20000 {
		x := rng.NormFloat64() * rng.ExpFloat64() * 1e3
		if i%50 == 0 {
			x = 0
		}
		evs = append(evs, aggEvent{v: schema.Float(x), o: Order{TS: int64(i)}})
	}
	for _, prec := range []int{0, 1, 1000, 1 << 30} {
		for q := 0.0; q <= 1; q += 0.01 {
			a := Agg{Function: "approx_percentile", Percentile: q, Precision: prec, Input: tFloat64}
			s := addAll(a, evs)
			checkNaive(t, a, evs, s.Result())
		}
	}
}
