package wal

import (
	"github.com/featurelog/featurelog/vfs"

	"bytes"
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/docgolden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 100, 105, 106, 127, 4096, 1 << 20} {
		payload := bytes.Repeat([]byte{0x5A}, n)
		frame := appendFrame([]byte("prefix"), 42, payload)[len("prefix"):]
		require.Len(t, frame, frameSize(n))
		got, reason := decodeFrame(frame, 42)
		require.Empty(t, reason)
		require.Equal(t, payload, got)
		_, reason = decodeFrame(frame, 43)
		assert.Equal(t, reasonBadSeq, reason)
	}
}

// TestDecodeFrameReasons damages each field of a frame in turn.
func TestDecodeFrameReasons(t *testing.T) {
	good := appendFrame(nil, 7, []byte("payload"))
	for _, tc := range []struct {
		name   string
		damage func(f []byte) []byte
		reason string
	}{
		{"short", func(f []byte) []byte { return f[:headerSize-1] }, reasonShortFrame},
		{"magic", func(f []byte) []byte { f[1] ^= 1; return f }, reasonBadMagic},
		{"version", func(f []byte) []byte { f[offVersion] = 2; return f }, reasonBadVersion},
		{"flags", func(f []byte) []byte { f[offFlags] = 2; return f }, reasonBadFlags},
		{"zstd flag flipped", func(f []byte) []byte { f[offFlags] = flagZstd; return f }, reasonBadChecksum},
		{"length", func(f []byte) []byte { f[offLength]++; return f }, reasonBadLength},
		{"truncated payload", func(f []byte) []byte { return f[:len(f)-1] }, reasonBadLength},
		{"seq", func(f []byte) []byte { f[offSeq] ^= 1; return f }, reasonBadChecksum},
		{"crc", func(f []byte) []byte { f[offCRC] ^= 1; return f }, reasonBadChecksum},
		{"payload", func(f []byte) []byte { f[headerSize] ^= 1; return f }, reasonBadChecksum},
		{"zeros", func(f []byte) []byte { return make([]byte, len(f)) }, reasonBadMagic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, reason := decodeFrame(tc.damage(bytes.Clone(good)), 7)
			assert.Equal(t, tc.reason, reason)
		})
	}
}

func TestSplitEntry(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		st   entryStatus
		n    int
	}{
		{"empty", nil, entryShort, 0},
		{"zero length", []byte{0, 9}, entryOK, 1},
		{"one byte", []byte{1, 9, 9}, entryOK, 2},
		{"torn prefix", []byte{0x80}, entryShort, 0},
		{"torn body", []byte{3, 1, 2}, entryShort, 0},
		{"overlong prefix", bytes.Repeat([]byte{0xFF}, 11), entryBad, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, n, st := splitEntry(tc.in)
			assert.Equal(t, tc.st, st)
			assert.Equal(t, tc.n, n)
		})
	}
}

// TestEntrySizeMatchesTidwall: the committer tracks the tail's size with
// entrySize to know when tidwall may cycle; it must count what tidwall
// writes.
func TestEntrySizeMatchesTidwall(t *testing.T) {
	opts := testOptions(t)
	opts.SegmentSize = 1 << 30
	l := openT(t, opts)
	want := 0
	for _, n := range []int{0, 1, 105, 106, 200, 16361, 16362, 70000} {
		_, err := l.Append(make([]byte, n))
		require.NoError(t, err)
		want += entrySize(n)
	}
	fi, err := os.Stat(segmentPaths(t, opts.Dir)[0])
	require.NoError(t, err)
	assert.Equal(t, int64(want), fi.Size())
	assert.Equal(t, int64(want), l.c.tailBytes)
}

// goldenSegment is a segment of three entries, checked in as
// testdata/00000000000000000001: a change to it is a format change.
const goldenSegment = "testdata/" + "00000000000000000001"

func goldenPayloads() [][]byte {
	return [][]byte{[]byte("hello"), {}, bytes.Repeat([]byte{0xFF}, 200)}
}

func TestGoldenSegment(t *testing.T) {
	opts := testOptions(t)
	l := openT(t, opts)
	for _, p := range goldenPayloads() {
		_, err := l.Append(p)
		require.NoError(t, err)
	}
	closeT(t, l)
	got, err := os.ReadFile(filepath.Join(opts.Dir, segmentName(1)))
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.WriteFile(goldenSegment, got, 0o644))
	}
	want, err := os.ReadFile(goldenSegment)
	require.NoError(t, err)
	require.Equal(t, want, got, "on-disk format changed; if intended, run go test -run Golden -update")

	// The first entry, byte by byte, as docs/format/wal.md describes it.
	require.Equal(t, byte(headerSize+5), want[0], "uvarint length")
	f := want[1 : 1+headerSize+5]
	assert.Equal(t, "FLWL", string(f[0:4]))
	assert.Equal(t, []byte{1, 0}, f[4:6], "version, flags")
	assert.Equal(t, uint32(5), binary.LittleEndian.Uint32(f[6:10]))
	assert.Equal(t, uint64(1), binary.LittleEndian.Uint64(f[10:18]))
	assert.Equal(t, "hello", string(f[22:]))
	assert.Equal(t, docgolden.Hex(t, "wal.md", "first-entry"), want[:1+headerSize+5], "the example of docs/format/wal.md")
}

// FuzzSegmentDecoders feeds arbitrary segment bytes to both decoders of
// segment files: the in-memory scan Open uses and the streaming reader
// Replay uses. Neither may panic, and they must agree on how many entries
// are valid and where the first bad one is.
func FuzzSegmentDecoders(f *testing.F) {
	if golden, err := os.ReadFile(goldenSegment); err == nil {
		f.Add(golden)
		f.Add(golden[:len(golden)-3])
		f.Add(append(bytes.Clone(golden), make([]byte, 64)...))
	}
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{0x80, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		valid, next, reason := scanValid(data, 1)
		require.LessOrEqual(t, valid, len(data))
		require.Equal(t, valid == len(data), reason == "")
		// A valid prefix scans clean.
		v2, n2, r2 := scanValid(data[:valid], 1)
		require.Equal(t, valid, v2)
		require.Equal(t, next, n2)
		require.Empty(t, r2)
		findValidFrame(data, valid, next) // must not panic

		path := filepath.Join(t.TempDir(), segmentName(1))
		require.NoError(t, os.WriteFile(path, data, 0o644))
		r := segmentReader{fs: vfs.Default}
		defer r.close()
		var count uint64
		err := r.replay(segment{first: 1, path: path}, 1, next-1, false, func(uint64, []byte) error {
			count++
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, next-1, count)
		if reason != "" {
			err = r.replay(segment{first: 1, path: path}, 1, next, false, func(uint64, []byte) error { return nil })
			requireCorruption(t, err, path, valid, next, "")
		}
	})
}
