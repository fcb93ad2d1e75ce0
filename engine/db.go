package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/compaction"
	"github.com/featurelog/featurelog/internal/dirlock"
	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/wal"
)

// DB is an open featurelog data directory: the log, the applied
// definitions, and the online state derived from them.
//
// Lock order: applyMu, then ingestMu. Ingest holds ingestMu for reading
// from validation to the last view update, so Apply (which holds it for
// writing while it rebuilds new view versions and swaps the catalog) never
// sees a half-applied request and no request sees a half-built view.
type DB struct {
	opts     Options
	lock     *dirlock.Lock
	log      *wal.Log
	accounts *auth.Store
	hot      *hotTier    // the aggregate views' shared hot tier
	idem     idempotency // Idempotency-Key table (idempotency.go)
	// posMu guards pos, the last Kafka position applied (position.go).
	posMu sync.Mutex
	pos   positionState
	// idemReady is closed once the table is rebuilt from the log, in the
	// background from the first ingest on (startIdempotencyLoad, run once
	// by idemStart); idemErr, set before, says why it could not be.
	idemStart sync.Once
	idemReady chan struct{}
	idemErr   error
	erasures  *erasures    // what deletions erased, for later reads (erasure.go)
	applied   *appliedMark // how far the log is applied (applied.go)
	sinks     *sinkCursors // the output stream sinks' cursors (sinks.go)

	applyMu  sync.Mutex   // serializes Apply
	ingestMu sync.RWMutex // readers: Ingest; writer: Apply's swap and rebuild
	cat      atomic.Pointer[catalog]
	closed   atomic.Bool

	// Flushes and merges (compact.go). maint serializes them and guards
	// man and viewsByID. Lock order: maint, then applyMu, then ingestMu.
	maint     sync.Mutex
	man       *manifest
	viewsByID map[string]*viewData // view versions with segments, by viewData.id
	maintStop chan struct{}
	maintDone chan struct{}
	maintErr  atomic.Pointer[error] // the last background failure
	jobs      *jobTable             // jobs.go
	runner    *jobRunner            // jobrun.go
	jobsDone  chan struct{}         // closed when the job runner has stopped
	// beforeCommit, when set (tests), is called by a backfill or
	// materialization job after it built its segments and before it
	// commits them; a job cancelled meanwhile is undone.
	beforeCommit func(ctx context.Context)
	nextSeg      atomic.Uint64 // the next segment id (manifest.NextSegment once saved)
	reads        *ReadGate     // online reads in flight, which flushes and merges give way to (pace.go)
	mergeTurn    int           // the view mergesDue looks at first (maintainer goroutine only)
	truncations  atomic.Int64  // log segments removed (truncate.go)
	lastFlush    atomic.Int64  // Unix ns
	// metrics are the instruments of flushes, merges, fsyncs and
	// idempotent replays; Collector reads the rest from the state above.
	metrics *dbMetrics
}

// Open opens (or creates) the data directory in opts.Dir, locks it,
// repairs a torn log tail, loads the applied definitions and rebuilds the
// online state by replaying the log.
func Open(opts Options) (*DB, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	lock, err := dirlock.Acquire(opts.Dir, opts.Holder)
	if err != nil {
		return nil, err
	}
	db := &DB{opts: opts, lock: lock, hot: newHotTier(opts.HotTierBytes), viewsByID: map[string]*viewData{},
		maintStop: make(chan struct{}), maintDone: make(chan struct{}), runner: newJobRunner(), jobsDone: make(chan struct{}),
		metrics: newDBMetrics(), reads: opts.Reads}
	if db.reads == nil {
		db.reads = new(ReadGate)
	}
	db.lastFlush.Store(time.Now().UnixNano())
	if db.hot.states, err = newStateCache(opts.StateCacheBytes); err != nil {
		db.closeFiles()
		return nil, err
	}
	if err := db.open(); err != nil {
		db.closeFiles()
		return nil, err
	}
	if opts.DisableAutoFlush {
		close(db.maintDone)
	} else {
		go db.maintain()
	}
	go db.runJobs()
	return db, nil
}

