package engine_test

// The differential test of online serving over generated repos (issue
// 10): for each seed a repo is drawn (gen_repo_test.go), a random workload
// (gen_workload_test.go) is ingested through Ingest and IngestJSON with a
// fake clock that moves with the events, and every feature of every
// service is compared with the naive model (gen_model_test.go) at many
// read times: event times ±1ns, window and TTL edges ±1ns, tile and
// interval boundaries, feature_start_time, before everything, and now
// (with and without as_of). Every response's metrics and record errors are
// checked against the model too.
//
//   - phase 1: one writer; flushes and merges at random moments; live
//     checkpoints every few requests read recent keys at now and at
//     recent times and read the previous checkpoint's reads again (late
//     events must show in windows, and cached tile ranges, read before);
//     then a full comparison, and another after Close and reopen (replay);
//   - phase 2: more requests on the reopened DB, then a full comparison;
//   - re-applies (gen_reapply_test.go): descriptions only (nothing
//     rebuilt), a column retyped (the views reading it rebuilt, its
//     logged values read as null), a view removed and added back (a new
//     version; no segment file left behind); full comparisons;
//   - phase 3: concurrent writers over disjoint keys while readers read
//     (checked for shape) and flushes and merges run; then a full
//     comparison, live and after another reopen.
//
// Output streams (gen_stream_test.go) are checked along the way: every
// streaming view's stream, read from earliest after phase 1, after the
// reopen, before and after the deletions, after their reopen and at the
// end (and after a last reopen), against the model record by record, and
// live consumers during phases 2 and 3 against a replay.
//
// Besides generated repos, the test runs two fixed ones (genFixedRepos):
// the repos of the hand-written differential tests this one replaced.
//
// On a mismatch the test prints the repo file, the feature, identity,
// read time, got and want and the window's values, and for the first
// mismatch of up to three features it shrinks the repo and the events to
// a minimal reproduction on a fresh DB (gen_shrink_test.go).
//
//	go test ./engine -run TestGenDiff                  # short: a few seeds and the fixed repos, seconds
//	go test ./engine -run TestGenDiff -seed=42         # one seed
//	go test ./engine -run TestGenDiff -long            # many random seeds, bigger workloads
//	go test ./engine -run TestGenDiff -long -seed=N    # replay one seed of a -long run
//	go test ./engine -run TestGenDiff -repo=fixed-agg  # one fixed repo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
)

var (
	diffSeed  = flag.Int64("seed", 0, "run the differential tests with this seed only (0: the default seeds)")
	diffLong  = flag.Bool("long", false, "run the differential tests on more seeds and bigger workloads")
	diffSeeds = flag.Int("seeds", 0, "with -long, how many random seeds (0: the test's default)")
	diffRepo  = flag.String("repo", "", "run the differential tests on this fixed repo only: fixed-agg or fixed-attr (-seed picks a generated one)")
)

// genSize is a workload's size.
type genSize struct {
	requests int           // requests of phase 1 (phases 2 and 3 add a quarter each)
	span     time.Duration // how far the clock moves during phase 1
	keys     int           // values per join-key name
	idents   int           // identities per view read in a full comparison
	reads    int           // read times per identity in a full comparison
	every    int           // requests between live checkpoints
}

// genCase is one repo the differential tests run: a seed's or a fixed one.
type genCase struct {
	name string
	seed int64 // the workload's seed (and the repo's, when generated)
	repo func() *genRepo
}

// genCases returns the cases of a run: shortSeeds generated repos (the
// first only with -short) and the fixed repos; with -long, longSeeds
// random seeds; -seed and -repo pick one.
func genCases(shortSeeds []int64, longSeeds int) []genCase {
	seeds := shortSeeds
	if testing.Short() { // the race run: one seed is enough to race the concurrent phase
		seeds = shortSeeds[:1]
	}
	if *diffLong {
		seeds = nil
		n := longSeeds
		if *diffSeeds > 0 {
			n = *diffSeeds
		}
		base := time.Now().UnixNano()
		for i := 0; i < n; i++ {
			seeds = append(seeds, base+int64(i))
		}
	}
	if *diffSeed != 0 {
		seeds = []int64{*diffSeed}
	}
	var out []genCase
	for _, s := range seeds {
		out = append(out, genCase{name: fmt.Sprintf("seed=%d", s), seed: s, repo: func() *genRepo { return genRandomRepo(s) }})
	}
	if *diffSeed == 0 {
		for _, f := range genFixedRepos {
			out = append(out, genCase{name: f.name, seed: 1, repo: f.repo})
		}
	}
	if *diffRepo != "" {
		out = slices.DeleteFunc(out, func(c genCase) bool { return c.name != *diffRepo })
		if len(out) == 0 {
			panic(fmt.Sprintf("-repo=%s names no fixed repo (fixed-agg, fixed-attr); a generated repo is picked with -seed", *diffRepo))
		}
	}
	return out
}

