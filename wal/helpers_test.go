package wal

import (
	"github.com/featurelog/featurelog/vfs"

	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// testOptions returns options for a log in a fresh temporary directory.
// Durability is not what most tests check, so they skip fsyncs.
func testOptions(t testing.TB) Options {
	return Options{
		Dir:         filepath.Join(t.TempDir(), "wal"),
		SegmentSize: 4 << 10,
		NoSync:      true,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// openT opens a log that is closed when the test ends.
func openT(t testing.TB, opts Options) *Log {
	t.Helper()
	l, err := Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// payloadFor is the deterministic payload of seq, of varying length (0
// included) and content.
func payloadFor(seq uint64) []byte {
	n := int(seq*37) % 200
	return bytes.Repeat([]byte{byte(seq)}, n)
}

// appendN appends payloadFor(seq) for the next n seqs.
func appendN(t testing.TB, l *Log, n int) {
	t.Helper()
	for range n {
		want := l.LastSeq() + 1
		seq, err := l.Append(payloadFor(want))
		require.NoError(t, err)
		require.Equal(t, want, seq)
	}
}

// entry is one replayed entry.
type entry struct {
	seq     uint64
	payload []byte
}

// replayAll returns every entry with seq >= from.
func replayAll(t testing.TB, l *Log, from uint64) []entry {
	t.Helper()
	var got []entry
	require.NoError(t, l.Replay(from, func(seq uint64, p []byte) error {
		got = append(got, entry{seq, bytes.Clone(p)})
		return nil
	}))
	return got
}

// requireEntries checks that l holds exactly payloadFor(1..n).
func requireEntries(t testing.TB, l *Log, n uint64) {
	t.Helper()
	require.Equal(t, n, l.LastSeq())
	got := replayAll(t, l, 1)
	require.Len(t, got, int(n))
	for i, e := range got {
		require.Equal(t, uint64(i+1), e.seq)
		require.Equal(t, payloadFor(e.seq), e.payload, "payload of seq %d", e.seq)
	}
}

// segmentPaths lists the segment files of dir in order.
func segmentPaths(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := listSegments(vfs.Default, dir)
	require.NoError(t, err)
	paths := make([]string, len(segs))
	for i, s := range segs {
		paths[i] = s.path
	}
	return paths
}

// entryOffsets returns the offset of every entry of a valid segment file,
// plus the file size as a final element.
func entryOffsets(t testing.TB, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var offs []int
	for off := 0; off < len(data); {
		offs = append(offs, off)
		_, n, st := splitEntry(data[off:])
		require.Equal(t, entryOK, st, "entry at %d", off)
		off += n
	}
	return append(offs, len(data))
}

// flipBit flips one bit of the byte at off in path.
func flipBit(t testing.TB, path string, off int) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	data[off] ^= 0x10
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

// closeT closes l and checks the result.
func closeT(t testing.TB, l *Log) {
	t.Helper()
	require.NoError(t, l.Close())
}

func (e entry) String() string { return fmt.Sprintf("{%d %x}", e.seq, e.payload) }
