package wal

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/vfs"
)

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Options)
		want   string // substring of the error; empty for valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"no dir", func(o *Options) { o.Dir = "" }, "Dir is required"},
		{"negative segment size", func(o *Options) { o.SegmentSize = -1 }, "SegmentSize"},
		{"negative batch", func(o *Options) { o.MaxBatchBytes = -1 }, "MaxBatchBytes"},
		{"batch too large", func(o *Options) { o.MaxBatchBytes = math.MaxUint32 + 1 }, "MaxBatchBytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Dir: "x"}
			tc.mutate(&o)
			o.EnsureDefaults()
			err := o.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			_, err = Open(o)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestOptionsEnsureDefaults(t *testing.T) {
	o := Options{Dir: "x"}
	o.EnsureDefaults()
	assert.Equal(t, DefaultSegmentSize, o.SegmentSize)
	assert.Equal(t, DefaultMaxBatchBytes, o.MaxBatchBytes)
	assert.NotNil(t, o.Logger)
	assert.False(t, o.NoSync)
}

func TestOpenEmpty(t *testing.T) {
	opts := testOptions(t)
	opts.Dir = filepath.Join(opts.Dir, "nested", "dir")
	l := openT(t, opts)
	assert.Equal(t, uint64(0), l.FirstSeq())
	assert.Equal(t, uint64(0), l.LastSeq())
	assert.Nil(t, l.Repair())
	assert.Empty(t, replayAll(t, l, 0))
	assert.FileExists(t, filepath.Join(opts.Dir, segmentName(1)))

	seq, err := l.Append([]byte("first"))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), seq)
	assert.Equal(t, uint64(1), l.FirstSeq())
	assert.Equal(t, uint64(1), l.LastSeq())
}

func TestReopenKeepsEverything(t *testing.T) {
	opts := testOptions(t)
	opts.NoSync = false
	l := openT(t, opts)
	appendN(t, l, 100)
	closeT(t, l)
	require.Greater(t, len(segmentPaths(t, opts.Dir)), 2, "test needs several segments")

	l = openT(t, opts)
	assert.Nil(t, l.Repair())
	assert.NoError(t, l.Verify())
	assert.Equal(t, uint64(1), l.FirstSeq())
	requireEntries(t, l, 100)
	appendN(t, l, 10)
	closeT(t, l)

	l = openT(t, opts)
	requireEntries(t, l, 110)
}

func TestAppendAfterClose(t *testing.T) {
	l := openT(t, testOptions(t))
	appendN(t, l, 3)
	require.NoError(t, l.Close())
	_, err := l.Append([]byte("late"))
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, l.Replay(1, func(uint64, []byte) error { return nil }), ErrClosed)
	assert.NoError(t, l.Close(), "Close is idempotent")
	assert.Equal(t, uint64(3), l.LastSeq())
}

func TestAppendTooLarge(t *testing.T) {
	opts := testOptions(t)
	opts.MaxBatchBytes = 1000
	l := openT(t, opts)
	_, err := l.Append(make([]byte, 1001))
	require.ErrorIs(t, err, ErrTooLarge)
	require.NoError(t, l.Err(), "an oversized payload does not fail the log")
	seq, err := l.Append(make([]byte, 1000))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), seq)
}

// TestAppendReusesPayload checks that Append does not keep the caller's
// slice: overwriting it after Append returns must not change the log.
func TestAppendReusesPayload(t *testing.T) {
	l := openT(t, testOptions(t))
	buf := []byte("aaaa")
	_, err := l.Append(buf)
	require.NoError(t, err)
	copy(buf, "bbbb")
	_, err = l.Append(buf)
	require.NoError(t, err)
	got := replayAll(t, l, 1)
	require.Len(t, got, 2)
	assert.Equal(t, "aaaa", string(got[0].payload))
	assert.Equal(t, "bbbb", string(got[1].payload))
}

func TestReplayFrom(t *testing.T) {
	opts := testOptions(t)
	opts.SegmentSize = 1024
	l := openT(t, opts)
	appendN(t, l, 60)
	segs := segmentPaths(t, opts.Dir)
	require.Greater(t, len(segs), 3)
	second, ok := parseSegmentName(filepath.Base(segs[1]))
	require.True(t, ok)

	for _, from := range []uint64{0, 1, 2, second - 1, second, second + 1, 31, 59, 60, 61, 1000} {
		got := replayAll(t, l, from)
		start := max(from, 1)
		if start > 60 {
			assert.Empty(t, got, "from %d", from)
			continue
		}
		require.Len(t, got, int(60-start+1), "from %d", from)
		for i, e := range got {
			require.Equal(t, start+uint64(i), e.seq)
			require.Equal(t, payloadFor(e.seq), e.payload)
		}
	}
}

func TestReplayStopsOnCallbackError(t *testing.T) {
	l := openT(t, testOptions(t))
	appendN(t, l, 10)
	stop := errors.New("stop")
	var seen []uint64
	err := l.Replay(3, func(seq uint64, _ []byte) error {
		seen = append(seen, seq)
		if seq == 5 {
			return stop
		}
		return nil
	})
	assert.Same(t, stop, err)
	assert.Equal(t, []uint64{3, 4, 5}, seen)
}

// TestOpenIgnoresForeignFiles checks that files that are not segments (a
// lock file, the damaged/ directory) do not confuse Open.
func TestOpenIgnoresForeignFiles(t *testing.T) {
	opts := testOptions(t)
	l := openT(t, opts)
	appendN(t, l, 5)
	closeT(t, l)
	require.NoError(t, os.WriteFile(filepath.Join(opts.Dir, "LOCK"), []byte("pid 1"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(opts.Dir, damagedDir), 0o755))
	l = openT(t, opts)
	requireEntries(t, l, 5)
}

func TestSegmentStarts(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Options{Dir: dir, SegmentSize: 256, NoSync: true})
	assert.Empty(t, l.SegmentStarts(), "an empty log has no starts")
	for i := range 40 {
		_, err := l.Append([]byte(fmt.Sprintf("entry %02d with some padding", i)))
		require.NoError(t, err)
	}
	starts := l.SegmentStarts()
	require.Greater(t, len(starts), 2, "small segments cycle")
	segs, err := listSegments(vfs.Default, dir)
	require.NoError(t, err)
	for i, s := range starts {
		assert.Equal(t, segs[i].first, s)
		var first uint64
		require.NoError(t, l.Replay(s, func(seq uint64, _ []byte) error {
			if first == 0 {
				first = seq
			}
			return nil
		}))
		assert.Equal(t, s, first, "Replay starts at a segment start")
	}
	assert.Equal(t, uint64(1), starts[0])
	assert.LessOrEqual(t, starts[len(starts)-1], l.LastSeq())
	require.NoError(t, l.Close())
	assert.Nil(t, l.SegmentStarts(), "a closed log has none")
}
