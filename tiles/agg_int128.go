package tiles

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// Exact integer accumulators. Integral sums are kept in 128 bits, so no
// sum of fewer than 2^64 int64 values can overflow, intermediate
// overflow of int64 is harmless, and every merge order gives the same
// bits; sums of squares in 192 bits, enough for 2^63 squares of int64
// values.

// i128 is a two's-complement 128-bit integer.
type i128 struct {
	lo uint64
	hi int64
}

// add64 adds x.
func (a *i128) add64(x int64) {
	var c uint64
	a.lo, c = bits.Add64(a.lo, uint64(x), 0)
	a.hi += x>>63 + int64(c)
}

// add adds b.
func (a *i128) add(b i128) {
	var c uint64
	a.lo, c = bits.Add64(a.lo, b.lo, 0)
	a.hi += b.hi + int64(c)
}

// clamp returns a limited to [lo, hi].
func (a i128) clamp(lo, hi int64) int64 {
	if a.hi != int64(a.lo)>>63 { // beyond int64
		if a.hi < 0 {
			return lo
		}
		return hi
	}
	return min(max(int64(a.lo), lo), hi)
}

// abs returns |a| as an unsigned 128-bit number (hi, lo).
func (a i128) abs() (hi, lo uint64) {
	hi, lo = uint64(a.hi), a.lo
	if a.hi < 0 {
		var b uint64
		lo, b = bits.Sub64(0, lo, 0)
		hi, _ = bits.Sub64(0, hi, b)
	}
	return hi, lo
}

// float64 returns a rounded to a float64 (within one ulp).
func (a i128) float64() float64 {
	if a.hi == int64(a.lo)>>63 {
		return float64(int64(a.lo))
	}
	hi, lo := a.abs()
	f := u256{lo, hi, 0, 0}.float64()
	if a.hi < 0 {
		return -f
	}
	return f
}

// appendI128 appends a as lo:varint (the low 64 bits as an int64) and
// hi:varint (what the high word adds beyond lo's sign extension), so sums
// that fit an int64 take one varint and a zero byte.
func appendI128(dst []byte, a i128) []byte {
	dst = binary.AppendVarint(dst, int64(a.lo))
	return binary.AppendVarint(dst, a.hi-int64(a.lo)>>63)
}

func (r *reader) i128() i128 {
	lo := r.varint()
	hi := r.varint()
	return i128{lo: uint64(lo), hi: hi + lo>>63}
}

// u192 is an unsigned 192-bit integer, little-endian words.
type u192 [3]uint64

// addSquare adds x².
func (a *u192) addSquare(x int64) {
	m := uint64(x)
	if x < 0 {
		m = -m // two's complement: right for MinInt64 too
	}
	hi, lo := bits.Mul64(m, m)
	var c uint64
	a[0], c = bits.Add64(a[0], lo, 0)
	a[1], c = bits.Add64(a[1], hi, c)
	a[2] += c
}

// add adds b (wrapping beyond 2^192, which 2^63 squares cannot reach).
func (a *u192) add(b u192) {
	var c uint64
	a[0], c = bits.Add64(a[0], b[0], 0)
	a[1], c = bits.Add64(a[1], b[1], c)
	a[2] += b[2] + c
}

func appendU192(dst []byte, a u192) []byte {
	for _, w := range a {
		dst = binary.AppendUvarint(dst, w)
	}
	return dst
}

func (r *reader) u192() u192 { return u192{r.uvarint(), r.uvarint(), r.uvarint()} }

// u256 is an unsigned 256-bit integer, little-endian words.
type u256 [4]uint64

// mul192 returns n·a.
func mul192(a u192, n uint64) u256 {
	h0, l0 := bits.Mul64(a[0], n)
	h1, l1 := bits.Mul64(a[1], n)
	h2, l2 := bits.Mul64(a[2], n)
	var r u256
	var c uint64
	r[0] = l0
	r[1], c = bits.Add64(l1, h0, 0)
	r[2], c = bits.Add64(l2, h1, c)
	r[3] = h2 + c
	return r
}

// square128 returns (hi·2^64 + lo)².
func square128(hi, lo uint64) u256 {
	p1, p0 := bits.Mul64(lo, lo)
	q1, q0 := bits.Mul64(hi, lo) // appears twice
	r1, r0 := bits.Mul64(hi, hi)
	a := u256{p0, p1, r0, r1}
	b := u256{0, q0, q1, 0}
	return a.add(b).add(b)
}

func (a u256) add(b u256) u256 {
	var c uint64
	a[0], c = bits.Add64(a[0], b[0], 0)
	a[1], c = bits.Add64(a[1], b[1], c)
	a[2], c = bits.Add64(a[2], b[2], c)
	a[3], _ = bits.Add64(a[3], b[3], c)
	return a
}

// sub returns a − b and whether it went below zero.
func (a u256) sub(b u256) (u256, bool) {
	var c uint64
	a[0], c = bits.Sub64(a[0], b[0], 0)
	a[1], c = bits.Sub64(a[1], b[1], c)
	a[2], c = bits.Sub64(a[2], b[2], c)
	a[3], c = bits.Sub64(a[3], b[3], c)
	return a, c != 0
}

// float64 returns a correctly rounded to a float64: the top 64 bits, with
// every lower bit folded into the lowest (a sticky bit far below the 53
// that survive), convert with one rounding.
func (a u256) float64() float64 {
	i := 3
	for i > 0 && a[i] == 0 {
		i--
	}
	if i == 0 {
		return float64(a[0])
	}
	z := uint(bits.LeadingZeros64(a[i]))
	top := a[i] << z
	if z > 0 {
		top |= a[i-1] >> (64 - z)
	}
	sticky := a[i-1] << z
	for j := i - 2; j >= 0; j-- {
		sticky |= a[j]
	}
	if sticky != 0 {
		top |= 1
	}
	return math.Ldexp(float64(top), 64*i-int(z))
}
