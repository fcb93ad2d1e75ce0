package tiles

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/featurelog/featurelog/schema"
)

// The encoding of every state is
//
//	state := version:u8 code:u8 payload
//
// with the payload of the state's code; docs/format/tiles.md draws each.
// Integers are Go's encoding/binary varints (varint is zig-zag) unless a
// fixed width is given; fixed-width numbers are little-endian; f64 is the
// IEEE 754 bits.

// stateVersion is the version byte of every state encoding. Part of the
// on-disk format; do not change.
const stateVersion = 1

// State codes: what layout the payload has. Several functions share a
// layout (var_samp, var_pop, ... share codeIntVar); the Agg says how to
// finalize it. Part of the on-disk format; do not change.
const (
	codeCount           = 1
	codeIntSum          = 2
	codeFloatSum        = 3
	codeIntMean         = 4
	codeFloatMean       = 5
	codeIntMin          = 6
	codeFloatMin        = 7
	codeIntMax          = 8
	codeFloatMax        = 9
	codeIntVar          = 10
	codeFloatVar        = 11
	codeLast            = 12
	codeLastN           = 13
	codeFirstN          = 14
	codeLastDistinctN   = 15
	codeFirstDistinctN  = 16
	codeHLL             = 17
	codePercentile      = 18
	codeIntMoments      = 19
	codeFloatMoments    = 20
	codeIntMomentsVar   = 21
	codeFloatMomentsVar = 22
)

// codecState is what every state of this package implements beyond State.
type codecState interface {
	State
	// code is the state's layout code.
	code() byte
	// decode reads the payload into the receiver, which is empty.
	decode(r *reader)
}

// appendHeader starts an encoding.
func appendHeader(dst []byte, code byte) []byte { return append(dst, stateVersion, code) }

// decodeInto resets s and decodes data into it. On error s is left empty.
func decodeInto(s codecState, function string, data []byte) error {
	s.Reset()
	r := reader{b: data}
	if v := r.u8(); r.ok() && v != stateVersion {
		r.back(1)
		r.fail("unknown version %d (this build reads version %d)", v, stateVersion)
	}
	if c := r.u8(); r.ok() && c != s.code() {
		r.back(1)
		r.fail("the bytes hold a state of code %d, not %d", c, s.code())
	}
	if r.ok() {
		s.decode(&r)
	}
	if r.ok() && r.off != len(r.b) {
		r.fail("%d trailing bytes", len(r.b)-r.off)
	}
	if !r.ok() {
		s.Reset()
		return &StateError{Function: function, Offset: r.at, Reason: r.err}
	}
	return nil
}

// reader decodes a state's bytes. The first failure sticks: later reads
// return zero values, so decoders check r.ok() only where a value steers
// control flow.
type reader struct {
	b   []byte
	off int
	err string // the first failure, "" while none
	at  int    // offset of the first failure
}

func (r *reader) ok() bool { return r.err == "" }

func (r *reader) fail(format string, args ...any) {
	if r.err == "" {
		r.err, r.at = fmt.Sprintf(format, args...), r.off
	}
}

// back moves the offset back n bytes, to report a failure at the start of
// the field just read.
func (r *reader) back(n int) { r.off -= n }

