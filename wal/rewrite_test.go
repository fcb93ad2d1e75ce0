package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/vfs"
	"github.com/featurelog/featurelog/vfs/errorfs"
)

// erased is what the rewrite tests turn an even seq's payload into.
func erased(seq uint64) []byte { return []byte{'E', byte(seq)} }

// eraseEven rewrites every even entry's payload to erased(seq).
func eraseEven(seq uint64, _ []byte) ([]byte, bool, error) {
	if seq%2 == 1 {
		return nil, true, nil
	}
	return erased(seq), false, nil
}

// wantAfterErase is payloadFor(seq), or erased(seq) for an even seq <= upTo.
func wantAfterErase(seq, upTo uint64) []byte {
	if seq%2 == 0 && seq <= upTo {
		return erased(seq)
	}
	return payloadFor(seq)
}

// TestRewrite: entries up to the bound get their new payloads, the tail
// is sealed first when it holds some, the seqs stay dense, appends go on,
// and a reopen reads the rewritten log.
func TestRewrite(t *testing.T) {
	opts := testOptions(t)
	l := openT(t, opts)
	appendN(t, l, 300)
	upTo := uint64(290) // in the tail segment: Rewrite must seal it
	st, err := l.Rewrite(upTo, eraseEven)
	require.NoError(t, err)
	assert.Equal(t, 145, st.EntriesChanged)
	assert.Equal(t, st.Segments, st.SegmentsRewritten, "every segment holds an even seq")
	assert.Equal(t, 300, st.Entries, "the sealed tail's entries are all read")
	appendN(t, l, 10)
	check := func(l *Log) {
		got := replayAll(t, l, 1)
		require.Len(t, got, 310)
		for i, e := range got {
			require.Equal(t, uint64(i+1), e.seq)
			require.Equal(t, wantAfterErase(e.seq, upTo), e.payload, "seq %d", e.seq)
		}
	}
	check(l)
	require.NoError(t, l.Verify())
	require.NoError(t, l.Close())
	l2 := openT(t, opts)
	check(l2)
	assert.Nil(t, l2.Repair())
}

// TestRewriteCompressed: compressed entries are read, kept and rewritten
// compressed.
func TestRewriteCompressed(t *testing.T) {
	opts := testOptions(t)
	opts.CompressMin = 256
	l := openT(t, opts)
	big := func(seq uint64) []byte { return bytes.Repeat([]byte(fmt.Sprintf("user_id=C%d clicked=0 ", seq)), 40) }
	for seq := uint64(1); seq <= 50; seq++ {
		_, err := l.Append(big(seq))
		require.NoError(t, err)
	}
	_, err := l.Rewrite(50, func(seq uint64, p []byte) ([]byte, bool, error) {
		require.Equal(t, big(seq), p)
		if seq%3 == 0 {
			return big(seq + 1000), false, nil
		}
		return nil, true, nil
	})
	require.NoError(t, err)
	for _, e := range replayAll(t, l, 1) {
		want := big(e.seq)
		if e.seq%3 == 0 {
			want = big(e.seq + 1000)
		}
		require.Equal(t, want, e.payload)
	}
	require.NoError(t, l.Verify())
}

// TestRewriteUnchangedSegmentsStay: a segment whose entries all keep
// their payloads is not touched (same inode, no temporary file).
func TestRewriteUnchangedSegmentsStay(t *testing.T) {
	opts := testOptions(t)
	l := openT(t, opts)
	appendN(t, l, 200)
	_, err := l.Seal()
	require.NoError(t, err)
	segs, _, err := l.snapshot()
	require.NoError(t, err)
	before, err := os.Stat(segs[0].path)
	require.NoError(t, err)
	target := segs[1].first // only the second segment changes
	st, err := l.Rewrite(200, func(seq uint64, _ []byte) ([]byte, bool, error) {
		if seq == target {
			return nil, false, nil // an empty payload is a valid one
		}
		return nil, true, nil
	})
	require.NoError(t, err)
	assert.Equal(t, 1, st.SegmentsRewritten)
	after, err := os.Stat(segs[0].path)
	require.NoError(t, err)
	assert.True(t, os.SameFile(before, after), "an unchanged segment is left alone")
	got := replayAll(t, l, target)
	assert.Empty(t, got[0].payload)
	matches, _ := filepath.Glob(filepath.Join(opts.Dir, "*"+rewriteSuffix))
	assert.Empty(t, matches)
}

