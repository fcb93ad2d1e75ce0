package tiles

import (
	"errors"
	"math"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

var (
	vInt   = schema.Int
	vInt32 = schema.Int32Val
	vF64   = schema.Float
	vF32   = schema.Float32Val
	vStr   = schema.Str
	vBool  = schema.BoolVal
	vTime  = schema.TimeNanos
	vNull  = schema.Value{}
)

func arrOf(vs ...schema.Value) schema.Value {
	if vs == nil {
		vs = []schema.Value{}
	}
	return schema.ArrayVal(vs)
}

// atT is an Order at event time t (sequence and index 0).
func atT(t int64) Order { return Order{TS: t} }

type aggAdd struct {
	v schema.Value
	o Order
}

// seqAt is a run of values at times 1, 2, 3, ...
func seqAt(vs ...schema.Value) []aggAdd {
	out := make([]aggAdd, len(vs))
	for i, v := range vs {
		out[i] = aggAdd{v, atT(int64(i + 1))}
	}
	return out
}

func TestResults(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name string
		agg  Agg
		adds []aggAdd
		want schema.Value
	}{
		// Empty windows (SPEC §3).
		{"count empty", Agg{Function: "count", Input: tString}, nil, vInt(0)},
		{"sum empty", Agg{Function: "sum", Input: tInt64}, nil, vNull},
		{"sum float empty", Agg{Function: "sum", Input: tFloat64}, nil, vNull},
		{"min empty", Agg{Function: "min", Input: tInt32}, nil, vNull},
		{"max empty", Agg{Function: "max", Input: tFloat32}, nil, vNull},
		{"mean empty", Agg{Function: "mean", Input: tInt64}, nil, vNull},
		{"last empty", Agg{Function: "last", Input: tString}, nil, vNull},
		{"last_n empty", Agg{Function: "last_n", N: 3, Input: tString}, nil, arrOf()},
		{"first_n empty", Agg{Function: "first_n", N: 3, Input: tInt64}, nil, arrOf()},
		{"last_distinct_n empty", Agg{Function: "last_distinct_n", N: 3, Input: tBool}, nil, arrOf()},
		{"first_distinct_n empty", Agg{Function: "first_distinct_n", N: 30, Input: tTime}, nil, arrOf()},
		{"var_samp empty", Agg{Function: "var_samp", Input: tFloat64}, nil, vNull},
		{"var_samp one", Agg{Function: "var_samp", Input: tInt64}, seqAt(vInt(5)), vNull},
		{"stddev_samp one", Agg{Function: "stddev_samp", Input: tFloat64}, seqAt(vF64(5)), vNull},
		{"var_pop empty", Agg{Function: "var_pop", Input: tInt64}, nil, vNull},
		{"var_pop one", Agg{Function: "var_pop", Input: tInt64}, seqAt(vInt(5)), vF64(0)},
		{"stddev_pop empty", Agg{Function: "stddev_pop", Input: tFloat32}, nil, vNull},
		{"approx_count_distinct empty", Agg{Function: "approx_count_distinct", Input: tString}, nil, vInt(0)},
		{"approx_percentile empty", Agg{Function: "approx_percentile", Percentile: 0.5, Input: tInt64}, nil, vNull},

		// count: any input type.
		{"count strings", Agg{Function: "count", Input: tString}, seqAt(vStr("a"), vStr("a"), vStr("b")), vInt(3)},
		{"count arrays", Agg{Function: "count", Input: tArray}, seqAt(arrOf(), arrOf(vInt(1))), vInt(2)},
		{"count bools", Agg{Function: "count", Input: tBool}, seqAt(vBool(false)), vInt(1)},

		// sum: the input type, exact integers, saturating.
		{"sum int64", Agg{Function: "sum", Input: tInt64}, seqAt(vInt(1), vInt(-4), vInt(10)), vInt(7)},
		{"sum int32 is Int32", Agg{Function: "sum", Input: tInt32}, seqAt(vInt32(1), vInt32(2)), vInt32(3)},
		{"sum int32 beyond int32 saturates", Agg{Function: "sum", Input: tInt32},
			seqAt(vInt32(math.MaxInt32), vInt32(1)), vInt32(math.MaxInt32)},
		{"sum int32 below int32 saturates", Agg{Function: "sum", Input: tInt32},
			seqAt(vInt32(math.MinInt32), vInt32(-1)), vInt32(math.MinInt32)},
		{"sum int64 overflow saturates", Agg{Function: "sum", Input: tInt64},
			seqAt(vInt(math.MaxInt64), vInt(math.MaxInt64)), vInt(math.MaxInt64)},
		{"sum int64 underflow saturates", Agg{Function: "sum", Input: tInt64},
			seqAt(vInt(math.MinInt64), vInt(-1)), vInt(math.MinInt64)},
		{"sum int64 transient overflow is exact", Agg{Function: "sum", Input: tInt64},
			seqAt(vInt(math.MaxInt64), vInt(math.MaxInt64), vInt(-math.MaxInt64), vInt(-5)), vInt(math.MaxInt64 - 5)},
		{"sum float compensated", Agg{Function: "sum", Input: tFloat64},
			seqAt(vF64(1e16), vF64(1), vF64(-1e16)), vF64(1)},
		{"sum float32 is Float32", Agg{Function: "sum", Input: tFloat32}, seqAt(vF32(0.5), vF32(0.25)), vF32(0.75)},
		{"sum float32 beyond float32 is +Inf", Agg{Function: "sum", Input: tFloat32},
			seqAt(vF32(math.MaxFloat32), vF32(math.MaxFloat32)), vF32(float32(inf))},
		{"sum with NaN", Agg{Function: "sum", Input: tFloat64}, seqAt(vF64(1), vF64(nan)), vF64(nan)},
		{"sum with +Inf", Agg{Function: "sum", Input: tFloat64}, seqAt(vF64(1), vF64(inf), vF64(2)), vF64(inf)},
		{"sum of +Inf and -Inf", Agg{Function: "sum", Input: tFloat64}, seqAt(vF64(inf), vF64(-inf)), vF64(nan)},

		// min, max.
		{"min int64", Agg{Function: "min", Input: tInt64}, seqAt(vInt(3), vInt(-2), vInt(9)), vInt(-2)},
		{"max int32", Agg{Function: "max", Input: tInt32}, seqAt(vInt32(3), vInt32(-2), vInt32(9)), vInt32(9)},
		{"min float32", Agg{Function: "min", Input: tFloat32}, seqAt(vF32(1.5), vF32(-0.25)), vF32(-0.25)},
		{"max float64", Agg{Function: "max", Input: tFloat64}, seqAt(vF64(-inf), vF64(2.5)), vF64(2.5)},
		{"min with NaN is NaN", Agg{Function: "min", Input: tFloat64}, seqAt(vF64(1), vF64(nan), vF64(0)), vF64(nan)},
		{"max with NaN is NaN", Agg{Function: "max", Input: tFloat64}, seqAt(vF64(nan), vF64(1)), vF64(nan)},
		{"min int64 extremes", Agg{Function: "min", Input: tInt64}, seqAt(vInt(math.MaxInt64), vInt(math.MinInt64)), vInt(math.MinInt64)},

		// mean.
		{"mean int", Agg{Function: "mean", Input: tInt64}, seqAt(vInt(1), vInt(2), vInt(4)), vF64(7.0 / 3)},
		{"mean int32", Agg{Function: "mean", Input: tInt32}, seqAt(vInt32(-3), vInt32(4)), vF64(0.5)},
		{"mean int beyond int64", Agg{Function: "mean", Input: tInt64},
			seqAt(vInt(math.MaxInt64), vInt(math.MaxInt64)), vF64(math.MaxInt64)},
		{"mean float", Agg{Function: "mean", Input: tFloat64}, seqAt(vF64(1e16), vF64(1), vF64(-1e16), vF64(3)), vF64(1)},
		{"mean float32", Agg{Function: "mean", Input: tFloat32}, seqAt(vF32(1), vF32(2)), vF64(1.5)},

		// variance family: 2, 4, 4, 4, 5, 5, 7, 9 has population variance 4.
		{"var_pop int", Agg{Function: "var_pop", Input: tInt64}, seqAt(vInt(2), vInt(4), vInt(4), vInt(4), vInt(5), vInt(5), vInt(7), vInt(9)), vF64(4)},
		{"stddev_pop int32", Agg{Function: "stddev_pop", Input: tInt32}, seqAt(vInt32(2), vInt32(4), vInt32(4), vInt32(4), vInt32(5), vInt32(5), vInt32(7), vInt32(9)), vF64(2)},
		{"var_samp float", Agg{Function: "var_samp", Input: tFloat64}, seqAt(vF64(2), vF64(4), vF64(4), vF64(4), vF64(5), vF64(5), vF64(7), vF64(9)), vF64(32.0 / 7)},
		{"stddev_samp float32", Agg{Function: "stddev_samp", Input: tFloat32}, seqAt(vF32(1), vF32(3)), vF64(math.Sqrt2)},
		{"var_pop int huge is exact", Agg{Function: "var_pop", Input: tInt64},
			seqAt(vInt(math.MaxInt64), vInt(math.MaxInt64-2)), vF64(1)},
		{"var_samp float large mean", Agg{Function: "var_samp", Input: tFloat64},
			seqAt(vF64(1e9+4), vF64(1e9+7), vF64(1e9+13), vF64(1e9+16)), vF64(30)},

		// last: latest by Order; ties in time go to the later Seq, then Idx.
		{"last", Agg{Function: "last", Input: tInt64}, []aggAdd{{vInt(1), atT(5)}, {vInt(2), atT(9)}, {vInt(3), atT(7)}}, vInt(2)},
		{"last tie later seq wins", Agg{Function: "last", Input: tString},
			[]aggAdd{{vStr("b"), Order{TS: 5, Seq: 9}}, {vStr("a"), Order{TS: 5, Seq: 2}}}, vStr("b")},
		{"last tie later idx wins", Agg{Function: "last", Input: tString},
			[]aggAdd{{vStr("b"), Order{TS: 5, Seq: 9, Idx: 3}}, {vStr("a"), Order{TS: 5, Seq: 9, Idx: 1}}}, vStr("b")},
		{"last array", Agg{Function: "last", Input: tArray},
			[]aggAdd{{arrOf(vInt(1)), atT(2)}, {arrOf(vInt(2), vInt(3)), atT(3)}}, arrOf(vInt(2), vInt(3))},
		{"last bool", Agg{Function: "last", Input: tBool}, seqAt(vBool(true), vBool(false)), vBool(false)},
		{"last timestamp", Agg{Function: "last", Input: tTime}, seqAt(vTime(10), vTime(5)), vTime(5)},
		{"last float32", Agg{Function: "last", Input: tFloat32}, seqAt(vF32(0.1)), vF32(0.1)},

		// n-functions: oldest first.
		{"last_n", Agg{Function: "last_n", N: 2, Input: tInt64}, seqAt(vInt(1), vInt(2), vInt(3)), arrOf(vInt(2), vInt(3))},
		{"last_n fewer than n", Agg{Function: "last_n", N: 5, Input: tInt32}, seqAt(vInt32(1), vInt32(2)), arrOf(vInt32(1), vInt32(2))},
		{"last_n out of order", Agg{Function: "last_n", N: 2, Input: tString},
			[]aggAdd{{vStr("c"), atT(3)}, {vStr("a"), atT(1)}, {vStr("d"), atT(4)}, {vStr("b"), atT(2)}}, arrOf(vStr("c"), vStr("d"))},
		{"last_n tie later seq wins", Agg{Function: "last_n", N: 1, Input: tString},
			[]aggAdd{{vStr("x"), Order{TS: 5, Seq: 2}}, {vStr("y"), Order{TS: 5, Seq: 3}}, {vStr("z"), Order{TS: 5, Seq: 1}}}, arrOf(vStr("y"))},
		{"first_n", Agg{Function: "first_n", N: 2, Input: tFloat64}, seqAt(vF64(1), vF64(2), vF64(3)), arrOf(vF64(1), vF64(2))},
		{"first_n tie earlier seq wins", Agg{Function: "first_n", N: 1, Input: tBool},
			[]aggAdd{{vBool(true), Order{TS: 5, Seq: 2}}, {vBool(false), Order{TS: 5, Seq: 1}}}, arrOf(vBool(false))},
		{"first_n timestamps", Agg{Function: "first_n", N: 3, Input: tTime}, seqAt(vTime(9), vTime(8)), arrOf(vTime(9), vTime(8))},
		{"last_n keeps duplicates", Agg{Function: "last_n", N: 3, Input: tString}, seqAt(vStr("a"), vStr("a"), vStr("b")), arrOf(vStr("a"), vStr("a"), vStr("b"))},
		{"last_distinct_n", Agg{Function: "last_distinct_n", N: 2, Input: tString},
			seqAt(vStr("a"), vStr("b"), vStr("a"), vStr("c"), vStr("b")), arrOf(vStr("c"), vStr("b"))},
		{"last_distinct_n places at latest", Agg{Function: "last_distinct_n", N: 3, Input: tString},
			seqAt(vStr("a"), vStr("b"), vStr("a")), arrOf(vStr("b"), vStr("a"))},
		{"first_distinct_n places at earliest", Agg{Function: "first_distinct_n", N: 3, Input: tString},
			seqAt(vStr("a"), vStr("b"), vStr("a"), vStr("c")), arrOf(vStr("a"), vStr("b"), vStr("c"))},
		{"first_distinct_n keeps the n earliest", Agg{Function: "first_distinct_n", N: 2, Input: tInt32},
			seqAt(vInt32(7), vInt32(7), vInt32(8), vInt32(9), vInt32(7)), arrOf(vInt32(7), vInt32(8))},
		{"last_distinct_n bools", Agg{Function: "last_distinct_n", N: 5, Input: tBool},
			seqAt(vBool(true), vBool(false), vBool(true)), arrOf(vBool(false), vBool(true))},
		{"last_distinct_n NaNs are one value", Agg{Function: "last_distinct_n", N: 5, Input: tFloat64},
			seqAt(vF64(nan), vF64(1), vF64(math.Float64frombits(canonicalNaN^1))), arrOf(vF64(1), vF64(nan))},
		{"last_distinct_n -0 is 0, reported as at its latest occurrence", Agg{Function: "last_distinct_n", N: 5, Input: tFloat64},
			seqAt(vF64(0), vF64(2), vF64(math.Copysign(0, -1))), arrOf(vF64(2), vF64(math.Copysign(0, -1)))},
		{"last_distinct_n many values (indexed)", Agg{Function: "last_distinct_n", N: 17, Input: tInt64},
			seqAt(vInt(1), vInt(2), vInt(1), vInt(3)), arrOf(vInt(2), vInt(1), vInt(3))},

		// approx_count_distinct: typed values; exact while small.
		{"approx_count_distinct", Agg{Function: "approx_count_distinct", Input: tString},
			seqAt(vStr("a"), vStr("b"), vStr("a")), vInt(2)},
		{"approx_count_distinct int32", Agg{Function: "approx_count_distinct", Input: tInt32},
			seqAt(vInt32(1), vInt32(1), vInt32(2)), vInt(2)},
		{"approx_count_distinct floats: NaNs and zeros are one value each", Agg{Function: "approx_count_distinct", Input: tFloat64},
			seqAt(vF64(nan), vF64(math.Float64frombits(canonicalNaN^1)), vF64(0), vF64(math.Copysign(0, -1))), vInt(2)},
		{"approx_count_distinct bool", Agg{Function: "approx_count_distinct", Precision: 4, Input: tBool},
			seqAt(vBool(true), vBool(false), vBool(true)), vInt(2)},

		// approx_percentile: the element of rank ⌊q·(n−1)⌋, within 1%.
		{"approx_percentile median", Agg{Function: "approx_percentile", Percentile: 0.5, Input: tInt64},
			seqAt(vInt(100), vInt(300), vInt(200), vInt(400)), vF64(200)},
		{"approx_percentile zeros and negatives", Agg{Function: "approx_percentile", Percentile: 0.5, Input: tFloat64},
			seqAt(vF64(-5), vF64(0), vF64(0), vF64(7)), vF64(0)},
		{"approx_percentile negative", Agg{Function: "approx_percentile", Percentile: 0, Input: tInt32},
			seqAt(vInt32(-50), vInt32(3)), vF64(-50)},
		{"approx_percentile max", Agg{Function: "approx_percentile", Percentile: 1, Input: tFloat32},
			seqAt(vF32(1), vF32(1000)), vF64(1000)},
		{"approx_percentile NaN sorts first", Agg{Function: "approx_percentile", Percentile: 0, Input: tFloat64},
			seqAt(vF64(1), vF64(nan)), vF64(nan)},
		{"approx_percentile infinities", Agg{Function: "approx_percentile", Percentile: 1, Input: tFloat64},
			seqAt(vF64(inf), vF64(-inf)), vF64(inf)},
		{"approx_percentile -Inf", Agg{Function: "approx_percentile", Percentile: 0, Input: tFloat64},
			seqAt(vF64(inf), vF64(-inf)), vF64(-inf)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, tt.agg.Validate())
			s := tt.agg.New()
			assert.True(t, s.Empty())
			for _, a := range tt.adds {
				s.Add(a.v, a.o)
			}
			assert.Equal(t, len(tt.adds) == 0, s.Empty())
			got := s.Result()
			assertResult(t, tt.agg, tt.want, got)
			assert.Equal(t, tt.agg.ResultType().Kind, resultKind(got, tt.agg), "result type")

			d, err := tt.agg.Decode(s.AppendBinary(nil))
			require.NoError(t, err)
			assertResult(t, tt.agg, tt.want, d.Result())
		})
	}
}

