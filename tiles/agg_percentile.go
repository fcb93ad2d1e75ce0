package tiles

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
	"unsafe"

	"github.com/DataDog/sketches-go/ddsketch/mapping"

	"github.com/featurelog/featurelog/schema"
)

// approx_percentile: a DDSketch. Values map to bins through the
// sketches-go cubically interpolated index mapping, which guarantees that
// every value in a bin is within the relative accuracy α of the bin's
// representative; the bins live in one sorted slice of (key, count) that
// covers negatives, zero and positives (the DDSketch layout of a negative
// store, a zero count and a positive store, in value order). The result
// is the representative of the bin holding the element of rank
// ⌊q·(n−1)⌋ in sorted order (SPEC §3), so it is within α of that element.
//
// The library's own stores are not used: reading a quantile sorts their
// buffers in place (a data race for concurrent readers of a tile), their
// dense stores span the whole index range between the smallest and
// largest value (kilobytes for a handful of values), and their decoders
// trust lengths and indexes. Counts are integers and bins are fixed by
// the mapping, so merging is exact: every merge order gives the same
// bins and the same result.
//
// Precision p (default 100) maps to α = 0.99/p with p clamped to
// [100, 10000]: the default and anything coarser give α = 0.99%, inside
// SPEC's 1% with room for rounding; larger p buys accuracy down to
// α ≈ 0.01% at roughly p/100 times the bins.
//
// Edge values: NaN sorts below -Inf (as cmp.Compare orders floats) and
// ±Inf are exact; a nonzero |x| below 2.2e-308 (subnormals) counts as 0,
// and a finite |x| above ~1.6e308 counts as ±1.6e308.

// Percentile precisions: the range Agg.Precision is clamped to.
const (
	minPercentilePrecision = 100
	maxPercentilePrecision = 10000
)

// percentileAccuracy is the sketch's relative accuracy for precision p.
func percentileAccuracy(p int) float64 { return 0.99 / float64(p) }

// Bin keys. A positive value with mapping index i has key posBase+i, a
// negative one −(posBase+i) (indexes are int32, so these never meet), zero
// has key 0, so keys sort as their values do. Part of the on-disk
// format; do not change.
const (
	posBase   = int64(1) << 32
	keyNaN    = math.MinInt64
	keyNegInf = math.MinInt64 + 1
	keyPosInf = math.MaxInt64
)

// pctMapping is an index mapping with its indexable range precomputed.
// Shared between states; never modified.
type pctMapping struct {
	m          *mapping.CubicallyInterpolatedMapping
	minX, maxX float64 // the smallest and largest indexable magnitudes
	minI, maxI int64   // their indexes
	prec       int
}

func newPctMapping(prec int) *pctMapping {
	m, err := mapping.NewCubicallyInterpolatedMapping(percentileAccuracy(prec))
	if err != nil {
		panic("BUG: tiles: " + err.Error())
	}
	pm := &pctMapping{m: m, minX: m.MinIndexableValue(), maxX: m.MaxIndexableValue(), prec: prec}
	pm.minI, pm.maxI = int64(m.Index(pm.minX)), int64(m.Index(pm.maxX))
	return pm
}

// defaultPctMapping serves the default precision without rebuilding it.
var defaultPctMapping = newPctMapping(DefaultPercentilePrecision)

// key returns the bin key of x.
func (pm *pctMapping) key(x float64) int64 {
	switch {
	case x > 0:
		return pm.magnitudeKey(x)
	case x < 0:
		if k := pm.magnitudeKey(-x); k != 0 {
			if k == keyPosInf {
				return keyNegInf
			}
			return -k
		}
		return 0
	case x == 0:
		return 0
	}
	return keyNaN
}

func (pm *pctMapping) magnitudeKey(x float64) int64 {
	switch {
	case x < pm.minX:
		return 0
	case math.IsInf(x, 1):
		return keyPosInf
	case x > pm.maxX:
		x = pm.maxX
	}
	return posBase + int64(pm.m.Index(x))
}

// value returns the representative of bin key k.
func (pm *pctMapping) value(k int64) float64 {
	switch {
	case k == 0:
		return 0
	case k == keyNaN:
		return math.NaN()
	case k == keyNegInf:
		return math.Inf(-1)
	case k == keyPosInf:
		return math.Inf(1)
	case k > 0:
		return pm.m.Value(int(k - posBase))
	}
	return -pm.m.Value(int(-k - posBase))
}

// validKey reports whether k is a key this mapping produces.
func (pm *pctMapping) validKey(k int64) bool {
	switch k {
	case 0, keyNaN, keyNegInf, keyPosInf:
		return true
	}
	if k < 0 {
		k = -k
	}
	i := k - posBase
	return i >= pm.minI && i <= pm.maxI
}

// pbin is one bin: a key and how many values fell in it (≥ 1).
type pbin struct {
	key int64
	n   uint64
}

// percentileState is approx_percentile.
type percentileState struct {
	bins []pbin // sorted by key, distinct keys, n ≥ 1
	pm   *pctMapping
	q    float64 // the quantile, 0..1
}

