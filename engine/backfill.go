package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/featurelog/featurelog/internal/atomicfile"
	"github.com/featurelog/featurelog/internal/batchsrc"
	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/repo"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tiles"
)

// Backfills and materializations build a view version's state beside
// ingest and reads (SPEC §6; DESIGN.md, "Jobs"):
//
//  1. Staging, with ingest paused for an instant: the version gets empty
//     state whose checkpoint is S0, the log's last entry then; ingest
//     applies every later record to it, as to any view. It does not serve
//     and flushes skip it; the version it replaces (its prior) serves,
//     and ingest applies records to the prior too.
//  2. Building: the log up to S0 and the source's batch files are read
//     into private memtables, written out as segments whenever they hold
//     Options.BackfillRunRecords records, so memory is bounded by that
//     and not by the history.
//  3. Commit, under the maintenance lock: the segments join the
//     version's state, whose checkpoint is S0 (segments hold every record
//     up to S0, the memtable every later one, so each record counts
//     once); the manifest names them, then the catalog (the commit point),
//     then the catalog swaps in memory and the version serves.
//
// A failed or cancelled job deletes its segments and puts back what was
// there before; a job the node stopped in re-runs from 1 on open.

// build is one view version being built by a job.
type build struct {
	v      *viewRT // the staged version
	bv     *viewRT // a copy of v whose data are the job's private memtable and segments
	job    string
	res    JobResult
	nextIx uint32 // order of batch rows, which have no log seq
	// include reports whether a batch row with event time ts belongs to
	// the version's state.
	include func(ts int64) bool
	// counts reports whether a record the job loads is new to the view's
	// record counts (nil: every one is: a backfill's view is new).
	counts  func(ts int64) bool
	counted int64
	// nextMin is the first log seq of the next run; spilling is the
	// result of the segment write in flight (spill).
	nextMin  uint64
	spilling chan error
}

func newBuild(v *viewRT, job string, include func(int64) bool) (*build, error) {
	bv := *v
	d := &viewData{hot: &hotTier{}, spec: v.data.spec, types: v.data.types, id: v.data.id, print: v.data.print,
		layout: v.data.layout, legacy: v.data.legacy, meta: v.data.meta}
	if d.spec != nil {
		var err error
		if d.tiles, err = tiles.NewStore(*d.spec, tiles.HotTier{}); err != nil {
			return nil, err
		}
	} else {
		d.attrs = newAttrStore()
	}
	bv.data, bv.stats = d, &viewStats{}
	return &build{v: v, bv: &bv, job: job, include: include}, nil
}

// spill freezes the build's memtable and writes it as a segment in the
// background, holding the records of log seqs [b.nextMin, maxSeq] (log)
// or batch rows (a segment covering no log range, 0..0), while the build
// goes on into a new memtable: at most one write is in flight per build,
// so memory holds at most two runs. With zstd segments
// (Options.SegmentCodec), runs are written at zstd's fastest level (merges
// rewrite them).
func (db *DB) spill(b *build, maxSeq uint64, log bool) error {
	d := b.bv.data
	n := d.records.Load()
	if n == 0 {
		return nil
	}
	if err := b.waitSpill(); err != nil {
		return err
	}
	minSeq := uint64(0)
	if log {
		b.res.LogRecords += n
		minSeq, b.nextMin = b.nextMin, maxSeq+1
	} else {
		maxSeq = 0
	}
	m, err := d.freeze(maxSeq, nil)
	if err != nil {
		return err
	}
	m.seal()
	done := make(chan error, 1)
	b.spilling = done
	write := func() {
		sg, _, err := db.writeMemtableRange(d, m, minSeq, maxSeq, true)
		if err == nil {
			d.installRun(m, sg)
		}
		done <- err
	}
	if db.opts.BackfillWorkers < 2 {
		write()
		return nil
	}
	go write()
	return nil
}

