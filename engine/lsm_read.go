package engine

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tiles"
)

// stateCache holds key states decoded from segments (*tiles.KeyState or
// []version), so a read of a key whose older records live on disk costs a
// map lookup, not a block decompression. Entries are keyed by segment id
// and entity key; segment ids are never reused, so an entry can never be
// found for the wrong segment. It is a cache: a miss decodes again.
type stateCache struct {
	c *ristretto.Cache[string, any]
	// hits and misses count lookups of c (none while it is disabled), for
	// featurelog_state_cache_*_total.
	hits, misses atomic.Uint64
}

// stats returns the cache's hits and misses since open.
func (c *stateCache) stats() (hits, misses uint64) {
	if c == nil {
		return 0, 0
	}
	return c.hits.Load(), c.misses.Load()
}

func newStateCache(bytes int64) (*stateCache, error) {
	if bytes <= 0 {
		return &stateCache{}, nil
	}
	c, err := ristretto.NewCache(&ristretto.Config[string, any]{
		NumCounters: max(bytes/100, 1000), // ~10 counters per entry of ~1 KiB
		MaxCost:     bytes,
		BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	return &stateCache{c: c}, nil
}

func (c *stateCache) close() {
	if c != nil && c.c != nil {
		c.c.Close()
	}
}

func cacheKey(dst []byte, seg uint64, key string) []byte {
	dst = binary.LittleEndian.AppendUint64(dst[:0], seg)
	return append(dst, key...)
}

// forget drops the entry of key in the segments of cacheID.
func (c *stateCache) forget(cacheID uint64, key string) {
	if c != nil && c.c != nil {
		var kb [64]byte
		c.c.Del(string(cacheKey(kb[:0], cacheID, key)))
	}
}

// segState returns key's state in segment sg, decoded by decode, or nil
// when the segment does not hold the key.
func (c *stateCache) segState(sg *segRef, key string, decode func([]byte) (any, int, error)) (any, error) {
	var kb [64]byte
	ck := cacheKey(kb[:0], sg.cacheID, key)
	if c.c != nil {
		if v, ok := c.c.Get(string(ck)); ok {
			c.hits.Add(1)
			return v, nil
		}
		c.misses.Add(1)
	}
	r := sg.h.Reader()
	if !r.MayContain([]byte(key)) {
		return nil, nil
	}
	b, ok, err := r.Get([]byte(key))
	if err != nil {
		return nil, &Error{Code: CodeInternal, Msg: fmt.Sprintf("segment %s", sg.file), Err: err}
	}
	if !ok {
		return nil, nil
	}
	v, cost, err := decode(b)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Msg: fmt.Sprintf("segment %s, key %q", sg.file, key), Err: err}
	}
	if c.c != nil {
		c.c.Set(string(ck), v, int64(cost+len(ck)+64))
	}
	return v, nil
}

// decodeTiles returns the decoder of an aggregate view's key states.
func (d *viewData) decodeTiles(st *tiles.Store) func([]byte) (any, int, error) {
	return func(b []byte) (any, int, error) {
		ks, err := st.DecodeKeyState(b)
		if err != nil {
			return nil, 0, err
		}
		return ks, ks.MemSize(), nil
	}
}

func (d *viewData) decodeAttrs(b []byte) (any, int, error) {
	h, err := decodeVersions(b, d.types)
	if err != nil {
		return nil, 0, err
	}
	return h, len(h)*(40+16*len(d.types)) + len(b), nil
}

// tileStates appends key's states from the frozen memtables and the
// segments of src.
func (d *viewData) tileStates(c *stateCache, src *sources, key string, dst []*tiles.KeyState) ([]*tiles.KeyState, error) {
	for _, m := range src.frozen {
		if ks := m.tiles.Own(key); ks != nil {
			dst = append(dst, ks)
		}
	}
	dec := d.decodeTiles(src.tiles)
	for _, sg := range src.segs {
		v, err := c.segState(sg, key, dec)
		if err != nil {
			return dst, err
		}
		if v != nil {
			dst = append(dst, v.(*tiles.KeyState))
		}
	}
	return dst, nil
}

// readTiles reads an aggregate view's features for key as of t.
func (d *viewData) readTiles(c *stateCache, key string, t int64, out []schema.Value) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if len(d.frozen) == 0 && len(d.segs) == 0 {
		d.tiles.Read(key, t, out)
		return nil
	}
	src := sources{tiles: d.tiles, frozen: d.frozen, segs: d.segs}
	var buf [8]*tiles.KeyState
	extra, err := d.tileStates(c, &src, key, buf[:0])
	if err != nil {
		return err
	}
	d.tiles.ReadWith(key, t, out, true, extra)
	return nil
}

// readLogged reads a continuous aggregate view's features for key as of
// t over the records logged at or before upTo (tiles.Store.ReadLogged).
func (d *viewData) readLogged(c *stateCache, key string, t int64, upTo tiles.Order, out []schema.Value) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	src := sources{tiles: d.tiles, frozen: d.frozen, segs: d.segs}
	var buf [8]*tiles.KeyState
	extra, err := d.tileStates(c, &src, key, buf[:0])
	if err != nil {
		return err
	}
	d.tiles.ReadLogged(key, t, upTo, out, true, extra)
	return nil
}

// latestBefore returns an attribute view's latest version of key with
// event time < t, over every source.
func (d *viewData) latestBefore(c *stateCache, key string, t int64) (version, bool, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	src := sources{attrs: d.attrs, frozen: d.frozen, segs: d.segs}
	return d.latestIn(c, &src, key, t)
}

func (d *viewData) latestIn(c *stateCache, src *sources, key string, t int64) (version, bool, error) {
	best, found := src.attrs.latestBefore(key, t)
	better := func(v version, ok bool) {
		if ok && (!found || versionLess(&best, &v)) {
			best, found = v, true
		}
	}
	for _, m := range src.frozen {
		better(m.attrs.latestBefore(key, t))
	}
	for _, sg := range src.segs {
		v, err := c.segState(sg, key, d.decodeAttrs)
		if err != nil {
			return version{}, false, err
		}
		if v != nil {
			better(latestIn(v.([]version), t))
		}
	}
	return best, found, nil
}
