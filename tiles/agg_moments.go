package tiles

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/featurelog/featurelog/schema"
)

// Fused moments. A view often aggregates one column several ways (count,
// sum, mean, min, max over 1h, 1d, 7d). Separate states cost one struct
// and one interface slot each; one moments state answers all of them:
//
//	count+sum+min+max (Int64)   separate: 8+24+16+16 = 64 B in 4 objects
//	                            moments:  40 B in 1 object
//	with the variance family    moments_var: 64 B (ints), 56 B (floats)
//
// The state's own Result is the count; Agg.ResultFrom (or Plan.Result)
// reads any covered function from it, with the same values, empty-window
// results and merge guarantees as the separate states.

// FuncMomentsVar is FuncMoments plus the variance family.
const FuncMomentsVar = "moments_var"

// Plan maps a view's aggregators onto the States a tile keeps.
type Plan struct {
	// States are the aggregators whose States a tile keeps, in order.
	States []Agg
	// Slot[i] is the index in States of the state that answers aggs[i].
	Slot []int
	aggs []Agg
}

// Fuse plans the states for aggs, where column[i] identifies the input
// column of aggs[i] (say, its index in the values passed to the store).
// Equal aggregators over one column share a state; two or more of count,
// sum, min, max, mean and the variance family over one numeric column
// share one FuncMoments (or FuncMomentsVar) state. Every agg must be
// valid.
func Fuse(aggs []Agg, column []int) Plan {
	if len(column) != len(aggs) {
		panic("BUG: tiles: Fuse needs one column per aggregator")
	}
	p := Plan{Slot: make([]int, len(aggs)), aggs: aggs}
	fused := map[int]int{} // column → index in States of its moments state
	for i, a := range aggs {
		if f := lookupFn(a.Function); f.fusable() && a.Input.Kind.Numeric() && fusableOn(aggs, column, column[i]) {
			p.Slot[i] = p.momentsSlot(fused, column[i], a.Input, hasVariance(aggs, column, column[i]))
			continue
		}
		p.Slot[i] = p.slot(a, column, i)
	}
	return p
}

// fusableOn reports whether column c has two or more fusable aggregators.
func fusableOn(aggs []Agg, column []int, c int) bool {
	n := 0
	for i, a := range aggs {
		if column[i] == c && lookupFn(a.Function).fusable() {
			n++
		}
	}
	return n >= 2
}

func hasVariance(aggs []Agg, column []int, c int) bool {
	for i, a := range aggs {
		if column[i] == c && lookupFn(a.Function).variance() {
			return true
		}
	}
	return false
}

func (p *Plan) momentsSlot(fused map[int]int, c int, in schema.Type, variance bool) int {
	if s, ok := fused[c]; ok {
		return s
	}
	f := FuncMoments
	if variance {
		f = FuncMomentsVar
	}
	p.States = append(p.States, Agg{Function: f, Input: in})
	fused[c] = len(p.States) - 1
	return len(p.States) - 1
}

// slot returns the state of aggs[i] alone, shared with an equal earlier
// aggregator over the same column.
func (p *Plan) slot(a Agg, column []int, i int) int {
	for j := range i {
		if p.aggs[j] == a && column[j] == column[i] {
			return p.Slot[j]
		}
	}
	p.States = append(p.States, a)
	return len(p.States) - 1
}

// Result returns aggs[i]'s value from a tile's (or a merged range's)
// states, one per p.States.
func (p *Plan) Result(i int, states []State) schema.Value {
	return p.aggs[i].ResultFrom(states[p.Slot[i]])
}

// ResultFrom returns a's result read from s: a State of a itself, or a
// moments state (FuncMoments, FuncMomentsVar) over a's input when a is
// count, sum, min, max, mean or (from FuncMomentsVar) the variance family.
func (a Agg) ResultFrom(s State) schema.Value {
	f, k := lookupFn(a.Function), a.Input.Kind
	switch m := s.(type) {
	case *intMoments:
		return m.result(f, k)
	case *intMomentsVar:
		if f.variance() {
			return varianceValue(f, m.n, intVarNumerator(m.n, m.s, m.q), float64(m.n))
		}
		return m.result(f, k)
	case *floatMoments:
		return m.result(f, k)
	case *floatMomentsVar:
		if f.variance() {
			return varianceValue(f, m.n, m.m2, 1)
		}
		return m.result(f, k)
	}
	return s.Result()
}

func fusedMismatch(f fn, s State) {
	panic(fmt.Sprintf("BUG: tiles: %s cannot be read from a %T", f, s))
}

