package engine

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// TestAttrTableModel: inserts, deletions and re-insertions of keys, many
// sharing hashes' probe runs, checked after every step against a Go map:
// each key found exactly when the model has it, with its own history,
// and the count and the walk (each) equal to the model's.
func TestAttrTableModel(t *testing.T) {
	seed := maphash.MakeSeed()
	for _, collide := range []bool{false, true} {
		t.Run(fmt.Sprint("collide=", collide), func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			hash := func(k string) uint64 {
				if collide { // every key in one probe run: find must compare keys
					return 7
				}
				return maphash.String(seed, k)
			}
			var tb attrTable
			model := map[string]*attrHist{}
			for step := range 4000 {
				k := fmt.Sprint("k", r.IntN(300))
				switch r.IntN(3) {
				case 0, 1:
					if model[k] == nil {
						h := &attrHist{key: k}
						tb.put(hash(k), h)
						model[k] = h
					}
				default:
					require.Equal(t, model[k] != nil, tb.remove(hash(k), k), "step %d: remove %s", step, k)
					delete(model, k)
				}
				probe := fmt.Sprint("k", r.IntN(300))
				require.Same(t, model[probe], tb.get(hash(probe), probe), "step %d: get %s", step, probe)
				if model[probe] == nil {
					require.Nil(t, tb.get(hash(probe), probe))
				}
			}
			require.Equal(t, len(model), tb.n)
			seen := map[string]bool{}
			tb.each(func(h *attrHist) {
				require.False(t, seen[h.key], "%s walked twice", h.key)
				seen[h.key] = true
				require.Same(t, model[h.key], h)
			})
			require.Len(t, seen, len(model))
		})
	}
}

// TestArenaChunks: the arena's versions fill its chunks in order, without
// gaps or overlaps, the chunks doubling from arenaFirst to arenaChunk
// versions and then staying at arenaChunk.
func TestArenaChunks(t *testing.T) {
	var a attrArena
	for at := range uint32(5 * arenaChunk) {
		got := a.add([]schema.Value{schema.Int(int64(at)), schema.Int(-int64(at))})
		require.Equal(t, at, got)
	}
	want := []int{}
	for size := arenaFirst; size < arenaChunk; size *= 2 {
		want = append(want, size)
	}
	for range (5*arenaChunk - arenaDoubled + arenaChunk - 1) / arenaChunk { // the rest, in chunks of arenaChunk
		want = append(want, arenaChunk)
	}
	var sizes []int
	for _, c := range a.chunks {
		sizes = append(sizes, len(c)/2)
	}
	require.Equal(t, want, sizes)
	for at := range uint32(5 * arenaChunk) {
		v := a.at(at)
		require.Len(t, v, 2)
		require.Equal(t, int64(at), v[0].I, "version %d", at)
		require.Equal(t, -int64(at), v[1].I, "version %d", at)
	}
}
