package compaction

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkDamaged opens the (possibly damaged) segment at path, scans it and
// looks up every getStride-th key of entries, the segment's original
// content. Any error must be a *CorruptionError; any data returned must be
// the original. It reports whether the damage was detected.
func checkDamaged(t *testing.T, path string, entries []kv, getStride int) (detected bool) {
	t.Helper()
	var ce *CorruptionError
	r, err := Open(path)
	if err != nil {
		require.ErrorAs(t, err, &ce)
		return true
	}
	defer r.Close()
	require.Equal(t, len(entries), r.Keys(), "key count of a segment that opened")
	require.Equal(t, testMeta, r.Meta(), "meta of a segment that opened")

	got, err := scan(r)
	if err != nil {
		require.ErrorAs(t, err, &ce)
		detected = true
		require.LessOrEqual(t, len(got), len(entries))
		entries := entries[:len(got)] // what came before the error is right
		requireSameEntries(t, entries, got)
	} else {
		requireSameEntries(t, entries, got)
	}
	for i := 0; i < len(entries); i += getStride {
		e := entries[i]
		v, ok, err := r.Get(e.key)
		if err != nil {
			require.ErrorAs(t, err, &ce)
			detected = true
			continue
		}
		require.True(t, ok, "Get(%q) of a present key", e.key)
		require.Equal(t, e.value, v)
	}
	return detected
}

// smallSegments are segments small enough to damage at every byte.
func smallSegments(t *testing.T) map[string][]kv {
	rng := rand.New(rand.NewPCG(21, 22))
	return map[string][]kv{
		"empty":      nil,
		"one_key":    {{[]byte("key"), []byte("value")}},
		"many_keys":  randomEntries(rng, 40, 100),
		"empty_vals": {{[]byte(""), []byte{}}, {[]byte("a"), []byte{}}},
	}
}

// damageFile is a copy of a segment that tests damage in place: rewriting
// a whole file per case is slow on some file systems.
type damageFile struct {
	path string
	f    *os.File
	orig []byte
}

// newDamageFile copies the segment at src to a new file.
func newDamageFile(t *testing.T, src string) *damageFile {
	orig, err := os.ReadFile(src)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "damaged")
	require.NoError(t, os.WriteFile(path, orig, 0o644))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return &damageFile{path: path, f: f, orig: orig}
}

// xor sets the byte at off to its original value xor mask (0 restores it).
func (d *damageFile) xor(t *testing.T, off int, mask byte) {
	_, err := d.f.WriteAt([]byte{d.orig[off] ^ mask}, int64(off))
	require.NoError(t, err)
}

// TestFlipEveryByte damages each byte of small segments in turn, with a
// single-bit and an all-bits flip: every flip must be detected (every byte
// is covered by a checksum or a check of its value), and nothing wrong may
// be returned before it is.
func TestFlipEveryByte(t *testing.T) {
	for name, entries := range codecCases(smallSegments(t)) {
		t.Run(name, func(t *testing.T) {
			d := newDamageFile(t, writeSegment(t, entries.entries, WriterOptions{BlockSize: 64, Codec: entries.codec}))
			for off := range d.orig {
				for _, mask := range []byte{0x01, 0xff} {
					d.xor(t, off, mask)
					if !checkDamaged(t, d.path, entries.entries, 1) {
						t.Fatalf("flip %#x at offset %d of %d not detected", mask, off, len(d.orig))
					}
				}
				d.xor(t, off, 0)
			}
		})
	}
}

// TestTruncateAtEveryLength cuts small segments at every length, and
// appends garbage: Open must refuse them all.
func TestTruncateAtEveryLength(t *testing.T) {
	for name, c := range codecCases(smallSegments(t)) {
		t.Run(name, func(t *testing.T) {
			d := newDamageFile(t, writeSegment(t, c.entries, WriterOptions{BlockSize: 64, Codec: c.codec}))
			var ce *CorruptionError
			for _, extra := range [][]byte{{0}, []byte(magic), d.orig[len(d.orig)-footerSize:]} {
				_, err := d.f.WriteAt(extra, int64(len(d.orig)))
				require.NoError(t, err)
				_, err = Open(d.path)
				require.ErrorAs(t, err, &ce, "with %d bytes appended", len(extra))
				require.NoError(t, d.f.Truncate(int64(len(d.orig))))
			}
			for n := len(d.orig) - 1; n >= 0; n-- {
				require.NoError(t, d.f.Truncate(int64(n)))
				_, err := Open(d.path)
				require.ErrorAs(t, err, &ce, "truncated to %d of %d bytes", n, len(d.orig))
			}
		})
	}
}

