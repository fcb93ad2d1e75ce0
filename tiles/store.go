package tiles

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/featurelog/featurelog/schema"
)

// Spec describes what a Store computes for one feature view.
type Spec struct {
	// Aggs are the distinct aggregators of the view's features: features
	// that differ only in their window share one.
	Aggs []Agg
	// AggInput gives, per aggregator, the index of its input in the
	// values passed to Add.
	AggInput []int
	// Features are the served features, in order.
	Features []Feature
	// Interval is the aggregation interval in ns; 0 for continuous views.
	Interval int64
	// Start is feature_start_time in Unix ns, or math.MinInt64. The
	// caller adds no event before it, so lifetime windows begin here.
	Start int64
}

// Feature is one served aggregate: an aggregator over a window.
type Feature struct {
	Agg    int // index into Spec.Aggs
	Window Window
}

// Validate reports a spec that cannot work.
func (s *Spec) Validate() error {
	if len(s.AggInput) != len(s.Aggs) {
		return errors.New("tiles: Spec.AggInput must have one entry per aggregator")
	}
	for i, a := range s.Aggs {
		if err := a.Validate(); err != nil {
			return fmt.Errorf("tiles: aggregator %d: %w", i, err)
		}
		if err := s.validateInput(i); err != nil {
			return err
		}
	}
	for i, f := range s.Features {
		if f.Agg < 0 || f.Agg >= len(s.Aggs) {
			return fmt.Errorf("tiles: feature %d names aggregator %d of %d", i, f.Agg, len(s.Aggs))
		}
		if !f.Window.Lifetime && f.Window.Size <= 0 {
			return fmt.Errorf("tiles: feature %d has an empty window", i)
		}
		if s.Interval > 0 && (f.Window.Size%s.Interval != 0 || f.Window.Offset%s.Interval != 0) {
			return fmt.Errorf("tiles: feature %d: window and offset must be multiples of the interval", i)
		}
	}
	return nil
}