// waitSpill waits for the build's segment write in flight, if any.
func (b *build) waitSpill() error {
	if b.spilling == nil {
		return nil
	}
	err := <-b.spilling
	b.spilling = nil
	if err == nil {
		b.res.Segments = len(b.bv.data.segs)
	}
	return err
}

// installRun replaces frozen memtable m by segment sg (nil when m held
// nothing) without moving the checkpoint, which a build never uses.
func (d *viewData) installRun(m *memtable, sg *segRef) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.frozen = slices.DeleteFunc(d.frozen, func(f *memtable) bool { return f == m })
	if sg != nil {
		d.segs = sortedSegs(append(d.segs[:len(d.segs):len(d.segs)], sg))
	}
}

// discard waits for the build's write in flight and deletes its segments.
func (b *build) discard() {
	b.waitSpill()
	b.bv.data.closeSegments(true)
}

// progressFunc reports bytes done of a total.
type progressFunc func(done, total int64)

// buildViews reads the log up to s0 and the batch files of the builds'
// sources into the builds. cat is the catalog the builds' views are in.
func (db *DB) buildViews(ctx context.Context, cat *catalog, ws *workspace, builds []*build, s0 uint64, progress progressFunc) error {
	batches, batchBytes, err := db.openBatches(ws, builds)
	if err != nil {
		return err
	}
	logBytes := db.logBytes()
	total := logBytes + batchBytes
	progress(0, total)
	dedup := map[*sourceRT]*rowHashes{}
	for src := range batches {
		dedup[src] = &rowHashes{}
	}
	if err := db.buildFromLog(ctx, cat, builds, s0, dedup, func(frac float64) { progress(int64(frac*float64(logBytes)), total) }); err != nil {
		return err
	}
	done := logBytes
	for _, src := range sortedSources(batches) {
		bs := batches[src]
		if err := db.buildFromBatch(ctx, src, bs, builds, dedup[src], func(n int64) { progress(done+n, total) }); err != nil {
			return err
		}
		done += bs.Bytes()
	}
	progress(total, total)
	return nil
}

func sortedSources(m map[*sourceRT]*batchsrc.Source) []*sourceRT {
	out := make([]*sourceRT, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *sourceRT) int { return strings.Compare(a.def.Name, b.def.Name) })
	return out
}

// openBatches resolves the batch files of the builds' sources.
func (db *DB) openBatches(ws *workspace, builds []*build) (map[*sourceRT]*batchsrc.Source, int64, error) {
	out := map[*sourceRT]*batchsrc.Source{}
	var bytes int64
	for _, b := range builds {
		src := b.v.src
		if src.def.Batch == nil || out[src] != nil {
			continue
		}
		bs, err := batchsrc.Open(src.def, filepath.Dir(ws.meta.File))
		if err != nil {
			return nil, 0, fmt.Errorf("source %q: %w", src.def.Name, err)
		}
		out[src] = bs
		bytes += bs.Bytes()
	}
	return out, bytes, nil
}

// logBytes returns the size of the log's files, the unit of a build's
// progress through the log.
func (db *DB) logBytes() int64 {
	entries, err := os.ReadDir(filepath.Join(db.opts.Dir, "wal"))
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() {
			n += info.Size()
		}
	}
	return n
}

var errStopReplay = errors.New("stop")

