package engine

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRateRingModel drives a ring with random gaps (none, within a
// minute, minutes, more than the ring holds) and checks every minute it
// keeps against a map of every count ever added.
func TestRateRingModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var r rateRing
	model := map[int64]int64{}
	now := idemT0
	for step := range 5000 {
		switch k := rng.IntN(10); {
		case k < 5: // same minute or the next few seconds
			now = now.Add(time.Duration(rng.IntN(20)) * time.Second)
		case k < 8:
			now = now.Add(time.Duration(rng.IntN(10)) * time.Minute)
		case k < 9:
			now = now.Add(time.Duration(rng.IntN(3*MaxIngestRateMinutes)) * time.Minute)
		default: // exactly a ring apart: the slot holds an older minute
			now = now.Add(MaxIngestRateMinutes * time.Minute)
		}
		n := int64(rng.IntN(100))
		r.add(now, n)
		model[unixMinute(now)] += n
		if step%100 != 0 {
			continue
		}
		end := unixMinute(now)
		for m := end - MaxIngestRateMinutes + 1; m <= end; m++ {
			require.Equal(t, model[m], r.count(m), "step %d: minute %s", step, time.Unix(m*60, 0).UTC())
		}
		require.Zero(t, r.count(end+1), "a minute not yet begun")
		require.Zero(t, r.count(end-MaxIngestRateMinutes), "a minute a ring ago shares a slot with the newest")
	}
}

// TestRateRingEdges: a clock that goes back, counts that overflow a
// slot, times before 1970, and a nil ring.
func TestRateRingEdges(t *testing.T) {
	var r rateRing
	t0 := idemT0
	m0 := unixMinute(t0)
	r.add(t0, 3)
	r.add(t0.Add(-time.Minute), 2) // back a minute: its own slot
	assert.Equal(t, int64(3), r.count(m0))
	assert.Equal(t, int64(2), r.count(m0-1))
	r.add(t0.Add(-MaxIngestRateMinutes*time.Minute), 7) // back a whole ring: the slot holds a later minute
	assert.Equal(t, int64(3), r.count(m0), "a count a day late must not replace the current minute's")
	assert.Zero(t, r.count(m0-MaxIngestRateMinutes))

	r.add(t0, math.MaxUint32)
	assert.Equal(t, int64(math.MaxUint32), r.count(m0), "a slot saturates rather than wraps")
	r.add(t0, 0)
	r.add(t0, -5)
	assert.Equal(t, int64(math.MaxUint32), r.count(m0))

	before := time.Date(1969, 12, 31, 23, 59, 30, 0, time.UTC)
	assert.Equal(t, int64(-1), unixMinute(before), "minutes floor, also before 1970")
	r.add(before, 1)
	assert.Zero(t, r.count(-1))

	var nilRing *rateRing
	nilRing.add(t0, 1)
	assert.Zero(t, nilRing.count(m0))
}

// rateCounts returns the records of the points.
func rateCounts(points []RatePoint) []int64 {
	out := make([]int64, len(points))
	for i, p := range points {
		out[i] = p.Records
	}
	return out
}

// TestIngestRate checks the per-minute counts a view reports over the
// ingests of a test clock: minutes that roll over, a gap of hours, the
// bounds of minutes, and a reopen (counts are in memory only).
func TestIngestRate(t *testing.T) {
	n := newIdemNode(t, 0)
	rate := func(ws, view string, minutes int) []RatePoint {
		t.Helper()
		pts, err := n.db.IngestRate(ws, view, minutes)
		require.NoError(t, err)
		return pts
	}
	ingestAt := func(at time.Time, k int) {
		n.set(at)
		n.ingest(n.body("ads", "u1", k), "")
	}
	ingestAt(idemT0, 3)                               // 12:00
	ingestAt(idemT0.Add(59*time.Second), 2)           // 12:00 still
	ingestAt(idemT0.Add(90*time.Second), 4)           // 12:01
	n.set(idemT0.Add(5*time.Minute + 10*time.Second)) // now 12:05:10

	pts := rate("ads", "user_click_counts", 0)
	require.Len(t, pts, DefaultIngestRateMinutes)
	for i, p := range pts {
		want := idemT0.Add(time.Duration(i-DefaultIngestRateMinutes+6) * time.Minute)
		require.Equal(t, want, p.Start, "point %d starts at a UTC minute, oldest first, ending with the current one", i)
		require.Equal(t, time.UTC, p.Start.Location())
	}
	want := make([]int64, DefaultIngestRateMinutes)
	want[54], want[55] = 5, 4 // 12:00, 12:01; 12:05 is the last
	assert.Equal(t, want, rateCounts(pts))
	assert.Equal(t, want, rateCounts(rate("ads", "click_events_fv", 60)), "every view of the source counts")
	assert.Equal(t, make([]int64, 60), rateCounts(rate("ads2", "user_click_counts", 60)), "another workspace's view")

	assert.Equal(t, []int64{0}, rateCounts(rate("ads", "user_click_counts", 1)))
	assert.Equal(t, []int64{4, 0, 0, 0, 0}, rateCounts(rate("ads", "user_click_counts", 5)))
	assert.Len(t, rate("ads", "user_click_counts", MaxIngestRateMinutes), MaxIngestRateMinutes)

	// Three hours later: the last hour is empty, the day still holds them.
	ingestAt(idemT0.Add(3*time.Hour+5*time.Minute), 1)
	want = make([]int64, 60)
	want[59] = 1
	assert.Equal(t, want, rateCounts(rate("ads", "user_click_counts", 60)))
	day := rateCounts(rate("ads", "user_click_counts", MaxIngestRateMinutes))
	assert.Equal(t, []int64{5, 4}, day[MaxIngestRateMinutes-1-185:MaxIngestRateMinutes-1-183])
	var sum int64
	for _, c := range day {
		sum += c
	}
	assert.Equal(t, int64(10), sum)

	for _, minutes := range []int{-1, MaxIngestRateMinutes + 1, math.MaxInt} {
		_, err := n.db.IngestRate("ads", "user_click_counts", minutes)
		assert.Equal(t, CodeInvalidArgument, CodeOf(err), "minutes=%d", minutes)
		assert.ErrorContains(t, err, "minutes=")
	}
	_, err := n.db.IngestRate("ads", "nope", 0)
	assert.Equal(t, CodeNotFound, CodeOf(err))
	assert.ErrorContains(t, err, `feature view "nope" not found in workspace "ads"`)
	_, err = n.db.IngestRate("nope", "user_click_counts", 0)
	assert.Equal(t, CodeNotFound, CodeOf(err))

	n.reopen()
	assert.Equal(t, make([]int64, 60), rateCounts(rate("ads", "user_click_counts", 60)),
		"replaying the log at open does not count: the rate is of live ingest since the node opened")
}