// resultKind is the kind to compare with ResultType: vNull results are of
// any type.
func resultKind(v schema.Value, a Agg) schema.Kind {
	if v.Kind == schema.Null {
		return a.ResultType().Kind
	}
	return v.Kind
}

func assertResult(t *testing.T, a Agg, want, got schema.Value) {
	t.Helper()
	if a.Function == "approx_percentile" && !math.IsInf(want.F, 0) && want.F == want.F {
		require.Equal(t, want.Kind, got.Kind)
		assert.InDelta(t, want.F, got.F, math.Abs(want.F)*0.01, "%v within 1%% of %v", got, want)
		return
	}
	if want.Kind == schema.Float64 && got.Kind == schema.Float64 && !math.IsNaN(want.F) && !math.IsInf(want.F, 0) && want.F != 0 {
		assert.InEpsilon(t, want.F, got.F, 1e-15, "got %v want %v", got, want)
		return
	}
	assert.True(t, want.Kind == got.Kind && want.Equal(got), "got %#v, want %#v", got, want)
	if want.Kind == schema.Float64 && want.F == 0 {
		assert.Equal(t, math.Signbit(want.F), math.Signbit(got.F), "sign of zero")
	}
	if want.Kind == schema.Array {
		assert.NotNil(t, got.A, "an empty array is [], not vNull")
	}
}

