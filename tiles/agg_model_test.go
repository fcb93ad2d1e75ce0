package tiles

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// A naiveResult, obviously correct model of every function (sort and scan over
// all events), and the random workloads the property tests feed it.

type aggEvent struct {
	v schema.Value
	o Order
}

var (
	tInt64   = schema.ScalarType(schema.Int64)
	tInt32   = schema.ScalarType(schema.Int32)
	tFloat64 = schema.ScalarType(schema.Float64)
	tFloat32 = schema.ScalarType(schema.Float32)
	tString  = schema.ScalarType(schema.String)
	tBool    = schema.ScalarType(schema.Bool)
	tTime    = schema.ScalarType(schema.Timestamp)
	tArray   = schema.ArrayOf(schema.Int64)

	numericTypes = []schema.Type{tInt64, tInt32, tFloat64, tFloat32}
	scalarTypes  = []schema.Type{tInt64, tInt32, tFloat64, tFloat32, tString, tBool, tTime}
	allTypes     = append(slices.Clone(scalarTypes), tArray)
)

// testAggs returns one aggregator per function, input type and parameter
// setting worth testing; moments states are included.
func testAggs() []Agg {
	var out []Agg
	for _, t := range allTypes {
		out = append(out, Agg{Function: "count", Input: t}, Agg{Function: "last", Input: t})
	}
	for _, t := range numericTypes {
		for _, f := range []string{"sum", "min", "max", "mean", "var_samp", "stddev_samp", "var_pop", "stddev_pop", FuncMoments, FuncMomentsVar} {
			out = append(out, Agg{Function: f, Input: t})
		}
		for _, q := range []float64{0, 0.5, 0.95, 1} {
			out = append(out, Agg{Function: "approx_percentile", Percentile: q, Input: t})
		}
		out = append(out, Agg{Function: "approx_percentile", Percentile: 0.9, Precision: 1000, Input: t})
	}
	for _, t := range scalarTypes {
		for _, f := range []string{"last_n", "first_n", "last_distinct_n", "first_distinct_n"} {
			for _, n := range []int{1, 3, 20} {
				out = append(out, Agg{Function: f, N: n, Input: t})
			}
		}
		for _, p := range []int{0, 4, 12} {
			out = append(out, Agg{Function: "approx_count_distinct", Precision: p, Input: t})
		}
	}
	return out
}

func aggName(a Agg) string {
	s := a.Function + "/" + a.Input.String()
	if a.N > 0 {
		s += fmt.Sprintf("/n=%d", a.N)
	}
	if a.Function == "approx_percentile" {
		s += fmt.Sprintf("/q=%v", a.Percentile)
	}
	if a.Precision > 0 {
		s += fmt.Sprintf("/p=%d", a.Precision)
	}
	return s
}

// fusedFns are the functions a moments state answers, with the Agg that
// reads each.
func fusedReaders(m Agg) []Agg {
	fns := []string{"count", "sum", "min", "max", "mean"}
	if m.Function == FuncMomentsVar {
		fns = append(fns, "var_samp", "stddev_samp", "var_pop", "stddev_pop")
	}
	out := make([]Agg, len(fns))
	for i, f := range fns {
		out[i] = Agg{Function: f, Input: m.Input}
	}
	return out
}

// genWorkload returns n random events of type t. Values repeat (for the
// distinct functions), integers sometimes sit near the int64 limits (for
// overflow), and event times tie often. With uniqueOrders every Order is
// distinct, as the engine's are; otherwise some repeat, which only the
// merge-order tests use.
func genWorkload(rng *rand.Rand, t schema.Type, n int, uniqueOrders bool) []aggEvent {
	dom := 1 + rng.IntN(60)
	seen := map[Order]bool{}
	evs := make([]aggEvent, 0, n)
	for len(evs) < n {
		o := Order{TS: rng.Int64N(40) - 20, Seq: rng.Uint64N(8), Idx: uint32(rng.IntN(4))}
		if uniqueOrders && seen[o] {
			continue
		}
		seen[o] = true
		evs = append(evs, aggEvent{v: genValue(rng, t, dom), o: o})
	}
	return evs
}

