package tiles

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/featurelog/featurelog/schema"
)

// The states of count, sum, mean, min and max: small fixed structs whose
// Add and Merge allocate nothing.
//
// Integral sums are exact (i128); a result beyond the result type
// saturates at its minimum or maximum (an Int32 sum at ±2^31, an Int64
// sum at ±2^63), since a read cannot fail and the nearest representable
// value is the least wrong one. Float sums use Neumaier's compensated
// summation with a merge that is exactly commutative; regrouping changes
// only the rounding of the compensation (a relative error near 1e-16
// unless the sum cancels). Min and max of floats follow Go's min and max:
// a NaN anywhere makes the result NaN, and -0 is below +0, so every merge
// order gives the same bits.

// mergeMismatch panics: Merge was handed a state of another aggregator.
func mergeMismatch(s, other State) {
	panic(fmt.Sprintf("BUG: tiles: merge of a %T into a %T", other, s))
}

// countState is count: the number of (non-null) values.
type countState struct {
	n int64
}

func (s *countState) Add(schema.Value, Order) { s.n++ }

func (s *countState) Merge(other State) {
	o, ok := other.(*countState)
	if !ok {
		mergeMismatch(s, other)
	}
	s.n += o.n
}

func (s *countState) Result() schema.Value { return schema.Int(s.n) }
func (s *countState) Reset()               { s.n = 0 }
func (s *countState) Empty() bool          { return s.n == 0 }
func (s *countState) Clone() State         { c := *s; return &c }
func (s *countState) MemSize() int         { return int(unsafe.Sizeof(*s)) }
func (s *countState) code() byte           { return codeCount }

func (s *countState) AppendBinary(dst []byte) []byte {
	return binary.AppendUvarint(appendHeader(dst, codeCount), uint64(s.n))
}

func (s *countState) decode(r *reader) { s.n = r.n64() }

// intResult returns an exact integral sum as a value of kind k (Int64 or
// Int32), saturated to k's range.
func intResult(k schema.Kind, sum i128) schema.Value {
	if k == schema.Int32 {
		return schema.Value{Kind: k, I: sum.clamp(math.MinInt32, math.MaxInt32)}
	}
	return schema.Value{Kind: k, I: sum.clamp(math.MinInt64, math.MaxInt64)}
}

// floatResult returns f as a value of kind k (Float64 or Float32).
func floatResult(k schema.Kind, f float64) schema.Value {
	if k == schema.Float32 {
		return schema.Value{Kind: k, F: float64(float32(f))}
	}
	return schema.Value{Kind: k, F: f}
}

// intSumState is sum over Int64 or Int32.
type intSumState struct {
	s  i128
	k  schema.Kind // result kind: the input's
	ok bool        // a value was added
}

func newIntSum(k schema.Kind) *intSumState { return &intSumState{k: k} }

func (s *intSumState) Add(v schema.Value, _ Order) { s.s.add64(v.I); s.ok = true }

func (s *intSumState) Merge(other State) {
	o, ok := other.(*intSumState)
	if !ok {
		mergeMismatch(s, other)
	}
	s.s.add(o.s)
	s.ok = s.ok || o.ok
}

func (s *intSumState) Result() schema.Value {
	if !s.ok {
		return schema.Value{}
	}
	return intResult(s.k, s.s)
}

func (s *intSumState) Reset()       { *s = intSumState{k: s.k} }
func (s *intSumState) Empty() bool  { return !s.ok }
func (s *intSumState) Clone() State { c := *s; return &c }
func (s *intSumState) MemSize() int { return int(unsafe.Sizeof(*s)) }
func (s *intSumState) code() byte   { return codeIntSum }

func (s *intSumState) AppendBinary(dst []byte) []byte {
	dst = appendHeader(dst, codeIntSum)
	if !s.ok {
		return dst
	}
	return appendI128(dst, s.s)
}

func (s *intSumState) decode(r *reader) {
	if r.left() > 0 {
		s.s, s.ok = r.i128(), true
	}
}

// neumaier adds x to the compensated sum (s, c).
func neumaier(s, c, x float64) (float64, float64) {
	t := s + x
	if math.Abs(s) >= math.Abs(x) {
		c += (s - t) + x
	} else {
		c += (x - t) + s
	}
	return t, c
}