// rerun is the flag that runs c again.
func (c genCase) rerun() string {
	long := ""
	if *diffLong {
		long = "-long "
	}
	if strings.HasPrefix(c.name, "seed=") {
		return long + "-seed=" + strings.TrimPrefix(c.name, "seed=")
	}
	return long + "-repo=" + c.name
}

func TestGenDiff(t *testing.T) {
	size := genSize{requests: 300, span: 40 * aggH, keys: 120, idents: 12, reads: 10, every: 25}
	if *diffLong {
		size = genSize{requests: 1500, span: 4 * aggD, keys: 300, idents: 40, reads: 30, every: 20}
	}
	resetGenStreamCoverage()
	for _, c := range genCases([]int64{1, 2, 3, 4}, 20) {
		t.Run(c.name, func(t *testing.T) { runGenDiff(t, c, size) })
	}
	requireGenStreamCoverage(t) // gen_stream_test.go
}

// genRun is one workload over one repo against one DB.
type genRun struct {
	t     *testing.T
	c     genCase
	repo  *genRepo
	size  genSize
	r     *rand.Rand // the test goroutine's; writers and readers have their own
	dir   string
	now   atomic.Int64 // the fake clock, Unix ns
	db    *engine.DB
	model *genModel
	w     *genWorkload
	gen   *genGen   // the sequential phases' generator
	gens  []*genGen // every generator, for the statistics
	reqNo atomic.Int64
	stage string
	// backfilling is set while a backfill job runs beside the concurrent
	// phase: a service over the view it builds answers 503 meanwhile.
	backfilling atomic.Bool

	mu  sync.Mutex  // guards log
	log []*genEvent // accepted records in log order (per writer), for the shrinker

	// What the reads exercised, so that a drifting generator fails the
	// test instead of passing vacuously.
	stats struct {
		reads, values, empty, missing, present, crossTies, flushes, merges int
	}
	mismatches     []genMismatch
	shrunk         map[string]bool
	lastCheckpoint []genRead
	streams        genStreamRun // the output stream checks (gen_stream_test.go)
}

// genMismatch is one value the engine got wrong.
type genMismatch struct {
	stage, service, feature string
	id                      genIdentity
	t                       int64
	detail                  string
}

// genRead is one read: a service, an identity, a time (now: no as_of).
type genRead struct {
	svc *genService
	id  genIdentity
	t   int64
	now bool
}

func (d *genRun) clock() time.Time { return time.Unix(0, d.now.Load()).UTC() }

func (d *genRun) open() {
	db, err := engine.Open(engine.Options{Dir: d.dir, Now: d.clock, NoSync: true, SegmentSize: 64 << 10,
		Logger: slog.New(slog.DiscardHandler), DisableAutoFlush: true, CompactionFanIn: 2})
	require.NoError(d.t, err, "%s", d.c.name)
	d.db = db
}

// newGenRun applies the case's repo to a fresh DB.
func newGenRun(t *testing.T, c genCase, size genSize) *genRun {
	repo := c.repo()
	t.Logf("%s: %d sources, %d views, %d services (rerun with %s)", repo.name, len(repo.sources), len(repo.views),
		len(repo.services), c.rerun())
	r := rand.New(rand.NewSource(c.seed))
	d := &genRun{t: t, c: c, repo: repo, size: size, r: r, dir: t.TempDir(), model: newGenModel(repo),
		w: newGenWorkload(repo, size.keys), shrunk: map[string]bool{}}
	d.now.Store(genBase.Add(8 * time.Hour).UnixNano())
	d.gen = newGenGen(d.w, r.Int63(), 0, 1)
	d.gens = []*genGen{d.gen}
	d.open()
	t.Cleanup(func() {
		d.db.Close()
		if t.Failed() && len(d.mismatches) == 0 { // mismatches print it themselves
			t.Logf("the repo of the failed run (%s; rerun with %s):\n%s", repo.name, c.rerun(), genNumbered(d.repo.render()))
		}
	})
	if _, err := d.db.ApplyWait(context.Background(), "gen.yaml", []byte(repo.render())); err != nil {
		t.Fatalf("%s: the generated repo does not apply: %v\n%s", c.name, err, genNumbered(repo.render()))
	}
	d.checkNames()
	return d
}

