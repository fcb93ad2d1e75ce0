package wal

import (
	"fmt"
	"io"
	"slices"
	"sort"
)

// reasonMissing explains a segment that ends before the seq at which the
// next segment starts.
const reasonMissing = "segment ends before the seq the next segment starts at (entries missing)"

// reasonTrailing explains bytes after the last entry of a full segment.
const reasonTrailing = "data after the last entry of a completed segment"

// Replay calls fn, in seq order, for every entry with from <= seq <=
// LastSeq() as of the call. It reads the segment files directly (never
// through tidwall, whose concurrent reads race, its issue #34), verifies
// every frame it reads, including those before from in the first segment
// read, and returns a *CorruptionError at the first bad one. It is safe to
// call concurrently with Append and with other Replays. payload is valid
// only during fn; an error from fn stops Replay and is returned as is.
func (l *Log) Replay(from uint64, fn func(seq uint64, payload []byte) error) error {
	segs, last, err := l.snapshot()
	if err != nil {
		return err
	}
	from = max(from, 1)
	if from > last {
		return nil
	}
	// Start at the last segment beginning at or before from.
	i := max(sort.Search(len(segs), func(i int) bool { return segs[i].first > from })-1, 0)
	r := segmentReader{fs: l.opts.FS, maxPlain: l.opts.MaxBatchBytes}
	defer r.close()
	for ; i < len(segs) && segs[i].first <= last; i++ {
		end, whole := last, false
		if i+1 < len(segs) && segs[i+1].first-1 <= last {
			end, whole = segs[i+1].first-1, true
		}
		if err := r.replay(segs[i], from, end, whole, fn); err != nil {
			return err
		}
	}
	return nil
}

// snapshot returns the segments and the last seq, consistent with each
// other, or ErrClosed.
func (l *Log) snapshot() ([]segment, uint64, error) {
	if l.isClosed() {
		return nil, 0, ErrClosed
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.mu.segments), l.lastSeq.Load(), nil
}

// replay reads seg's entries seg.first..end, verifying each, and calls fn
// for those at or after from. If whole, seg must end right after end.
func (r *segmentReader) replay(seg segment, from, end uint64, whole bool,
	fn func(seq uint64, payload []byte) error) error {
	if err := r.reset(seg.path); err != nil {
		return fmt.Errorf("wal: open segment: %w", err)
	}
	for seq := seg.first; seq <= end; seq++ {
		payload, err := r.frame(seq)
		if err != nil {
			return err
		}
		if seq >= from {
			if err := fn(seq, payload); err != nil {
				return err
			}
		}
	}
	if whole {
		return r.atEnd(end + 1)
	}
	return nil
}

// frame reads and verifies the entry that must hold seq.
func (r *segmentReader) frame(seq uint64) ([]byte, error) {
	body, off, reason, err := r.next()
	switch {
	case err == io.EOF:
		reason = reasonMissing
	case err != nil:
		return nil, fmt.Errorf("wal: read %s: %w", r.path, err)
	case reason == "":
		var payload []byte
		if payload, reason = decodeFrame(body, seq); reason == "" {
			r.version, r.flags = body[offVersion], body[offFlags]
		}
		if reason == "" && !compressed(body) {
			return payload, nil
		}
		if reason == "" {
			if r.plain, err = inflate(r.plain[:0], payload, r.maxPayload()); err == nil {
				return r.plain, nil
			}
			reason = reasonBadZstd
		}
	}
	return nil, &CorruptionError{File: r.path, Offset: off, Seq: seq, Reason: reason}
}

// atEnd checks that nothing follows the last entry of a full segment.
func (r *segmentReader) atEnd(next uint64) error {
	_, off, _, err := r.next()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("wal: read %s: %w", r.path, err)
	}
	return &CorruptionError{File: r.path, Offset: off, Seq: next, Reason: reasonTrailing}
}

// Verify reads and verifies every entry of the log, returning a
// *CorruptionError at the first bad one. Open only verifies the last two
// segments, to keep its cost independent of the log's size; call Verify
// for a full check (it costs one Replay of the whole log).
func (l *Log) Verify() error {
	return l.Replay(0, func(uint64, []byte) error { return nil })
}
