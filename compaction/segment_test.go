package compaction

import (
	"sort"

	"github.com/featurelog/featurelog/vfs"

	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	big := bytes.Repeat([]byte("xyz"), 10_000)
	cases := []struct {
		name    string
		entries []kv
		opts    WriterOptions
	}{
		{name: "empty", entries: nil},
		{name: "one_key", entries: []kv{{[]byte("k"), []byte("v")}}},
		{name: "one_empty_value", entries: []kv{{[]byte("k"), []byte{}}}},
		{name: "empty_key_and_value", entries: []kv{{[]byte{}, []byte{}}}},
		{name: "one_value_bigger_than_block", entries: []kv{{[]byte("k"), big}}, opts: WriterOptions{BlockSize: 1024}},
		{name: "small_blocks_big_values", entries: randomEntries(rng, 500, 300), opts: WriterOptions{BlockSize: 256}},
		{name: "block_per_entry", entries: randomEntries(rng, 300, 0), opts: WriterOptions{BlockSize: 1}},
		{name: "default_blocks", entries: randomEntries(rng, 3000, 20_000)},
		{name: "incompressible", entries: incompressibleEntries(rng, 200, 3000), opts: WriterOptions{BlockSize: 4096}},
		{name: "fastest", entries: randomEntries(rng, 1000, 0), opts: WriterOptions{Codec: CodecZstd, Level: zstd.SpeedFastest, BlockSize: 2048}},
		{name: "best", entries: randomEntries(rng, 1000, 0), opts: WriterOptions{Codec: CodecZstd, Level: zstd.SpeedBestCompression, BlockSize: 2048}},
	}
	for _, codec := range codecs {
		for _, tc := range cases {
			if tc.opts.Codec != 0 && tc.opts.Codec != codec {
				continue
			}
			t.Run(codec.String()+"/"+tc.name, func(t *testing.T) {
				opts := tc.opts
				opts.Codec = codec
				testRoundTrip(t, tc.entries, opts, rng)
			})
		}
	}
}

// incompressibleEntries returns n entries of random bytes, values of up to
// maxValue bytes: blocks that S2 stores as literals.
func incompressibleEntries(rng *rand.Rand, n, maxValue int) []kv {
	entries := make([]kv, n)
	for i := range entries {
		v := make([]byte, rng.IntN(maxValue+1))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		entries[i] = kv{[]byte(fmt.Sprintf("k%06d", i)), v}
	}
	return entries
}

// testRoundTrip writes entries with opts and reads them back every way.
func testRoundTrip(t *testing.T, entries []kv, opts WriterOptions, rng *rand.Rand) {
	path := filepath.Join(t.TempDir(), "seg")
	info := writeSegmentAt(t, path, entries, opts)
	r := openT(t, path)
	assert.Equal(t, opts.Codec, r.Codec())
	checkInfo(t, r, info, entries)
	checkScan(t, r, entries)
	checkGet(t, r, entries, rng)
	checkSeekGE(t, r, entries)
}

// checkInfo compares Info, the Reader's accessors and the file.
func checkInfo(t *testing.T, r *Reader, info Info, entries []kv) {
	var raw int64
	for _, e := range entries {
		raw += int64(len(e.key) + len(e.value))
	}
	st, err := os.Stat(info.Path)
	require.NoError(t, err)
	assert.Equal(t, Info{Path: info.Path, Keys: len(entries), RawBytes: raw, FileBytes: st.Size()}, info)
	assert.Equal(t, info.Path, r.Path())
	assert.Equal(t, len(entries), r.Keys())
	assert.Equal(t, raw, r.RawBytes())
	assert.Equal(t, st.Size(), r.FileBytes())
	assert.Equal(t, testMeta, r.Meta())
	assert.NoFileExists(t, info.Path+".tmp")
}

// checkScan compares a full iteration with entries.
func checkScan(t *testing.T, r *Reader, entries []kv) {
	got, err := scan(r)
	require.NoError(t, err)
	requireSameEntries(t, entries, got)
	it := r.NewIterator()
	for it.Next() {
	}
	assert.False(t, it.Next(), "Next after the end")
	assert.Nil(t, it.Key())
	assert.Nil(t, it.Value())
	assert.NoError(t, it.Err())
}