func TestPercentileEdgeValues(t *testing.T) {
	a := Agg{Function: "approx_percentile", Percentile: 1, Input: tFloat64}
	for _, tt := range []struct {
		x, want float64
	}{
		{5e-324, 0}, // subnormal: counts as 0
		{-5e-324, 0},
		{math.MaxFloat64, defaultPctMapping.value(defaultPctMapping.key(defaultPctMapping.maxX))}, // clamped
		{1e-300, 1e-300},
		{1e300, 1e300},
	} {
		s := a.New()
		s.Add(vF64(tt.x), atT(1))
		assert.InDelta(t, tt.want, s.Result().F, math.Abs(tt.want)*0.01, "%v", tt.x)
	}
}

func TestPercentilePrecisionMapping(t *testing.T) {
	for _, tt := range []struct {
		prec int
		want int
	}{{0, 100}, {1, 100}, {50, 100}, {100, 100}, {1000, 1000}, {10000, 10000}, {1 << 30, 10000}} {
		a := Agg{Function: "approx_percentile", Percentile: 0.5, Precision: tt.prec, Input: tFloat64}
		assert.Equal(t, tt.want, a.percentilePrecision(), "precision %d", tt.prec)
		s := a.New().(*percentileState)
		assert.InDelta(t, 0.99/float64(tt.want), s.pm.m.RelativeAccuracy(), 1e-12)
	}
}

