package wal

import "fmt"

// TruncateFront removes, oldest first, the segment files whose entries
// all have a seq below before, and returns how many it removed and the
// seq the log then starts at. The last segment, which takes appends, is
// never removed, nor the segment holding the newest entry: tidwall starts
// a new, empty segment as soon as an append fills one, and a log cut down
// to that empty segment would have lost the entry its owner reads its
// state back from (engine.DB.AppliedPosition: cluster mode's Kafka
// offset). So the log keeps at least its newest entry.
//
// Crash safety: each file is removed and the removal made durable (a
// directory fsync) before the next one is touched, so after a crash or a
// power loss at any instant the directory holds a contiguous suffix of
// the segments it held, which Open reads as a log starting later; no
// entry at or after before is ever touched.
//
// Appends go on meanwhile. A Replay that began before the call may fail
// to open a removed file: callers truncate only what no reader needs.
func (l *Log) TruncateFront(before uint64) (removed int, first uint64, err error) {
	l.maint.Lock()
	defer l.maint.Unlock()
	segs, last, err := l.snapshot()
	if err != nil {
		return 0, 0, err
	}
	before = min(before, last) // keeps the segment holding last
	for i := 0; i+1 < len(segs) && segs[i+1].first <= before; i++ {
		if err := l.opts.FS.Remove(segs[i].path); err != nil {
			return removed, l.FirstSeq(), fmt.Errorf("wal: removing segment %s: %w", segs[i].path, err)
		}
		if err := l.sync.dir(l.opts.Dir); err != nil {
			return removed, l.FirstSeq(), l.fail("sync log directory after removing a segment", err)
		}
		l.mu.Lock()
		if len(l.mu.segments) > 1 && l.mu.segments[0].path == segs[i].path {
			l.mu.segments = l.mu.segments[1:]
		}
		l.mu.Unlock()
		removed++
	}
	return removed, l.FirstSeq(), nil
}