// checkGet looks up every key, and keys that are absent: just after each
// key, and random ones.
func checkGet(t *testing.T, r *Reader, entries []kv, rng *rand.Rand) {
	present := make(map[string]bool, len(entries))
	for _, e := range entries {
		present[string(e.key)] = true
		assert.True(t, r.MayContain(e.key))
		v, ok, err := r.Get(e.key)
		require.NoError(t, err)
		require.True(t, ok, "Get(%q)", e.key)
		require.NotNil(t, v)
		require.Equal(t, e.value, v)
		if len(v) > 0 { // the caller owns the value
			v[0]++
			v2, _, _ := r.Get(e.key)
			require.Equal(t, e.value, v2)
		}
	}
	absent := [][]byte{{}, []byte("zzzz"), {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	for _, e := range entries {
		absent = append(absent, successor(e.key))
	}
	for range 200 {
		absent = append(absent, randomEntries(rng, 1, 0)[0].key)
	}
	for _, k := range absent {
		if present[string(k)] {
			continue
		}
		v, ok, err := r.Get(k)
		require.NoError(t, err)
		require.False(t, ok, "Get(%q) of an absent key", k)
		require.Nil(t, v)
	}
}

// checkSeekGE seeks at every key and between keys, forward then backward.
func checkSeekGE(t *testing.T, r *Reader, entries []kv) {
	it := r.NewIterator()
	for _, e := range entries {
		require.True(t, it.SeekGE(e.key), "SeekGE(%q)", e.key)
		require.Equal(t, e.key, it.Key())
		require.Equal(t, e.value, it.Value())
	}
	// Forward seeks reuse the decoded block: each block is read once.
	assert.Equal(t, len(r.blocks), it.loads, "blocks read by in-order seeks")

	for i := len(entries) - 1; i >= 0; i-- {
		require.True(t, it.SeekGE(entries[i].key))
		require.Equal(t, entries[i].key, it.Key())
		// Between keys: the next key, or the end.
		if i+1 < len(entries) {
			require.True(t, it.SeekGE(successor(entries[i].key)))
			require.Equal(t, entries[i+1].key, it.Key())
			if i+2 < len(entries) {
				require.True(t, it.Next())
				require.Equal(t, entries[i+2].key, it.Key())
			} else {
				require.False(t, it.Next())
			}
		} else {
			require.False(t, it.SeekGE(successor(entries[i].key)))
			require.Nil(t, it.Key())
			require.False(t, it.Next())
		}
	}
	// Before the first key: the first entry.
	if len(entries) > 0 {
		require.True(t, it.SeekGE(nil))
		require.Equal(t, entries[0].key, it.Key())
	} else {
		require.False(t, it.SeekGE(nil))
	}
	require.NoError(t, it.Err())
}

// TestSeekGERandom: seeks that step forward a little (the fast path
// through the current or the next block), jump, go back, land between
// keys and past the end, each checked against a binary search of the
// entries; interleaved Nexts move the iterator without a seek.
func TestSeekGERandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	entries := randomEntries(rng, 2000, 0)
	for _, bs := range []int{1, 300, 4096} {
		r := openT(t, writeSegment(t, entries, WriterOptions{BlockSize: bs}))
		it := r.NewIterator()
		at := 0
		for range 5000 {
			var key []byte
			switch rng.IntN(6) {
			case 0, 1: // a small step forward
				at = min(at+rng.IntN(4), len(entries)-1)
				key = entries[at].key
			case 2: // between keys
				at = rng.IntN(len(entries))
				key = successor(entries[at].key)
			case 3: // anywhere
				at = rng.IntN(len(entries))
				key = entries[at].key
			case 4: // past the end
				key = successor(entries[len(entries)-1].key)
			default:
				if it.Key() != nil {
					want := sort.Search(len(entries), func(i int) bool { return bytes.Compare(entries[i].key, it.Key()) > 0 })
					if it.Next() {
						require.Equal(t, entries[want].key, it.Key())
					} else {
						require.Equal(t, len(entries), want)
					}
				}
				continue
			}
			want := sort.Search(len(entries), func(i int) bool { return bytes.Compare(entries[i].key, key) >= 0 })
			if want == len(entries) {
				require.False(t, it.SeekGE(key), "SeekGE(%q), block size %d", key, bs)
				continue
			}
			require.True(t, it.SeekGE(key), "SeekGE(%q), block size %d", key, bs)
			require.Equal(t, entries[want].key, it.Key(), "SeekGE(%q), block size %d", key, bs)
			require.Equal(t, entries[want].value, it.Value())
		}
		require.NoError(t, it.Err())
	}
}

func TestSeekGEThenNextWalksToTheEnd(t *testing.T) {
	entries := randomEntries(rand.New(rand.NewPCG(3, 4)), 400, 0)
	r := openT(t, writeSegment(t, entries, WriterOptions{BlockSize: 300}))
	for i := 0; i < len(entries); i += 37 {
		it := r.NewIterator()
		require.True(t, it.SeekGE(entries[i].key))
		var got []kv
		for ok := true; ok; ok = it.Next() {
			got = append(got, kv{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
		}
		require.NoError(t, it.Err())
		requireSameEntries(t, entries[i:], got)
	}
}

func TestBlockCutting(t *testing.T) {
	const blockSize = 100
	rng := rand.New(rand.NewPCG(5, 6))
	var entries []kv
	for i := range 300 {
		v := make([]byte, rng.IntN(40))
		if i%50 == 7 {
			v = make([]byte, 3*blockSize) // bigger than a block: alone in one
		}
		entries = append(entries, kv{[]byte{byte(i >> 8), byte(i)}, v})
	}
	r := openT(t, writeSegment(t, entries, WriterOptions{BlockSize: blockSize}))
	next := 0
	for i, h := range r.blocks {
		require.Equal(t, entries[next].key, h.first, "block %d", i)
		big := false
		for j := next; j < next+h.count; j++ {
			big = big || len(entries[j].value) > blockSize
		}
		if big {
			assert.Equal(t, 1, h.count, "block %d holds an entry bigger than a block, and others", i)
		} else {
			assert.LessOrEqual(t, h.rawLen, blockSize+1, "block %d (count varint included)", i)
		}
		if i+1 < len(r.blocks) && !big && len(entries[next+h.count].value) <= blockSize {
			// The block was cut because the next entry did not fit.
			assert.Greater(t, h.rawLen-1+entrySize(entries[next+h.count].key, entries[next+h.count].value), blockSize)
		}
		next += h.count
	}
	require.Equal(t, len(entries), next)
}

func TestAddOutOfOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg")
	w, err := Create(path, testMeta, WriterOptions{})
	require.NoError(t, err)
	defer w.Abort()
	require.NoError(t, w.Add([]byte("b"), []byte("1")))
	for _, k := range []string{"a", "b", "", "ab"} {
		err := w.Add([]byte(k), nil)
		require.ErrorIs(t, err, ErrKeyOrder, "key %q after b", k)
	}
	// The writer stays usable.
	require.NoError(t, w.Add([]byte("b\x00"), []byte("2")))
	require.NoError(t, w.Add([]byte("c"), nil))
	_, err = w.Finish()
	require.NoError(t, err)
	got, err := scan(openT(t, path))
	require.NoError(t, err)
	requireSameEntries(t, []kv{{[]byte("b"), []byte("1")}, {[]byte("b\x00"), []byte("2")}, {[]byte("c"), []byte{}}}, got)
}

func TestAddCopiesItsArguments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg")
	w, err := Create(path, testMeta, WriterOptions{BlockSize: 1 << 20})
	require.NoError(t, err)
	k, v := []byte("key0"), []byte("value0")
	for i := range 5 {
		k[3], v[5] = byte('0'+i), byte('0'+i)
		require.NoError(t, w.Add(k, v))
	}
	k[3], v[5] = 'x', 'x' // must not change what was added
	_, err = w.Finish()
	require.NoError(t, err)
	got, err := scan(openT(t, path))
	require.NoError(t, err)
	require.Len(t, got, 5)
	for i, e := range got {
		assert.Equal(t, []byte{'k', 'e', 'y', byte('0' + i)}, e.key)
		assert.Equal(t, []byte{'v', 'a', 'l', 'u', 'e', byte('0' + i)}, e.value)
	}
}

func TestAbortRemovesTemp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg")
	w, err := Create(path, testMeta, WriterOptions{})
	require.NoError(t, err)
	require.FileExists(t, path+".tmp")
	require.NoError(t, w.Add([]byte("a"), []byte("1")))
	require.NoError(t, w.Abort())
	assert.NoFileExists(t, path+".tmp")
	assert.NoFileExists(t, path)
	assert.NoError(t, w.Abort(), "second Abort")
	assert.ErrorIs(t, w.Add([]byte("b"), nil), ErrWriterClosed)
	_, err = w.Finish()
	assert.ErrorIs(t, err, ErrWriterClosed)
}

func TestFinishPutsTheFileInPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seg")
	// A leftover of a crashed writer is overwritten.
	require.NoError(t, os.WriteFile(path+".tmp", []byte("garbage"), 0o644))
	w, err := Create(path, testMeta, WriterOptions{})
	require.NoError(t, err)
	require.NoError(t, w.Add([]byte("a"), []byte("1")))
	require.NoFileExists(t, path, "the file appears only at Finish")
	info, err := w.Finish()
	require.NoError(t, err)
	assert.Equal(t, path, info.Path)
	assert.NoFileExists(t, path+".tmp")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1)
	assert.Equal(t, "seg", ents[0].Name())

	_, err = w.Finish()
	assert.ErrorIs(t, err, ErrWriterClosed)
	assert.ErrorIs(t, w.Add([]byte("b"), nil), ErrWriterClosed)
	assert.NoError(t, w.Abort(), "Abort after Finish is a no-op")
	assert.FileExists(t, path)
}

func TestCreateErrors(t *testing.T) {
	_, err := Create(filepath.Join(t.TempDir(), "missing", "seg"), testMeta, WriterOptions{})
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = Create(filepath.Join(t.TempDir(), "seg"), testMeta, WriterOptions{BlockSize: -1})
	assert.ErrorContains(t, err, "BlockSize")
}