// intMoments is count, sum, min, max and mean over Int64 or Int32.
type intMoments struct {
	n        int64
	s        i128
	min, max int64 // MaxInt64, MinInt64 while empty
}

func newIntMoments(k schema.Kind) codecState {
	return &intMoments{min: math.MaxInt64, max: math.MinInt64}
}

func (s *intMoments) Add(v schema.Value, _ Order) { s.add(v.I) }

func (s *intMoments) add(x int64) {
	s.n++
	s.s.add64(x)
	s.min = min(s.min, x)
	s.max = max(s.max, x)
}

func (s *intMoments) merge(o *intMoments) {
	s.n += o.n
	s.s.add(o.s)
	s.min = min(s.min, o.min)
	s.max = max(s.max, o.max)
}

func (s *intMoments) Merge(other State) {
	o, ok := other.(*intMoments)
	if !ok {
		mergeMismatch(s, other)
	}
	s.merge(o)
}

func (s *intMoments) result(f fn, k schema.Kind) schema.Value {
	if f == fnCount || f == fnMoments || f == fnMomentsVar {
		return schema.Int(s.n)
	}
	if s.n == 0 {
		return schema.Value{}
	}
	switch f {
	case fnSum:
		return intResult(k, s.s)
	case fnMin:
		return schema.Value{Kind: k, I: s.min}
	case fnMax:
		return schema.Value{Kind: k, I: s.max}
	case fnMean:
		return schema.Float(s.s.float64() / float64(s.n))
	}
	fusedMismatch(f, s)
	return schema.Value{}
}

func (s *intMoments) Result() schema.Value { return schema.Int(s.n) }
func (s *intMoments) Reset()               { *s = intMoments{min: math.MaxInt64, max: math.MinInt64} }
func (s *intMoments) Empty() bool          { return s.n == 0 }
func (s *intMoments) Clone() State         { c := *s; return &c }
func (s *intMoments) MemSize() int         { return int(unsafe.Sizeof(*s)) }
func (s *intMoments) code() byte           { return codeIntMoments }

func (s *intMoments) AppendBinary(dst []byte) []byte {
	return s.appendPayload(appendHeader(dst, codeIntMoments))
}

// appendPayload appends n:uvarint, then when n > 0 sum:i128 min:varint
// max:varint.
func (s *intMoments) appendPayload(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(s.n))
	if s.n == 0 {
		return dst
	}
	dst = appendI128(dst, s.s)
	dst = binary.AppendVarint(dst, s.min)
	return binary.AppendVarint(dst, s.max)
}

func (s *intMoments) decode(r *reader) {
	if s.n = r.n64(); s.n > 0 {
		s.s, s.min, s.max = r.i128(), r.varint(), r.varint()
		if s.min > s.max {
			r.fail("min %d above max %d", s.min, s.max)
		}
	}
}

// intMomentsVar is intMoments plus Σx² for the variance family.
type intMomentsVar struct {
	intMoments
	q u192
}

func newIntMomentsVar(k schema.Kind) codecState {
	return &intMomentsVar{intMoments: intMoments{min: math.MaxInt64, max: math.MinInt64}}
}

func (s *intMomentsVar) Add(v schema.Value, _ Order) {
	s.add(v.I)
	s.q.addSquare(v.I)
}

func (s *intMomentsVar) Merge(other State) {
	o, ok := other.(*intMomentsVar)
	if !ok {
		mergeMismatch(s, other)
	}
	s.merge(&o.intMoments)
	s.q.add(o.q)
}

func (s *intMomentsVar) Reset() {
	*s = intMomentsVar{intMoments: intMoments{min: math.MaxInt64, max: math.MinInt64}}
}
func (s *intMomentsVar) Clone() State { c := *s; return &c }
func (s *intMomentsVar) MemSize() int { return int(unsafe.Sizeof(*s)) }
func (s *intMomentsVar) code() byte   { return codeIntMomentsVar }

func (s *intMomentsVar) AppendBinary(dst []byte) []byte {
	dst = s.appendPayload(appendHeader(dst, codeIntMomentsVar))
	if s.n == 0 {
		return dst
	}
	return appendU192(dst, s.q)
}

func (s *intMomentsVar) decode(r *reader) {
	if s.intMoments.decode(r); s.n > 0 {
		s.q = r.u192()
	}
}

// floatMoments is count, sum, min, max and mean over Float64 or Float32.
type floatMoments struct {
	n        int64
	s, c     float64 // Neumaier sum and compensation
	min, max float64 // +Inf, -Inf while empty
}

func newFloatMoments(k schema.Kind) codecState {
	return &floatMoments{min: math.Inf(1), max: math.Inf(-1)}
}

