package compaction

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by the reads of a Reader (and of its iterators) once
// Close has been called. Use a Handle to keep a Reader open while it is read.
var ErrClosed = errors.New("compaction: segment closed")

// ErrWriterClosed is returned by Add and Finish after Finish or Abort.
var ErrWriterClosed = errors.New("compaction: segment writer already finished or aborted")

// ErrKeyOrder is returned by Writer.Add for a key that is not strictly
// greater than the previous one. The entry is not added and the writer stays
// usable: segments hold one entry per key, in bytewise order, so the caller
// must sort and deduplicate before adding.
var ErrKeyOrder = errors.New("compaction: keys must be added in strictly increasing bytewise order")

// ErrEntryTooLarge is returned by Writer.Add for an entry whose key and value
// together exceed MaxEntrySize. The entry is not added; the writer stays
// usable.
var ErrEntryTooLarge = errors.New("compaction: entry larger than MaxEntrySize")

// CorruptionError reports a segment file that failed verification: bad magic
// or version, a checksum mismatch, a truncated file, an index pointing
// outside the file, keys out of order, an undecodable bitmap or meta. Find
// it with errors.As. Segments are derived data: the file cannot be repaired,
// but it can be rebuilt from the event log (if the log still holds its
// Meta.MinSeq..MaxSeq) or restored from a backup.
type CorruptionError struct {
	// Path is the segment file's path.
	Path string
	// Offset is the file offset of the section or block that failed
	// verification (the footer's offset for a bad footer).
	Offset int64
	// Reason says which check failed, e.g. "block checksum mismatch".
	Reason string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("compaction: corrupt segment %s at offset %d: %s; "+
		"do not use the file: move it aside and rebuild it from the event log or restore it from a backup",
		e.Path, e.Offset, e.Reason)
}

// Reasons a segment fails verification; they end up in
// CorruptionError.Reason.
const (
	reasonTooShort        = "file shorter than a header and a footer"
	reasonFooterMagic     = "bad footer magic (not a segment, or truncated)"
	reasonFooterCRC       = "footer checksum mismatch"
	reasonHeaderMagic     = "bad header magic"
	reasonVersion         = "unsupported format version"
	reasonCodec           = "unknown block codec"
	reasonFormatMismatch  = "header and footer disagree on the format version or block codec"
	reasonReserved        = "reserved bytes are not zero"
	reasonLayout          = "footer section offsets or lengths disagree with the file size"
	reasonIndexCRC        = "index checksum mismatch"
	reasonBitmapCRC       = "bitmap checksum mismatch"
	reasonMetaCRC         = "meta checksum mismatch"
	reasonIndexFormat     = "malformed index entry"
	reasonIndexCount      = "index block count out of range"
	reasonIndexTrail      = "trailing bytes after the index"
	reasonBlockOffset     = "index block offset or length out of range"
	reasonBlockSizes      = "index block sizes or entry count out of range"
	reasonIndexOrder      = "index keys out of order"
	reasonKeyCount        = "footer key count or raw bytes disagree with the index"
	reasonBitmap          = "undecodable bitmap"
	reasonBitmapCard      = "bitmap cardinality disagrees with the key count"
	reasonMeta            = "undecodable meta JSON"
	reasonShortRead       = "read past the end of the file (truncated while open?)"
	reasonBlockCRC        = "block checksum mismatch"
	reasonBlockDecompress = "block does not decompress"
	reasonBlockRawLen     = "decompressed block size disagrees with the index"
	reasonBlockFormat     = "malformed block entry"
	reasonBlockCount      = "block entry count disagrees with the index"
	reasonBlockOrder      = "block keys out of order"
	reasonBlockBounds     = "block first or last key disagrees with the index"
	reasonBlockTrailer    = "trailing bytes after the last entry of a block"
)

// corrupt builds the CorruptionError of path at off.
func corrupt(path string, off int64, reason string) error {
	return &CorruptionError{Path: path, Offset: off, Reason: reason}
}
