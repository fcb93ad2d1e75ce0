package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/featurelog/featurelog/internal/batchsrc"
	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/schema"
)

// scanLog reads the log up to the cut, before anything of it is erased,
// noting for the views of the source keyed by other columns than d's view
// the entity keys that the records of d's keys had there: those states are
// rebuilt. (Views keyed by the same columns rebuild the request keys
// themselves: planDeletion.) Once the log is rewritten, the records are
// the only trace of those keys, hence this pass first.
func (db *DB) scanLog(ctx context.Context, d *deletion) error {
	var kb []byte
	pjs := make([]projector, len(d.views))
	err := db.eachLoggedRow(ctx, d.ws, d.v.src, d.cut, func(_ uint64, _ int, row []schema.Value) error {
		var key string
		key, kb = entityKey(row, d.v.keyIdx, kb)
		if _, erased := d.keys[key]; erased {
			d.noteAffected(row, pjs)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the log: %w", err)
	}
	return nil
}

// errLoggedRowsDone stops eachLoggedRow's replay after its last entry.
var errLoggedRowsDone = errors.New("done")

// eachLoggedRow calls fn, in log order, for every logged row of source
// src of workspace ws in entries up to upTo (0: the log's end), mapped to
// the source's current schema, with its entry's seq and its position in
// the entry. Strings are copied: fn may keep them.
func (db *DB) eachLoggedRow(ctx context.Context, ws *workspace, src *sourceRT, upTo uint64,
	fn func(seq uint64, idx int, row []schema.Value) error) error {
	var (
		e  record.Entry
		rb rowBuilder
		n  int
	)
	err := db.log.Replay(db.log.FirstSeq(), func(seq uint64, payload []byte) error {
		if upTo > 0 && seq > upTo {
			return errLoggedRowsDone
		}
		if n++; n&255 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := record.Decode(payload, &e); err != nil {
			return fmt.Errorf("engine: log entry %d: %w", seq, err)
		}
		if e.Workspace != ws.name {
			return nil
		}
		idx := 0
		for si := range e.Sections {
			sec := &e.Sections[si]
			if ws.sources[sec.Source] != src {
				idx += sec.NumRows()
				continue
			}
			rb.reset(src, sec.Columns)
			for r := 0; r < sec.NumRows(); r++ {
				if err := fn(seq, idx, rb.row(sec.Row(r))); err != nil {
					return err
				}
				idx++
			}
		}
		return nil
	})
	if errors.Is(err, errLoggedRowsDone) {
		return nil
	}
	return err
}

// eraseFromLog rewrites the log without the records of d's keys logged up
// to the cut, noting which request keys had any. It runs last, once the
// states built from those records were rebuilt without them and flushed
// (scanLog noted the keys they had beforehand): a job re-run after a
// crash finds nothing left of them in the log, so it must not depend on
// it to know which states to rebuild.
//
// An erased row is replaced by a row of nulls, not removed, so that every
// later row of its entry keeps its index: the index is part of a record's
// output stream offset (outstream.go) and of its tiles.Order, which must
// name the same record before and after the rewrite. No view applies a
// row of nulls (its join keys and timestamp are null), so every reader
// of the log skips it as it skips any row a view rejects.
func (db *DB) eraseFromLog(ctx context.Context, d *deletion) error {
	var (
		e    record.Entry
		rb   rowBuilder
		kb   []byte
		keep []schema.Value // the kept rows of a section, reused
		out  []byte         // the rewritten entry, reused: Rewrite copies it
	)
	src := d.v.src
	total := max(d.cut, 1)
	erasedRow := func(row []schema.Value) (int, bool) {
		var key string
		key, kb = entityKey(rb.row(row), d.v.keyIdx, kb)
		i, ok := d.keys[key]
		return i, ok
	}
	st, err := db.log.Rewrite(d.cut, func(seq uint64, payload []byte) ([]byte, bool, error) {
		if seq&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, false, err
			}
			db.jobs.progress(d.j.ID, JobProgress{Done: int64(seq), Total: int64(total), Unit: "log entries"})
		}
		if err := record.DecodeShared(payload, &e); err != nil { // nothing of e outlives the call
			return nil, false, fmt.Errorf("log entry %d: %w", seq, err)
		}
		if e.Workspace != d.ws.name {
			return nil, true, nil
		}
		var orig [][]schema.Value // sections' own rows, put back after encoding so Decode reuses them
		for si := range e.Sections {
			sec := &e.Sections[si]
			if sec.Source != src.def.Name {
				continue
			}
			rb.reset(src, sec.Columns)
			first := -1
			for r := 0; r < sec.NumRows() && first < 0; r++ {
				if _, ok := erasedRow(sec.Row(r)); ok {
					first = r
				}
			}
			if first < 0 {
				continue
			}
			if orig == nil {
				orig = make([][]schema.Value, len(e.Sections))
			}
			keep = append(keep[:0], sec.Rows[:first*len(sec.Columns)]...)
			for r := first; r < sec.NumRows(); r++ {
				if i, ok := erasedRow(sec.Row(r)); ok {
					d.found[i] = true
					d.res.RecordsErased++
					keep = append(keep, make([]schema.Value, len(sec.Columns))...) // a placeholder: see erasedPlaceholder
					continue
				}
				keep = append(keep, sec.Row(r)...)
			}
			orig[si], sec.Rows = sec.Rows, slices.Clone(keep)
		}
		if orig == nil {
			return nil, true, nil
		}
		out = record.AppendEntry(out[:0], &e)
		for si, rows := range orig {
			if rows != nil {
				e.Sections[si].Rows = rows
			}
		}
		return out, false, nil
	})
	d.res.LogSegmentsRewritten = st.SegmentsRewritten
	if err != nil {
		return fmt.Errorf("erasing from the log: %w", err)
	}
	return nil
}

