package engine_test

// The semantics of SPEC §3's functions, as the naive model of the
// differential tests (gen_model_test.go) computes them: aggCompute takes
// the non-null input values of a window in "latest" order (event time,
// ties by log order: the later-ingested record is the later one) and
// scans them: no tiles, no sketches, no incremental state, so that it is
// obviously right. It returns exact values for the sketches too:
// approx_count_distinct the exact number of distinct values,
// approx_percentile the element at rank floor(q·(n−1)) of the sorted
// values. aggCheck says how close the engine must come (see its comment
// for every tolerance). The model's windows, transforms and filters are
// gen_model_test.go's; their unit tests are at the end of this file.

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// aggWindow is a feature's window.
type aggWindow struct {
	size, offset time.Duration
	lifetime     bool
}

// aggFeature is one aggregate feature as the model sees it.
type aggFeature struct {
	name   string // served name within the view ("": the default)
	input  string
	fn     string
	n      int     // the n functions
	q      float64 // approx_percentile
	prec   int     // approx_count_distinct precision (0: default 8)
	window aggWindow
}

// aggPoint is one non-null input value in a window.
type aggPoint struct {
	ts  int64 // the record's event time for the view
	req int   // its request: among equal times, the later request is the later record
	val schema.Value
}

const (
	aggM = time.Minute
	aggH = time.Hour
	aggD = 24 * time.Hour
)

