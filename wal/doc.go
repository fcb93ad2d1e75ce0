// Package wal is featurelog's write-ahead log, which is also its offline
// event log. It stores opaque payloads under dense sequence numbers (seqs)
// starting at 1, and owns segment files, frames, checksums, group commit and
// repair. It knows nothing of records or schemas.
//
// # Basics
//
//	l, err := wal.Open(wal.Options{Dir: filepath.Join(dataDir, "wal")})
//	if err != nil {
//		return err // a *wal.CorruptionError names the damaged file and offset
//	}
//	defer l.Close()
//	if rep := l.Repair(); rep != nil {
//		// Open cut a torn tail off the last segment; rep.CopyPath keeps it.
//	}
//	seq, err := l.Append(payload) // returns once written and fsynced
//	if errors.Is(err, wal.ErrFailed) {
//		// durability unknown: stop serving writes and restart the node
//	}
//	err = l.Replay(fromSeq, func(seq uint64, payload []byte) error {
//		return apply(seq, payload) // payload is only valid during the call
//	})
//
// # Layout
//
// The log is a github.com/tidwall/wal log in Dir: segment files named after
// the seq of their first entry as 20 zero-padded decimal digits
// (00000000000000000001, 00000000000000004097, ...). A segment is a sequence
// of tidwall binary entries, a uvarint length followed by that many bytes.
// Each entry holds one frame of ours, so tidwall's index of an entry equals
// the seq in its frame:
//
//	segment file:  | uvarint len | frame | uvarint len | frame | ...
//
//	frame:
//	+-------+---------+-------+-------------+---------+---------+---------+
//	| magic | version | flags | payload len |   seq   |  crc32c | payload |
//	| FLWL  |    2    | 0..3  |  uint32 LE  | u64 LE  |  u32 LE |  len B  |
//	+-------+---------+-------+-------------+---------+---------+---------+
//	0       4         5       6             10        18        22
//
// The CRC-32C (Castagnoli) covers bytes [0, 18) and the payload: everything
// but itself. tidwall has no checksum of its own; zero bytes would parse as
// valid empty entries, which the frame rejects. Flag 1 marks a zstd payload,
// flag 2 the last frame of each write (below). Version 1 frames, written
// before that mark, are still read. docs/format/wal.md specifies the format.
//
// # Durability
//
// Append enqueues its payload for a single committer goroutine, which takes
// everything queued (up to Options.MaxBatchBytes), frames it, and writes it
// with one tidwall WriteBatch, then fsyncs the tail segment itself: one
// write and one fsync shared by all the waiting appenders. It marks the
// write's last frame (commit end) and starts the next write only after the
// fsync, so that a crash can tear only the last write. tidwall runs with
// its own fsync off, so that the fsync goes through Options.FS (the vfs
// interface), where tests inject failures and track durable bytes;
// tidwall still fsyncs each segment it fills. tidwall may start new
// segment files during a batch without fsyncing the directory; the
// committer detects that, fsyncs the new files and the directory before it
// acknowledges anything.
//
// Every file operation of the log but tidwall's own writes goes through
// Options.FS; tidwall's writes are announced to it first (vfs.NoteWrite),
// so a fault-injecting FS can fail them too.
//
// A write, fsync or directory fsync error fails the log for good: the batch's
// appenders and every later Append get an error wrapping ErrFailed, and Err
// reports it. The log never retries, because a retried fsync can succeed
// after the kernel dropped the data ("fsyncgate"). Restart to recover.
//
// # Rewriting
//
// Rewrite gives entries up to a seq new payloads, keeping their seqs (the
// engine erases deleted keys' records this way): each changed segment is
// written to <name>.rewrite, fsynced and renamed over the segment; Open
// removes a leftover temporary file. Seal first closes the tail segment
// if it holds such entries, so that only closed segments are rewritten.
// docs/format/wal.md, "Rewriting", states the protocol.
//
// # Recovery
//
// Open verifies the last two segments. If the last one ends in a torn or
// zero-filled tail (bad bytes behind which no frame of a later write is
// found: none at all, or only version 2 frames none of which follows a
// commit-end mark, which a crash during one write of several frames can
// leave), Open copies the segment to Dir/damaged/, cuts the tail off,
// fsyncs, logs it and reports it through Repair. Any other bad frame is a
// *CorruptionError, and nothing is changed. Older segments are verified by
// Replay as it reads them, and all of them by Verify; Open leaves them out
// so that its cost does not grow with the log.
//
// # Caveats
//
//   - An Append that returned an error may still be in the log after a
//     restart (it may have reached the disk before the error). Only the
//     seqs acknowledged before are guaranteed.
//   - tidwall keeps the tail segment in memory: memory use is about
//     Options.SegmentSize.
//   - Replay reads files, not memory: it is safe concurrently with Append
//     and sees exactly the entries durable when it was called.
//   - Only one Log may have a directory open; the caller locks it.
package wal
