package wal

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAppendBatch: a batch's payloads get consecutive seqs, in order,
// from one group commit, and read back as appended, also after a reopen.
func TestAppendBatch(t *testing.T) {
	opts := testOptions(t)
	l := openT(t, opts)
	first, err := l.AppendBatch(nil)
	require.NoError(t, err)
	assert.Zero(t, first, "an empty batch writes nothing")
	_, err = l.Append([]byte("one"))
	require.NoError(t, err)
	before := l.Stats().Batches
	first, err = l.AppendBatch([][]byte{[]byte("a"), {}, []byte("ccc")})
	require.NoError(t, err)
	assert.Equal(t, uint64(2), first)
	assert.Equal(t, uint64(4), l.LastSeq())
	assert.Equal(t, before+1, l.Stats().Batches, "one group commit: one write, one fsync")
	got := replayAll(t, l, 1)
	require.Len(t, got, 4)
	for i, want := range []string{"one", "a", "", "ccc"} {
		assert.Equal(t, uint64(i+1), got[i].seq)
		assert.Equal(t, want, string(got[i].payload))
	}
	require.NoError(t, l.Close())
	l = openT(t, opts)
	assert.Len(t, replayAll(t, l, 1), 4)
}

// TestAppendBatchTooLarge: payloads that together exceed MaxBatchBytes
// are refused whole, and the log goes on.
func TestAppendBatchTooLarge(t *testing.T) {
	opts := testOptions(t)
	opts.MaxBatchBytes = 1000
	l := openT(t, opts)
	_, err := l.AppendBatch([][]byte{make([]byte, 600), make([]byte, 401)})
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Zero(t, l.LastSeq(), "nothing written")
	first, err := l.AppendBatch([][]byte{make([]byte, 600), make([]byte, 400)})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), first)
}

// TestAppendBatchContiguous: batches appended concurrently with single
// appends, and with each other, are never interleaved, and the committer
// never splits one over two commits even when MaxBatchBytes cuts the
// queue.
func TestAppendBatchContiguous(t *testing.T) {
	opts := testOptions(t)
	opts.MaxBatchBytes = 64
	l := openT(t, opts)
	var wg sync.WaitGroup
	firsts := make([][]uint64, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if g%2 == 0 {
					_, err := l.Append([]byte("single"))
					assert.NoError(t, err)
					continue
				}
				batch := make([][]byte, 1+i%5)
				for j := range batch {
					batch[j] = fmt.Appendf(nil, "g%d-%d-%d", g, i, j)
				}
				first, err := l.AppendBatch(batch)
				assert.NoError(t, err)
				firsts[g] = append(firsts[g], first)
			}
		}()
	}
	wg.Wait()
	got := replayAll(t, l, 1)
	for g := 1; g < 4; g += 2 {
		for i, first := range firsts[g] {
			for j := range 1 + i%5 {
				assert.Equal(t, fmt.Sprintf("g%d-%d-%d", g, i, j), string(got[first-1+uint64(j)].payload))
			}
		}
	}
}
