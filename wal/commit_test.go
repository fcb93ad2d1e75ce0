package wal

import (
	"github.com/featurelog/featurelog/vfs"

	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/featurelog/featurelog/internal/atomicfile"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	twal "github.com/tidwall/wal"
)

// hookBackend wraps the tidwall log to count and fail WriteBatch calls.
type hookBackend struct {
	backend
	// before runs before the n-th WriteBatch (from 1); an error fails the
	// call without writing anything.
	before func(n int) error
	// after runs after the n-th WriteBatch has written and fsynced; an
	// error is returned as if the fsync had failed.
	after func(n int) error
	calls atomic.Int64
}

func (b *hookBackend) WriteBatch(tb *twal.Batch) error {
	n := int(b.calls.Add(1))
	if b.before != nil {
		if err := b.before(n); err != nil {
			return err
		}
	}
	if err := b.backend.WriteBatch(tb); err != nil {
		return err
	}
	if b.after != nil {
		return b.after(n)
	}
	return nil
}

// withHooks makes opts wrap the backend in hb.
func withHooks(opts Options, hb *hookBackend) Options {
	opts.private.wrapBackend = func(inner backend) backend {
		hb.backend = inner
		return hb
	}
	return opts
}

// gate blocks the first WriteBatch until released, so that a test can
// queue appends behind it deterministically: a slow fsync, without sleeps.
type gate struct {
	entered, release chan struct{}
}

func newGate() *gate { return &gate{make(chan struct{}), make(chan struct{})} }

func (g *gate) before(n int) error {
	if n == 1 {
		close(g.entered)
		<-g.release
	}
	return nil
}

// queued returns how many appends wait for the committer.
func queued(l *Log) int {
	l.queue.Lock()
	defer l.queue.Unlock()
	return len(l.queue.reqs)
}

// appendConcurrently starts one Append per payload after the first one
// has entered the gated backend, waits until all are queued, calls each of
// then, releases the gate and returns the seqs and errors.
func appendConcurrently(t *testing.T, l *Log, g *gate, payloads [][]byte, then ...func()) ([]uint64, []error) {
	seqs := make([]uint64, len(payloads))
	errs := make([]error, len(payloads))
	var wg sync.WaitGroup
	run := func(i int) {
		wg.Go(func() { seqs[i], errs[i] = l.Append(payloads[i]) })
	}
	run(0)
	<-g.entered
	for i := 1; i < len(payloads); i++ {
		run(i)
	}
	require.Eventually(t, func() bool { return queued(l) == len(payloads)-1 }, 10*time.Second, time.Millisecond)
	for _, f := range then {
		f()
	}
	close(g.release)
	wg.Wait()
	return seqs, errs
}

// requireDistinctPayloads checks that every append succeeded, the seqs
// are 1..n and each holds its own payload.
func requireDistinctPayloads(t *testing.T, l *Log, payloads [][]byte, seqs []uint64, errs []error) {
	bySeq := map[uint64][]byte{}
	for i := range payloads {
		require.NoError(t, errs[i])
		bySeq[seqs[i]] = payloads[i]
	}
	require.Len(t, bySeq, len(payloads), "seqs are distinct")
	got := replayAll(t, l, 1)
	require.Len(t, got, len(payloads))
	for i, e := range got {
		require.Equal(t, uint64(i+1), e.seq)
		require.Equal(t, bySeq[e.seq], e.payload)
	}
}

func numbered(n, size int) [][]byte {
	ps := make([][]byte, n)
	for i := range ps {
		ps[i] = fmt.Appendf(make([]byte, 0, size), "%0*d", size, i)
	}
	return ps
}

// TestGroupCommitSharesFsyncs: while one fsync is slow, N-1 appenders
// queue up; they must all share the next write and fsync.
func TestGroupCommitSharesFsyncs(t *testing.T) {
	const n = 32
	g := newGate()
	hb := &hookBackend{before: g.before}
	opts := testOptions(t)
	opts.NoSync = false
	l := openT(t, withHooks(opts, hb))
	payloads := numbered(n, 100)
	seqs, errs := appendConcurrently(t, l, g, payloads)
	requireDistinctPayloads(t, l, payloads, seqs, errs)
	assert.Equal(t, int64(2), hb.calls.Load(), "%d appends, one slow fsync: 2 batches", n)
	st := l.Stats()
	assert.Equal(t, Stats{Batches: 2, Entries: n, Bytes: n * 100}, st)
}