// buildFromLog replays the log's entries up to s0 into the builds,
// spilling each build's memtable when it is full.
func (db *DB) buildFromLog(ctx context.Context, cat *catalog, builds []*build, s0 uint64, dedup map[*sourceRT]*rowHashes, frac func(float64)) error {
	first := db.log.FirstSeq()
	if s0 < first || s0 == 0 {
		return nil
	}
	r := &replayer{cat: cat, batchRows: db.opts.BackfillRunRecords, countAt: db.opts.Now(), workers: db.opts.BackfillWorkers}
	if len(dedup) > 0 {
		r.hashes = dedup
	}
	for _, b := range builds {
		b.bv.data.covered = first - 1 // fixed: the replayer reads it
		b.nextMin = first
		r.views = append(r.views, b.bv)
	}
	r.eraseFor(db.erasures, builds[0].bv.data.meta.Workspace, true)
	spillFull := func(seq uint64) error {
		for _, b := range builds {
			if b.bv.data.records.Load() >= int64(db.opts.BackfillRunRecords) {
				if err := db.spill(b, seq, true); err != nil {
					return err
				}
			}
		}
		return nil
	}
	n := 0
	err := db.log.Replay(first, func(seq uint64, payload []byte) error {
		if seq > s0 {
			return errStopReplay
		}
		if n++; n&255 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			frac(float64(seq-first) / float64(s0-first+1))
		}
		if err := record.Decode(payload, r.next()); err != nil {
			return fmt.Errorf("log entry %d: %w", seq, err)
		}
		r.add(seq)
		if r.used == 0 { // the batch was just applied
			return spillFull(seq)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopReplay) {
		return err
	}
	r.flush()
	for _, b := range builds {
		if err := db.spill(b, s0, true); err != nil {
			return err
		}
		if err := b.waitSpill(); err != nil {
			return err
		}
	}
	for _, h := range dedup {
		slices.Sort(h.sums)
	}
	return nil
}

// rowHashes are the hashes of the logged records of a source with batch
// files: a batch row equal in every column to a logged record is the
// same event, already counted (SPEC §6; DESIGN.md).
type rowHashes struct {
	sums []uint64
}

var hashSeed = maphash.MakeSeed()

func hashLogged(cat *catalog, e *record.Entry, dedup map[*sourceRT]*rowHashes, rb *rowBuilder) {
	ws := cat.workspaces[e.Workspace]
	if ws == nil {
		return
	}
	for si := range e.Sections {
		sec := &e.Sections[si]
		src := ws.sources[sec.Source]
		h := dedup[src]
		if h == nil {
			continue
		}
		rb.reset(src, sec.Columns)
		for row := 0; row < sec.NumRows(); row++ {
			h.sums = append(h.sums, hashRow(rb.row(sec.Row(row))))
		}
	}
}

func hashRow(vals []schema.Value) uint64 {
	var h maphash.Hash
	h.SetSeed(hashSeed)
	for _, v := range vals {
		hashValue(&h, v)
	}
	return h.Sum64()
}

func hashValue(h *maphash.Hash, v schema.Value) {
	h.WriteByte(byte(v.Kind))
	switch v.Kind {
	case schema.String:
		h.WriteString(v.S)
		h.WriteByte(0)
	case schema.Float64, schema.Float32:
		maphash.WriteComparable(h, math.Float64bits(v.F))
	case schema.Array:
		maphash.WriteComparable(h, len(v.A))
		for _, x := range v.A {
			hashValue(h, x)
		}
	default:
		maphash.WriteComparable(h, v.I)
	}
}

func (h *rowHashes) contains(x uint64) bool {
	_, ok := slices.BinarySearch(h.sums, x)
	return ok
}

// buildFromBatch reads a source's batch rows into the builds of views of
// that source. A row that does not convert or that a view rejects fails
// the job, naming the file and row.
func (db *DB) buildFromBatch(ctx context.Context, src *sourceRT, bs *batchsrc.Source, builds []*build, dedup *rowHashes, progress func(int64)) error {
	var mine []*build
	for _, b := range builds {
		if b.v.src == src {
			mine = append(mine, b)
		}
	}
	now := db.opts.Now()
	pjs := make([]projector, len(mine))
	erasers := make([]*rowEraser, len(mine))
	for i := range pjs {
		pjs[i].chunk = replayChunk
		erasers[i] = db.erasures.eraserFor(mine[i].bv.data.meta.Workspace, mine[i].bv, true)
	}
	n := 0
	err := bs.Scan(ctx, func(row *batchsrc.Row) error {
		if n++; n&4095 == 0 {
			progress(row.Bytes)
		}
		if dedup != nil && len(dedup.sums) > 0 && dedup.contains(hashRow(row.Values)) {
			for _, b := range mine {
				b.res.BatchDuplicates++
			}
			return nil
		}
		for i, b := range mine {
			p, err := projectBatchRow(b.bv, row, &pjs[i])
			if err != nil {
				return &jobError{job: b.job, err: err}
			}
			if p.skip || !b.include(p.ts) || erasers[i].erased(row.Values, 0) || (db.opts.OwnsKey != nil && !db.opts.OwnsKey(p.key)) {
				continue
			}
			b.bv.applyProjected(&p, 0, int(b.nextIx))
			b.nextIx++
			b.res.BatchRows++
			if (b.counts == nil || b.counts(p.ts)) && b.v.onlineAt(p.ts, now) {
				b.counted++
			}
			if b.bv.data.records.Load() >= int64(db.opts.BackfillRunRecords) {
				if err := db.spill(b, 0, false); err != nil {
					return err
				}
			}
		}
		return nil
	})
	var re *batchsrc.RowError
	if errors.As(err, &re) && !errors.As(err, new(*jobError)) {
		err = &jobError{job: mine[0].job, err: err}
	}
	if err != nil {
		return err
	}
	for _, b := range mine {
		if err := db.spill(b, 0, false); err != nil {
			return err
		}
		if err := b.waitSpill(); err != nil {
			return err
		}
	}
	return nil
}

// projectBatchRow projects a batch row onto a view; an error names the
// file and row.
func projectBatchRow(v *viewRT, row *batchsrc.Row, pj *projector) (projected, error) {
	p, err := v.project(row.Values, pj)
	if err != nil {
		return p, &batchsrc.RowError{File: row.File, Pos: row.Pos, Err: fmt.Errorf("feature view %q: %v", v.def.Name, err)}
	}
	return p, nil
}

// install moves the build's segments into the staged version's state.
// The caller holds db.maint.
func (b *build) install() {
	b.bv.data.mu.Lock()
	segs := b.bv.data.segs
	b.bv.data.segs = nil
	b.bv.data.mu.Unlock()
	d := b.v.data
	d.mu.Lock()
	d.segs = sortedSegs(append(d.segs[:len(d.segs):len(d.segs)], segs...))
	d.mu.Unlock()
	n := b.counted
	if b.counts == nil {
		n += b.bv.stats.online.Load()
	}
	b.v.stats.online.Add(n)
	b.v.stats.offline.Add(n)
	b.v.stats.observe(b.bv.stats.newest.Load())
}

// stageViews marks the views of an apply being backfilled as pending and
// gives each its prior: the version it replaces, bound to the new
// workspace's source when that source still has every column the old one
// had with the same type (ingest then applies to it too), else to its old
// source (it serves what it had, unchanged).
func stageViews(ws *workspace, st *stagedMeta, prev *workspace, hot *hotTier) (*repo.Repo, error) {
	var prevRepo *repo.Repo
	if st.Prev != nil {
		var err error
		if prevRepo, err = repo.Parse(st.Prev.File, []byte(st.Prev.Source)); err != nil {
			return nil, fmt.Errorf("engine: the earlier repo of workspace %q no longer parses: %w", ws.name, err)
		}
	}
	for view, job := range st.Jobs {
		v := ws.views[view]
		if v == nil {
			return nil, fmt.Errorf("BUG: engine: staged view %q is not in workspace %q", view, ws.name)
		}
		v.pending = job
		if prevRepo == nil {
			continue
		}
		vm, ok := st.Prev.Views[view]
		def := prevRepo.FeatureView(view)
		if !ok || def == nil {
			continue
		}
		oldSrc := prevRepo.Source(def.Source)
		src := ws.sources[def.Source]
		fed := src != nil && keepsColumns(oldSrc, src.def)
		if !fed {
			src = newSourceRT(oldSrc)
		}
		p, err := newViewRT(def, src, hot)
		if err != nil {
			return nil, err
		}
		p.version, p.createdAt = vm.Version, vm.CreatedAt
		p.data.identify(ws.name, view, vm.Version, vm.Fingerprint, def.Aggregate())
		if old := prev.version(view, vm.Version); old != nil {
			p.data, p.stats = old.data, old.stats // its ring is v's already (buildView)
		} else {
			// New stats, not published yet (the workspace opens with the
			// apply staged): the versions of a view share one ingest-rate
			// ring, so that a revert to p keeps what v counted.
			p.stats.rate = v.stats.rate
		}
		v.prior = p
		if fed {
			src.priors = append(src.priors, p)
		}
	}
	return prevRepo, nil
}

// keepsColumns reports whether every column of old is in cur, same type.
func keepsColumns(old, cur *repo.Source) bool {
	for _, c := range old.Schema {
		nc, ok := cur.Column(c.Name)
		if !ok || nc.Type != c.Type {
			return false
		}
	}
	return true
}

// runBackfill builds the staged versions of apply g and commits them.
func (db *DB) runBackfill(ctx context.Context, g string, jobs []Job) (map[string]*JobResult, error) {
	cat := db.cat.Load()
	ws := cat.workspaces[jobs[0].Workspace]
	if ws == nil || ws.meta.Staged == nil || ws.meta.Staged.Apply != g {
		return nil, fmt.Errorf("BUG: engine: apply %s is not staged", g)
	}
	var builds []*build
	for _, v := range ws.order {
		if v.pending == "" {
			continue
		}
		j, _, _ := db.jobs.get(v.pending)
		b, err := newBuild(v, v.pending, includeBatch(db.batchRanges(ws.name, v.def.Name, v.version, &j)))
		if err != nil {
			return nil, err
		}
		builds = append(builds, b)
	}
	s0 := builds[0].v.data.checkpoint()
	err := db.buildViews(ctx, cat, ws, builds, s0, db.reportProgress(jobs))
	if err == nil {
		err = db.hookBeforeCommit(ctx)
	}
	if err == nil {
		err = db.commitBackfill(ws.name, g, builds)
	}
	if err != nil {
		for _, b := range builds {
			b.discard()
		}
		return nil, err
	}
	out := map[string]*JobResult{}
	for _, b := range builds {
		out[b.job] = &b.res
	}
	return out, nil
}

func (db *DB) hookBeforeCommit(ctx context.Context) error {
	if db.beforeCommit != nil {
		db.beforeCommit(ctx)
	}
	return ctx.Err()
}

// jobError is a failure of one job of a group.
type jobError struct {
	job string
	err error
}

func (e *jobError) Error() string { return e.err.Error() }
func (e *jobError) Unwrap() error { return e.err }

func (d *viewData) checkpoint() uint64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.covered
}