// TestFlipStrideOfLargeSegment damages a large segment at a stride of
// offsets, and at every byte of its tail (index, bitmap, meta, footer).
func TestFlipStrideOfLargeSegment(t *testing.T) {
	entries := randomEntries(rand.New(rand.NewPCG(23, 24)), 2000, DefaultBlockSize+1)
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			d := newDamageFile(t, writeSegment(t, entries, WriterOptions{Codec: codec}))
			stride := len(d.orig)/150 + 1
			offsets := []int{}
			for off := 0; off < len(d.orig); off += stride {
				offsets = append(offsets, off)
			}
			for off := len(d.orig) - 300; off < len(d.orig); off++ {
				offsets = append(offsets, off)
			}
			for _, off := range offsets {
				d.xor(t, off, 0x10)
				require.True(t, checkDamaged(t, d.path, entries, 97), "flip at offset %d of %d not detected", off, len(d.orig))
				d.xor(t, off, 0)
			}
		})
	}
}

// codecCase is a segment's content and the codec to write it with.
type codecCase struct {
	entries []kv
	codec   Codec
}

// codecCases crosses named contents with every codec, naming each case
// <codec>/<name>.
func codecCases(contents map[string][]kv) map[string]codecCase {
	out := make(map[string]codecCase)
	for name, entries := range contents {
		for _, codec := range codecs {
			out[codec.String()+"/"+name] = codecCase{entries, codec}
		}
	}
	return out
}

// parts is a valid segment taken apart, to be damaged and put back
// together with valid checksums: the crafted files of
// TestCraftedCorruption get past every CRC and must be caught by the
// structural checks behind them.
type parts struct {
	// codec compresses the blocks.
	codec Codec
	// header, blocks (compressed), bitmap and meta are the sections.
	header []byte
	blocks [][]byte
	bitmap []byte
	meta   []byte
	// handles are the decoded index entries; join recomputes off, compLen
	// and crc from blocks.
	handles []blockHandle
	// entries are the segment's entries, per block.
	entries [][]kv
	// ft is the decoded footer; join recomputes the offsets and CRCs.
	ft footer
}

// craftBase writes the base segment of TestCraftedCorruption in codec: 2
// entries per block, 6 blocks.
func craftBase(t *testing.T, codec Codec) (entries []kv, p *parts) {
	for i := range 12 {
		entries = append(entries, kv{[]byte(fmt.Sprintf("k%02d", i)), bytes.Repeat([]byte{'a' + byte(i)}, 20)})
	}
	data, err := os.ReadFile(writeSegment(t, entries, WriterOptions{BlockSize: 64, Codec: codec}))
	require.NoError(t, err)
	p = split(t, data)
	next := 0
	for _, h := range p.handles {
		p.entries = append(p.entries, entries[next:next+h.count])
		next += h.count
	}
	require.Len(t, p.blocks, 6)
	return entries, p
}

// split takes a valid segment apart.
func split(t *testing.T, data []byte) *parts {
	ft, reason := decodeFooter(data[len(data)-footerSize:])
	require.Empty(t, reason)
	index := data[ft.indexOff : ft.indexOff+ft.indexLen]
	handles, _, reason := parseIndex(index, int64(ft.indexOff), ft.format.codec)
	require.Empty(t, reason)
	p := &parts{
		codec:   ft.format.codec,
		header:  bytes.Clone(data[:headerSize]),
		bitmap:  bytes.Clone(data[ft.bitmapOff : ft.bitmapOff+ft.bitmapLen]),
		meta:    bytes.Clone(data[ft.metaOff : ft.metaOff+ft.metaLen]),
		handles: handles,
		ft:      ft,
	}
	for _, h := range handles {
		p.blocks = append(p.blocks, bytes.Clone(data[h.off:h.off+int64(h.compLen)]))
	}
	return p
}

// rawBlock encodes entries as a decompressed block.
func rawBlock(entries []kv) []byte {
	raw := binary.AppendUvarint(nil, uint64(len(entries)))
	for _, e := range entries {
		raw = binary.AppendUvarint(raw, uint64(len(e.key)))
		raw = append(raw, e.key...)
		raw = binary.AppendUvarint(raw, uint64(len(e.value)))
		raw = append(raw, e.value...)
	}
	return raw
}