// Fingerprint identifies what the Store of s keeps per key and how its
// encoded key states are laid out: levels, planned states, raw columns
// and served features all follow from it. A key state may be decoded only
// by a Store whose Spec has the fingerprint of the writer's (see
// keystate_codec.go); callers that persist key states keep it beside them
// to tell when the layout changed although the view did not (issue 10).
func (s *Spec) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "tiles spec 1|interval %d|start %d|aggs %d", s.Interval, s.Start, len(s.Aggs))
	for i, a := range s.Aggs {
		fmt.Fprintf(h, "|%q n=%d q=%x p=%d in=%s@%d", a.Function, a.N, math.Float64bits(a.Percentile), a.Precision, a.Input, s.AggInput[i])
	}
	fmt.Fprintf(h, "|features %d", len(s.Features))
	for _, f := range s.Features {
		fmt.Fprintf(h, "|%d %d %d %t", f.Agg, f.Window.Size, f.Window.Offset, f.Window.Lifetime)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// validateInput checks aggregator i's input position: not negative, and
// of one type for every aggregator that reads it, as encoded key states
// store each input column once (see keystate_codec.go).
func (s *Spec) validateInput(i int) error {
	in := s.AggInput[i]
	if in < 0 {
		return fmt.Errorf("tiles: aggregator %d has the negative input position %d", i, in)
	}
	for j := range i {
		if s.AggInput[j] == in && s.Aggs[j].Input != s.Aggs[i].Input {
			return fmt.Errorf("tiles: aggregators %d and %d read input %d as %v and %v: give an input one type",
				j, i, in, s.Aggs[j].Input, s.Aggs[i].Input)
		}
	}
	return nil
}

// storeShards is the number of independently locked shards of a Store.
const storeShards = 64

// Store holds the tiles of one feature view: per entity key, a partial
// aggregate per aggregator for every tile of every level, and for
// continuous views the raw events that windows' unaligned edges need.
//
// Invariant: once a key has tiles, every event added for it is in exactly
// one tile of every level (and in raw for continuous views), so a coarse
// tile's state equals the merge of the fine tiles inside it, and any
// tile-aligned range can be answered from any mix of levels that
// partitions it. Before that (fewer than smallKey events) its raw events
// hold everything.
type Store struct {
	spec   Spec
	plan   Plan    // the states a tile keeps: spec.Aggs fused (count+sum+min+max of a column share one)
	groups []group // the features by (state, window): each group's range is gathered once per read
	input  []int   // per plan state, the index of its input in Add's values
	hot    HotTier
	levels []int64     // tile resolutions, finest first
	raw    bool        // keep raw events (continuous views)
	cols   []rawColumn // the inputs the plan reads, by position: the columns of an encoded key state's raw events
	width  int         // len of a decoded raw event's values: the largest input position + 1
	tl     *tiler      // builds a key's tiles; shared with KeyStates, which build theirs lazily
	frozen atomic.Bool // set by Freeze: no Add may follow, so Own may share the store's memory
	// settleEach settles every pending event at once, as if each were
	// inserted in place: tests compare a store with and without it.
	settleEach bool
	seed       maphash.Seed
	// group, when set, holds the store's key states (group.go): the
	// shards' keys and gens maps are then unused, and the store's state
	// for a key is its slot of the key's KeyRef.
	group  *KeyGroup
	slot   int
	shards [storeShards]shard
	reads  sync.Pool // *readScratch
}

type shard struct {
	// mu guards keys, gens and every keyState in the shard: own,
	// or for a Store of a KeyGroup the group's lock of the stripe, which
	// guards the stripe's keys in every Store of the group.
	mu   *sync.RWMutex
	own  sync.RWMutex
	keys map[string]*keyState // entity key → state
	// gens holds the generation a deleted key's next state starts at, so
	// that no hot-tier entry of its deleted state can be found again.
	gens map[string]uint64
}

// tiler is what building a key's tiles takes: the Store's layout. A
// KeyState keeps the tiler, not the Store, so that it can build its tiles
// lazily without keeping a memtable alive. Immutable.
type tiler struct {
	levels []int64 // Store.levels
	states []Agg   // Store.plan.States
	input  []int   // Store.input
	raw    bool    // Store.raw
	// packed keeps the plan's one input in the events (see rawEvent):
	// every plan state reads input in.
	packed bool
	in     int
}

// keyState is everything a Store holds for one entity key.
type keyState struct {
	// The fields Add reads for a key without tiles (the hot tier's, n,
	// raw and levels) come first, in the first 64 bytes, and the struct
	// is 128 bytes: a KeyRef's states (side by side, at a multiple of 64)
	// then cost Add one cache line each. Add reads no other field for
	// such a key; it compares an event with the last raw event, whose
	// line it appends to anyway.
	keyHotState
	n      int        // events added: interval views drop raw events once tiled, so they are counted here
	raw    []rawEvent // every event, sorted by Order: always for continuous views, until tiles exist for interval views
	levels []level    // one per Store.levels; nil while the key is small (see smallKey)
	// pend holds, in arrival order, events added but not yet in raw or
	// levels: those that would have been inserted into the middle of
	// either, and every event after them, until settle places them all in
	// one pass. Reads never see a key with pending events (see lockKey).
	pend []rawEvent
	// vals holds, for a Store that does not pack its input (see
	// tiler.packed), the values of the events of raw and pend, indexed by
	// their rawEvent.v. Entries are never changed once set (Own's
	// snapshots and ReadLogged share them), only appended, or the last
	// one just appended removed again; nil for packing stores.
	vals [][]schema.Value
	_    [8]byte // to 128 bytes
}

// keyStateBytes is the size of keyState: two cache lines.
const keyStateBytes = 128

// A compile-time check that rawEvent is 32 bytes.
var _ [32 - unsafe.Sizeof(rawEvent{})]byte
var _ [unsafe.Sizeof(rawEvent{}) - 32]byte

// A compile-time check that keyState is keyStateBytes long.
var _ [keyStateBytes - unsafe.Sizeof(keyState{})]byte
var _ [unsafe.Sizeof(keyState{}) - keyStateBytes]byte

// rawEvent is one event a key keeps. It holds no pointer, so that the
// garbage collector never scans a memtable's event lists: a Store whose
// plan reads one input of a scalar, non-string type (tiler.packed, the
// common case) keeps that input in the event, and any other keeps the
// event's inputs in its list's vals (keyState.vals), at index v.
// It is 32 bytes: the packed input's kind lies in what would be an
// Order's padding.
type rawEvent struct {
	o eventOrder
	// v is the packed input's I, or the bits of its F (by o.kind), or for
	// a Store that does not pack, the index of the event's inputs in vals.
	v uint64
}

// eventOrder is a rawEvent's Order, and the kind of its packed input.
type eventOrder struct {
	TS   int64
	Seq  uint64
	Idx  uint32
	kind schema.Kind // the packed input's kind, Null when it is null
}

// order returns o as an Order.
func (o eventOrder) order() Order { return Order{TS: o.TS, Seq: o.Seq, Idx: o.Idx} }

// Less is Order.Less.
func (o eventOrder) Less(p eventOrder) bool { return o.order().Less(p.order()) }

// compare is Order.compare.
func (o eventOrder) compare(p eventOrder) int { return o.order().compare(p.order()) }

// newEvent returns an event of o (with no input).
func newEvent(o Order) rawEvent {
	return rawEvent{o: eventOrder{TS: o.TS, Seq: o.Seq, Idx: o.Idx}}
}

// packable reports whether a Store whose plan reads the inputs cols
// keeps them in its events (rawEvent): one input, of a type whose values
// are all in Value's I or F.
func packable(cols []rawColumn) bool {
	if len(cols) != 1 {
		return false
	}
	switch cols[0].t.Kind {
	case schema.Int64, schema.Int32, schema.Float64, schema.Float32, schema.Bool, schema.Timestamp:
		return true
	}
	return false
}

// pack stores v in e, as a packing Store keeps it.
func (e *rawEvent) pack(v schema.Value) {
	e.o.kind = v.Kind
	switch v.Kind {
	case schema.Null:
		e.v = 0
	case schema.Float64, schema.Float32:
		e.v = math.Float64bits(v.F)
	case schema.String, schema.Array:
		panic("BUG: tiles: a " + v.Kind.String() + " value for a numeric input")
	default:
		e.v = uint64(v.I)
	}
}

// unpack returns the input pack stored in e.
func (e *rawEvent) unpack() schema.Value {
	switch e.o.kind {
	case schema.Null:
		return schema.Value{}
	case schema.Float64, schema.Float32:
		return schema.Value{Kind: e.o.kind, F: math.Float64frombits(e.v)}
	}
	return schema.Value{Kind: e.o.kind, I: int64(e.v)}
}

// value returns input in of e, one of the events of a list whose values
// (for a Store that does not pack) are vals.
func (t *tiler) value(vals [][]schema.Value, e *rawEvent, in int) schema.Value {
	if t.packed {
		return e.unpack()
	}
	return vals[e.v][in]
}

// level is the tiles of one resolution, sorted by start.
type level struct {
	starts []int64
	tiles  [][]State // tiles[i][state], one per Store.plan.States
}

// group is the features that read one plan state over one window, such as
// count, sum and mean over 1h of one column.
type group struct {
	slot     int
	window   Window
	features []int // indexes into Spec.Features
}

// groupKey identifies a group.
type groupKey struct {
	slot int
	w    Window
}

// groupFeatures groups the features by (plan state, window).
func groupFeatures(spec Spec, plan Plan) []group {
	var gs []group
	index := map[groupKey]int{}
	for fi, f := range spec.Features {
		k := groupKey{plan.Slot[f.Agg], f.Window}
		gi, ok := index[k]
		if !ok {
			gi = len(gs)
			index[k] = gi
			gs = append(gs, group{slot: k.slot, window: k.w})
		}
		gs[gi].features = append(gs[gi].features, fi)
	}
	return gs
}

// NewStore returns an empty store for spec, using hot as its hot tier.
func NewStore(spec Spec, hot HotTier) (*Store, error) {
	return newStore(spec, hot, maphash.MakeSeed(), true)
}

// newStore is NewStore with the seed of its shards' hash; keyed stores
// keep their keys in their shards' maps (Stores of a KeyGroup do not).
func newStore(spec Spec, hot HotTier, seed maphash.Seed, keyed bool) (*Store, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	s := &Store{spec: spec, hot: hot, levels: levelsFor(spec.Interval), raw: spec.Interval <= 0, seed: seed}
	s.plan = Fuse(spec.Aggs, spec.AggInput)
	s.input = make([]int, len(s.plan.States))
	for i, slot := range s.plan.Slot {
		s.input[slot] = spec.AggInput[i]
	}
	s.groups = groupFeatures(spec, s.plan)
	s.cols, s.width = rawColumns(spec)
	s.tl = &tiler{levels: s.levels, states: s.plan.States, input: s.input, raw: s.raw, packed: packable(s.cols)}
	if s.tl.packed {
		s.tl.in = s.cols[0].pos
	}
	if s.hot.MinSpan == 0 {
		s.hot.MinSpan = 20 * s.levels[0]
	}
	for i := range s.shards {
		s.shards[i].mu = &s.shards[i].own
		if keyed {
			s.shards[i].keys = make(map[string]*keyState)
		}
	}
	s.reads.New = func() any {
		sc := &readScratch{acc: make([]State, len(s.plan.States)), body: make([]State, len(s.plan.States))}
		for i, a := range s.plan.States {
			sc.acc[i], sc.body[i] = a.New(), a.New()
		}
		return sc
	}
	return s, nil
}

func (s *Store) shard(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)%storeShards]
}