// reportProgress returns the progress callback of a group's jobs.
func (db *DB) reportProgress(jobs []Job) progressFunc {
	return func(done, total int64) {
		for _, j := range jobs {
			db.jobs.progress(j.ID, JobProgress{Done: done, Total: total, Unit: "bytes"})
		}
	}
}

// lockCatalog takes the locks a job's commit or undo holds, maint then
// applyMu (no flush or apply runs between its manifest and catalog
// writes), and returns their release.
func (db *DB) lockCatalog() (unlock func()) {
	db.maint.Lock()
	db.applyMu.Lock()
	return func() {
		db.applyMu.Unlock()
		db.maint.Unlock()
	}
}

// commitBackfill installs the builds and makes their versions serve.
func (db *DB) commitBackfill(wsName, g string, builds []*build) error {
	defer db.lockCatalog()()
	cat := db.cat.Load()
	ws := cat.workspaces[wsName]
	if ws == nil || ws.meta.Staged == nil || ws.meta.Staged.Apply != g {
		return fmt.Errorf("BUG: engine: apply %s is no longer staged", g)
	}
	for _, b := range builds {
		b.install()
	}
	meta := ws.meta
	meta.Staged = nil
	nws, err := buildWorkspace(ws.repo, meta, ws, db.hot)
	if err != nil {
		return err
	}
	ncat := cat.with(nws)
	views := liveViews(ncat)
	for _, d := range liveViews(cat) { // the priors stay checkpointed until the swap
		if !slices.Contains(views, d) {
			views = append(views, d)
		}
	}
	if err := db.saveManifest(views); err != nil {
		return err
	}
	if err := saveWorkspaceMeta(db.opts.Dir, meta, ws.name); err != nil {
		return err
	}
	db.ingestMu.Lock()
	db.storeCatalog(ncat)
	db.ingestMu.Unlock()
	db.opts.Logger.Info("backfill committed: the new view versions serve", "workspace", ws.name, "apply", g)
	return nil
}