// setBlock replaces block i by the compression of raw.
func (p *parts) setBlock(t *testing.T, i int, raw []byte) {
	enc, err := newBlockEncoder(&WriterOptions{Codec: p.codec, Level: levelFor(p.codec)})
	require.NoError(t, err)
	p.blocks[i] = enc(nil, raw)
	p.handles[i].rawLen = len(raw)
}

// join puts the parts back together with valid offsets and checksums;
// editIndex and editFooter, if set, then alter the index entries and the
// footer before they are encoded (checksums stay valid).
func (p *parts) join(editIndex func([]blockHandle) []byte, editFooter func(*footer)) []byte {
	out := bytes.Clone(p.header)
	for i, b := range p.blocks {
		h := &p.handles[i]
		h.off, h.compLen, h.crc = int64(len(out)), len(b), checksum(b)
		out = append(out, b...)
	}
	var index []byte
	if editIndex != nil {
		index = editIndex(p.handles)
	}
	if index == nil {
		index = binary.AppendUvarint(nil, uint64(len(p.handles)))
		for i := range p.handles {
			index = appendIndexEntry(index, &p.handles[i])
		}
	}
	ft := p.ft
	for _, s := range []struct {
		b        []byte
		off, len *uint64
		crc      *uint32
	}{{index, &ft.indexOff, &ft.indexLen, &ft.indexCRC}, {p.bitmap, &ft.bitmapOff, &ft.bitmapLen, &ft.bitmapCRC}, {p.meta, &ft.metaOff, &ft.metaLen, &ft.metaCRC}} {
		*s.off, *s.len, *s.crc = uint64(len(out)), uint64(len(s.b)), checksum(s.b)
		out = append(out, s.b...)
	}
	if editFooter != nil {
		editFooter(&ft)
	}
	return appendFooter(out, &ft)
}

// resealFooter recomputes the footer CRC after an edit of its bytes.
func resealFooter(data []byte) []byte {
	f := data[len(data)-footerSize:]
	binary.LittleEndian.PutUint32(f[ftCRC:], checksum(f[:ftCRC]))
	return data
}

