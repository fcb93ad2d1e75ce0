package tiles

import (
	"errors"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/featurelog/featurelog/schema"
)

// KeyGroup lets the Stores of views that share their entity keys (the
// aggregate views of one source with the same join keys, whose memtables
// are created together) share one map from entity key to the key's
// state in each of them, and one lock per stripe of keys. Adding a
// record to all of them then looks its key up and takes its lock once
// (Lock) instead of once per Store: the lookup in a large map is a cache
// miss or two, and it was the largest cost of ingest with several
// aggregate views. A key's states in the group's Stores are laid out
// side by side in its KeyRef, one allocation for all of them.
//
//	g := tiles.NewKeyGroup(2)
//	a, _ := g.NewStore(specA, tiles.HotTier{})
//	b, _ := g.NewStore(specB, tiles.HotTier{})
//	r := g.Lock("user-1")
//	a.AddLocked(r, o, valsA)
//	b.AddLocked(r, o, valsB)
//	g.Unlock(r)
//
// A Store of a group reads, encodes, deletes and freezes as any other
// (taking its stripe's lock, which it shares with the group's other
// Stores): it has a state for a key when the key's slot holds an event.
// A KeyRef is only valid with the Stores of its group.
type KeyGroup struct {
	seed   maphash.Seed
	slots  int // Stores the group's KeyRefs have room for
	joined int // Stores made so far (NewStore is not called concurrently)
	shards [storeShards]groupShard
	// frozen counts the Stores of the group frozen: once all are, no key
	// is added, and the Stores' Sorted share one sort of the keys.
	frozen   atomic.Int32
	sortOnce sync.Once
	sorted   []*KeyRef // every KeyRef by key, bytewise: set by sortOnce
}

// groupShard is one stripe of a KeyGroup's keys; a key's stripe is its
// shard in each of the group's Stores too.
type groupShard struct {
	mu   sync.RWMutex // guards keys, and the stripe's states in every Store of the group
	keys refTable
}

// KeyRef is one entity key's entry in a KeyGroup: its state in every
// Store of the group, by slot. A slot holding no event (keyState.n == 0)
// is no state: the key was added to other Stores of the group only, or
// deleted from this one.
type KeyRef struct {
	group  *KeyGroup
	key    string
	shard  uint8
	states []keyState // guarded by the stripe's lock
}

// errGroupFull is NewStore's error for a Store more than the group was
// made for.
var errGroupFull = errors.New("tiles: KeyGroup: every slot has its Store")

// NewKeyGroup returns a group with room for stores Stores.
func NewKeyGroup(stores int) *KeyGroup {
	return &KeyGroup{seed: maphash.MakeSeed(), slots: stores}
}

// NewStore returns an empty Store for spec in the group's next slot. Not
// safe for concurrent use.
func (g *KeyGroup) NewStore(spec Spec, hot HotTier) (*Store, error) {
	if g.joined == g.slots {
		return nil, errGroupFull
	}
	s, err := newStore(spec, hot, g.seed, false)
	if err != nil {
		return nil, err
	}
	for i := range s.shards {
		s.shards[i].mu = &g.shards[i].mu
	}
	s.group, s.slot = g, g.joined
	g.joined++
	return s, nil
}

// Shard returns key's stripe, in [0, 64): callers that split records
// among goroutines by it never wait for each other's locks, and keep
// each key's records in one goroutine.
func (g *KeyGroup) Shard(key string) int { return int(g.hash(key) % storeShards) }

// hash is key's hash: modulo storeShards its stripe (and its shard in
// each Store of the group), and its bits above those its place in the
// stripe's refTable.
func (g *KeyGroup) hash(key string) uint64 { return maphash.String(g.seed, key) }

// Lock takes the lock of key's stripe for writing and returns key's
// entry, adding it if the group has none. Add to the group's Stores
// with AddLocked, then release it with Unlock.
func (g *KeyGroup) Lock(key string) *KeyRef {
	h := g.hash(key)
	i := h % storeShards
	gs := &g.shards[i]
	gs.mu.Lock()
	r := gs.keys.get(h, key)
	if r == nil {
		r = &KeyRef{group: g, key: key, shard: uint8(i), states: make([]keyState, g.slots)}
		for j := range r.states {
			r.states[j].sealed.Store(math.MinInt64)
		}
		gs.keys.put(h, r)
	}
	return r
}

// sortedRefs returns every KeyRef of the group, sorted bytewise by key,
// sorting them on the first call. Every Store of the group is frozen.
func (g *KeyGroup) sortedRefs() []*KeyRef {
	g.sortOnce.Do(func() {
		for i := range g.shards {
			gs := &g.shards[i]
			gs.mu.RLock()
			for _, sl := range gs.keys.slots {
				if sl.ref != nil {
					g.sorted = append(g.sorted, sl.ref)
				}
			}
			gs.mu.RUnlock()
		}
		slices.SortFunc(g.sorted, func(a, b *KeyRef) int { return strings.Compare(a.key, b.key) })
	})
	return g.sorted
}

// Unlock releases the lock Lock took.
func (g *KeyGroup) Unlock(r *KeyRef) { g.shards[r.shard].mu.Unlock() }

// Key returns the entity key of r.
func (r *KeyRef) Key() string { return r.key }

// Group returns the store's KeyGroup, nil if it has none.
func (s *Store) Group() *KeyGroup { return s.group }

// AddLocked is Add of an event of r's key, whose stripe's lock the caller
// holds (KeyGroup.Lock).
func (s *Store) AddLocked(r *KeyRef, o Order, vals []schema.Value) {
	if s.frozen.Load() {
		panic("BUG: tiles: Add to a frozen Store")
	}
	if r.group != s.group {
		panic("BUG: tiles: AddLocked of another group's key")
	}
	s.add(&r.states[s.slot], o, vals)
}

// lookup returns key's state in sh, nil if none. The caller holds sh's
// lock (for a Store of a group, its stripe's).
func (s *Store) lookup(sh *shard, key string) *keyState {
	if s.group == nil {
		return sh.keys[key]
	}
	h := s.group.hash(key)
	r := s.group.shards[h%storeShards].keys.get(h, key)
	if r == nil || r.states[s.slot].n == 0 {
		return nil
	}
	return &r.states[s.slot]
}

// each calls fn with every key of shard i and its state. The caller holds
// the shard's lock.
func (s *Store) each(i int, fn func(key string, ks *keyState)) {
	if s.group == nil {
		for k, ks := range s.shards[i].keys {
			fn(k, ks)
		}
		return
	}
	for _, sl := range s.group.shards[i].keys.slots {
		if sl.ref == nil {
			continue
		}
		if ks := &sl.ref.states[s.slot]; ks.n > 0 {
			fn(sl.ref.key, ks)
		}
	}
}

// reset empties ks, as a deleted key's state: its next events start
// generation gen, so that no hot-tier entry of its past can be found.
func (ks *keyState) reset(gen uint64) {
	ks.raw, ks.vals, ks.levels, ks.pend, ks.n = nil, nil, nil, nil, 0
	ks.gen = gen
	ks.sealed.Store(math.MinInt64)
}
