package wal

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/docgolden"
	"github.com/featurelog/featurelog/vfs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestFrameVersions: version 2 frames are written and read with either
// flag; version 1 frames, written before commit marks, are read with the
// zstd flag only; other versions are refused.
func TestFrameVersions(t *testing.T) {
	for _, tc := range []struct {
		version, flags byte
		reason         string
	}{
		{frameVersion, 0, ""},
		{frameVersion, flagCommitEnd, ""},
		{frameVersion, flagCommitEnd | flagZstd, ""},
		{frameVersionV1, 0, ""},
		{frameVersionV1, flagZstd, ""},
		{frameVersionV1, flagCommitEnd, reasonBadFlags},
		{3, 0, reasonBadVersion},
	} {
		t.Run(fmt.Sprintf("v%d flags %#x", tc.version, tc.flags), func(t *testing.T) {
			frame := appendFrameVersion(nil, tc.version, 9, tc.flags, []byte("x"))
			_, reason := decodeFrame(frame, 9)
			require.Equal(t, tc.reason, reason)
			if reason == "" {
				assert.Equal(t, tc.version == frameVersion, marked(frame))
				assert.Equal(t, tc.flags&flagCommitEnd != 0, commitEnd(frame))
				assert.Equal(t, tc.flags&flagZstd != 0, compressed(frame))
			}
		})
	}
	assert.Equal(t, byte(frameVersion), appendFrame(nil, 1, nil)[offVersion], "version 2 is written")
}

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
		{"version", func(f []byte) []byte { f[offVersion] = 3; return f }, reasonBadVersion},
		{"version 0", func(f []byte) []byte { f[offVersion] = 0; return f }, reasonBadVersion},
		{"version 1 read", func(f []byte) []byte { f[offVersion] = frameVersionV1; return f }, reasonBadChecksum},
		{"flags", func(f []byte) []byte { f[offFlags] = 4; return f }, reasonBadFlags},
		{"commit-end flag in version 1", func(f []byte) []byte {
			f[offVersion], f[offFlags] = frameVersionV1, flagCommitEnd
			return f
		}, reasonBadFlags},
		{"zstd flag flipped", func(f []byte) []byte { f[offFlags] = flagZstd; return f }, reasonBadChecksum},
		{"commit-end flag flipped", func(f []byte) []byte { f[offFlags] = flagCommitEnd; return f }, reasonBadChecksum},
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

// goldenSegment is the segment the log writes for goldenWrites, checked
// in as testdata/00000000000000000001: a change to it is a format change.
// goldenSegmentV1 is one written before version 2 (the same payloads, each
// its own write, no commit marks): the log must go on reading it.
const (
	goldenSegment   = "testdata/" + "00000000000000000001"
	goldenSegmentV1 = "testdata/v1/" + "00000000000000000001"
)

func goldenPayloads() [][]byte {
	return [][]byte{[]byte("hello"), {}, bytes.Repeat([]byte{0xFF}, 200)}
}

// goldenWrites writes goldenPayloads as two writes: "hello" alone, then
// the other two with one AppendBatch, so that the golden segment holds a
// frame that ends a write and one that does not.
func goldenWrites(t *testing.T, l *Log) {
	p := goldenPayloads()
	_, err := l.Append(p[0])
	require.NoError(t, err)
	_, err = l.AppendBatch(p[1:])
	require.NoError(t, err)
}

// frameHeaders returns the version and flags of each frame of a valid
// segment file.
func frameHeaders(t *testing.T, path string) (versions, flags []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	for off := 0; off < len(data); {
		body, n, st := splitEntry(data[off:])
		require.Equal(t, entryOK, st)
		versions, flags = append(versions, body[offVersion]), append(flags, body[offFlags])
		off += n
	}
	return versions, flags
}

