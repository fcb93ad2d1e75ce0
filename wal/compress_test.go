package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// compressible and random payloads of sizes around CompressMin survive
// compression, reopen and replay byte for byte; only the compressible
// ones are stored compressed.
func TestCompressedFramesRoundTrip(t *testing.T) {
	for _, min := range []int{256, 1} { // 1: payloads under minCompressed stay plain
		t.Run(fmt.Sprint("CompressMin=", min), func(t *testing.T) { testCompressedFramesRoundTrip(t, min) })
	}
}

func testCompressedFramesRoundTrip(t *testing.T, min int) {
	opts := testOptions(t)
	opts.CompressMin = min
	opts.SegmentSize = 64 << 10
	r := rand.New(rand.NewSource(1))
	var want [][]byte
	for i := 0; i < 300; i++ {
		n := r.Intn(2000)
		p := make([]byte, n)
		if i%2 == 0 {
			copy(p, bytes.Repeat([]byte("user_id=C18947Z5 clicked=0 "), n/27+1))
		} else {
			r.Read(p)
		}
		want = append(want, p)
	}
	l, err := Open(opts)
	require.NoError(t, err)
	var raw int
	for _, p := range want {
		_, err := l.Append(p)
		require.NoError(t, err)
		raw += len(p)
	}
	require.NoError(t, l.Close())
	l = openT(t, opts)
	got := replayAll(t, l, 1)
	require.Len(t, got, len(want))
	for i, e := range got {
		require.Equal(t, want[i], e.payload, "entry %d", i+1)
	}
	require.NoError(t, l.Verify())
	onDisk := dirBytes(t, opts.Dir)
	require.Less(t, onDisk, int64(raw)*3/4, "compressible payloads were not stored compressed")
}

// A frame whose flag says zstd but whose (checksummed) bytes are not a
// zstd frame is reported as corruption, never returned.
func TestCompressedFrameGarbage(t *testing.T) {
	opts := testOptions(t)
	require.NoError(t, os.MkdirAll(opts.Dir, 0o755))
	seg := appendFrameFlags(nil, 1, flagZstd, []byte("definitely not zstd"))
	var buf []byte
	buf = appendEntry(buf, seg)
	buf = appendEntry(buf, appendFrame(nil, 2, []byte("ok")))
	require.NoError(t, os.WriteFile(filepath.Join(opts.Dir, segmentName(1)), buf, 0o644))
	l := openT(t, opts)
	err := l.Replay(1, func(uint64, []byte) error { return nil })
	var ce *CorruptionError
	require.True(t, errors.As(err, &ce), "got %v", err)
	require.Equal(t, reasonBadZstd, ce.Reason)
	require.Equal(t, uint64(1), ce.Seq)
}

// An unknown flag bit is still refused.
func TestUnknownFlagRefused(t *testing.T) {
	_, reason := decodeFrame(appendFrameFlags(nil, 1, 1<<3, []byte("x")), 1)
	require.Equal(t, reasonBadFlags, reason)
}

func dirBytes(t *testing.T, dir string) int64 {
	var n int64
	require.NoError(t, filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	}))
	return n
}

// appendEntry appends frame as one tidwall binary entry (uvarint length).
func appendEntry(dst, frame []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(frame)))
	return append(dst, frame...)
}

// TestInflateRefusesOversizedFrames: a frame declaring more than the
// largest payload is refused before anything is allocated for it.
func TestInflateRefusesOversizedFrames(t *testing.T) {
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x00}    // magic, 8-byte FCS, 1 KiB window
	frame = binary.LittleEndian.AppendUint64(frame, 3<<30) // declares 3 GiB
	frame = append(frame, 0x01, 0x00, 0x00)                // last block: raw, empty
	var h zstd.Header
	require.NoError(t, h.Decode(frame))
	require.True(t, h.HasFCS)
	require.Equal(t, uint64(3<<30), h.FrameContentSize)
	_, err := inflate(nil, frame, DefaultMaxBatchBytes)
	require.ErrorContains(t, err, "declares 3221225472 bytes")
	ok, err := inflate(nil, encoder.EncodeAll(make([]byte, 4096), nil), DefaultMaxBatchBytes)
	require.NoError(t, err)
	require.Len(t, ok, 4096)
}
