package tiles

import (
	"fmt"
	"math"

	"github.com/featurelog/featurelog/schema"
)

// Agg describes one aggregator: a function of SPEC §3 over one input
// column. The zero values of N, Percentile and Precision mean "not given";
// Validate says which function takes which.
//
//	a := tiles.Agg{Function: "sum", Input: schema.ScalarType(schema.Int64)}
//	s := a.New()
//	s.Add(schema.Int(3), tiles.Order{TS: t})
//	v := s.Result() // Int64 3
type Agg struct {
	// Function is a SPEC §3 name: count, sum, min, max, mean, last,
	// last_n, first_n, last_distinct_n, first_distinct_n, var_samp,
	// stddev_samp, var_pop, stddev_pop, approx_count_distinct,
	// approx_percentile; or FuncMoments or FuncMomentsVar, the fused
	// states of Fuse.
	Function string
	// N is how many values the n-functions keep, 1..MaxN; 0 otherwise.
	N int
	// Percentile is approx_percentile's quantile, 0..1; 0 otherwise.
	Percentile float64
	// Precision is approx_count_distinct's HyperLogLog precision, 4..16
	// (0: 8), or approx_percentile's precision, ≥ 1 (0: 100), which maps
	// to the sketch's relative accuracy (see percentileAccuracy); 0
	// otherwise.
	Precision int
	// Input is the input column's type.
	Input schema.Type
}

// Order places an event: event time, then log sequence, then index within
// the log entry. (TS, Seq, Idx) is a total order over events; "latest" is
// the greatest (SPEC §3: ties in event time go to the later-ingested).
type Order struct {
	TS  int64  // event time, Unix ns
	Seq uint64 // log sequence number of the entry holding the event
	Idx uint32 // index of the event within the entry
}

// State is a mutable partial aggregate of one Agg over some set of events.
// A State is not safe for concurrent use, except that any number of
// goroutines may call Result, AppendBinary, Empty, MemSize and Clone, and
// pass it as the argument of Merge into other states, while nobody
// modifies it: none of those mutate the receiver or the argument.
type State interface {
	// Add adds one value at o. v is never null (the caller drops nulls)
	// and is of the Agg's input type. Add retains no memory of v that the
	// caller may later modify (arrays are copied; strings are immutable).
	Add(v schema.Value, o Order)
	// Merge adds everything other holds. other is a State of the same
	// Agg (anything else is a bug and panics) and is not modified. Merge
	// is commutative and associative: see the package's merge
	// invariants in docs/format/tiles.md for the exact guarantee per
	// function (exact for everything but float sums and moments, which
	// agree to rounding).
	Merge(other State)
	// Result returns the finalized value, with SPEC §3's empty-window
	// results. The value may share memory with the state (an array
	// retained by last): treat it as read-only.
	Result() schema.Value
	// AppendBinary appends the state's versioned encoding
	// (docs/format/tiles.md) to dst.
	AppendBinary(dst []byte) []byte
	// Reset empties the state, keeping its capacity for reuse.
	Reset()
	// Empty reports whether no value was added or merged since the state
	// was made or Reset.
	Empty() bool
	// Clone returns an independent deep copy.
	Clone() State
	// MemSize estimates the bytes the state holds in memory, including
	// its own struct and everything it references exclusively.
	MemSize() int
}

// MaxN bounds N of the n-functions (SPEC §3).
const MaxN = 1000

// Default precisions (SPEC §3).
const (
	DefaultHLLPrecision        = 8
	DefaultPercentilePrecision = 100
)

// FuncMoments is the function of the fused moments state that Fuse plans
// for several of count, sum, min, max, mean and the variance family over
// one numeric column. Its own Result is the count; read the other
// functions with Agg.ResultFrom.
const FuncMoments = "moments"

// fn identifies a function; its flags say what it takes.
type fn uint8

const (
	fnCount fn = iota + 1
	fnSum
	fnMin
	fnMax
	fnMean
	fnLast
	fnLastN
	fnFirstN
	fnLastDistinctN
	fnFirstDistinctN
	fnVarSamp
	fnStddevSamp
	fnVarPop
	fnStddevPop
	fnApproxCountDistinct
	fnApproxPercentile
	fnMoments
	fnMomentsVar
)