func genValue(rng *rand.Rand, t schema.Type, dom int) schema.Value {
	switch t.Kind {
	case schema.Int64:
		if rng.IntN(10) == 0 { // near the limits: sums overflow int64
			if rng.IntN(2) == 0 {
				return schema.Int(math.MaxInt64 - rng.Int64N(1000))
			}
			return schema.Int(math.MinInt64 + rng.Int64N(1000))
		}
		return schema.Int(rng.Int64N(int64(dom)) - int64(dom)/3)
	case schema.Int32:
		if rng.IntN(10) == 0 {
			if rng.IntN(2) == 0 {
				return schema.Int32Val(math.MaxInt32 - rng.Int32N(1000))
			}
			return schema.Int32Val(math.MinInt32 + rng.Int32N(1000))
		}
		return schema.Int32Val(int32(rng.IntN(dom) - dom/3))
	case schema.Float64:
		return schema.Float(genFloat(rng, dom))
	case schema.Float32:
		return schema.Float32Val(float32(genFloat(rng, dom)))
	case schema.String:
		return schema.Str(fmt.Sprintf("s%d", rng.IntN(dom)))
	case schema.Bool:
		return schema.BoolVal(rng.IntN(2) == 0)
	case schema.Timestamp:
		return schema.TimeNanos(1_700_000_000e9 + rng.Int64N(int64(dom))*1e9)
	case schema.Array:
		a := make([]schema.Value, rng.IntN(4))
		for i := range a {
			a[i] = schema.Int(rng.Int64N(5))
		}
		return schema.ArrayVal(a)
	}
	panic("no generator for " + t.String())
}

func genFloat(rng *rand.Rand, dom int) float64 {
	switch rng.IntN(4) {
	case 0:
		return float64(rng.IntN(dom)-dom/3) / 4 // repeats, zeros, negatives
	case 1:
		return rng.NormFloat64() * 1e3
	case 2:
		return 1e4 + rng.Float64() // a large mean against the spread
	}
	return rng.ExpFloat64() * math.Pow(10, float64(rng.IntN(9)-4))
}

// naiveResult computes a's result over evs by sorting and scanning.
func naiveResult(a Agg, evs []aggEvent) schema.Value {
	f := lookupFn(a.Function)
	switch {
	case f == fnCount:
		return schema.Int(int64(len(evs)))
	case len(evs) == 0 && f.takesN():
		return schema.ArrayVal([]schema.Value{})
	case f == fnApproxCountDistinct:
		return schema.Int(int64(len(distinctKeys(evs))))
	case len(evs) == 0:
		return schema.Value{}
	case f == fnSum:
		return naiveSum(a.Input.Kind, evs)
	case f == fnMin || f == fnMax:
		return naiveExtreme(f == fnMin, evs)
	case f == fnMean:
		return schema.Float(bigSum(evs).float(float64(len(evs))))
	case f.variance():
		return naiveVariance(f, evs)
	case f == fnLast:
		return slices.MaxFunc(evs, func(a, b aggEvent) int { return cmpOrder(a.o, b.o) }).v
	case f.takesN():
		return naiveN(f, a.N, evs)
	case f == fnApproxPercentile:
		return naivePercentile(a.Percentile, evs)
	}
	panic("no model for " + a.Function)
}

// bigNum is an exact sum: integer or (wide) float.
type bigNum struct{ f *big.Float }

func bigSum(evs []aggEvent) bigNum {
	s := new(big.Float).SetPrec(4096)
	for _, e := range evs {
		s.Add(s, bigOf(e.v))
	}
	return bigNum{s}
}

func bigOf(v schema.Value) *big.Float {
	if v.Kind.Integral() {
		return new(big.Float).SetPrec(4096).SetInt64(v.I)
	}
	return new(big.Float).SetPrec(4096).SetFloat64(v.F)
}

// float returns the sum divided by d, rounded to float64.
func (b bigNum) float(d float64) float64 {
	q := new(big.Float).SetPrec(4096).Quo(b.f, new(big.Float).SetFloat64(d))
	f, _ := q.Float64()
	return f
}