// mergeNeumaier adds the compensated sum (s2, c2) to (s1, c1). The result
// does not depend on the order of the two operands: the correction of
// s1 + s2 is symmetric, and c1 + c2 commutes.
func mergeNeumaier(s1, c1, s2, c2 float64) (float64, float64) {
	t, corr := neumaier(s1, 0, s2)
	return t, (c1 + c2) + corr
}

// neumaierTotal finalizes a compensated sum. An infinite or NaN sum is
// returned as is: its compensation is meaningless (Inf − Inf).
func neumaierTotal(s, c float64) float64 {
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return s
	}
	return s + c
}

// floatSumState is sum over Float64 or Float32 (accumulated in float64).
type floatSumState struct {
	s, c float64     // Neumaier sum and compensation
	k    schema.Kind // result kind: the input's
	ok   bool
}

func newFloatSum(k schema.Kind) *floatSumState { return &floatSumState{k: k} }

func (s *floatSumState) Add(v schema.Value, _ Order) {
	s.s, s.c = neumaier(s.s, s.c, v.F)
	s.ok = true
}

func (s *floatSumState) Merge(other State) {
	o, ok := other.(*floatSumState)
	if !ok {
		mergeMismatch(s, other)
	}
	if o.ok {
		s.s, s.c = mergeNeumaier(s.s, s.c, o.s, o.c)
		s.ok = true
	}
}

func (s *floatSumState) Result() schema.Value {
	if !s.ok {
		return schema.Value{}
	}
	return floatResult(s.k, neumaierTotal(s.s, s.c))
}

func (s *floatSumState) Reset()       { *s = floatSumState{k: s.k} }
func (s *floatSumState) Empty() bool  { return !s.ok }
func (s *floatSumState) Clone() State { c := *s; return &c }
func (s *floatSumState) MemSize() int { return int(unsafe.Sizeof(*s)) }
func (s *floatSumState) code() byte   { return codeFloatSum }

func (s *floatSumState) AppendBinary(dst []byte) []byte {
	dst = appendHeader(dst, codeFloatSum)
	if !s.ok {
		return dst
	}
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.s))
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.c))
}

func (s *floatSumState) decode(r *reader) {
	if r.left() > 0 {
		s.s, s.c, s.ok = r.f64(), r.f64(), true
	}
}

// intMeanState is mean over Int64 or Int32: an exact sum and a count.
type intMeanState struct {
	s i128
	n int64
}

func (s *intMeanState) Add(v schema.Value, _ Order) { s.s.add64(v.I); s.n++ }

func (s *intMeanState) Merge(other State) {
	o, ok := other.(*intMeanState)
	if !ok {
		mergeMismatch(s, other)
	}
	s.s.add(o.s)
	s.n += o.n
}

func (s *intMeanState) Result() schema.Value {
	if s.n == 0 {
		return schema.Value{}
	}
	return schema.Float(s.s.float64() / float64(s.n))
}

func (s *intMeanState) Reset()       { *s = intMeanState{} }
func (s *intMeanState) Empty() bool  { return s.n == 0 }
func (s *intMeanState) Clone() State { c := *s; return &c }
func (s *intMeanState) MemSize() int { return int(unsafe.Sizeof(*s)) }
func (s *intMeanState) code() byte   { return codeIntMean }

func (s *intMeanState) AppendBinary(dst []byte) []byte {
	dst = binary.AppendUvarint(appendHeader(dst, codeIntMean), uint64(s.n))
	if s.n == 0 {
		return dst
	}
	return appendI128(dst, s.s)
}

func (s *intMeanState) decode(r *reader) {
	if s.n = r.n64(); s.n > 0 {
		s.s = r.i128()
	}
}

// floatMeanState is mean over Float64 or Float32.
type floatMeanState struct {
	s, c float64 // Neumaier sum and compensation
	n    int64
}

func (s *floatMeanState) Add(v schema.Value, _ Order) {
	s.s, s.c = neumaier(s.s, s.c, v.F)
	s.n++
}

