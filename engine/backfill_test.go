package engine

// Backfill and materialization jobs (SPEC §6): the state a job builds
// beside ingest equals the state of a view defined from the start; while
// it runs the earlier version serves (or a new view answers 503); a
// cancelled or failed job leaves everything as before.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bfRepo is the repo of these tests; {{VIEWS}} and {{SERVICE}} take the
// parts that differ between applies, {{BATCH}} a source's batch block.
const bfRepo = `workspace: bf
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: events
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Int64}
      - {name: note, type: String}
{{BATCH}}
feature_views:
  - name: latest
    source: events
    entities: [user]
    timestamp_field: ts
    features:
      - attribute: {name: amount}
      - attribute: {name: note}
{{VIEWS}}
feature_services:
  - name: all
    features:
      - latest
{{SERVICE}}
`

const bfSums = `  - name: sums
    source: events
    entities: [user]
    timestamp_field: ts
    features:
      - aggregate: {input: amount, function: sum, window: 1h}
      - aggregate: {input: amount, function: count, window: 24h}
      - aggregate: {input: amount, function: max, window: 6h, name: amount_max}
      - aggregate: {input: note, function: last_distinct_n, n: 3, window: 24h}
`

func bfRepoText(views, service, batch string) []byte {
	r := strings.NewReplacer("{{VIEWS}}", views, "{{SERVICE}}", service, "{{BATCH}}", batch)
	return []byte(r.Replace(bfRepo))
}

var bfNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

type bfEvent struct {
	user   string
	ts     time.Time
	amount int64
	note   string
}

func (e bfEvent) record() map[string]any {
	return map[string]any{"user_id": e.user, "ts": e.ts, "amount": e.amount, "note": e.note}
}

// bfEvents returns n events over keys users, skewed (a few users get most
// events), timestamps over the two days before bfNow, in random order.
func bfEvents(seed uint64, n, users int) []bfEvent {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]bfEvent, n)
	for i := range out {
		u := int(float64(users) * rng.Float64() * rng.Float64()) // skewed to low ids
		out[i] = bfEvent{user: fmt.Sprintf("u%03d", u), ts: bfNow.Add(-time.Duration(rng.Int64N(int64(48 * time.Hour)))).Truncate(time.Microsecond),
			amount: rng.Int64N(1000) - 100, note: fmt.Sprintf("n%d", rng.IntN(7))}
	}
	return out
}

// bfReference is a DB with the sums view defined from the start and evs
// ingested: what a backfilled view must equal.
func bfReference(t *testing.T, evs []bfEvent) *DB {
	t.Helper()
	db := bfOpen(t, t.TempDir(), 0)
	t.Cleanup(func() { db.Close() })
	_, err := db.ApplyWait(context.Background(), "bf.yaml", bfRepoText(bfSums, "      - sums", ""))
	require.NoError(t, err)
	bfIngest(t, db, evs)
	return db
}

