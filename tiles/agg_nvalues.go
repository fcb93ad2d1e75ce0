package tiles

import (
	"cmp"
	"encoding/binary"
	"maps"
	"math"
	"slices"
	"strings"
	"unsafe"

	"github.com/featurelog/featurelog/schema"
)

// The n-functions: last_n, first_n, last_distinct_n, first_distinct_n.
//
// A state keeps at most n entries (value, Order): the n that rank best,
// where "best" is latest for last_* and earliest for first_*. Entries are
// ranked by Order, then (only if two Orders are equal, which distinct
// events never are) by value, so the kept set never depends on the order
// of Adds and Merges: Merge is exactly commutative and associative.
//
// last_n / first_n: the n best events of a union are among the n best of
// each part, so keeping n per part is exact.
//
// last_distinct_n places each distinct value at its latest occurrence and
// keeps the n latest values; a state keeps, for its n best values, that
// latest occurrence. Keeping only n per part is exact, by this argument.
// Let U = A ∪ B, and v a value among the n best of U, whose latest
// occurrence in U is in part P (so latest_P(v) = latest_U(v)). Were v not
// among the n best of P, P would hold n other values w with latest_P(w) >
// latest_P(v); each has latest_U(w) ≥ latest_P(w) > latest_U(v), so U
// would hold n values ranking above v: a contradiction. Hence every value
// of U's answer is kept by the part holding its latest occurrence, with
// that occurrence; merging takes, per value, the latest kept occurrence,
// which is exact for every value of the answer and can only understate
// the others, so none of them can displace an answer value. A state fed
// by Adds is the merge of singleton states, so the same holds for it.
// first_distinct_n is the mirror image (earliest occurrences, n earliest).
//
// Distinct means not equal under schema.Value.Equal: every NaN is one
// value, and so are -0 and +0; the value reported is the one at the kept
// occurrence.

// linearMax is the largest n for which distinct states find a value by
// scanning their entries; above it they keep a map.
const linearMax = 16

// nEntry is one kept value with its Order.
type nEntry struct {
	o Order
	x uint64 // the value's bits: I, or F's bits
	s string // the value, for String
}

// dkey identifies a distinct value: canonical float bits, or I, or S.
type dkey struct {
	x uint64
	s string
}

func cmpEntry(a, b *nEntry) int {
	if c := cmpOrder(a.o, b.o); c != 0 {
		return c
	}
	if c := cmp.Compare(a.x, b.x); c != 0 {
		return c
	}
	return strings.Compare(a.s, b.s)
}

// valueIndex maps kept values to their index in nState.h: String values
// by the string, others by their canonical bits (hashing a uint64 is
// cheaper than a struct with a string).
type valueIndex struct {
	bits map[uint64]int32
	strs map[string]int32
}

func (x *valueIndex) active() bool { return x.bits != nil || x.strs != nil }

func (x *valueIndex) init(k schema.Kind, n int) {
	if k == schema.String {
		x.strs = make(map[string]int32, n)
	} else {
		x.bits = make(map[uint64]int32, n)
	}
}

func (x *valueIndex) get(k dkey) int {
	var i int32
	var ok bool
	if x.strs != nil {
		i, ok = x.strs[k.s]
	} else {
		i, ok = x.bits[k.x]
	}
	if !ok {
		return -1
	}
	return int(i)
}

func (x *valueIndex) set(k dkey, i int) {
	if x.strs != nil {
		x.strs[k.s] = int32(i)
	} else {
		x.bits[k.x] = int32(i)
	}
}

func (x *valueIndex) del(k dkey) {
	if x.strs != nil {
		delete(x.strs, k.s)
	} else if x.bits != nil {
		delete(x.bits, k.x)
	}
}

func (x *valueIndex) clear() {
	clear(x.bits)
	clear(x.strs)
}

func (x *valueIndex) len() int { return len(x.bits) + len(x.strs) }