// TestGroupCommitMaxBatchBytes: a batch never holds more than
// MaxBatchBytes of payload.
func TestGroupCommitMaxBatchBytes(t *testing.T) {
	g := newGate()
	hb := &hookBackend{before: g.before}
	opts := testOptions(t)
	opts.MaxBatchBytes = 300
	l := openT(t, withHooks(opts, hb))
	payloads := numbered(10, 100)
	seqs, errs := appendConcurrently(t, l, g, payloads)
	requireDistinctPayloads(t, l, payloads, seqs, errs)
	assert.Equal(t, int64(1+3), hb.calls.Load(), "1 gated batch, then 9 appends of 100 B in batches of 300 B")
}

// TestCloseWaitsForPendingAppends: appends queued before Close are all
// written before Close returns.
func TestCloseWaitsForPendingAppends(t *testing.T) {
	g := newGate()
	opts := testOptions(t)
	l, err := Open(withHooks(opts, &hookBackend{before: g.before}))
	require.NoError(t, err)
	var closeErr error
	closed := make(chan struct{})
	closeNow := func() {
		go func() { closeErr = l.Close(); close(closed) }()
		require.Eventually(t, l.isClosed, 10*time.Second, time.Millisecond)
	}
	payloads := numbered(8, 10)
	_, errs := appendConcurrently(t, l, g, payloads, closeNow)
	<-closed
	require.NoError(t, closeErr)
	for _, err := range errs {
		require.NoError(t, err, "appends queued before Close are written")
	}
	l = openT(t, opts)
	assert.Equal(t, uint64(len(payloads)), l.LastSeq())
}

// syncEvent is a directory fsync seen by the hook.
type syncEvent struct {
	newest  uint64 // first seq of the newest segment file at the time
	lastSeq uint64 // the log's LastSeq at the time
}

// recordDirSyncs makes opts record every fsync of its Dir once *l is set.
func recordDirSyncs(opts *Options, l **Log, events *[]syncEvent) {
	opts.private.syncDir = func(dir string) error {
		if *l != nil && dir == opts.Dir {
			segs, err := listSegments(vfs.Default, dir)
			if err != nil {
				return err
			}
			*events = append(*events, syncEvent{segs[len(segs)-1].first, (*l).LastSeq()})
		}
		return atomicfile.SyncDir(dir)
	}
}

// TestDirSyncOnCycle: every new segment file is followed by a directory
// fsync before any entry in it is acknowledged.
func TestDirSyncOnCycle(t *testing.T) {
	opts := testOptions(t)
	opts.NoSync = false
	opts.SegmentSize = 1024
	var l *Log
	var events []syncEvent
	recordDirSyncs(&opts, &l, &events)
	l = openT(t, opts)
	appendN(t, l, 100) // one entry per batch: each cycle is its own batch
	files := len(segmentPaths(t, opts.Dir))
	require.Greater(t, files, 5)
	require.Len(t, events, files-1, "one directory fsync per segment created after Open")
	assert.Equal(t, uint64(files-1), l.Stats().DirSyncs)
	for i, e := range events {
		assert.Greater(t, e.newest, e.lastSeq, "sync %d happened before the new segment's entries were acknowledged", i)
		if i > 0 {
			assert.Greater(t, e.newest, events[i-1].newest)
		}
	}
	closeT(t, l)
	l = openT(t, opts)
	requireEntries(t, l, 100)
}

// TestDirSyncMidBatchCycle: one batch that fills several segments (tidwall
// cycles in the middle of WriteBatch) needs one directory fsync, and Replay
// finds entries in every new segment.
func TestDirSyncMidBatchCycle(t *testing.T) {
	g := newGate()
	opts := testOptions(t)
	opts.NoSync = false
	opts.SegmentSize = 1024
	var l *Log
	var events []syncEvent
	recordDirSyncs(&opts, &l, &events)
	l = openT(t, withHooks(opts, &hookBackend{before: g.before}))
	payloads := numbered(50, 100)
	seqs, errs := appendConcurrently(t, l, g, payloads)
	requireDistinctPayloads(t, l, payloads, seqs, errs)
	files := len(segmentPaths(t, opts.Dir))
	require.Greater(t, files, 3, "the second batch spans several segments")
	require.Len(t, events, 1, "one directory fsync for the whole batch")
	assert.Equal(t, uint64(1), events[0].lastSeq, "before the batch was acknowledged")
	l.mu.Lock()
	assert.Len(t, l.mu.segments, files, "Replay knows every segment")
	l.mu.Unlock()
	closeT(t, l)
	l = openT(t, opts)
	requireDistinctPayloads(t, l, payloads, seqs, errs)
}

var errInjected = errors.New("injected I/O error")

