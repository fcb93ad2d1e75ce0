package wal

import (
	"fmt"
	"sync"
	"time"

	twal "github.com/tidwall/wal"

	"github.com/featurelog/featurelog/vfs"
)

// request is one Append waiting for the committer. Requests are pooled so
// that a steady stream of appends allocates nothing.
type request struct {
	// payload is the caller's slice, read by the committer while Append
	// blocks, so it is never copied outside the frame.
	payload []byte
	// seq is assigned by the committer; valid once done has fired nil.
	seq uint64
	// done receives exactly one value per use: nil or the batch's error.
	done chan error
	// ctl, when set, makes this a control request (Seal): the committer
	// runs it alone, between two batches, instead of appending.
	ctl func(r *request) error
	// more is, on the first request of an AppendBatch, how many requests
	// follow it in the same batch: the committer takes them together.
	more int
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan error, 1)} }}

// recycle returns r to the pool; done is drained, so it can be reused.
func (r *request) recycle() {
	r.payload, r.seq, r.ctl, r.more = nil, 0, nil, 0
	requestPool.Put(r)
}

// cycleSlack makes the cycle check conservative: tidwall is asked about new
// segments once the tail is within this many bytes of SegmentSize, so a
// miscount of the tail's size cannot hide a segment tidwall created.
const cycleSlack = 4 << 10

// committer is the state of the committer goroutine, touched by nothing
// else once Open has returned.
type committer struct {
	// batch is the requests of the group commit in progress.
	batch []*request
	// twb is the tidwall batch, reused across commits.
	twb twal.Batch
	// frame is the scratch buffer frames are built in before tidwall
	// copies them into twb.
	frame []byte
	// zbuf is the scratch buffer payloads are compressed into.
	zbuf []byte
	// last is the seq of the last entry handed to tidwall successfully.
	last uint64
	// tail is the newest segment file the committer knows of.
	tail segment
	// tailFile is tail opened through Options.FS: the committer fsyncs
	// the tail through it, since tidwall's own fsync is turned off.
	tailFile vfs.File
	// tailBytes tracks tail's size: tidwall cycles when the bytes of its
	// tail reach SegmentSize. Resynchronized from the file by checkCycle.
	tailBytes int64
	// created holds segments found by checkCycle, to publish.
	created []segment
}

// commitLoop is the committer goroutine: it writes queued appends in
// batches until Close has been called and the queue is drained.
func (l *Log) commitLoop() {
	defer close(l.committed)
	for l.nextBatch() {
		if ctl := l.c.batch[0].ctl; ctl != nil {
			r := l.c.batch[0]
			r.done <- l.control(ctl, r)
			clear(l.c.batch)
			continue
		}
		l.commit()
	}
}

// nextBatch waits for queued requests and moves the oldest of them, up to
// MaxBatchBytes of payload (at least one), into c.batch. It returns false
// once the log is closed and nothing is queued.
func (l *Log) nextBatch() bool {
	l.queue.Lock()
	defer l.queue.Unlock()
	for len(l.queue.reqs) == 0 {
		if l.queue.closed {
			return false
		}
		l.queue.cond.Wait()
	}
	q := l.queue.reqs
	// An AppendBatch's requests are taken whole: they fit MaxBatchBytes
	// together (AppendBatch checked), so the first group always fits.
	group := func(i int) (int, int) {
		size := 0
		for _, r := range q[i : i+1+q[i].more] {
			size += len(r.payload)
		}
		return 1 + q[i].more, size
	}
	n, size := group(0)
	for n < len(q) && q[0].ctl == nil && q[n].ctl == nil {
		k, s := group(n)
		if size+s > l.opts.MaxBatchBytes {
			break
		}
		n += k
		size += s
	}
	l.c.batch = append(l.c.batch[:0], q[:n]...)
	rest := copy(q, q[n:])
	clear(q[rest:]) // let finished requests go
	l.queue.reqs = q[:rest]
	return true
}

// control runs a control request, unless the log has failed.
func (l *Log) control(ctl func(*request) error, r *request) error {
	if err := l.Err(); err != nil {
		return err
	}
	return ctl(r)
}

// commit writes c.batch with one tidwall WriteBatch, makes any new segment
// durable, publishes the new last seq and then releases the waiters:
// nothing is acknowledged before it is durable.
func (l *Log) commit() {
	batch := l.c.batch
	if err := l.Err(); err != nil {
		release(batch, err) // never write after a failure
		return
	}
	entryBytes, payloadBytes := l.encode(batch)
	if err := l.write(entryBytes); err != nil {
		release(batch, err)
		return
	}
	l.c.last += uint64(len(batch))
	l.publish()
	l.stats.batches.Add(1)
	l.stats.entries.Add(uint64(len(batch)))
	l.stats.bytes.Add(uint64(payloadBytes))
	release(batch, nil)
}