func (s *floatMeanState) Merge(other State) {
	o, ok := other.(*floatMeanState)
	if !ok {
		mergeMismatch(s, other)
	}
	if o.n > 0 {
		s.s, s.c = mergeNeumaier(s.s, s.c, o.s, o.c)
		s.n += o.n
	}
}

func (s *floatMeanState) Result() schema.Value {
	if s.n == 0 {
		return schema.Value{}
	}
	return schema.Float(neumaierTotal(s.s, s.c) / float64(s.n))
}

func (s *floatMeanState) Reset()       { *s = floatMeanState{} }
func (s *floatMeanState) Empty() bool  { return s.n == 0 }
func (s *floatMeanState) Clone() State { c := *s; return &c }
func (s *floatMeanState) MemSize() int { return int(unsafe.Sizeof(*s)) }
func (s *floatMeanState) code() byte   { return codeFloatMean }

func (s *floatMeanState) AppendBinary(dst []byte) []byte {
	dst = binary.AppendUvarint(appendHeader(dst, codeFloatMean), uint64(s.n))
	if s.n == 0 {
		return dst
	}
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.s))
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.c))
}

func (s *floatMeanState) decode(r *reader) {
	if s.n = r.n64(); s.n > 0 {
		s.s, s.c = r.f64(), r.f64()
	}
}

// intMinState is min over Int64 or Int32. v starts at MaxInt64 so that
// Add and Merge need no branch.
type intMinState struct {
	v  int64
	k  schema.Kind
	ok bool
}

func newIntMin(k schema.Kind) *intMinState { return &intMinState{v: math.MaxInt64, k: k} }

func (s *intMinState) Add(v schema.Value, _ Order) { s.v = min(s.v, v.I); s.ok = true }

func (s *intMinState) Merge(other State) {
	o, ok := other.(*intMinState)
	if !ok {
		mergeMismatch(s, other)
	}
	s.v = min(s.v, o.v)
	s.ok = s.ok || o.ok
}

func (s *intMinState) Result() schema.Value {
	if !s.ok {
		return schema.Value{}
	}
	return schema.Value{Kind: s.k, I: s.v}
}

func (s *intMinState) Reset()       { *s = intMinState{v: math.MaxInt64, k: s.k} }
func (s *intMinState) Empty() bool  { return !s.ok }
func (s *intMinState) Clone() State { c := *s; return &c }
func (s *intMinState) MemSize() int { return int(unsafe.Sizeof(*s)) }
func (s *intMinState) code() byte   { return codeIntMin }

func (s *intMinState) AppendBinary(dst []byte) []byte {
	return appendIntExtreme(appendHeader(dst, codeIntMin), s.ok, s.v)
}

func (s *intMinState) decode(r *reader) { s.v, s.ok = r.intExtreme(s.k, s.v) }

// intMaxState is max over Int64 or Int32; v starts at MinInt64.
type intMaxState struct {
	v  int64
	k  schema.Kind
	ok bool
}

func newIntMax(k schema.Kind) *intMaxState { return &intMaxState{v: math.MinInt64, k: k} }

func (s *intMaxState) Add(v schema.Value, _ Order) { s.v = max(s.v, v.I); s.ok = true }

func (s *intMaxState) Merge(other State) {
	o, ok := other.(*intMaxState)
	if !ok {
		mergeMismatch(s, other)
	}
	s.v = max(s.v, o.v)
	s.ok = s.ok || o.ok
}

func (s *intMaxState) Result() schema.Value {
	if !s.ok {
		return schema.Value{}
	}
	return schema.Value{Kind: s.k, I: s.v}
}

func (s *intMaxState) Reset()       { *s = intMaxState{v: math.MinInt64, k: s.k} }
func (s *intMaxState) Empty() bool  { return !s.ok }
func (s *intMaxState) Clone() State { c := *s; return &c }
func (s *intMaxState) MemSize() int { return int(unsafe.Sizeof(*s)) }
func (s *intMaxState) code() byte   { return codeIntMax }

func (s *intMaxState) AppendBinary(dst []byte) []byte {
	return appendIntExtreme(appendHeader(dst, codeIntMax), s.ok, s.v)
}

func (s *intMaxState) decode(r *reader) { s.v, s.ok = r.intExtreme(s.k, s.v) }

