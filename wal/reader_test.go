package wal

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readAll reads r up to upTo, checking each entry's payload.
func readAll(t *testing.T, r *Reader, upTo uint64) (n int) {
	t.Helper()
	for {
		seq, p, err := r.Next(upTo)
		if err == io.EOF {
			return n
		}
		require.NoError(t, err)
		require.Equal(t, payloadFor(seq), p, "seq %d", seq)
		n++
	}
}

// TestReaderFollowsTheTail: a Reader started anywhere reads every entry
// once, in order, while appends grow the tail and roll over into new
// segments (4 KiB segments: hundreds of them), stopping at upTo and at
// LastSeq.
func TestReaderFollowsTheTail(t *testing.T) {
	l := openT(t, testOptions(t))
	appendN(t, l, 50)
	for _, from := range []uint64{0, 1, 17, 50, 51} {
		r := l.NewReader(from)
		assert.Equal(t, 51-max(from, 1), uint64(readAll(t, r, 1<<62)), "from %d", from)
		r.Close()
	}
	r := l.NewReader(1)
	defer r.Close()
	require.Equal(t, 30, readAll(t, r, 30))
	require.Equal(t, uint64(31), r.NextSeq())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		appendN(t, l, 2000)
	}()
	got := 30
	for got < 2050 {
		got += readAll(t, r, 1<<62) // races the appender: entries it sees are complete
	}
	wg.Wait()
	require.Equal(t, 2050, got)
	require.Greater(t, len(l.SegmentStarts()), 10, "the tail rolled over")
	appendN(t, l, 5)
	require.Equal(t, 5, readAll(t, r, 1<<62))
}

// TestReaderTruncatedAndRewritten: an entry TruncateFront removed before
// the Reader reached it is ErrTruncated; a segment Rewrite replaced after
// the Reader opened it is read as it was, and a new Reader sees the new
// payloads.
func TestReaderTruncatedAndRewritten(t *testing.T) {
	l := openT(t, testOptions(t))
	appendN(t, l, 400)
	starts := l.SegmentStarts()
	require.Greater(t, len(starts), 3)
	r := l.NewReader(starts[1]) // opens segment 1 on its first read
	_, _, err := r.Next(1 << 62)
	require.NoError(t, err)
	_, _, err = l.TruncateFront(starts[2])
	require.NoError(t, err)
	n := readAll(t, r, starts[2]-1) // the rest of the open, removed segment
	assert.Equal(t, int(starts[2]-starts[1]-1), n)
	r.Close()
	r = l.NewReader(1)
	_, _, err = r.Next(1 << 62)
	assert.True(t, errors.Is(err, ErrTruncated), "%v", err)
	r.Close()

	r = l.NewReader(starts[2])
	_, _, err = r.Next(1 << 62)
	require.NoError(t, err)
	_, err = l.Rewrite(starts[3]-1, func(seq uint64, p []byte) ([]byte, bool, error) {
		return bytes.ToUpper(append([]byte("x"), p...)), false, nil
	})
	require.NoError(t, err)
	assert.Equal(t, 400-int(starts[2]), readAll(t, r, 1<<62), "the old file, then the rest")
	r.Close()
	r = l.NewReader(starts[2])
	defer r.Close()
	_, p, err := r.Next(1 << 62)
	require.NoError(t, err)
	assert.Equal(t, byte('X'), p[0], "a new Reader reads the rewritten segment")
}