// noteAffected records, for every view of the source, the entity key of
// an erased row: that key's state is rebuilt without it.
func (d *deletion) noteAffected(row []schema.Value, pjs []projector) {
	for i, w := range d.views {
		if pjs[i].chunk == 0 {
			pjs[i].chunk = replayChunk
		}
		p, err := w.project(row, &pjs[i])
		if err == nil && !p.skip {
			d.affected[w][p.key] = true
		}
	}
}

// markFound marks the request keys the view's state holds.
func (db *DB) markFound(d *deletion) error {
	src := d.v.data.snapshot(true)
	defer src.release()
	for key, i := range d.keys {
		if d.found[i] {
			continue
		}
		has, err := src.hasKey(key)
		if err != nil {
			return err
		}
		d.found[i] = has
	}
	return nil
}

// hasKey reports whether any of the sources holds key.
func (s *sources) hasKey(key string) (bool, error) {
	if s.attrs != nil {
		if _, ok := s.attrs.history(key); ok {
			return true, nil
		}
	} else if s.tiles.Own(key) != nil {
		return true, nil
	}
	for _, m := range s.frozen {
		if m.attrs != nil {
			if _, ok := m.attrs.history(key); ok {
				return true, nil
			}
		} else if m.tiles.Own(key) != nil {
			return true, nil
		}
	}
	for _, sg := range s.segs {
		if !sg.h.Reader().MayContain([]byte(key)) {
			continue
		}
		_, ok, err := sg.h.Reader().Get([]byte(key))
		if err != nil {
			return false, &Error{Code: CodeInternal, Msg: "segment " + sg.file, Err: err}
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// collected is the records the affected keys keep, per view: what their
// rebuilt state holds.
type collected struct {
	tmps map[*viewRT]*viewRT // view → its stand-in for the replayer
	// recs is filled per view by the goroutine replaying that view; the
	// map itself is fixed before the replay.
	recs map[*viewRT]*[]keptRecord
	r    *replayer
}

// keptRecord is one record of an affected key, as the view applies it.
type keptRecord struct {
	p   projected
	seq uint64
	idx int
}

// collect gathers the records the affected keys keep, from the log and
// (for views keyed otherwise) the batch files, leaving out the rows
// ERASURES names: the log still holds the erased rows (it is rewritten
// last).
func (db *DB) collect(ctx context.Context, d *deletion) (*collected, error) {
	c := &collected{tmps: map[*viewRT]*viewRT{}, recs: map[*viewRT]*[]keptRecord{}}
	cat := db.cat.Load()
	r := &replayer{cat: cat}
	// A view keyed by the deletion's columns keeps only the keys' records
	// after the cut (those up to it are erased): reading from the cut on
	// is enough. A view keyed otherwise rebuilds keys that kept other
	// records, so it reads the whole log, which must then be whole.
	from := d.cut
	for w := range d.affected {
		if joinKeyList(w) != joinKeyList(d.v) && len(d.affected[w]) > 0 {
			from = 0
		}
	}
	if first := db.log.FirstSeq(); from == 0 && first > 1 {
		return nil, fmt.Errorf("the views of source %q keyed by other columns than %s are rebuilt from the whole offline log, "+
			"but it begins at entry %d (push.log_offline: false removed the rest): delete with offline: false, or keep the log (log_offline: true)",
			d.v.src.def.Name, joinKeyNames(d.v), first)
	}
	for _, w := range d.views {
		if len(d.affected[w]) == 0 || w.pending != "" {
			continue
		}
		tmp, err := newViewRT(w.def, w.src, &hotTier{})
		if err != nil {
			return nil, err
		}
		tmp.data.identify(d.ws.name, w.def.Name, w.version, w.data.print, w.def.Aggregate())
		tmp.data.covered = from
		c.tmps[w] = tmp
		c.recs[w] = new([]keptRecord)
		r.views = append(r.views, tmp)
	}
	byTmp := map[*viewRT]*viewRT{}
	for w, tmp := range c.tmps {
		byTmp[tmp] = w
	}
	r.collect = func(tmp *viewRT, p *projected, seq uint64, idx int) {
		if w := byTmp[tmp]; d.affected[w][p.key] {
			*c.recs[w] = append(*c.recs[w], keptRecord{p: *p, seq: seq, idx: idx})
		}
	}
	r.eraseFor(db.erasures, d.ws.name, true)
	// Batch rows have no log seq: erasures leave out every batch row of
	// the deleted keys, so only views keyed otherwise read them again.
	batch := d.v.src.def.Batch != nil && from == 0
	hashes := &rowHashes{}
	if batch {
		r.hashes = map[*sourceRT]*rowHashes{d.v.src: hashes}
	}
	c.r = r
	if _, err := db.replayWith(r); err != nil {
		return nil, err
	}
	// The catch-up with ingest paused (swapMemtableKeys) reads from here:
	// the last entry read, or where the reading began when there was none.
	r.last = max(r.last, from)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !batch {
		return c, nil
	}
	slices.Sort(hashes.sums)
	return c, db.collectBatch(ctx, d, c, hashes)
}

// collectBatch adds the affected keys' batch rows that the views' states
// hold (batchRanges), as a backfill loads them.
func (db *DB) collectBatch(ctx context.Context, d *deletion, c *collected, hashes *rowHashes) error {
	bs, err := batchsrc.Open(d.v.src.def, filepath.Dir(d.ws.meta.File))
	if err != nil {
		return fmt.Errorf("reading the batch files of source %q: %w", d.v.src.def.Name, err)
	}
	type viewBatch struct {
		w, tmp  *viewRT
		include func(int64) bool
		er      *rowEraser
		pj      projector
		idx     int
	}
	var vbs []*viewBatch
	for w, tmp := range c.tmps {
		vbs = append(vbs, &viewBatch{w: w, tmp: tmp, include: includeBatch(db.batchRanges(d.ws.name, w.def.Name, w.version, nil)),
			er: db.erasures.eraserFor(d.ws.name, w, true), pj: projector{chunk: replayChunk}})
	}
	return bs.Scan(ctx, func(row *batchsrc.Row) error {
		if hashes.contains(hashRow(row.Values)) {
			return nil
		}
		for _, vb := range vbs {
			p, err := projectBatchRow(vb.tmp, row, &vb.pj)
			if err != nil {
				return err
			}
			if p.skip || !d.affected[vb.w][p.key] || !vb.include(p.ts) || vb.er.erased(row.Values, 0) {
				continue
			}
			*c.recs[vb.w] = append(*c.recs[vb.w], keptRecord{p: p, seq: 0, idx: vb.idx})
			vb.idx++
		}
		return nil
	})
}

// replaceKeys swaps the affected keys' state for the collected records:
// segments first (rewritten without the keys), then, with ingest paused,
// the active memtable, after reading the log entries appended since the
// collection; then a flush makes the rebuilt state durable. Flushes and
// merges wait meanwhile (maint).
func (db *DB) replaceKeys(ctx context.Context, d *deletion, c *collected) error {
	db.maint.Lock()
	defer db.maint.Unlock()
	for w := range c.tmps {
		n, err := db.rewriteSegments(w.data, d.affected[w], &d.replaced)
		d.res.SegmentsRewritten += n
		if err != nil {
			return fmt.Errorf("feature view %q: %w", w.def.Name, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := db.swapMemtableKeys(d, c); err != nil {
		return err
	}
	if err := db.flushLocked(); err != nil {
		return fmt.Errorf("checkpointing the rebuilt keys: %w", err)
	}
	return nil
}

// swapMemtableKeys, with Apply and ingest paused, collects the records
// logged since the collection, then replaces each affected key's state
// in the active memtable (maint being held, there is no frozen one) by
// its collected records.
func (db *DB) swapMemtableKeys(d *deletion, c *collected) error {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	db.ingestMu.Lock()
	defer db.ingestMu.Unlock()
	last := db.log.LastSeq()
	for _, tmp := range c.tmps {
		tmp.data.covered = c.r.last
	}
	if last > c.r.last {
		if _, err := db.replayWith(c.r); err != nil {
			return err
		}
	}
	for w := range c.tmps {
		dd := w.data
		for key := range d.affected[w] {
			if dd.attrs != nil {
				dd.attrs.delete(key)
			} else {
				dd.tiles.Delete(key)
			}
		}
		for i := range *c.recs[w] {
			k := &(*c.recs[w])[i]
			w.applyProjected(&k.p, k.seq, k.idx)
		}
	}
	return nil
}

// rewriteSegments replaces each segment of d that holds one of keys by a
// copy without them (or by nothing), saving the manifest after each; it
// returns how many it replaced, and adds them to replaced (awaitRemoved).
// The caller holds db.maint.
func (db *DB) rewriteSegments(d *viewData, keys map[string]bool, replaced *[]*segRef) (int, error) {
	d.mu.RLock()
	segs := slices.Clone(d.segs)
	d.mu.RUnlock()
	n := 0
	for _, sg := range segs {
		has, err := segHolds(sg, keys)
		if err != nil || !has {
			if err != nil {
				return n, err
			}
			continue
		}
		nsg, err := db.copySegmentWithout(d, sg, keys)
		if err != nil {
			return n, fmt.Errorf("rewriting segment %s: %w", sg.file, err)
		}
		d.replaceSegment(sg, nsg)
		if err := db.saveManifest(liveViews(db.cat.Load())); err != nil {
			return n, err
		}
		sg.h.Obsolete()
		sg.h.Release() // removed once the last reader lets go
		*replaced = append(*replaced, sg)
		n++
	}
	return n, nil
}

// segHolds reports whether segment sg holds any of keys.
func segHolds(sg *segRef, keys map[string]bool) (bool, error) {
	r := sg.h.Reader()
	for key := range keys {
		if !r.MayContain([]byte(key)) {
			continue
		}
		_, ok, err := r.Get([]byte(key))
		if err != nil {
			return false, fmt.Errorf("segment %s: %w", sg.file, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// copySegmentWithout writes a copy of sg without keys; nil when nothing
// is left.
func (db *DB) copySegmentWithout(d *viewData, sg *segRef, keys map[string]bool) (*segRef, error) {
	w, nsg, err := db.createSegment(d, sg.level, sg.minSeq, sg.maxSeq, false)
	if err != nil {
		return nil, err
	}
	it := sg.h.Reader().NewIterator()
	kept := 0
	pace := db.pacer()
	for n := 0; it.Next(); n++ {
		if n&63 == 63 {
			pace.yield() // background work: let requests run between keys
		}
		if keys[string(it.Key())] {
			continue
		}
		if err := w.Add(it.Key(), it.Value()); err != nil {
			w.Abort()
			return nil, err
		}
		kept++
	}
	if err := it.Err(); err != nil {
		w.Abort()
		return nil, err
	}
	if kept == 0 {
		w.Abort()
		return nil, nil
	}
	nsg, _, err = db.finishSegment(w, nsg, 0)
	if nsg != nil {
		nsg.cacheID = sg.cacheID // the other keys' values are the very same bytes
	}
	return nsg, err
}

// replaceSegment puts nsg (nil: nothing) in old's place.
func (d *viewData) replaceSegment(old, nsg *segRef) {
	d.mu.Lock()
	defer d.mu.Unlock()
	keep := make([]*segRef, 0, len(d.segs))
	for _, s := range d.segs {
		if s != old {
			keep = append(keep, s)
		}
	}
	if nsg != nil {
		keep = append(keep, nsg)
	}
	d.segs = sortedSegs(keep)
}

// awaitRemoved returns once the files of the segments the job replaced
// are durably gone, as they hold the erased records: each is removed when
// its last reader lets go, so it waits for readers in flight; a removal
// (or the directory fsync after it) that failed is tried again, and if it
// fails again the job fails (the file, no longer in the manifest, is
// removed on the next open).
func (db *DB) awaitRemoved(ctx context.Context, replaced []*segRef) error {
	dir := segmentsDir(db.opts.Dir)
	for _, sg := range replaced {
		select {
		case <-sg.h.Removed():
		case <-ctx.Done():
			return ctx.Err()
		}
		herr := sg.h.Err()
		if herr == nil {
			continue
		}
		if err := db.opts.FS.Remove(filepath.Join(dir, sg.file)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing segment %s, replaced without the keys: %w (first attempt: %v)", sg.file, err, herr)
		}
		if err := db.opts.FS.SyncDir(dir); err != nil { // the removal may not be durable
			return fmt.Errorf("removing segment %s, replaced without the keys: %w", sg.file, err)
		}
	}
	return nil
}