func (db *DB) open() error {
	var err error
	if db.accounts, err = auth.OpenStore(filepath.Join(db.opts.Dir, "accounts.json")); err != nil {
		return err
	}
	if db.jobs, err = loadJobs(db.opts.Dir); err != nil {
		return err
	}
	if db.erasures, err = loadErasures(db.opts.Dir); err != nil {
		return err
	}
	if db.sinks, err = loadSinkCursors(db.opts.Dir); err != nil {
		return err
	}
	cat, err := loadCatalog(db.opts.Dir, db.hot)
	if err != nil {
		return err
	}
	db.storeCatalog(cat)
	db.log, err = wal.Open(wal.Options{Dir: filepath.Join(db.opts.Dir, "wal"), SegmentSize: db.opts.SegmentSize,
		NoSync: db.opts.NoSync, Logger: db.opts.Logger, CompressMin: logCompressMin, FS: db.opts.FS,
		OnSync: db.metrics.observeFsync})
	if err != nil {
		return err
	}
	if rep := db.log.Repair(); rep != nil {
		db.opts.Logger.Warn("repaired torn log tail", "segment", rep.Segment, "offset", rep.Offset,
			"dropped_bytes", rep.DroppedBytes, "copy", rep.CopyPath)
	}
	rebuilt, err := db.openSegments(cat)
	if err != nil {
		return err
	}
	n, err := db.replay(cat, func(*viewRT) bool { return true })
	if err != nil {
		return err
	}
	db.applied = newAppliedMark(db.log.LastSeq())
	if err := db.sinks.reconcile(cat, StreamOffset{Seq: db.log.LastSeq() + 1}); err != nil {
		return err
	}
	if len(rebuilt) > 0 { // checkpoint them now, so the next open replays nothing of them
		db.maint.Lock()
		err := db.flushLocked()
		db.maint.Unlock()
		if err != nil {
			return fmt.Errorf("engine: checkpointing the rebuilt views %v: %w", rebuilt, err)
		}
	}
	if err := db.resumeJobs(); err != nil {
		return err
	}
	db.idem.init(db.opts.IdempotencyWindow, db.opts.IdempotencyMaxKeys, db.opts.Logger)
	db.idemReady = make(chan struct{}) // the last 24h of keys are read back at the first ingest (ingestOnce)
	db.opts.Logger.Info("opened data directory", "dir", db.opts.Dir, "log_entries", db.log.LastSeq(), "records_replayed", n)
	return nil
}

// openSegments loads the manifest, opens the segments of every view
// version in cat, and deletes segment files the manifest does not name.
// It returns the view versions whose checkpoint it dropped because their
// segments have another layout (dropStaleLayouts): replay rebuilds them
// from the whole log.
func (db *DB) openSegments(cat *catalog) ([]string, error) {
	var err error
	if db.man, err = loadManifest(db.opts.FS, db.opts.Dir); err != nil {
		return nil, err
	}
	db.nextSeg.Store(db.man.NextSegment)
	if err := db.opts.FS.MkdirAll(segmentsDir(db.opts.Dir)); err != nil {
		return nil, err
	}
	stale, err := db.dropStaleLayouts(cat)
	if err != nil {
		return nil, err
	}
	if err := db.dropStaged(cat); err != nil {
		return nil, err
	}
	removed, err := removeOrphans(db.opts.FS, db.opts.Dir, db.man)
	if err != nil {
		return nil, err
	}
	if len(removed) > 0 && len(stale) == 0 {
		db.opts.Logger.Warn("removed segment files no checkpoint names (left by an interrupted flush or merge)", "files", removed)
	}
	for _, d := range liveViews(cat) {
		mv := db.man.Views[d.id]
		if mv == nil || mv.Fingerprint != d.print {
			continue
		}
		if err := db.adoptSegments(d, mv); err != nil {
			return nil, err
		}
	}
	return stale, nil
}

// adoptSegments opens the segments mv lists for view version d.
func (db *DB) adoptSegments(d *viewData, mv *manifestView) error {
	for _, ms := range mv.Segments {
		r, err := compaction.OpenFS(db.opts.FS, filepath.Join(segmentsDir(db.opts.Dir), ms.File))
		if err != nil {
			return fmt.Errorf("engine: segment of %s: %w", d.id, err)
		}
		if m := r.Meta(); m.Workspace != d.meta.Workspace || m.View != d.meta.View || m.Version != d.meta.Version || m.Fingerprint != d.print {
			r.Close()
			return fmt.Errorf("engine: segment %s belongs to %s/%s@%d (fingerprint %s), but the checkpoint lists it for %s (fingerprint %s)",
				ms.File, m.Workspace, m.View, m.Version, m.Fingerprint, d.id, d.print)
		}
		d.segs = append(d.segs, &segRef{h: db.newHandle(r), id: ms.ID, cacheID: ms.ID, file: ms.File, level: ms.Level,
			minSeq: ms.MinSeq, maxSeq: ms.MaxSeq, bytes: ms.Bytes})
	}
	d.segs = sortedSegs(d.segs)
	d.covered = mv.Covered
	db.viewsByID[d.id] = d
	return nil
}

