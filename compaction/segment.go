package compaction

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/cespare/xxhash/v2"
)

// A segment file, sections in file order (docs/format/segment.md has the
// byte-level tables):
//
//	+--------+---------+-----+-----------+-------+--------+------+--------+
//	| header | block 0 | ... | block n-1 | index | bitmap | meta | footer |
//	|  8 B   |  S2 blocks or zstd frames |       |roaring | JSON |  88 B  |
//	+--------+---------+-----+-----------+-------+--------+------+--------+
//
//	header:  magic "FLSG" | version u8 | codec u8 | 2 zero bytes
//	block:   the codec's compression of: uvarint count, count × (uvarint
//	         klen, key, uvarint vlen, value), keys strictly increasing
//	index:   uvarint n, n × (uvarint len, first key, uvarint len, last key,
//	         uvarint offset, uvarint compressed len, uvarint raw len,
//	         uvarint count, u32 LE CRC-32C of the compressed block)
//	bitmap:  portable roaring serialization of KeyHash of every key
//	meta:    Meta as JSON
//	footer:  offset+length (u64 LE) of index, bitmap and meta; key count and
//	         raw bytes (u64 LE); CRC-32C (u32 LE) of index, bitmap and meta;
//	         version u8; codec u8; 2 zero bytes; CRC-32C of footer[0:80);
//	         magic "FLSG"
//
// Version 1 had no codec byte (it was reserved, zero) and zstd blocks;
// version 2 names the codec (CodecZstd or CodecS2) in the header and, under
// the footer's CRC, in the footer, and the two must agree. Readers accept
// both versions; writers write version 2.
//
// Every byte is checked: the header and the footer's magic and reserved bytes
// by value, each block by its CRC in the index, the index, bitmap and meta by
// their CRCs in the footer, and the rest of the footer by its own CRC.
const (
	// magic opens and closes every segment file. Part of the on-disk format;
	// do not change.
	magic = "FLSG"
	// formatVersion is the version written, in both the header and the
	// footer. Part of the on-disk format; do not change.
	formatVersion = 2
	// formatVersion1 is the first version, still read: zstd blocks and a
	// zero codec byte. Part of the on-disk format; do not change.
	formatVersion1 = 1
	// headerSize is the size of the header; the first block starts here.
	// Part of the on-disk format; do not change.
	headerSize = 8
	// footerSize is the size of the footer, the last bytes of the file.
	// Part of the on-disk format; do not change.
	footerSize = 88
)

// Field offsets within the header. Part of the on-disk format; do not
// change.
const (
	hdrVersion  = 4
	hdrCodec    = 5 // reserved, zero, in version 1
	hdrReserved = 6 // 2 bytes, zero
)

// Field offsets within the footer. Part of the on-disk format; do not change.
const (
	ftIndexOff  = 0
	ftIndexLen  = 8
	ftBitmapOff = 16
	ftBitmapLen = 24
	ftMetaOff   = 32
	ftMetaLen   = 40
	ftKeys      = 48
	ftRawBytes  = 56
	ftIndexCRC  = 64
	ftBitmapCRC = 68
	ftMetaCRC   = 72
	ftVersion   = 76
	ftCodec     = 77 // reserved, zero, in version 1
	ftReserved  = 78 // 2 bytes, zero
	ftCRC       = 80 // CRC-32C of footer[0:ftCRC)
	ftMagic     = 84
)

// format is what a segment's header and footer both state: the format
// version and the block codec.
type format struct {
	// version is formatVersion1 or formatVersion.
	version uint8
	// codec compresses the blocks; always CodecZstd in version 1.
	codec Codec
}

// currentFormat is the format a Writer of codec c writes.
func currentFormat(c Codec) format { return format{version: formatVersion, codec: c} }

// codecByte is the byte that stores f.codec: 0 in version 1, where it was
// reserved.
func (f format) codecByte() byte {
	if f.version == formatVersion1 {
		return 0
	}
	return byte(f.codec)
}

