package tiles

import (
	"slices"
	"sync"
	"unsafe"

	"github.com/featurelog/featurelog/schema"
)

// Key states. In the engine's LSM a view's events are partitioned, by log
// sequence, across sources: the active Store, frozen Stores being flushed
// and immutable segments. A KeyState is one entity key's state from one
// source, detached from any Store. States are mergeable, so a read
// collects every source's contribution into one accumulator (ReadWith),
// and compaction merges them (MergeKeyStates). Segments hold key states
// in the encoding of keystate_codec.go.

// KeyState is one entity key's state from one source, detached from any
// Store: its raw events and tiles, in the layout of the Store (the same
// Spec) that made or decoded it. Immutable once built, so any number of
// goroutines may read it. It may share memory with the KeyStates it was
// merged from, which are immutable too.
//
// A continuous view's tiles are derived data: its raw events hold every
// event. Decoded and merged states of continuous views therefore build
// their tiles lazily, on the first read (or MemSize), so that compaction,
// which only decodes, merges and encodes, never builds them.
type KeyState struct {
	ks keyState // its hot-tier fields are unused; ks.levels is read only through state() while tl != nil
	// tl builds ks.levels on first use when the state is lazy (a tiled
	// continuous view state decoded or merged without its tiles); nil
	// otherwise.
	tl   *tiler
	once sync.Once // runs the lazy build
	// slab holds the raw events' values when the state was decoded by
	// DecodeKeyStateInto for a Store that does not pack its input, for
	// the next decode to reuse.
	slab []schema.Value
}

// state returns the key state with its tiles, building them first if
// they are lazy.
func (x *KeyState) state() *keyState {
	if x.tl != nil {
		x.once.Do(func() { x.tl.buildSorted(&x.ks) })
	}
	return &x.ks
}

// buildSorted builds the tiles of a continuous view's key from its raw
// events, as buildTiles does but faster: the finest level by adding the
// events, which arrive in time order, and each coarser level by merging
// the tiles of the level below, which hold the same events (the Store
// invariant). Merges are exact except for float sums and moments, which
// agree to rounding.
func (t *tiler) buildSorted(ks *keyState) {
	ks.levels = make([]level, len(t.levels))
	l0 := &ks.levels[0]
	for i := range ks.raw {
		e := &ks.raw[i]
		for ai, st := range l0.tile(floorTo(e.o.TS, t.levels[0]), t.states) {
			if v := t.value(ks.vals, e, t.input[ai]); !v.IsNull() {
				st.Add(v, e.o.order())
			}
		}
	}
	for li := 1; li < len(t.levels); li++ {
		fine, l := &ks.levels[li-1], &ks.levels[li]
		for i, start := range fine.starts {
			for ai, st := range l.tile(floorTo(start, t.levels[li]), t.states) {
				st.Merge(fine.tiles[i][ai])
			}
		}
	}
}

// tiled reports whether the state has (or lazily will have) tiles.
func (x *KeyState) tiled() bool { return x.tl != nil || x.ks.levels != nil }

// Events returns the number of events x holds (raw or tiled).
func (x *KeyState) Events() int { return x.ks.n }

// Keys returns every key the store holds, sorted bytewise.
func (s *Store) Keys() []string {
	var keys []string
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		s.each(i, func(k string, _ *keyState) { keys = append(keys, k) })
		sh.mu.RUnlock()
	}
	slices.Sort(keys)
	return keys
}

// Levels returns the tile resolutions (ns), finest first.
func (s *Store) Levels() []int64 { return slices.Clone(s.levels) }

// Freeze marks the store read-only, as a frozen memtable is: Add panics
// afterwards, and Own shares the store's memory instead of copying it.
// Call it once no Add can be in progress.
//
// Freeze settles every key's pending events first, so that readers of a
// frozen store never take a write lock.
func (s *Store) Freeze() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		s.each(i, func(_ string, ks *keyState) { s.tl.settle(ks) })
		sh.mu.Unlock()
	}
	if !s.frozen.Swap(true) && s.group != nil {
		s.group.frozen.Add(1)
	}
}

