package tiles

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// packedSpec is a view over one input of type typ at position 1 of the
// values passed to Add (position 0 is read by no aggregator), as a
// packing Store keeps it.
func packedSpec(typ schema.Type, interval int64) Spec {
	fns := []string{"count", "last", "first_n", "approx_count_distinct"}
	switch typ.Kind {
	case schema.Int64, schema.Int32, schema.Float64, schema.Float32:
		fns = append(fns, "sum", "min", "max", "mean", "var_samp")
	}
	spec := Spec{Interval: interval, Start: math.MinInt64}
	for _, fn := range fns {
		a := Agg{Function: fn, Input: typ}
		if fn == "first_n" {
			a.N = 2
		}
		spec.Aggs = append(spec.Aggs, a)
		spec.AggInput = append(spec.AggInput, 1)
	}
	for ai := range spec.Aggs {
		for _, w := range []Window{{Size: Hour}, {Size: Day}, {Size: 3 * Day, Offset: Hour}, {Lifetime: true}} {
			spec.Features = append(spec.Features, Feature{Agg: ai, Window: w})
		}
	}
	return spec
}

// TestPackedEqualsUnpacked compares a Store that keeps its one input in
// its events (tiler.packed) with the same Store keeping its events'
// values by index, as Stores of several inputs do: on one workload (late
// and duplicate events, nulls) they must encode every key state to the
// same bytes, read the same values bit for bit, merge alike, and decode
// each other's encodings.
func TestPackedEqualsUnpacked(t *testing.T) {
	for _, interval := range []int64{0, 10 * Minute} {
		for ti, typ := range []schema.Type{tFloat64, tInt64, tInt32, tFloat32, tBool, tTime} {
			t.Run(fmt.Sprintf("%s/interval=%d", typ, interval), func(t *testing.T) {
				spec := packedSpec(typ, interval)
				packed, err := NewStore(spec, HotTier{})
				require.NoError(t, err)
				unpacked, err := NewStore(spec, HotTier{})
				require.NoError(t, err)
				require.True(t, packed.tl.packed, "a store of one %s input packs it", typ)
				unpacked.tl.packed = false
				rng := newRand(uint64(100*ti) + uint64(interval))
				evs := ksWorkload(rng)
				halves := [2]*Store{}
				for h := range halves {
					halves[h], err = NewStore(spec, HotTier{})
					require.NoError(t, err)
				}
				for i, e := range evs {
					vals := []schema.Value{schema.Str("unread"), {}}
					if rng.IntN(5) != 0 {
						vals[1] = genValue(rng, typ, 50)
					}
					packed.Add(e.key, e.o, vals)
					unpacked.Add(e.key, e.o, vals)
					halves[i*2/len(evs)].Add(e.key, e.o, vals)
				}
				out := [2][]schema.Value{make([]schema.Value, len(spec.Features)), make([]schema.Value, len(spec.Features))}
				end := evs[len(evs)-1].o.TS
				for _, key := range packed.Keys() {
					p, ok := packed.AppendKeyState(nil, key)
					require.True(t, ok)
					u, ok := unpacked.AppendKeyState(nil, key)
					require.True(t, ok)
					require.Equal(t, u, p, "%s: encodings differ", key)
					for _, at := range []int64{end - 2*Day - 17*Second, end - Hour, end + Second} {
						packed.Read(key, at, out[0])
						unpacked.Read(key, at, out[1])
						require.Equal(t, out[1], out[0], "%s at %d", key, at)
					}
					// Each decodes the other's encoding, and merges alike.
					dp, err := packed.DecodeKeyState(u)
					require.NoError(t, err)
					du, err := unpacked.DecodeKeyState(p)
					require.NoError(t, err)
					require.Equal(t, p, packed.AppendEncoded(nil, dp))
					require.Equal(t, u, unpacked.AppendEncoded(nil, du))
					// Each merges the halves' states, decoded into its layout.
					parts := func(s *Store) []*KeyState {
						var out []*KeyState
						for _, h := range halves {
							b, ok := h.AppendKeyState(nil, key)
							if !ok {
								out = append(out, nil)
								continue
							}
							x, err := s.DecodeKeyState(b)
							require.NoError(t, err)
							out = append(out, x)
						}
						return out
					}
					mp := packed.MergeKeyStates(parts(packed))
					mu := unpacked.MergeKeyStates(parts(unpacked))
					require.Equal(t, packed.AppendEncoded(nil, mp), unpacked.AppendEncoded(nil, mu), "%s: merges differ", key)
					packed.ReadWith(key, end+Second, out[0], false, []*KeyState{mp})
					unpacked.ReadWith(key, end+Second, out[1], false, []*KeyState{mu})
					require.Equal(t, out[1], out[0], "%s: merged reads differ", key)
				}
			})
		}
	}
}

// TestSortedEqualsKeys checks that Sorted walks a frozen store's keys as
// Keys does, with the states AppendKeyState encodes.
func TestSortedEqualsKeys(t *testing.T) {
	for _, interval := range []int64{0, 10 * Minute} {
		s, err := NewStore(ksSpec(interval), HotTier{})
		require.NoError(t, err)
		for _, e := range ksWorkload(newRand(uint64(interval) + 5)) {
			s.Add(e.key, e.o, e.vals)
		}
		s.Freeze()
		requireSortedEqualsKeys(t, s)
	}
}

// requireSortedEqualsKeys checks s.Sorted against Keys and AppendKeyState.
func requireSortedEqualsKeys(t *testing.T, s *Store) {
	t.Helper()
	x := s.Sorted()
	keys := s.Keys()
	require.Equal(t, len(keys), x.Len())
	for i, key := range keys {
		require.Equal(t, key, x.Key(i))
		want, ok := s.AppendKeyState(nil, key)
		require.True(t, ok)
		require.Equal(t, want, x.AppendState(nil, i))
	}
}

// TestSortedGroup checks Sorted of the Stores of a KeyGroup, before and
// after all of them are frozen (when they share the group's sort), with
// keys that only one of them holds.
func TestSortedGroup(t *testing.T) {
	g := NewKeyGroup(2)
	var stores [2]*Store
	for i := range stores {
		var err error
		stores[i], err = g.NewStore(ksSpec(int64(i)*10*Minute), HotTier{})
		require.NoError(t, err)
	}
	rng := newRand(9)
	for _, e := range ksWorkload(rng) {
		for i, s := range stores {
			if rng.IntN(4) != i { // some events, and so some keys, in one store only
				s.Add(e.key+fmt.Sprint(rng.IntN(3)), e.o, e.vals)
			}
		}
	}
	stores[0].Freeze()
	requireSortedEqualsKeys(t, stores[0]) // the other store is not frozen: its own sort
	stores[1].Freeze()
	requireSortedEqualsKeys(t, stores[0])
	requireSortedEqualsKeys(t, stores[1])
	require.NotNil(t, g.sorted, "the frozen group's Stores share its sort")
}
