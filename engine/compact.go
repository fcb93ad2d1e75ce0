package engine

import (
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/featurelog/featurelog/compaction"
	"github.com/featurelog/featurelog/tiles"
	"github.com/klauspost/compress/zstd"
)

// Flush writes every view's active memtable to a segment and records the
// checkpoint, so a later Open replays only the log after it. Ingest pauses
// only for the instant the memtables are swapped; reads never pause.
func (db *DB) Flush() error {
	if db.closed.Load() {
		return ErrClosed
	}
	db.maint.Lock()
	defer db.maint.Unlock()
	if err := db.flushLocked(); err != nil {
		return err
	}
	return db.truncateLogLocked()
}

// Compact merges segments: every level holding at least CompactionFanIn
// segments of a view is merged into one segment of the next level. Reads
// and ingest go on meanwhile.
func (db *DB) Compact() error {
	if db.closed.Load() {
		return ErrClosed
	}
	db.maint.Lock()
	defer db.maint.Unlock()
	return db.compactLocked(false)
}

// CompactAll merges every view's segments into one.
func (db *DB) CompactAll() error {
	if db.closed.Load() {
		return ErrClosed
	}
	db.maint.Lock()
	defer db.maint.Unlock()
	return db.compactLocked(true)
}

// liveViews returns the view data of every view version in the catalog
// that serves: a version being built by a job is left out (the job
// checkpoints it when it installs it), and the version it replaces is in.
func liveViews(cat *catalog) []*viewData {
	var out []*viewData
	for _, name := range cat.names() {
		for _, v := range cat.workspaces[name].order {
			if s := v.serving(); s != nil {
				out = append(out, s.data)
			}
		}
	}
	return out
}

// flushLocked freezes every view's memtable at one log sequence, writes
// the frozen memtables, installs the segments and saves the manifest.
// The caller holds db.maint.
func (db *DB) flushLocked() error {
	start := time.Now()
	views, err := db.freezeAll()
	if err != nil {
		return err
	}
	var records, bytes int64
	for _, d := range views {
		for {
			d.mu.RLock()
			var m *memtable
			if len(d.frozen) > 0 {
				m = d.frozen[0]
			}
			d.mu.RUnlock()
			if m == nil {
				break
			}
			sg, n, err := db.writeMemtable(d, m)
			if err != nil {
				return fmt.Errorf("engine: flushing %s: %w", d.id, err)
			}
			records += n
			if sg != nil {
				bytes += sg.bytes
			}
			d.installFlush(m, sg)
		}
	}
	if err := db.saveManifest(views); err != nil {
		return err
	}
	took := time.Since(start)
	db.metrics.flushes.Inc()
	db.metrics.flushDuration.Observe(took.Seconds())
	db.metrics.flushBytes.Add(float64(bytes))
	db.lastFlush.Store(time.Now().UnixNano())
	db.opts.Logger.Info("flushed memtables", "records", records, "bytes", bytes, "views", len(views), "took", took.Round(time.Millisecond))
	return nil
}

// freezeAll swaps every view's active memtable for a new one, with ingest
// and Apply paused, then seals the frozen memtables with ingest going on,
// and returns the views.
func (db *DB) freezeAll() ([]*viewData, error) {
	views, frozen, err := db.swapAll()
	for _, m := range frozen {
		m.seal()
	}
	return views, err
}

// swapAll is freezeAll's pause: ingest and Apply wait while every view's
// memtable is swapped.
func (db *DB) swapAll() ([]*viewData, []*memtable, error) {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	db.ingestMu.Lock()
	defer db.ingestMu.Unlock()
	seq := db.log.LastSeq()
	cat := db.cat.Load()
	views, groups := liveViews(cat), keyGroups(cat, func(*viewData) bool { return true })
	var frozen []*memtable
	for _, d := range views {
		m, err := d.freeze(seq, groups[d])
		if err != nil {
			return nil, frozen, err
		}
		frozen = append(frozen, m)
	}
	return views, frozen, nil
}

