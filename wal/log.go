package wal

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"

	twal "github.com/tidwall/wal"
)

// backend is the part of the tidwall log the committer uses. Tests wrap it
// (Options.private.wrapBackend) to inject write and fsync failures.
type backend interface {
	// WriteBatch writes the batch and fsyncs it (one write, one fsync,
	// plus a sync of each segment it fills).
	WriteBatch(b *twal.Batch) error
	// ClearCache drops tidwall's copy of segments it has cycled out.
	ClearCache() error
	Close() error
}

// Log is a write-ahead log of opaque payloads numbered by dense seqs.
//
// Lock order: queue and mu are leaf locks, never held together and never
// held across I/O. The committer goroutine owns c without a lock.
type Log struct {
	opts Options
	// tw is the tidwall log, owned by the committer once Open returns;
	// Close closes it after the committer has exited.
	tw backend
	// sync performs (or, under NoSync, skips) fsyncs.
	sync syncer
	// repair is what Open repaired; immutable after Open.
	repair *RepairReport

	// queue hands append requests to the committer.
	queue struct {
		sync.Mutex
		// cond is signalled when reqs grows or closed is set.
		cond sync.Cond
		// reqs are waiting to be committed, in arrival order.
		reqs []*request
		// closed is set by Close; no request is queued after it.
		closed bool
	}

	// mu guards what Replay snapshots: segments and lastSeq change
	// together, so every seq <= lastSeq lies in a listed segment.
	mu struct {
		sync.Mutex
		// segments lists every segment file in seq order; the last is the
		// tail tidwall appends to. Only the committer appends to it.
		segments []segment
	}
	// lastSeq is the last durable seq. Stored under mu by the committer,
	// loaded without it by LastSeq.
	lastSeq atomic.Uint64

	// maint serializes the maintenance that replaces or removes segment
	// files: Rewrite and TruncateFront.
	maint sync.Mutex

	// failed holds the sticky error once a write or fsync has failed.
	failed atomic.Pointer[error]

	// c is the committer's private state.
	c committer
	// committed is closed when the committer goroutine has exited.
	committed chan struct{}
	// closed is closed once Close has finished closing tidwall.
	closed chan struct{}

	stats struct {
		batches, entries, bytes, dirSyncs atomic.Uint64
	}
}

// RepairReport describes a torn tail that Open cut off the last segment.
type RepairReport struct {
	// Segment is the path of the repaired segment file.
	Segment string
	// Offset is where the valid prefix ends: the segment's new size.
	Offset int64
	// DroppedBytes is how many bytes were cut off after Offset.
	DroppedBytes int64
	// CopyPath is the copy of the whole damaged segment, taken before the
	// cut, under Dir/damaged/.
	CopyPath string
}

// Stats are cumulative counters since Open.
type Stats struct {
	// Batches is the number of group commits, each one tidwall WriteBatch:
	// one write and (unless NoSync) one fsync.
	Batches uint64
	// Entries and Bytes count the appended entries and payload bytes.
	Entries, Bytes uint64
	// DirSyncs counts directory fsyncs made for new segment files.
	DirSyncs uint64
}

// Open opens the log in opts.Dir, creating the directory if needed. It
// verifies the last two segments, cuts a torn or zero-filled tail off the
// last one (see Repair) and returns a *CorruptionError for any other damage
// it finds. Older segments are verified when Replay reads them.
func Open(opts Options) (*Log, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	l := &Log{opts: opts, sync: newSyncer(&opts), committed: make(chan struct{}), closed: make(chan struct{})}
	l.queue.cond.L = &l.queue.Mutex
	if err := l.open(); err != nil {
		return nil, err
	}
	go l.commitLoop()
	return l, nil
}

// open recovers the directory and opens tidwall on it.
func (l *Log) open() error {
	if err := l.createDir(); err != nil {
		return fmt.Errorf("wal: create %s: %w", l.opts.Dir, err)
	}
	segs, err := listSegments(l.opts.FS, l.opts.Dir)
	if err != nil {
		return fmt.Errorf("wal: list segments: %w", err)
	}
	rec, err := recoverSegments(&l.opts, segs, l.sync)
	if err != nil {
		return err
	}
	if err := removeRewriteLeftovers(&l.opts, l.sync); err != nil {
		return err
	}
	l.repair = rec.report
	tw, err := twal.Open(l.opts.Dir, l.opts.tidwallOptions())
	if err != nil {
		return fmt.Errorf("wal: open tidwall log in %s: %w", l.opts.Dir, err)
	}
	if err := l.adopt(tw, segs, rec); err != nil {
		tw.Close()
		return err
	}
	return nil
}

