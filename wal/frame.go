package wal

import (
	"encoding/binary"
	"hash/crc32"
	"math"
)

// The frame wrapped around every payload, inside one tidwall entry:
//
//	+-------+---------+-------+-------------+---------+---------+---------+
//	| magic | version | flags | payload len |   seq   |  crc32c | payload |
//	|  4 B  |   1 B   |  1 B  |  uint32 LE  | u64 LE  |  u32 LE |  len B  |
//	+-------+---------+-------+-------------+---------+---------+---------+
//	0       4         5       6             10        18        22
//
// The CRC is CRC-32C (Castagnoli) of bytes [0, 18) followed by the payload:
// everything but the CRC itself. Version 2 frames (written) mark the last
// frame of every write with flagCommitEnd, so that recovery can tell a
// write torn by a crash from damage to one that was fsynced; version 1
// frames (read only) carry no such mark. See docs/format/wal.md.
const (
	// frameMagic opens every frame. Part of the on-disk format; do not change.
	frameMagic = "FLWL"
	// frameVersion is the version written: version 2 frames mark where
	// each write ends (flagCommitEnd). Readers also accept frameVersionV1,
	// written before the marks existed: a log of version 1 frames says
	// nothing about where its writes end. Part of the on-disk format; do
	// not change.
	frameVersion   = 2
	frameVersionV1 = 1
	// Field offsets and header size. Part of the on-disk format; do not change.
	offVersion = 4
	offFlags   = 5
	offLength  = 6
	offSeq     = 10
	offCRC     = 18
	headerSize = 22
	// maxPayload is the largest length the frame can describe.
	maxPayload = math.MaxUint32
	// flagZstd marks a payload stored zstd-compressed (one zstd frame);
	// length and CRC are of the stored bytes. Part of the on-disk format;
	// do not change.
	flagZstd = 1 << 0
	// flagCommitEnd marks the last frame of a write (one group commit,
	// one write and one fsync): frames behind it in the file belong to a
	// later write, begun only after this one was fsynced. Version 2 only.
	// Part of the on-disk format; do not change.
	flagCommitEnd = 1 << 1
	// knownFlags are the flags each version reads.
	knownFlagsV1 = flagZstd
	knownFlags   = flagZstd | flagCommitEnd
)

// crcTable is the Castagnoli polynomial, hardware-accelerated on amd64 and
// arm64. Part of the on-disk format; do not change.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Reasons a frame or entry fails verification; they end up in
// CorruptionError.Reason. Constant strings keep the hot path allocation free.
const (
	reasonTruncated   = "entry extends past the end of the file (torn write)"
	reasonBadVarint   = "invalid entry length prefix"
	reasonShortFrame  = "entry shorter than a frame header"
	reasonBadMagic    = "bad frame magic"
	reasonBadVersion  = "unsupported frame version"
	reasonBadFlags    = "unknown frame flags"
	reasonBadLength   = "frame payload length disagrees with entry length"
	reasonBadSeq      = "frame seq is not the next seq"
	reasonBadChecksum = "checksum mismatch"
	reasonBadZstd     = "compressed payload does not decompress"
)

// appendFrame appends the (version 2) frame of payload with sequence
// number seq to dst, with no flags.
func appendFrame(dst []byte, seq uint64, payload []byte) []byte {
	return appendFrameFlags(dst, seq, 0, payload)
}

// appendFrameFlags is appendFrame with the header's flags set; stored is
// the payload as stored (compressed when flags has flagZstd).
func appendFrameFlags(dst []byte, seq uint64, flags byte, stored []byte) []byte {
	return appendFrameVersion(dst, frameVersion, seq, flags, stored)
}

