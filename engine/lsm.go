package engine

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/featurelog/featurelog/compaction"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tiles"
)

// viewData is one view version's online state, a small LSM tree:
//
//   - the active memtable (attrs or tiles) receives every new record;
//   - frozen memtables are being written to segments by a flush;
//   - segments hold everything older, immutable, on disk.
//
// Records are partitioned across these by log sequence: the segments hold
// the records through covered, frozen memtables the next ranges, the
// active one the rest. A read merges the key's state from every source;
// aggregate states are mergeable and attribute histories are unions, so
// the answer is the one a single store holding everything would give.
//
// Locking: mu guards every field below for readers. Swapping the active
// memtable also needs db.ingestMu for writing, so an ingest (which holds
// it for reading) always adds to the memtable it looked up.
type viewData struct {
	mu      sync.RWMutex
	attrs   *attrStore    // active memtable of an attribute view
	tiles   *tiles.Store  // active memtable of an aggregate view
	frozen  []*memtable   // oldest first
	segs    []*segRef     // sorted by minSeq
	covered uint64        // segments hold every record of the view with log seq ≤ covered
	spec    *tiles.Spec   // the aggregate view's spec, for new memtables
	hot     *hotTier      // for new memtables' hot tier
	records atomic.Int64  // records added to the active memtable
	bytes   atomic.Int64  // their estimated size (recordBytes), for featurelog_memtable_bytes
	types   []schema.Type // attribute views: the features' types, for the segment codec
	id      string        // manifest key: workspace/view@version
	print   string        // the view version's fingerprint
	// layout identifies how the view's segments encode a key's state
	// (tiles.Spec.Fingerprint, or the attribute types); the manifest
	// keeps it, and segments of another layout are never read.
	layout string
	// legacy reports whether builds that did not record layouts (before
	// issue 10's fix) wrote this layout: true unless two aggregates
	// differ only in their input column, which those builds merged.
	legacy bool
	meta   compaction.Meta // template for the view's segments
}

// memtable is a frozen memtable: no record is added to it any more.
type memtable struct {
	attrs  *attrStore
	tiles  *tiles.Store
	maxSeq uint64 // it holds the view's records with log seq ≤ maxSeq not in older sources
}

// segRef is one open segment of a view.
type segRef struct {
	h  *compaction.Handle
	id uint64 // unique within the data directory, never reused
	// cacheID keys the segment's entries in the decoded-state cache: its
	// id, or the id of the segment it is a copy of without some keys (a
	// deletion), whose entries for the other keys are still right.
	cacheID uint64
	file    string // base name under segments/
	level   int    // 0: written by a flush; n+1: a merge of level-n segments
	minSeq  uint64
	maxSeq  uint64
	bytes   int64
}

// sources is what one read sees of a view: a consistent snapshot, taken
// under viewData.mu.
type sources struct {
	attrs  *attrStore
	tiles  *tiles.Store
	frozen []*memtable
	segs   []*segRef
}

// snapshot returns the view's sources; for long reads (historical
// queries) it acquires the segments, which the caller must release.
func (d *viewData) snapshot(acquire bool) sources {
	d.mu.RLock()
	defer d.mu.RUnlock()
	s := sources{attrs: d.attrs, tiles: d.tiles, frozen: d.frozen, segs: d.segs}
	if acquire {
		for _, sg := range s.segs {
			if !sg.h.Acquire() {
				panic("BUG: engine: a live segment's handle is dead")
			}
		}
	}
	return s
}

// seal marks a frozen memtable's tiles read-only (tiles.Store.Freeze: no
// more adds, so Own may share instead of copying). Freeze settles every
// key's late events, a walk over all keys: it is called after ingest
// resumes, not during the pause that swaps the memtables.
func (m *memtable) seal() {
	if m.tiles != nil {
		m.tiles.Freeze()
	}
}

func (s *sources) release() {
	for _, sg := range s.segs {
		sg.h.Release()
	}
}