// TestRewriteLeftoverRemovedOnOpen: a crash between writing a rewrite's
// temporary file and renaming it leaves the segment intact and the file
// behind; Open removes the file, whose old payloads must not linger.
func TestRewriteLeftoverRemovedOnOpen(t *testing.T) {
	opts := testOptions(t)
	l := openT(t, opts)
	appendN(t, l, 100)
	segs, _, err := l.snapshot()
	require.NoError(t, err)
	require.NoError(t, l.Close())
	leftover := segs[0].path + rewriteSuffix
	require.NoError(t, os.WriteFile(leftover, []byte("half a rewrite"), 0o644))
	l = openT(t, opts)
	requireEntries(t, l, 100)
	_, err = os.Stat(leftover)
	assert.True(t, errors.Is(err, os.ErrNotExist), "Open removes an unfinished rewrite")
}

// TestRewriteConcurrentAppends: appends and replays running during a
// rewrite (and its seal) all succeed, with dense seqs.
func TestRewriteConcurrentAppends(t *testing.T) {
	opts := testOptions(t)
	l := openT(t, opts)
	appendN(t, l, 200)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				_, err := l.Append([]byte{byte(w), byte(i)})
				assert.NoError(t, err)
			}
		}()
	}
	for range 5 {
		_, err := l.Rewrite(l.LastSeq(), func(seq uint64, p []byte) ([]byte, bool, error) {
			if seq <= 200 && seq%2 == 0 && !bytes.Equal(p, erased(seq)) {
				return erased(seq), false, nil
			}
			return nil, true, nil
		})
		require.NoError(t, err)
	}
	wg.Wait()
	require.Equal(t, uint64(600), l.LastSeq())
	got := replayAll(t, l, 1)
	require.Len(t, got, 600)
	for i := range 200 {
		require.Equal(t, wantAfterErase(uint64(i+1), 200), got[i].payload)
	}
	require.NoError(t, l.Verify())
}

// TestRewriteFaults fails each file operation of a rewrite in turn: the
// rewrite reports it, the log stays usable, every entry has its old or its
// new payload (never anything else), no temporary file is left, and a
// second rewrite finishes the job.
func TestRewriteFaults(t *testing.T) {
	prepare := func(t *testing.T) (*Log, *errorfs.Injector, Options) {
		opts := testOptions(t)
		opts.NoSync = false
		inj := errorfs.NewInjector(vfs.Default)
		opts.FS = inj
		l := openT(t, opts)
		appendN(t, l, 100)
		_, err := l.Seal()
		require.NoError(t, err)
		return l, inj, opts
	}
	l, inj, _ := prepare(t)
	n0 := inj.Count()
	_, err := l.Rewrite(100, eraseEven)
	require.NoError(t, err)
	n1 := inj.Count()
	require.Greater(t, n1-n0, int64(10))
	for k := n0 + 1; k <= n1; k++ {
		l, inj, opts := prepare(t)
		require.Equal(t, n0, inj.Count(), "the preparation is deterministic")
		inj.FailAt(k, false)
		_, err := l.Rewrite(100, eraseEven)
		if len(inj.Injected()) > 0 {
			require.Error(t, err, "operation %d: %v", k, inj.Injected())
		}
		require.NoError(t, l.Err(), "a rewrite failure does not fail the log")
		for _, e := range replayAll(t, l, 1) {
			if !bytes.Equal(e.payload, payloadFor(e.seq)) {
				require.Equal(t, erased(e.seq), e.payload, "operation %d: seq %d", k, e.seq)
			}
		}
		matches, _ := filepath.Glob(filepath.Join(opts.Dir, "*"+rewriteSuffix))
		assert.Empty(t, matches, "operation %d", k)
		_, err = l.Rewrite(100, eraseEven)
		require.NoError(t, err)
		for _, e := range replayAll(t, l, 1) {
			require.Equal(t, wantAfterErase(e.seq, 100), e.payload)
		}
		appendN(t, l, 1)
	}
}
