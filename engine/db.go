package engine

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/featurelog/featurelog/internal/auth"
	"github.com/featurelog/featurelog/internal/dirlock"
	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/internal/schema"
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
	hot      *hotTier // the aggregate views' shared hot tier

	applyMu  sync.Mutex   // serializes Apply
	ingestMu sync.RWMutex // readers: Ingest; writer: Apply's swap and rebuild
	cat      atomic.Pointer[catalog]
	closed   atomic.Bool
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
	db := &DB{opts: opts, lock: lock, hot: newHotTier(opts.HotTierBytes)}
	if err := db.open(); err != nil {
		db.closeFiles()
		return nil, err
	}
	return db, nil
}

func (db *DB) open() error {
	var err error
	if db.accounts, err = auth.OpenStore(filepath.Join(db.opts.Dir, "accounts.json")); err != nil {
		return err
	}
	cat, err := loadCatalog(db.opts.Dir, db.hot)
	if err != nil {
		return err
	}
	db.cat.Store(cat)
	db.log, err = wal.Open(wal.Options{Dir: filepath.Join(db.opts.Dir, "wal"), SegmentSize: db.opts.SegmentSize,
		NoSync: db.opts.NoSync, Logger: db.opts.Logger})
	if err != nil {
		return err
	}
	if rep := db.log.Repair(); rep != nil {
		db.opts.Logger.Warn("repaired torn log tail", "segment", rep.Segment, "offset", rep.Offset,
			"dropped_bytes", rep.DroppedBytes, "copy", rep.CopyPath)
	}
	n, err := db.replay(cat, func(*viewRT) bool { return true })
	if err != nil {
		return err
	}
	db.opts.Logger.Info("opened data directory", "dir", db.opts.Dir, "log_entries", db.log.LastSeq(), "records_replayed", n)
	return nil
}

// Close waits for in-flight appends, closes the log and releases the lock.
func (db *DB) Close() error {
	if !db.closed.CompareAndSwap(false, true) {
		return nil
	}
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
		return &Error{Code: CodeUnavailable, Msg: "the log cannot guarantee durability; restart the node", Err: err}
	}
	return nil
}

// replay applies every logged record to the views of cat that want
// accepts, and returns how many records it read.
func (db *DB) replay(cat *catalog, want func(*viewRT) bool) (int, error) {
	r := newReplayer(cat, want)
	err := db.log.Replay(1, func(seq uint64, payload []byte) error {
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

// replayBatchRows is how many decoded records replay gathers before the
// views apply them.
const replayBatchRows = 1 << 16

// replayer decodes log entries in batches and has the views apply each
// batch in parallel: views are independent, so up to GOMAXPROCS of them
// replay at once, each in log order.
type replayer struct {
	cat     *catalog
	views   []*viewRT // the views to rebuild
	entries []*record.Entry
	seqs    []uint64
	used    int // entries of the current batch
	rows    int // rows in the current batch
	records int // rows read in all
}

func newReplayer(cat *catalog, want func(*viewRT) bool) *replayer {
	r := &replayer{cat: cat}
	for _, name := range cat.names() {
		for _, v := range cat.workspaces[name].order {
			if want(v) {
				r.views = append(r.views, v)
			}
		}
	}
	return r
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
	r.seqs[r.used] = seq
	r.used++
	for i := range e.Sections {
		n := e.Sections[i].NumRows()
		r.rows += n
		r.records += n
	}
	if r.rows >= replayBatchRows {
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
	for range min(runtime.GOMAXPROCS(0), len(r.views)) {
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
		rb rowBuilder
		pj = projector{chunk: replayChunk}
	)
	for ei, e := range r.entries[:r.used] {
		ws := r.cat.workspaces[e.Workspace]
		if ws == nil {
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
				p, err := v.project(rb.row(sec.Row(row)), &pj)
				if err == nil { // an error: the view's rules changed since the record was accepted
					v.applyProjected(&p, r.seqs[ei], idx)
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