func TestValidate(t *testing.T) {
	ok := []Agg{
		{Function: "count", Input: tArray},
		{Function: "last", Input: tArray},
		{Function: "last_n", N: 1, Input: tBool},
		{Function: "first_distinct_n", N: MaxN, Input: tString},
		{Function: "approx_count_distinct", Input: tTime},
		{Function: "approx_count_distinct", Precision: 4, Input: tString},
		{Function: "approx_count_distinct", Precision: 16, Input: tString},
		{Function: "approx_percentile", Percentile: 0, Input: tInt32},
		{Function: "approx_percentile", Percentile: 1, Precision: 5000, Input: tFloat32},
		{Function: FuncMoments, Input: tInt64},
		{Function: FuncMomentsVar, Input: tFloat32},
	}
	for _, a := range ok {
		assert.NoError(t, a.Validate(), aggName(a))
	}
	bad := []struct {
		agg  Agg
		want string
	}{
		{Agg{Function: "cnt", Input: tInt64}, `unknown function "cnt"`},
		{Agg{Function: "sum", Input: tString}, "needs a numeric input"},
		{Agg{Function: "min", Input: tTime}, "needs a numeric input"},
		{Agg{Function: "mean", Input: tArray}, "needs a numeric input"},
		{Agg{Function: "last_n", N: 3, Input: tArray}, "cannot aggregate arrays"},
		{Agg{Function: "approx_count_distinct", Input: tArray}, "cannot aggregate arrays"},
		{Agg{Function: "count", Input: schema.Type{Kind: schema.Null}}, "invalid input type"},
		{Agg{Function: "last_n", Input: tInt64}, "n must be between 1 and 1000"},
		{Agg{Function: "last_n", N: 1001, Input: tInt64}, "n must be between 1 and 1000"},
		{Agg{Function: "count", N: 3, Input: tInt64}, "takes no n"},
		{Agg{Function: "approx_percentile", Percentile: 1.5, Input: tInt64}, "percentile must be between 0 and 1"},
		{Agg{Function: "approx_percentile", Percentile: math.NaN(), Input: tInt64}, "percentile must be between 0 and 1"},
		{Agg{Function: "approx_percentile", Percentile: 0.5, Precision: -1, Input: tInt64}, "precision must be positive"},
		{Agg{Function: "sum", Percentile: 0.5, Input: tInt64}, "takes no percentile"},
		{Agg{Function: "approx_count_distinct", Precision: 3, Input: tInt64}, "precision must be between 4 and 16"},
		{Agg{Function: "approx_count_distinct", Precision: 17, Input: tInt64}, "precision must be between 4 and 16"},
		{Agg{Function: "max", Precision: 8, Input: tInt64}, "takes no precision"},
	}
	for _, tt := range bad {
		err := tt.agg.Validate()
		require.Error(t, err, aggName(tt.agg))
		assert.ErrorIs(t, err, ErrInvalidAgg)
		assert.Contains(t, err.Error(), tt.want)
		assert.Panics(t, func() { tt.agg.New() }, "New of an invalid aggregator is a bug")
		_, err = tt.agg.Decode([]byte{stateVersion, codeCount, 0})
		assert.ErrorIs(t, err, ErrInvalidAgg)
	}
}