// genNumbered prints a repo file with line numbers.
func genNumbered(text string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, l)
	}
	return b.String()
}

func runGenDiff(t *testing.T, c genCase, size genSize) {
	start := time.Now()
	d := newGenRun(t, c, size)
	step := int64(size.span) / int64(size.requests)

	d.sequentialPhase("phase 1", size.requests, step, true)
	reads := d.readPlan()
	d.compareAll("after phase 1", reads)
	d.checkStreams("after phase 1")
	require.NoError(t, d.db.Close())
	d.open()
	d.compareAll("after reopen (replay)", reads)
	d.checkStreamsReopened("after reopen (replay)")

	followers, stop := d.followStreams() // gen_stream_test.go
	d.sequentialPhase("phase 2", size.requests/4, step, true)
	d.checkFollowers("phase 2 (live output stream consumers)", followers, stop, false)
	d.compareAll("after phase 2", d.readPlan())
	d.streamsBeforeDeletions("after phase 2")
	d.deletionPhase(size.requests/4, step)
	reads = d.readPlan()
	d.compareAll("after deletions", reads)
	d.checkStreamsAfterDeletions("after deletions")
	require.NoError(t, d.db.Close())
	d.open()
	d.compareAll("after deletions and a reopen", reads)
	d.checkStreamsReopened("after deletions and a reopen")
	d.reapply()
	d.compareAll("after re-applying", d.readPlan())

	d.streams.concFrom = d.reqNo.Load() // log order across keys is unknown from here
	followers, stop = d.followStreams()
	d.concurrentPhase("phase 3", size.requests/4)
	d.checkFollowers("phase 3 (live output stream consumers)", followers, stop, true) // moves the clock on
	d.now.Add(step)
	reads = d.readPlan()
	d.compareAll("after phase 3 (concurrent)", reads)
	d.backfillPhase(size.requests / 4)
	d.now.Add(step)
	reads = d.readPlan()
	d.compareAll("after phase 4 (a backfill beside concurrent ingest)", reads)
	require.NoError(t, d.db.Close())
	d.open()
	d.compareAll("after phase 3 and a reopen", reads)
	d.streams.concTo = d.reqNo.Load()
	d.checkStreamsFinal("at the end") // moves the clock on

	gs, s := d.genStats(), d.stats
	t.Logf("%s: %d requests, %d records (%d duplicates, %d very late, %d around 1970, %d on boundaries, %d ahead of the clock, %d null or absent values), %d rejected requests, %d dry runs",
		c.name, gs.requests, gs.events, gs.dups, gs.veryLate, gs.ancient, gs.boundary, gs.future, gs.nulls, gs.rejected, gs.dryRuns)
	t.Logf("%s: %d reads, %d values compared (%d empty windows, %d attributes present, %d missing, %d 'last' ties across requests), %d flushes, %d merges in %v",
		c.name, s.reads, s.values, s.empty, s.present, s.missing, s.crossTies, s.flushes, s.merges, time.Since(start).Round(time.Millisecond))
	d.report()
	require.Positive(t, gs.rejected, "the workload never sent a request that must fail")
	require.Positive(t, gs.dups, "the workload never sent a duplicate")
	require.Positive(t, s.flushes, "the workload never flushed")
	require.Positive(t, s.merges, "the workload never merged segments")
	require.Greater(t, d.model.n, gs.requests, "too few records accepted")
	if d.hasAggregates() {
		require.Positive(t, s.empty, "no read of an empty window")
	}
	if d.hasAttributes() {
		require.Positive(t, s.missing, "no read of a missing or expired attribute")
		require.Positive(t, s.present, "no read of a present attribute")
	}
}

func (d *genRun) hasAggregates() bool {
	return slices.ContainsFunc(d.repo.views, (*genView).aggregate)
}

func (d *genRun) hasAttributes() bool {
	return slices.ContainsFunc(d.repo.views, func(v *genView) bool { return !v.aggregate() })
}

func (d *genRun) genStats() genGenStats {
	var s genGenStats
	for _, g := range d.gens {
		s.add(g.stats)
	}
	return s
}

// checkNames checks that each service serves its features in order with
// SPEC §1's default names and §3's (and the transforms' inferred) types.
func (d *genRun) checkNames() {
	for _, svc := range d.repo.services {
		fs, err := d.db.ServiceFeatures(d.repo.ws, svc.name)
		require.NoError(d.t, err)
		var got, want []string
		for _, f := range fs {
			got = append(got, f.Name+" "+f.Type.String())
		}
		for _, sf := range svc.features() {
			want = append(want, sf.name+" "+sf.view.featureType(sf.idx).String())
		}
		require.Equal(d.t, want, got, "%s: service %s\n%s", d.c.name, svc.name, genNumbered(d.repo.render()))
	}
}