func bfOpen(t *testing.T, dir string, runRecords int) *DB {
	t.Helper()
	db, err := Open(Options{Dir: dir, NoSync: true, Now: func() time.Time { return bfNow }, BackfillRunRecords: runRecords, BackfillWorkers: 2,
		DisableAutoFlush: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	return db
}

func bfIngest(t *testing.T, db *DB, evs []bfEvent) {
	t.Helper()
	for len(evs) > 0 {
		n := min(len(evs), 100)
		recs := make([]map[string]any, n)
		for i := range recs {
			recs[i] = evs[i].record()
		}
		_, err := db.Ingest(&IngestRequest{Workspace: "bf", Records: map[string][]map[string]any{"events": recs}})
		require.NoError(t, err)
		evs = evs[n:]
	}
}

// bfRead reads service all for every user, as of several times.
func bfRead(t *testing.T, db *DB, users int) []string {
	t.Helper()
	var out []string
	for _, asOf := range []time.Time{bfNow, bfNow.Add(-90 * time.Minute), bfNow.Add(-30 * time.Hour)} {
		keys := make([]map[string]any, users)
		for u := range keys {
			keys[u] = map[string]any{"user_id": fmt.Sprintf("u%03d", u)}
		}
		vecs, err := db.GetFeaturesBatch("bf", "all", keys, asOf)
		require.NoError(t, err)
		for u, v := range vecs {
			out = append(out, fmt.Sprintf("%s@%s: %v", keys[u]["user_id"], asOf.Format(time.RFC3339), v.Features))
		}
	}
	return out
}

// TestBackfillBesideIngest: a view added after N events, built by its
// backfill job while more events are ingested, and a changed view's new
// version, equal the same views defined from the start; the backfill
// ends checkpointed; the counts of the summary include its records.
func TestBackfillBesideIngest(t *testing.T) {
	n, users := 20000, 60
	if testing.Short() {
		n = 4000
	}
	evs := bfEvents(1, n, users)
	first, during := evs[:n*3/4], evs[n*3/4:]

	want := bfReference(t, evs)

	dir := t.TempDir()
	db := bfOpen(t, dir, 700) // many runs: memory bounded by 700 records per view
	_, err := db.ApplyWait(context.Background(), "bf.yaml", bfRepoText("", "", ""))
	require.NoError(t, err)
	bfIngest(t, db, first)
	release := make(chan struct{})
	db.beforeCommit = func(ctx context.Context) { <-release }
	res, err := db.Apply("bf.yaml", bfRepoText(bfSums, "      - sums\n  - name: sums_fs\n    features: [sums]", ""))
	require.NoError(t, err)
	require.Len(t, res.Jobs, 1, "one backfill job, for the new view")
	assert.Equal(t, "sums", res.Jobs[0].FeatureView)

	vec, err := db.GetFeatures(&GetFeaturesRequest{Workspace: "bf", Service: "all", JoinKeys: map[string]any{"user_id": "u001"}})
	require.NoError(t, err, "a service that existed serves its earlier definition until the backfill commits")
	assert.Len(t, vec.Features, 2)
	_, err = db.GetFeatures(&GetFeaturesRequest{Workspace: "bf", Service: "sums_fs", JoinKeys: map[string]any{"user_id": "u001"}})
	require.Error(t, err, "a service with a new view whose backfill has not succeeded does not serve")
	assert.Equal(t, CodeUnavailable, CodeOf(err))
	assert.Contains(t, err.Error(), `feature view "sums"`)
	assert.Contains(t, err.Error(), res.Jobs[0].ID)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // ingest goes on during the backfill
		defer wg.Done()
		bfIngest(t, db, during)
	}()
	wg.Wait()
	close(release)
	require.NoError(t, db.WaitJobs(context.Background(), res.Jobs))
	assert.Equal(t, bfRead(t, want, users), bfRead(t, db, users), "backfilled beside ingest = defined from the start")
	assert.Equal(t, bfHistorical(t, want, users, false), bfHistorical(t, db, users, false), "historically too")
	assert.Equal(t, bfHistorical(t, want, users, false), bfHistorical(t, db, users, true), "and recomputed from the log")

	j, err := db.Job("bf", res.Jobs[0].ID)
	require.NoError(t, err)
	assert.Equal(t, int64(len(first)), j.Result.LogRecords, "the job read the records logged before it started")
	assert.Greater(t, j.Result.Segments, 3, "memory bounded: the job wrote many runs")
	sum, err := db.FeatureViewSummary("bf", "sums")
	require.NoError(t, err)
	wantSum, err := want.FeatureViewSummary("bf", "sums")
	require.NoError(t, err)
	assert.Equal(t, wantSum.OnlineRecords, sum.OnlineRecords, "the summary counts backfilled and ingested records as ingest does")
	assert.Greater(t, sum.OnlineRecords, int64(len(during)))
	assert.Empty(t, sum.Job)

	// Checkpointed: the manifest names the new version's segments, and a
	// reopen serves the same.
	db.maint.Lock()
	mv := db.man.Views["bf/sums@1"]
	db.maint.Unlock()
	require.NotNil(t, mv, "the backfill's checkpoint is in the manifest")
	assert.Equal(t, uint64(len(first)/100), mv.Covered)
	require.NoError(t, db.Close())
	db = bfOpen(t, dir, 0)
	defer db.Close()
	assert.Equal(t, bfRead(t, want, users), bfRead(t, db, users), "after reopen")

	// A new version of a view that serves: the old version serves until
	// the backfill commits, and gets the records ingested meanwhile.
	more := bfEvents(2, 500, users)
	changed := strings.Replace(bfSums, "window: 6h, name: amount_max", "window: 12h, name: amount_max", 1)
	inHook, resume := pauseBeforeCommit(db)
	bfIngest(t, want, more)
	old := bfRead(t, want, users)
	res, err = db.Apply("bf.yaml", bfRepoText(changed, "      - sums", ""))
	require.NoError(t, err)
	<-inHook
	bfIngest(t, db, more)
	sum, err = db.FeatureViewSummary("bf", "sums")
	require.NoError(t, err)
	assert.Equal(t, 2, sum.Version)
	assert.Equal(t, 1, sum.ServingVersion)
	assert.Equal(t, res.Jobs[0].ID, sum.Job)
	close(resume)
	require.NoError(t, db.WaitJobs(context.Background(), res.Jobs))
	_, err = want.ApplyWait(context.Background(), "bf.yaml", bfRepoText(changed, "      - sums", ""))
	require.NoError(t, err)
	assert.NotEqual(t, old, bfRead(t, want, users), "the change changes values")
	assert.Equal(t, bfRead(t, want, users), bfRead(t, db, users), "the new version, after its backfill")
}

// TestBackfillOldVersionServes: while a new version is backfilled, reads
// are the old version's, including records ingested meanwhile.
func TestBackfillOldVersionServes(t *testing.T) {
	users := 20
	evs := bfEvents(3, 2000, users)
	db := bfOpen(t, t.TempDir(), 0)
	defer db.Close()
	_, err := db.ApplyWait(context.Background(), "bf.yaml", bfRepoText(bfSums, "      - sums", ""))
	require.NoError(t, err)
	bfIngest(t, db, evs[:1000])
	ref := bfOpen(t, t.TempDir(), 0) // the old definition, all events
	defer ref.Close()
	_, err = ref.ApplyWait(context.Background(), "bf.yaml", bfRepoText(bfSums, "      - sums", ""))
	require.NoError(t, err)
	bfIngest(t, ref, evs)

	changed := strings.Replace(bfSums, "function: sum, window: 1h", "function: sum, window: 2h", 1)
	inHook, resume := pauseBeforeCommit(db)
	res, err := db.Apply("bf.yaml", bfRepoText(changed, "      - sums", ""))
	require.NoError(t, err)
	<-inHook
	bfIngest(t, db, evs[1000:])
	during := bfReadFeatures(t, db, users, "sums.amount_max", "latest.amount", "latest.note")
	close(resume)
	require.NoError(t, db.WaitJobs(context.Background(), res.Jobs))
	assert.Equal(t, bfReadFeatures(t, ref, users, "sums.amount_max", "latest.amount", "latest.note"), during,
		"the old version served during the backfill, with the records ingested meanwhile")
}

// pauseBeforeCommit makes db's next job wait before it commits: inHook
// is closed when it waits, and it goes on when resume is closed (or it is
// cancelled).
func pauseBeforeCommit(db *DB) (inHook, resume chan struct{}) {
	inHook, resume = make(chan struct{}), make(chan struct{})
	var once sync.Once
	db.beforeCommit = func(ctx context.Context) {
		once.Do(func() { close(inHook) })
		select {
		case <-resume:
		case <-ctx.Done():
		}
	}
	return inHook, resume
}

// bfReadFeatures reads the named features of service all for every user.
func bfReadFeatures(t *testing.T, db *DB, users int, names ...string) []string {
	t.Helper()
	var out []string
	for u := range users {
		v, err := db.GetFeatures(&GetFeaturesRequest{Workspace: "bf", Service: "all", JoinKeys: map[string]any{"user_id": fmt.Sprintf("u%03d", u)}})
		require.NoError(t, err)
		for _, f := range v.Features {
			for _, n := range names {
				if f.Name == n {
					out = append(out, fmt.Sprintf("u%03d %s=%v", u, n, f.Value))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestBackfillCancel: cancelling a running backfill puts the workspace
// back as it was: the earlier repo, the earlier versions serving, their
// state untouched; the cancelled version number is never reused.
func TestBackfillCancel(t *testing.T) {
	users := 20
	evs := bfEvents(4, 1500, users)
	dir := t.TempDir()
	db := bfOpen(t, dir, 0)
	defer func() { db.Close() }()
	_, err := db.ApplyWait(context.Background(), "bf.yaml", bfRepoText(bfSums, "      - sums", ""))
	require.NoError(t, err)
	bfIngest(t, db, evs)
	before := bfRead(t, db, users)

	started := make(chan struct{})
	db.beforeCommit = func(ctx context.Context) {
		close(started)
		<-ctx.Done()
	}
	changed := strings.Replace(bfSums, "window: 1h}", "window: 3h}", 1)
	res, err := db.Apply("bf.yaml", bfRepoText(changed, "      - sums", ""))
	require.NoError(t, err)
	<-started
	_, err = db.Apply("bf.yaml", bfRepoText(bfSums, "      - sums", ""))
	var jc *JobConflict
	require.ErrorAs(t, err, &jc, "no apply while a backfill runs")
	assert.Equal(t, res.Jobs[0].ID, jc.Job.ID)

	j, err := db.CancelJob("bf", res.Jobs[0].ID)
	require.NoError(t, err)
	assert.Contains(t, []JobState{JobCancelRequested, JobCancelled}, j.State)
	j, err = db.WaitJob(context.Background(), "bf", j.ID)
	require.NoError(t, err)
	assert.Equal(t, JobCancelled, j.State)
	assert.Nil(t, j.Error)
	assert.Equal(t, before, bfRead(t, db, users), "everything as before the job")
	plan, err := db.Plan("bf.yaml", bfRepoText(changed, "      - sums", ""))
	require.NoError(t, err)
	assert.False(t, plan.Empty(), "the cancelled apply is undone: applying the file again is a change")
	_, err = db.CancelJob("bf", j.ID)
	require.ErrorAs(t, err, &jc, "cancelling a finished job is a conflict")

	db.beforeCommit = nil
	res, err = db.ApplyWait(context.Background(), "bf.yaml", bfRepoText(changed, "      - sums", ""))
	require.NoError(t, err)
	assert.Equal(t, 3, res.Jobs[0].Version, "version 2 was the cancelled job's; it is not reused")
	require.NoError(t, db.Close())
	db = bfOpen(t, dir, 0)
	sum, err := db.FeatureViewSummary("bf", "sums")
	require.NoError(t, err)
	assert.Equal(t, 3, sum.Version)
}

// TestBackfillResumesAfterClose: a backfill interrupted by Close re-runs
// on open, once, and ends with the same state.
func TestBackfillResumesAfterClose(t *testing.T) {
	users := 30
	evs := bfEvents(5, 3000, users)
	want := bfReference(t, evs)

	dir := t.TempDir()
	db := bfOpen(t, dir, 500)
	_, err := db.ApplyWait(context.Background(), "bf.yaml", bfRepoText("", "", ""))
	require.NoError(t, err)
	bfIngest(t, db, evs[:2000])
	started := make(chan struct{})
	db.beforeCommit = func(ctx context.Context) {
		close(started)
		<-ctx.Done()
	}
	res, err := db.Apply("bf.yaml", bfRepoText(bfSums, "      - sums", ""))
	require.NoError(t, err)
	<-started
	bfIngest(t, db, evs[2000:2500])
	require.NoError(t, db.Close()) // the job stops; it is left RUNNING

	db = bfOpen(t, dir, 500)
	defer db.Close()
	bfIngest(t, db, evs[2500:])
	j, err := db.WaitJob(context.Background(), "bf", res.Jobs[0].ID)
	require.NoError(t, err)
	assert.Equal(t, JobSuccess, j.State)
	assert.Equal(t, 2, j.Runs, "it ran again on open")
	assert.Equal(t, bfRead(t, want, users), bfRead(t, db, users))
}

// TestJobsListing: newest first, 100 by default, filters by view, type and
// state; unknown filter values are refused.
func TestJobsListing(t *testing.T) {
	db := bfOpen(t, t.TempDir(), 0)
	defer db.Close()
	start := bfNow
	for i := range 105 {
		view := "a"
		if i%2 == 1 {
			view = "b"
		}
		at := start.Add(time.Duration(i) * time.Millisecond)
		require.NoError(t, db.jobs.create(&Job{ID: newJobID(at), Type: JobMaterialization, Workspace: "w", FeatureView: view, CreatedAt: at}))
	}
	jobs, err := db.Jobs("w", JobFilter{})
	require.NoError(t, err)
	require.Len(t, jobs, 100, "the default limit")
	assert.True(t, jobs[0].CreatedAt.After(jobs[99].CreatedAt), "newest first")
	assert.Equal(t, start.Add(104*time.Millisecond), jobs[0].CreatedAt)
	jobs, err = db.Jobs("w", JobFilter{FeatureView: "b", State: JobPending, Type: JobMaterialization, Limit: 1000})
	require.NoError(t, err)
	assert.Len(t, jobs, 52)
	jobs, err = db.Jobs("w", JobFilter{Type: JobBackfill})
	require.NoError(t, err)
	assert.Empty(t, jobs)
	_, err = db.Jobs("w", JobFilter{State: "DONE"})
	assert.Equal(t, CodeInvalidArgument, CodeOf(err))
	_, err = db.Jobs("nowhere", JobFilter{})
	assert.Equal(t, CodeNotFound, CodeOf(err))
}
