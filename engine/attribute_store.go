package engine

import (
	"hash/maphash"
	"sort"
	"sync"

	"github.com/featurelog/featurelog/internal/schema"
)

// attrShards is the number of independently locked shards of an attribute
// store. Ingest and reads of different keys rarely contend.
const attrShards = 64

// attrStore holds, per entity key, every version of an attribute view's
// served columns, in (event time, log seq, index) order. Keeping history,
// not just the latest row, is what makes as_of reads (and, later,
// point-in-time joins) answerable: the latest row before T is a binary
// search away.
type attrStore struct {
	seed   maphash.Seed
	shards [attrShards]attrShard
}

type attrShard struct {
	mu   sync.RWMutex          // guards keys and every history in it
	keys map[string]*[]version // entity key → versions sorted by versionLess
}

// version is one record as a view serves it.
type version struct {
	ts   int64          // event time, Unix ns
	seq  uint64         // log sequence of the entry that carried it
	idx  uint32         // the record's position within that entry
	vals []schema.Value // served feature values, in the view's feature order
}

// versionLess orders versions by event time, ties by log order: the later
// ingested record wins (SPEC §3).
func versionLess(a, b *version) bool {
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	if a.seq != b.seq {
		return a.seq < b.seq
	}
	return a.idx < b.idx
}

func newAttrStore() *attrStore {
	s := &attrStore{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].keys = make(map[string]*[]version)
	}
	return s
}

func (s *attrStore) shard(key string) *attrShard {
	return &s.shards[maphash.String(s.seed, key)%attrShards]
}

// insert adds v for key. In-order arrivals append; late ones are placed by
// binary search.
func (s *attrStore) insert(key string, v version) {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	hist := sh.keys[key]
	if hist == nil {
		h := make([]version, 0, 1)
		hist = &h
		sh.keys[key] = hist
	}
	h := *hist
	n := len(h)
	if n == 0 || versionLess(&h[n-1], &v) {
		*hist = append(h, v)
		return
	}
	i := sort.Search(n, func(i int) bool { return versionLess(&v, &h[i]) })
	h = append(h, version{})
	copy(h[i+1:], h[i:])
	h[i] = v
	*hist = h
}

// delete removes key's history and reports whether there was one.
func (s *attrStore) delete(key string) bool {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, ok := sh.keys[key]
	delete(sh.keys, key)
	return ok
}

// latestBefore returns the latest version of key with event time < t.
func (s *attrStore) latestBefore(key string, t int64) (version, bool) {
	sh := s.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	hist := sh.keys[key]
	if hist == nil {
		return version{}, false
	}
	h := *hist
	i := sort.Search(len(h), func(i int) bool { return h[i].ts >= t })
	if i == 0 {
		return version{}, false
	}
	return h[i-1], true
}

// stats returns the number of keys and versions held.
func (s *attrStore) stats() (keys, versions int) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		keys += len(sh.keys)
		for _, h := range sh.keys {
			versions += len(*h)
		}
		sh.mu.RUnlock()
	}
	return keys, versions
}

// sortedKeys returns every key held, sorted bytewise.
func (s *attrStore) sortedKeys() []string {
	var out []string
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for k := range sh.keys {
			out = append(out, k)
		}
		sh.mu.RUnlock()
	}
	sort.Strings(out)
	return out
}

// history returns key's versions. The slice is shared: only a frozen
// store's histories (no more inserts) may be read without the lock.
func (s *attrStore) history(key string) ([]version, bool) {
	sh := s.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	h := sh.keys[key]
	if h == nil {
		return nil, false
	}
	return *h, true
}