func (s *floatMoments) Add(v schema.Value, _ Order) { s.add(v.F) }

func (s *floatMoments) add(x float64) {
	s.n++
	s.s, s.c = neumaier(s.s, s.c, x)
	s.min = min(s.min, x)
	s.max = max(s.max, x)
}

func (s *floatMoments) merge(o *floatMoments) {
	if o.n == 0 {
		return
	}
	s.n += o.n
	s.s, s.c = mergeNeumaier(s.s, s.c, o.s, o.c)
	s.min = min(s.min, o.min)
	s.max = max(s.max, o.max)
}

func (s *floatMoments) Merge(other State) {
	o, ok := other.(*floatMoments)
	if !ok {
		mergeMismatch(s, other)
	}
	s.merge(o)
}

func (s *floatMoments) result(f fn, k schema.Kind) schema.Value {
	if f == fnCount || f == fnMoments || f == fnMomentsVar {
		return schema.Int(s.n)
	}
	if s.n == 0 {
		return schema.Value{}
	}
	switch f {
	case fnSum:
		return floatResult(k, neumaierTotal(s.s, s.c))
	case fnMin:
		return schema.Value{Kind: k, F: s.min}
	case fnMax:
		return schema.Value{Kind: k, F: s.max}
	case fnMean:
		return schema.Float(neumaierTotal(s.s, s.c) / float64(s.n))
	}
	fusedMismatch(f, s)
	return schema.Value{}
}

func (s *floatMoments) Result() schema.Value { return schema.Int(s.n) }
func (s *floatMoments) Reset()               { *s = floatMoments{min: math.Inf(1), max: math.Inf(-1)} }
func (s *floatMoments) Empty() bool          { return s.n == 0 }
func (s *floatMoments) Clone() State         { c := *s; return &c }
func (s *floatMoments) MemSize() int         { return int(unsafe.Sizeof(*s)) }
func (s *floatMoments) code() byte           { return codeFloatMoments }

func (s *floatMoments) AppendBinary(dst []byte) []byte {
	return s.appendPayload(appendHeader(dst, codeFloatMoments))
}

// appendPayload appends n:uvarint, then when n > 0 sum:f64 comp:f64
// min:f64 max:f64.
func (s *floatMoments) appendPayload(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(s.n))
	if s.n == 0 {
		return dst
	}
	for _, f := range [...]float64{s.s, s.c, s.min, s.max} {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
	}
	return dst
}

func (s *floatMoments) decode(r *reader) {
	if s.n = r.n64(); s.n > 0 {
		s.s, s.c, s.min, s.max = r.f64(), r.f64(), r.f64(), r.f64()
	}
}

// floatMomentsVar is floatMoments plus Welford's mean and M2 (the count
// is floatMoments.n).
type floatMomentsVar struct {
	floatMoments
	mean, m2 float64
}

func newFloatMomentsVar(k schema.Kind) codecState {
	return &floatMomentsVar{floatMoments: floatMoments{min: math.Inf(1), max: math.Inf(-1)}}
}

func (s *floatMomentsVar) Add(v schema.Value, _ Order) {
	s.add(v.F)
	d := v.F - s.mean
	s.mean += d / float64(s.n)
	s.m2 += d * (v.F - s.mean)
}

func (s *floatMomentsVar) Merge(other State) {
	o, ok := other.(*floatMomentsVar)
	if !ok {
		mergeMismatch(s, other)
	}
	w := welford{n: s.n, mean: s.mean, m2: s.m2}
	w.merge(welford{n: o.n, mean: o.mean, m2: o.m2})
	s.merge(&o.floatMoments)
	s.mean, s.m2 = w.mean, w.m2
}

func (s *floatMomentsVar) Reset() {
	*s = floatMomentsVar{floatMoments: floatMoments{min: math.Inf(1), max: math.Inf(-1)}}
}
func (s *floatMomentsVar) Clone() State { c := *s; return &c }
func (s *floatMomentsVar) MemSize() int { return int(unsafe.Sizeof(*s)) }
func (s *floatMomentsVar) code() byte   { return codeFloatMomentsVar }

func (s *floatMomentsVar) AppendBinary(dst []byte) []byte {
	dst = s.appendPayload(appendHeader(dst, codeFloatMomentsVar))
	if s.n == 0 {
		return dst
	}
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.mean))
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.m2))
}

func (s *floatMomentsVar) decode(r *reader) {
	if s.floatMoments.decode(r); s.n > 0 {
		s.mean, s.m2 = r.f64(), r.f64()
	}
}