// freeze moves the active memtable to the frozen list and starts a new
// one, in g when g is not nil (refs.go). The caller holds db.ingestMu for
// writing, so seq is the last record the frozen memtable holds; once it
// releases it, it seals m.
func (d *viewData) freeze(seq uint64, g *tiles.KeyGroup) (*memtable, error) {
	m := &memtable{attrs: d.attrs, tiles: d.tiles, maxSeq: seq}
	var nt *tiles.Store
	if d.spec != nil {
		var err error
		if g != nil {
			nt, err = g.NewStore(*d.spec, d.hot.forStore())
		} else {
			nt, err = tiles.NewStore(*d.spec, d.hot.forStore())
		}
		if err != nil {
			return nil, err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.frozen = append(d.frozen, m)
	if nt != nil {
		d.tiles = nt
	} else {
		d.attrs = newAttrStore()
	}
	d.records.Store(0)
	d.bytes.Store(0)
	return m, nil
}

// installFlush replaces frozen memtable m by segment sg (nil when m was
// empty) and advances covered.
func (d *viewData) installFlush(m *memtable, sg *segRef) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, f := range d.frozen {
		if f == m {
			d.frozen = append(d.frozen[:i:i], d.frozen[i+1:]...)
			break
		}
	}
	if sg != nil {
		d.segs = sortedSegs(append(d.segs[:len(d.segs):len(d.segs)], sg))
	}
	d.covered = m.maxSeq
}

// installMerge replaces the segments old by their merge sg.
func (d *viewData) installMerge(old []*segRef, sg *segRef) {
	d.mu.Lock()
	defer d.mu.Unlock()
	gone := map[*segRef]bool{}
	for _, o := range old {
		gone[o] = true
	}
	keep := make([]*segRef, 0, len(d.segs))
	for _, s := range d.segs {
		if !gone[s] {
			keep = append(keep, s)
		}
	}
	d.segs = sortedSegs(append(keep, sg))
}

// holds reports whether every segment of group is still one of d's.
func (d *viewData) holds(group []*segRef) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, g := range group {
		if !slices.Contains(d.segs, g) {
			return false
		}
	}
	return true
}

func sortedSegs(s []*segRef) []*segRef {
	sort.Slice(s, func(i, j int) bool { return s[i].minSeq < s[j].minSeq })
	return s
}

// closeSegments drops the view's references to its segments; obsolete
// marks them for deletion (the view version is gone).
func (d *viewData) closeSegments(obsolete bool) {
	d.mu.Lock()
	segs := d.segs
	d.segs = nil
	d.mu.Unlock()
	for _, s := range segs {
		if obsolete {
			s.h.Obsolete()
		}
		s.h.Release()
	}
}

// identify names the view version the data belongs to, for the manifest
// and the segments' metadata.
func (d *viewData) identify(ws, view string, version int, fingerprint string, aggregate bool) {
	d.id = fmt.Sprintf("%s/%s@%d", ws, view, version)
	d.print = fingerprint
	d.meta = compaction.Meta{Kind: "attributes", Workspace: ws, View: view, Version: version, Fingerprint: fingerprint}
	if aggregate {
		d.meta.Kind = "tiles"
	}
}

// readsLayout reports whether the view can read segments a manifest
// lists with layout (empty: a manifest of a build that did not record
// layouts).
func (d *viewData) readsLayout(layout string) bool {
	if layout == "" {
		return d.legacy
	}
	return layout == d.layout
}

// segmentStats returns the number of the view's segments and their bytes.
func (d *viewData) segmentStats() (n int, bytes int64) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, s := range d.segs {
		bytes += s.bytes
	}
	return len(d.segs), bytes
}

// memKeys counts the entity keys the view holds: exact while everything
// is in the active memtable; once there are segments, the sum over the
// sources, in which a key held by several counts once per source.
func (d *viewData) memKeys() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := 0
	count := func(a *attrStore, t *tiles.Store) {
		if a != nil {
			k, _ := a.stats()
			n += k
		} else {
			n += t.KeyCount()
		}
	}
	count(d.attrs, d.tiles)
	for _, m := range d.frozen {
		count(m.attrs, m.tiles)
	}
	for _, s := range d.segs {
		n += s.h.Reader().Keys()
	}
	return n
}