var fnNames = [...]string{
	fnCount: "count", fnSum: "sum", fnMin: "min", fnMax: "max", fnMean: "mean", fnLast: "last",
	fnLastN: "last_n", fnFirstN: "first_n", fnLastDistinctN: "last_distinct_n",
	fnFirstDistinctN: "first_distinct_n", fnVarSamp: "var_samp", fnStddevSamp: "stddev_samp",
	fnVarPop: "var_pop", fnStddevPop: "stddev_pop", fnApproxCountDistinct: "approx_count_distinct",
	fnApproxPercentile: "approx_percentile", fnMoments: FuncMoments, fnMomentsVar: FuncMomentsVar,
}

func lookupFn(name string) fn {
	for f := fnCount; f <= fnMomentsVar; f++ {
		if fnNames[f] == name {
			return f
		}
	}
	return 0
}

func (f fn) String() string { return fnNames[f] }

// numericOnly: the input must be Int64, Int32, Float64 or Float32.
func (f fn) numericOnly() bool {
	switch f {
	case fnSum, fnMin, fnMax, fnMean, fnVarSamp, fnStddevSamp, fnVarPop, fnStddevPop,
		fnApproxPercentile, fnMoments, fnMomentsVar:
		return true
	}
	return false
}

// scalarOnly: the input must not be an array.
func (f fn) scalarOnly() bool { return f.takesN() || f == fnApproxCountDistinct }

func (f fn) takesN() bool {
	return f == fnLastN || f == fnFirstN || f == fnLastDistinctN || f == fnFirstDistinctN
}

func (f fn) variance() bool {
	return f == fnVarSamp || f == fnStddevSamp || f == fnVarPop || f == fnStddevPop
}

// fusable: a moments state can answer f.
func (f fn) fusable() bool {
	return f == fnCount || f == fnSum || f == fnMin || f == fnMax || f == fnMean || f.variance()
}

// Validate reports whether a describes an aggregator this package can
// build: a known function, an input type it accepts, and exactly the
// parameters it takes, in range. Errors wrap ErrInvalidAgg.
func (a Agg) Validate() error {
	f := lookupFn(a.Function)
	switch {
	case f == 0:
		return fmt.Errorf("%w: unknown function %q", ErrInvalidAgg, a.Function)
	case !a.Input.Valid():
		return fmt.Errorf("%w: %s: invalid input type %v", ErrInvalidAgg, f, a.Input)
	case f.numericOnly() && !a.Input.Kind.Numeric():
		return fmt.Errorf("%w: %s needs a numeric input (Int64, Int32, Float64 or Float32), got %v", ErrInvalidAgg, f, a.Input)
	case f.scalarOnly() && a.Input.Kind == schema.Array:
		return fmt.Errorf("%w: %s cannot aggregate arrays, got %v", ErrInvalidAgg, f, a.Input)
	}
	if err := a.validateParams(f); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidAgg, f, err)
	}
	return nil
}

func (a Agg) validateParams(f fn) error {
	switch {
	case f.takesN() && (a.N < 1 || a.N > MaxN):
		return fmt.Errorf("n must be between 1 and %d, got %d", MaxN, a.N)
	case !f.takesN() && a.N != 0:
		return fmt.Errorf("takes no n, got %d", a.N)
	case f == fnApproxPercentile && !(a.Percentile >= 0 && a.Percentile <= 1):
		return fmt.Errorf("percentile must be between 0 and 1, got %v", a.Percentile)
	case f != fnApproxPercentile && a.Percentile != 0:
		return fmt.Errorf("takes no percentile, got %v", a.Percentile)
	case f == fnApproxCountDistinct && a.Precision != 0 && (a.Precision < 4 || a.Precision > 16):
		return fmt.Errorf("precision must be between 4 and 16, got %d", a.Precision)
	case f == fnApproxPercentile && a.Precision < 0:
		return fmt.Errorf("precision must be positive, got %d", a.Precision)
	case f != fnApproxCountDistinct && f != fnApproxPercentile && a.Precision != 0:
		return fmt.Errorf("takes no precision, got %d", a.Precision)
	}
	return nil
}

// ResultType returns the type of a's results (SPEC §3): Int64 for count
// and approx_count_distinct (and moments), the input type for sum, min,
// max and last, Array(input) for the n-functions, Float64 for the rest.
func (a Agg) ResultType() schema.Type {
	switch f := lookupFn(a.Function); {
	case f == fnCount || f == fnApproxCountDistinct || f == fnMoments || f == fnMomentsVar:
		return schema.ScalarType(schema.Int64)
	case f == fnSum || f == fnMin || f == fnMax || f == fnLast:
		return a.Input
	case f.takesN():
		return schema.ArrayOf(a.Input.Kind)
	}
	return schema.ScalarType(schema.Float64)
}