// appendIntExtreme appends an integral min or max: nothing when empty,
// else v:varint.
func appendIntExtreme(dst []byte, ok bool, v int64) []byte {
	if !ok {
		return dst
	}
	return binary.AppendVarint(dst, v)
}

// intExtreme reads what appendIntExtreme wrote; empty keeps the sentinel.
func (r *reader) intExtreme(k schema.Kind, sentinel int64) (int64, bool) {
	if r.left() == 0 {
		return sentinel, false
	}
	x, _ := r.scalar(k)
	return int64(x), true
}

// floatMinState is min over Float64 or Float32; v starts at +Inf.
type floatMinState struct {
	v  float64
	k  schema.Kind
	ok bool
}

func newFloatMin(k schema.Kind) *floatMinState {
	return &floatMinState{v: math.Inf(1), k: k}
}

func (s *floatMinState) Add(v schema.Value, _ Order) { s.v = min(s.v, v.F); s.ok = true }

func (s *floatMinState) Merge(other State) {
	o, ok := other.(*floatMinState)
	if !ok {
		mergeMismatch(s, other)
	}
	s.v = min(s.v, o.v)
	s.ok = s.ok || o.ok
}

func (s *floatMinState) Result() schema.Value {
	if !s.ok {
		return schema.Value{}
	}
	return schema.Value{Kind: s.k, F: s.v}
}

func (s *floatMinState) Reset()       { *s = floatMinState{v: math.Inf(1), k: s.k} }
func (s *floatMinState) Empty() bool  { return !s.ok }
func (s *floatMinState) Clone() State { c := *s; return &c }
func (s *floatMinState) MemSize() int { return int(unsafe.Sizeof(*s)) }
func (s *floatMinState) code() byte   { return codeFloatMin }

func (s *floatMinState) AppendBinary(dst []byte) []byte {
	return appendFloatExtreme(appendHeader(dst, codeFloatMin), s.ok, s.v)
}

func (s *floatMinState) decode(r *reader) { s.v, s.ok = r.floatExtreme(s.k, s.v) }

// floatMaxState is max over Float64 or Float32; v starts at -Inf.
type floatMaxState struct {
	v  float64
	k  schema.Kind
	ok bool
}

func newFloatMax(k schema.Kind) *floatMaxState {
	return &floatMaxState{v: math.Inf(-1), k: k}
}

func (s *floatMaxState) Add(v schema.Value, _ Order) { s.v = max(s.v, v.F); s.ok = true }

func (s *floatMaxState) Merge(other State) {
	o, ok := other.(*floatMaxState)
	if !ok {
		mergeMismatch(s, other)
	}
	s.v = max(s.v, o.v)
	s.ok = s.ok || o.ok
}

func (s *floatMaxState) Result() schema.Value {
	if !s.ok {
		return schema.Value{}
	}
	return schema.Value{Kind: s.k, F: s.v}
}

func (s *floatMaxState) Reset()       { *s = floatMaxState{v: math.Inf(-1), k: s.k} }
func (s *floatMaxState) Empty() bool  { return !s.ok }
func (s *floatMaxState) Clone() State { c := *s; return &c }
func (s *floatMaxState) MemSize() int { return int(unsafe.Sizeof(*s)) }
func (s *floatMaxState) code() byte   { return codeFloatMax }

func (s *floatMaxState) AppendBinary(dst []byte) []byte {
	return appendFloatExtreme(appendHeader(dst, codeFloatMax), s.ok, s.v)
}

func (s *floatMaxState) decode(r *reader) { s.v, s.ok = r.floatExtreme(s.k, s.v) }

// appendFloatExtreme appends a float min or max: nothing when empty, else
// v:f64.
func appendFloatExtreme(dst []byte, ok bool, v float64) []byte {
	if !ok {
		return dst
	}
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

// floatExtreme reads what appendFloatExtreme wrote, checking a Float32
// state holds a float32 value.
func (r *reader) floatExtreme(k schema.Kind, sentinel float64) (float64, bool) {
	if r.left() == 0 {
		return sentinel, false
	}
	f := r.f64()
	if k == schema.Float32 && float64(float32(f)) != f && f == f {
		r.fail("%v is not a Float32 value", f)
	}
	return f, true
}
