package tiles

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/featurelog/featurelog/schema"
)

// The encoding of a key state (docs/format/tiles.md, "Key state") is
//
//	keystate := version:u8 form:u8 body
//	form 0, 1: body := raw
//	form 2:    body := events:uvarint nlevels:uvarint level × nlevels
//	raw      := n:uvarint unit:u8 ts0:varint tsdelta:uvarint × (n−1)
//	            seqdelta:varint × n idx:uvarint × n column × len(Store.cols)
//	column   := mode:u8 [presence bitmap] value(type) × present
//	level    := ntiles:uvarint k0:varint kdelta:uvarint × (ntiles−1)
//	            (len:uvarint payload) × (ntiles × len(plan.States))
//
// It does not name the view: the reader must use a Store of the Spec the
// writer had, whose plan (Fuse of the Spec) fixes the states of a tile
// and whose inputs fix the raw columns. Continuous views store raw events
// only, since they keep every event raw anyway: their tiles, which would
// take over ten times the bytes, are rebuilt when first read (see
// KeyState), so compaction never decodes or builds them.

// keyStateVersion is the version byte of a key state encoding. Part of
// the on-disk format; do not change.
const keyStateVersion = 1

// Key state forms: what the body holds. Part of the on-disk format; do
// not change.
const (
	formSmall    = 0 // raw events; the key has no tiles (fewer than smallKey events when written)
	formRawTiled = 1 // continuous views: raw events; the reader rebuilds the tiles from them
	formTiles    = 2 // interval views: the event count and the tiles; no raw events
)

// Raw column modes. Part of the on-disk format; do not change.
const (
	colDense = 0 // every event has a value
	colNulls = 1 // a presence bitmap follows: bit i%8 of byte i/8 is set when event i has a value
)

// maxTimeUnit is the largest power of ten the event time deltas may be
// stored in units of (10^18 ns). Part of the on-disk format; do not change.
const maxTimeUnit = 18

// minEventBytes is the fewest bytes an encoded raw event takes: its time
// delta, sequence delta and index.
const minEventBytes = 3

// rawColumn is one input of the plan, as encoded key states store it.
type rawColumn struct {
	pos int         // position in the values passed to Add
	t   schema.Type // the type every aggregator of the input reads it as (Spec.Validate)
}

// rawColumns returns the inputs the aggregators of spec read, by
// position, and the number of values a decoded event needs.
func rawColumns(spec Spec) (cols []rawColumn, width int) {
	for i, pos := range spec.AggInput {
		if !slices.ContainsFunc(cols, func(c rawColumn) bool { return c.pos == pos }) {
			cols = append(cols, rawColumn{pos: pos, t: spec.Aggs[i].Input})
		}
		width = max(width, pos+1)
	}
	slices.SortFunc(cols, func(a, b rawColumn) int { return a.pos - b.pos })
	return cols, width
}

// SortedStates is the keys of a frozen Store with their states, sorted
// bytewise by key: what writing the store out as a segment walks. It
// takes one pass over the store's keys, where Keys then AppendKeyState
// of each key would hash and look each key up again.
type SortedStates struct {
	s    *Store
	keys []sortedState
}

type sortedState struct {
	key string
	ks  *keyState // immutable: the store is frozen
}

// Sorted returns the store's keys and states, sorted bytewise. The store
// must be frozen (Freeze).
func (s *Store) Sorted() *SortedStates {
	if !s.frozen.Load() {
		panic("BUG: tiles: Sorted of a Store that is not frozen")
	}
	out := &SortedStates{s: s}
	if g := s.group; g != nil && int(g.frozen.Load()) == g.joined { // the group's sort serves all its Stores
		for _, r := range g.sortedRefs() {
			if ks := &r.states[s.slot]; ks.n > 0 {
				out.keys = append(out.keys, sortedState{r.key, ks})
			}
		}
		return out
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		s.each(i, func(k string, ks *keyState) { out.keys = append(out.keys, sortedState{k, ks}) })
		sh.mu.RUnlock()
	}
	slices.SortFunc(out.keys, func(a, b sortedState) int { return strings.Compare(a.key, b.key) })
	return out
}

