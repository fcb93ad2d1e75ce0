package wal

import (
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// Payloads of at least Options.CompressMin bytes are stored as one zstd
// frame (flagZstd) when that saves at least an eighth of their size: large
// ingest requests (hundreds of rows of similar records) shrink two to
// three times, small ones are not worth the CPU. The CRC covers the stored
// bytes, so damage is found before decompression is tried.

var (
	// encoder is used by the committer goroutine only (EncodeAll is safe
	// for concurrent use anyway). SpeedFastest: compression runs inside
	// the group commit, before the fsync.
	encoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithZeroFrames(true))
	// decoder bounds what a damaged or hostile frame can make it allocate.
	decoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxPlain))
)

// maxPlain bounds a decompressed payload: MaxBatchBytes is at most 4 GiB.
const maxPlain = 1 << 32

// minCompressed is the smallest payload deflate compresses, whatever
// Options.CompressMin says: klauspost/compress leaves the content size
// out of the frame header of smaller inputs, and inflate refuses frames
// that do not declare it (with CompressMin 1, 148-byte payloads were
// written that could not be read back).
const minCompressed = 256

// deflate appends the stored form of payload to dst and reports whether
// it is compressed.
func deflate(dst, payload []byte, min int) ([]byte, bool) {
	if min <= 0 || len(payload) < max(min, minCompressed) {
		return append(dst, payload...), false
	}
	start := len(dst)
	dst = encoder.EncodeAll(payload, dst)
	if len(dst)-start > len(payload)-len(payload)/8 {
		return append(dst[:start], payload...), false
	}
	return dst, true
}

// inflate appends the payload stored compressed in stored to dst.
// The frame must declare its size, at most limit (the largest payload the
// log accepts), so that a crafted frame cannot make it allocate gigabytes
// before failing; deflate's frames always declare it.
func inflate(dst, stored []byte, limit int) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(stored); err != nil {
		return nil, err
	}
	if !h.HasFCS || h.FrameContentSize > uint64(limit) {
		return nil, fmt.Errorf("zstd frame declares %d bytes (declared: %v); the limit is %d", h.FrameContentSize, h.HasFCS, limit)
	}
	return decoder.DecodeAll(stored, dst)
}
