package engine

import (
	"container/heap"
	"sync"
)

// appliedMark tracks how far the log has been applied: the highest seq S
// such that every entry with seq ≤ S is visible to reads. Ingests append
// in seq order but apply concurrently, so entry 7 can be applied before
// entry 6; output streams (outstream.go) read only up to the mark, so
// that the state they compute a record's values from holds every record
// logged before it, and a get-features call made after receipt sees it.
type appliedMark struct {
	mu   sync.Mutex
	upTo uint64        // every entry ≤ upTo is applied; guarded by mu
	done seqHeap       // applied entries > upTo+1; guarded by mu
	wake chan struct{} // closed and replaced when upTo moves; guarded by mu
}

func newAppliedMark(upTo uint64) *appliedMark {
	return &appliedMark{upTo: upTo, wake: make(chan struct{})}
}

// applied records that entry seq is visible. Every seq the log assigns
// must be reported exactly once, or the mark stops at the missing one.
func (m *appliedMark) applied(seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq <= m.upTo {
		return
	}
	if seq != m.upTo+1 {
		heap.Push(&m.done, seq)
		return
	}
	m.upTo = seq
	for len(m.done) > 0 && m.done[0] <= m.upTo+1 {
		m.upTo = max(m.upTo, heap.Pop(&m.done).(uint64))
	}
	close(m.wake)
	m.wake = make(chan struct{})
}

// get returns the mark and a channel closed when it next moves.
func (m *appliedMark) get() (uint64, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.upTo, m.wake
}

// seqHeap is a min-heap of log sequence numbers.
type seqHeap []uint64

func (h seqHeap) Len() int           { return len(h) }
func (h seqHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h seqHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *seqHeap) Push(x any)        { *h = append(*h, x.(uint64)) }
func (h *seqHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