// left returns the number of unread bytes.
func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) u8() byte {
	if !r.ok() {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("truncated")
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *reader) uvarint() uint64 {
	if !r.ok() {
		return 0
	}
	x, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.off += n
	return x
}

func (r *reader) varint() int64 {
	if !r.ok() {
		return 0
	}
	x, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.off += n
	return x
}

func (r *reader) u64() uint64 {
	if !r.ok() {
		return 0
	}
	if r.left() < 8 {
		r.fail("truncated")
		return 0
	}
	r.off += 8
	return binary.LittleEndian.Uint64(r.b[r.off-8:])
}

func (r *reader) f64() float64 { return math.Float64frombits(r.u64()) }

// count reads a uvarint count of items that take at least minBytes each
// and that must number at most limit.
func (r *reader) count(limit, minBytes int) int {
	n := r.uvarint()
	if !r.ok() {
		return 0
	}
	if n > uint64(limit) || n > uint64(r.left()/minBytes) {
		r.fail("count %d exceeds the limit %d or the %d bytes left", n, limit, r.left())
		return 0
	}
	return int(n)
}

// n64 reads a count: a uvarint in 0..math.MaxInt64.
func (r *reader) n64() int64 {
	n := r.uvarint()
	if n > math.MaxInt64 {
		r.fail("count %d out of range", n)
		return 0
	}
	return int64(n)
}

func (r *reader) str() string {
	n := r.count(math.MaxInt32, 1)
	if !r.ok() {
		return ""
	}
	r.off += n
	return string(r.b[r.off-n : r.off])
}

// appendOrder appends o as ts:varint seq:uvarint idx:uvarint.
func appendOrder(dst []byte, o Order) []byte {
	dst = binary.AppendVarint(dst, o.TS)
	dst = binary.AppendUvarint(dst, o.Seq)
	return binary.AppendUvarint(dst, uint64(o.Idx))
}

func (r *reader) order() Order {
	ts := r.varint()
	seq := r.uvarint()
	return Order{TS: ts, Seq: seq, Idx: r.idx()}
}

func (r *reader) idx() uint32 {
	i := r.uvarint()
	if r.ok() && i > math.MaxUint32 {
		r.fail("index within entry %d out of range", i)
	}
	return uint32(i)
}

// appendScalar appends one scalar of kind k held as bits x (I, or the
// float's bits) or s, in the scalar encoding of docs/format/record.md.
func appendScalar(dst []byte, k schema.Kind, x uint64, s string) []byte {
	switch k {
	case schema.String:
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		return append(dst, s...)
	case schema.Int64, schema.Int32, schema.Timestamp:
		return binary.AppendVarint(dst, int64(x))
	case schema.Float64:
		return binary.LittleEndian.AppendUint64(dst, x)
	case schema.Float32:
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(math.Float64frombits(x))))
	case schema.Bool:
		return append(dst, byte(x))
	}
	panic(fmt.Sprintf("BUG: tiles: cannot encode a scalar of kind %v", k))
}

// scalar reads one scalar of kind k, checking it is a value of k.
func (r *reader) scalar(k schema.Kind) (x uint64, s string) {
	switch k {
	case schema.String:
		return 0, r.str()
	case schema.Int64, schema.Timestamp:
		return uint64(r.varint()), ""
	case schema.Int32:
		i := r.varint()
		if r.ok() && (i < math.MinInt32 || i > math.MaxInt32) {
			r.fail("Int32 value %d out of range", i)
		}
		return uint64(i), ""
	case schema.Float64:
		return r.u64(), ""
	case schema.Float32:
		if r.left() < 4 {
			r.fail("truncated")
			return 0, ""
		}
		r.off += 4
		f := math.Float32frombits(binary.LittleEndian.Uint32(r.b[r.off-4:]))
		return math.Float64bits(float64(f)), ""
	case schema.Bool:
		b := r.u8()
		if b > 1 {
			r.fail("bad Bool byte %d", b)
		}
		return uint64(b), ""
	}
	r.fail("cannot decode kind %v", k)
	return 0, ""
}

// scalarBits returns the bits a scalar value is held as: I, or F's bits.
func scalarBits(v schema.Value) uint64 {
	if v.Kind == schema.Float64 || v.Kind == schema.Float32 {
		return math.Float64bits(v.F)
	}
	return uint64(v.I)
}

// scalarValue rebuilds a value of kind k from its bits or string.
func scalarValue(k schema.Kind, x uint64, s string) schema.Value {
	switch k {
	case schema.String:
		return schema.Value{Kind: k, S: s}
	case schema.Float64, schema.Float32:
		return schema.Value{Kind: k, F: math.Float64frombits(x)}
	}
	return schema.Value{Kind: k, I: int64(x)}
}

// appendValue appends a value of type t: a scalar, or an array as
// n:uvarint then n scalars of the element kind.
func appendValue(dst []byte, t schema.Type, v schema.Value) []byte {
	if t.Kind != schema.Array {
		return appendScalar(dst, t.Kind, scalarBits(v), v.S)
	}
	dst = binary.AppendUvarint(dst, uint64(len(v.A)))
	for _, e := range v.A {
		dst = appendScalar(dst, t.Elem, scalarBits(e), e.S)
	}
	return dst
}

// value reads a value of type t.
func (r *reader) value(t schema.Type) schema.Value {
	if t.Kind != schema.Array {
		x, s := r.scalar(t.Kind)
		return scalarValue(t.Kind, x, s)
	}
	n := r.count(math.MaxInt32, 1)
	a := make([]schema.Value, 0, n)
	for i := 0; i < n && r.ok(); i++ {
		x, s := r.scalar(t.Elem)
		a = append(a, scalarValue(t.Elem, x, s))
	}
	return schema.ArrayVal(a)
}