// TestStickyFailure fails the i-th batch in each way the committer can
// fail: the failing appends and every later one get ErrFailed, nothing is
// written after the failure, and a reopened log holds every acknowledged
// entry and nothing newer than the failed batch.
func TestStickyFailure(t *testing.T) {
	const failAt = 7
	for _, tc := range []struct {
		name string
		// setup arranges for batch failAt to fail.
		setup func(opts *Options, hb *hookBackend)
		// written: the failed batch reached the file before the error.
		written bool
	}{
		{"write fails", func(_ *Options, hb *hookBackend) {
			hb.before = func(n int) error { return errAt(n, failAt) }
		}, false},
		{"fsync fails after write", func(_ *Options, hb *hookBackend) {
			hb.after = func(n int) error { return errAt(n, failAt) }
		}, true},
		{"directory fsync fails", func(opts *Options, hb *hookBackend) {
			// Each 1000-byte entry fills a segment: every batch cycles.
			opts.SegmentSize = 1000
			opts.private.syncDir = func(dir string) error {
				if dir == opts.Dir && hb.calls.Load() == failAt {
					return errInjected
				}
				return atomicfile.SyncDir(dir)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(t)
			opts.NoSync = false
			hb := &hookBackend{}
			tc.setup(&opts, hb)
			l, err := Open(withHooks(opts, hb))
			require.NoError(t, err)
			payload := make([]byte, 1000)
			for i := 1; i < failAt; i++ {
				_, err := l.Append(payload)
				require.NoError(t, err)
			}
			_, err = l.Append(payload)
			require.ErrorIs(t, err, ErrFailed)
			require.ErrorIs(t, err, errInjected, "the cause is kept")
			require.ErrorIs(t, l.Err(), ErrFailed)
			for range 3 {
				_, err = l.Append(payload)
				require.ErrorIs(t, err, ErrFailed)
			}
			assert.Equal(t, int64(failAt), hb.calls.Load(), "nothing is written after a failure")
			assert.Equal(t, uint64(failAt-1), l.LastSeq())
			require.ErrorIs(t, l.Close(), ErrFailed, "Close reports the failure")

			opts.private = testHooks{}
			l = openT(t, opts)
			want := uint64(failAt - 1)
			if tc.written {
				want++ // durability was unknown; this time it made it
			}
			assert.Equal(t, want, l.LastSeq())
			assert.Len(t, replayAll(t, l, 1), int(want))
		})
	}
}

func errAt(n, at int) error {
	if n == at {
		return errInjected
	}
	return nil
}

// TestStickyFailureConcurrent: with many appenders, exactly the appends
// acknowledged before the failure survive, as a dense prefix; no append
// succeeds after it.
func TestStickyFailureConcurrent(t *testing.T) {
	const failAt = 5
	opts := testOptions(t)
	hb := &hookBackend{before: func(n int) error { return errAt(n, failAt) }}
	l, err := Open(withHooks(opts, hb))
	require.NoError(t, err)
	var mu sync.Mutex
	acked := map[uint64][]byte{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			// Batch failAt fails within a few dozen appends; the bound
			// turns a log that keeps accepting appends into a failure
			// rather than a hang.
			for i := range 1000 {
				p := fmt.Appendf(nil, "w%d-%d", w, i)
				seq, err := l.Append(p)
				if err != nil {
					assert.ErrorIs(t, err, ErrFailed)
					return
				}
				mu.Lock()
				acked[seq] = p
				mu.Unlock()
			}
			t.Errorf("writer %d: appends still succeed after the failure", w)
		})
	}
	wg.Wait()
	require.ErrorIs(t, l.Close(), ErrFailed)
	require.NotEmpty(t, acked)
	opts.private = testHooks{}
	l = openT(t, opts)
	got := replayAll(t, l, 1)
	require.Len(t, got, len(acked), "exactly the acknowledged entries, no phantom")
	for _, e := range got {
		require.Equal(t, acked[e.seq], e.payload, "seq %d", e.seq)
	}
}

// TestOnSync: OnSync sees each fsync of a segment (one per batch while no
// segment is created), and none under NoSync, which makes none.
func TestOnSync(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		opts := testOptions(t)
		opts.NoSync, opts.SegmentSize = noSync, 1<<20
		var calls atomic.Int64
		var total atomic.Int64
		opts.OnSync = func(d time.Duration) {
			calls.Add(1)
			total.Add(int64(d))
		}
		l := openT(t, opts)
		appendN(t, l, 20)
		closeT(t, l)
		if noSync {
			assert.Zero(t, calls.Load(), "NoSync: no fsync, no call")
			continue
		}
		assert.Equal(t, int64(20), calls.Load(), "one fsync per appended batch")
		assert.Equal(t, uint64(20), l.Stats().Batches)
		assert.Positive(t, total.Load(), "the fsyncs took some time")
	}
}
