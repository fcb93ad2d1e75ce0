package engine

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// fakePacer returns a pacer on a fake clock whose sleeps advance it;
// leaveAfter, when positive, ends the reads in flight after that many
// sleeps.
func fakePacer(g *ReadGate, leaveAfter int) (*pacer, *time.Time, *int) {
	now := time.Unix(1000, 0)
	sleeps := 0
	p := &pacer{gate: g, now: func() time.Time { return now }, mark: now}
	p.sleep = func(d time.Duration) {
		now = now.Add(d)
		if sleeps++; sleeps == leaveAfter {
			g.leave()
		}
	}
	return p, &now, &sleeps
}

// TestPacerWaitsForReads: background work waits while reads are in
// flight, at most readShare times what it worked since it last waited
// (and at most maxReadWait), and not at all when no read is in flight.
func TestPacerWaitsForReads(t *testing.T) {
	var g ReadGate
	p, now, sleeps := fakePacer(&g, 0)
	*now = now.Add(time.Millisecond) // worked 1 ms
	p.yield()
	require.Zero(t, *sleeps, "no read in flight: no wait")
	require.Zero(t, p.waited)

	g.enter()
	*now = now.Add(time.Millisecond) // worked 1 ms with a read in flight
	p.yield()
	require.Equal(t, readShare*time.Millisecond, p.waited, "waits readShare times the work, then goes on")

	*now = now.Add(time.Hour) // a long stretch of work: one wait stays bounded
	p.yield()
	require.Equal(t, readShare*time.Millisecond+maxReadWait, p.waited)

	*now = now.Add(time.Millisecond)
	before := p.waited
	p.yield() // a yield right after a wait: the wait is measured from the end of the last one
	require.Equal(t, readShare*time.Millisecond, p.waited-before)
}

// TestPacerStopsWaitingWhenReadsEnd: the wait ends as soon as the last
// read in flight leaves.
func TestPacerStopsWaitingWhenReadsEnd(t *testing.T) {
	var g ReadGate
	p, now, sleeps := fakePacer(&g, 3)
	g.enter()
	*now = now.Add(time.Second)
	p.yield()
	require.Equal(t, 3, *sleeps)
	require.Equal(t, 3*readPoll, p.waited)
}

// TestMergesGiveWayToReads: a CompactAll run while an online read is in
// flight waits for it between keys
// (featurelog_background_read_wait_seconds_total grows), and one run
// without reads does not wait at all.
func TestMergesGiveWayToReads(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	n := newPosNode(t, &now, adsRepo(t))
	b := &bgMergeNode{t: t, now: &now, db: n.db}
	load := func() {
		for range 4 {
			for range 10 {
				b.ingest(100)
			}
			require.NoError(t, n.db.Flush())
		}
	}
	load()
	require.NoError(t, n.db.CompactAll())
	require.Zero(t, testutil.ToFloat64(n.db.metrics.readWait), "no read in flight: no wait")

	load()
	n.db.reads.enter() // a read that stays in flight through the merges
	err := n.db.CompactAll()
	n.db.reads.leave()
	require.NoError(t, err)
	require.Positive(t, testutil.ToFloat64(n.db.metrics.readWait), "the merges waited for the read in flight")
}

// TestSharedReadGate: DBs opened with one Options.Reads give way to each
// other's reads: a read in flight on one makes the other's merges wait.
func TestSharedReadGate(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	gate := new(ReadGate)
	var dbs []*DB
	for range 2 {
		db, err := Open(Options{Dir: t.TempDir(), NoSync: true, DisableAutoFlush: true, Reads: gate, Logger: slog.New(slog.DiscardHandler),
			Now: func() time.Time { return time.Unix(0, now.Load()).UTC() }})
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		_, err = db.ApplyWait(context.Background(), "repo.yaml", adsRepo(t))
		require.NoError(t, err)
		dbs = append(dbs, db)
	}
	b := &bgMergeNode{t: t, now: &now, db: dbs[1]}
	for range 4 {
		b.ingest(200)
		require.NoError(t, dbs[1].Flush())
	}
	dbs[0].reads.enter() // a read of the first DB, in flight through the second's merges
	err := dbs[1].CompactAll()
	dbs[0].reads.leave()
	require.NoError(t, err)
	require.Positive(t, testutil.ToFloat64(dbs[1].metrics.readWait), "the second DB's merges waited for the first's read")
}
