package compaction

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Handle counts the users of an open segment, so that a segment replaced by
// a compaction is closed, and deleted, only after its last reader lets go.
//
// The owner (the engine's list of live segments) holds the first reference.
// A reader takes one with Acquire before using Reader() and drops it with
// Release. To retire a segment, the owner calls Obsolete and then Release
// on its own reference; whichever Release drops the count to zero closes the
// Reader and removes the file. Once the count is zero the handle is dead:
// Acquire fails, and the caller must look the segment up again.
type Handle struct {
	// r is the segment; valid while the caller holds a reference.
	r *Reader
	// onErr, if set, is told of a failure to remove the file; set before
	// the handle is shared, then immutable.
	onErr func(error)
	// refs is the number of references. It only goes up from a positive
	// value (Acquire's compare-and-swap), so once 0 it stays 0.
	refs atomic.Int64
	// removed is closed once the obsolete file's removal was attempted.
	removed chan struct{}
	// mu guards the fields below. Nothing holds it while doing I/O.
	mu struct {
		sync.Mutex
		// obsolete is set by Obsolete: the file goes with the last reference.
		obsolete bool
		// closed is set once the last reference was dropped and r closed.
		closed bool
		// err is the first error of closing r or removing the file.
		err error
	}
}

// NewHandle returns a handle on r holding one reference, the owner's.
func NewHandle(r *Reader) *Handle {
	h := &Handle{r: r, removed: make(chan struct{})}
	h.refs.Store(1)
	return h
}

// OnRemoveError makes the handle call fn if removing its obsolete file
// fails (the file is left behind; the engine removes orphans on open).
// Call it before sharing the handle.
func (h *Handle) OnRemoveError(fn func(error)) { h.onErr = fn }

// Reader returns the segment. Use it only while holding a reference.
func (h *Handle) Reader() *Reader { return h.r }

// Acquire adds a reference and reports whether it did: it returns false if
// the count already reached zero (the handle is dead and its Reader closed).
func (h *Handle) Acquire() bool {
	for {
		n := h.refs.Load()
		if n <= 0 {
			return false
		}
		if h.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release drops a reference. The last one closes the Reader and, if
// Obsolete was called, removes the file and fsyncs the directory. Errors are
// not logged; the first is kept for Err. Releasing more references than
// were taken is a bug and panics.
func (h *Handle) Release() {
	n := h.refs.Add(-1)
	switch {
	case n < 0:
		panic(fmt.Sprintf("BUG: compaction: Handle.Release of %s without a reference", h.r.Path()))
	case n > 0:
		return
	}
	err := h.r.Close()
	h.mu.Lock()
	h.mu.closed = true
	h.setErrLocked(err)
	remove := h.mu.obsolete
	h.mu.Unlock()
	if remove {
		h.remove()
	}
}

// Obsolete marks the file for deletion when the last reference is dropped.
// Call it before releasing the owner's reference; if the handle is already
// dead, Obsolete removes the file itself.
func (h *Handle) Obsolete() {
	h.mu.Lock()
	already := h.mu.obsolete
	h.mu.obsolete = true
	remove := h.mu.closed && !already
	h.mu.Unlock()
	if remove {
		h.remove()
	}
}

// remove deletes the file and fsyncs its directory, so that the deletion
// survives a crash. It runs once: only the first of Obsolete and the last
// Release to see both flags set calls it.
func (h *Handle) remove() {
	path := h.r.Path()
	err := h.r.fs.Remove(path)
	if err == nil {
		err = h.r.fs.SyncDir(filepath.Dir(path))
	} else {
		err = fmt.Errorf("compaction: removing obsolete segment: %w", err)
	}
	h.mu.Lock()
	h.setErrLocked(err)
	h.mu.Unlock()
	if err != nil && h.onErr != nil {
		h.onErr(err)
	}
	close(h.removed)
}

// Removed returns a channel closed once the file of an obsolete segment
// was removed, after its last reference was dropped, or its removal
// failed (Err says so).
func (h *Handle) Removed() <-chan struct{} { return h.removed }

// setErrLocked records err if it is the first error. h.mu must be held.
func (h *Handle) setErrLocked(err error) {
	if h.mu.err == nil && err != nil {
		h.mu.err = err
	}
}

// Err returns the first error of closing the Reader or removing the file,
// or nil.
func (h *Handle) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.err
}