func TestGoldenSegment(t *testing.T) {
	opts := testOptions(t)
	l := openT(t, opts)
	goldenWrites(t, l)
	closeT(t, l)
	got, err := os.ReadFile(filepath.Join(opts.Dir, segmentName(1)))
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.WriteFile(goldenSegment, got, 0o644))
	}
	want, err := os.ReadFile(goldenSegment)
	require.NoError(t, err)
	require.Equal(t, want, got, "on-disk format changed; if intended, run go test -run Golden -update")
	versions, flags := frameHeaders(t, goldenSegment)
	assert.Equal(t, []byte{2, 2, 2}, versions)
	assert.Equal(t, []byte{flagCommitEnd, 0, flagCommitEnd}, flags, "the last frame of each write is marked")

	// The first entry, byte by byte, as docs/format/wal.md describes it.
	require.Equal(t, byte(headerSize+5), want[0], "uvarint length")
	f := want[1 : 1+headerSize+5]
	assert.Equal(t, "FLWL", string(f[0:4]))
	assert.Equal(t, []byte{2, flagCommitEnd}, f[4:6], "version, flags")
	assert.Equal(t, uint32(5), binary.LittleEndian.Uint32(f[6:10]))
	assert.Equal(t, uint64(1), binary.LittleEndian.Uint64(f[10:18]))
	assert.Equal(t, "hello", string(f[22:]))
	assert.Equal(t, docgolden.Hex(t, "wal.md", "first-entry"), want[:1+headerSize+5], "the example of docs/format/wal.md")
}

// TestGoldenSegmentV1: a log written before version 2 opens clean and
// replays, takes appends (version 2 frames after version 1 ones in its
// tail segment) and reopens with both.
func TestGoldenSegmentV1(t *testing.T) {
	versions, flags := frameHeaders(t, goldenSegmentV1)
	require.Equal(t, []byte{1, 1, 1}, versions)
	require.Equal(t, []byte{0, 0, 0}, flags)
	data, err := os.ReadFile(goldenSegmentV1)
	require.NoError(t, err)
	opts := testOptions(t)
	require.NoError(t, os.MkdirAll(opts.Dir, 0o755))
	path := filepath.Join(opts.Dir, segmentName(1))
	require.NoError(t, os.WriteFile(path, data, 0o644))
	want := goldenPayloads()
	check := func(l *Log) {
		t.Helper()
		assert.Nil(t, l.Repair())
		require.NoError(t, l.Verify())
		got := replayAll(t, l, 1)
		require.Len(t, got, len(want))
		for i, e := range got {
			assert.Equal(t, uint64(i+1), e.seq)
			assert.Equal(t, want[i], e.payload)
		}
	}
	l := openT(t, opts)
	check(l)
	_, err = l.AppendBatch([][]byte{[]byte("upgraded"), []byte("again")})
	require.NoError(t, err)
	want = append(want, []byte("upgraded"), []byte("again"))
	closeT(t, l)
	l = openT(t, opts)
	check(l)
	versions, flags = frameHeaders(t, path)
	assert.Equal(t, []byte{1, 1, 1, 2, 2}, versions)
	assert.Equal(t, []byte{0, 0, 0, 0, flagCommitEnd}, flags)
}

// FuzzSegmentDecoders feeds arbitrary segment bytes to both decoders of
// segment files: the in-memory scan Open uses and the streaming reader
// Replay uses. Neither may panic, and they must agree on how many entries
// are valid and where the first bad one is.
func FuzzSegmentDecoders(f *testing.F) {
	for _, path := range []string{goldenSegment, goldenSegmentV1} {
		if golden, err := os.ReadFile(path); err == nil {
			f.Add(golden)
			f.Add(golden[:len(golden)-3])
			f.Add(append(bytes.Clone(golden), make([]byte, 64)...))
			torn := bytes.Clone(golden) // first frame zeroed, the rest intact
			clear(torn[:headerSize])
			f.Add(torn)
		}
	}
	for _, writes := range [][]write{
		{{version: frameVersion, n: 3}, {version: frameVersion, n: 2}},
		{{version: frameVersionV1, n: 2}, {version: frameVersion, n: 3}},
	} {
		torn := buildSegment(1, writes...) // a frame of the first write zeroed
		clear(torn[1 : 1+headerSize])
		f.Add(torn)
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
		if w, ok := findLaterWrite(data, valid, next); ok {
			// The evidence is a valid frame behind the damage, after the
			// commit-end frame it names, or of version 1.
			frame, seq, ok := frameAt(data, w.off)
			require.True(t, ok)
			require.Equal(t, w.seq, seq)
			require.GreaterOrEqual(t, seq, next)
			require.GreaterOrEqual(t, w.off, valid)
			if w.end {
				end, _, ok := frameAt(data, w.endOff)
				require.True(t, ok)
				require.True(t, commitEnd(end))
				require.GreaterOrEqual(t, w.endOff, valid)
				require.Less(t, w.endOff, w.off)
			} else {
				require.False(t, marked(frame))
			}
		}

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
