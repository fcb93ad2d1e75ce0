package compaction

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// levelFor is the WriterOptions.Level to go with codec: the default zstd
// level, or none for S2.
func levelFor(codec Codec) zstd.EncoderLevel {
	if codec == CodecZstd {
		return zstd.SpeedDefault
	}
	return 0
}

// kv is one entry of a test segment.
type kv struct{ key, value []byte }

// testMeta is the Meta of test segments.
var testMeta = Meta{
	Kind: "attributes", Workspace: "ws", View: "users", Version: 3,
	Fingerprint: "sha256:abc", MinSeq: 17, MaxSeq: 4242, Level: 1,
}

// randomEntries returns n entries with distinct random keys, sorted. Keys
// are 0 to 24 bytes over a small alphabet (so that they share prefixes and
// the empty key can occur); values are mostly small, sometimes empty, and
// sometimes bigger than bigValue.
func randomEntries(rng *rand.Rand, n, bigValue int) []kv {
	seen := make(map[string]bool, n)
	out := make([]kv, 0, n)
	for len(out) < n {
		k := make([]byte, rng.IntN(25))
		for i := range k {
			k[i] = "abcdefgh\x00\xff"[rng.IntN(10)]
		}
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		out = append(out, kv{key: k, value: randomValue(rng, bigValue)})
	}
	slices.SortFunc(out, func(a, b kv) int { return bytes.Compare(a.key, b.key) })
	return out
}

// randomValue returns a value: empty, small, or bigger than big bytes.
func randomValue(rng *rand.Rand, big int) []byte {
	var n int
	switch r := rng.IntN(20); {
	case r == 0:
		return []byte{}
	case r == 1 && big > 0:
		n = big + 1 + rng.IntN(big)
	default:
		n = 1 + rng.IntN(120)
	}
	v := make([]byte, n)
	for i := range v { // compressible but not constant
		v[i] = byte(rng.IntN(4)) + 'a'
	}
	return v
}

// writeSegment writes entries to a new segment in a temporary directory
// and returns its path.
func writeSegment(t testing.TB, entries []kv, opts WriterOptions) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seg")
	info := writeSegmentAt(t, path, entries, opts)
	require.Equal(t, path, info.Path)
	return path
}

// writeSegmentAt writes entries to a segment at path.
func writeSegmentAt(t testing.TB, path string, entries []kv, opts WriterOptions) Info {
	t.Helper()
	w, err := Create(path, testMeta, opts)
	require.NoError(t, err)
	defer w.Abort()
	for _, e := range entries {
		require.NoError(t, w.Add(e.key, e.value))
	}
	info, err := w.Finish()
	require.NoError(t, err)
	return info
}

// openT opens a segment that is closed when the test ends.
func openT(t testing.TB, path string) *Reader {
	t.Helper()
	r, err := Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

// scan returns every entry of r, in iteration order, copied.
func scan(r *Reader) ([]kv, error) {
	var out []kv
	it := r.NewIterator()
	for it.Next() {
		out = append(out, kv{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
	}
	return out, it.Err()
}

// requireSameEntries checks got against want, byte for byte, including the
// distinction between empty and nil (a present value is never nil).
func requireSameEntries(t testing.TB, want, got []kv) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].key, got[i].key, "key %d", i)
		require.Equal(t, want[i].value, got[i].value, "value of key %d (%q)", i, want[i].key)
		require.NotNil(t, got[i].value, "value of key %d", i)
	}
}

// successor returns the smallest key greater than k: k + "\x00".
func successor(k []byte) []byte { return append(bytes.Clone(k), 0) }

// name of a test case built from its parameters.
func caseName(n, blockSize int) string { return fmt.Sprintf("keys=%d/block=%d", n, blockSize) }