func naiveSum(k schema.Kind, evs []aggEvent) schema.Value {
	s := bigSum(evs).f
	switch k {
	case schema.Int64, schema.Int32:
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if k == schema.Int32 {
			lo, hi = math.MinInt32, math.MaxInt32
		}
		i, _ := s.Int(nil)
		switch {
		case i.Cmp(big.NewInt(lo)) < 0:
			return schema.Value{Kind: k, I: lo}
		case i.Cmp(big.NewInt(hi)) > 0:
			return schema.Value{Kind: k, I: hi}
		}
		return schema.Value{Kind: k, I: i.Int64()}
	case schema.Float32:
		f, _ := s.Float32()
		return schema.Float32Val(f)
	}
	f, _ := s.Float64()
	return schema.Float(f)
}

func naiveExtreme(isMin bool, evs []aggEvent) schema.Value {
	v := evs[0].v
	for _, e := range evs[1:] {
		switch {
		case v.Kind.Integral() && isMin:
			v.I = min(v.I, e.v.I)
		case v.Kind.Integral():
			v.I = max(v.I, e.v.I)
		case isMin:
			v.F = min(v.F, e.v.F)
		default:
			v.F = max(v.F, e.v.F)
		}
	}
	return v
}

// naiveVariance computes n·Σx² − (Σx)² exactly, then divides.
func naiveVariance(f fn, evs []aggEvent) schema.Value {
	n := len(evs)
	sample := f == fnVarSamp || f == fnStddevSamp
	if sample && n < 2 {
		return schema.Value{}
	}
	s, q := new(big.Float).SetPrec(8192), new(big.Float).SetPrec(8192)
	for _, e := range evs {
		x := bigOf(e.v).SetPrec(8192)
		s.Add(s, x)
		q.Add(q, new(big.Float).SetPrec(8192).Mul(x, x))
	}
	num := new(big.Float).SetPrec(8192).Mul(q, big.NewFloat(float64(n)))
	num.Sub(num, new(big.Float).SetPrec(8192).Mul(s, s))
	d := float64(n) * float64(n)
	if sample {
		d = float64(n) * float64(n-1)
	}
	v, _ := num.Quo(num, new(big.Float).SetPrec(8192).SetFloat64(d)).Float64()
	if f == fnStddevSamp || f == fnStddevPop {
		v = math.Sqrt(v)
	}
	return schema.Float(v)
}

// distinctKey is the identity of a value under schema.Value.Equal.
func distinctKey(v schema.Value) dkey {
	if v.Kind == schema.Float64 || v.Kind == schema.Float32 {
		return dkey{x: canonFloatBits(v.F)}
	}
	return dkey{x: uint64(v.I), s: v.S}
}

func distinctKeys(evs []aggEvent) map[dkey]bool {
	m := map[dkey]bool{}
	for _, e := range evs {
		m[distinctKey(e.v)] = true
	}
	return m
}

func naiveN(f fn, n int, evs []aggEvent) schema.Value {
	latest := f == fnLastN || f == fnLastDistinctN
	sorted := slices.SortedFunc(slices.Values(evs), func(a, b aggEvent) int { return cmpOrder(a.o, b.o) })
	if f == fnLastDistinctN || f == fnFirstDistinctN {
		sorted = placeDistinct(sorted, latest)
	}
	if latest {
		sorted = sorted[max(0, len(sorted)-n):]
	} else {
		sorted = sorted[:min(n, len(sorted))]
	}
	out := make([]schema.Value, len(sorted))
	for i, e := range sorted {
		out[i] = e.v
	}
	return schema.ArrayVal(out)
}

// placeDistinct keeps, of each distinct value, its latest (or earliest)
// occurrence, in Order.
func placeDistinct(sorted []aggEvent, latest bool) []aggEvent {
	at := map[dkey]int{}
	for i, e := range sorted {
		k := distinctKey(e.v)
		if _, ok := at[k]; !ok || latest {
			at[k] = i
		}
	}
	var out []aggEvent
	for i, e := range sorted {
		if at[distinctKey(e.v)] == i {
			out = append(out, e)
		}
	}
	return out
}

func naivePercentile(q float64, evs []aggEvent) schema.Value {
	xs := make([]float64, len(evs))
	for i, e := range evs {
		xs[i] = e.v.F
		if e.v.Kind.Integral() {
			xs[i] = float64(e.v.I)
		}
	}
	slices.SortFunc(xs, cmp.Compare[float64])
	return schema.Float(xs[int(math.Floor(q*float64(len(xs)-1)))])
}

