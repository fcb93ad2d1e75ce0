package tiles

// refTable is one stripe's map from entity key to its KeyRef: open
// addressing with linear probing over slots that hold each key's hash
// beside its KeyRef. A lookup compares hashes first, so it reads one
// line of slots and then the KeyRef it returns (a Go map reads its
// group's control word and slots, and the key's bytes, apart); and it
// reuses the hash that chose the stripe (KeyGroup.hash), where a Go map
// hashes the key again. Keys are never removed (a deleted key's states
// are reset: Store.Delete).
type refTable struct {
	slots []refSlot // len a power of two, or 0; a slot with a nil ref is free
	n     int       // KeyRefs held
}

type refSlot struct {
	hash uint64 // KeyGroup.hash of ref.key
	ref  *KeyRef
}

// refTableMin is the slots of a table's first allocation.
const refTableMin = 64

// start returns the slot at which h's probe starts: the hash bits above
// those that chose the stripe, which every key of the table shares.
func (t *refTable) start(h uint64) int { return int(h>>6) & (len(t.slots) - 1) }

// get returns the KeyRef of key, whose hash is h, nil if none.
func (t *refTable) get(h uint64, key string) *KeyRef {
	if len(t.slots) == 0 {
		return nil
	}
	mask := len(t.slots) - 1
	for i := t.start(h); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.ref == nil {
			return nil
		}
		if s.hash == h && s.ref.key == key {
			return s.ref
		}
	}
}

// put adds r, whose key has hash h and is not in the table.
func (t *refTable) put(h uint64, r *KeyRef) {
	if (t.n+1)*4 > len(t.slots)*3 { // load at most 3/4
		t.grow()
	}
	mask := len(t.slots) - 1
	i := t.start(h)
	for t.slots[i].ref != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = refSlot{hash: h, ref: r}
	t.n++
}

// grow doubles the slots, placing each KeyRef again by its hash.
func (t *refTable) grow() {
	old := t.slots
	t.slots = make([]refSlot, max(refTableMin, 2*len(old)))
	mask := len(t.slots) - 1
	for _, s := range old {
		if s.ref == nil {
			continue
		}
		i := t.start(s.hash)
		for t.slots[i].ref != nil {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}
