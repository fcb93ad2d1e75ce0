package tiles

import (
	"math"
	"sort"

	"github.com/featurelog/featurelog/schema"
)

// ReadLogged writes, for every feature, its value for key as of t over
// the events logged at or before upTo: those with 1 ≤ (Seq, Idx) ≤
// (upTo.Seq, upTo.Idx), whatever their event time. Events with Seq 0
// (rows of batch files, which no log entry holds) are left out. The
// sources are those of ReadWith.
//
// It reads raw events only, so the Store must keep them for every event:
// a continuous view's (Spec.Interval 0). Events are added to each
// accumulator in Order across all sources, so the result depends only on
// the set of events, never on how they are spread over memtables and
// segments: float sums agree bit for bit between any two reads of the
// same log prefix. This is what output streams need (engine/outstream.go):
// a replay computes the same values as the live stream did.
//
// Its cost is the number of the key's events inside each window, not the
// tiles' logarithm: the tiles mix events logged before and after upTo.
func (s *Store) ReadLogged(key string, t int64, upTo Order, out []schema.Value, own bool, extra []*KeyState) {
	if !s.raw {
		panic("BUG: tiles: ReadLogged on a store without raw events (an interval view)")
	}
	sc := s.reads.Get().(*readScratch)
	defer s.reads.Put(sc)
	lo, hi, any := int64(math.MaxInt64), int64(math.MinInt64), false
	for _, g := range s.groups {
		if a, b, ok := bounds(g.window, t, 0); ok {
			lo, hi, any = min(lo, a), max(hi, b), true
		}
	}
	if !any {
		lo, hi = 0, 0
	}
	var lists []rawList
	if own {
		// Copy the store's events of [lo, hi) out under the shard lock and
		// read them after: ingest's Add waits for the lock, and an output
		// stream reads every record it adds. Add may shift the events in
		// place, so the copy is of the events, not the slice.
		sc.own = sc.own[:0]
		sh := s.shard(key)
		ks, write := s.lockKey(sh, key)
		var vals [][]schema.Value
		if ks != nil {
			i := sort.Search(len(ks.raw), func(i int) bool { return ks.raw[i].o.TS >= lo })
			j := i + sort.Search(len(ks.raw)-i, func(j int) bool { return ks.raw[i+j].o.TS >= hi })
			sc.own = append(sc.own, ks.raw[i:j]...)
			vals = ks.vals // only ever appended to: the events' values stay
		}
		sh.unlock(write)
		lists = append(lists, rawList{sc.own, vals})
	}
	for _, x := range extra {
		if x != nil {
			lists = append(lists, rawList{x.ks.raw, x.ks.vals})
		}
	}
	evs := sc.logged[:0]
	if any {
		evs = mergeLogged(evs, lists, lo, hi, upTo)
	}
	acc := sc.acc
	for _, g := range s.groups {
		st := acc[g.slot]
		st.Reset()
		if a, b, ok := bounds(g.window, t, 0); ok {
			in := s.input[g.slot]
			i := sort.Search(len(evs), func(i int) bool { return evs[i].o.TS >= a })
			for ; i < len(evs) && evs[i].o.TS < b; i++ {
				if v := s.tl.value(evs[i].vals, evs[i].rawEvent, in); !v.IsNull() {
					st.Add(v, evs[i].o.order())
				}
			}
		}
		for _, fi := range g.features {
			out[fi] = s.plan.Result(s.spec.Features[fi].Agg, acc)
		}
	}
	clear(evs)
	sc.logged = evs[:0]
}

// rawList is a list of raw events and their values (keyState.vals).
type rawList struct {
	raw  []rawEvent
	vals [][]schema.Value
}

// loggedEvent is an event of a rawList, with the list's values.
type loggedEvent struct {
	*rawEvent
	vals [][]schema.Value
}

// mergeLogged appends to dst the events of lists (each sorted by Order)
// with event time in [a, b) and logged at or before upTo, in Order across
// the lists. Events with Seq 0 are left out.
func mergeLogged(dst []loggedEvent, lists []rawList, a, b int64, upTo Order) []loggedEvent {
	var pos [16]int
	idx := pos[:0]
	if len(lists) > len(pos) {
		idx = make([]int, 0, len(lists))
	}
	for _, l := range lists {
		idx = append(idx, sort.Search(len(l.raw), func(i int) bool { return l.raw[i].o.TS >= a }))
	}
	if len(lists) == 1 { // the common case: one source holds the key
		l := lists[0].raw
		for i := idx[0]; i < len(l) && l[i].o.TS < b; i++ {
			if e := &l[i]; e.o.Seq != 0 && !logPosAfter(e.o.order(), upTo) {
				dst = append(dst, loggedEvent{e, lists[0].vals})
			}
		}
		return dst
	}
	for {
		best := -1
		for li, l := range lists {
			if i := idx[li]; i < len(l.raw) && l.raw[i].o.TS < b && (best < 0 || l.raw[i].o.Less(lists[best].raw[idx[best]].o)) {
				best = li
			}
		}
		if best < 0 {
			return dst
		}
		e := &lists[best].raw[idx[best]]
		idx[best]++
		if e.o.Seq != 0 && !logPosAfter(e.o.order(), upTo) {
			dst = append(dst, loggedEvent{e, lists[best].vals})
		}
	}
}

// logPosAfter reports whether o was logged after upTo: by sequence, then
// index within the entry. Event time plays no part.
func logPosAfter(o, upTo Order) bool {
	return o.Seq > upTo.Seq || (o.Seq == upTo.Seq && o.Idx > upTo.Idx)
}