// aggDur spells a duration in its largest whole unit, as the repo does.
func aggDur(d time.Duration) string {
	switch {
	case d%aggD == 0:
		return fmt.Sprintf("%dd", d/aggD)
	case d%aggH == 0:
		return fmt.Sprintf("%dh", d/aggH)
	case d%aggM == 0:
		return fmt.Sprintf("%dm", d/aggM)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// aggDefaultName is SPEC §1's default feature name.
func aggDefaultName(f aggFeature, interval time.Duration) string {
	fn := f.fn
	switch f.fn {
	case "last_n", "first_n", "last_distinct_n", "first_distinct_n":
		fn = strings.TrimSuffix(f.fn, "n") + fmt.Sprint(f.n)
	case "approx_percentile":
		fn = "approx_percentile_p" + strings.ReplaceAll(fmt.Sprint(math.Round(f.q*1e8)/1e6), ".", "_")
	}
	w := "lifetime"
	if !f.window.lifetime {
		w = aggDur(f.window.size)
	}
	if f.window.offset > 0 {
		w += "_offset_" + aggDur(f.window.offset)
	}
	iv := "continuous"
	if interval > 0 {
		iv = aggDur(interval)
	}
	return f.input + "_" + fn + "_" + w + "_" + iv
}

// aggCrossTie reports whether the latest point ties on event time with a
// point of another request.
func aggCrossTie(pts []aggPoint) bool {
	if len(pts) < 2 {
		return false
	}
	last := pts[len(pts)-1]
	for _, p := range pts[:len(pts)-1] {
		if p.ts == last.ts && p.req != last.req {
			return true
		}
	}
	return false
}

// aggCompute is the exact SPEC §3 result of fn over pts (in latest order).
// kind is the input column's kind.
func aggCompute(f aggFeature, kind schema.Kind, pts []aggPoint) schema.Value {
	n := len(pts)
	floats := func() []float64 {
		out := make([]float64, n)
		for i, p := range pts {
			out[i] = aggNum(p.val)
		}
		return out
	}
	vals := func(ps []aggPoint) schema.Value {
		out := make([]schema.Value, len(ps))
		for i, p := range ps {
			out[i] = p.val
		}
		return schema.ArrayVal(out)
	}
	switch f.fn {
	case "count":
		return schema.Int(int64(n))
	case "sum":
		if n == 0 {
			return schema.Value{}
		}
		if kind.Integral() {
			var s int64
			for _, p := range pts {
				s += p.val.I
			}
			return schema.Value{Kind: kind, I: s}
		}
		s := 0.0
		for _, x := range floats() {
			s += x
		}
		return schema.Value{Kind: kind, F: s}
	case "min", "max":
		if n == 0 {
			return schema.Value{}
		}
		best := pts[0].val
		for _, p := range pts[1:] {
			less := aggNum(p.val) < aggNum(best)
			if (f.fn == "min") == less && aggNum(p.val) != aggNum(best) {
				best = p.val
			}
		}
		return best
	case "mean":
		if n == 0 {
			return schema.Value{}
		}
		s := 0.0
		for _, x := range floats() {
			s += x
		}
		return schema.Float(s / float64(n))
	case "last":
		if n == 0 {
			return schema.Value{}
		}
		return pts[n-1].val
	case "last_n":
		return vals(pts[max(0, n-f.n):])
	case "first_n":
		return vals(pts[:min(n, f.n)])
	case "last_distinct_n", "first_distinct_n":
		// Place each distinct value at its latest (earliest) occurrence.
		at := map[aggValueKeyT]int{}
		for i, p := range pts {
			k := aggValueKey(p.val)
			if _, seen := at[k]; !seen || f.fn == "last_distinct_n" {
				at[k] = i
			}
		}
		var pos []int
		for _, i := range at {
			pos = append(pos, i)
		}
		sort.Ints(pos)
		if f.fn == "last_distinct_n" {
			pos = pos[max(0, len(pos)-f.n):]
		} else {
			pos = pos[:min(len(pos), f.n)]
		}
		out := []aggPoint{}
		for _, i := range pos {
			out = append(out, pts[i])
		}
		return vals(out)
	case "var_samp", "stddev_samp", "var_pop", "stddev_pop":
		samp := strings.HasSuffix(f.fn, "_samp")
		if n == 0 || (samp && n < 2) {
			return schema.Value{}
		}
		xs := floats()
		mean := 0.0
		for _, x := range xs {
			mean += x
		}
		mean /= float64(n)
		ss := 0.0
		for _, x := range xs {
			ss += (x - mean) * (x - mean)
		}
		d := float64(n)
		if samp {
			d--
		}
		v := ss / d
		if strings.HasPrefix(f.fn, "stddev") {
			v = math.Sqrt(v)
		}
		return schema.Float(v)
	case "approx_count_distinct":
		seen := map[aggValueKeyT]bool{}
		for _, p := range pts {
			seen[aggValueKey(p.val)] = true
		}
		return schema.Int(int64(len(seen)))
	case "approx_percentile":
		if n == 0 {
			return schema.Value{}
		}
		xs := floats()
		sort.Float64s(xs)
		return schema.Float(xs[aggRank(f.q, n)])
	}
	panic("model: unknown function " + f.fn)
}

// aggRank is floor(q·(n−1)) in real arithmetic: q·(n−1) in float64 can
// land just below a whole number (0.29·100 = 28.999999999999996).
func aggRank(q float64, n int) int {
	r := int(math.Floor(q*float64(n-1) + 1e-9))
	return max(0, min(n-1, r))
}

// aggNum is a numeric value as float64.
func aggNum(v schema.Value) float64 {
	switch v.Kind {
	case schema.Float64, schema.Float32:
		return v.F
	}
	return float64(v.I)
}

// aggValueKey identifies a scalar value for distinctness.
type aggValueKeyT struct {
	kind schema.Kind
	i    int64
	f    uint64
	s    string
}

func aggValueKey(v schema.Value) aggValueKeyT {
	return aggValueKeyT{v.Kind, v.I, math.Float64bits(v.F), v.S}
}

// aggCheck reports whether the engine's value got is acceptable for the
// model's exact value want, and if not why. Tolerances:
//
//   - count, min, max, last, the n functions and integer sums: exact
//     (same kind, same value; an empty window gives null, or [] for the n
//     functions, or 0 for count and approx_count_distinct).
//   - float sum and mean: |got − want| ≤ 1e-9 · Σ|x| (resp. Σ|x|/n): 1e-9
//     relative to the magnitude of the summands, the bound that holds
//     whatever order the engine adds in (tiles, merges) even when the
//     summands cancel.
//   - var_*: |got − want| ≤ 1e-9 · max(|want|, mean(x²)): relative, but
//     to the second moment, since a one-pass Σx² − (Σx)²/n formula loses
//     digits when the variance is small next to the mean. stddev_*: the
//     same bound on got² against want² (a sqrt near zero magnifies the
//     error), and got ≥ 0.
//   - approx_count_distinct: |got − want| ≤ max(2, k·1.04/√(2^p)·want):
//     k standard errors of HyperLogLog with 2^p registers (p is the
//     precision, default 8), and at least 2 for the small cardinalities
//     where the estimate should be (nearly) exact. k is 3 for p ≥ 10 and 6
//     below: with few registers the error has a heavy tail. Measured on
//     the engine's sketch (tiles/agg_hll.go, 1500 random sets per n, n from
//     60 to 3000), the largest errors were 2.6σ at p = 12, 4.5σ at p = 8
//     and 5.1σ at p = 6, and at p = 4 over 4.8σ (+127%), which is why the
//     test uses no precision below 6: there no useful bound holds.
//   - approx_percentile: |got − want| ≤ 0.01·|want|, SPEC §3's 1% relative
//     error of the element at rank floor(q·(n−1)).
func aggCheck(f aggFeature, got, want schema.Value, pts []aggPoint) (bool, string) {
	if want.IsNull() || got.IsNull() {
		if want.IsNull() && got.IsNull() {
			return true, ""
		}
		return false, "null mismatch"
	}
	if got.Kind != want.Kind {
		return false, fmt.Sprintf("kind %v, want %v", got.Kind, want.Kind)
	}
	xs := make([]float64, len(pts))
	for i, p := range pts {
		xs[i] = aggNum(p.val)
	}
	absSum, sq := 0.0, 0.0
	for _, x := range xs {
		absSum += math.Abs(x)
		sq += x * x
	}
	within := func(g, w, tol float64) (bool, string) {
		if math.IsNaN(g) || math.Abs(g-w) > tol {
			return false, fmt.Sprintf("|got−want| = %g > tolerance %g", math.Abs(g-w), tol)
		}
		return true, ""
	}
	switch {
	case f.fn == "sum" && want.Kind == schema.Float64:
		return within(got.F, want.F, 1e-9*absSum)
	case f.fn == "sum" && want.Kind == schema.Float32:
		// A Float32 sum may be rounded to Float32 (the input type).
		return within(got.F, want.F, 1e-9*absSum+math.Abs(want.F)/(1<<23))
	case f.fn == "mean":
		return within(got.F, want.F, 1e-9*absSum/float64(len(xs)))
	case strings.HasPrefix(f.fn, "var_"):
		return within(got.F, want.F, 1e-9*max(math.Abs(want.F), sq/float64(len(xs))))
	case strings.HasPrefix(f.fn, "stddev_"):
		if got.F < 0 {
			return false, "negative standard deviation"
		}
		return within(got.F*got.F, want.F*want.F, 1e-9*max(want.F*want.F, sq/float64(len(xs))))
	case f.fn == "approx_count_distinct":
		p := f.prec
		if p == 0 {
			p = 8
		}
		k := 3.0
		if p < 10 {
			k = 6
		}
		tol := max(2, k*1.04/math.Sqrt(math.Exp2(float64(p)))*float64(want.I))
		return within(float64(got.I), float64(want.I), tol)
	case f.fn == "approx_percentile":
		ok, why := within(got.F, want.F, 0.01*math.Abs(want.F))
		if !ok {
			why += aggRankNote(got.F, xs, f.q)
		}
		return ok, why
	}
	if !got.Equal(want) {
		return false, "values differ"
	}
	return true, ""
}

// aggRankNote says at which ranks of the sorted window the engine's
// percentile lies, to tell a rank convention from a broken sketch.
func aggRankNote(g float64, xs []float64, q float64) string {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	lo := sort.SearchFloat64s(s, g*(1-0.01))
	hi := sort.SearchFloat64s(s, g*(1+0.01))
	if g < 0 {
		lo, hi = sort.SearchFloat64s(s, g*(1+0.01)), sort.SearchFloat64s(s, g*(1-0.01))
	}
	return fmt.Sprintf(" (n=%d, want rank floor(%g·%d)=%d; got is within 1%% of ranks [%d, %d))", len(s), q, len(s)-1, aggRank(q, len(s)), lo, hi)
}

// aggFmt prints a value compactly.
func aggFmt(v schema.Value) string {
	switch v.Kind {
	case schema.Null:
		return "null"
	case schema.Array:
		parts := make([]string, len(v.A))
		for i, e := range v.A {
			parts[i] = aggFmt(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case schema.String:
		return fmt.Sprintf("%q", v.S)
	case schema.Float64, schema.Float32:
		return fmt.Sprintf("%v", v.F)
	case schema.Bool:
		return fmt.Sprint(v.I != 0)
	case schema.Timestamp:
		return aggTime(v.I)
	}
	return fmt.Sprint(v.I)
}

func aggTime(ns int64) string {
	if ns == math.MinInt64 {
		return "-inf"
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// ---------------------------------------------------------------------
// Unit tests of the model itself, on hand-computed cases.

var aggT0 = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func aggMin(m int) int64 { return aggT0 + int64(m)*int64(time.Minute) }

// unitSource is the model tests' source: user_id, ts and a column of each
// numeric type and a string.
var unitSource = &genSource{name: "s", keys: []string{"user_id"}, times: []string{"ts"}, cols: []genCol{
	{"user_id", schema.ScalarType(schema.String)}, {"ts", schema.ScalarType(schema.Timestamp)},
	{"amount", schema.ScalarType(schema.Float64)}, {"qty", schema.ScalarType(schema.Int64)},
	{"category", schema.ScalarType(schema.String)}, {"small", schema.ScalarType(schema.Int32)},
	{"ratio", schema.ScalarType(schema.Float32)}}}

// unitView returns a view of unitSource keyed by user_id.
func unitView(interval time.Duration, start int64) *genView {
	return &genView{name: "v", src: unitSource, entities: []*genEntity{{name: "user", keys: []string{"user_id"}}},
		ts: "ts", interval: interval, start: start, offline: true}
}

// unitModel returns a model of the views with evs added.
func unitModel(evs []*genEvent, views ...*genView) *genModel {
	m := newGenModel(&genRepo{sources: []*genSource{unitSource}, views: views})
	m.add(evs...)
	return m
}

// aggEv builds a record of key "k" in request req at index idx.
func aggEv(req, idx int, ts int64, amount any, qty any, cat any) *genEvent {
	cols := map[string]schema.Value{"user_id": schema.Str("k"), "ts": schema.TimeNanos(ts)}
	if amount != nil {
		cols["amount"] = schema.Float(amount.(float64))
	}
	if qty != nil {
		cols["qty"] = schema.Int(int64(qty.(int)))
	}
	if cat != nil {
		cols["category"] = schema.Str(cat.(string))
	}
	return &genEvent{src: unitSource, req: req, idx: idx, cols: cols}
}

func aggEval(m *genModel, v *genView, f aggFeature, kind schema.Kind, t int64) schema.Value {
	return aggCompute(f, kind, m.points(v, f, "s:k", t))
}

func floats(xs ...float64) schema.Value {
	out := []schema.Value{}
	for _, x := range xs {
		out = append(out, schema.Float(x))
	}
	return schema.ArrayVal(out)
}

func strs(xs ...string) schema.Value {
	out := []schema.Value{}
	for _, x := range xs {
		out = append(out, schema.Str(x))
	}
	return schema.ArrayVal(out)
}

func requireVal(t *testing.T, want, got schema.Value, msg string) {
	t.Helper()
	require.True(t, want.Equal(got), "%s: got %s, want %s", msg, aggFmt(got), aggFmt(want))
}
func TestAggModelFunctions(t *testing.T) {
	cont := unitView(0, math.MinInt64)
	m := unitModel(nil, cont)
	// amounts 1, 2, 4, null, 10 at minutes 0..4; a tie at minute 2 across
	// requests; categories with repeats.
	m.add(
		aggEv(1, 0, aggMin(0), 1.0, 5, "a"),
		aggEv(1, 1, aggMin(1), 2.0, 3, "b"),
		aggEv(2, 0, aggMin(2), 4.0, 3, "a"),
		aggEv(3, 0, aggMin(3), nil, nil, nil),
		aggEv(3, 1, aggMin(4), 10.0, -1, "c"),
		aggEv(1, 2, aggMin(2), 7.0, 9, "b"), // same time as req 2's, ingested earlier
	)
	w := aggWindow{size: time.Hour}
	T := aggMin(60)
	f := func(fn, in string) aggFeature { return aggFeature{fn: fn, input: in, n: 2, q: 0.5, window: w} }
	// amounts in latest order: 1 (m0), 2 (m1), 7 (m2 req1), 4 (m2 req2), 10 (m4)
	cases := []struct {
		f    aggFeature
		kind schema.Kind
		want schema.Value
	}{
		{f("count", "amount"), schema.Float64, schema.Int(5)},
		{f("count", "category"), schema.String, schema.Int(5)},
		{f("sum", "amount"), schema.Float64, schema.Float(24)},
		{f("sum", "qty"), schema.Int64, schema.Int(19)},
		{f("min", "amount"), schema.Float64, schema.Float(1)},
		{f("max", "qty"), schema.Int64, schema.Int(9)},
		{f("min", "qty"), schema.Int64, schema.Int(-1)},
		{f("mean", "amount"), schema.Float64, schema.Float(4.8)},
		{f("last", "amount"), schema.Float64, schema.Float(10)},
		{f("last_n", "amount"), schema.Float64, floats(4, 10)},
		{f("first_n", "amount"), schema.Float64, floats(1, 2)},
		{f("last_n", "category"), schema.String, strs("a", "c")},
		// categories in latest order: a b b a c; last occurrences: b@2 a@3 c@4
		{f("last_distinct_n", "category"), schema.String, strs("a", "c")},
		{aggFeature{fn: "last_distinct_n", input: "category", n: 10, window: w}, schema.String, strs("b", "a", "c")},
		// first occurrences: a@0 b@1 c@4
		{f("first_distinct_n", "category"), schema.String, strs("a", "b")},
		{aggFeature{fn: "first_distinct_n", input: "category", n: 10, window: w}, schema.String, strs("a", "b", "c")},
		// amounts 1 2 7 4 10: mean 4.8, squared deviations 14.44 7.84 4.84 0.64 27.04 = 54.8
		{f("var_pop", "amount"), schema.Float64, schema.Float(54.8 / 5)},
		{f("var_samp", "amount"), schema.Float64, schema.Float(54.8 / 4)},
		{f("stddev_pop", "amount"), schema.Float64, schema.Float(math.Sqrt(54.8 / 5))},
		{f("stddev_samp", "amount"), schema.Float64, schema.Float(math.Sqrt(54.8 / 4))},
		{f("approx_count_distinct", "category"), schema.String, schema.Int(3)},
		{f("approx_count_distinct", "qty"), schema.Int64, schema.Int(4)},
		// sorted 1 2 4 7 10: rank floor(0.5·4) = 2 → 4
		{f("approx_percentile", "amount"), schema.Float64, schema.Float(4)},
		{aggFeature{fn: "approx_percentile", input: "amount", q: 0.99, window: w}, schema.Float64, schema.Float(7)}, // floor(3.96)=3
		{aggFeature{fn: "approx_percentile", input: "amount", q: 1, window: w}, schema.Float64, schema.Float(10)},
		{aggFeature{fn: "approx_percentile", input: "amount", q: 0, window: w}, schema.Float64, schema.Float(1)},
		{aggFeature{fn: "approx_percentile", input: "qty", q: 0.25, window: w}, schema.Int64, schema.Float(3)}, // -1 3 3 5 9 → rank 1
	}
	for _, c := range cases {
		got := aggEval(m, cont, c.f, c.kind, T)
		// Floats computed by the model must be within rounding of the
		// hand value; everything else exact.
		if c.want.Kind == schema.Float64 && got.Kind == schema.Float64 {
			require.InDelta(t, c.want.F, got.F, 1e-12, "%s(%s)", c.f.fn, c.f.input)
			continue
		}
		requireVal(t, c.want, got, c.f.fn+"("+c.f.input+")")
	}

	// Empty windows (before any event).
	empty := aggMin(0)
	for fn, want := range map[string]schema.Value{
		"count": schema.Int(0), "sum": {}, "min": {}, "max": {}, "mean": {}, "last": {},
		"last_n": schema.ArrayVal([]schema.Value{}), "first_n": schema.ArrayVal([]schema.Value{}),
		"last_distinct_n": schema.ArrayVal([]schema.Value{}), "first_distinct_n": schema.ArrayVal([]schema.Value{}),
		"var_samp": {}, "stddev_samp": {}, "var_pop": {}, "stddev_pop": {},
		"approx_count_distinct": schema.Int(0), "approx_percentile": {},
	} {
		got := aggEval(m, cont, f(fn, "amount"), schema.Float64, empty)
		requireVal(t, want, got, fn+" of an empty window")
		require.Equal(t, want.Kind, got.Kind, fn)
	}
	// One value: samp variants are null, pop variants 0.
	one := aggMin(1) // sees only minute 0
	requireVal(t, schema.Value{}, aggEval(m, cont, f("var_samp", "amount"), schema.Float64, one), "var_samp n=1")
	requireVal(t, schema.Value{}, aggEval(m, cont, f("stddev_samp", "amount"), schema.Float64, one), "stddev_samp n=1")
	requireVal(t, schema.Float(0), aggEval(m, cont, f("var_pop", "amount"), schema.Float64, one), "var_pop n=1")
	requireVal(t, schema.Float(1), aggEval(m, cont, f("last", "amount"), schema.Float64, one), "last n=1")
}

func TestAggModelNarrowTypes(t *testing.T) {
	v := unitView(0, math.MinInt64)
	m := unitModel(nil, v)
	for i, x := range []int32{7, -3, 7} {
		e := aggEv(1, i, aggMin(i), nil, nil, nil)
		e.cols["small"] = schema.Int32Val(x)
		e.cols["ratio"] = schema.Float32Val(float32(x) / 4)
		m.add(e)
	}
	w := aggWindow{size: time.Hour}
	T := aggMin(10)
	eval := func(fn, in string, kind schema.Kind) schema.Value {
		return aggEval(m, v, aggFeature{fn: fn, input: in, n: 5, q: 0.5, window: w}, kind, T)
	}
	requireVal(t, schema.Value{Kind: schema.Int32, I: 11}, eval("sum", "small", schema.Int32), "sum(Int32) is Int32")
	requireVal(t, schema.Int32Val(-3), eval("min", "small", schema.Int32), "min(Int32)")
	requireVal(t, schema.Float(11.0/3), eval("mean", "small", schema.Int32), "mean(Int32) is Float64")
	requireVal(t, schema.Float(7), eval("approx_percentile", "small", schema.Int32), "percentile(Int32) is Float64") // -3 7 7: rank 1
	requireVal(t, schema.Float32Val(2.75), eval("sum", "ratio", schema.Float32), "sum(Float32) is Float32")
	requireVal(t, schema.ArrayVal([]schema.Value{schema.Int32Val(-3), schema.Int32Val(7)}), eval("last_distinct_n", "small", schema.Int32), "last_distinct_n(Int32)")
	requireVal(t, schema.Float32Val(1.75), eval("last", "ratio", schema.Float32), "last(Float32)")
}

func TestAggModelTies(t *testing.T) {
	v := unitView(0, math.MinInt64)
	m := unitModel(nil, v)
	ts := aggMin(10)
	// Three records at one event time: req 5 idx 1 is the latest in log
	// order, although it was added to the model first.
	m.add(
		aggEv(5, 1, ts, 3.0, nil, "z"),
		aggEv(4, 0, ts, 1.0, nil, "x"),
		aggEv(5, 0, ts, 2.0, nil, "y"),
		aggEv(6, 0, ts-1, 9.0, nil, "w"), // earlier event time, ingested last
	)
	w := aggWindow{size: time.Hour}
	T := ts + 1
	requireVal(t, schema.Float(3), aggEval(m, v, aggFeature{fn: "last", input: "amount", window: w}, schema.Float64, T), "last")
	requireVal(t, floats(9, 1, 2, 3), aggEval(m, v, aggFeature{fn: "last_n", input: "amount", n: 10, window: w}, schema.Float64, T), "last_n")
	requireVal(t, floats(9, 1), aggEval(m, v, aggFeature{fn: "first_n", input: "amount", n: 2, window: w}, schema.Float64, T), "first_n")
	requireVal(t, strs("y", "z"), aggEval(m, v, aggFeature{fn: "last_n", input: "category", n: 2, window: w}, schema.String, T), "last_n")
	// A read at exactly ts sees only the earlier event: strictly before T.
	requireVal(t, schema.Float(9), aggEval(m, v, aggFeature{fn: "last", input: "amount", window: w}, schema.Float64, ts), "as of ts")
	// Duplicates count twice; distinct functions see one value.
	m.add(aggEv(7, 0, ts, 3.0, nil, "z"))
	requireVal(t, schema.Int(5), aggEval(m, v, aggFeature{fn: "count", input: "amount", window: w}, schema.Float64, T), "count with a duplicate")
	requireVal(t, strs("w", "x", "y", "z"), aggEval(m, v, aggFeature{fn: "last_distinct_n", input: "category", n: 10, window: w}, schema.String, T), "last_distinct_n")
	requireVal(t, schema.Int(4), aggEval(m, v, aggFeature{fn: "approx_count_distinct", input: "category", window: w}, schema.String, T), "distinct")
	// last_distinct_n places a value at its latest occurrence: a later "x"
	// moves x to the end; first_distinct_n keeps it at its first.
	m.add(aggEv(8, 0, ts+5, nil, nil, "x"))
	T = ts + 10
	requireVal(t, strs("y", "z", "x"), aggEval(m, v, aggFeature{fn: "last_distinct_n", input: "category", n: 3, window: w}, schema.String, T), "last_distinct_n moves x")
	requireVal(t, strs("w", "x", "y"), aggEval(m, v, aggFeature{fn: "first_distinct_n", input: "category", n: 3, window: w}, schema.String, T), "first_distinct_n keeps x")
}

func TestAggModelWindows(t *testing.T) {
	cont := unitView(0, math.MinInt64)
	t10 := unitView(10*time.Minute, math.MinInt64)
	t60 := unitView(time.Hour, math.MinInt64)
	s10 := unitView(10*time.Minute, aggMin(10))
	s10c := unitView(0, aggMin(10))
	m := unitModel(nil, cont, t10, t60, s10, s10c)
	at := []int64{aggMin(0), aggMin(10) - 1, aggMin(10), aggMin(59), aggMin(60), aggMin(61), aggMin(95)}
	for i, ts := range at {
		m.add(aggEv(i+1, 0, ts, float64(i+1), nil, nil))
	}
	type rd struct {
		t    int64
		want int64
		end  int64 // window end = effective time
	}
	check := func(name string, v *genView, w aggWindow, reads []rd) {
		t.Helper()
		f := aggFeature{fn: "count", input: "amount", window: w}
		for _, r := range reads {
			got := aggEval(m, v, f, schema.Float64, r.t).I
			require.Equal(t, r.want, got, "%s as of %s", name, aggTime(r.t))
			require.Equal(t, r.end, genWindowEnd(v, f, r.t), "%s: window end as of %s", name, aggTime(r.t))
		}
	}
	h := aggWindow{size: time.Hour}
	// Continuous: [T−1h, T), to the nanosecond.
	check("continuous 1h", cont, h, []rd{
		{aggMin(0), 0, aggMin(0)},
		{aggMin(0) + 1, 1, aggMin(0) + 1},
		{aggMin(60), 4, aggMin(60)},         // m0 m10−1ns m10 m59
		{aggMin(60) + 1, 4, aggMin(60) + 1}, // m0 leaves, m60 enters
		{aggMin(70) - 1, 5, aggMin(70) - 1}, // m10−1ns .. m61
		{aggMin(70), 4, aggMin(70)},         // m10 m59 m60 m61
		{aggMin(70) + 1, 3, aggMin(70) + 1},
	})
	check("continuous lifetime", cont, aggWindow{lifetime: true}, []rd{{aggMin(95), 6, aggMin(95)}, {aggMin(96), 7, aggMin(96)}})
	// Continuous with offset 30m: [T−90m, T−30m).
	check("continuous 1h offset 30m", cont, aggWindow{size: time.Hour, offset: 30 * time.Minute}, []rd{
		{aggMin(90), 4, aggMin(60)},
		{aggMin(90) + 1, 4, aggMin(60) + 1},
		{aggMin(125), 3, aggMin(95)},
		{aggMin(125) + 1, 4, aggMin(95) + 1},
	})
	// Interval 10m: A = T − (T mod 10m), window [A − 1h, A).
	check("10m tiles 1h", t10, h, []rd{
		{aggMin(60) - 1, 3, aggMin(50)}, // [m−10, m50): m0 m10−1ns m10
		{aggMin(60), 4, aggMin(60)},
		{aggMin(61), 4, aggMin(60)},
		{aggMin(70) - 1, 4, aggMin(60)},
		{aggMin(70), 4, aggMin(70)}, // [m10, m70)
	})
	check("10m tiles 1h offset 30m", t10, aggWindow{size: time.Hour, offset: 30 * time.Minute}, []rd{
		{aggMin(125) + 1, 3, aggMin(90)}, // A = m120, [m30, m90): m59 m60 m61
		{aggMin(130), 4, aggMin(100)},    // [m40, m100): m59 m60 m61 m95
	})
	check("1h tiles 1h", t60, h, []rd{
		{aggMin(95), 4, aggMin(60)},
		{aggMin(119), 4, aggMin(60)},
		{aggMin(120), 3, aggMin(120)}, // m60 m61 m95
	})
	// feature_start_time m10: events before it are not aggregated; a
	// lifetime window starts there.
	check("10m tiles lifetime from m10", s10, aggWindow{lifetime: true}, []rd{
		{aggMin(96), 4, aggMin(90)}, // m10 m59 m60 m61
		{aggMin(100), 5, aggMin(100)},
		{aggMin(10), 0, aggMin(10)},
	})
	check("continuous 1h from m10", s10c, h, []rd{{aggMin(60), 2, aggMin(60)}}) // m10 m59
}

func TestAggModelTransformFilter(t *testing.T) {
	// columns: {qty3: "qty * 3", big: "amount > 50.0"}, filter: "qty >= -2"
	v := unitView(0, math.MinInt64)
	v.txCols = []genTxCol{
		{genCol{"qty3", schema.ScalarType(schema.Int64)}, genUn("qty * 3", "qty", func(x schema.Value) schema.Value { return schema.Int(x.I * 3) })},
		{genCol{"big", schema.ScalarType(schema.Bool)}, genUn("amount > 50.0", "amount", func(x schema.Value) schema.Value { return schema.BoolVal(x.F > 50) })},
	}
	v.filter = genUn("qty >= -2", "qty", func(x schema.Value) schema.Value { return schema.BoolVal(x.I >= -2) })
	m := unitModel(nil, v)
	m.add(
		aggEv(1, 0, aggMin(0), 1.0, 2, "a"),
		aggEv(1, 1, aggMin(1), 2.0, nil, "b"), // the filter reads a null: dropped
		aggEv(1, 2, aggMin(2), 4.0, -3, "c"),  // filtered out
		aggEv(1, 3, aggMin(3), nil, -2, "d"),
		aggEv(1, 4, aggMin(4), 80.0, 5, nil),
	)
	w := aggWindow{size: time.Hour}
	T := aggMin(10)
	requireVal(t, schema.Int(3), aggEval(m, v, aggFeature{fn: "count", input: "qty3", window: w}, schema.Int64, T), "count(qty3)")
	requireVal(t, schema.Int(15), aggEval(m, v, aggFeature{fn: "sum", input: "qty3", window: w}, schema.Int64, T), "sum(qty3)")
	requireVal(t, schema.Int(2), aggEval(m, v, aggFeature{fn: "count", input: "amount", window: w}, schema.Float64, T), "count(amount)")
	requireVal(t, schema.ArrayVal([]schema.Value{schema.BoolVal(false), schema.BoolVal(true)}),
		aggEval(m, v, aggFeature{fn: "last_distinct_n", input: "big", n: 5, window: w}, schema.Bool, T), "last_distinct_n(big)")
	requireVal(t, strs("a", "d"), aggEval(m, v, aggFeature{fn: "first_n", input: "category", n: 5, window: w}, schema.String, T), "first_n(category)")
}

func TestAggModelCheck(t *testing.T) {
	pts := []aggPoint{{val: schema.Float(100)}, {val: schema.Float(101)}}
	ok, _ := aggCheck(aggFeature{fn: "approx_percentile"}, schema.Float(100.9), schema.Float(100), pts)
	require.True(t, ok)
	ok, why := aggCheck(aggFeature{fn: "approx_percentile", q: 0.5}, schema.Float(101.5), schema.Float(100), pts)
	require.False(t, ok)
	require.Contains(t, why, "ranks [1, 2)")
	ok, _ = aggCheck(aggFeature{fn: "approx_count_distinct"}, schema.Int(102), schema.Int(100), nil)
	require.True(t, ok)
	ok, _ = aggCheck(aggFeature{fn: "approx_count_distinct"}, schema.Int(140), schema.Int(100), nil) // 6σ at p=8 is 39
	require.False(t, ok)
	ok, _ = aggCheck(aggFeature{fn: "approx_count_distinct", prec: 12}, schema.Int(1040), schema.Int(1000), nil) // 3σ at p=12 is 48.75
	require.True(t, ok)
	ok, _ = aggCheck(aggFeature{fn: "approx_count_distinct", prec: 12}, schema.Int(1050), schema.Int(1000), nil)
	require.False(t, ok)
	ok, _ = aggCheck(aggFeature{fn: "count"}, schema.Float(2), schema.Int(2), nil)
	require.False(t, ok, "kinds must match")
	ok, _ = aggCheck(aggFeature{fn: "last_n"}, schema.ArrayVal(nil), schema.ArrayVal([]schema.Value{}), nil)
	require.True(t, ok, "an empty array is an empty array")
	ok, _ = aggCheck(aggFeature{fn: "sum"}, schema.Value{}, schema.Float(0), nil)
	require.False(t, ok, "null is not 0")
	ok, _ = aggCheck(aggFeature{fn: "stddev_pop"}, schema.Float(1e-7), schema.Float(0), []aggPoint{{val: schema.Float(5)}, {val: schema.Float(5)}})
	require.True(t, ok, "a stddev of equal values may come out as sqrt of rounding noise")
	ok, _ = aggCheck(aggFeature{fn: "var_pop"}, schema.Float(1.0001), schema.Float(1), []aggPoint{{val: schema.Float(0)}, {val: schema.Float(2)}})
	require.False(t, ok)
}
