package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/schema"
)

// Attribute key state: the value an attribute view's segment holds for one
// entity key, its versions in versionLess order, columnar:
//
//	format   byte     attrStateV1 (part of the on-disk format; do not change)
//	n        uvarint  number of versions
//	scale    byte     event times are stored divided by 10^scale (the largest
//	                  power of ten dividing them all, ≤ 18: timestamps of ms
//	                  or s precision take 2–4 bytes less each)
//	ts       varint, then n−1 × uvarint   event time / 10^scale, the first
//	                  absolute, then the unsigned deltas (the span of storable
//	                  times, 1677–2262, is wider than int64)
//	seq      n × varint   log sequence, the first absolute, then deltas
//	idx      n × uvarint  position in the log entry
//	values   per feature, n values in record.AppendValue encoding
//
// Layout, example and rationale: docs/format/attributes.md.
const attrStateV1 = 1

// appendVersions appends the encoding of h.
func appendVersions(dst []byte, h []version, types []schema.Type) []byte {
	dst = append(dst, attrStateV1)
	dst = binary.AppendUvarint(dst, uint64(len(h)))
	scale := 18
	for _, v := range h {
		for scale > 0 && v.ts%pow10[scale] != 0 {
			scale--
		}
	}
	dst = append(dst, byte(scale))
	var prevTS int64
	var prevSeq uint64
	for i, v := range h {
		if i == 0 {
			dst = binary.AppendVarint(dst, v.ts/pow10[scale])
		} else {
			dst = binary.AppendUvarint(dst, (uint64(v.ts)-uint64(prevTS))/uint64(pow10[scale]))
		}
		prevTS = v.ts
	}
	for _, v := range h {
		dst = binary.AppendVarint(dst, int64(v.seq-prevSeq))
		prevSeq = v.seq
	}
	for _, v := range h {
		dst = binary.AppendUvarint(dst, uint64(v.idx))
	}
	for f := range types {
		for _, v := range h {
			dst = record.AppendValue(dst, v.vals[f])
		}
	}
	return dst
}

var errAttrState = errors.New("attribute key state")