// Tolerances.
const (
	relFloat    = 1e-9  // float sums, means and moments against the exact value
	relRegroup  = 1e-12 // the same, between two merge groupings
	relFloat32  = 1e-6  // a float32 result rounded from slightly different sums
	relPercent  = 0.01  // approx_percentile (SPEC §3)
	hllSigmas   = 3.0
	hllStdError = 1.04
)

// checkNaive asserts that got is a's result over evs within the function's
// documented bound.
func checkNaive(t *testing.T, a Agg, evs []aggEvent, got schema.Value) {
	t.Helper()
	want := naiveResult(a, evs)
	f := lookupFn(a.Function)
	switch {
	case f == fnApproxCountDistinct:
		checkHLL(t, a, got, want)
	case f == fnApproxPercentile:
		require.Equal(t, want.Kind, got.Kind, "%s: %v, want %v", aggName(a), got, want)
		require.LessOrEqual(t, math.Abs(got.F-want.F), relPercent*math.Abs(want.F), "%s: %v, exact %v", aggName(a), got.F, want.F)
	case f == fnSum && a.Input.Kind == schema.Float32:
		requireClose(t, a, want, got, relFloat32)
	case (f == fnSum || f == fnMean) && !a.Input.Kind.Integral(), f.variance():
		requireClose(t, a, want, got, relFloat)
	case f == fnMean:
		requireClose(t, a, want, got, 1e-15)
	default:
		requireSame(t, a, want, got)
	}
}

func checkHLL(t *testing.T, a Agg, got, want schema.Value) {
	t.Helper()
	require.Equal(t, schema.Int64, got.Kind)
	p := a.hllPrecision()
	if want.I <= int64(smallMax(p)) {
		require.Equal(t, want.I, got.I, "%s: the small mode is exact", aggName(a))
		return
	}
	bound := hllSigmas * hllStdError / math.Sqrt(float64(int(1)<<p)) * float64(want.I)
	require.LessOrEqual(t, math.Abs(float64(got.I-want.I)), bound, "%s: estimate %d of %d", aggName(a), got.I, want.I)
}

// requireSame asserts exact equality, kind included.
func requireSame(t *testing.T, a Agg, want, got schema.Value) {
	t.Helper()
	require.True(t, want.Kind == got.Kind && want.Equal(got), "%s: got %#v, want %#v", aggName(a), got, want)
}

// requireClose asserts equal kinds and floats within rel (relative).
func requireClose(t *testing.T, a Agg, want, got schema.Value, rel float64) {
	t.Helper()
	require.Equal(t, want.Kind, got.Kind, "%s: got %#v, want %#v", aggName(a), got, want)
	if want.Kind == schema.Null || want.F == got.F {
		return
	}
	require.LessOrEqual(t, math.Abs(got.F-want.F), rel*math.Abs(want.F), "%s: got %v, want %v", aggName(a), got.F, want.F)
}

// inexactMerge reports whether regrouping a's merges may change the
// result's rounding (float sums and moments); everything else is exact.
func inexactMerge(a Agg) bool {
	f := lookupFn(a.Function)
	return !a.Input.Kind.Integral() && (f == fnSum || f == fnMean || f.variance() || f == fnMoments || f == fnMomentsVar)
}

// results returns what to compare of a state: its Result, and for a
// moments state the result of every function it answers.
func results(a Agg, s State) []schema.Value {
	if a.Function != FuncMoments && a.Function != FuncMomentsVar {
		return []schema.Value{s.Result()}
	}
	var out []schema.Value
	for _, r := range fusedReaders(a) {
		out = append(out, r.ResultFrom(s))
	}
	return out
}

// requireSameResults compares two states of a: exactly, or to rounding
// when regrouping may round differently.
func requireSameResults(t *testing.T, a Agg, want, got State) {
	t.Helper()
	w, g := results(a, want), results(a, got)
	for i := range w {
		if inexactMerge(a) {
			requireClose(t, a, w[i], g[i], relRegroup)
		} else {
			requireSame(t, a, w[i], g[i])
		}
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1)) }
