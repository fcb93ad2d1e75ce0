package compaction

import (
	"bytes"
	"container/heap"
	"encoding/binary"
)

// blockBuf holds one decoded block, and the buffers reused to read the next.
type blockBuf struct {
	// compressed is the read buffer for compressed blocks.
	compressed []byte
	// raw is the decompression buffer; data is the decoded block within it.
	raw, data []byte
	// ents locates each entry's key and value in data, in key order.
	ents []entry
}

// entry locates one key and value in a decoded block: data[k0:k1] and
// data[v0:v1]. Blocks are below 2 GiB, so offsets fit 32 bits.
type entry struct{ k0, k1, v0, v1 uint32 }

// key returns the key of entry i.
func (b *blockBuf) key(i int) []byte { e := &b.ents[i]; return b.data[e.k0:e.k1:e.k1] }

// value returns the value of entry i; it is non-nil even when empty.
func (b *blockBuf) value(i int) []byte { e := &b.ents[i]; return b.data[e.v0:e.v1:e.v1] }

// seek returns the first entry at or after from whose key is >= key, or
// len(b.ents). From a nonzero from (a seek forward from the current
// entry) it gallops: a join walking keys in order mostly finds its key at
// from itself, in one comparison, where a binary search over the rest of
// the block took about seven (`cmpbody` was 7% of a join over 13
// segments).
func (b *blockBuf) seek(key []byte, from int) int {
	lo, hi := from, len(b.ents)
	if from > 0 {
		for step := 1; lo < hi; step *= 2 {
			probe := lo + step - 1
			if probe >= hi {
				break
			}
			if bytes.Compare(b.key(probe), key) >= 0 {
				hi = probe
				break
			}
			lo = probe + 1
		}
	}
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if bytes.Compare(b.key(mid), key) < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// readBlock reads block i into b: ReadAt, CRC check, decompression bounded
// by the index's raw length, and a full parse of the entries.
func (r *Reader) readBlock(i int, b *blockBuf) error {
	if r.closed.Load() {
		return ErrClosed
	}
	h := &r.blocks[i]
	if cap(b.compressed) < h.compLen {
		b.compressed = make([]byte, h.compLen)
	}
	b.compressed = b.compressed[:h.compLen]
	if err := r.readAt(b.compressed, h.off); err != nil {
		return err
	}
	if checksum(b.compressed) != h.crc {
		return corrupt(r.path, h.off, reasonBlockCRC)
	}
	if cap(b.raw) < h.rawLen+decodeSlack {
		b.raw = make([]byte, 0, h.rawLen+decodeSlack)
	}
	data, reason, err := r.codec.decompress(b.raw, b.compressed, h.rawLen)
	switch {
	case err != nil:
		return err
	case reason != "":
		return corrupt(r.path, h.off, reason)
	}
	b.data = data
	b.ents, reason = parseBlock(data, h, b.ents)
	if reason != "" {
		b.data, b.ents = nil, b.ents[:0]
		return corrupt(r.path, h.off, reason)
	}
	return nil
}

// parseBlock locates the entries of the decoded block data, appending them
// to ents[:0], and verifies them against h: entry count, strictly increasing
// keys, first and last keys, no trailing bytes. reason is empty on success.
func parseBlock(data []byte, h *blockHandle, ents []entry) (_ []entry, reason string) {
	ents = ents[:0]
	n, p := binary.Uvarint(data)
	switch {
	case p <= 0:
		return ents, reasonBlockFormat
	case n == 0 || n != uint64(h.count) || n > uint64(len(data)/2): // entries take 2+ bytes
		return ents, reasonBlockCount
	}
	if cap(ents) < int(n) {
		ents = make([]entry, 0, n)
	}
	for range n {
		var e entry
		var ok bool
		if e.k0, e.k1, p, ok = field(data, p); !ok {
			return ents, reasonBlockFormat
		}
		if e.v0, e.v1, p, ok = field(data, p); !ok {
			return ents, reasonBlockFormat
		}
		if len(ents) > 0 {
			prev := ents[len(ents)-1]
			if bytes.Compare(data[prev.k0:prev.k1], data[e.k0:e.k1]) >= 0 {
				return ents, reasonBlockOrder
			}
		}
		ents = append(ents, e)
	}
	if p != len(data) {
		return ents, reasonBlockTrailer
	}
	first, last := ents[0], ents[len(ents)-1]
	if !bytes.Equal(data[first.k0:first.k1], h.first) || !bytes.Equal(data[last.k0:last.k1], h.last) {
		return ents, reasonBlockBounds
	}
	return ents, ""
}

// field decodes a uvarint length at data[p:] and returns the bounds of the
// bytes that follow it, and the position after them.
func field(data []byte, p int) (start, end uint32, next int, ok bool) {
	n, k := binary.Uvarint(data[p:])
	if k <= 0 || n > uint64(len(data)-p-k) {
		return 0, 0, 0, false
	}
	start = uint32(p + k)
	end = start + uint32(n)
	return start, end, int(end), true
}

// iterState is where an Iterator stands.
type iterState uint8

const (
	iterUnpositioned iterState = iota // before the first move
	iterValid                         // at an entry
	iterDone                          // past the last entry, or failed
)

// Iterator walks a segment's entries in key order. A new Iterator is before
// the first entry: Next moves to it, SeekGE to any key. It keeps the
// decoded block it is in, so moving within a block costs no I/O and no
// decompression. An Iterator is not safe for concurrent use; any number of
// them can read one Reader concurrently.
type Iterator struct {
	// r is the segment read.
	r *Reader
	// blk is the decoded block blkIdx (none if blkIdx is -1).
	blk    blockBuf
	blkIdx int
	// pos is the current entry in blk; meaningful when state is iterValid.
	pos   int
	state iterState
	// err is the first error; it ends the iteration.
	err error
	// loads counts the blocks read, for tests of SeekGE's block reuse.
	loads int
}

// NewIterator returns an iterator before the segment's first entry.
func (r *Reader) NewIterator() *Iterator { return &Iterator{r: r, blkIdx: -1} }

// Next moves to the next entry (the first, on a new iterator) and reports
// whether there is one. It returns false at the end and on error; check Err.
func (it *Iterator) Next() bool {
	switch it.state {
	case iterUnpositioned:
		return it.enterBlock(0)
	case iterValid:
		if it.pos+1 < len(it.blk.ents) {
			it.pos++
			return true
		}
		return it.enterBlock(it.blkIdx + 1)
	}
	return false
}

// enterBlock positions the iterator at the first entry of block i, or at
// the end if there is no block i.
func (it *Iterator) enterBlock(i int) bool {
	if i >= len(it.r.blocks) {
		it.state = iterDone
		return false
	}
	if !it.load(i) {
		return false
	}
	it.pos, it.state = 0, iterValid
	return true
}

// load makes block i the current block, reading it unless it already is.
func (it *Iterator) load(i int) bool {
	if i == it.blkIdx {
		return true
	}
	it.blkIdx = -1
	it.loads++
	if err := it.r.readBlock(i, &it.blk); err != nil {
		it.err, it.state = err, iterDone
		return false
	}
	it.blkIdx = i
	return true
}

// SeekGE moves to the first entry whose key is >= key and reports whether
// there is one. Seeking within the current block, in either direction,
// reuses the decoded block; seeking forward also searches only the entries
// after the current one.
func (it *Iterator) SeekGE(key []byte) bool {
	if it.err != nil {
		return false
	}
	i, from := it.nextBlock(key)
	if i == len(it.r.blocks) {
		it.state = iterDone
		return false
	}
	if !it.load(i) {
		return false
	}
	// blocks[i].last >= key, so the search ends inside the block.
	it.pos, it.state = it.blk.seek(key, from), iterValid
	return true
}

// nextBlock returns the first block whose last key is >= key (findBlock)
// and the entry of it to search from. Seeks that move forward a little,
// as a join walking keys in order does, skip the binary search over the
// index: the key is in the current block, or in the next.
func (it *Iterator) nextBlock(key []byte) (block, from int) {
	if it.state == iterValid && bytes.Compare(it.blk.key(it.pos), key) < 0 {
		// Every block before the current one ends below the current key.
		b := it.blkIdx
		if bytes.Compare(key, it.r.blocks[b].last) <= 0 {
			return b, it.pos + 1
		}
		if b+1 < len(it.r.blocks) && bytes.Compare(key, it.r.blocks[b+1].last) <= 0 {
			return b + 1, 0
		}
	}
	i := it.r.findBlock(key)
	if i == it.blkIdx && it.state == iterValid && bytes.Compare(it.blk.key(it.pos), key) < 0 {
		return i, it.pos + 1
	}
	return i, 0
}

// Key returns the current key, or nil if the iterator is not at an entry.
// It is valid until the next move.
func (it *Iterator) Key() []byte {
	if it.state != iterValid {
		return nil
	}
	return it.blk.key(it.pos)
}

// Value returns the current value (non-nil, even if empty), or nil if the
// iterator is not at an entry. It is valid until the next move.
func (it *Iterator) Value() []byte {
	if it.state != iterValid {
		return nil
	}
	return it.blk.value(it.pos)
}

// Err returns the error that ended the iteration, if any: a
// *CorruptionError, ErrClosed or an I/O error.
func (it *Iterator) Err() error { return it.err }

// MergeIterator walks several iterators in key order, a k-way merge over a
// heap. For each distinct key it exposes the value of every input holding
// it. Each input holds a key at most once (a segment's keys are strictly
// increasing), so Values has at most one value per input.
type MergeIterator struct {
	// its are the inputs; the merge moves them, nobody else may.
	its []*Iterator
	// h holds the inputs positioned at a key not yet returned.
	h mergeHeap
	// cur lists the inputs at the current key: the next Next moves them.
	cur []int
	// key is the current key; values[i] the value of input i at it, or nil.
	key    []byte
	values [][]byte
	// started is set by the first Next.
	started bool
	// err is the first error of an input; it ends the merge.
	err error
}

// NewMergeIterator merges its, which must be new iterators (before their
// first entry); the merge owns and moves them.
func NewMergeIterator(its []*Iterator) *MergeIterator {
	return &MergeIterator{
		its:    its,
		h:      mergeHeap{its: its, idx: make([]int, 0, len(its))},
		cur:    make([]int, 0, len(its)),
		values: make([][]byte, len(its)),
	}
}

// Next moves to the next distinct key and reports whether there is one. It
// returns false at the end and when an input fails; check Err.
func (m *MergeIterator) Next() bool {
	if m.err != nil {
		return false
	}
	if !m.started {
		m.started = true
		for i := range m.its {
			m.advance(i)
		}
	} else {
		for _, i := range m.cur {
			m.advance(i)
		}
	}
	clear(m.values)
	m.cur, m.key = m.cur[:0], nil
	if m.err != nil || m.h.Len() == 0 {
		return false
	}
	m.key = m.its[m.h.idx[0]].Key()
	for m.h.Len() > 0 && bytes.Equal(m.its[m.h.idx[0]].Key(), m.key) {
		i := heap.Pop(&m.h).(int)
		m.values[i] = m.its[i].Value()
		m.cur = append(m.cur, i)
	}
	return true
}

// advance moves input i to its next entry and puts it back in the heap if
// there is one.
func (m *MergeIterator) advance(i int) {
	if m.its[i].Next() {
		heap.Push(&m.h, i)
	} else if err := m.its[i].Err(); err != nil && m.err == nil {
		m.err = err
	}
}

// Key returns the current key, valid until the next Next.
func (m *MergeIterator) Key() []byte { return m.key }

// Values returns, for each input in the order given to NewMergeIterator,
// its value at the current key, or nil if it does not hold the key. The
// slice and the values are valid until the next Next.
func (m *MergeIterator) Values() [][]byte { return m.values }

// Err returns the first error of an input, if any.
func (m *MergeIterator) Err() error { return m.err }

// mergeHeap is a min-heap of input indexes, ordered by their current key
// and then by index (keeping ties in input order).
type mergeHeap struct {
	// its are the merged iterators; idx the heap of indexes into it.
	its []*Iterator
	idx []int
}

func (h *mergeHeap) Len() int      { return len(h.idx) }
func (h *mergeHeap) Swap(a, b int) { h.idx[a], h.idx[b] = h.idx[b], h.idx[a] }
func (h *mergeHeap) Push(x any)    { h.idx = append(h.idx, x.(int)) }

func (h *mergeHeap) Less(a, b int) bool {
	ia, ib := h.idx[a], h.idx[b]
	if c := bytes.Compare(h.its[ia].Key(), h.its[ib].Key()); c != 0 {
		return c < 0
	}
	return ia < ib
}

func (h *mergeHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}