// pow10[i] is 10^i.
var pow10 = func() []int64 {
	p := make([]int64, 19)
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// decodeVersions decodes an encoding made by appendVersions for a view
// whose features have the given types.
func decodeVersions(b []byte, types []schema.Type) ([]version, error) {
	h, _, err := decodeVersionsInto(b, types, nil, nil)
	return h, err
}

// decodeVersionsInto is decodeVersions reusing h's and vals' memory when
// they are big enough: for readers that hold one key's history at a time
// (a historical join walking a segment). It returns them for the next
// call.
func decodeVersionsInto(b []byte, types []schema.Type, h []version, vals []schema.Value) ([]version, []schema.Value, error) {
	d := attrDecoder{b: b}
	h = d.heads(types, h)
	if d.err != nil {
		return nil, vals, d.err
	}
	if nv := len(h) * len(types); cap(vals) >= nv {
		vals = vals[:nv]
		clear(vals)
	} else {
		vals = make([]schema.Value, nv)
	}
	for i := range h {
		h[i].vals = vals[i*len(types) : (i+1)*len(types) : (i+1)*len(types)]
	}
	for f, t := range types {
		for i := range h {
			h[i].vals[f] = d.value(t)
		}
	}
	if err := d.end(h); err != nil {
		return nil, vals, err
	}
	return h, vals, nil
}

// lazyVersions is a key's history decoded without its values, which
// valuesAt decodes for the one version a read returns: a join reads one
// or a few versions of a key's history, and decoding every value was half
// of the attribute view's share of a 1M-row join's CPU.
type lazyVersions struct {
	h    []version // vals nil
	b    []byte    // the encoding
	cols []int     // the offset in b of each feature's first value
	// at and off are, per feature, the version whose value valuesAt last
	// decoded and that value's offset: reads of a key come in time order,
	// so each resumes where the last one stopped (linear, not quadratic,
	// in a key's versions when a range-mode join reads them all).
	at, off []int
}

// decodeVersionsLazy decodes b into l, reusing l's memory, checking the
// whole encoding as decodeVersionsInto does but materializing no value.
func decodeVersionsLazy(b []byte, types []schema.Type, l *lazyVersions) error {
	d := attrDecoder{b: b}
	l.h, l.b, l.cols, l.at, l.off = d.heads(types, l.h), b, l.cols[:0], l.at[:0], l.off[:0]
	for i := range l.h {
		l.h[i].vals = nil
	}
	for _, t := range types {
		l.cols, l.at, l.off = append(l.cols, d.off), append(l.at, 0), append(l.off, d.off)
		for range l.h {
			d.skip(t)
		}
	}
	if err := d.end(l.h); err != nil {
		l.h = l.h[:0]
		return err
	}
	return nil
}

// valuesAt decodes version i's values into dst (one per feature).
func (l *lazyVersions) valuesAt(i int, types []schema.Type, dst []schema.Value) error {
	for f, t := range types {
		if i < l.at[f] {
			l.at[f], l.off[f] = 0, l.cols[f]
		}
		d := attrDecoder{b: l.b, off: l.off[f]}
		for ; l.at[f] < i; l.at[f]++ {
			d.skip(t)
		}
		l.off[f] = d.off
		dst[f] = d.value(t)
		if d.err != nil {
			l.at[f], l.off[f] = 0, l.cols[f]
			return d.err
		}
	}
	return nil
}

// heads decodes the format byte, the version count and every version's
// event time, sequence and index into h (reused when big enough), leaving
// the decoder at the first value. The versions' vals are untouched.
func (d *attrDecoder) heads(types []schema.Type, h []version) []version {
	if d.byte() != attrStateV1 {
		d.fail("unknown format")
		return nil
	}
	n := d.uvarint()
	// Every version takes at least 3 bytes plus one per feature.
	if d.err != nil || n == 0 || n > uint64(len(d.b)/(3+len(types))) {
		d.fail("bad version count")
		return nil
	}
	if uint64(cap(h)) >= n {
		h = h[:n]
	} else {
		h = make([]version, n)
	}
	scale := int(d.byte())
	if scale >= len(pow10) {
		d.fail(fmt.Sprintf("bad time scale %d", scale))
		return nil
	}
	var ts int64
	var seq uint64
	p := pow10[scale]
	for i := range h {
		if i == 0 {
			x := d.varint()
			if x > math.MaxInt64/p || x < math.MinInt64/p {
				d.fail("event time out of range")
			}
			ts = x * p
		} else {
			dt := d.uvarint()
			if dt > math.MaxUint64/uint64(p) {
				d.fail("event time delta out of range")
			}
			next := int64(uint64(ts) + dt*uint64(p))
			if next < ts {
				d.fail("event times out of order")
			}
			ts = next
		}
		h[i].ts = ts
	}
	for i := range h {
		seq += uint64(d.varint())
		h[i].seq = seq
	}
	for i := range h {
		x := d.uvarint()
		if x > 1<<32-1 {
			d.fail("index out of range")
		}
		h[i].idx = uint32(x)
	}
	return h
}

// end checks that the decoder consumed all of its bytes without error and
// that h is in versionLess order.
func (d *attrDecoder) end(h []version) error {
	if d.err == nil && d.off != len(d.b) {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return d.err
	}
	for i := 1; i < len(h); i++ {
		if versionLess(&h[i], &h[i-1]) {
			return fmt.Errorf("%w: versions out of order", errAttrState)
		}
	}
	return nil
}

type attrDecoder struct {
	b   []byte
	off int
	err error
}

func (d *attrDecoder) fail(reason string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", errAttrState, reason, d.off)
	}
}

func (d *attrDecoder) byte() byte {
	if d.err != nil || d.off >= len(d.b) {
		d.fail("truncated")
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *attrDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.off += n
	return x
}

func (d *attrDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return x
}

// skip moves past one value of type t, checking its encoding.
func (d *attrDecoder) skip(t schema.Type) {
	if d.err != nil {
		return
	}
	n, err := record.SkipValue(d.b[d.off:], t)
	if err != nil {
		d.fail(err.Error())
		return
	}
	d.off += n
}

func (d *attrDecoder) value(t schema.Type) schema.Value {
	if d.err != nil {
		return schema.Value{}
	}
	v, n, err := record.DecodeValue(d.b[d.off:], t)
	if err != nil {
		d.fail(err.Error())
		return schema.Value{}
	}
	if !v.IsNull() && v.Kind != t.Kind {
		d.fail("value of the wrong kind")
	}
	d.off += n
	return v
}

// mergeVersions merges histories of one key over disjoint records.
func mergeVersions(parts [][]version) []version {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]version, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	sort.SliceStable(out, func(i, j int) bool { return versionLess(&out[i], &out[j]) })
	return out
}

// latestIn returns the latest version of h with event time < t.
func latestIn(h []version, t int64) (version, bool) {
	i := sort.Search(len(h), func(i int) bool { return h[i].ts >= t })
	if i == 0 {
		return version{}, false
	}
	return h[i-1], true
}