// parseFormat decodes the version and codec bytes of a header or a footer.
// reason is empty on success.
func parseFormat(version, codec byte) (f format, reason string) {
	switch {
	case version == formatVersion1 && codec == 0:
		return format{version: formatVersion1, codec: CodecZstd}, ""
	case version == formatVersion1:
		return f, reasonReserved
	case version != formatVersion:
		return f, reasonVersion
	case !Codec(codec).valid():
		return f, reasonCodec
	}
	return format{version: version, codec: Codec(codec)}, ""
}

// Limits that bound every allocation the reader makes from a length field.
const (
	// MaxEntrySize is the largest len(key)+len(value) that Writer.Add
	// accepts. It bounds the uncompressed size of a block, which is what a
	// reader allocates to decompress one.
	MaxEntrySize = 1 << 30
	// maxBlockRaw is the largest uncompressed block a reader accepts: one
	// entry of MaxEntrySize plus its two length varints and the count
	// varint. Blocks of several entries are at most BlockSize (≤
	// MaxEntrySize) plus the count varint.
	maxBlockRaw = MaxEntrySize + 3*binary.MaxVarintLen64
	// minIndexEntry is the smallest encoding of an index entry: six
	// one-byte varints (empty keys) and the 4-byte CRC. It bounds the block
	// count a reader believes before allocating the block table.
	minIndexEntry = 6 + 4
)

// crcTable is the Castagnoli polynomial, hardware-accelerated on amd64 and
// arm64. Part of the on-disk format; do not change.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// checksum is the CRC-32C of b.
func checksum(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

// Meta is a segment's self-description, stored in the file as JSON. The
// package never interprets it: it is for the engine, and for an operator
// looking at a file (featurelog can print it) to know what it holds. The
// JSON names are part of the on-disk format; do not change them.
type Meta struct {
	// Kind says what the values are, e.g. "tiles" or "attributes".
	Kind string `json:"kind"`
	// Workspace is the workspace of the view the segment belongs to.
	Workspace string `json:"workspace"`
	// View is the feature view the segment belongs to.
	View string `json:"view"`
	// Version is the view's version: a segment of an older version is
	// garbage once the view is re-applied.
	Version int `json:"version"`
	// Fingerprint identifies the view definition the values were computed
	// with.
	Fingerprint string `json:"fingerprint"`
	// MinSeq and MaxSeq bound the log sequence numbers whose events the
	// segment holds (inclusive).
	MinSeq uint64 `json:"min_seq"`
	MaxSeq uint64 `json:"max_seq"`
	// Level is 0 for a segment flushed from memory and n+1 for a merge of
	// level-n segments. Informative only: nothing in this package uses it.
	Level int `json:"level"`
}

// KeyHash is the 32-bit hash of a key stored in a segment's bitmap: the low
// 32 bits of XXH64 with seed 0 (github.com/cespare/xxhash/v2 Sum64). Part of
// the on-disk format; do not change: the bitmaps of existing files were
// built with it, and a different hash would make MayContain wrongly report
// their keys absent.
func KeyHash(key []byte) uint32 { return uint32(xxhash.Sum64(key)) }

// blockHandle is a block's entry in the index, as held by an open Reader.
type blockHandle struct {
	// first and last are the block's first and last keys. They point into
	// the Reader's copy of the index and must not be modified.
	first, last []byte
	// off is the file offset of the compressed block.
	off int64
	// compLen is the size of the compressed block; rawLen the size it
	// decompresses to, in (0, maxBlockRaw] and at most compLen times its
	// codec's expansion bound.
	compLen, rawLen int
	// count is the number of entries in the block, at least 1.
	count int
	// crc is the CRC-32C of the compressed bytes.
	crc uint32
}

// appendIndexEntry appends the index encoding of h to dst.
func appendIndexEntry(dst []byte, h *blockHandle) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(h.first)))
	dst = append(dst, h.first...)
	dst = binary.AppendUvarint(dst, uint64(len(h.last)))
	dst = append(dst, h.last...)
	dst = binary.AppendUvarint(dst, uint64(h.off))
	dst = binary.AppendUvarint(dst, uint64(h.compLen))
	dst = binary.AppendUvarint(dst, uint64(h.rawLen))
	dst = binary.AppendUvarint(dst, uint64(h.count))
	return binary.LittleEndian.AppendUint32(dst, h.crc)
}