// writeMemtable writes frozen memtable m of view d to a new segment; nil
// when m holds nothing.
func (db *DB) writeMemtable(d *viewData, m *memtable) (*segRef, int64, error) {
	d.mu.RLock()
	minSeq := d.covered + 1
	d.mu.RUnlock()
	return db.writeMemtableRange(d, m, minSeq, m.maxSeq, false)
}

// writeMemtableRange writes m as a segment of d holding the records with
// log seq in [minSeq, maxSeq] (0, 0 for batch rows, which have none);
// fast compresses zstd segments at zstd's fastest level.
func (db *DB) writeMemtableRange(d *viewData, m *memtable, minSeq, maxSeq uint64, fast bool) (*segRef, int64, error) {
	var keys []string
	var sorted *tiles.SortedStates // the memtable is frozen: one pass over its keys and states
	var records int64
	n := 0
	if m.tiles != nil {
		sorted = m.tiles.Sorted()
		n = sorted.Len()
	} else {
		keys = m.attrs.sortedKeys()
		n = len(keys)
	}
	if n == 0 {
		return nil, 0, nil
	}
	w, sg, err := db.createSegment(d, 0, minSeq, maxSeq, fast)
	if err != nil {
		return nil, 0, err
	}
	var buf []byte
	var h []version // reused from key to key
	pace := db.pacer()
	for i := range n {
		if i%mergeYieldKeys == 0 {
			pace.yield()
		}
		var k string
		if sorted != nil {
			k = sorted.Key(i)
			buf = sorted.AppendState(buf[:0], i)
		} else {
			k = keys[i]
			var ok bool
			if h, ok = m.attrs.historyInto(h, k); !ok {
				continue
			}
			buf = appendVersions(buf[:0], h, d.types)
			records += int64(len(h))
		}
		if err := w.Add([]byte(k), buf); err != nil {
			w.Abort()
			return nil, 0, err
		}
	}
	return db.finishSegment(w, sg, records)
}

// createSegment starts a segment of view d, compressed with
// Options.SegmentCodec; fast, for a zstd segment, at zstd's fastest level
// (S2 has one speed, faster than that).
func (db *DB) createSegment(d *viewData, level int, minSeq, maxSeq uint64, fast bool) (*compaction.Writer, *segRef, error) {
	id := db.nextSeg.Add(1) - 1
	sg := &segRef{id: id, cacheID: id, file: segmentFile(id), level: level, minSeq: minSeq, maxSeq: maxSeq}
	meta := d.meta
	meta.Level, meta.MinSeq, meta.MaxSeq = level, minSeq, maxSeq
	wo := compaction.WriterOptions{FS: db.opts.FS, Codec: db.opts.SegmentCodec}
	if fast && wo.Codec == compaction.CodecZstd {
		wo.Level = zstd.SpeedFastest
	}
	w, err := compaction.Create(filepath.Join(segmentsDir(db.opts.Dir), sg.file), meta, wo)
	return w, sg, err
}

// newHandle wraps an open segment in a handle that logs a failure to
// remove the file once it is obsolete (the next open removes it).
func (db *DB) newHandle(r *compaction.Reader) *compaction.Handle {
	h := compaction.NewHandle(r)
	h.OnRemoveError(func(err error) {
		db.opts.Logger.Warn("removing an obsolete segment failed; the next open removes it", "segment", r.Path(), "err", err)
	})
	return h
}

func (db *DB) finishSegment(w *compaction.Writer, sg *segRef, records int64) (*segRef, int64, error) {
	info, err := w.Finish()
	if err != nil {
		w.Abort()
		// Finish may fail after the rename (the directory fsync): the file
		// must not outlive this attempt; an orphan would be removed on
		// open anyway.
		db.opts.FS.Remove(filepath.Join(segmentsDir(db.opts.Dir), sg.file))
		return nil, 0, err
	}
	r, err := compaction.OpenFS(db.opts.FS, info.Path)
	if err != nil {
		return nil, 0, err
	}
	sg.h, sg.bytes = db.newHandle(r), info.FileBytes
	return sg, records, nil
}