// encode frames the batch into c.twb, assigning dense seqs after c.last.
// The batch's last frame is marked flagCommitEnd: the batch is one write,
// and the committer begins the next only after this one's fsync, so
// recovery may cut damage behind which no mark is found (repair.go). When
// tidwall splits the batch over two segments, the part in the older one
// is unmarked; tidwall fsyncs that segment before creating the next, so
// a crash can tear only the part in the newer one, which ends in the
// mark. It returns the bytes tidwall will append to its tail and the
// payload bytes.
func (l *Log) encode(batch []*request) (entryBytes, payloadBytes int64) {
	l.c.twb.Clear()
	for i, r := range batch {
		r.seq = l.c.last + uint64(i) + 1
		var flags byte
		if i == len(batch)-1 {
			flags = flagCommitEnd
		}
		stored := r.payload
		if l.opts.CompressMin > 0 && len(r.payload) >= l.opts.CompressMin {
			var z bool
			if l.c.zbuf, z = deflate(l.c.zbuf[:0], r.payload, l.opts.CompressMin); z {
				stored, flags = l.c.zbuf, flags|flagZstd
			}
		}
		l.c.frame = appendFrameFlags(l.c.frame[:0], r.seq, flags, stored)
		l.c.twb.Write(r.seq, l.c.frame)
		entryBytes += int64(entrySize(len(stored)))
		payloadBytes += int64(len(r.payload))
	}
	return entryBytes, payloadBytes
}

// write hands c.twb to tidwall, then fsyncs the tail and, if tidwall may
// have started new segment files meanwhile, makes them durable. Any error
// fails the log.
func (l *Log) write(entryBytes int64) error {
	if err := vfs.NoteWrite(l.opts.FS, l.c.tail.path, int(entryBytes)); err != nil {
		return l.fail("write", err)
	}
	if err := l.tw.WriteBatch(&l.c.twb); err != nil {
		return l.fail("write", err)
	}
	l.c.tailBytes += entryBytes
	if l.c.tailBytes+cycleSlack < int64(l.opts.SegmentSize) {
		return l.syncTail()
	}
	return l.checkCycle()
}

// syncTail fsyncs the tail segment and reports its duration to OnSync.
func (l *Log) syncTail() error {
	start := time.Now()
	if err := l.sync.file(l.c.tailFile); err != nil {
		return l.fail("fsync", fmt.Errorf("%s: %w", l.c.tail.path, err))
	}
	if l.opts.OnSync != nil && !l.opts.NoSync {
		l.opts.OnSync(time.Since(start))
	}
	return nil
}

// checkCycle looks for segment files tidwall created since the last check.
// tidwall never fsyncs the directory when it cycles (possibly in the middle
// of a batch), so a crash could lose a whole new segment of acknowledged
// entries: fsync the directory before anything in them is acknowledged.
func (l *Log) checkCycle() error {
	segs, err := listSegments(l.opts.FS, l.opts.Dir)
	if err != nil {
		return l.fail("list segments", err)
	}
	l.c.created = l.c.created[:0]
	for _, s := range segs {
		if s.first > l.c.tail.first {
			l.c.created = append(l.c.created, s)
		}
	}
	if len(l.c.created) == 0 {
		if err := l.syncTail(); err != nil {
			return err
		}
	} else if err := l.syncNewSegments(); err != nil {
		return err
	}
	fi, err := l.c.tailFile.Stat()
	if err != nil {
		return l.fail("stat tail segment", err)
	}
	l.c.tailBytes = fi.Size()
	return nil
}

// syncNewSegments fsyncs the old tail, each of c.created and the
// directory, and makes the newest segment the tail.
func (l *Log) syncNewSegments() error {
	if err := l.syncTail(); err != nil {
		return err
	}
	for _, s := range l.c.created {
		f, err := l.opts.FS.OpenWrite(s.path)
		if err != nil {
			return l.fail("open new segment", err)
		}
		if err := l.c.tailFile.Close(); err != nil {
			// Synced above, so nothing is lost; say so all the same.
			l.opts.Logger.Warn("wal: closing a full segment failed after its fsync", "segment", l.c.tail.path, "err", err)
		}
		l.c.tail, l.c.tailFile = s, f
		if err := l.syncTail(); err != nil {
			return err
		}
	}
	if err := l.sync.dir(l.opts.Dir); err != nil {
		return l.fail("fsync directory", fmt.Errorf("%s: %w", l.opts.Dir, err))
	}
	if !l.opts.NoSync {
		l.stats.dirSyncs.Add(1)
	}
	// tidwall keeps the segment it cycled out in its cache; we never read
	// through tidwall, so free that memory. This cannot lose data.
	_ = l.tw.ClearCache()
	return nil
}

// publish makes c.last and any new segments visible to readers, together.
func (l *Log) publish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.segments = append(l.mu.segments, l.c.created...)
	l.c.created = l.c.created[:0]
	l.lastSeq.Store(l.c.last)
}

// release wakes the appenders of batch with err.
func release(batch []*request, err error) {
	for _, r := range batch {
		if err != nil {
			r.seq = 0
		}
		r.done <- err
	}
	clear(batch)
}