// Len returns the number of keys.
func (x *SortedStates) Len() int { return len(x.keys) }

// Key returns the i-th key.
func (x *SortedStates) Key(i int) string { return x.keys[i].key }

// AppendState appends the encoding of the i-th key's state to dst, as
// AppendKeyState does.
func (x *SortedStates) AppendState(dst []byte, i int) []byte {
	ks := x.keys[i].ks
	return x.s.appendKeyState(dst, ks, ks.levels != nil)
}

// AppendKeyState appends the encoding of key's state to dst; ok is false,
// and dst returned as is, when the store has no state for key. It takes
// the key's shard read lock.
func (s *Store) AppendKeyState(dst []byte, key string) (out []byte, ok bool) {
	sh := s.shard(key)
	ks, write := s.lockKey(sh, key)
	defer sh.unlock(write)
	if ks == nil {
		return dst, false
	}
	return s.appendKeyState(dst, ks, ks.levels != nil), true
}

// AppendEncoded appends the encoding of x, as AppendKeyState does. It
// does not build lazy tiles: a continuous view's encoding holds none.
func (s *Store) AppendEncoded(dst []byte, x *KeyState) []byte {
	return s.appendKeyState(dst, &x.ks, x.tiled())
}

// appendKeyState appends the encoding of ks, which has tiles when tiled
// (lazily for a continuous view's KeyState: ks.levels is not read then).
func (s *Store) appendKeyState(dst []byte, ks *keyState, tiled bool) []byte {
	dst = append(dst, keyStateVersion)
	switch {
	case !tiled:
		return s.appendRaw(append(dst, formSmall), ks)
	case s.raw:
		return s.appendRaw(append(dst, formRawTiled), ks)
	}
	dst = append(dst, formTiles)
	dst = binary.AppendUvarint(dst, uint64(ks.n))
	dst = binary.AppendUvarint(dst, uint64(len(ks.levels)))
	for li := range ks.levels {
		dst = s.appendLevel(dst, li, &ks.levels[li])
	}
	return dst
}

// appendRaw appends ks's raw events column by column.
func (s *Store) appendRaw(dst []byte, ks *keyState) []byte {
	raw := ks.raw
	dst = binary.AppendUvarint(dst, uint64(len(raw)))
	dst = appendTimes(dst, raw)
	var seq uint64
	for _, e := range raw {
		dst = binary.AppendVarint(dst, int64(e.o.Seq-seq)) // wraps: any uint64 round-trips
		seq = e.o.Seq
	}
	for _, e := range raw {
		dst = binary.AppendUvarint(dst, uint64(e.o.Idx))
	}
	for _, c := range s.cols {
		dst = s.tl.appendColumn(dst, ks, c)
	}
	return dst
}

// appendTimes appends the unit, the first event time and the deltas in
// units of 10^unit ns, unit the largest that divides every delta: event
// times often have whole milliseconds or seconds.
func appendTimes(dst []byte, raw []rawEvent) []byte {
	unit := 0
	if len(raw) > 1 {
		unit = maxTimeUnit
	}
	for i := 1; i < len(raw) && unit > 0; i++ {
		d := uint64(raw[i].o.TS - raw[i-1].o.TS)
		for unit > 0 && d%pow10[unit] != 0 {
			unit--
		}
	}
	dst = append(dst, byte(unit))
	for i, e := range raw {
		if i == 0 {
			dst = binary.AppendVarint(dst, e.o.TS)
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(e.o.TS-raw[i-1].o.TS)/pow10[unit])
	}
	return dst
}