// saveManifest records the segments and covered sequence of views, which
// must be every live view, and drops the segments of views no longer live.
func (db *DB) saveManifest(views []*viewData) error {
	live := map[string]bool{}
	for _, d := range views {
		d.mu.RLock()
		mv := &manifestView{Fingerprint: d.print, Layout: d.layout, Covered: d.covered}
		for _, s := range d.segs {
			mv.Segments = append(mv.Segments, manifestSegment{ID: s.id, File: s.file, Level: s.level,
				MinSeq: s.minSeq, MaxSeq: s.maxSeq, Bytes: s.bytes})
		}
		d.mu.RUnlock()
		db.man.Views[d.id] = mv
		live[d.id] = true
		db.viewsByID[d.id] = d
	}
	for id := range db.man.Views {
		if !live[id] {
			delete(db.man.Views, id)
		}
	}
	db.man.NextSegment = db.nextSeg.Load()
	if err := db.man.save(db.opts.FS, db.opts.Dir); err != nil {
		return err
	}
	for id, d := range db.viewsByID {
		if !live[id] {
			d.closeSegments(true) // the view version was replaced or removed
			delete(db.viewsByID, id)
		}
	}
	return nil
}

// compactLocked merges segments; all merges each view's segments into one.
func (db *DB) compactLocked(all bool) error {
	views := liveViews(db.cat.Load())
	for _, d := range views {
		for {
			group := db.mergeCandidates(d, all)
			if len(group) < 2 {
				break
			}
			start := time.Now()
			sg, err := db.mergeSegments(d, group, false)
			if err != nil {
				return fmt.Errorf("engine: merging segments of %s: %w", d.id, err)
			}
			if err := db.installMergeLocked(d, group, sg, start, views); err != nil {
				return err
			}
			if all {
				break
			}
		}
	}
	return nil
}

// mergeCandidates picks the segments of d to merge next: the oldest
// CompactionFanIn of the lowest level that has that many (size-tiered, so
// every record is rewritten about log_fanIn(total) times), or all of them.
func (db *DB) mergeCandidates(d *viewData, all bool) []*segRef {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if all {
		return append([]*segRef(nil), d.segs...)
	}
	byLevel := map[int][]*segRef{}
	lowest := -1
	for _, s := range d.segs {
		byLevel[s.level] = append(byLevel[s.level], s)
		if len(byLevel[s.level]) >= db.opts.CompactionFanIn && (lowest < 0 || s.level < lowest) {
			lowest = s.level
		}
	}
	if lowest < 0 {
		return nil
	}
	return byLevel[lowest][:db.opts.CompactionFanIn]
}

// mergeSegments merges group (segments of d over disjoint record ranges)
// into one segment of the next level: per key, the states are merged
// (tiles) or the histories joined (attributes).
func (db *DB) mergeSegments(d *viewData, group []*segRef, background bool) (*segRef, error) {
	level, minSeq, maxSeq := 0, group[0].minSeq, group[0].maxSeq
	same := true
	its := make([]*compaction.Iterator, len(group))
	for i, s := range group {
		level = max(level, s.level)
		same = same && s.level == group[0].level
		minSeq, maxSeq = min(minSeq, s.minSeq), max(maxSeq, s.maxSeq)
		its[i] = s.h.Reader().NewIterator()
	}
	if same { // a tier is full: its merge moves up; a CompactAll of mixed levels stays at the top one
		level++
	}
	d.mu.RLock()
	st := d.tiles
	d.mu.RUnlock()
	w, sg, err := db.createSegment(d, level, minSeq, maxSeq, false)
	if err != nil {
		return nil, err
	}
	mi := compaction.NewMergeIterator(its)
	var buf []byte
	var kss []*tiles.KeyState
	var hs [][]version
	// One decoded state per input segment, its memory reused from key to
	// key: each key's merge is encoded before the next key is decoded.
	// (Decoding afresh made merges allocate every event they read, and
	// the garbage collector's work then slowed reads during merges.)
	reuse := make([]tiles.KeyState, len(group))
	pace := db.pacer()
	for n := 0; mi.Next(); n++ {
		if n%mergeYieldKeys == 0 {
			pace.yield()
		}
		val, err := d.mergeValues(st, mi.Values(), buf[:0], kss[:0], hs[:0], reuse)
		if err != nil {
			w.Abort()
			return nil, fmt.Errorf("key %q: %w", mi.Key(), err)
		}
		buf = val
		if err := w.Add(mi.Key(), val); err != nil {
			w.Abort()
			return nil, err
		}
		if n == 0 && background && db.opts.mergeHook != nil {
			db.opts.mergeHook(d.id)
		}
	}
	if err := mi.Err(); err != nil {
		w.Abort()
		return nil, err
	}
	sg2, _, err := db.finishSegment(w, sg, 0)
	return sg2, err
}