// dropStaleLayouts removes from the manifest, durably, the checkpoints of
// view versions whose segments encode key states in another layout than
// this build's: those written before issue 10's fix for a view with
// aggregates that differ only in their input column, which shared one
// state and so hold wrong values (and too few raw columns to be read
// now). Their segment files become orphans, and the views are rebuilt
// from the whole log. The log is never truncated by the builds that can
// have written such a checkpoint, so it holds their history; if it does
// not, Open fails rather than serve a view rebuilt from part of it.
func (db *DB) dropStaleLayouts(cat *catalog) ([]string, error) {
	var stale, why []string
	for _, d := range liveViews(cat) {
		mv := db.man.Views[d.id]
		if mv == nil || mv.Fingerprint != d.print || d.readsLayout(mv.Layout) {
			continue
		}
		stale = append(stale, d.id)
		if mv.Layout == "" {
			why = append(why, d.id+": written by a build before the fix of issue 10, in which aggregates that differ only in their input column shared one state")
		} else {
			why = append(why, fmt.Sprintf("%s: written with state layout %s; this build's is %s", d.id, mv.Layout, d.layout))
		}
	}
	if len(stale) == 0 {
		return nil, nil
	}
	if first := db.log.FirstSeq(); first > 1 {
		return nil, fmt.Errorf("engine: the segments of %s cannot be read and must be rebuilt from the log (%s), "+
			"but the log in %s begins at entry %d: restore its earlier segments from a backup and open again",
			strings.Join(stale, ", "), strings.Join(why, "; "), filepath.Join(db.opts.Dir, "wal"), first)
	}
	for _, id := range stale {
		delete(db.man.Views, id)
	}
	if err := db.man.save(db.opts.FS, db.opts.Dir); err != nil {
		return nil, err
	}
	db.opts.Logger.Warn("rebuilding view versions from the log, whose segments this build cannot read; the rebuild replaces them",
		"views", stale, "why", why)
	return stale, nil
}

// dropStaged removes from the manifest the checkpoints of view versions
// an interrupted backfill was building: their job re-runs from scratch.
func (db *DB) dropStaged(cat *catalog) error {
	dropped := false
	for _, name := range cat.names() {
		for _, v := range cat.workspaces[name].order {
			if v.pending != "" && db.man.Views[v.data.id] != nil {
				delete(db.man.Views, v.data.id)
				dropped = true
			}
		}
	}
	if !dropped {
		return nil
	}
	return db.man.save(db.opts.FS, db.opts.Dir)
}

// Close waits for in-flight appends, closes the log and releases the lock.
func (db *DB) Close() error {
	if !db.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(db.maintStop)
	<-db.maintDone // a flush in progress completes; nothing new starts
	<-db.jobsDone  // a running job stops; it re-runs on open
	db.maint.Lock()
	defer db.maint.Unlock()
	db.ingestMu.Lock() // wait for in-flight ingests to finish applying
	defer db.ingestMu.Unlock()
	return db.closeFiles()
}

func (db *DB) closeFiles() error {
	var errs []error
	if db.log != nil {
		errs = append(errs, db.log.Close())
	}
	if db.lock != nil {
		errs = append(errs, db.lock.Release())
	}
	if db.hot != nil && db.hot.cache != nil {
		db.hot.cache.Reset() // free its memory now, not at the next GC of an unreachable DB
	}
	if db.hot != nil {
		db.hot.states.close()
	}
	if cat := db.cat.Load(); cat != nil {
		for _, d := range liveViews(cat) {
			d.closeSegments(false)
		}
	}
	return errors.Join(errs...)
}

// Accounts returns the service-account store of the data directory.
func (db *DB) Accounts() *auth.Store { return db.accounts }

// Healthy reports nil while the log can still acknowledge writes.
func (db *DB) Healthy() error {
	if db.closed.Load() {
		return ErrClosed
	}
	if err := db.log.Err(); err != nil {
		return &Error{Code: CodeUnavailable, Err: err,
			Msg: diskFullSays(err, "the log failed and cannot guarantee durability; no write is acknowledged until the node restarts")}
	}
	return nil
}