func TestResultType(t *testing.T) {
	for _, tt := range []struct {
		agg  Agg
		want schema.Type
	}{
		{Agg{Function: "count", Input: tString}, tInt64},
		{Agg{Function: "sum", Input: tInt32}, tInt32},
		{Agg{Function: "sum", Input: tFloat32}, tFloat32},
		{Agg{Function: "min", Input: tInt64}, tInt64},
		{Agg{Function: "max", Input: tFloat64}, tFloat64},
		{Agg{Function: "mean", Input: tInt32}, tFloat64},
		{Agg{Function: "last", Input: tArray}, tArray},
		{Agg{Function: "last_n", N: 2, Input: tBool}, schema.ArrayOf(schema.Bool)},
		{Agg{Function: "first_distinct_n", N: 2, Input: tTime}, schema.ArrayOf(schema.Timestamp)},
		{Agg{Function: "var_samp", Input: tInt64}, tFloat64},
		{Agg{Function: "stddev_pop", Input: tFloat32}, tFloat64},
		{Agg{Function: "approx_count_distinct", Input: tString}, tInt64},
		{Agg{Function: "approx_percentile", Percentile: 0.5, Input: tInt64}, tFloat64},
		{Agg{Function: FuncMoments, Input: tFloat64}, tInt64},
	} {
		assert.Equal(t, tt.want, tt.agg.ResultType(), aggName(tt.agg))
	}
}