// footer is the decoded footer.
type footer struct {
	// indexOff/Len, bitmapOff/Len and metaOff/Len locate the three sections
	// after the blocks.
	indexOff, indexLen   uint64
	bitmapOff, bitmapLen uint64
	metaOff, metaLen     uint64
	// keys is the number of entries in the segment.
	keys uint64
	// rawBytes is the sum of len(key)+len(value) over all entries.
	rawBytes uint64
	// indexCRC, bitmapCRC and metaCRC are the CRC-32C of the sections.
	indexCRC, bitmapCRC, metaCRC uint32
	// format is the version and codec; the header must state the same.
	format format
}

// appendFooter appends the encoding of f to dst.
func appendFooter(dst []byte, f *footer) []byte {
	start := len(dst)
	for _, v := range []uint64{f.indexOff, f.indexLen, f.bitmapOff, f.bitmapLen,
		f.metaOff, f.metaLen, f.keys, f.rawBytes} {
		dst = binary.LittleEndian.AppendUint64(dst, v)
	}
	for _, v := range []uint32{f.indexCRC, f.bitmapCRC, f.metaCRC} {
		dst = binary.LittleEndian.AppendUint32(dst, v)
	}
	dst = append(dst, f.format.version, f.format.codecByte(), 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, checksum(dst[start:]))
	return append(dst, magic...)
}

// decodeFooter verifies b, the last footerSize bytes of a file, and decodes
// it. reason is empty on success.
func decodeFooter(b []byte) (f footer, reason string) {
	switch {
	case string(b[ftMagic:]) != magic:
		return f, reasonFooterMagic
	case checksum(b[:ftCRC]) != binary.LittleEndian.Uint32(b[ftCRC:]):
		return f, reasonFooterCRC
	}
	if f.format, reason = parseFormat(b[ftVersion], b[ftCodec]); reason != "" {
		return f, reason
	}
	if b[ftReserved] != 0 || b[ftReserved+1] != 0 {
		return f, reasonReserved
	}
	u64 := func(off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
	return footer{
		indexOff: u64(ftIndexOff), indexLen: u64(ftIndexLen),
		bitmapOff: u64(ftBitmapOff), bitmapLen: u64(ftBitmapLen),
		metaOff: u64(ftMetaOff), metaLen: u64(ftMetaLen),
		keys: u64(ftKeys), rawBytes: u64(ftRawBytes),
		indexCRC: u32(ftIndexCRC), bitmapCRC: u32(ftBitmapCRC), metaCRC: u32(ftMetaCRC),
		format: f.format,
	}, ""
}

// appendHeader appends the header of a file of format f to dst.
func appendHeader(dst []byte, f format) []byte {
	return append(append(dst, magic...), f.version, f.codecByte(), 0, 0)
}

// checkHeader verifies the file header b against the format the footer
// states. The header has no checksum: its every byte is checked by value.
// reason is empty on success.
func checkHeader(b []byte, want format) (reason string) {
	if string(b[:len(magic)]) != magic {
		return reasonHeaderMagic
	}
	f, reason := parseFormat(b[hdrVersion], b[hdrCodec])
	switch {
	case reason != "":
		return reason
	case b[hdrReserved] != 0 || b[hdrReserved+1] != 0:
		return reasonReserved
	case f != want:
		return reasonFormatMismatch
	}
	return ""
}
