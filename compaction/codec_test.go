package compaction

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCodecRoundTrip compresses blocks of various shapes with each codec
// and decompresses them into a buffer of exactly the raw length.
func TestCodecRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	blocks := map[string][]byte{
		"one_byte":       {0},
		"short":          rawBlock([]kv{{[]byte("k"), []byte("v")}}),
		"typical":        rawBlock(benchEntries(130)),
		"random_entries": rawBlock(randomEntries(rng, 200, 0)),
		"incompressible": rawBlock(incompressibleEntries(rng, 40, 1000)),
		"zeros_1MiB":     make([]byte, 1<<20),
	}
	for _, codec := range codecs {
		enc, err := newBlockEncoder(&WriterOptions{Codec: codec, Level: levelFor(codec)})
		require.NoError(t, err)
		for name, raw := range blocks {
			t.Run(codec.String()+"/"+name, func(t *testing.T) {
				comp := enc(nil, raw)
				assert.LessOrEqual(t, uint64(len(raw)), uint64(len(comp))*codec.maxRatio(), "within the ratio bound the index checks")
				dst := make([]byte, 0, len(raw)+decodeSlack)
				got, reason, err := codec.decompress(dst, comp, len(raw))
				require.NoError(t, err)
				require.Empty(t, reason)
				require.Equal(t, raw, got)
				assert.Same(t, &dst[:1][0], &got[0], "decoded into the buffer given")
			})
		}
	}
}

// TestS2MaxRatio checks maxS2Ratio against the densest S2 block: one
// literal, a copy setting offset 1, then repeats of the longest length,
// each 5 bytes. A bound too low would make Open refuse valid segments of
// repetitive values; s2.Encode must stay under it too.
func TestS2MaxRatio(t *testing.T) {
	const repeats = 4
	const maxRepeat = 1<<24 + 1<<16 + 3 // a 3-byte repeat length, plus its bias
	elems := []byte{0 << 2, 'x'}        // literal of length 1
	elems = append(elems, 0x01, 0x01)   // copy-1: length 4, offset 1
	for range repeats {
		// copy-1 with offset 0 (repeat), length code 7: a 3-byte length
		// follows, plus 1<<16, plus 4.
		elems = append(elems, 7<<2|0x01, 0, 0xff, 0xff, 0xff)
	}
	want := 1 + 4 + repeats*maxRepeat
	src := append(binary.AppendUvarint(nil, uint64(want)), elems...)
	got, err := s2.Decode(nil, src)
	require.NoError(t, err)
	require.Len(t, got, want, "the repeat length encoding as read")
	assert.Equal(t, bytes.Repeat([]byte{'x'}, want), got)
	assert.Less(t, uint64(maxRepeat), uint64(5)*maxS2Ratio, "a 5-byte repeat stays within the bound")
	assert.Less(t, uint64(len(got)), uint64(len(src))*maxS2Ratio)

	enc := s2.Encode(nil, make([]byte, 64<<20))
	assert.Less(t, uint64(64<<20), uint64(len(enc))*maxS2Ratio, "s2.Encode of zeros")
}

// TestCorruptBlockBytes damages every byte of compressed blocks, past any
// CRC: decompression must fail cleanly or produce exactly the promised
// length, and for S2 must not allocate (a believed length would allocate
// it, the raw length here being 16 KiB and more).
func TestCorruptBlockBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(53, 54))
	raws := [][]byte{rawBlock(benchEntries(140)), rawBlock(randomEntries(rng, 300, 0))}
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			enc, err := newBlockEncoder(&WriterOptions{Codec: codec, Level: levelFor(codec)})
			require.NoError(t, err)
			var runs, failed int
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for _, raw := range raws {
				comp := enc(nil, raw)
				dst := make([]byte, 0, len(raw)+decodeSlack)
				damaged := bytes.Clone(comp)
				for off := range comp {
					for _, mask := range []byte{0x01, 0x80, 0xff} {
						damaged[off] = comp[off] ^ mask
						data, reason, err := codec.decompress(dst, damaged, len(raw))
						require.NoError(t, err)
						if reason != "" {
							failed++
						} else {
							require.Len(t, data, len(raw))
						}
						runs++
					}
					damaged[off] = comp[off]
				}
				for n := range comp { // truncated
					if _, reason, _ := codec.decompress(dst, comp[:n], len(raw)); reason == "" {
						t.Fatalf("block truncated to %d of %d bytes decoded", n, len(comp))
					}
				}
			}
			runtime.ReadMemStats(&after)
			perRun := (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
			t.Logf("%d damaged blocks, %d failed to decode, %d B allocated per run", runs, failed, perRun)
			assert.Positive(t, failed)
			if codec == CodecS2 {
				assert.Less(t, perRun, uint64(512), "bytes allocated per damaged block: no more than an error message")
			}
		})
	}
}

// TestCorruptS2BlockInSegment damages every byte of an S2 block in a
// segment and fixes its CRC: reading it gives a *CorruptionError naming the
// file and the block's offset, or the entries the block decodes to; never
// a panic, another error, or entries out of order.
func TestCorruptS2BlockInSegment(t *testing.T) {
	entries, p := craftBase(t, CodecS2)
	orig := bytes.Clone(p.blocks[0])
	path := filepath.Join(t.TempDir(), "damaged")
	detected := 0
	for off := range orig {
		p.blocks[0] = bytes.Clone(orig)
		p.blocks[0][off] ^= 0x21
		require.NoError(t, os.WriteFile(path, p.join(nil, nil), 0o644))
		r, err := Open(path)
		require.NoError(t, err, "the block is only read on demand")
		_, _, err = r.Get(entries[0].key)
		if err != nil {
			var ce *CorruptionError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, path, ce.Path)
			assert.Equal(t, p.handles[0].off, ce.Offset)
			detected++
		}
		got, err := scan(r)
		if err == nil {
			require.Len(t, got, len(entries), "a block that decodes and parses holds its count of entries")
		}
		require.NoError(t, r.Close())
	}
	// Flips in the values' literal bytes decode to other values, which only
	// the CRC catches; flips in the length, the tags, the keys are caught.
	t.Logf("%d of %d flips detected behind a valid CRC", detected, len(orig))
	assert.Positive(t, detected)
}

// ParseCodec reads back what String prints, and names the choices when
// it does not know a name.
func TestParseCodec(t *testing.T) {
	for _, c := range []Codec{CodecS2, CodecZstd} {
		got, err := ParseCodec(c.String())
		require.NoError(t, err)
		assert.Equal(t, c, got)
	}
	_, err := ParseCodec("S2 ")
	require.ErrorContains(t, err, `unknown segment codec "S2 ": use s2`)
}