func TestFuse(t *testing.T) {
	aggs := []Agg{
		{Function: "count", Input: tInt64},                              // 0: column 0, fused
		{Function: "sum", Input: tInt64},                                // 1: column 0, fused
		{Function: "last", Input: tInt64},                               // 2: column 0, alone
		{Function: "count", Input: tString},                             // 3: column 1 (not numeric), alone
		{Function: "max", Input: tFloat64},                              // 4: column 2, fused with var
		{Function: "var_samp", Input: tFloat64},                         // 5: column 2
		{Function: "mean", Input: tInt64},                               // 6: column 3, the only fusable one: alone
		{Function: "last", Input: tInt64},                               // 7: column 0 again: shares 2's state
		{Function: "last_n", N: 2, Input: tString},                      // 8: column 1
		{Function: "approx_percentile", Percentile: 1, Input: tFloat64}, // 9: column 2, alone
	}
	column := []int{0, 0, 0, 1, 2, 2, 3, 0, 1, 2}
	p := Fuse(aggs, column)
	assert.Equal(t, []Agg{
		{Function: FuncMoments, Input: tInt64},
		aggs[2],
		aggs[3],
		{Function: FuncMomentsVar, Input: tFloat64},
		aggs[6],
		aggs[8],
		aggs[9],
	}, p.States)
	assert.Equal(t, []int{0, 0, 1, 2, 3, 3, 4, 1, 5, 6}, p.Slot)

	states := make([]State, len(p.States))
	for i, a := range p.States {
		states[i] = a.New()
	}
	rows := [][]schema.Value{
		{vInt(3), vStr("a"), vF64(1.5), vInt(10)},
		{vInt(-1), vStr("b"), vF64(2.5), vInt(20)},
		{vInt(7), vStr("c"), vF64(-4), vInt(30)},
	}
	for r, row := range rows {
		for si := range states {
			for i := range aggs { // the column a state reads
				if p.Slot[i] == si {
					states[si].Add(row[column[i]], atT(int64(r)))
					break
				}
			}
		}
	}
	want := make([]schema.Value, len(aggs))
	for i, a := range aggs {
		s := a.New()
		for r, row := range rows {
			s.Add(row[column[i]], atT(int64(r)))
		}
		want[i] = s.Result()
	}
	for i := range aggs {
		assertResult(t, aggs[i], want[i], p.Result(i, states))
	}
	assert.Equal(t, vInt(3), states[0].Result(), "a moments state's own result is its count")
	assert.Panics(t, func() { Agg{Function: "var_pop", Input: tInt64}.ResultFrom(states[0]) },
		"the variance family needs moments_var")
}

