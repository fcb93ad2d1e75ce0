package engine

import (
	"hash/maphash"
	"slices"
	"sort"
	"sync"

	"github.com/featurelog/featurelog/schema"
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
	mu   sync.RWMutex         // guards keys and every history in it
	keys map[string]*attrHist // entity key → its versions
}

// attrHist is one key's versions: v sorted by versionLess, and tail, the
// versions that arrived out of order since the last merge, unsorted. A
// late version is appended to tail, which is merged into v once it holds
// an eighth of v (and at least tailMerge): each late version costs O(1)
// amortized copies instead of moving half the history (with a hot key
// and events in random time order, inserting in place was quadratic:
// 37% of the CPU of a Zipf-keyed load). Readers see v and tail together.
type attrHist struct {
	v    []version
	tail []version
}

// tailMerge is the smallest tail merged; a tail at most this long is
// scanned by reads rather than merged.
const tailMerge = 32

// add adds a version.
func (h *attrHist) add(v version) {
	n := len(h.v)
	if len(h.tail) == 0 && (n == 0 || versionLess(&h.v[n-1], &v)) {
		h.v = append(h.v, v)
		return
	}
	h.tail = append(h.tail, v)
	if len(h.tail) >= max(tailMerge, n/8) {
		h.merge()
	}
}

// merge sorts the tail into v, into a new array: a slice of v handed out
// before (history) stays as it was.
func (h *attrHist) merge() {
	if len(h.tail) == 0 {
		return
	}
	slices.SortFunc(h.tail, func(a, b version) int {
		switch {
		case versionLess(&a, &b):
			return -1
		case versionLess(&b, &a):
			return 1
		}
		return 0
	})
	out := make([]version, 0, len(h.v)+len(h.tail))
	i, j := 0, 0
	for i < len(h.v) && j < len(h.tail) {
		if versionLess(&h.tail[j], &h.v[i]) {
			out = append(out, h.tail[j])
			j++
		} else {
			out = append(out, h.v[i])
			i++
		}
	}
	out = append(append(out, h.v[i:]...), h.tail[j:]...)
	clear(h.tail)
	h.v, h.tail = out, h.tail[:0]
}

// latestBefore returns the latest version with event time < t, from v
// and a short tail.
func (h *attrHist) latestBefore(t int64) (version, bool) {
	i := sort.Search(len(h.v), func(i int) bool { return h.v[i].ts >= t })
	var best version
	found := i > 0
	if found {
		best = h.v[i-1]
	}
	for k := range h.tail {
		if x := &h.tail[k]; x.ts < t && (!found || versionLess(&best, x)) {
			best, found = *x, true
		}
	}
	return best, found
}

func (h *attrHist) len() int { return len(h.v) + len(h.tail) }

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
		s.shards[i].keys = make(map[string]*attrHist)
	}
	return s
}

func (s *attrStore) shard(key string) *attrShard {
	return &s.shards[maphash.String(s.seed, key)%attrShards]
}

// insert adds v for key. In-order arrivals append; late ones go to the
// key's tail (attrHist).
func (s *attrStore) insert(key string, v version) {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h := sh.keys[key]
	if h == nil {
		h = &attrHist{v: make([]version, 0, 1)}
		sh.keys[key] = h
	}
	h.add(v)
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
	h := sh.keys[key]
	if h == nil {
		return version{}, false
	}
	if len(h.tail) > tailMerge {
		sh.mu.RUnlock()
		h = s.merged(sh, key)
		sh.mu.RLock()
		if h == nil { // deleted meanwhile
			return version{}, false
		}
	}
	return h.latestBefore(t)
}

// merged merges key's tail under the write lock and returns its history
// (nil if it has none).
func (s *attrStore) merged(sh *attrShard, key string) *attrHist {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h := sh.keys[key]
	if h != nil {
		h.merge()
	}
	return h
}

// stats returns the number of keys and versions held.
func (s *attrStore) stats() (keys, versions int) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		keys += len(sh.keys)
		for _, h := range sh.keys {
			versions += h.len()
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
	h := sh.keys[key]
	if h == nil {
		sh.mu.RUnlock()
		return nil, false
	}
	if len(h.tail) == 0 {
		defer sh.mu.RUnlock()
		return h.v, true
	}
	sh.mu.RUnlock()
	if h = s.merged(sh, key); h == nil {
		return nil, false
	}
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return h.v, true
}
