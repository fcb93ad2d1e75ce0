package engine

import (
	"hash/maphash"
	"math/bits"
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
	mu    sync.RWMutex // guards keys, arena and every history in it
	keys  attrTable    // entity key → its versions
	arena attrArena    // the versions' values
}

// attrHist is one key's versions: v sorted by versionLess, and tail, the
// versions that arrived out of order since the last merge, unsorted. A
// late version is appended to tail, which is merged into v once it holds
// an eighth of v (and at least tailMerge): each late version costs O(1)
// amortized copies instead of moving half the history (with a hot key
// and events in random time order, inserting in place was quadratic:
// 37% of the CPU of a Zipf-keyed load). Readers see v and tail together.
//
// The versions hold no pointer: their values are in the shard's arena,
// where a version's at says. Each version had been a slice of its own,
// 20M small objects in a 20M-event load for the collector to find and
// scan (a third of the node's CPU was the collector's); values kept per
// key instead grew by doubling, each growth a copy under write barriers.
type attrHist struct {
	key  string
	v    []aver
	tail []aver
}

// aver is a version of an attrHist, its values at arena.at(at).
type aver struct {
	ts  int64
	seq uint64
	idx uint32
	at  uint32
}

// attrArena holds the values of a shard's versions, w a version, in
// chunks that never move and are never written again, so a version's
// values stay as readers found them, without the lock. The chunks double
// from arenaFirst versions to arenaChunk, so a shard with few versions
// (a view with few keys, or a fresh memtable) holds little. Values go
// with the memtable: a deleted key's values stay in the arena,
// unreachable by any read, until the memtable is flushed and dropped
// (they are never written out: a flush writes the keys held).
type attrArena struct {
	chunks [][]schema.Value
	n      uint32 // versions held (the next at)
	w      uint32 // values a version
}

// arenaFirst and arenaChunk are the versions of an arena's first chunk
// and of its largest; each chunk holds twice the one before, up to
// arenaChunk.
const (
	arenaFirst   = 16
	arenaChunk   = 1024
	arenaDoubled = arenaFirst * (arenaChunk/arenaFirst - 1) // versions in the chunks below arenaChunk
)

// chunkOf returns the chunk holding version at, the version's place in
// it, and the chunk's size in versions.
func chunkOf(at uint32) (chunk int, off, size uint32) {
	if at < arenaDoubled {
		k := bits.Len32(at/arenaFirst+1) - 1 // chunk k starts at arenaFirst*(2^k-1)
		return k, at - arenaFirst*(1<<k-1), arenaFirst << k
	}
	at -= arenaDoubled
	return bits.Len32(arenaChunk/arenaFirst) - 1 + int(at/arenaChunk), at % arenaChunk, arenaChunk
}

// add copies vals into the arena and returns where they are.
func (a *attrArena) add(vals []schema.Value) uint32 {
	at := a.n
	if at == 0 {
		a.w = uint32(len(vals)) // every version of a view has its width
	}
	if chunk, _, size := chunkOf(at); chunk == len(a.chunks) {
		a.chunks = append(a.chunks, make([]schema.Value, size*a.w))
	}
	copy(a.at(at), vals)
	a.n++
	return at
}

// at returns the values of the version at at.
func (a *attrArena) at(at uint32) []schema.Value {
	chunk, off, _ := chunkOf(at)
	i, j := off*a.w, (off+1)*a.w
	return a.chunks[chunk][i:j:j]
}

// less orders avers as versionLess orders versions.
func (a *aver) less(b *aver) bool {
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	if a.seq != b.seq {
		return a.seq < b.seq
	}
	return a.idx < b.idx
}

// version returns a as a version, its values shared with ar.
func (a *aver) version(ar *attrArena) version {
	return version{ts: a.ts, seq: a.seq, idx: a.idx, vals: ar.at(a.at)}
}

// tailMerge is the smallest tail merged; a tail at most this long is
// scanned by reads rather than merged.
const tailMerge = 32