// appendFrameVersion is appendFrameFlags with the header's version set:
// a rewrite keeps an entry's version. The header is built in place in
// dst: a local array would escape to the heap through crc32.Update and
// cost an allocation per append.
func appendFrameVersion(dst []byte, version byte, seq uint64, flags byte, stored []byte) []byte {
	payload := stored
	start := len(dst)
	dst = append(dst, frameMagic...)
	dst = append(dst, version, flags)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	crc := crc32.Update(crc32.Update(0, crcTable, dst[start:]), crcTable, payload)
	dst = binary.LittleEndian.AppendUint32(dst, crc)
	return append(dst, payload...)
}

// frameSize is the size of the frame of an n-byte payload.
func frameSize(n int) int { return headerSize + n }

// entrySize is the size of the tidwall entry holding the frame of an n-byte
// payload: tidwall prefixes each entry with its uvarint length.
func entrySize(n int) int {
	f := frameSize(n)
	var tmp [binary.MaxVarintLen64]byte
	return binary.PutUvarint(tmp[:], uint64(f)) + f
}

// decodeFrame verifies frame (one tidwall entry's bytes) and returns its
// payload. reason is empty on success. wantSeq is checked after the CRC so
// that a damaged seq is reported as the damage it is.
func decodeFrame(frame []byte, wantSeq uint64) (payload []byte, reason string) {
	seq, payload, reason := parseFrame(frame)
	if reason == "" && seq != wantSeq {
		return nil, reasonBadSeq
	}
	return payload, reason
}

// parseFrame verifies everything in frame but its seq, which it returns.
func parseFrame(frame []byte) (seq uint64, payload []byte, reason string) {
	switch {
	case len(frame) < headerSize:
		return 0, nil, reasonShortFrame
	case string(frame[:offVersion]) != frameMagic:
		return 0, nil, reasonBadMagic
	case frame[offVersion] != frameVersion && frame[offVersion] != frameVersionV1:
		return 0, nil, reasonBadVersion
	case frame[offFlags]&^flagsOf(frame[offVersion]) != 0:
		return 0, nil, reasonBadFlags
	case uint64(binary.LittleEndian.Uint32(frame[offLength:])) != uint64(len(frame)-headerSize):
		return 0, nil, reasonBadLength
	}
	payload = frame[headerSize:]
	crc := crc32.Update(crc32.Update(0, crcTable, frame[:offCRC]), crcTable, payload)
	if crc != binary.LittleEndian.Uint32(frame[offCRC:]) {
		return 0, nil, reasonBadChecksum
	}
	return binary.LittleEndian.Uint64(frame[offSeq:]), payload, ""
}

// flagsOf returns the flags a frame of version v may carry.
func flagsOf(v byte) byte {
	if v == frameVersionV1 {
		return knownFlagsV1
	}
	return knownFlags
}

// compressed reports whether a verified frame's payload is stored
// zstd-compressed.
func compressed(frame []byte) bool { return frame[offFlags]&flagZstd != 0 }

// commitEnd reports whether a verified frame is the last of its write.
func commitEnd(frame []byte) bool { return frame[offFlags]&flagCommitEnd != 0 }

// marked reports whether a verified frame's writer marked where its writes
// end (version 2), so that a frame of it without flagCommitEnd is followed
// by more frames of the same write.
func marked(frame []byte) bool { return frame[offVersion] == frameVersion }

// entryStatus is the outcome of splitting one tidwall entry off a buffer.
type entryStatus int

const (
	entryOK    entryStatus = iota
	entryShort             // the buffer ends inside the entry
	entryBad               // the length prefix is malformed
)

// splitEntry splits the tidwall binary entry (uvarint length + bytes) at the
// start of b. On entryOK, body is the entry's bytes and n the bytes consumed.
func splitEntry(b []byte) (body []byte, n int, st entryStatus) {
	size, k := binary.Uvarint(b)
	switch {
	case k == 0:
		return nil, 0, entryShort
	case k < 0:
		return nil, 0, entryBad
	case size > uint64(len(b)-k):
		return nil, 0, entryShort
	}
	return b[k : k+int(size)], k + int(size), entryOK
}