// TestIngestRateAcrossVersions: an apply that re-versions a view keeps
// its ingest rate, and counts each record once while the old version
// serves and the new one is backfilled (both receive it); the summary
// lists both versions meanwhile.
func TestIngestRateAcrossVersions(t *testing.T) {
	n := newIdemNode(t, 0)
	n.ingest(n.body("ads", "u1", 3), "")
	src, err := os.ReadFile("../examples/ads/features.yaml")
	require.NoError(t, err)
	changed := bytes.Replace(src, []byte("function: count, window: 12h"), []byte("function: count, window: 6h"), 1)
	require.NotEqual(t, src, changed)
	rate := func() int64 {
		t.Helper()
		pts, err := n.db.IngestRate("ads", "user_click_counts", 1)
		require.NoError(t, err)
		return pts[0].Records
	}
	versions := func() []VersionInfo {
		t.Helper()
		s, err := n.db.FeatureViewSummary("ads", "user_click_counts")
		require.NoError(t, err)
		return s.Versions
	}
	require.Equal(t, []VersionInfo{{Version: 1, CreatedAt: idemT0, Serving: true}}, versions())

	applied := idemT0.Add(30 * time.Second)
	n.set(applied)
	inHook, resume := pauseBeforeCommit(n.db)
	res, err := n.db.Apply("ads.yaml", changed)
	require.NoError(t, err)
	require.Len(t, res.Jobs, 1)
	<-inHook
	n.ingest(n.body("ads", "u1", 2), "")
	assert.Equal(t, int64(5), rate(), "the prior and the version being built both got the 2 records; they count once")
	assert.Equal(t, []VersionInfo{{Version: 1, CreatedAt: idemT0, Serving: true},
		{Version: 2, CreatedAt: applied, Job: res.Jobs[0].ID}}, versions())
	close(resume)
	require.NoError(t, n.db.WaitJobs(context.Background(), res.Jobs))

	assert.Equal(t, []VersionInfo{{Version: 2, CreatedAt: applied, Serving: true}}, versions())
	n.ingest(n.body("ads", "u1", 1), "")
	assert.Equal(t, int64(6), rate(), "the new version goes on with the old one's ring")
}

// TestIngestRateConcurrent ingests from several goroutines, each moving
// the clock on by 7s before its request, so that the requests straddle a
// dozen minute boundaries: every record is counted once, in some minute
// of the window (run with -race).
func TestIngestRateConcurrent(t *testing.T) {
	n := newIdemNode(t, 0)
	const workers, requests, k = 4, 25, 3
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range requests {
				n.now.Add(int64(7 * time.Second))
				_, err := n.db.IngestJSONWithKey(n.body("ads", "u1", k), "", nil)
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	for _, view := range []string{"user_click_counts", "click_events_fv"} {
		pts, err := n.db.IngestRate("ads", view, 60)
		require.NoError(t, err)
		var sum int64
		busy := 0
		for _, p := range pts {
			sum += p.Records
			if p.Records > 0 {
				busy++
			}
		}
		assert.Equal(t, int64(workers*requests*k), sum, view)
		assert.Greater(t, busy, 5, "%s: the requests straddle minutes", view)
	}
}

// TestIngestRateRevert: when the backfill of a new version is cancelled,
// the view goes back to its earlier version, which keeps what the new one
// counted meanwhile.
func TestIngestRateRevert(t *testing.T) {
	n := newIdemNode(t, 0)
	n.ingest(n.body("ads", "u1", 3), "")
	src, err := os.ReadFile("../examples/ads/features.yaml")
	require.NoError(t, err)
	inHook, _ := pauseBeforeCommit(n.db)
	res, err := n.db.Apply("ads.yaml", bytes.Replace(src, []byte("function: count, window: 12h"), []byte("function: count, window: 6h"), 1))
	require.NoError(t, err)
	<-inHook
	n.ingest(n.body("ads", "u1", 2), "")
	_, err = n.db.CancelJob("ads", res.Jobs[0].ID)
	require.NoError(t, err)
	require.Error(t, n.db.WaitJobs(context.Background(), res.Jobs), "the test's premise: the apply is undone")
	s, err := n.db.FeatureViewSummary("ads", "user_click_counts")
	require.NoError(t, err)
	require.Equal(t, []VersionInfo{{Version: 1, CreatedAt: idemT0, Serving: true}}, s.Versions)
	n.ingest(n.body("ads", "u1", 1), "")
	pts, err := n.db.IngestRate("ads", "user_click_counts", 1)
	require.NoError(t, err)
	assert.Equal(t, int64(6), pts[0].Records)
}