// Add aggregates one event of key into every level. vals holds the
// event's inputs (indexed by Spec.AggInput); null inputs are skipped by
// the aggregators that read them. vals is retained: the caller must not
// modify it afterwards.
func (s *Store) Add(key string, o Order, vals []schema.Value) {
	if s.group != nil {
		r := s.group.Lock(key)
		defer s.group.Unlock(r)
		s.AddLocked(r, o, vals)
		return
	}
	if s.frozen.Load() {
		panic("BUG: tiles: Add to a frozen Store")
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ks := sh.keys[key]
	if ks == nil {
		ks = &keyState{}
		ks.gen = sh.gens[key]
		ks.sealed.Store(math.MinInt64)
		sh.keys[key] = ks
	}
	s.add(ks, o, vals)
}

// add is Add of an event of ks, under its shard's write lock.
func (s *Store) add(ks *keyState, o Order, vals []schema.Value) {
	if o.TS < ks.sealed.Load() {
		ks.gen++ // a cached range may miss this event: make them all unreachable
	}
	e := s.tl.event(ks, o, vals)
	ks.n++
	if ks.levels == nil {
		ks.addRaw(e)
		if len(ks.raw) >= smallKey {
			s.tl.buildTiles(ks)
		}
		return
	}
	if len(ks.pend) > 0 || !s.tl.appends(ks, e) {
		ks.pend = append(ks.pend, e)
		if s.settleEach || len(ks.pend) >= max(smallKey, ks.n/pendShare) {
			s.tl.settle(ks)
		}
		return
	}
	if s.raw {
		ks.raw = append(ks.raw, e)
	}
	s.tl.addToTiles(ks, e)
	if !s.raw && !s.tl.packed { // an interval view's tiles keep the event, its values nothing
		n := len(ks.vals) - 1
		ks.vals[n] = nil
		ks.vals = ks.vals[:n]
	}
}

// event returns the event of o with inputs vals, which a Store that does
// not pack its input appends to ks.vals (add's caller keeps the event in
// ks.raw or ks.pend, or removes them again).
func (t *tiler) event(ks *keyState, o Order, vals []schema.Value) rawEvent {
	e := newEvent(o)
	if t.packed {
		e.pack(vals[t.in])
		return e
	}
	e.v = uint64(len(ks.vals))
	ks.vals = append(ks.vals, vals)
	return e
}

// pendShare bounds a key's pending events to 1/pendShare of its events
// (or smallKey): settling costs a pass over the key's raw events and
// tiles, so each pending event pays about pendShare times the levels'
// count of moves, instead of the key's size as an insertion in the
// middle would.
const pendShare = 8

// appends reports whether e lands at the end of ks's raw events and
// tiles, or in tiles it already has: then adding it moves nothing. ks has
// no pending event, so its last raw event has the largest Order added.
func (t *tiler) appends(ks *keyState, e rawEvent) bool {
	if t.raw {
		// The tiles hold the raw events, so an event after the last
		// raw one is in the last tile of every level or after it.
		n := len(ks.raw)
		return n == 0 || ks.raw[n-1].o.Less(e.o)
	}
	// An interval view: the tile of the finest level, which lies inside
	// one tile of every coarser level, is the last or after it, or exists.
	l0 := &ks.levels[0]
	start := floorTo(e.o.TS, t.levels[0])
	n := len(l0.starts)
	if n == 0 || l0.starts[n-1] <= start {
		return true
	}
	_, found := slices.BinarySearch(l0.starts, start)
	return found
}

// settle places ks's pending events: it merges them into the raw events
// and the new tiles among the existing ones, one pass per list, then adds
// each event to its tiles in arrival order, so that every tile receives
// its events in the order they were added, as without pending events
// (float sums are then bit-identical to a store that inserted each event
// in place, whenever reads settled it).
func (t *tiler) settle(ks *keyState) {
	p := ks.pend
	if len(p) == 0 {
		return
	}
	if t.raw {
		sorted := slices.Clone(p)
		slices.SortFunc(sorted, func(a, b rawEvent) int { return a.o.compare(b.o) })
		ks.raw = mergeSorted(ks.raw, sorted)
	}
	var starts []int64
	for li, res := range t.levels {
		l := &ks.levels[li]
		starts = starts[:0]
		for _, e := range p {
			starts = append(starts, floorTo(e.o.TS, res))
		}
		slices.Sort(starts)
		starts = slices.Compact(starts)
		l.insertStarts(starts, t.states)
		for _, e := range p {
			i, _ := slices.BinarySearch(l.starts, floorTo(e.o.TS, res))
			for ai, st := range l.tiles[i] {
				if v := t.value(ks.vals, &e, t.input[ai]); !v.IsNull() {
					st.Add(v, e.o.order())
				}
			}
		}
	}
	ks.pend = nil
	if !t.raw {
		ks.vals = nil // the tiles keep the events: see keyState.vals for why not cleared in place
	}
}

// mergeSorted merges add into raw, both sorted by Order, in place: raw
// grows by len(add) and is filled from the back.
func mergeSorted(raw, add []rawEvent) []rawEvent {
	i, j := len(raw)-1, len(add)-1
	raw = slices.Grow(raw, len(add))[:len(raw)+len(add)]
	for k := len(raw) - 1; j >= 0; k-- {
		if i >= 0 && add[j].o.Less(raw[i].o) {
			raw[k] = raw[i]
			i--
		} else {
			raw[k] = add[j]
			j--
		}
	}
	return raw
}

// insertStarts gives l a new tile for every start of starts (sorted,
// distinct) it lacks, in one pass from the back.
func (l *level) insertStarts(starts []int64, aggs []Agg) {
	missing := 0
	for _, st := range starts {
		if _, found := slices.BinarySearch(l.starts, st); !found {
			missing++
		}
	}
	if missing == 0 {
		return
	}
	i, j := len(l.starts)-1, len(starts)-1
	n := len(l.starts) + missing
	l.starts = slices.Grow(l.starts, missing)[:n]
	l.tiles = slices.Grow(l.tiles, missing)[:n]
	for k := n - 1; j >= 0; {
		switch {
		case i >= 0 && l.starts[i] > starts[j]:
			l.starts[k], l.tiles[k] = l.starts[i], l.tiles[i]
			i--
			k--
		case i >= 0 && l.starts[i] == starts[j]:
			j-- // the tile exists: it moves in the next round
		default:
			states := make([]State, len(aggs))
			for ai, a := range aggs {
				states[ai] = a.New()
			}
			l.starts[k], l.tiles[k] = starts[j], states
			j--
			k--
		}
	}
}

// lockKey takes sh's read lock and returns key's state, nil if none, for
// reading: a state with pending events is settled first, and then read
// under the write lock, which lockKey then holds. Release with
// sh.unlock(write).
func (s *Store) lockKey(sh *shard, key string) (ks *keyState, write bool) {
	sh.mu.RLock()
	ks = s.lookup(sh, key)
	if ks == nil || len(ks.pend) == 0 {
		return ks, false
	}
	sh.mu.RUnlock()
	sh.mu.Lock()
	ks = s.lookup(sh, key)
	if ks != nil {
		s.tl.settle(ks)
	}
	return ks, true
}

// unlock releases what lockKey took.
func (sh *shard) unlock(write bool) {
	if write {
		sh.mu.Unlock()
	} else {
		sh.mu.RUnlock()
	}
}

// Delete removes key's state and reports whether there was one. The
// hot-tier entries of the removed state stay unreachable: the key's next
// state starts at a later generation.
func (s *Store) Delete(key string) bool {
	if s.frozen.Load() {
		panic("BUG: tiles: Delete from a frozen Store")
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ks := s.lookup(sh, key)
	if ks == nil {
		return false
	}
	if s.group != nil {
		ks.reset(ks.gen + 1)
		return true
	}
	delete(sh.keys, key)
	if sh.gens == nil {
		sh.gens = map[string]uint64{}
	}
	sh.gens[key] = ks.gen + 1
	return true
}

// smallKey is the number of events from which a key gets tiles. Below it
// a key keeps only its raw events, which every read scans: cheaper than
// merging tiles, and most keys of a feature store have few events.
const smallKey = 32

// buildTiles gives a small key its tiles, from its raw events. Interval
// views keep no raw events once they have tiles.
func (t *tiler) buildTiles(ks *keyState) {
	ks.levels = make([]level, len(t.levels))
	for _, e := range ks.raw {
		t.addToTiles(ks, e)
	}
	if !t.raw {
		ks.raw, ks.vals = nil, nil
	}
}

// addToTiles adds e to its tile at every level.
func (t *tiler) addToTiles(ks *keyState, e rawEvent) {
	for li, res := range t.levels {
		states := ks.levels[li].tile(floorTo(e.o.TS, res), t.states)
		for ai, st := range states {
			if v := t.value(ks.vals, &e, t.input[ai]); !v.IsNull() {
				st.Add(v, e.o.order())
			}
		}
	}
}

// addRaw inserts e in Order into the raw events of a key without tiles,
// which are all its events; in-order arrivals (after the last) append.
func (ks *keyState) addRaw(e rawEvent) {
	n := len(ks.raw)
	if n == 0 || ks.raw[n-1].o.Less(e.o) {
		ks.raw = append(ks.raw, e)
		return
	}
	i := sort.Search(n, func(i int) bool { return e.o.Less(ks.raw[i].o) })
	ks.raw = append(ks.raw, rawEvent{})
	copy(ks.raw[i+1:], ks.raw[i:])
	ks.raw[i] = e
}

// tile returns the states of the tile starting at start, creating it.
func (l *level) tile(start int64, aggs []Agg) []State {
	n := len(l.starts)
	if n > 0 && l.starts[n-1] == start {
		return l.tiles[n-1]
	}
	i := n
	if n > 0 && l.starts[n-1] > start {
		i = sort.Search(n, func(i int) bool { return l.starts[i] >= start })
		if l.starts[i] == start {
			return l.tiles[i]
		}
	}
	states := make([]State, len(aggs))
	for ai, a := range aggs {
		states[ai] = a.New()
	}
	l.starts = append(l.starts, 0)
	l.tiles = append(l.tiles, nil)
	copy(l.starts[i+1:], l.starts[i:])
	copy(l.tiles[i+1:], l.tiles[i:])
	l.starts[i], l.tiles[i] = start, states
	return states
}

// Read writes, for every feature, its value for key as of t (events with
// event time strictly before t) into out, which must have one slot per
// feature. A key with no events reads the empty-window results.
func (s *Store) Read(key string, t int64, out []schema.Value) {
	s.ReadWith(key, t, out, true, nil)
}

// ReadWith is Read, also merging extra: states of the same key from other
// sources (frozen stores, segments), over events disjoint from the
// store's own and from each other's. own=false ignores the store's own
// state for key, as when reading segments only. Extra states are read
// without the hot tier: they are not the store's, so its generation
// scheme does not cover them. Nil entries of extra are skipped.
//
// Every source is collected into one accumulator per plan state, so the
// result equals a Read of a store that received all the events, bit for
// bit except float sums, means and variances, whose merge order differs
// (see the merge invariants in docs/format/tiles.md).
func (s *Store) ReadWith(key string, t int64, out []schema.Value, own bool, extra []*KeyState) {
	sc := s.reads.Get().(*readScratch)
	defer s.reads.Put(sc)
	acc := sc.acc
	var ks *keyState
	if own {
		sh := s.shard(key)
		var write bool
		ks, write = s.lockKey(sh, key)
		defer sh.unlock(write)
	}
	for _, g := range s.groups {
		st := acc[g.slot]
		st.Reset()
		if sst, e, ok := bounds(g.window, t, s.spec.Interval); ok {
			if ks != nil {
				s.collect(ks, key, g.slot, st, sst, e, sc)
			}
			for _, x := range extra {
				if x != nil {
					s.collect(x.state(), key, g.slot, st, sst, e, nil)
				}
			}
		}
		for _, fi := range g.features {
			out[fi] = s.plan.Result(s.spec.Features[fi].Agg, acc)
		}
	}
}

// collect merges everything of aggregator ai with event time in [a, b)
// into acc: raw events for the unaligned edges, tiles for the rest. With
// sc nil it bypasses the hot tier (for states that are not the store's).
func (s *Store) collect(ks *keyState, key string, ai int, acc State, a, b int64, sc *readScratch) {
	if ks.levels == nil { // a small key: raw events only
		s.tl.addRawRange(ks, s.input[ai], acc, a, b)
		return
	}
	r0 := s.levels[0]
	a0, b0 := ceilTo(a, r0), floorTo(b, r0)
	if a0 >= b0 {
		s.addRaw(ks, ai, acc, a, b)
		return
	}
	s.addRaw(ks, ai, acc, a, a0)
	s.addRaw(ks, ai, acc, b0, b)
	if sc == nil {
		s.cover(ks, 0, ai, acc, a0, b0)
		return
	}
	s.coverHot(ks, key, ai, acc, a0, b0, sc)
}

// cover merges the tiles of [a, b) (aligned to level li) using the
// coarsest tiles that fit: the aligned middle from the next level up, the
// remainders from this one.
func (s *Store) cover(ks *keyState, li, ai int, acc State, a, b int64) {
	if li+1 < len(s.levels) {
		r := s.levels[li+1]
		a2, b2 := ceilTo(a, r), floorTo(b, r)
		if a2 < b2 {
			ks.levels[li].merge(ai, acc, a, a2)
			ks.levels[li].merge(ai, acc, b2, b)
			s.cover(ks, li+1, ai, acc, a2, b2)
			return
		}
	}
	ks.levels[li].merge(ai, acc, a, b)
}

// merge merges the tiles starting in [a, b) into acc.
func (l *level) merge(ai int, acc State, a, b int64) {
	if a >= b {
		return
	}
	i := sort.Search(len(l.starts), func(i int) bool { return l.starts[i] >= a })
	for ; i < len(l.starts) && l.starts[i] < b; i++ {
		acc.Merge(l.tiles[i][ai])
	}
}

// addRaw adds the raw events with event time in [a, b) to acc.
func (s *Store) addRaw(ks *keyState, ai int, acc State, a, b int64) {
	if s.raw {
		s.tl.addRawRange(ks, s.input[ai], acc, a, b)
	}
}

// addRawRange adds input in of ks's raw events in [a, b) to acc.
func (t *tiler) addRawRange(ks *keyState, in int, acc State, a, b int64) {
	if a >= b {
		return
	}
	raw := ks.raw
	i := sort.Search(len(raw), func(i int) bool { return raw[i].o.TS >= a })
	if t.packed { // the common case, without value's test per event
		for ; i < len(raw) && raw[i].o.TS < b; i++ {
			if e := &raw[i]; e.o.kind != schema.Null {
				acc.Add(e.unpack(), e.o.order())
			}
		}
		return
	}
	for ; i < len(raw) && raw[i].o.TS < b; i++ {
		if v := ks.vals[raw[i].v][in]; !v.IsNull() {
			acc.Add(v, raw[i].o.order())
		}
	}
}

// Stats reports how much a store holds.
type Stats struct {
	Keys, RawEvents, Tiles int
}

// Stats counts keys, raw events and tiles (all levels), settling every
// key's pending events first, under each shard's write lock.
func (s *Store) Stats() Stats {
	var st Stats
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		s.each(i, func(_ string, ks *keyState) {
			s.tl.settle(ks)
			st.Keys++
			st.RawEvents += len(ks.raw)
			for _, l := range ks.levels {
				st.Tiles += len(l.starts)
			}
		})
		sh.mu.Unlock()
	}
	return st
}

// KeyCount counts the keys the store holds, as Stats does, without
// settling pending events.
func (s *Store) KeyCount() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		if s.group == nil {
			n += len(sh.keys)
		} else {
			s.each(i, func(string, *keyState) { n++ })
		}
		sh.mu.RUnlock()
	}
	return n
}

// compare orders o and p as Less does, for slices.SortFunc.
func (o Order) compare(p Order) int {
	switch {
	case o.Less(p):
		return -1
	case p.Less(o):
		return 1
	}
	return 0
}

// Less reports whether o comes before p: by event time, then log sequence,
// then index within the log entry.
func (o Order) Less(p Order) bool {
	if o.TS != p.TS {
		return o.TS < p.TS
	}
	if o.Seq != p.Seq {
		return o.Seq < p.Seq
	}
	return o.Idx < p.Idx
}