// Own returns the store's own state for key as a KeyState, or nil when
// the store has none. It is a snapshot that later Adds do not affect:
// the raw events and every tile are copied (event values are shared, as
// Add's caller never modifies them and the store only appends to its
// list of them), at a cost in proportion to the
// key's size; after Freeze nothing is copied.
func (s *Store) Own(key string) *KeyState {
	sh := s.shard(key)
	ks, write := s.lockKey(sh, key)
	defer sh.unlock(write)
	if ks == nil {
		return nil
	}
	out := &KeyState{}
	out.ks.n = ks.n
	out.ks.vals = slices.Clip(ks.vals)
	if s.frozen.Load() {
		out.ks.raw, out.ks.levels = ks.raw, ks.levels
		return out
	}
	out.ks.raw = slices.Clone(ks.raw)
	if ks.levels != nil {
		out.ks.levels = make([]level, len(ks.levels))
		for li := range ks.levels {
			out.ks.levels[li] = ks.levels[li].clone()
		}
	}
	return out
}

// clone returns a deep copy of l.
func (l *level) clone() level {
	c := level{starts: slices.Clone(l.starts), tiles: make([][]State, len(l.tiles))}
	for i, t := range l.tiles {
		c.tiles[i] = cloneTile(t)
	}
	return c
}

// cloneTile returns a deep copy of a tile's states.
func cloneTile(t []State) []State {
	c := make([]State, len(t))
	for i, st := range t {
		c[i] = st.Clone()
	}
	return c
}

// MergeKeyStates merges states of one key over disjoint event sets into
// one, as compaction does; nil parts are skipped, and no parts give nil.
// It does not modify its inputs, but the result may share memory with
// them (raw event values, and tiles only one part has).
//
// The result reads like a single Store that received all the events, bit
// for bit except float sums, means and variances (merge order differs):
// raw events are the union in Order. For continuous views that is all:
// the merge is tiled, lazily (see KeyState), when a part is or the union
// has smallKey events. For interval views tiles present in several parts
// are merged into a copy, a small (raw-only) part's events are added to
// the tiles when another part has tiles, and a merge of small parts that
// reaches smallKey events gets tiles instead of its raw events.
func (s *Store) MergeKeyStates(parts []*KeyState) *KeyState {
	parts = slices.DeleteFunc(slices.Clone(parts), func(p *KeyState) bool { return p == nil })
	switch len(parts) {
	case 0:
		return nil
	case 1:
		return parts[0]
	}
	out := &KeyState{}
	var small, all []*keyState
	for _, p := range parts {
		out.ks.n += p.ks.n
		all = append(all, &p.ks)
		if !p.tiled() {
			small = append(small, &p.ks)
		}
	}
	if s.raw { // the parts' lazy tiles stay unbuilt
		out.ks.raw, out.ks.vals = s.tl.mergeRaw(all)
		if len(small) < len(parts) || len(out.ks.raw) >= smallKey {
			out.tl = s.tl
		}
		return out
	}
	var tiled []*keyState
	for _, p := range parts {
		if p.tiled() {
			tiled = append(tiled, p.state())
		}
	}
	if len(tiled) == 0 {
		out.ks.raw, out.ks.vals = s.tl.mergeRaw(small)
		if len(out.ks.raw) >= smallKey {
			s.tl.buildTiles(&out.ks)
		}
		return out
	}
	if len(small) > 0 { // their events, tiled afresh, join as one more tiled part
		fresh := &keyState{levels: make([]level, len(s.levels))}
		var raw []rawEvent
		raw, fresh.vals = s.tl.mergeRaw(small)
		for _, e := range raw {
			s.tl.addToTiles(fresh, e)
		}
		fresh.vals = nil
		tiled = append(tiled, fresh)
	}
	out.ks.levels = make([]level, len(s.levels))
	for li := range out.ks.levels {
		out.ks.levels[li] = mergeLevel(tiled, li)
	}
	return out
}