// MaintenanceErr returns the error of the background maintainer's last
// flush or merge if it failed, or nil once one succeeds. A failing
// checkpoint loses nothing (the log keeps every record) but lets memtables
// and the log replayed on open grow: /readyz reports it as degraded.
func (db *DB) MaintenanceErr() error {
	if p := db.maintErr.Load(); p != nil {
		return *p
	}
	return nil
}

// replay applies every logged record to the views of cat that want
// accepts, and returns how many records it read.
func (db *DB) replay(cat *catalog, want func(*viewRT) bool) (int, error) {
	r := newReplayer(cat, want)
	for _, name := range cat.names() {
		r.eraseForWorkspace(db.erasures, name)
	}
	return db.replayWith(r)
}

// eraseForWorkspace sets the online erasers of r's views of workspace ws.
func (r *replayer) eraseForWorkspace(e *erasures, ws string) {
	views := r.views
	defer func() { r.views = views }()
	r.views = nil
	for _, v := range views {
		if v.data.meta.Workspace == ws {
			r.views = append(r.views, v)
		}
	}
	r.eraseFor(e, ws, true)
}

// replayWith replays the log after the views' covered sequences into r's
// views.
func (db *DB) replayWith(r *replayer) (int, error) {
	from := uint64(math.MaxUint64)
	for _, v := range r.views {
		from = min(from, v.data.covered+1)
	}
	if len(r.views) == 0 || from > db.log.LastSeq() {
		return 0, nil
	}
	err := db.log.Replay(max(from, db.log.FirstSeq()), func(seq uint64, payload []byte) error {
		e := r.next()
		if err := record.Decode(payload, e); err != nil {
			return fmt.Errorf("engine: log entry %d: %w", seq, err)
		}
		r.add(seq)
		return nil
	})
	r.flush()
	return r.records, err
}

// logCompressMin is the payload size from which log entries are stored
// compressed: batched requests shrink 2–3x; single records are not worth
// compressing.
const logCompressMin = 1024

// replayBatchRows is how many decoded records replay gathers before the
// views apply them.
const replayBatchRows = 1 << 16

// replayer decodes log entries in batches and has the views apply each
// batch in parallel: views are independent, so up to GOMAXPROCS of them
// replay at once, each in log order.
type replayer struct {
	cat     *catalog
	views   []*viewRT       // the views to rebuild
	keep    map[string]bool // when set, only records of these entity keys are applied
	entries []*record.Entry
	seqs    []uint64
	used    int // entries of the current batch
	rows    int // rows in the current batch
	records int // rows read in all
	// batchRows is how many rows a batch gathers before the views apply
	// it (replayBatchRows when 0).
	batchRows int
	// workers bounds how many views apply a batch at once (GOMAXPROCS
	// when 0).
	workers int
	// hashes, when set, collects the hashes of the logged records of its
	// sources (those with batch files: see rowHashes).
	hashes map[*sourceRT]*rowHashes
	rb     rowBuilder // hashes' mapping of logged columns
	// collect, when set, receives the records instead of the views
	// (delete_apply.go).
	collect func(v *viewRT, p *projected, seq uint64, idx int)
	// last is the seq of the last entry read.
	last uint64
	// erasers, when set, holds per view the records it must leave out
	// (erasure.go).
	erasers map[*viewRT]*rowEraser
	// countAt, when set, counts in each view's stats.online the records
	// applied that are within its TTL at countAt, as ingest counts them.
	countAt time.Time
}

func newReplayer(cat *catalog, want func(*viewRT) bool) *replayer {
	r := &replayer{cat: cat}
	for _, name := range cat.names() {
		for _, v := range cat.workspaces[name].order {
			if s := v.serving(); s != nil && want(s) {
				r.views = append(r.views, s)
			}
		}
	}
	return r
}

// eraseFor sets r's erasers: the online state's (online) or the offline
// log's, for views of workspace ws.
func (r *replayer) eraseFor(e *erasures, ws string, online bool) {
	for _, v := range r.views {
		if er := e.eraserFor(ws, v, online); er != nil {
			if r.erasers == nil {
				r.erasers = map[*viewRT]*rowEraser{}
			}
			r.erasers[v] = er
		}
	}
}