// mergeYieldKeys is how many keys a merge or a flush writes between
// yields of its processor: both are background work, and on a machine
// with few cores a reader should not wait for the scheduler's 10 ms
// preemption to run.
const mergeYieldKeys = 64

// mergeValues merges one key's values from several segments; reuse has
// a state per segment to decode into.
func (d *viewData) mergeValues(st *tiles.Store, vals [][]byte, dst []byte, kss []*tiles.KeyState, hs [][]version, reuse []tiles.KeyState) ([]byte, error) {
	var only []byte
	n := 0
	for _, v := range vals {
		if v != nil {
			only = v
			n++
		}
	}
	if n == 1 {
		return append(dst, only...), nil
	}
	for i, v := range vals {
		if v == nil {
			continue
		}
		if st != nil {
			if err := st.DecodeKeyStateInto(v, &reuse[i]); err != nil {
				return nil, err
			}
			kss = append(kss, &reuse[i])
		} else {
			h, err := decodeVersions(v, d.types)
			if err != nil {
				return nil, err
			}
			hs = append(hs, h)
		}
	}
	if st != nil {
		return st.AppendEncoded(dst, st.MergeKeyStates(kss)), nil
	}
	return appendVersions(dst, mergeVersions(hs), d.types), nil
}

// maintain flushes and merges in the background: a flush when a view's
// active memtable holds FlushRecords records or the last flush is older
// than FlushInterval, and, in a goroutine of their own, whatever merges
// are due.
func (db *DB) maintain() {
	defer close(db.maintDone)
	var merges sync.WaitGroup
	defer merges.Wait() // before maintDone: Close lets the merges under way finish, as it lets a flush
	var mu sync.Mutex
	merging := map[*viewData]bool{} // the views whose merges are under way
	// One merge a core, not a P: the binary runs more Ps than cores on
	// small machines (cmd/featurelog/procs.go).
	slots := max(2, min(runtime.GOMAXPROCS(0), runtime.NumCPU()))
	t := time.NewTicker(maintainTick)
	defer t.Stop()
	for {
		select {
		case <-db.maintStop:
			return
		case <-t.C:
		}
		if !db.flushDue() {
			continue
		}
		db.maint.Lock()
		err := db.flushLocked()
		if err == nil {
			err = db.truncateLogLocked()
		}
		db.maint.Unlock()
		db.noteMaintained(err)
		if err != nil {
			continue
		}
		// Merges follow flushes, as they always have (a process that only
		// reads, such as `featurelog historical`, does not merge under its
		// join), but run beside the next flushes, not before them: a merge
		// of big segments takes tens of seconds, and a flush waiting behind
		// it let a memtable grow to 8.3M records per view in a 20M-event
		// load (docs/performance.md, "Flushes waited behind merges"). Each
		// view's merges run in order, and views' merges side by side, up to
		// one a core: one at a time, the first view's merge of a 20M
		// load took the whole load, and the second view ended it with eight
		// level-0 segments, which the first join after the load read.
		mu.Lock()
		for _, d := range db.mergesDue(merging, slots-len(merging)) {
			merging[d] = true
			merges.Add(1)
			go func() {
				defer merges.Done()
				db.noteMaintained(db.mergeInBackground(d))
				mu.Lock()
				delete(merging, d)
				mu.Unlock()
			}()
		}
		mu.Unlock()
	}
}