// mergeRaw merges the raw events of parts, each sorted by Order, into
// one new list with its values (or returns the only part's). Equal
// orders, which disjoint sources never have, keep the parts' order. The
// values of a Store that does not pack its input are the parts' in turn,
// each event's index moved by the values of the parts before its own.
func (t *tiler) mergeRaw(parts []*keyState) ([]rawEvent, [][]schema.Value) {
	if len(parts) == 1 {
		return parts[0].raw, parts[0].vals
	}
	n := 0
	for _, p := range parts {
		n += len(p.raw)
	}
	var vals [][]schema.Value
	base := make([]uint64, len(parts))
	if !t.packed {
		for i, p := range parts {
			base[i] = uint64(len(vals))
			vals = append(vals, p.vals...)
		}
	}
	out := make([]rawEvent, 0, n)
	heads := make([]int, len(parts))
	for len(out) < n {
		best := -1
		for i, p := range parts {
			if heads[i] < len(p.raw) && (best < 0 || p.raw[heads[i]].o.Less(parts[best].raw[heads[best]].o)) {
				best = i
			}
		}
		e := parts[best].raw[heads[best]]
		e.v += base[best] // 0 when packed
		out = append(out, e)
		heads[best]++
	}
	return out, vals
}

// mergeLevel merges level li of parts tile by tile: a tile only one part
// has is shared, the others are merged into a copy of the first.
func mergeLevel(parts []*keyState, li int) level {
	n := 0
	for _, p := range parts {
		n += len(p.levels[li].starts)
	}
	out := level{starts: make([]int64, 0, n), tiles: make([][]State, 0, n)}
	heads := make([]int, len(parts))
	for {
		start, found := int64(0), false
		for pi, p := range parts {
			if l := &p.levels[li]; heads[pi] < len(l.starts) && (!found || l.starts[heads[pi]] < start) {
				start, found = l.starts[heads[pi]], true
			}
		}
		if !found {
			return out
		}
		var tile []State
		copied := false // tile is a copy this merge owns, not a part's
		for pi, p := range parts {
			l := &p.levels[li]
			if heads[pi] >= len(l.starts) || l.starts[heads[pi]] != start {
				continue
			}
			t := l.tiles[heads[pi]]
			heads[pi]++
			if tile == nil {
				tile = t
				continue
			}
			if !copied {
				tile, copied = cloneTile(tile), true
			}
			for i, st := range tile {
				st.Merge(t[i])
			}
		}
		out.starts = append(out.starts, start)
		out.tiles = append(out.tiles, tile)
	}
}

// ChangeTimes appends to dst, ascending and without repeats, the event
// times (Unix ns) ks knows of: every raw event's time when it keeps raw
// events (continuous views, and small keys of interval views), otherwise
// the start of every finest-level tile. A feature read from ks can change
// value only at these instants (and where its window's end or start
// crosses them).
func (x *KeyState) ChangeTimes(dst []int64) []int64 {
	n := len(dst)
	add := func(t int64) {
		if len(dst) == n || dst[len(dst)-1] != t {
			dst = append(dst, t)
		}
	}
	if x.tl != nil || len(x.ks.raw) > 0 || x.ks.levels == nil {
		for _, e := range x.ks.raw {
			add(e.o.TS)
		}
		return dst
	}
	for _, t := range x.ks.levels[0].starts {
		add(t)
	}
	return dst
}

// Sizes of what a key state holds, for MemSize.
const (
	keyStateSize = int(unsafe.Sizeof(KeyState{}))
	rawEventSize = int(unsafe.Sizeof(rawEvent{}))
	valsSize     = int(unsafe.Sizeof([]schema.Value(nil)))
	valueSize    = int(unsafe.Sizeof(schema.Value{}))
	stateSize    = int(unsafe.Sizeof(State(nil)))
	tileSize     = int(unsafe.Sizeof([]State(nil)))
)

// MemSize estimates the bytes x holds in memory, for cache accounting: a
// state that is read holds its tiles, so MemSize builds them first if
// they are lazy. Memory shared with the states it was merged from is
// counted in each.
func (x *KeyState) MemSize() int {
	ks := x.state()
	n := keyStateSize + cap(ks.raw)*rawEventSize + cap(ks.vals)*valsSize
	for _, vals := range ks.vals {
		n += valuesSize(vals)
	}
	for li := range ks.levels {
		l := &ks.levels[li]
		n += cap(l.starts)*8 + cap(l.tiles)*tileSize
		for _, t := range l.tiles {
			n += cap(t) * stateSize
			for _, st := range t {
				n += st.MemSize()
			}
		}
	}
	return n
}

// valuesSize is the memory of an event's values: the slice, strings and
// arrays.
func valuesSize(vals []schema.Value) int {
	n := cap(vals) * valueSize
	for _, v := range vals {
		n += len(v.S)
		if v.A != nil {
			n += valuesSize(v.A)
		}
	}
	return n
}