func newPercentileState(prec int, q float64) *percentileState {
	pm := defaultPctMapping
	if prec != pm.prec {
		pm = newPctMapping(prec)
	}
	return &percentileState{pm: pm, q: q}
}

func (s *percentileState) Add(v schema.Value, _ Order) {
	x := v.F
	if v.Kind == schema.Int64 || v.Kind == schema.Int32 {
		x = float64(v.I)
	}
	s.addKey(s.pm.key(x), 1)
}

func (s *percentileState) addKey(k int64, n uint64) {
	i, found := slices.BinarySearchFunc(s.bins, k, func(b pbin, k int64) int { return cmp.Compare(b.key, k) })
	if found {
		s.bins[i].n += n
		return
	}
	s.bins = slices.Insert(s.bins, i, pbin{key: k, n: n})
}

func (s *percentileState) Merge(other State) {
	o, ok := other.(*percentileState)
	if !ok || o.pm.prec != s.pm.prec {
		mergeMismatch(s, other)
	}
	if o == s {
		panic("BUG: tiles: merge of a state into itself")
	}
	if len(o.bins) <= 4 {
		for _, b := range o.bins {
			s.addKey(b.key, b.n)
		}
		return
	}
	s.mergeBins(o.bins)
}

// mergeBins merges the sorted bins o into s.bins in place, from the back:
// the write position stays above the read position of s.bins because
// fewer than len(o) of o's bins remain to be written at every step.
func (s *percentileState) mergeBins(o []pbin) {
	na := len(s.bins)
	a := slices.Grow(s.bins, len(o))[:na+len(o)]
	i, j, w := na-1, len(o)-1, na+len(o)
	for j >= 0 {
		w--
		switch {
		case i >= 0 && a[i].key > o[j].key:
			a[w] = a[i]
			i--
		case i >= 0 && a[i].key == o[j].key:
			a[w] = pbin{key: a[i].key, n: a[i].n + o[j].n}
			i, j = i-1, j-1
		default:
			a[w] = o[j]
			j--
		}
	}
	n := copy(a[i+1:], a[w:])
	s.bins = a[:i+1+n]
}

// Result returns the representative of the bin holding the element of
// rank ⌊q·(n−1)⌋; null when empty.
func (s *percentileState) Result() schema.Value {
	var total uint64
	for _, b := range s.bins {
		total += b.n
	}
	if total == 0 {
		return schema.Value{}
	}
	r := uint64(math.Floor(s.q * float64(total-1)))
	for _, b := range s.bins {
		if r < b.n {
			return schema.Float(s.pm.value(b.key))
		}
		r -= b.n
	}
	return schema.Float(s.pm.value(s.bins[len(s.bins)-1].key)) // r rounded up past n−1
}

func (s *percentileState) Reset()      { s.bins = s.bins[:0] }
func (s *percentileState) Empty() bool { return len(s.bins) == 0 }

func (s *percentileState) Clone() State {
	c := *s
	c.bins = slices.Clone(s.bins)
	return &c
}

func (s *percentileState) MemSize() int {
	return int(unsafe.Sizeof(*s)) + cap(s.bins)*int(unsafe.Sizeof(pbin{}))
}

func (s *percentileState) code() byte { return codePercentile }

// AppendBinary appends precision:uvarint nbins:uvarint, then the bins in
// key order: key (varint for the first, then a uvarint delta ≥ 1 from the
// previous) count:uvarint.
func (s *percentileState) AppendBinary(dst []byte) []byte {
	dst = appendHeader(dst, codePercentile)
	dst = binary.AppendUvarint(dst, uint64(s.pm.prec))
	dst = binary.AppendUvarint(dst, uint64(len(s.bins)))
	for i, b := range s.bins {
		if i == 0 {
			dst = binary.AppendVarint(dst, b.key)
		} else {
			dst = binary.AppendUvarint(dst, uint64(b.key)-uint64(s.bins[i-1].key))
		}
		dst = binary.AppendUvarint(dst, b.n)
	}
	return dst
}

func (s *percentileState) decode(r *reader) {
	if p := r.uvarint(); r.ok() && p != uint64(s.pm.prec) {
		r.fail("precision %d, want %d", p, s.pm.prec)
	}
	nb := r.count(math.MaxInt32, 2)
	var total uint64
	for i := 0; i < nb && r.ok(); i++ {
		b := pbin{key: r.binKey(i, s.bins)}
		if b.n = r.uvarint(); r.ok() && (b.n == 0 || b.n > math.MaxInt64-total) {
			r.fail("bin count %d out of range", b.n)
		}
		if r.ok() && !s.pm.validKey(b.key) {
			r.fail("bin key %d outside the mapping", b.key)
		}
		total += b.n
		s.bins = append(s.bins, b)
	}
}

// binKey reads the key of bin i, given the bins before it.
func (r *reader) binKey(i int, prev []pbin) int64 {
	if i == 0 {
		return r.varint()
	}
	p := prev[i-1].key
	d := r.uvarint()
	if r.ok() && (d == 0 || d > uint64(math.MaxInt64)-uint64(p)) {
		r.fail("bin key delta %d out of range", d)
		return 0
	}
	return int64(uint64(p) + d)
}