// maintain flushes and merges at random moments.
func (d *genRun) maintain() {
	switch n := d.r.Intn(40); {
	case n < 3:
		require.NoError(d.t, d.db.Flush())
		d.stats.flushes++
	case n == 3:
		require.NoError(d.t, d.db.Compact())
		d.stats.merges++
	case n == 4:
		require.NoError(d.t, d.db.CompactAll())
		d.stats.merges++
	}
}

func (d *genRun) tick(step int64) {
	switch k := d.r.Intn(20); {
	case k == 0: // to the next 10m boundary exactly
		n := d.now.Load()
		d.now.Store(n - n%int64(10*aggM) + int64(10*aggM))
	case k == 1: // just past an hour boundary
		n := d.now.Load()
		d.now.Store(n - n%int64(aggH) + int64(aggH) + 1)
	default:
		d.now.Add(d.r.Int63n(2*step + 1))
	}
}

// sequentialPhase sends requests from the test goroutine, the clock
// moving on after each.
func (d *genRun) sequentialPhase(stage string, requests int, step int64, checkpoints bool) {
	d.stage = stage
	for i := 0; i < requests; i++ {
		evs, err := d.request(d.gen)
		require.NoError(d.t, err)
		d.accept(d.gen, evs)
		d.tick(step)
		d.maintain()
		if checkpoints && i%d.size.every == d.size.every-1 {
			d.checkpoint()
		}
	}
}

// accept adds accepted records to the model and the log.
func (d *genRun) accept(g *genGen, evs []*genEvent) {
	d.model.add(evs...)
	d.mu.Lock()
	d.log = append(d.log, evs...)
	d.mu.Unlock()
	for _, e := range evs {
		g.recent[e.src] = append(g.recent[e.src], e)
	}
}

