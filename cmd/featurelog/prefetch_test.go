package main

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeSpine returns rows 0..n-1, then err (io.EOF for a clean end).
type fakeSpine struct {
	n, at int
	err   error
}

func (f *fakeSpine) Columns() []string   { return []string{"i"} }
func (f *fakeSpine) Len() int64          { return int64(f.n) }
func (f *fakeSpine) Position(int) string { return "a row" }
func (f *fakeSpine) Next() ([]any, error) {
	if f.at == f.n {
		return nil, f.err
	}
	f.at++
	return []any{int64(f.at - 1)}, nil
}

// TestPrefetchSpine: the prefetching spine returns every row in order,
// then the spine's own error at the row it came at, and a Close before
// the end stops the reader.
func TestPrefetchSpine(t *testing.T) {
	bad := errors.New("bad value in row 10001")
	for _, c := range []struct {
		n   int
		err error
	}{{0, io.EOF}, {1, io.EOF}, {4096, io.EOF}, {10_000, bad}, {3 * prefetchRows / 2, io.EOF}} {
		p := newPrefetchSpine(&fakeSpine{n: c.n, err: c.err})
		for i := range c.n {
			row, err := p.Next()
			require.NoError(t, err)
			require.Equal(t, int64(i), row[0])
		}
		_, err := p.Next()
		require.ErrorIs(t, err, c.err)
		_, err = p.Next()
		require.ErrorIs(t, err, c.err, "the error stays")
		p.Close()
	}
	// Closed early, with the reader blocked on a full buffer.
	p := newPrefetchSpine(&fakeSpine{n: 3 * prefetchRows, err: io.EOF})
	_, err := p.Next()
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop the reader")
	}
}
