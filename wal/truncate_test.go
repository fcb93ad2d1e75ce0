package wal

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTruncateFront: whole segments before the seq go, oldest first; the
// last segment never does; appends and replays of what is left go on, and
// a reopen reads the log as starting later.
func TestTruncateFront(t *testing.T) {
	opts := testOptions(t)
	l, err := Open(opts)
	require.NoError(t, err)
	for seq := uint64(1); seq <= 400; seq++ {
		got, err := l.Append(payloadFor(seq))
		require.NoError(t, err)
		require.Equal(t, seq, got)
	}
	starts := l.SegmentStarts()
	require.Greater(t, len(starts), 4, "the test needs several segments")

	n, first, err := l.TruncateFront(starts[0])
	require.NoError(t, err)
	assert.Equal(t, 0, n, "nothing before the first segment")
	assert.Equal(t, uint64(1), first)

	cut := starts[3] + 1 // inside segment 3: segments 0..2 hold only entries before it
	n, first, err = l.TruncateFront(cut)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.Equal(t, starts[3], first)
	assert.Equal(t, starts[3], l.FirstSeq())

	seq, err := l.Append(payloadFor(401))
	require.NoError(t, err)
	assert.Equal(t, uint64(401), seq)
	var seen []uint64
	require.NoError(t, l.Replay(1, func(seq uint64, p []byte) error {
		require.Equal(t, payloadFor(seq), p)
		seen = append(seen, seq)
		return nil
	}))
	require.Equal(t, starts[3], seen[0])
	require.Equal(t, uint64(401), seen[len(seen)-1])
	require.Len(t, seen, int(401-starts[3]+1))

	n, _, err = l.TruncateFront(1 << 40) // past the end: all but the last segment
	require.NoError(t, err)
	assert.Positive(t, n)
	assert.Len(t, l.SegmentStarts(), 1, "the last segment is kept")
	require.NoError(t, l.Close())

	l = openT(t, opts)
	assert.Equal(t, uint64(401), l.LastSeq())
	first = l.FirstSeq()
	assert.Greater(t, first, starts[3])
	seq, err = l.Append(payloadFor(402))
	require.NoError(t, err)
	assert.Equal(t, uint64(402), seq)
	count := 0
	require.NoError(t, l.Replay(first, func(seq uint64, p []byte) error {
		require.Equal(t, payloadFor(seq), p)
		count++
		return nil
	}))
	assert.Equal(t, int(402-first+1), count)
}

// TestTruncateFrontKeepsNewestEntry: tidwall starts a new, empty segment
// as soon as an append fills one, so the last segment can hold no entry.
// Truncating past the end then still keeps the segment with the newest
// entry, before and after a reopen: a caller that reads its state back
// from the last entry (engine.DB.AppliedPosition, cluster mode's Kafka
// offset) finds it after any truncation.
func TestTruncateFrontKeepsNewestEntry(t *testing.T) {
	opts := testOptions(t)
	l, err := Open(opts)
	require.NoError(t, err)
	emptyTail := func() bool {
		segs, last, err := l.snapshot()
		require.NoError(t, err)
		return len(segs) > 1 && segs[len(segs)-1].first == last+1
	}
	for len(l.SegmentStarts()) < 3 || !emptyTail() {
		_, err := l.Append(payloadFor(l.LastSeq() + 1))
		require.NoError(t, err)
		require.Less(t, l.LastSeq(), uint64(10000), "no append left the last segment empty")
	}
	last := l.LastSeq()
	n, first, err := l.TruncateFront(last + 1)
	require.NoError(t, err)
	assert.Positive(t, n)
	assert.True(t, first > 0 && first <= last, "the segment with the newest entry was removed: the log starts at %d, its last entry is %d", first, last)
	assert.NotEmpty(t, l.SegmentStarts(), "no segment holds an entry")
	readLast := func() []byte {
		var got []byte
		require.NoError(t, l.Replay(l.FirstSeq(), func(seq uint64, p []byte) error {
			if seq == last {
				got = p
			}
			return nil
		}))
		return got
	}
	assert.Equal(t, payloadFor(last), readLast())
	require.NoError(t, l.Close())

	l = openT(t, opts)
	assert.Equal(t, last, l.LastSeq())
	assert.True(t, l.FirstSeq() > 0 && l.FirstSeq() <= last, "reopened, the log starts at %d, its last entry is %d", l.FirstSeq(), last)
	assert.Equal(t, payloadFor(last), readLast())
}