// noteMaintained records the outcome of a background flush or merge.
func (db *DB) noteMaintained(err error) {
	if err == nil {
		db.maintErr.Store(nil)
		return
	}
	db.maintErr.Store(&err)
	db.opts.Logger.Error("background flush or merge failed; the log keeps every record, so nothing is lost", "err", err)
}

// mergesDue returns up to n live views, none of them in busy, that have
// segments to merge, taking the views in turn from the one after the
// last returned, so that with fewer slots than views no view's merges
// wait behind the others' for good.
func (db *DB) mergesDue(busy map[*viewData]bool, n int) []*viewData {
	views := liveViews(db.cat.Load())
	var out []*viewData
	first := db.mergeTurn
	for i := 0; i < len(views) && len(out) < n; i++ {
		j := (first + i) % len(views)
		if d := views[j]; !busy[d] && len(db.mergeCandidates(d, false)) >= 2 {
			out = append(out, d)
			db.mergeTurn = (j + 1) % len(views)
		}
	}
	return out
}

// mergeInBackground runs the merges due in d, one at a time. Each reads
// its inputs and writes its output without db.maint, so flushes (and
// other views' merges) go on meanwhile, and installs the output under
// db.maint only if its inputs are still segments of d, a live view:
// segments are immutable, so the output is then exactly what the same
// merge run at that instant, under the lock, would write. When a
// deletion rewrote an input, a CompactAll merged it, or the view version
// was replaced, the output is dropped.
func (db *DB) mergeInBackground(d *viewData) error {
	for {
		select {
		case <-db.maintStop: // closing: the merge under way finished; start no other
			return nil
		default:
		}
		db.maint.Lock()
		var group []*segRef
		if db.isLive(d) {
			group = db.mergeCandidates(d, false)
		}
		held := group[:0:0]
		for _, s := range group {
			if s.h.Acquire() { // the merge's own references, so the files outlive a replacement
				held = append(held, s)
			}
		}
		db.maint.Unlock()
		if len(group) < 2 {
			return nil
		}
		if len(held) < len(group) { // an input is already gone: nothing to merge now
			for _, s := range held {
				s.h.Release()
			}
			return nil
		}
		start := time.Now()
		sg, err := db.mergeSegments(d, group, true)
		installed := false
		if err == nil {
			db.maint.Lock()
			if db.isLive(d) && d.holds(group) {
				installed = true
				err = db.installMergeLocked(d, group, sg, start, liveViews(db.cat.Load()))
			}
			db.maint.Unlock()
		}
		for _, s := range group {
			s.h.Release()
		}
		if !installed && sg != nil { // its inputs changed meanwhile
			sg.h.Obsolete()
			sg.h.Release()
		}
		if err != nil {
			return fmt.Errorf("engine: merging segments of %s: %w", d.id, err)
		}
	}
}

// installMergeLocked puts sg, merged from group since start, in the
// place of group in d, saves the manifest of views, and lets the inputs
// go (each file is deleted once its last reader lets go). The caller
// holds db.maint.
func (db *DB) installMergeLocked(d *viewData, group []*segRef, sg *segRef, start time.Time, views []*viewData) error {
	d.installMerge(group, sg)
	db.metrics.observeMerge(group, sg, time.Since(start))
	if err := db.saveManifest(views); err != nil {
		return err
	}
	for _, o := range group {
		o.h.Obsolete()
		o.h.Release() // the view's reference
	}
	return nil
}

// isLive reports whether d is the data of a live view version.
func (db *DB) isLive(d *viewData) bool {
	return slices.Contains(liveViews(db.cat.Load()), d)
}

// maintainTick is how often the background maintainer looks for work.
const maintainTick = 250 * time.Millisecond

func (db *DB) flushDue() bool {
	var pending int64
	for _, d := range liveViews(db.cat.Load()) {
		n := d.records.Load()
		if n >= int64(db.opts.FlushRecords) {
			return true
		}
		pending += n
	}
	last := time.Unix(0, db.lastFlush.Load())
	return pending > 0 && time.Since(last) >= db.opts.FlushInterval
}