// request sends one request drawn by g and returns the records it wrote
// (none for a failed request or a dry run), or an error when the engine's
// answer is not the model's. Safe for concurrent use with distinct
// generators.
func (d *genRun) request(g *genGen) ([]*genEvent, error) {
	reqNo := int(d.reqNo.Add(1))
	g.stats.requests++
	now := d.now.Load()
	evs := g.request(now)
	for _, e := range evs {
		e.req = reqNo
	}
	dryRun := g.r.Intn(25) == 0
	useJSON := g.r.Intn(2) == 0
	want := d.model.verdict(evs, now, genSkew)
	resp, err := genSend(d.db, d.repo.ws, evs, dryRun, useJSON)
	where := fmt.Sprintf("%s %s request %d (json=%v dry_run=%v, clock %s)", d.c.name, d.stage, reqNo, useJSON, dryRun, aggTime(now))
	if len(want.rejected) > 0 {
		g.stats.rejected++
		var re *engine.RecordErrors
		if !errors.As(err, &re) {
			return nil, fmt.Errorf("%s: records %v must fail the request, but it was accepted (err %v)", where, want.rejected, err)
		}
		var got, wantIdx []string
		for _, e := range re.Errors {
			got = append(got, fmt.Sprintf("%s[%d]", e.Source, e.Index))
		}
		for _, w := range want.rejected {
			wantIdx = append(wantIdx, w[:strings.Index(w, "]")+1])
		}
		sort.Strings(got)
		sort.Strings(wantIdx)
		if !slices.Equal(got, wantIdx) {
			return nil, fmt.Errorf("%s: the record errors name %v, want %v (%v); errors: %v", where, got, wantIdx, want.rejected, re.Errors)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w\nthe records: %v", where, err, evs)
	}
	var got []string
	for _, m := range resp.Metrics {
		got = append(got, fmt.Sprintf("%s online=%d offline=%d", m.FeatureView, m.Online, m.Offline))
	}
	if !slices.Equal(want.metrics, got) {
		return nil, fmt.Errorf("%s: ingest metrics %v, want %v", where, got, want.metrics)
	}
	if dryRun {
		g.stats.dryRuns++
		return nil, nil
	}
	g.stats.events += len(evs)
	return evs, nil
}

// backfillPhase removes a view and adds it back without waiting for its
// backfill job, which then runs while the concurrent phase's writers
// ingest: the view must end up serving what the model computes from every
// record, those logged before the job (its part) and those ingested
// while it ran (ingest's part), each once.
func (d *genRun) backfillPhase(requests int) {
	v := d.repo.views[d.r.Intn(len(d.repo.views))]
	without := d.repo.clone()
	without.views = slices.DeleteFunc(without.views, func(x *genView) bool { return x.name == v.name })
	without.services = slices.DeleteFunc(without.services, func(s *genService) bool {
		s.entries = slices.DeleteFunc(s.entries, func(e genEntry) bool { return e.view.name == v.name })
		return len(s.entries) == 0
	})
	_, err := d.db.ApplyWait(context.Background(), "gen.yaml", []byte(without.render()))
	require.NoError(d.t, err)
	d.backfilling.Store(true)
	res, err := d.db.Apply("gen.yaml", []byte(d.repo.render()))
	require.NoError(d.t, err)
	require.Len(d.t, res.Jobs, 1, "%s: re-adding %s", d.c.name, v.name)
	d.concurrentPhase("phase 4 (backfill of "+v.name+" beside ingest)", requests)
	require.NoError(d.t, d.db.WaitJobs(context.Background(), res.Jobs))
	d.backfilling.Store(false)
	j, err := d.db.Job(d.repo.ws, res.Jobs[0].ID)
	require.NoError(d.t, err)
	d.t.Logf("%s: %s backfilled from %d logged records while the writers ingested", d.c.name, v.name, j.Result.LogRecords)
}

// genWriters and genReaders are the goroutines of the concurrent phase.
const (
	genWriters = 4
	genReaders = 2
)

// concurrentPhase sends requests from genWriters goroutines, each over
// the key indexes it owns, while readers read (answers checked for shape
// only: what they must see depends on the interleaving) and flushes and
// merges run. The clock stands still. Request numbers grow within a
// writer, which is all the log order the model needs, as writers share
// no entity key.
func (d *genRun) concurrentPhase(stage string, requests int) {
	d.stage = stage
	errs := make([]error, genWriters+genReaders+1)
	var writing sync.WaitGroup
	for w := 0; w < genWriters; w++ {
		g := newGenGen(d.w, d.r.Int63(), w, genWriters)
		for s, rec := range d.gen.recent { // duplicates and ties draw on the writer's own keys' history
			for _, e := range rec {
				if g.owns(e, genWriters, w) {
					g.recent[s] = append(g.recent[s], e)
				}
			}
		}
		d.gens = append(d.gens, g)
		writing.Add(1)
		go func() {
			defer writing.Done()
			for i := 0; i < requests/genWriters && errs[w] == nil; i++ {
				evs, err := d.request(g)
				if err == nil {
					d.accept(g, evs)
				}
				errs[w] = err
			}
		}()
	}
	done := make(chan struct{})
	var others sync.WaitGroup
	others.Add(1)
	go func() { // flushes and merges race with the writers and readers
		defer others.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			var err error
			if i%4 == 3 {
				err = d.db.Compact()
			} else {
				err = d.db.Flush()
			}
			if err != nil {
				errs[genWriters+genReaders] = fmt.Errorf("concurrent flush: %w", err)
				return
			}
		}
	}()
	all := d.repo.services[0]
	for rd := 0; rd < genReaders; rd++ {
		r := rand.New(rand.NewSource(d.r.Int63()))
		others.Add(1)
		go func() {
			defer others.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				req := &engine.GetFeaturesRequest{Workspace: d.repo.ws, Service: all.name, JoinKeys: d.joinKeys(all, d.randomIdentity(r), r)}
				if r.Intn(2) == 0 {
					req.AsOf = time.Unix(0, d.now.Load()-r.Int63n(int64(2*aggD))).UTC()
				}
				vec, err := d.db.GetFeatures(req)
				if d.backfilling.Load() {
					// The service serves its definition before the apply
					// (without the view being built), or 503 when it is
					// new: what it answers is checked after the commit.
					continue
				}
				if err == nil && len(vec.Features) != len(all.features()) {
					err = fmt.Errorf("%d features served, want %d", len(vec.Features), len(all.features()))
				}
				if err != nil {
					errs[genWriters+rd] = fmt.Errorf("concurrent reader: %w", err)
					return
				}
			}
		}()
	}
	writing.Wait()
	close(done)
	others.Wait()
	for _, err := range errs {
		require.NoError(d.t, err)
	}
	for _, g := range d.gens[len(d.gens)-genWriters:] {
		for s, rec := range g.recent {
			d.gen.recent[s] = append(d.gen.recent[s], rec...)
		}
	}
}
