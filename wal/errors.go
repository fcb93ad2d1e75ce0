package wal

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by Append and Replay once Close has been called.
var ErrClosed = errors.New("wal: log closed")

// ErrFailed is matched (with errors.Is) by every error of a log that has
// failed: a write, file fsync or directory fsync returned an error, so the
// kernel may have dropped data that an fsync retry would then wrongly report
// as durable (PostgreSQL's "fsyncgate"). The log refuses all further appends;
// restart the process so that Open re-reads what actually reached the disk.
var ErrFailed = errors.New("wal: log failed: a write or fsync error left durability unknown; restart the node")

// ErrTooLarge is returned by Append for a payload larger than
// Options.MaxBatchBytes. The log stays usable.
var ErrTooLarge = errors.New("wal: payload larger than Options.MaxBatchBytes")

// CorruptionError reports a frame that failed verification somewhere other
// than a repairable torn tail. Find it with errors.As. Nothing is modified
// when it is returned: inspect the file, restore it from a replica or backup,
// or move the damaged segment (and every later one) out of the directory.
type CorruptionError struct {
	// File is the path of the segment file holding the bad frame.
	File string
	// Offset is the byte offset in File of the tidwall entry (its uvarint
	// length prefix) that failed verification.
	Offset int64
	// Seq is the sequence number the entry at Offset should have had.
	Seq uint64
	// Reason says which check failed, e.g. "checksum mismatch".
	Reason string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("wal: corrupt segment %s at offset %d (expected seq %d): %s; "+
		"the file was left untouched: restore it from a replica or backup, or move it and all later segments aside",
		e.File, e.Offset, e.Seq, e.Reason)
}

// failure builds the sticky error of a failed log: it matches ErrFailed and
// the underlying cause with errors.Is.
func failure(op string, cause error) error {
	return fmt.Errorf("%w: %s: %w", ErrFailed, op, cause)
}
