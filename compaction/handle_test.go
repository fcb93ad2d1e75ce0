package compaction

import (
	"bytes"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newTestHandle opens a one-key segment and wraps it in a Handle.
func newTestHandle(t *testing.T) (*Handle, string) {
	path := writeSegment(t, []kv{{[]byte("k"), []byte("v")}}, WriterOptions{})
	r, err := Open(path)
	require.NoError(t, err)
	return NewHandle(r), path
}

func TestHandleLastReleaseRemovesObsoleteFile(t *testing.T) {
	h, path := newTestHandle(t)
	require.True(t, h.Acquire()) // a reader
	h.Obsolete()
	h.Release() // the owner lets go; the reader still holds it
	assert.FileExists(t, path)
	select {
	case <-h.Removed():
		t.Fatal("Removed closed while a reader holds the segment")
	default:
	}
	v, ok, err := h.Reader().Get([]byte("k"))
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, []byte("v"), v)

	h.Release() // the last reference
	assert.NoFileExists(t, path)
	<-h.Removed() // closed by now: would block forever otherwise
	_, _, err = h.Reader().Get([]byte("k"))
	assert.ErrorIs(t, err, ErrClosed, "the Reader is closed")
	assert.False(t, h.Acquire(), "Acquire on a dead handle")
	assert.NoError(t, h.Err())
}

func TestHandleReleaseWithoutObsoleteKeepsFile(t *testing.T) {
	h, path := newTestHandle(t)
	h.Release()
	assert.FileExists(t, path)
	assert.False(t, h.Acquire())
	_, _, err := h.Reader().Get([]byte("k"))
	assert.ErrorIs(t, err, ErrClosed)
	assert.NoError(t, h.Err())
}

func TestHandleObsoleteAfterDeathRemovesFile(t *testing.T) {
	h, path := newTestHandle(t)
	h.Release()
	assert.FileExists(t, path)
	h.Obsolete()
	assert.NoFileExists(t, path)
	h.Obsolete() // nothing left to do, and no error for it
	assert.NoError(t, h.Err())
}

func TestHandleKeepsFirstError(t *testing.T) {
	h, path := newTestHandle(t)
	require.NoError(t, h.Reader().Close()) // misuse: closed behind the handle's back
	h.Obsolete()
	h.Release()
	assert.ErrorIs(t, h.Err(), ErrClosed, "the close error is kept")
	assert.NoFileExists(t, path, "the file is removed anyway")
}

func TestHandleReleaseTooOftenPanics(t *testing.T) {
	h, _ := newTestHandle(t)
	h.Release()
	assert.PanicsWithValue(t, "BUG: compaction: Handle.Release of "+h.Reader().Path()+" without a reference", h.Release)
}

// TestHandleConcurrent has readers acquire, read and release while the
// owner retires the segment. Every acquired reference must see a working
// Reader; the file goes exactly when the last reference does. Run with
// -race.
func TestHandleConcurrent(t *testing.T) {
	for range 20 {
		h, path := newTestHandle(t)
		const readers = 8
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, readers)
		for range readers {
			wg.Go(func() {
				<-start
				for range 200 {
					if !h.Acquire() {
						return // retired: the engine would look the segment up again
					}
					v, ok, err := h.Reader().Get([]byte("k"))
					if err == nil && (!ok || !bytes.Equal(v, []byte("v"))) {
						err = assert.AnError
					}
					h.Release()
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		close(start)
		h.Obsolete()
		h.Release() // the owner's reference, while readers run
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		assert.False(t, h.Acquire())
		assert.NoFileExists(t, path)
		assert.NoError(t, h.Err())
	}
}