// nState is the state of the four n-functions.
type nState struct {
	// h is a heap of the kept entries whose root h[0] ranks worst: it is
	// the entry the next better one evicts.
	h []nEntry
	// pos maps each kept value to its index in h, for distinct states
	// with n > linearMax (empty otherwise). Every move in h updates it.
	pos      valueIndex
	n        int32       // how many entries to keep, 1..MaxN
	kind     schema.Kind // the input (element) kind
	latest   bool        // last_* (keep the latest) or first_* (the earliest)
	distinct bool        // *_distinct_n
}

func newNState(f fn, n int, k schema.Kind) *nState {
	return &nState{
		n:        int32(n),
		kind:     k,
		latest:   f == fnLastN || f == fnLastDistinctN,
		distinct: f == fnLastDistinctN || f == fnFirstDistinctN,
	}
}

// better reports whether a ranks above b.
func (s *nState) better(a, b *nEntry) bool {
	c := cmpEntry(a, b)
	if s.latest {
		return c > 0
	}
	return c < 0
}

func (s *nState) key(e *nEntry) dkey {
	if s.kind == schema.Float64 || s.kind == schema.Float32 {
		return dkey{x: canonFloatBits(math.Float64frombits(e.x))}
	}
	return dkey{x: e.x, s: e.s}
}

func (s *nState) Add(v schema.Value, o Order) {
	s.add(nEntry{o: o, x: scalarBits(v), s: v.S})
}

func (s *nState) add(e nEntry) {
	if !s.distinct {
		switch {
		case len(s.h) < int(s.n):
			s.h = append(s.h, e)
			s.up(len(s.h) - 1)
		case s.better(&e, &s.h[0]):
			s.h[0] = e
			s.down(0)
		}
		return
	}
	if i := s.find(s.key(&e)); i >= 0 {
		if s.better(&e, &s.h[i]) { // a better occurrence of a kept value
			s.h[i] = e
			s.down(i)
		}
		return
	}
	switch {
	case len(s.h) < int(s.n):
		if !s.pos.active() && s.n > linearMax {
			s.pos.init(s.kind, int(s.n))
		}
		s.h = append(s.h, e)
		s.up(len(s.h) - 1)
	case s.better(&e, &s.h[0]):
		s.pos.del(s.key(&s.h[0]))
		s.h[0] = e
		s.down(0)
	}
}

// find returns the index in h of the entry holding value k, or -1.
func (s *nState) find(k dkey) int {
	if s.pos.active() {
		return s.pos.get(k)
	}
	if s.n > linearMax && len(s.h) > 0 {
		panic("BUG: tiles: distinct state without its index")
	}
	for i := range s.h {
		if s.key(&s.h[i]) == k {
			return i
		}
	}
	return -1
}

// place puts e at h[i], keeping pos current.
func (s *nState) place(i int, e nEntry) {
	s.h[i] = e
	if s.pos.active() {
		s.pos.set(s.key(&e), i)
	}
}

// up restores the heap after h[i] got worse (or was appended): the
// better parents move down into the hole until e's place is found.
func (s *nState) up(i int) {
	e := s.h[i]
	for i > 0 {
		p := (i - 1) / 2
		if !s.better(&s.h[p], &e) {
			break
		}
		s.place(i, s.h[p])
		i = p
	}
	s.place(i, e)
}

// down restores the heap after h[i] got better: the worse children move
// up into the hole.
func (s *nState) down(i int) {
	e := s.h[i]
	for {
		w := 2*i + 1
		if w >= len(s.h) {
			break
		}
		if r := w + 1; r < len(s.h) && s.better(&s.h[w], &s.h[r]) {
			w = r // the worse child
		}
		if !s.better(&e, &s.h[w]) {
			break
		}
		s.place(i, s.h[w])
		i = w
	}
	s.place(i, e)
}

