package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
)

// ErrTruncated is returned by Reader.Next when the entry it must read next
// was removed by TruncateFront. Find it with errors.Is.
var ErrTruncated = errors.New("wal: the entry was removed by truncation")

// Reader reads the log's entries in seq order, keeping its place in the
// segment file between calls, so that following the log's tail costs
// each entry once (Replay re-reads its first segment from the start). It
// verifies every frame it reads, as Replay does. A Reader is not safe for
// concurrent use; any number of Readers may run beside Append, Rewrite
// and TruncateFront.
//
// A Reader keeps its segment file open. A segment that Rewrite replaces
// meanwhile is read to its end as it was when the Reader reached it; a
// segment TruncateFront removes after the Reader opened it is read to its
// end too. Either way the Reader never sees a torn or mixed file.
type Reader struct {
	l   *Log
	r   segmentReader
	seg segment // the segment r reads; path "" before the first read
	// last is the seg's last seq when a later segment exists, or 0 while
	// seg is the tail (it may grow).
	last uint64
	next uint64 // seq of the entry Next returns next
}

// NewReader returns a Reader whose first entry is the one at seq from
// (at least 1).
func (l *Log) NewReader(from uint64) *Reader {
	return &Reader{l: l, r: segmentReader{fs: l.opts.FS, maxPlain: l.opts.MaxBatchBytes}, next: max(from, 1)}
}

// Close releases the Reader's open file.
func (r *Reader) Close() { r.r.close() }

// NextSeq returns the seq of the entry Next returns next.
func (r *Reader) NextSeq() uint64 { return r.next }

// Next returns the next entry if its seq is at most upTo and at most the
// log's LastSeq, or io.EOF. It returns ErrTruncated if the entry was
// removed by TruncateFront, ErrClosed once the log is closed, and a
// *CorruptionError for a frame that fails verification. payload is valid
// until the next call.
func (r *Reader) Next(upTo uint64) (seq uint64, payload []byte, err error) {
	if r.next > min(upTo, r.l.LastSeq()) {
		return 0, nil, io.EOF
	}
	if r.seg.path == "" || (r.last != 0 && r.next > r.last) {
		if err := r.open(); err != nil {
			return 0, nil, err
		}
	}
	payload, err = r.r.frame(r.next)
	if r.last == 0 && shortRead(err) {
		// The tail grew after it was opened, or a later segment began:
		// the entry is logged (next ≤ LastSeq), so look again.
		if payload, err = r.reread(); err != nil {
			return 0, nil, err
		}
	}
	if err != nil {
		return 0, nil, err
	}
	seq = r.next
	r.next++
	return seq, payload, nil
}

// shortRead reports whether err says that the file ended before the
// entry: nothing was consumed, and a longer file may hold it.
func shortRead(err error) bool {
	var ce *CorruptionError
	return errors.As(err, &ce) && (ce.Reason == reasonMissing || ce.Reason == reasonTruncated)
}

// reread retries the entry r.next of the tail segment after the file
// grew, or in the next segment if the tail was sealed.
func (r *Reader) reread() ([]byte, error) {
	if err := r.r.grow(); err != nil {
		return nil, fmt.Errorf("wal: read %s: %w", r.seg.path, err)
	}
	payload, err := r.r.frame(r.next)
	if !shortRead(err) {
		return payload, err
	}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r.r.frame(r.next)
}

// open positions r.r at entry r.next, in the segment that holds it.
func (r *Reader) open() error {
	segs, last, err := r.l.snapshot()
	if err != nil {
		return err
	}
	if len(segs) == 0 || r.next < segs[0].first {
		return ErrTruncated
	}
	i := max(sort.Search(len(segs), func(i int) bool { return segs[i].first > r.next })-1, 0)
	r.seg, r.last = segs[i], 0
	if i+1 < len(segs) && segs[i+1].first-1 <= last {
		r.last = segs[i+1].first - 1
	}
	if err := r.r.reset(r.seg.path); err != nil {
		if errors.Is(err, fs.ErrNotExist) && r.next < r.l.FirstSeq() {
			return ErrTruncated
		}
		return fmt.Errorf("wal: open segment: %w", err)
	}
	for seq := r.seg.first; seq < r.next; seq++ {
		if _, err := r.r.frame(seq); err != nil {
			return err
		}
	}
	return nil
}

// grow extends the bytes the reader may read to the file's current size:
// the tail segment grows while it is read.
func (s *segmentReader) grow() error {
	fi, err := s.f.Stat()
	if err != nil {
		return err
	}
	s.size = max(s.size, fi.Size())
	return nil
}
