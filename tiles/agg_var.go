package tiles

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/featurelog/featurelog/schema"
)

// The variance family: var_samp, stddev_samp, var_pop, stddev_pop share a
// state per input class and differ only in how it is finalized.
//
// Integral inputs keep exact sums: n, Σx (i128) and Σx² (u192). The
// numerator n·Σx² − (Σx)² is computed exactly in 256 bits and rounded
// once, so the result is within a few ulps and every merge order gives
// the same bits. Float inputs use Welford's update and Chan et al.'s
// parallel merge (numerically stable; no catastrophic cancellation when
// the mean is large against the spread), written so that Merge is exactly
// commutative; regrouping changes the result only by rounding.

// varianceValue finalizes the family for function f over n values whose
// sum of squared deviations from their mean is num/div (the integral path
// passes its exact numerator and n, dividing only once).
func varianceValue(f fn, n int64, num, div float64) schema.Value {
	sample := f == fnVarSamp || f == fnStddevSamp
	if n == 0 || n == 1 && sample {
		return schema.Value{}
	}
	d := float64(n)
	if sample {
		d = float64(n - 1)
	}
	v := num / (div * d)
	if v < 0 { // rounding in the float path; never below zero
		v = 0
	}
	if f == fnStddevSamp || f == fnStddevPop {
		v = math.Sqrt(v)
	}
	return schema.Float(v)
}

// intVarState is the variance family over Int64 or Int32.
type intVarState struct {
	n  int64
	s  i128 // Σx
	q  u192 // Σx²
	fn fn   // which of the family to finalize
}

func (s *intVarState) Add(v schema.Value, _ Order) {
	s.n++
	s.s.add64(v.I)
	s.q.addSquare(v.I)
}

func (s *intVarState) Merge(other State) {
	o, ok := other.(*intVarState)
	if !ok {
		mergeMismatch(s, other)
	}
	s.n += o.n
	s.s.add(o.s)
	s.q.add(o.q)
}

func (s *intVarState) Result() schema.Value {
	return varianceValue(s.fn, s.n, intVarNumerator(s.n, s.s, s.q), float64(s.n))
}

// intVarNumerator returns n·Σx² − (Σx)², computed exactly and rounded
// once. It is n² times the population variance, and never negative for a
// real state; a corrupt one reads as 0.
func intVarNumerator(n int64, sum i128, sq u192) float64 {
	hi, lo := sum.abs()
	d, neg := mul192(sq, uint64(n)).sub(square128(hi, lo))
	if neg {
		return 0
	}
	return d.float64()
}

func (s *intVarState) Reset()       { *s = intVarState{fn: s.fn} }
func (s *intVarState) Empty() bool  { return s.n == 0 }
func (s *intVarState) Clone() State { c := *s; return &c }
func (s *intVarState) MemSize() int { return int(unsafe.Sizeof(*s)) }
func (s *intVarState) code() byte   { return codeIntVar }

func (s *intVarState) AppendBinary(dst []byte) []byte {
	dst = binary.AppendUvarint(appendHeader(dst, codeIntVar), uint64(s.n))
	if s.n == 0 {
		return dst
	}
	return appendU192(appendI128(dst, s.s), s.q)
}

func (s *intVarState) decode(r *reader) {
	if s.n = r.n64(); s.n > 0 {
		s.s, s.q = r.i128(), r.u192()
	}
}

// welford is a running count, mean and sum of squared deviations (M2).
type welford struct {
	n    int64
	mean float64
	m2   float64
}

func (w *welford) add(x float64) {
	w.n++
	d := x - w.mean
	w.mean += d / float64(w.n)
	w.m2 += d * (x - w.mean)
}

// merge adds o by Chan et al.'s formula. The operand with more values (on
// a tie, the smaller mean) is the base, so merge(a, b) and merge(b, a)
// compute the same expression.
func (w *welford) merge(o welford) {
	if o.n == 0 {
		return
	}
	if w.n == 0 {
		*w = o
		return
	}
	a, b := *w, o
	if b.n > a.n || b.n == a.n && b.mean < a.mean {
		a, b = b, a
	}
	n := a.n + b.n
	d := b.mean - a.mean
	w.n = n
	w.mean = a.mean + d*(float64(b.n)/float64(n))
	w.m2 = (a.m2 + b.m2) + d*d*(float64(a.n)*float64(b.n)/float64(n))
}

func appendWelford(dst []byte, w welford) []byte {
	dst = binary.AppendUvarint(dst, uint64(w.n))
	if w.n == 0 {
		return dst
	}
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(w.mean))
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(w.m2))
}

func (r *reader) welford() welford {
	var w welford
	if w.n = r.n64(); w.n > 0 {
		w.mean, w.m2 = r.f64(), r.f64()
	}
	return w
}

// floatVarState is the variance family over Float64 or Float32.
type floatVarState struct {
	w  welford
	fn fn
}

func (s *floatVarState) Add(v schema.Value, _ Order) { s.w.add(v.F) }

func (s *floatVarState) Merge(other State) {
	o, ok := other.(*floatVarState)
	if !ok {
		mergeMismatch(s, other)
	}
	s.w.merge(o.w)
}

func (s *floatVarState) Result() schema.Value { return varianceValue(s.fn, s.w.n, s.w.m2, 1) }

func (s *floatVarState) Reset()       { *s = floatVarState{fn: s.fn} }
func (s *floatVarState) Empty() bool  { return s.w.n == 0 }
func (s *floatVarState) Clone() State { c := *s; return &c }
func (s *floatVarState) MemSize() int { return int(unsafe.Sizeof(*s)) }
func (s *floatVarState) code() byte   { return codeFloatVar }

func (s *floatVarState) AppendBinary(dst []byte) []byte {
	return appendWelford(appendHeader(dst, codeFloatVar), s.w)
}

func (s *floatVarState) decode(r *reader) { s.w = r.welford() }