// next returns the entry to decode into, reusing the batch's slots.
func (r *replayer) next() *record.Entry {
	if r.used == len(r.entries) {
		r.entries = append(r.entries, &record.Entry{})
		r.seqs = append(r.seqs, 0)
	}
	return r.entries[r.used]
}

// add takes the entry just decoded into the batch, flushing when full.
func (r *replayer) add(seq uint64) {
	e := r.entries[r.used]
	if r.hashes != nil {
		hashLogged(r.cat, e, r.hashes, &r.rb)
	}
	r.seqs[r.used] = seq
	r.last = seq
	r.used++
	for i := range e.Sections {
		n := e.Sections[i].NumRows()
		r.rows += n
		r.records += n
	}
	if r.rows >= replayBatchRows || (r.batchRows > 0 && r.rows >= r.batchRows) {
		r.flush()
	}
}

// flush applies the batch to every view, views in parallel, and empties it.
// Applied values are copied out of the entries, which are then reused.
func (r *replayer) flush() {
	if r.used == 0 {
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	if r.workers > 0 {
		workers = r.workers
	}
	for range min(workers, len(r.views)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(r.views); i = int(next.Add(1)) - 1 {
				r.apply(r.views[i])
			}
		}()
	}
	wg.Wait()
	r.used, r.rows = 0, 0
}

// apply replays the batch into one view.
func (r *replayer) apply(v *viewRT) {
	var (
		rb      rowBuilder
		pj      = projector{chunk: replayChunk}
		counted int64
	)
	count := !r.countAt.IsZero()
	er := r.erasers[v].clone()
	defer func() { v.stats.online.Add(counted) }()
	for ei, e := range r.entries[:r.used] {
		ws := r.cat.workspaces[e.Workspace]
		if ws == nil || r.seqs[ei] <= v.data.covered {
			continue
		}
		idx := 0
		for si := range e.Sections {
			sec := &e.Sections[si]
			if ws.sources[sec.Source] != v.src {
				idx += sec.NumRows()
				continue
			}
			rb.reset(v.src, sec.Columns)
			for row := 0; row < sec.NumRows(); row++ {
				src := rb.row(sec.Row(row))
				p, err := v.project(src, &pj)
				if err == nil && !p.skip && ((r.keep != nil && !r.keep[p.key]) || er.erased(src, r.seqs[ei])) {
					p.skip = true
				}
				if err == nil && r.collect != nil {
					if !p.skip {
						r.collect(v, &p, r.seqs[ei], idx)
					}
				} else if err == nil { // an error: the view's rules changed since the record was accepted
					v.applyProjected(&p, r.seqs[ei], idx)
					if count && !p.skip && v.onlineAt(p.ts, r.countAt) {
						counted++
					}
				}
				idx++
			}
		}
	}
}

// rowBuilder maps rows logged with one column list onto the current
// source schema: columns matched by name and type; others read as null.
type rowBuilder struct {
	identity bool
	mapping  []int // source column i ← logged column mapping[i], or -1
	buf      []schema.Value
}

func (rb *rowBuilder) reset(src *sourceRT, logged []schema.Column) {
	cols := src.def.Schema
	rb.identity = len(cols) == len(logged)
	rb.mapping = rb.mapping[:0]
	for i, c := range cols {
		j := -1
		for k, lc := range logged {
			if lc.Name == c.Name && lc.Type == c.Type {
				j = k
				break
			}
		}
		rb.identity = rb.identity && j == i
		rb.mapping = append(rb.mapping, j)
	}
	if cap(rb.buf) < len(cols) {
		rb.buf = make([]schema.Value, len(cols))
	}
	rb.buf = rb.buf[:len(cols)]
}

func (rb *rowBuilder) row(logged []schema.Value) []schema.Value {
	if rb.identity {
		return logged
	}
	for i, j := range rb.mapping {
		if j < 0 {
			rb.buf[i] = schema.Value{}
		} else {
			rb.buf[i] = logged[j]
		}
	}
	return rb.buf
}

// LogStats returns the log's counters: group commits (one fsync each),
// entries and bytes appended since open.
func (db *DB) LogStats() wal.Stats { return db.log.Stats() }

// LastSeq returns the sequence number of the log's last entry (0 when
// empty): it moves exactly when an entry is appended.
func (db *DB) LastSeq() uint64 { return db.log.LastSeq() }

// LogRepair reports the torn log tail Open repaired, or nil.
func (db *DB) LogRepair() *wal.RepairReport { return db.log.Repair() }
