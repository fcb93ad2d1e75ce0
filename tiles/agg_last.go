package tiles

import (
	"cmp"
	"strings"
	"unsafe"

	"github.com/featurelog/featurelog/schema"
)

// lastState is last: the value with the greatest Order. Two values at the
// same Order (the same event added twice, which callers do not do) are
// ordered by cmpValue, so that the result never depends on merge order.
type lastState struct {
	v schema.Value // null while empty; arrays here are never modified
	o Order
	t schema.Type // the input type, for the encoding
}

func (s *lastState) Add(v schema.Value, o Order) {
	if s.v.Kind == schema.Null || later(o, v, s.o, s.v) {
		if v.Kind == schema.Array {
			v.A = append([]schema.Value(nil), v.A...) // the caller may reuse its array
		}
		s.v, s.o = v, o
	}
}

func (s *lastState) Merge(other State) {
	o, ok := other.(*lastState)
	if !ok {
		mergeMismatch(s, other)
	}
	// Sharing o.v's array is safe: no state modifies a retained array.
	if o.v.Kind != schema.Null && (s.v.Kind == schema.Null || later(o.o, o.v, s.o, s.v)) {
		s.v, s.o = o.v, o.o
	}
}

// later reports whether v at o comes after w at p.
func later(o Order, v schema.Value, p Order, w schema.Value) bool {
	c := cmpOrder(o, p)
	return c > 0 || c == 0 && cmpValue(v, w) > 0
}

// cmpValue is a total order on values, used only to break ties between
// equal Orders: by kind, then by value (floats by their bits), arrays
// element by element.
func cmpValue(a, b schema.Value) int {
	if a.Kind != b.Kind {
		return cmp.Compare(a.Kind, b.Kind)
	}
	switch a.Kind {
	case schema.String:
		return strings.Compare(a.S, b.S)
	case schema.Float64, schema.Float32:
		return cmp.Compare(scalarBits(a), scalarBits(b))
	case schema.Array:
		for i := range min(len(a.A), len(b.A)) {
			if c := cmpValue(a.A[i], b.A[i]); c != 0 {
				return c
			}
		}
		return cmp.Compare(len(a.A), len(b.A))
	}
	return cmp.Compare(a.I, b.I)
}

func (s *lastState) Result() schema.Value { return s.v }
func (s *lastState) Reset()               { *s = lastState{t: s.t} }
func (s *lastState) Empty() bool          { return s.v.Kind == schema.Null }
func (s *lastState) Clone() State         { c := *s; return &c }
func (s *lastState) code() byte           { return codeLast }

func (s *lastState) MemSize() int {
	n := int(unsafe.Sizeof(*s)) + len(s.v.S) + cap(s.v.A)*int(unsafe.Sizeof(schema.Value{}))
	for _, e := range s.v.A {
		n += len(e.S)
	}
	return n
}

// AppendBinary appends nothing more when empty, else order then the value
// in the input type's encoding.
func (s *lastState) AppendBinary(dst []byte) []byte {
	dst = appendHeader(dst, codeLast)
	if s.v.Kind == schema.Null {
		return dst
	}
	return appendValue(appendOrder(dst, s.o), s.t, s.v)
}

func (s *lastState) decode(r *reader) {
	if r.left() == 0 {
		return
	}
	s.o = r.order()
	s.v = r.value(s.t)
	if !r.ok() {
		s.v = schema.Value{}
	}
}