// New returns an empty State of a. a must be valid (see Validate); New
// panics otherwise, as that is a bug in the caller.
func (a Agg) New() State {
	if err := a.Validate(); err != nil {
		panic("BUG: tiles: New of an invalid aggregator: " + err.Error())
	}
	return a.newState()
}

// newState builds the state of a valid a.
func (a Agg) newState() codecState {
	f, k := lookupFn(a.Function), a.Input.Kind
	integral := k.Integral()
	switch {
	case f == fnCount:
		return &countState{}
	case f == fnSum && integral:
		return newIntSum(k)
	case f == fnSum:
		return newFloatSum(k)
	case f == fnMean && integral:
		return &intMeanState{}
	case f == fnMean:
		return &floatMeanState{}
	case f == fnMin && integral:
		return newIntMin(k)
	case f == fnMin:
		return newFloatMin(k)
	case f == fnMax && integral:
		return newIntMax(k)
	case f == fnMax:
		return newFloatMax(k)
	case f.variance() && integral:
		return &intVarState{fn: f}
	case f.variance():
		return &floatVarState{fn: f}
	case f == fnLast:
		return &lastState{t: a.Input}
	case f.takesN():
		return newNState(f, a.N, k)
	case f == fnApproxCountDistinct:
		return newHLLState(a.hllPrecision())
	case f == fnApproxPercentile:
		return newPercentileState(a.percentilePrecision(), a.Percentile)
	case f == fnMoments && integral:
		return newIntMoments(k)
	case f == fnMoments:
		return newFloatMoments(k)
	case f == fnMomentsVar && integral:
		return newIntMomentsVar(k)
	case f == fnMomentsVar:
		return newFloatMomentsVar(k)
	}
	panic("BUG: tiles: no state for " + a.Function)
}

// Decode returns the State encoded in data by AppendBinary of a State of
// an Agg equal to a. Bad data yields a *StateError (wrapping
// ErrCorruptState); Decode never panics on any input.
func (a Agg) Decode(data []byte) (State, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	s := a.newState()
	if err := decodeInto(s, a.Function, data); err != nil {
		return nil, err
	}
	return s, nil
}

// DecodeInto is Decode into an existing State of a (made by a.New or
// a.Decode), reusing its memory. On error dst is left empty.
func (a Agg) DecodeInto(dst State, data []byte) error {
	s, ok := dst.(codecState)
	if !ok {
		panic(fmt.Sprintf("BUG: tiles: DecodeInto a %T", dst))
	}
	return decodeInto(s, a.Function, data)
}

// hllPrecision is the HyperLogLog precision, defaulted.
func (a Agg) hllPrecision() uint8 {
	if a.Precision == 0 {
		return DefaultHLLPrecision
	}
	return uint8(a.Precision)
}

// percentilePrecision is approx_percentile's precision as the sketch uses
// it: defaulted, then clamped to [minPercentilePrecision,
// maxPercentilePrecision] (see percentileAccuracy).
func (a Agg) percentilePrecision() int {
	p := a.Precision
	if p == 0 {
		p = DefaultPercentilePrecision
	}
	return min(max(p, minPercentilePrecision), maxPercentilePrecision)
}

// cmpOrder compares two orders: negative when o comes before p.
func cmpOrder(o, p Order) int {
	switch {
	case o.TS != p.TS:
		return cmpInt(o.TS, p.TS)
	case o.Seq != p.Seq:
		if o.Seq < p.Seq {
			return -1
		}
		return 1
	case o.Idx != p.Idx:
		if o.Idx < p.Idx {
			return -1
		}
		return 1
	}
	return 0
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// canonicalNaN is the one NaN bit pattern distinct-value and hashing code
// uses, so that every NaN is the same value (as schema.Value.Equal says).
var canonicalNaN = math.Float64bits(math.NaN())

// canonFloatBits returns f's bits with every zero as +0 and every NaN as
// canonicalNaN: equal under schema.Value.Equal means equal bits.
func canonFloatBits(f float64) uint64 {
	switch {
	case f == 0:
		return 0
	case f != f:
		return canonicalNaN
	}
	return math.Float64bits(f)
}