func TestFusedEmptyResults(t *testing.T) {
	for _, in := range numericTypes {
		m := Agg{Function: FuncMomentsVar, Input: in}.New()
		for _, r := range fusedReaders(Agg{Function: FuncMomentsVar, Input: in}) {
			assertResult(t, r, r.New().Result(), r.ResultFrom(m))
		}
	}
}

func TestResetCloneAndMergeLeaveOthersAlone(t *testing.T) {
	for _, a := range testAggs() {
		t.Run(aggName(a), func(t *testing.T) {
			evs := genWorkload(newRand(1), a.Input, 50, true)
			s := addAll(a, evs)
			want := s.AppendBinary(nil)
			c := s.Clone()
			other := addAll(a, evs[:10])
			otherBytes := other.AppendBinary(nil)
			c.Merge(other)
			assert.Equal(t, want, s.AppendBinary(nil), "merging into a clone changed the original")
			assert.Equal(t, otherBytes, other.AppendBinary(nil), "Merge changed its argument")
			_ = s.Result()
			assert.Equal(t, want, s.AppendBinary(nil), "Result changed the state")

			s.Reset()
			assert.True(t, s.Empty())
			assertResult(t, a, a.New().Result(), s.Result())
			for _, e := range evs {
				s.Add(e.v, e.o)
			}
			assert.Equal(t, want, s.AppendBinary(nil), "a Reset state refilled differs")
			assert.Positive(t, s.MemSize())
		})
	}
}