func TestWriterOptions(t *testing.T) {
	var o WriterOptions
	o.EnsureDefaults()
	assert.Equal(t, WriterOptions{BlockSize: DefaultBlockSize, Codec: CodecS2, FS: vfs.Default}, o)
	require.NoError(t, o.Validate())
	o = WriterOptions{Codec: CodecZstd}
	o.EnsureDefaults()
	assert.Equal(t, WriterOptions{BlockSize: DefaultBlockSize, Codec: CodecZstd, Level: zstd.SpeedDefault, FS: vfs.Default}, o)
	require.NoError(t, o.Validate())
	for _, bad := range []WriterOptions{
		{BlockSize: -1, Codec: CodecS2},
		{BlockSize: MaxEntrySize + 1, Codec: CodecS2},
		{BlockSize: 10, Codec: 3},
		{BlockSize: 10, Codec: CodecS2, Level: zstd.SpeedFastest},
		{BlockSize: 10, Codec: CodecZstd, Level: zstd.SpeedBestCompression + 1},
		{BlockSize: 10, Codec: CodecZstd, Level: -1},
	} {
		assert.Error(t, bad.Validate(), "%+v", bad)
	}
}

func TestGetAndIterateAfterClose(t *testing.T) {
	r, err := Open(writeSegment(t, []kv{{[]byte("a"), []byte("1")}}, WriterOptions{}))
	require.NoError(t, err)
	it := r.NewIterator()
	require.NoError(t, r.Close())
	_, _, err = r.Get([]byte("a"))
	assert.ErrorIs(t, err, ErrClosed)
	assert.False(t, it.Next())
	assert.ErrorIs(t, it.Err(), ErrClosed)
	assert.ErrorIs(t, r.Close(), ErrClosed)
	assert.True(t, r.MayContain([]byte("a")), "the bitmap stays in memory")
}

func TestConcurrentGets(t *testing.T) {
	entries := randomEntries(rand.New(rand.NewPCG(7, 8)), 2000, 0)
	r := openT(t, writeSegment(t, entries, WriterOptions{BlockSize: 512}))
	done := make(chan error)
	for g := range 8 {
		go func() {
			for i := g; i < len(entries); i += 3 {
				v, ok, err := r.Get(entries[i].key)
				if err == nil && (!ok || !bytes.Equal(v, entries[i].value)) {
					err = assert.AnError
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		require.NoError(t, <-done)
	}
}

// TestKeyHashIsStable pins KeyHash: it is part of the file format.
func TestKeyHashIsStable(t *testing.T) {
	assert.Equal(t, uint32(0x51d8e999), KeyHash(nil))
	assert.Equal(t, uint32(0x51d8e999), KeyHash([]byte{}))
	assert.Equal(t, uint32(0xa8d2d1c2), KeyHash([]byte("user:42")))
}
