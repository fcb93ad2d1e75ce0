package engine

// attrTable is one attribute shard's map from entity key to its history:
// open addressing with linear probing over slots that hold each key's
// hash beside its history, which holds the key. A lookup compares hashes
// first, so it reads one line of slots, then the history it returns and
// the key's bytes; a Go map read its group's control word, its slots, the
// key's bytes and then the history apart, and hashed the key a second
// time after the hash that chose the shard (the maps' lookups were 9% of
// a 5M-event load's CPU). The same structure as tiles' refTable, with
// deletion: a deleted key's slot keeps a tombstone until the table next
// grows.
type attrTable struct {
	slots []attrSlot // len a power of two, or 0
	n     int        // histories held
	dead  int        // tombstones
}

type attrSlot struct {
	hash uint64    // attrStore.hash of h.key
	h    *attrHist // nil: free; deadHist: a deleted key's tombstone
}

// deadHist marks the slot of a deleted key.
var deadHist = new(attrHist)

// attrTableMin is the slots of a table's first allocation.
const attrTableMin = 64

// start returns the slot at which hash's probe starts: the bits above
// those that chose the shard, which every key of the table shares.
func (t *attrTable) start(hash uint64) int { return int(hash>>6) & (len(t.slots) - 1) }

// find returns the slot of key, whose hash is hash, or -1.
func (t *attrTable) find(hash uint64, key string) int {
	if len(t.slots) == 0 {
		return -1
	}
	mask := len(t.slots) - 1
	for i := t.start(hash); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.h == nil {
			return -1
		}
		if s.hash == hash && s.h != deadHist && s.h.key == key {
			return i
		}
	}
}

// get returns the history of key, nil if none.
func (t *attrTable) get(hash uint64, key string) *attrHist {
	if i := t.find(hash, key); i >= 0 {
		return t.slots[i].h
	}
	return nil
}

// put adds h, whose key has hash hash and is not in the table.
func (t *attrTable) put(hash uint64, h *attrHist) {
	if (t.n+t.dead+1)*4 > len(t.slots)*3 { // load, tombstones included, at most 3/4
		t.grow()
	}
	mask := len(t.slots) - 1
	i := t.start(hash)
	for t.slots[i].h != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = attrSlot{hash: hash, h: h}
	t.n++
}

// remove deletes key, reporting whether it was there.
func (t *attrTable) remove(hash uint64, key string) bool {
	i := t.find(hash, key)
	if i < 0 {
		return false
	}
	t.slots[i].h = deadHist
	t.n--
	t.dead++
	return true
}

// grow places every history again by its hash, into twice the slots
// (the same number when tombstones took half of them), dropping the
// tombstones.
func (t *attrTable) grow() {
	old := t.slots
	size := max(attrTableMin, 2*len(old))
	if t.dead > t.n {
		size = max(attrTableMin, len(old))
	}
	t.slots = make([]attrSlot, size)
	t.dead = 0
	mask := len(t.slots) - 1
	for _, s := range old {
		if s.h == nil || s.h == deadHist {
			continue
		}
		i := t.start(s.hash)
		for t.slots[i].h != nil {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// each calls fn for every history held, in no order.
func (t *attrTable) each(fn func(h *attrHist)) {
	for _, s := range t.slots {
		if s.h != nil && s.h != deadHist {
			fn(s.h)
		}
	}
}