func (s *nState) Merge(other State) {
	o, ok := other.(*nState)
	if !ok || o.n != s.n || o.latest != s.latest || o.distinct != s.distinct || o.kind != s.kind {
		mergeMismatch(s, other)
	}
	if o == s {
		panic("BUG: tiles: merge of a state into itself")
	}
	for i := range o.h {
		s.add(o.h[i])
	}
}

// sorted returns the kept entries oldest first, in a new slice.
func (s *nState) sorted() []nEntry {
	es := slices.Clone(s.h)
	slices.SortFunc(es, func(a, b nEntry) int { return cmpEntry(&a, &b) })
	return es
}

// Result returns the kept values oldest first; [] when empty.
func (s *nState) Result() schema.Value {
	es := s.sorted()
	out := make([]schema.Value, len(es))
	for i := range es {
		out[i] = scalarValue(s.kind, es[i].x, es[i].s)
	}
	return schema.ArrayVal(out)
}

func (s *nState) Reset() {
	clear(s.h) // drop the strings
	s.h = s.h[:0]
	s.pos.clear()
}

func (s *nState) Empty() bool { return len(s.h) == 0 }

func (s *nState) Clone() State {
	c := *s
	c.h = slices.Clone(s.h)
	c.pos = valueIndex{bits: maps.Clone(s.pos.bits), strs: maps.Clone(s.pos.strs)}
	return &c
}

func (s *nState) MemSize() int {
	n := int(unsafe.Sizeof(*s)) + cap(s.h)*int(unsafe.Sizeof(nEntry{}))
	for i := range s.h {
		n += len(s.h[i].s)
	}
	// A map entry: key, value and about a word of bucket overhead.
	return n + s.pos.len()*(8+4+8)
}

func (s *nState) code() byte {
	switch {
	case s.latest && s.distinct:
		return codeLastDistinctN
	case s.latest:
		return codeLastN
	case s.distinct:
		return codeFirstDistinctN
	}
	return codeFirstN
}

// AppendBinary appends count:uvarint, then the entries oldest first, each
// as ts (varint for the first, then a uvarint delta from the previous)
// seq:uvarint idx:uvarint value (the scalar encoding of the input kind).
func (s *nState) AppendBinary(dst []byte) []byte {
	dst = binary.AppendUvarint(appendHeader(dst, s.code()), uint64(len(s.h)))
	var prev int64
	for i, e := range s.sorted() {
		if i == 0 {
			dst = binary.AppendVarint(dst, e.o.TS)
		} else {
			dst = binary.AppendUvarint(dst, uint64(e.o.TS-prev))
		}
		prev = e.o.TS
		dst = binary.AppendUvarint(dst, e.o.Seq)
		dst = binary.AppendUvarint(dst, uint64(e.o.Idx))
		dst = appendScalar(dst, s.kind, e.x, e.s)
	}
	return dst
}

// minEntryBytes is the fewest bytes an encoded entry takes.
const minEntryBytes = 4

func (s *nState) decode(r *reader) {
	k := r.count(int(s.n), minEntryBytes)
	var prev nEntry
	for i := 0; i < k && r.ok(); i++ {
		e := nEntry{o: Order{TS: r.entryTS(i, prev.o.TS)}}
		e.o.Seq, e.o.Idx = r.uvarint(), r.idx()
		e.x, e.s = r.scalar(s.kind)
		if i > 0 && r.ok() && cmpEntry(&prev, &e) > 0 {
			r.fail("entry %d out of order", i)
		}
		if r.ok() {
			s.add(e) // k <= n: nothing is evicted
		}
		prev = e
	}
	if r.ok() && len(s.h) != k {
		r.fail("%d entries hold only %d distinct values", k, len(s.h))
	}
}

// entryTS reads the event time of entry i given the previous one's.
func (r *reader) entryTS(i int, prev int64) int64 {
	if i == 0 {
		return r.varint()
	}
	d := r.uvarint()
	ts := prev + int64(d)
	if r.ok() && (d > math.MaxInt64 || ts < prev) {
		r.fail("event time delta %d out of range", d)
	}
	return ts
}