// createDir creates Dir if needed and makes its entry durable.
func (l *Log) createDir() error {
	if _, err := l.opts.FS.Stat(l.opts.Dir); err == nil {
		return nil
	} else if !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	if err := l.opts.FS.MkdirAll(l.opts.Dir); err != nil {
		return err
	}
	return l.sync.dir(filepath.Dir(filepath.Clean(l.opts.Dir)))
}

// adopt checks that tidwall sees the log as recoverSegments did and sets
// up the committer's state from it.
func (l *Log) adopt(tw *twal.Log, segs []segment, rec recovered) error {
	first, err := tw.FirstIndex()
	if err != nil {
		return fmt.Errorf("wal: tidwall first index: %w", err)
	}
	last, err := tw.LastIndex()
	if err != nil {
		return fmt.Errorf("wal: tidwall last index: %w", err)
	}
	if len(segs) == 0 { // tidwall has just created the first segment
		if segs, err = l.createdFirst(); err != nil {
			return err
		}
	}
	if first != segs[0].first || last != rec.last {
		return fmt.Errorf("wal: tidwall reads %s as entries %d..%d but its frames say %d..%d; "+
			"the directory was changed behind the log's back", l.opts.Dir, first, last, segs[0].first, rec.last)
	}
	tail := segs[len(segs)-1]
	tf, err := l.opts.FS.OpenWrite(tail.path)
	if err != nil {
		return fmt.Errorf("wal: open tail segment: %w", err)
	}
	l.tw = tw
	if l.opts.private.wrapBackend != nil {
		l.tw = l.opts.private.wrapBackend(tw)
	}
	l.mu.segments = segs
	l.lastSeq.Store(last)
	l.c = committer{tail: tail, tailFile: tf, tailBytes: rec.tailBytes, last: last}
	return nil
}

// createdFirst makes the first segment file, just created by tidwall,
// durable and returns it.
func (l *Log) createdFirst() ([]segment, error) {
	if err := l.sync.dir(l.opts.Dir); err != nil {
		return nil, fmt.Errorf("wal: sync %s: %w", l.opts.Dir, err)
	}
	segs, err := listSegments(l.opts.FS, l.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("wal: list segments: %w", err)
	}
	if len(segs) != 1 {
		return nil, fmt.Errorf("wal: expected tidwall to create one segment in %s, found %d", l.opts.Dir, len(segs))
	}
	return segs, nil
}

// Append writes payload as the next entry and returns its seq once the
// entry is written and fsynced, together with whatever other appends were
// waiting (group commit). It is safe for concurrent use; payload is not
// retained after Append returns. An error wrapping ErrFailed means the log
// has failed for good: the entry may or may not survive a restart, and
// every later Append fails too.
func (l *Log) Append(payload []byte) (seq uint64, err error) {
	if len(payload) > l.opts.MaxBatchBytes {
		return 0, ErrTooLarge
	}
	r := requestPool.Get().(*request)
	r.payload = payload
	if err := l.enqueue(r); err != nil {
		r.recycle()
		return 0, err
	}
	err = <-r.done
	seq = r.seq
	r.recycle()
	return seq, err
}

