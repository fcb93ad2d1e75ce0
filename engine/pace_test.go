package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakePacer returns a pacer on a fake clock whose sleeps advance it;
// leaveAfter, when positive, ends the reads in flight after that many
// sleeps.
func fakePacer(g *readGate, leaveAfter int) (*pacer, *time.Time, *int) {
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
	var g readGate
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
	var g readGate
	p, now, sleeps := fakePacer(&g, 3)
	g.enter()
	*now = now.Add(time.Second)
	p.yield()
	require.Equal(t, 3, *sleeps)
	require.Equal(t, 3*readPoll, p.waited)
}