func TestMergeOfAnotherAggPanics(t *testing.T) {
	s := Agg{Function: "sum", Input: tInt64}.New()
	assert.Panics(t, func() { s.Merge(Agg{Function: "count", Input: tInt64}.New()) })
	n := Agg{Function: "last_n", N: 2, Input: tInt64}.New()
	assert.Panics(t, func() { n.Merge(Agg{Function: "last_n", N: 3, Input: tInt64}.New()) })
	h := Agg{Function: "approx_count_distinct", Input: tInt64}.New()
	assert.Panics(t, func() { h.Merge(Agg{Function: "approx_count_distinct", Precision: 9, Input: tInt64}.New()) })
}

func TestAddCopiesArrays(t *testing.T) {
	s := Agg{Function: "last", Input: tArray}.New()
	a := []schema.Value{vInt(1)}
	s.Add(arrOf(a...), atT(1))
	a[0] = vInt(9)
	assert.Equal(t, vInt(1), s.Result().A[0])
}

// TestStateSizes pins the in-memory size of the small states: the issue
// asks for count+sum+min+max within 64 bytes per tile.
func TestStateSizes(t *testing.T) {
	size := func(f string, in schema.Type) uintptr {
		switch s := (Agg{Function: f, Input: in}).New().(type) {
		case *countState:
			return unsafe.Sizeof(*s)
		case *intSumState:
			return unsafe.Sizeof(*s)
		case *floatSumState:
			return unsafe.Sizeof(*s)
		case *intMinState:
			return unsafe.Sizeof(*s)
		case *intMaxState:
			return unsafe.Sizeof(*s)
		case *floatMinState:
			return unsafe.Sizeof(*s)
		case *floatMaxState:
			return unsafe.Sizeof(*s)
		case *intMoments:
			return unsafe.Sizeof(*s)
		case *floatMoments:
			return unsafe.Sizeof(*s)
		case *intMomentsVar:
			return unsafe.Sizeof(*s)
		case *floatMomentsVar:
			return unsafe.Sizeof(*s)
		}
		panic(f)
	}
	for _, in := range []schema.Type{tInt64, tFloat64} {
		four := size("count", in) + size("sum", in) + size("min", in) + size("max", in)
		assert.LessOrEqual(t, four, uintptr(64), "count+sum+min+max over %v", in)
		assert.LessOrEqual(t, size(FuncMoments, in), uintptr(40), "moments over %v", in)
		assert.LessOrEqual(t, size(FuncMomentsVar, in), uintptr(64), "moments_var over %v", in)
	}
}

func TestStateErrorIsTyped(t *testing.T) {
	_, err := Agg{Function: "count", Input: tInt64}.Decode([]byte{stateVersion})
	var se *StateError
	require.True(t, errors.As(err, &se))
	assert.ErrorIs(t, err, ErrCorruptState)
	assert.Equal(t, "count", se.Function)
	assert.Equal(t, 1, se.Offset)
}

// TestConcurrentReaders: Result, AppendBinary, Clone, MemSize and being
// merged from modify nothing, so a tile may serve many readers at once
// (run with -race).
func TestConcurrentReaders(t *testing.T) {
	for _, a := range testAggs() {
		tile := addAll(a, genWorkload(newRand(5), a.Input, 200, true))
		want := tile.AppendBinary(nil)
		done := make(chan State)
		for range 4 {
			go func() {
				acc := a.New()
				for range 3 {
					acc.Merge(tile)
					_ = results(a, tile)
					_ = tile.AppendBinary(nil)
					_ = tile.Clone()
					_ = tile.MemSize()
					_ = tile.Empty()
				}
				done <- acc
			}()
		}
		for range 4 {
			<-done
		}
		assert.Equal(t, want, tile.AppendBinary(nil), aggName(a))
	}
}