// AppendBatch writes payloads as consecutive entries with one group
// commit (one write and one fsync, or more only when the batch fills a
// segment) and returns the seq of the first; the i-th payload has seq
// first+i. Other appends waiting meanwhile may share the commit, before
// or after the batch, never inside it. Every payload gets the same
// outcome: all are acknowledged, or the error is returned. A crash
// before the fsync may keep any prefix of the batch, never a part of an
// entry: Open cuts a torn write at its first damaged entry, also when a
// later block of the write reached the disk and an earlier one did not
// (the write's last frame is marked; docs/format/wal.md, "Recovery"). The payloads
// together must fit Options.MaxBatchBytes (else ErrTooLarge, nothing
// written). An empty batch writes nothing and returns (0, nil).
func (l *Log) AppendBatch(payloads [][]byte) (first uint64, err error) {
	if len(payloads) == 0 {
		return 0, nil
	}
	size := 0
	for _, p := range payloads {
		size += len(p)
	}
	if size > l.opts.MaxBatchBytes {
		return 0, ErrTooLarge
	}
	rs := make([]*request, len(payloads))
	for i, p := range payloads {
		rs[i] = requestPool.Get().(*request)
		rs[i].payload = p
	}
	rs[0].more = len(rs) - 1
	if err := l.enqueue(rs...); err != nil {
		for _, r := range rs {
			r.recycle()
		}
		return 0, err
	}
	for _, r := range rs {
		if e := <-r.done; e != nil && err == nil {
			err = e
		}
	}
	first = rs[0].seq
	for _, r := range rs {
		r.recycle()
	}
	if err != nil {
		return 0, err
	}
	return first, nil
}

// enqueue hands rs to the committer, contiguous in the queue.
func (l *Log) enqueue(rs ...*request) error {
	if err := l.Err(); err != nil {
		return err
	}
	l.queue.Lock()
	defer l.queue.Unlock()
	if l.queue.closed {
		return ErrClosed
	}
	l.queue.reqs = append(l.queue.reqs, rs...)
	l.queue.cond.Signal()
	return nil
}

// FirstSeq returns the seq of the oldest entry, or 0 if the log is empty.
func (l *Log) FirstSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if first := l.mu.segments[0].first; first <= l.lastSeq.Load() {
		return first
	}
	return 0
}

// SegmentStarts returns the seq of the first entry of each segment that
// holds entries, oldest first: where Replay can start without reading
// earlier entries (Replay verifies a segment from its start). It returns
// nil for an empty or closed log.
func (l *Log) SegmentStarts() []uint64 {
	segs, last, err := l.snapshot()
	if err != nil {
		return nil
	}
	var out []uint64
	for _, s := range segs {
		if s.first <= last {
			out = append(out, s.first)
		}
	}
	return out
}

// LastSeq returns the seq of the newest durable entry, or 0 if the log is
// empty. Seqs start at 1 and are dense.
func (l *Log) LastSeq() uint64 { return l.lastSeq.Load() }

// Err returns nil, or the error that failed the log (it wraps ErrFailed and
// the write or fsync error that caused it).
func (l *Log) Err() error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Repair returns what Open repaired, or nil if the log opened clean.
func (l *Log) Repair() *RepairReport { return l.repair }

// Stats returns the counters since Open.
func (l *Log) Stats() Stats {
	return Stats{
		Batches:  l.stats.batches.Load(),
		Entries:  l.stats.entries.Load(),
		Bytes:    l.stats.bytes.Load(),
		DirSyncs: l.stats.dirSyncs.Load(),
	}
}

// Close waits for every pending Append to finish, then closes the files.
// It returns the log's failure, if any, so a failure is never lost. It is
// idempotent: later calls wait for the first and return nil.
func (l *Log) Close() error {
	l.queue.Lock()
	already := l.queue.closed
	l.queue.closed = true
	l.queue.cond.Signal()
	l.queue.Unlock()
	if already {
		<-l.closed
		return nil
	}
	<-l.committed
	err := errors.Join(l.tw.Close(), l.c.tailFile.Close())
	close(l.closed)
	if ferr := l.Err(); ferr != nil {
		return ferr
	}
	if err != nil {
		return fmt.Errorf("wal: close: %w", err)
	}
	return nil
}

// isClosed reports whether Close has been called.
func (l *Log) isClosed() bool {
	l.queue.Lock()
	defer l.queue.Unlock()
	return l.queue.closed
}

// fail makes cause the log's sticky failure and returns the error the
// failing batch's appenders get. Only the committer calls it.
func (l *Log) fail(op string, cause error) error {
	err := failure(op, cause)
	if !l.failed.CompareAndSwap(nil, &err) {
		return l.Err()
	}
	l.opts.Logger.Error("wal: log failed; refusing all further appends until restart",
		"dir", l.opts.Dir, "op", op, "err", cause)
	return err
}