// revertStaged puts workspace wsName back as it was before apply g: its
// earlier repo and versions, or no workspace if it was new. The staged
// versions' state is dropped; their version numbers are retired.
func (db *DB) revertStaged(wsName, g string) error {
	defer db.lockCatalog()()
	cat := db.cat.Load()
	ws := cat.workspaces[wsName]
	if ws == nil || ws.meta.Staged == nil || ws.meta.Staged.Apply != g {
		return nil
	}
	st := ws.meta.Staged
	var ncat *catalog
	if st.Prev == nil {
		if err := os.Remove(filepath.Join(catalogDir(db.opts.Dir), ws.name+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := atomicfile.SyncDir(catalogDir(db.opts.Dir)); err != nil {
			return err
		}
		ncat = cat.without(ws.name)
	} else {
		meta := *st.Prev
		meta.Retired = map[string]int{}
		for k, v := range st.Prev.Retired {
			meta.Retired[k] = v
		}
		for view := range st.Jobs {
			meta.Retired[view] = max(meta.Retired[view], ws.views[view].version)
		}
		prevRepo, err := repo.Parse(meta.File, []byte(meta.Source))
		if err != nil {
			return err
		}
		nws, err := buildWorkspace(prevRepo, meta, ws, db.hot)
		if err != nil {
			return err
		}
		if err := saveWorkspaceMeta(db.opts.Dir, meta, ws.name); err != nil {
			return err
		}
		ncat = cat.with(nws)
	}
	db.ingestMu.Lock()
	db.storeCatalog(ncat)
	db.ingestMu.Unlock()
	for view := range st.Jobs {
		ws.views[view].data.closeSegments(true)
	}
	db.opts.Logger.Info("apply reverted: its backfill did not complete", "workspace", ws.name, "apply", g)
	return nil
}

// without returns a copy of c without workspace name.
func (c *catalog) without(name string) *catalog {
	n := &catalog{workspaces: make(map[string]*workspace, len(c.workspaces))}
	for k, v := range c.workspaces {
		if k != name {
			n.workspaces[k] = v
		}
	}
	return n
}

// batchRanges returns the event-time ranges of batch rows a view
// version's state holds: its backfill's history (before BatchEnd) and
// its successful materializations' ranges, and those of job also.
func (db *DB) batchRanges(ws, view string, version int, also *Job) [][2]int64 {
	var out [][2]int64
	for _, j := range db.jobs.list(func(j *Job) bool {
		return j.Workspace == ws && j.FeatureView == view && j.Version == version &&
			(j.State == JobSuccess || (also != nil && j.ID == also.ID))
	}) {
		switch {
		case j.Type == JobBackfill && j.Params.BatchEnd != nil:
			out = append(out, [2]int64{math.MinInt64, j.Params.BatchEnd.UnixNano()})
		case j.Type == JobMaterialization:
			out = append(out, [2]int64{j.Params.StartTime.UnixNano(), j.Params.EndTime.UnixNano()})
		}
	}
	return out
}

// includeBatch returns the batch-row filter of ranges.
func includeBatch(ranges [][2]int64) func(int64) bool {
	return func(ts int64) bool {
		for _, r := range ranges {
			if ts >= r[0] && ts < r[1] {
				return true
			}
		}
		return false
	}
}