// add adds a version, copying its values into ar.
func (h *attrHist) add(v version, ar *attrArena) {
	a := aver{ts: v.ts, seq: v.seq, idx: v.idx, at: ar.add(v.vals)}
	n := len(h.v)
	if len(h.tail) == 0 && (n == 0 || h.v[n-1].less(&a)) {
		h.v = append(h.v, a)
		return
	}
	h.tail = append(h.tail, a)
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
	slices.SortFunc(h.tail, func(a, b aver) int {
		switch {
		case a.less(&b):
			return -1
		case b.less(&a):
			return 1
		}
		return 0
	})
	out := make([]aver, 0, len(h.v)+len(h.tail))
	i, j := 0, 0
	for i < len(h.v) && j < len(h.tail) {
		if h.tail[j].less(&h.v[i]) {
			out = append(out, h.tail[j])
			j++
		} else {
			out = append(out, h.v[i])
			i++
		}
	}
	out = append(append(out, h.v[i:]...), h.tail[j:]...)
	h.v, h.tail = out, h.tail[:0]
}

// latestBefore returns the latest version with event time < t, from v
// and a short tail.
func (h *attrHist) latestBefore(t int64, ar *attrArena) (version, bool) {
	i := sort.Search(len(h.v), func(i int) bool { return h.v[i].ts >= t })
	var best *aver
	if i > 0 {
		best = &h.v[i-1]
	}
	for k := range h.tail {
		if x := &h.tail[k]; x.ts < t && (best == nil || best.less(x)) {
			best = x
		}
	}
	if best == nil {
		return version{}, false
	}
	return best.version(ar), true
}

// appendTo appends h's versions, in order, to dst; h has no tail.
func (h *attrHist) appendTo(dst []version, ar *attrArena) []version {
	for k := range h.v {
		dst = append(dst, h.v[k].version(ar))
	}
	return dst
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
	return &attrStore{seed: maphash.MakeSeed()}
}

// shard returns key's shard and hash; the shard is chosen by the hash's
// low bits, the slot in the shard's table by the bits above them.
func (s *attrStore) shard(key string) (*attrShard, uint64) {
	h := maphash.String(s.seed, key)
	return &s.shards[h%attrShards], h
}

// insert adds v for key. In-order arrivals append; late ones go to the
// key's tail (attrHist).
func (s *attrStore) insert(key string, v version) {
	sh, hash := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h := sh.keys.get(hash, key)
	if h == nil {
		h = &attrHist{key: key}
		sh.keys.put(hash, h)
	}
	h.add(v, &sh.arena)
}

// delete removes key's history and reports whether there was one.
func (s *attrStore) delete(key string) bool {
	sh, hash := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.keys.remove(hash, key)
}

// latestBefore returns the latest version of key with event time < t.
func (s *attrStore) latestBefore(key string, t int64) (version, bool) {
	sh, hash := s.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	h := sh.keys.get(hash, key)
	if h == nil {
		return version{}, false
	}
	if len(h.tail) > tailMerge {
		sh.mu.RUnlock()
		h = s.merged(sh, hash, key)
		sh.mu.RLock()
		if h == nil { // deleted meanwhile
			return version{}, false
		}
	}
	return h.latestBefore(t, &sh.arena)
}

// merged merges key's tail under the write lock and returns its history
// (nil if it has none).
func (s *attrStore) merged(sh *attrShard, hash uint64, key string) *attrHist {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h := sh.keys.get(hash, key)
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
		keys += sh.keys.n
		sh.keys.each(func(h *attrHist) { versions += h.len() })
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
		sh.keys.each(func(h *attrHist) { out = append(out, h.key) })
		sh.mu.RUnlock()
	}
	sort.Strings(out)
	return out
}

// history returns key's versions in a new slice, their values shared
// with the store (which never changes them).
func (s *attrStore) history(key string) ([]version, bool) {
	return s.historyInto(nil, key)
}

// historyInto appends key's versions to dst[:0] and returns them, their
// values shared with the store; a flush passes the same dst for every
// key.
func (s *attrStore) historyInto(dst []version, key string) ([]version, bool) {
	sh, hash := s.shard(key)
	sh.mu.RLock()
	h := sh.keys.get(hash, key)
	if h == nil {
		sh.mu.RUnlock()
		return dst[:0], false
	}
	if len(h.tail) == 0 {
		defer sh.mu.RUnlock()
		return h.appendTo(dst[:0], &sh.arena), true
	}
	sh.mu.RUnlock()
	if h = s.merged(sh, hash, key); h == nil {
		return dst[:0], false
	}
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return h.appendTo(dst[:0], &sh.arena), true
}