// pow10[i] is 10^i.
var pow10 = func() (p [maxTimeUnit + 1]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// appendColumn appends input c of every event: a mode, the presence
// bitmap when some value is null, and the values present.
func (t *tiler) appendColumn(dst []byte, ks *keyState, c rawColumn) []byte {
	raw := ks.raw
	if t.packed {
		return appendPacked(dst, raw, c.t.Kind)
	}
	nulls := false
	for i := range raw {
		if t.value(ks.vals, &raw[i], c.pos).IsNull() {
			nulls = true
			break
		}
	}
	if !nulls {
		dst = append(dst, colDense)
	} else {
		dst = append(dst, colNulls)
		at := len(dst)
		for range (len(raw) + 7) / 8 {
			dst = append(dst, 0)
		}
		for i := range raw {
			if !t.value(ks.vals, &raw[i], c.pos).IsNull() {
				dst[at+i/8] |= 1 << (i % 8)
			}
		}
	}
	for i := range raw {
		if v := t.value(ks.vals, &raw[i], c.pos); !v.IsNull() {
			dst = appendValue(dst, c.t, v)
		}
	}
	return dst
}

// appendPacked is appendColumn of a packing Store's input, of kind k:
// appendValue of a scalar appends its bits, which the events hold.
func appendPacked(dst []byte, raw []rawEvent, k schema.Kind) []byte {
	nulls := false
	for i := range raw {
		if raw[i].o.kind == schema.Null {
			nulls = true
			break
		}
	}
	if !nulls {
		dst = append(dst, colDense)
		for i := range raw {
			dst = appendScalar(dst, k, raw[i].v, "")
		}
		return dst
	}
	dst = append(dst, colNulls)
	at := len(dst)
	for range (len(raw) + 7) / 8 {
		dst = append(dst, 0)
	}
	for i := range raw {
		if raw[i].o.kind != schema.Null {
			dst[at+i/8] |= 1 << (i % 8)
			dst = appendScalar(dst, k, raw[i].v, "")
		}
	}
	return dst
}

// appendLevel appends a level's tiles: their starts as multiples of the
// level's resolution, then every state's payload.
func (s *Store) appendLevel(dst []byte, li int, l *level) []byte {
	res := s.levels[li]
	dst = binary.AppendUvarint(dst, uint64(len(l.starts)))
	var prev int64
	for i, start := range l.starts {
		k := floorDiv(start, res)
		if i == 0 {
			dst = binary.AppendVarint(dst, k)
		} else {
			dst = binary.AppendUvarint(dst, uint64(k-prev))
		}
		prev = k
	}
	for _, t := range l.tiles {
		for _, st := range t {
			dst = appendPayload(dst, st)
		}
	}
	return dst
}

// appendPayload appends st's encoding without its version and code bytes,
// which the key state's version and the plan imply, after its length:
// the length takes the place of the header, moving the payload only when
// the two differ in size.
func appendPayload(dst []byte, st State) []byte {
	at := len(dst)
	dst = st.AppendBinary(dst)
	n := len(dst) - at - 2
	var buf [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(buf[:], uint64(n))
	if k > 2 {
		dst = append(dst, buf[:k-2]...) // grow; overwritten by the move
	}
	copy(dst[at+k:], dst[at+2:at+2+n])
	copy(dst[at:], buf[:k])
	return dst[:at+k+n]
}

// floorDiv returns the floor of t / r, r > 0.
func floorDiv(t, r int64) int64 {
	q := t / r
	if t%r != 0 && t < 0 {
		q--
	}
	return q
}

// tileStart returns the start of tile k of resolution r: k·r, or
// math.MinInt64 where floorTo saturated because k·r is below it.
func tileStart(k, r int64) int64 {
	if k < math.MinInt64/r {
		return math.MinInt64
	}
	return k * r
}

// DecodeKeyState decodes an encoding made by a Store with an identical
// Spec. Malformed input yields a *KeyStateError (wrapping
// ErrCorruptKeyState), never a panic; allocations are bounded by a
// constant multiple of len(b) per plan state. The result does not retain
// b.
func (s *Store) DecodeKeyState(b []byte) (*KeyState, error) {
	out := &KeyState{}
	if err := s.decodeInto(b, out); err != nil {
		return nil, err
	}
	out.slab = nil // not reused: the state is shared (caches)
	return out, nil
}

// DecodeKeyStateInto is DecodeKeyState into dst, reusing the memory of
// the state dst held, which is gone (any value read from it before stays
// valid). It is for readers that hold one key's state at a time, such as
// a historical join walking a segment, and saves an allocation of every
// event per key. On error dst holds no state.
func (s *Store) DecodeKeyStateInto(b []byte, dst *KeyState) error {
	return s.decodeInto(b, dst)
}

func (s *Store) decodeInto(b []byte, dst *KeyState) error {
	r := reader{b: b}
	// Drop the old events' references: those beyond len were dropped by
	// the decode before (clearing the whole capacity would cost every
	// key the size of the largest key before it).
	raw, vals, slab := dst.ks.raw[:0], dst.ks.vals, dst.slab
	clear(vals)
	vals = vals[:0]
	dst.ks, dst.tl, dst.once = keyState{raw: raw, vals: vals}, nil, sync.Once{}
	if s.decodeKeyState(&r, &dst.ks, &slab) {
		dst.tl = s.tl
	}
	dst.slab = slab
	if r.ok() && r.off != len(b) {
		r.fail("%d trailing bytes", len(b)-r.off)
	}
	if !r.ok() {
		dst.ks, dst.tl = keyState{}, nil
		return &KeyStateError{Offset: r.at, Reason: r.err}
	}
	return nil
}

// decodeKeyState decodes into ks, reusing ks.raw's, ks.vals' and
// *slab's memory;
// lazy reports a continuous view's tiled state, whose tiles are left to
// build.
func (s *Store) decodeKeyState(r *reader, ks *keyState, slab *[]schema.Value) (lazy bool) {
	if v := r.u8(); r.ok() && v != keyStateVersion {
		r.back(1)
		r.fail("unknown version %d (this build reads version %d)", v, keyStateVersion)
	}
	form := r.u8()
	if !r.ok() {
		return false
	}
	switch {
	case form == formSmall, form == formRawTiled && s.raw:
		ks.raw, ks.vals, *slab = s.decodeRaw(r, ks.raw[:0], ks.vals[:0], *slab)
		ks.n = len(ks.raw)
		return form == formRawTiled
	case form == formTiles && !s.raw:
		s.decodeTiles(r, ks)
		return false
	}
	r.back(1)
	r.fail("form %d is not one of %s", form, s.viewKind())
	return false
}

// decodeRaw reads raw events, checking they are sorted by Order, into
// raw, and for a Store that does not pack its input, vals and slab (the
// events' values), when they are big enough.
func (s *Store) decodeRaw(r *reader, raw []rawEvent, vals [][]schema.Value, slab []schema.Value) ([]rawEvent, [][]schema.Value, []schema.Value) {
	n := r.count(math.MaxInt32, minEventBytes)
	if r.ok() && n == 0 {
		r.back(1)
		r.fail("no events")
	}
	if !r.ok() {
		return nil, nil, slab
	}
	if reusable(cap(raw), n) {
		raw = raw[:n]
		clear(raw) // a packed input that is null is left as it is
	} else {
		raw = make([]rawEvent, n)
	}
	decodeTimes(r, raw)
	var seq uint64
	for i := range raw {
		seq += uint64(r.varint())
		raw[i].o.Seq = seq
	}
	for i := range raw {
		at := r.off
		if raw[i].o.Idx = r.idx(); r.ok() && i > 0 && raw[i].o.Less(raw[i-1].o) {
			r.failAt(at, fmt.Sprintf("event %d comes before event %d", i, i-1))
		}
	}
	if s.tl.packed {
		decodeColumn(r, raw, nil, s.cols[0])
		return raw, nil, slab
	}
	if reusable(cap(slab), n*s.width) {
		slab = slab[:n*s.width]
		clear(slab)
	} else {
		slab = make([]schema.Value, n*s.width)
	}
	if reusable(cap(vals), n) {
		vals = vals[:n]
	} else {
		vals = make([][]schema.Value, n)
	}
	for i := range raw {
		raw[i].v = uint64(i)
		vals[i] = slab[i*s.width : (i+1)*s.width : (i+1)*s.width]
	}
	for _, c := range s.cols {
		decodeColumn(r, raw, vals, c)
	}
	return raw, vals, slab
}

// decodeTimes reads the event times of raw.
func decodeTimes(r *reader, raw []rawEvent) {
	unit := r.u8()
	if r.ok() && unit > maxTimeUnit {
		r.back(1)
		r.fail("time unit 10^%d ns exceeds 10^%d", unit, maxTimeUnit)
		return
	}
	ts := r.varint()
	for i := range raw {
		if i > 0 {
			at := r.off
			d := r.uvarint()
			if r.ok() && d > (uint64(math.MaxInt64)-uint64(ts))/pow10[unit] {
				r.failAt(at, "event time overflows")
			}
			ts += int64(d * pow10[unit])
		}
		raw[i].o.TS = ts
	}
}

// decodeColumn reads input c of every event: into the event when vals
// is nil (a packing Store), else into vals.
func decodeColumn(r *reader, raw []rawEvent, vals [][]schema.Value, c rawColumn) {
	var present []byte
	switch mode := r.u8(); {
	case !r.ok():
		return
	case mode == colNulls:
		present = r.bitmap(len(raw))
	case mode != colDense:
		r.back(1)
		r.fail("unknown column mode %d", mode)
	}
	for i := range raw {
		if !r.ok() {
			return
		}
		if present != nil && present[i/8]&(1<<(i%8)) == 0 {
			continue
		}
		if vals == nil {
			raw[i].pack(r.value(c.t))
		} else {
			vals[i][c.pos] = r.value(c.t)
		}
	}
}

// bitmap reads the presence bitmap of n events, which has some value
// absent (else the mode would be dense) and no bits set beyond n.
func (r *reader) bitmap(n int) []byte {
	nb := (n + 7) / 8
	if !r.ok() || r.left() < nb {
		r.fail("truncated")
		return nil
	}
	b := r.b[r.off : r.off+nb]
	r.off += nb
	absent := false
	for i := range nb * 8 {
		set := b[i/8]&(1<<(i%8)) != 0
		switch {
		case i >= n && set:
			r.failAt(r.off-nb, "presence bits set beyond the last event")
		case i < n && !set:
			absent = true
		}
	}
	if !absent {
		r.failAt(r.off-nb, "a presence bitmap with every value present")
	}
	return b
}

// decodeTiles reads the event count and the levels of a tiled key of an
// interval view, checking that each level partitions the same events as
// the finest.
func (s *Store) decodeTiles(r *reader, ks *keyState) {
	atN := r.off
	n := r.n64()
	if r.ok() && (n == 0 || n > math.MaxInt) {
		r.failAt(atN, fmt.Sprintf("event count %d out of range", n))
	}
	at := r.off
	if nl := r.uvarint(); r.ok() && nl != uint64(len(s.levels)) {
		r.failAt(at, fmt.Sprintf("%d levels, the view has %d", nl, len(s.levels)))
	}
	if !r.ok() {
		return
	}
	ks.n = int(n)
	ks.levels = make([]level, len(s.levels))
	for li := range ks.levels {
		if !s.decodeLevel(r, li, &ks.levels[li], ks.levels[:li]) {
			return
		}
	}
	if len(ks.levels[0].starts) > ks.n {
		r.failAt(atN, fmt.Sprintf("%d events cannot fill %d tiles", ks.n, len(ks.levels[0].starts)))
	}
}

// decodeLevel reads level li into l; finer are the levels below it.
func (s *Store) decodeLevel(r *reader, li int, l *level, finer []level) bool {
	nt := r.count(math.MaxInt32, 1+len(s.plan.States))
	if r.ok() && nt == 0 {
		r.back(1)
		r.fail("level %d has no tiles", li)
	}
	if !r.ok() {
		return false
	}
	at := r.off
	l.starts = s.decodeStarts(r, li, nt)
	if r.ok() && li > 0 && !coarsens(l.starts, finer[li-1].starts, s.levels[li]) {
		r.failAt(at, fmt.Sprintf("the tiles of level %d do not cover those of level %d", li, li-1))
	}
	if !r.ok() {
		return false
	}
	l.tiles = make([][]State, nt)
	slab := make([]State, nt*len(s.plan.States))
	for i := range l.tiles {
		t := slab[i*len(s.plan.States) : (i+1)*len(s.plan.States) : (i+1)*len(s.plan.States)]
		for ai, a := range s.plan.States {
			if !r.ok() {
				return false
			}
			st := a.newState()
			r.payload(st, a.Function)
			t[ai] = st
		}
		l.tiles[i] = t
	}
	return r.ok()
}

// decodeStarts reads nt tile starts of level li, strictly increasing.
func (s *Store) decodeStarts(r *reader, li, nt int) []int64 {
	res := s.levels[li]
	lo, hi := floorDiv(math.MinInt64, res), math.MaxInt64/res
	starts := make([]int64, nt)
	var k int64
	for i := range starts {
		at := r.off
		if i == 0 {
			k = r.varint()
		} else {
			d := r.uvarint()
			if r.ok() && (d == 0 || d > uint64(hi)-uint64(k)) {
				r.failAt(at, fmt.Sprintf("tile start delta %d out of range", d))
			}
			k += int64(d)
		}
		if !r.ok() {
			return nil
		}
		if k < lo || k > hi {
			r.failAt(at, fmt.Sprintf("tile %d out of range", k))
			return nil
		}
		starts[i] = tileStart(k, res)
	}
	return starts
}

// coarsens reports whether starts are exactly the tiles of resolution res
// that hold the finer tiles fine.
func coarsens(starts, fine []int64, res int64) bool {
	j := 0
	for _, f := range fine {
		c := floorTo(f, res)
		if j > 0 && starts[j-1] == c {
			continue
		}
		if j >= len(starts) || starts[j] != c {
			return false
		}
		j++
	}
	return j == len(starts)
}

// payload reads a length-prefixed state payload into st, which is empty.
func (r *reader) payload(st codecState, function string) {
	at := r.off
	n := r.uvarint()
	if r.ok() && n > uint64(r.left()) {
		r.failAt(at, fmt.Sprintf("state length %d exceeds the %d bytes left", n, r.left()))
	}
	if !r.ok() {
		return
	}
	sub := reader{b: r.b[r.off : r.off+int(n)]}
	st.decode(&sub)
	if sub.ok() && sub.off != len(sub.b) {
		sub.fail("%d trailing bytes", len(sub.b)-sub.off)
	}
	if !sub.ok() {
		r.failAt(r.off+sub.at, fmt.Sprintf("%s state: %s", function, sub.err))
		return
	}
	r.off += int(n)
}

// viewKind names the kind of view s serves, for errors.
func (s *Store) viewKind() string {
	if s.raw {
		return "a continuous view"
	}
	return "an interval view"
}

// failAt records a failure at byte at, unless one is recorded already.
func (r *reader) failAt(at int, reason string) {
	if r.err == "" {
		r.err, r.at = reason, at
	}
}

// reusable reports whether memory of capacity c should hold n elements:
// it is big enough and not so big that a hot key's decode would keep
// its memory alive for every small key after it.
func reusable(c, n int) bool { return c >= n && c <= max(4*n, 4096) }
