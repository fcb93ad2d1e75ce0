package wal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// write is one write of a hand-built segment: n frames of version
// version. Version 2 marks its last frame with flagCommitEnd, unless open
// (the part of a write that tidwall put in the older of two segments).
type write struct {
	version byte
	n       int
	open    bool
}

// buildSegment returns a segment holding payloadFor(first, first+1, ...)
// framed as writes.
func buildSegment(first uint64, writes ...write) []byte {
	var data []byte
	seq := first
	for _, w := range writes {
		for i := range w.n {
			var flags byte
			if w.version == frameVersion && i == w.n-1 && !w.open {
				flags = flagCommitEnd
			}
			data = appendEntry(data, appendFrameVersion(nil, w.version, seq, flags, payloadFor(seq)))
			seq++
		}
	}
	return data
}

// commitEnds returns the commit-end flags of the frames of every segment
// in dir, in order, and how many frames each segment holds.
func commitEnds(t *testing.T, dir string) (ends []bool, perSegment []int) {
	t.Helper()
	for _, p := range segmentPaths(t, dir) {
		_, flags := frameHeaders(t, p)
		for _, f := range flags {
			ends = append(ends, f&flagCommitEnd != 0)
		}
		perSegment = append(perSegment, len(flags))
	}
	return ends, perSegment
}

// TestCommitEndMarks: the committer marks the last frame of every write
// and no other: single appends, AppendBatch, a group commit of concurrent
// appends, and a write tidwall splits over several segments.
func TestCommitEndMarks(t *testing.T) {
	t.Run("append and AppendBatch", func(t *testing.T) {
		opts := testOptions(t)
		l := openT(t, opts)
		_, err := l.Append([]byte("a"))
		require.NoError(t, err)
		_, err = l.AppendBatch([][]byte{[]byte("b"), []byte("c"), []byte("d")})
		require.NoError(t, err)
		_, err = l.AppendBatch([][]byte{[]byte("e")})
		require.NoError(t, err)
		ends, _ := commitEnds(t, opts.Dir)
		assert.Equal(t, []bool{true, false, false, true, true}, ends)
	})
	t.Run("group commit", func(t *testing.T) {
		const n = 16
		g := newGate()
		opts := testOptions(t)
		l := openT(t, withHooks(opts, &hookBackend{before: g.before}))
		payloads := numbered(n, 100)
		seqs, errs := appendConcurrently(t, l, g, payloads)
		requireDistinctPayloads(t, l, payloads, seqs, errs)
		require.Equal(t, uint64(2), l.Stats().Batches)
		ends, _ := commitEnds(t, opts.Dir)
		want := make([]bool, n)
		want[0], want[n-1] = true, true
		assert.Equal(t, want, ends, "one append alone, then the rest in one write")
	})
	t.Run("write split over segments", func(t *testing.T) {
		opts := testOptions(t)
		opts.SegmentSize = 1024
		l := openT(t, opts)
		_, err := l.Append([]byte("first"))
		require.NoError(t, err)
		_, err = l.AppendBatch(numbered(40, 100))
		require.NoError(t, err)
		ends, perSegment := commitEnds(t, opts.Dir)
		require.Greater(t, len(perSegment), 3, "the batch spans several segments")
		want := make([]bool, 41)
		want[0], want[40] = true, true
		assert.Equal(t, want, ends, "only the write's very last frame is marked")
		closeT(t, l)
		l = openT(t, opts)
		assert.Nil(t, l.Repair())
		require.NoError(t, l.Verify())
	})
}

// TestRewriteKeepsMarks: a rewritten entry keeps its frame version and
// commit-end flag, so a rewritten segment holds the marks it held, and a
// version 1 segment stays version 1.
func TestRewriteKeepsMarks(t *testing.T) {
	opts := testOptions(t)
	opts.SegmentSize = 1 << 20
	opts.CompressMin = 256 // below 256 B, zstd may omit the content size inflate requires
	require.NoError(t, os.MkdirAll(opts.Dir, 0o755))
	path := filepath.Join(opts.Dir, segmentName(1))
	v1 := write{version: frameVersionV1, n: 3}
	require.NoError(t, os.WriteFile(path, buildSegment(1, v1), 0o644))
	l := openT(t, opts)
	_, err := l.AppendBatch([][]byte{payloadFor(4), payloadFor(5), payloadFor(6)})
	require.NoError(t, err)
	_, err = l.Append(payloadFor(7))
	require.NoError(t, err)
	versions, flags := frameHeaders(t, path)
	require.Equal(t, []byte{1, 1, 1, 2, 2, 2, 2}, versions)
	big := bytes.Repeat([]byte("erased "), 40) // compressible: flagZstd is added
	st, err := l.Rewrite(7, func(uint64, []byte) ([]byte, bool, error) { return big, false, nil })
	require.NoError(t, err)
	require.Equal(t, 7, st.EntriesChanged)
	gotVersions, gotFlags := frameHeaders(t, path)
	assert.Equal(t, versions, gotVersions)
	for i := range flags {
		assert.Equal(t, flags[i]&flagCommitEnd, gotFlags[i]&flagCommitEnd, "entry %d", i)
		assert.NotZero(t, gotFlags[i]&flagZstd, "entry %d", i)
	}
	require.NoError(t, l.Verify())
	for _, e := range replayAll(t, l, 1) {
		assert.Equal(t, big, e.payload)
	}
}
