package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// TestAttrStoreModel: versions inserted in and out of time order (a hot
// key among cold ones, ties in event time), with reads between inserts,
// read back like a naive model that keeps every key's versions sorted:
// latestBefore at times around every version, history whole and sorted,
// each version with its own values (kept in the shard's arena, over
// several of its chunks for the hot key).
func TestAttrStoreModel(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 9))
			s := newAttrStore()
			model := map[string][]version{}
			var seq uint64
			for i := range 5000 {
				key := "hot"
				if r.IntN(3) == 0 {
					key = fmt.Sprint("cold", r.IntN(20))
				}
				ts := int64(i)
				if r.IntN(2) == 0 { // late, sometimes tied with others
					ts = r.Int64N(int64(i) + 1)
				}
				seq++
				v := version{ts: ts, seq: seq, idx: uint32(r.IntN(3)), vals: []schema.Value{schema.Int(int64(seq))}}
				s.insert(key, v)
				model[key] = append(model[key], v)
				if r.IntN(10) == 0 {
					checkAttrKey(t, r, s, key, model[key])
				}
			}
			for key, vs := range model {
				checkAttrKey(t, r, s, key, vs)
			}
			keys, versions := s.stats()
			require.Equal(t, len(model), keys)
			require.Equal(t, 5000, versions)
		})
	}
}

func checkAttrKey(t *testing.T, r *rand.Rand, s *attrStore, key string, vs []version) {
	t.Helper()
	want := slices.Clone(vs)
	slices.SortFunc(want, func(a, b version) int {
		if versionLess(&a, &b) {
			return -1
		}
		return 1
	})
	for range 20 {
		at := want[r.IntN(len(want))].ts + int64(r.IntN(3)) - 1
		var exp version
		found := false
		for i := range want {
			if want[i].ts < at {
				exp, found = want[i], true
			}
		}
		got, ok := s.latestBefore(key, at)
		require.Equal(t, found, ok, "key %s at %d", key, at)
		if found {
			require.Equal(t, exp.seq, got.seq, "key %s at %d", key, at)
			require.Equal(t, exp.vals, got.vals, "key %s at %d: the values of the version read", key, at)
		}
	}
	if r.IntN(4) == 0 { // a history read merges the tail
		h, ok := s.history(key)
		require.True(t, ok)
		require.Equal(t, len(want), len(h))
		for i := range h {
			require.Equal(t, want[i].seq, h[i].seq, "key %s, version %d", key, i)
			require.Equal(t, want[i].vals, h[i].vals, "key %s, version %d", key, i)
		}
	}
}

// TestAttrStoreConcurrent: inserts of late versions beside latestBefore
// and history readers of the same key (run with -race); a history slice
// handed out never changes under its holder.
func TestAttrStoreConcurrent(t *testing.T) {
	s := newAttrStore()
	const n = 4000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(1, 2))
		for i := range n {
			s.insert("k", version{ts: r.Int64N(n), seq: uint64(i + 1), vals: []schema.Value{schema.Int(int64(i))}})
		}
	}()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var held, copied []version // a history handed out earlier, and a copy made then
			for i := range n / 4 {
				s.latestBefore("k", int64(i))
				if h, ok := s.history("k"); ok {
					for j := 1; j < len(h); j++ {
						if versionLess(&h[j], &h[j-1]) {
							t.Errorf("a history out of order at %d", j)
							return
						}
					}
					if !slices.EqualFunc(held, copied, func(a, b version) bool {
						return a.seq == b.seq && a.ts == b.ts && a.vals[0].I == b.vals[0].I
					}) {
						t.Errorf("a history handed out changed under its holder")
						return
					}
					held, copied = h, slices.Clone(h)
				}
			}
		}()
	}
	wg.Wait()
	h, ok := s.history("k")
	require.True(t, ok)
	require.Len(t, h, n)
}
