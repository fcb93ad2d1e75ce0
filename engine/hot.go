package engine

import (
	"sync/atomic"

	"github.com/VictoriaMetrics/fastcache"

	"github.com/featurelog/featurelog/tiles"
)

// hotTier is the fastcache shared by every aggregate view of a DB. Each
// tile store gets its own ID so their entries never collide. The cache is
// never authoritative (see tiles/hot.go): a miss recomputes from tiles.
type hotTier struct {
	cache  *fastcache.Cache // nil when disabled
	nextID atomic.Uint64
	states *stateCache // key states decoded from segments
}

func newHotTier(bytes int) *hotTier {
	if bytes < 0 {
		return &hotTier{}
	}
	return &hotTier{cache: fastcache.New(bytes)}
}

// forStore returns the hot tier settings for a new tile store.
func (h *hotTier) forStore() tiles.HotTier {
	if h == nil || h.cache == nil {
		return tiles.HotTier{}
	}
	return tiles.HotTier{Cache: h.cache, ID: h.nextID.Add(1)}
}
