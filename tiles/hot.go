package tiles

import (
	"encoding/binary"
	"sync/atomic"
)

// Cache is the hot tier: a byte cache that may forget anything at any
// time. *fastcache.Cache implements it.
type Cache interface {
	HasGet(dst, key []byte) ([]byte, bool)
	Set(key, value []byte)
}

// HotTier connects a Store to a shared cache.
type HotTier struct {
	Cache Cache  // nil disables the hot tier
	ID    uint64 // distinguishes this store's entries from other stores' in a shared cache
	// MinSpan is the shortest tile-aligned range (ns) worth caching:
	// shorter ranges merge fewer tiles than a cache lookup saves. Default:
	// 20 tiles of the finest level.
	MinSpan int64
}

// The hot tier caches, per (aggregator, entity key, tile-aligned range),
// the encoded merge of the tiles in the range: the body of a window, which
// for long windows is tens of tiles. It never holds the only copy of
// anything: the tiles in memory are authoritative, and a miss merges them
// again. Staleness is prevented, not detected: an entry's key includes
// the entity key's generation, and adding an event older than the end of
// any range cached for the key (keyState.sealed) bumps the generation, so
// no entry that misses the event can be found again.

// hotKey builds the cache key of a range into dst. Every part but the
// entity key has a fixed width, so two ranges' keys are equal only when
// every part is. (The plan state's index took 16 bits until issue 10's
// review: a view with 65,536 states would have shared entries.)
func (s *Store) hotKey(dst []byte, ai int, key string, gen uint64, a, b int64) []byte {
	dst = binary.LittleEndian.AppendUint64(dst[:0], s.hot.ID)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(ai))
	dst = binary.LittleEndian.AppendUint64(dst, gen)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(a))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(b))
	return append(dst, key...)
}

// readScratch is the per-read working memory, pooled.
type readScratch struct {
	acc  []State // one accumulator per plan state
	body []State // one range state per plan state, for the hot tier
	key  []byte
	val  []byte
	// logged holds ReadLogged's merged events, own its copy of the
	// store's events of the key; both reused.
	logged []loggedEvent
	own    []rawEvent
}

// coverHot merges the tile-aligned range [a, b) of aggregator ai into acc
// through the hot tier. The caller holds the key's shard read lock.
func (s *Store) coverHot(ks *keyState, key string, ai int, acc State, a, b int64, sc *readScratch) {
	if s.hot.Cache == nil || b-a < s.hot.MinSpan {
		s.cover(ks, 0, ai, acc, a, b)
		return
	}
	body := sc.body[ai]
	sc.key = s.hotKey(sc.key, ai, key, ks.gen, a, b)
	var hit bool
	if sc.val, hit = s.hot.Cache.HasGet(sc.val[:0], sc.key); hit {
		if err := s.plan.States[ai].DecodeInto(body, sc.val); err == nil {
			acc.Merge(body)
			return
		}
	}
	body.Reset()
	s.cover(ks, 0, ai, body, a, b)
	ks.seal(b)
	sc.val = body.AppendBinary(sc.val[:0])
	s.hot.Cache.Set(sc.key, sc.val)
	acc.Merge(body)
}

// seal records that a range ending at b may be cached for the key: from
// now on, an event before b bumps the key's generation.
func (ks *keyState) seal(b int64) {
	for {
		cur := ks.sealed.Load()
		if b <= cur || ks.sealed.CompareAndSwap(cur, b) {
			return
		}
	}
}

// keyHotState is the part of keyState the hot tier uses.
type keyHotState struct {
	// sealed is the largest end of a range cached for the key, Unix ns.
	// Written under the shard's read lock (by readers), hence atomic.
	sealed atomic.Int64
	// gen is the key's generation, part of every cache key. Bumped under
	// the shard's write lock when an event lands before sealed.
	gen uint64
}
