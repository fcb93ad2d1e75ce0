package tiles

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// TestGroupEqualsStandalone feeds the Stores of a KeyGroup and standalone
// twins the same events, each store a share of the workload's keys (so
// a key's entry has empty slots), through AddLocked and Add, with deletes
// and reads through a hot tier that never forgets: every read,
// encoding, snapshot, key list and count must be the same bit for bit,
// before and after Freeze.
func TestGroupEqualsStandalone(t *testing.T) {
	for _, interval := range []int64{0, 10 * Minute, Hour} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("%s/seed%d", intervalName(interval), seed), func(t *testing.T) {
				checkGroup(t, newRand(seed+90), ksSpec(interval))
			})
		}
	}
}

func checkGroup(t *testing.T, rng *rand.Rand, spec Spec) {
	const n = 3
	g := NewKeyGroup(n)
	grouped, alone := make([]*Store, n), make([]*Store, n)
	for i := range n {
		hot := HotTier{Cache: foreverCache{}, ID: 1, MinSpan: 10 * Minute}
		var err error
		grouped[i], err = g.NewStore(spec, hot)
		require.NoError(t, err)
		alone[i] = mustStore(t, spec, HotTier{Cache: foreverCache{}, ID: 1, MinSpan: 10 * Minute})
	}
	_, err := g.NewStore(spec, HotTier{})
	require.ErrorIs(t, err, errGroupFull)
	evs := append(ksWorkload(rng), pendWorkload(rng, 2)...)
	keys := map[string]bool{}
	skip := func(i int, key string) bool { return i > 0 && len(key)%(i+2) == 0 } // store i sees only some keys
	got, want := make([]schema.Value, len(spec.Features)), make([]schema.Value, len(spec.Features))
	compare := func(i int, key string, at int64) {
		t.Helper()
		grouped[i].Read(key, at, got)
		alone[i].Read(key, at, want)
		for fi := range want {
			require.True(t, want[fi].Kind == got[fi].Kind && want[fi].Equal(got[fi]), "store %d, %s at %d, feature %d: want %+v got %+v", i, key, at, fi, want[fi], got[fi])
		}
		a, okA := grouped[i].AppendKeyState(nil, key)
		b, okB := alone[i].AppendKeyState(nil, key)
		require.Equal(t, okB, okA, "store %d, %s: has a state", i, key)
		require.Equal(t, b, a, "store %d, %s: encodings", i, key)
		if okB {
			require.Equal(t, alone[i].Own(key).MemSize(), grouped[i].Own(key).MemSize())
		} else {
			require.Nil(t, grouped[i].Own(key))
		}
	}
	compareAll := func() {
		t.Helper()
		for i := range n {
			require.Equal(t, alone[i].Keys(), grouped[i].Keys(), "store %d: keys", i)
			require.Equal(t, alone[i].KeyCount(), grouped[i].KeyCount())
			require.Equal(t, alone[i].Stats(), grouped[i].Stats())
		}
	}
	for j, e := range evs {
		keys[e.key] = true
		for i := range n {
			if skip(i, e.key) {
				continue
			}
			if j%2 == 0 {
				r := g.Lock(e.key)
				grouped[i].AddLocked(r, e.o, e.vals)
				g.Unlock(r)
			} else {
				grouped[i].Add(e.key, e.o, e.vals)
			}
			alone[i].Add(e.key, e.o, e.vals)
		}
		switch rng.IntN(150) {
		case 0:
			i := rng.IntN(n)
			compare(i, e.key, e.o.TS+rng.Int64N(Day))
		case 1:
			i := rng.IntN(n)
			require.Equal(t, alone[i].Delete(e.key), grouped[i].Delete(e.key))
		case 2:
			compareAll()
		case 3:
			if spec.Interval == 0 {
				i := rng.IntN(n)
				up := Order{TS: math.MaxInt64}
				grouped[i].ReadLogged(e.key, e.o.TS+1, up, got, true, nil)
				alone[i].ReadLogged(e.key, e.o.TS+1, up, want, true, nil)
				require.Equal(t, want, got, "%s: ReadLogged after event %d", e.key, j)
			}
		}
	}
	compareAll()
	for key := range keys {
		for i := range n {
			for _, at := range []int64{evs[0].o.TS, evs[len(evs)/2].o.TS + Hour, math.MaxInt64} {
				compare(i, key, at)
			}
		}
	}
	r := g.Lock("x")
	require.Panics(t, func() { alone[0].AddLocked(r, Order{}, make([]schema.Value, ksWidth)) }, "AddLocked of another group's key")
	g.Unlock(r)
	for i := range n {
		grouped[i].Freeze()
		alone[i].Freeze()
	}
	compareAll()
	for key := range keys {
		for i := range n {
			compare(i, key, math.MaxInt64)
		}
	}
}

// TestGroupConcurrent adds to a group's Stores from several goroutines,
// each key's events through one of them, while others read: run with
// -race. Every store must end with every event.
func TestGroupConcurrent(t *testing.T) {
	spec := hotSpec(0)
	g := NewKeyGroup(2)
	var stores []*Store
	for range 2 {
		s, err := g.NewStore(spec, HotTier{})
		require.NoError(t, err)
		stores = append(stores, s)
	}
	const writers, keys, events = 4, 50, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for e := range events {
				for k := w; k < keys; k += writers {
					r := g.Lock(fmt.Sprint("k", k))
					for _, s := range stores {
						s.AddLocked(r, Order{TS: int64(e%37) * Minute, Seq: uint64(e)}, []schema.Value{schema.Float(float64(e))})
					}
					g.Unlock(r)
				}
			}
		}()
		go func() {
			defer wg.Done()
			out := make([]schema.Value, len(spec.Features))
			for e := range events {
				stores[e%2].Read(fmt.Sprint("k", (w+e)%keys), Hour, out)
				_ = stores[e%2].Keys()
			}
		}()
	}
	wg.Wait()
	for _, s := range stores {
		require.Equal(t, Stats{Keys: keys, RawEvents: keys * events, Tiles: s.Stats().Tiles}, s.Stats())
	}
}
