package engine

import (
	"errors"
	"fmt"
	"path/filepath"
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
	var (
		e  record.Entry
		n  int
		rb rowBuilder
		pj = projector{chunk: replayChunk}
	)
	err := db.log.Replay(1, func(seq uint64, payload []byte) error {
		if err := record.Decode(payload, &e); err != nil {
			return fmt.Errorf("engine: log entry %d: %w", seq, err)
		}
		ws := cat.workspaces[e.Workspace]
		idx := 0
		for si := range e.Sections {
			sec := &e.Sections[si]
			n += sec.NumRows()
			if ws == nil || ws.sources[sec.Source] == nil {
				idx += sec.NumRows()
				continue
			}
			src := ws.sources[sec.Source]
			rb.reset(src, sec.Columns)
			for r := 0; r < sec.NumRows(); r++ {
				row := rb.row(sec.Row(r))
				for _, v := range src.views {
					if !want(v) {
						continue
					}
					p, err := v.project(row, &pj)
					if err != nil {
						continue // the view's rules changed since the record was accepted
					}
					v.applyProjected(&p, seq, idx)
				}
				idx++
			}
		}
		return nil
	})
	return n, err
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
