package compaction

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMergeIterator merges overlapping segments (and an empty one) and
// compares the result with a naive model: a map from each key to the value
// of every input, nil where the input lacks the key.
func TestMergeIterator(t *testing.T) {
	for seed := range uint64(5) {
		t.Run("", func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			universe := randomEntries(rng, 1500, 0)
			const inputs = 4 // the third one is empty
			model := map[string][][]byte{}
			var readers []*Reader
			for in := range inputs {
				var entries []kv
				for _, u := range universe {
					if in == 2 || rng.IntN(3) > 0 { // each key in about 2/3 of the inputs
						continue
					}
					v := randomValue(rng, 500)
					entries = append(entries, kv{u.key, v})
					if model[string(u.key)] == nil {
						model[string(u.key)] = make([][]byte, inputs)
					}
					model[string(u.key)][in] = v
				}
				opts := WriterOptions{BlockSize: 64 << in}
				readers = append(readers, openT(t, writeSegment(t, entries, opts)))
			}
			keys := make([]string, 0, len(model))
			for k := range model {
				keys = append(keys, k)
			}
			slices.Sort(keys)

			its := make([]*Iterator, len(readers))
			for i, r := range readers {
				its[i] = r.NewIterator()
			}
			m := NewMergeIterator(its)
			n := 0
			for m.Next() {
				require.Less(t, n, len(keys), "more keys than the model")
				require.Equal(t, keys[n], string(m.Key()))
				vals := m.Values()
				require.Len(t, vals, inputs)
				for i, want := range model[keys[n]] {
					if want == nil {
						assert.Nil(t, vals[i], "key %q input %d", keys[n], i)
					} else {
						assert.NotNil(t, vals[i], "key %q input %d", keys[n], i)
						assert.Equal(t, want, vals[i], "key %q input %d", keys[n], i)
					}
				}
				n++
			}
			require.NoError(t, m.Err())
			require.Equal(t, len(keys), n)
			assert.False(t, m.Next(), "Next after the end")
		})
	}
}

func TestMergeIteratorNoInputs(t *testing.T) {
	m := NewMergeIterator(nil)
	assert.False(t, m.Next())
	assert.NoError(t, m.Err())
	assert.Empty(t, m.Values())
}

func TestMergeIteratorSingleInput(t *testing.T) {
	entries := randomEntries(rand.New(rand.NewPCG(11, 12)), 300, 0)
	r := openT(t, writeSegment(t, entries, WriterOptions{BlockSize: 200}))
	m := NewMergeIterator([]*Iterator{r.NewIterator()})
	var got []kv
	for m.Next() {
		got = append(got, kv{bytes.Clone(m.Key()), bytes.Clone(m.Values()[0])})
	}
	require.NoError(t, m.Err())
	requireSameEntries(t, entries, got)
}

// TestMergeIteratorStopsOnCorruption damages the last block of one input:
// the merge must stop with its CorruptionError, not skip the input.
func TestMergeIteratorStopsOnCorruption(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	good := openT(t, writeSegment(t, randomEntries(rng, 300, 0), WriterOptions{BlockSize: 200}))
	path := writeSegment(t, randomEntries(rng, 300, 0), WriterOptions{BlockSize: 200})
	r := openT(t, path)
	last := r.blocks[len(r.blocks)-1]
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	data[last.off+int64(last.compLen)/2] ^= 0x40
	require.NoError(t, os.WriteFile(path, data, 0o644))
	bad := openT(t, path) // blocks are only checked when read

	m := NewMergeIterator([]*Iterator{good.NewIterator(), bad.NewIterator()})
	for m.Next() {
	}
	var ce *CorruptionError
	require.ErrorAs(t, m.Err(), &ce)
	assert.Equal(t, last.off, ce.Offset)
	assert.Equal(t, reasonBlockCRC, ce.Reason)
	assert.False(t, m.Next())
}

func TestIteratorKeysValidUntilNextMove(t *testing.T) {
	// Keys from different blocks: moving on reuses the buffers, which is
	// why callers must copy. This pins the documented contract: the
	// current key stays intact until the next move.
	entries := []kv{{[]byte("a"), []byte(strings.Repeat("1", 100))}, {[]byte("b"), []byte(strings.Repeat("2", 100))}}
	r := openT(t, writeSegment(t, entries, WriterOptions{BlockSize: 1}))
	it := r.NewIterator()
	require.True(t, it.Next())
	k, v := it.Key(), it.Value()
	require.True(t, r.blocks[0].count == 1 && len(r.blocks) == 2)
	_, _, err := r.Get([]byte("b")) // another reader of the same Reader
	require.NoError(t, err)
	assert.Equal(t, "a", string(k))
	assert.Equal(t, entries[0].value, v)
	require.True(t, it.Next())
	assert.Equal(t, "b", string(it.Key()))
	assert.NoError(t, it.Err())
}

// TestBlockSeekGallops checks blockBuf.seek, whose forward seeks gallop
// from the current entry, against a scan: for every start and every key
// (present, between entries, before the first and past the last), the
// first entry at or after the start whose key is >= the key.
func TestBlockSeekGallops(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 8, 9, 64, 100} {
		var b blockBuf
		for i := range n {
			k := fmt.Appendf(nil, "k%04d", 2*i+1) // odd keys; even ones fall between
			e := entry{k0: uint32(len(b.data))}
			b.data = append(b.data, k...)
			e.k1, e.v0, e.v1 = uint32(len(b.data)), uint32(len(b.data)), uint32(len(b.data))
			b.ents = append(b.ents, e)
		}
		for from := 0; from <= n; from++ {
			for x := 0; x <= 2*n+1; x++ {
				key := fmt.Appendf(nil, "k%04d", x)
				want := from
				for want < n && bytes.Compare(b.key(want), key) < 0 {
					want++
				}
				require.Equal(t, want, b.seek(key, from), "n %d, from %d, key %s", n, from, key)
			}
		}
	}
}
