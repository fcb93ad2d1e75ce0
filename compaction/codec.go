package compaction

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Codec is the compression of a segment's blocks. A segment names its codec
// in its header and footer (format version 2); version-1 segments are all
// zstd. Its values are the codec byte of the file: part of the on-disk
// format; do not change.
type Codec uint8

const (
	// CodecZstd compresses each block as one zstd frame (RFC 8878) with no
	// frame checksum. It makes the smaller files, at a higher cost to
	// decode and to encode.
	CodecZstd Codec = 1
	// CodecS2 compresses each block as one S2 block
	// (github.com/klauspost/compress/s2 block format, s2.Encode and
	// s2.Decode): the uvarint of the decoded length, then literals and
	// copies; no framing, no checksum. It decodes several times faster
	// than zstd and encodes cheaper, for bigger files.
	CodecS2 Codec = 2
)

// String returns the codec's name.
func (c Codec) String() string {
	switch c {
	case CodecZstd:
		return "zstd"
	case CodecS2:
		return "s2"
	}
	return fmt.Sprintf("Codec(%d)", uint8(c))
}

// ParseCodec returns the codec named name ("s2" or "zstd", as String
// prints them).
func ParseCodec(name string) (Codec, error) {
	for _, c := range []Codec{CodecS2, CodecZstd} {
		if name == c.String() {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown segment codec %q: use s2 (faster to write and read) or zstd (about 12%% smaller)", name)
}

// valid reports whether c is a known codec.
func (c Codec) valid() bool { return c == CodecZstd || c == CodecS2 }

// Expansion bounds: the most a valid block of each codec can decompress
// to, per compressed byte. A raw length in the index beyond its block's
// compressed length times the bound is corrupt, and refused before a reader
// allocates for it.
const (
	// maxZstdRatio: a zstd block of at most 128 KiB of output costs at least
	// a 3-byte header and 1 byte of content, so no frame decompresses to
	// more than 32768 times its size.
	maxZstdRatio = 1 << 15
	// maxS2Ratio: the densest S2 element is a repeat (a copy-1 tag of offset
	// 0) with a 3-byte length, 5 bytes making at most 2^24 + 2^16 + 3 bytes,
	// under 2^22 per byte; literals and other copies expand less.
	maxS2Ratio = 1 << 22
)

// maxRatio is the expansion bound of c's blocks.
func (c Codec) maxRatio() uint64 {
	if c == CodecS2 {
		return maxS2Ratio
	}
	return maxZstdRatio
}

// blockEncoder compresses the block raw into dst's storage (dst may be
// reallocated) and returns the compressed bytes.
type blockEncoder func(dst, raw []byte) []byte

// newBlockEncoder returns the encoder of opts.Codec (and opts.Level for
// zstd). opts has its defaults filled in and is valid.
func newBlockEncoder(opts *WriterOptions) (blockEncoder, error) {
	if opts.Codec == CodecS2 {
		// s2.Encode reuses dst when its capacity holds s2.MaxEncodedLen.
		return func(dst, raw []byte) []byte { return s2.Encode(dst[:0], raw) }, nil
	}
	enc, err := zstdEncoders[opts.Level]()
	if err != nil {
		return nil, fmt.Errorf("compaction: creating zstd encoder: %w", err)
	}
	return func(dst, raw []byte) []byte { return enc.EncodeAll(raw, dst[:0]) }, nil
}

// decodeSlack is the spare capacity past a block's raw length that dst
// must have for decompress: zstd's compressedBlockOverAlloc.
const decodeSlack = 16

// decompress decodes the block src of codec c, whose index entry promises
// rawLen decoded bytes, into dst (whose capacity the caller has made at
// least rawLen+decodeSlack). reason is set when src is corrupt; err when
// the codec could not be set up. Neither codec allocates beyond that.

func (c Codec) decompress(dst, src []byte, rawLen int) (data []byte, reason string, err error) {
	if c == CodecS2 {
		data, reason = decompressS2(dst, src, rawLen)
		return data, reason, nil
	}
	dec, err := zstdDecoder()
	if err != nil {
		return nil, "", fmt.Errorf("compaction: creating zstd decoder: %w", err)
	}
	// The decoder (WithDecodeAllCapLimit) refuses a frame whose declared
	// size exceeds cap(dst) and stops one zstd block (128 KiB) after output
	// passes it, so a frame cannot make it allocate much more than the raw
	// length the index promised. decodeSlack bytes past the raw length
	// let it use its 16-byte copies (klauspost/compress's
	// useSafeDecodeSync): with an exact fit it takes the bounds-exact
	// copies, 0.96 against 0.69 s of a 1M-row join's CPU.
	data, err = dec.DecodeAll(src, dst[:0:rawLen+decodeSlack])
	switch {
	case err != nil:
		return nil, reasonBlockDecompress + ": " + err.Error(), nil
	case len(data) != rawLen:
		return nil, reasonBlockRawLen, nil
	}
	return data, "", nil
}

// decompressS2 decodes the S2 block src into dst[:rawLen]. The block's
// leading decoded length must equal rawLen before anything is decoded, so
// s2.Decode writes into dst and never allocates; it fails unless the
// elements fill exactly that length.
func decompressS2(dst, src []byte, rawLen int) (data []byte, reason string) {
	n, err := s2.DecodedLen(src)
	switch {
	case err != nil:
		return nil, reasonBlockDecompress + ": " + err.Error()
	case n != rawLen:
		return nil, reasonBlockRawLen
	}
	data, err = s2.Decode(dst[:rawLen], src)
	if err != nil {
		return nil, reasonBlockDecompress + ": " + err.Error()
	}
	return data, ""
}

// The zstd codecs are created once per process and shared by every writer
// and reader: EncodeAll and DecodeAll are safe for concurrent use and keep
// their own pools of per-call state, so one of each per level is all that is
// needed. They are the package's only globals, and immutable once built. S2
// needs none: its block functions keep their state in pools of their own.
var (
	// zstdEncoders holds one lazily built encoder per zstd level; index by
	// the zstd.EncoderLevel (valid levels are 1 to 4).
	zstdEncoders = [...]func() (*zstd.Encoder, error){
		zstd.SpeedFastest:           zstdEncoderFor(zstd.SpeedFastest),
		zstd.SpeedDefault:           zstdEncoderFor(zstd.SpeedDefault),
		zstd.SpeedBetterCompression: zstdEncoderFor(zstd.SpeedBetterCompression),
		zstd.SpeedBestCompression:   zstdEncoderFor(zstd.SpeedBestCompression),
	}
	// zstdDecoder decompresses blocks. WithDecodeAllCapLimit makes
	// DecodeAll stop at cap(dst), which readers set to the raw length from
	// the index, so a corrupt frame cannot make it allocate more than that.
	zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
		return zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderMaxMemory(maxBlockRaw))
	})
)

// zstdEncoderFor returns a function building, once, the encoder of level l.
// Frames carry no zstd checksum: the CRC-32C in the index covers them.
func zstdEncoderFor(l zstd.EncoderLevel) func() (*zstd.Encoder, error) {
	return sync.OnceValues(func() (*zstd.Encoder, error) {
		return zstd.NewWriter(nil, zstd.WithEncoderLevel(l), zstd.WithEncoderCRC(false))
	})
}