func TestCraftedCorruption(t *testing.T) {
	type craft struct {
		name string
		// build returns the damaged file, from a fresh copy of the parts.
		build func(t *testing.T, p *parts) []byte
		// reason is the expected CorruptionError.Reason (a prefix);
		// byCodec overrides it for a codec.
		reason  string
		byCodec map[Codec]string
		// only limits the case to one codec (0 for all).
		only Codec
		// onRead is set when Open succeeds and block 0 fails when read.
		onRead bool
	}
	bitmapOf := func(vals ...uint32) []byte {
		b, err := roaring.BitmapOf(vals...).ToBytes()
		require.NoError(t, err)
		return b
	}
	cases := []craft{
		{name: "too_short", reason: reasonTooShort, build: func(t *testing.T, p *parts) []byte {
			return p.join(nil, nil)[:headerSize+footerSize-1]
		}},
		{name: "header_magic", reason: reasonHeaderMagic, build: func(t *testing.T, p *parts) []byte {
			p.header[0] = 'X'
			return p.join(nil, nil)
		}},
		{name: "header_version", reason: reasonVersion, build: func(t *testing.T, p *parts) []byte {
			p.header[4] = formatVersion + 1
			return p.join(nil, nil)
		}},
		{name: "header_reserved", reason: reasonReserved, build: func(t *testing.T, p *parts) []byte {
			p.header[7] = 1
			return p.join(nil, nil)
		}},
		{name: "header_codec_unknown", reason: reasonCodec, build: func(t *testing.T, p *parts) []byte {
			p.header[hdrCodec] = 3
			return p.join(nil, nil)
		}},
		{name: "header_codec_zero", reason: reasonCodec, build: func(t *testing.T, p *parts) []byte {
			p.header[hdrCodec] = 0
			return p.join(nil, nil)
		}},
		{name: "header_codec_other", reason: reasonFormatMismatch, build: func(t *testing.T, p *parts) []byte {
			p.header[hdrCodec] = byte(otherCodec(p.codec))
			return p.join(nil, nil)
		}},
		{name: "header_version_1", reason: reasonFormatMismatch, build: func(t *testing.T, p *parts) []byte {
			p.header[hdrVersion], p.header[hdrCodec] = formatVersion1, 0
			return p.join(nil, nil)
		}},
		{name: "header_version_1_codec", reason: reasonReserved, build: func(t *testing.T, p *parts) []byte {
			p.header[hdrVersion] = formatVersion1
			return p.join(nil, nil)
		}},
		{name: "footer_magic", reason: reasonFooterMagic, build: func(t *testing.T, p *parts) []byte {
			d := p.join(nil, nil)
			d[len(d)-1] = 'X'
			return d
		}},
		{name: "footer_crc", reason: reasonFooterCRC, build: func(t *testing.T, p *parts) []byte {
			d := p.join(nil, nil)
			d[len(d)-footerSize+ftKeys] ^= 1
			return d
		}},
		{name: "footer_version", reason: reasonVersion, build: func(t *testing.T, p *parts) []byte {
			d := p.join(nil, nil)
			d[len(d)-footerSize+ftVersion] = formatVersion + 1
			return resealFooter(d)
		}},
		{name: "footer_reserved", reason: reasonReserved, build: func(t *testing.T, p *parts) []byte {
			d := p.join(nil, nil)
			d[len(d)-footerSize+ftReserved+1] = 1
			return resealFooter(d)
		}},
		{name: "footer_codec_unknown", reason: reasonCodec, build: func(t *testing.T, p *parts) []byte {
			d := p.join(nil, nil)
			d[len(d)-footerSize+ftCodec] = 0xff
			return resealFooter(d)
		}},
		{name: "footer_codec_other", reason: reasonFormatMismatch, build: func(t *testing.T, p *parts) []byte {
			d := p.join(nil, nil)
			d[len(d)-footerSize+ftCodec] = byte(otherCodec(p.codec))
			return resealFooter(d)
		}},
		{name: "footer_version_1", reason: reasonReserved, build: func(t *testing.T, p *parts) []byte {
			d := p.join(nil, nil)
			d[len(d)-footerSize+ftVersion] = formatVersion1
			return resealFooter(d)
		}},
		{name: "footer_version_1_codec_zero", reason: reasonFormatMismatch, build: func(t *testing.T, p *parts) []byte {
			d := p.join(nil, nil)
			d[len(d)-footerSize+ftVersion], d[len(d)-footerSize+ftCodec] = formatVersion1, 0
			return resealFooter(d)
		}},
		{name: "trailing_garbage", reason: reasonFooterMagic, build: func(t *testing.T, p *parts) []byte {
			return append(p.join(nil, nil), 0, 0, 0, 0)
		}},
		{name: "layout_gap", reason: reasonLayout, build: func(t *testing.T, p *parts) []byte {
			return p.join(nil, func(f *footer) { f.bitmapOff++ })
		}},
		{name: "layout_huge_length", reason: reasonLayout, build: func(t *testing.T, p *parts) []byte {
			return p.join(nil, func(f *footer) { f.indexLen = math.MaxUint64 - 5 })
		}},
		{name: "layout_index_in_header", reason: reasonLayout, build: func(t *testing.T, p *parts) []byte {
			return p.join(nil, func(f *footer) { f.indexLen += f.indexOff - 4; f.indexOff = 4 })
		}},
		{name: "index_crc", reason: reasonIndexCRC, build: func(t *testing.T, p *parts) []byte {
			return p.join(nil, func(f *footer) { f.indexCRC++ })
		}},
		{name: "bitmap_crc", reason: reasonBitmapCRC, build: func(t *testing.T, p *parts) []byte {
			return p.join(nil, func(f *footer) { f.bitmapCRC++ })
		}},
		{name: "meta_crc", reason: reasonMetaCRC, build: func(t *testing.T, p *parts) []byte {
			return p.join(nil, func(f *footer) { f.metaCRC++ })
		}},
		{name: "index_count_huge", reason: reasonIndexCount, build: func(t *testing.T, p *parts) []byte {
			return p.join(func([]blockHandle) []byte { return binary.AppendUvarint(nil, 1<<62) }, nil)
		}},
		{name: "index_bad_varint", reason: reasonIndexFormat, build: func(t *testing.T, p *parts) []byte {
			return p.join(func([]blockHandle) []byte { return bytes.Repeat([]byte{0xff}, 11) }, nil)
		}},
		{name: "index_truncated_entry", reason: reasonIndexFormat, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte {
				index := binary.AppendUvarint(nil, uint64(len(hs)))
				for i := range hs {
					index = appendIndexEntry(index, &hs[i])
				}
				return index[:len(index)-2]
			}, nil)
		}},
		{name: "index_key_length_past_end", reason: reasonIndexFormat, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte {
				return append(binary.AppendUvarint([]byte{1}, 1<<40), make([]byte, 20)...)
			}, nil)
		}},
		{name: "index_trailing_bytes", reason: reasonIndexTrail, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte {
				index := binary.AppendUvarint(nil, uint64(len(hs)))
				for i := range hs {
					index = appendIndexEntry(index, &hs[i])
				}
				return append(index, 0)
			}, nil)
		}},
		{name: "index_fewer_blocks", reason: reasonBlockOffset, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte {
				index := binary.AppendUvarint(nil, uint64(len(hs)-1))
				for i := range hs[:len(hs)-1] {
					index = appendIndexEntry(index, &hs[i])
				}
				return index
			}, nil)
		}},
		{name: "block_offset_wrong", reason: reasonBlockOffset, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte { hs[1].off++; return nil }, nil)
		}},
		{name: "block_past_index", reason: reasonBlockOffset, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte { hs[len(hs)-1].compLen += 1000; return nil }, nil)
		}},
		{name: "block_raw_len_huge", reason: reasonBlockSizes, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte { hs[0].rawLen = math.MaxInt32; return nil }, nil)
		}},
		{name: "block_raw_len_beyond_ratio", reason: reasonBlockSizes, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte {
				hs[0].rawLen = hs[0].compLen*int(p.codec.maxRatio()) + 1
				require.Less(t, hs[0].rawLen, maxBlockRaw, "the ratio is what is tested")
				return nil
			}, nil)
		}},
		{name: "block_count_zero", reason: reasonBlockSizes, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte { hs[0].count = 0; return nil }, nil)
		}},
		{name: "block_count_impossible", reason: reasonBlockSizes, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte { hs[0].count = hs[0].rawLen; return nil }, nil)
		}},
		{name: "index_first_after_last", reason: reasonIndexOrder, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte { hs[0].first = []byte("k99"); return nil }, nil)
		}},
		{name: "index_blocks_overlap", reason: reasonIndexOrder, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte { hs[1].first = hs[0].last; return nil }, nil)
		}},
		{name: "key_count", reason: reasonKeyCount, build: func(t *testing.T, p *parts) []byte {
			return p.join(nil, func(f *footer) { f.keys++ })
		}},
		{name: "raw_bytes_too_big", reason: reasonKeyCount, build: func(t *testing.T, p *parts) []byte {
			return p.join(nil, func(f *footer) { f.rawBytes = math.MaxUint64 })
		}},
		{name: "bitmap_undecodable", reason: reasonBitmap, build: func(t *testing.T, p *parts) []byte {
			p.bitmap = []byte("not a roaring bitmap")
			return p.join(nil, nil)
		}},
		{name: "bitmap_truncated", reason: reasonBitmap, build: func(t *testing.T, p *parts) []byte {
			p.bitmap = p.bitmap[:len(p.bitmap)-1]
			return p.join(nil, nil)
		}},
		{name: "bitmap_trailing_bytes", reason: reasonBitmap, build: func(t *testing.T, p *parts) []byte {
			p.bitmap = append(p.bitmap, 0, 0)
			return p.join(nil, nil)
		}},
		{name: "bitmap_empty", reason: reasonBitmapCard, build: func(t *testing.T, p *parts) []byte {
			p.bitmap = bitmapOf()
			return p.join(nil, nil)
		}},
		{name: "bitmap_too_many", reason: reasonBitmapCard, build: func(t *testing.T, p *parts) []byte {
			p.bitmap = bitmapOf(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
			return p.join(nil, nil)
		}},
		{name: "meta_not_json", reason: reasonMeta, build: func(t *testing.T, p *parts) []byte {
			p.meta = []byte("{")
			return p.join(nil, nil)
		}},
		{name: "meta_wrong_type", reason: reasonMeta, build: func(t *testing.T, p *parts) []byte {
			p.meta = []byte(`{"version":"three"}`)
			return p.join(nil, nil)
		}},
		{name: "block_crc", reason: reasonBlockCRC, onRead: true, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte { hs[0].crc++; return nil }, nil)
		}},
		{name: "block_not_compressed", reason: reasonBlockDecompress, onRead: true, build: func(t *testing.T, p *parts) []byte {
			// 0xff… is an overlong length varint to S2, a bad magic to zstd.
			p.blocks[0] = bytes.Repeat([]byte{0xff}, len(p.blocks[0]))
			return p.join(nil, nil)
		}},
		// zstd gets decodeSlack bytes past the raw length, so a frame a
		// little longer than the index says decodes, and the lengths
		// disagree, as S2's leading length does.
		{name: "block_raw_len_smaller", reason: reasonBlockRawLen,
			onRead: true, build: func(t *testing.T, p *parts) []byte {
				return p.join(func(hs []blockHandle) []byte { hs[0].rawLen--; return nil }, nil)
			}},
		{name: "block_of_other_codec", reason: reasonBlockDecompress, byCodec: map[Codec]string{CodecS2: reasonBlockRawLen},
			onRead: true, build: func(t *testing.T, p *parts) []byte {
				// A zstd frame opens with 28 b5 2f fd: to S2, a length of 40.
				p.codec = otherCodec(p.codec)
				p.setBlock(t, 0, rawBlock(p.entries[0]))
				return p.join(nil, nil)
			}},
		{name: "s2_truncated", only: CodecS2, reason: reasonBlockDecompress, onRead: true, build: func(t *testing.T, p *parts) []byte {
			p.blocks[0] = p.blocks[0][:len(p.blocks[0])-1]
			return p.join(nil, nil)
		}},
		{name: "s2_length_only", only: CodecS2, reason: reasonBlockDecompress, onRead: true, build: func(t *testing.T, p *parts) []byte {
			p.blocks[0] = binary.AppendUvarint(nil, uint64(p.handles[0].rawLen))
			return p.join(nil, nil)
		}},
		{name: "s2_length_bigger", only: CodecS2, reason: reasonBlockRawLen, onRead: true, build: func(t *testing.T, p *parts) []byte {
			p.blocks[0] = s2SetLength(t, p.blocks[0], uint64(p.handles[0].rawLen+1))
			return p.join(nil, nil)
		}},
		{name: "s2_length_huge", only: CodecS2, reason: reasonBlockRawLen, onRead: true, build: func(t *testing.T, p *parts) []byte {
			p.blocks[0] = s2SetLength(t, p.blocks[0], 1<<31) // would allocate 2 GiB if believed
			return p.join(nil, nil)
		}},
		{name: "s2_length_beyond_32_bits", only: CodecS2, reason: reasonBlockDecompress, onRead: true, build: func(t *testing.T, p *parts) []byte {
			p.blocks[0] = s2SetLength(t, p.blocks[0], 1<<40)
			return p.join(nil, nil)
		}},
		{name: "s2_length_and_index_agree_on_more", only: CodecS2, reason: reasonBlockDecompress, onRead: true, build: func(t *testing.T, p *parts) []byte {
			p.blocks[0] = s2SetLength(t, p.blocks[0], uint64(p.handles[0].rawLen+1))
			return p.join(func(hs []blockHandle) []byte { hs[0].rawLen++; return nil }, nil)
		}},
		{name: "s2_trailing_byte", only: CodecS2, reason: reasonBlockDecompress, onRead: true, build: func(t *testing.T, p *parts) []byte {
			p.blocks[0] = append(p.blocks[0], 0) // a literal tag with no byte to copy
			return p.join(nil, nil)
		}},
		{name: "block_raw_len_bigger", reason: reasonBlockRawLen, onRead: true, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte { hs[0].rawLen++; return nil }, nil)
		}},
		{name: "block_count_mismatch", reason: reasonBlockCount, onRead: true, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte { hs[0].count++; return nil }, p.fixKeys(+1))
		}},
		{name: "block_keys_out_of_order", reason: reasonBlockOrder, onRead: true, build: func(t *testing.T, p *parts) []byte {
			e := p.entries[0]
			p.setBlock(t, 0, rawBlock([]kv{e[1], e[0]}))
			return p.join(nil, nil)
		}},
		{name: "block_duplicate_key", reason: reasonBlockOrder, onRead: true, build: func(t *testing.T, p *parts) []byte {
			e := p.entries[0]
			p.setBlock(t, 0, rawBlock([]kv{e[0], e[0]}))
			return p.join(nil, nil)
		}},
		{name: "block_first_key_mismatch", reason: reasonBlockBounds, onRead: true, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte { hs[0].first = []byte("k"); return nil }, nil)
		}},
		{name: "block_last_key_mismatch", reason: reasonBlockBounds, onRead: true, build: func(t *testing.T, p *parts) []byte {
			return p.join(func(hs []blockHandle) []byte { hs[0].last = append(hs[0].last, 0); return nil }, nil)
		}},
		{name: "block_trailing_bytes", reason: reasonBlockTrailer, onRead: true, build: func(t *testing.T, p *parts) []byte {
			p.setBlock(t, 0, append(rawBlock(p.entries[0]), 0))
			return p.join(nil, nil)
		}},
		{name: "block_length_past_end", reason: reasonBlockFormat, onRead: true, build: func(t *testing.T, p *parts) []byte {
			raw := rawBlock(p.entries[0])
			raw[1] = 200 // the first key's length
			p.setBlock(t, 0, raw)
			return p.join(nil, nil)
		}},
		{name: "block_bad_count_varint", reason: reasonBlockFormat, onRead: true, build: func(t *testing.T, p *parts) []byte {
			p.setBlock(t, 0, append(bytes.Repeat([]byte{0xff}, 11), rawBlock(p.entries[0])...))
			return p.join(nil, nil)
		}},
	}
	for _, codec := range codecs {
		for _, tc := range cases {
			if tc.only != 0 && tc.only != codec {
				continue
			}
			if r, ok := tc.byCodec[codec]; ok {
				tc.reason = r
			}
			t.Run(codec.String()+"/"+tc.name, func(t *testing.T) { testCraft(t, codec, tc.build, tc.reason, tc.onRead) })
		}
	}
}

// testCraft checks one case of TestCraftedCorruption.
func testCraft(t *testing.T, codec Codec, build func(*testing.T, *parts) []byte, reason string, onRead bool) {
	entries, p := craftBase(t, codec)
	block0 := p.handles[0]
	path := filepath.Join(t.TempDir(), "crafted")
	require.NoError(t, os.WriteFile(path, build(t, p), 0o644))
	var ce *CorruptionError
	r, err := Open(path)
	if !onRead {
		require.ErrorAs(t, err, &ce)
		assert.True(t, strings.HasPrefix(ce.Reason, reason), "reason %q, want %q", ce.Reason, reason)
		assert.Equal(t, path, ce.Path)
		return
	}
	require.NoError(t, err)
	defer r.Close()
	_, _, err = r.Get(entries[1].key)
	require.ErrorAs(t, err, &ce)
	assert.True(t, strings.HasPrefix(ce.Reason, reason), "reason %q, want %q", ce.Reason, reason)
	assert.Equal(t, block0.off, ce.Offset)
	got, err := scan(r)
	require.ErrorAs(t, err, &ce)
	assert.Empty(t, got)
	// The other blocks are fine.
	v, ok, err := r.Get(entries[len(entries)-1].key)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, entries[len(entries)-1].value, v)
}

// otherCodec is a codec other than c.
func otherCodec(c Codec) Codec {
	if c == CodecS2 {
		return CodecZstd
	}
	return CodecS2
}

// s2SetLength replaces the decoded length at the start of the S2 block b.
func s2SetLength(t *testing.T, b []byte, n uint64) []byte {
	_, k := binary.Uvarint(b)
	require.Positive(t, k)
	return append(binary.AppendUvarint(nil, n), b[k:]...)
}

// fixKeys returns a footer edit that adds d to the key count, to keep it
// consistent with an edited block count.
func (p *parts) fixKeys(d int) func(*footer) {
	return func(f *footer) { f.keys = uint64(int(f.keys) + d) }
}

// TestCorruptionErrorMessage checks that the message names the file, the
// offset, the reason and what to do.
func TestCorruptionErrorMessage(t *testing.T) {
	err := corrupt("/data/seg/000001.seg", 4096, reasonBlockCRC)
	assert.EqualError(t, err, "compaction: corrupt segment /data/seg/000001.seg at offset 4096: block checksum mismatch; "+
		"do not use the file: move it aside and rebuild it from the event log or restore it from a backup")
}
