package engine_test

// The differential test of historical retrieval (SPEC §5) over generated
// repos: after a workload (gen_workload_test.go) flushed and merged at
// random moments and at fixed points, so that state is split between the
// memtable and segments of several levels, every service of the repo is
// asked:
//
//   - spine mode: a random spine (the service's join keys in a random
//     column order and spelling, keys never seen, times before every event,
//     window and TTL edges, event times ±1ns, tile boundaries, the far past
//     and future, duplicate rows, pass-through columns) is answered with
//     timestamp_key given and inferred; every value (with -long, a sample)
//     is checked against the model (gen_model_test.go), and the spine's
//     columns must pass through untouched, in spine order;
//   - online/offline parity: rows not after the clock read back online with
//     as_of T, bit for bit;
//   - from_source against the tiles (bit for bit but for float sums, means
//     and variances: genLoose), also while an Apply that changes only
//     metadata runs between two chunks;
//   - range mode with an entity list (keys with data, keys never seen, out
//     of order) and without one (every key with data; refused when the
//     service's views are keyed differently), from the tiles and from
//     source: rows cover [start, end) without gaps, consecutive rows differ,
//     and rows read online and by the model at their start, end and inside
//     hold their values;
//   - the spine again after Close and reopen.
//
//	go test ./engine -run TestGenHistDiff              # short: a few seeds and the fixed repos
//	go test ./engine -run TestGenHistDiff -seed=42     # one seed
//	go test ./engine -run TestGenHistDiff -long        # many random seeds, bigger spines

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// genHistSize is the size of a historical run.
type genHistSize struct {
	genSize
	spine   int // spine rows of the first service (the others: a quarter)
	modeled int // rows of a spine checked against the model (the rest against other runs)
	ranges  int // range queries with an entity list, per service
	perKey  int // range rows per key checked against online reads and the model
}

func TestGenHistDiff(t *testing.T) {
	size := genHistSize{genSize: genSize{requests: 250, span: 40 * aggH, keys: 80}, spine: 1200, modeled: 1200, ranges: 1, perKey: 12}
	if *diffLong {
		size = genHistSize{genSize: genSize{requests: 1200, span: 4 * aggD, keys: 250}, spine: 20000, modeled: 4000, ranges: 3, perKey: 60}
	}
	for _, c := range genCases([]int64{1, 2, 3}, 10) {
		t.Run(c.name, func(t *testing.T) { runGenHist(t, c, size) })
	}
}

// genHist is a historical run.
type genHist struct {
	*genRun
	hsize genHistSize
	rep   *histReport
	rnd   *rand.Rand // the spines' and checks' (genRun.r draws the workload)
}

func runGenHist(t *testing.T, c genCase, size genHistSize) {
	start := time.Now()
	d := newGenRun(t, c, size.genSize)
	h := &genHist{genRun: d, hsize: size, rep: newHistReport(t, c), rnd: rand.New(rand.NewSource(c.seed + 1))}
	h.workload()
	type done struct {
		svc      *genService
		sp       *histSpine
		qs       []genQuery
		pristine [][]any
		tiles    [][]histCell
	}
	var spines []done
	for i, svc := range d.repo.services {
		n := size.spine
		if i > 0 {
			n /= 4
		}
		sp, qs := h.spine(svc, n)
		pristine := histPristine(sp.rows)
		keep := map[int]bool{}
		for len(keep) < min(n/4, len(qs)) {
			keep[h.rnd.Intn(len(qs))] = true
		}
		base := engine.HistoricalRequest{Workspace: d.repo.ws, Service: svc.name}
		req := base
		req.TimestampKey = "ts"
		stride := max(1, n/size.modeled)
		tiles, kept := h.runSpine(genSpineRun{stage: svc.name + " spine", svc: svc, req: req, keep: keep,
			model: func(i int) bool { return i%stride == 0 }}, sp, qs, pristine)
		h.runSpine(genSpineRun{stage: svc.name + " spine, timestamp_key inferred", svc: svc, req: base, ref: tiles,
			refOf: "the spine run", strict: true}, sp, qs, pristine)
		h.parity(svc.name+" parity (as_of T)", svc, qs, kept)
		req.FromSource = true
		h.runSpine(genSpineRun{stage: svc.name + " from_source", svc: svc, req: req, ref: tiles, refOf: "the tiles"}, sp, qs, pristine)
		if i == 0 {
			h.fromSourceDuringApply(svc, sp, qs, pristine, tiles)
		}
		h.ranges(svc)
		spines = append(spines, done{svc, sp, qs, pristine, tiles})
	}
	require.NoError(t, d.db.Close())
	d.open()
	for _, s := range spines {
		req := engine.HistoricalRequest{Workspace: d.repo.ws, Service: s.svc.name, TimestampKey: "ts"}
		reopened, _ := h.runSpine(genSpineRun{stage: s.svc.name + " spine after reopen", svc: s.svc, req: req, ref: s.tiles,
			refOf: "the tiles before the reopen"}, s.sp, s.qs, s.pristine)
		req.FromSource = true
		h.runSpine(genSpineRun{stage: s.svc.name + " from_source after reopen", svc: s.svc, req: req, ref: reopened,
			refOf: "the tiles after the reopen"}, s.sp, s.qs, s.pristine)
	}
	t.Logf("%s: %d services in %v", c.name, len(spines), time.Since(start).Round(time.Millisecond))
}

// workload ingests the requests, flushing and merging at random moments
// and at fixed points (so segments of several levels exist), but not in
// the last tenth: the memtable (and after a reopen, the replayed log
// tail) holds state too.
func (h *genHist) workload() {
	start := time.Now()
	n := h.size.requests
	step := int64(h.size.span) / int64(n)
	h.stage = "workload"
	for i := 0; i < n; i++ {
		evs, err := h.request(h.gen)
		require.NoError(h.t, err)
		h.accept(h.gen, evs)
		h.tick(step)
		switch {
		case i == n/3 || i == 2*n/3:
			require.NoError(h.t, h.db.Flush())
		case i == n/2:
			require.NoError(h.t, h.db.Flush())
			require.NoError(h.t, h.db.CompactAll())
		case i < n*9/10:
			h.maintain()
		}
	}
	require.Positive(h.t, h.model.n)
	h.t.Logf("%s: %d requests, %d records in %v", h.c.name, n, h.model.n, time.Since(start).Round(time.Millisecond))
}

// genQuery is what a spine row asks.
type genQuery struct {
	id genIdentity
	t  int64
}

// spine draws n rows of the service's join keys (in a random column
// order), ts (in any accepted form), label and extra (pass-through), and
// what each asks; one row in thirty repeats an earlier one.
func (h *genHist) spine(svc *genService, n int) (*histSpine, []genQuery) {
	keys := svc.joinKeys()
	h.rnd.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	sp := &histSpine{cols: append(slices.Clone(keys), "ts", "label", "extra")}
	var qs []genQuery
	for i := 0; i < n; i++ {
		if i > 0 && h.rnd.Intn(30) == 0 {
			j := h.rnd.Intn(i)
			sp.rows = append(sp.rows, slices.Clone(sp.rows[j]))
			qs = append(qs, qs[j])
			continue
		}
		q := h.pick(svc)
		var row []any
		jk := h.joinKeys(svc, q.id, h.rnd)
		for _, k := range keys {
			row = append(row, jk[k])
		}
		row = append(row, histTsValue(q.t, h.rnd), i, histExtra(i, h.rnd))
		sp.rows = append(sp.rows, row)
		qs = append(qs, q)
	}
	return sp, qs
}

// pick draws an identity (of a record of one of the service's views,
// random, or never seen) and a time: an event time ±1ns, a window or TTL
// edge after it (±1ns, aligned to the interval), a tile boundary ±1ns, a
// time before every event (down to the earliest storable time), the Unix
// epoch, a feature_start_time ±1ns, now, the future (up to the latest
// storable time), or anywhere.
func (h *genHist) pick(svc *genService) genQuery {
	r, now := h.rnd, h.now.Load()
	views := svc.views()
	v := views[r.Intn(len(views))]
	var id genIdentity
	switch k := r.Intn(20); {
	case k == 0:
		id = h.unseenIdentity()
	case k < 12:
		if keys := h.model.keys(v); len(keys) > 0 {
			rows := h.model.keyRows(v, keys[r.Intn(len(keys))])
			id = h.identityOf(rows[r.Intn(len(rows))].ev, r)
			break
		}
		fallthrough
	default:
		id = h.randomIdentity(r)
	}
	rows := h.model.keyRows(v, id.key(v))
	d := []int64{-1, 0, 1}[r.Intn(3)]
	k := r.Intn(100)
	if len(rows) == 0 && k < 60 {
		k = 99
	}
	var ts int64
	if len(rows) > 0 {
		ts = rows[r.Intn(len(rows))].ts
	}
	grids := []int64{int64(aggM), int64(10 * aggM), int64(aggH), int64(aggD)}
	var t int64
	switch {
	case k < 20:
		t = ts + d
	case k < 45:
		edges := genEdges(v)
		if len(edges) == 0 {
			edges = []int64{0}
		}
		t = ts + edges[r.Intn(len(edges))]
		if v.interval > 0 && r.Intn(2) == 0 {
			t = ceilTo(t, int64(v.interval))
		}
		t += d
	case k < 60:
		t = ceilTo(ts+r.Int63n(int64(3*aggD)), grids[r.Intn(len(grids))]) + d
	case k < 66:
		minT := h.model.minT
		t = []int64{minT - 1, minT, minT - int64(aggD), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(),
			time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), math.MinInt64, math.MinInt64 + 1, 0, d}[r.Intn(9)]
	case k < 69 && v.start != math.MinInt64:
		t = v.start + d
		if v.interval > 0 && r.Intn(2) == 0 {
			t = ceilTo(v.start, int64(v.interval)) + d
		}
	case k < 73:
		t = []int64{now, now - 1, now - now%int64(10*aggM), now - now%int64(aggH)}[r.Intn(4)]
	case k < 75:
		t = []int64{now + 1 + r.Int63n(int64(2*aggH)), math.MaxInt64, math.MaxInt64 - 1}[r.Intn(3)]
	default:
		lo := genBase.UnixNano() - int64(aggD)
		t = lo + r.Int63n(now-lo+1)
	}
	return genQuery{id: id, t: t}
}

// genLoose reports whether two engine answers of a feature may differ in
// the last bits: float sums, means, variances and standard deviations.
// The tiles path merges partial sums of memtables and segments (and of
// tiles within them) in an order that depends on when flushes and merges
// ran; from_source adds the same values into one fresh memtable, and a
// reopen rebuilds the memtable from the log tail. Float addition is not
// associative, so such results are compared within aggCheck's tolerance.
// Everything else is merge-order independent and must be bit-identical.
func genLoose(sf genServed) bool {
	if !sf.view.aggregate() {
		return false
	}
	f := sf.view.aggs[sf.idx]
	switch f.fn {
	case "mean", "var_samp", "var_pop", "stddev_samp", "stddev_pop":
		return true
	case "sum":
		k := sf.view.colType(f.input).Kind
		return k == schema.Float64 || k == schema.Float32
	}
	return false
}

// genSpineRun is one spine-mode run and what to compare it with.
type genSpineRun struct {
	stage  string
	svc    *genService
	req    engine.HistoricalRequest
	model  func(i int) bool // compare row i with the model (nil: none)
	ref    [][]histCell     // compare every row with an earlier run's (nil: none)
	refOf  string           // that run's stage
	strict bool             // bit for bit, the loose features too
	keep   map[int]bool     // rows whose values to return
	spine  engine.Spine     // the spine to read instead of sp (it must deliver sp's rows)
}

// runSpine answers the spine and checks the columns, the pass-through,
// and the values as asked. It returns every row's cells and the kept
// rows' values.
func (h *genHist) runSpine(run genSpineRun, sp *histSpine, qs []genQuery, pristine [][]any) ([][]histCell, map[int][]schema.Value) {
	start := time.Now()
	sp.pos = 0
	sfs := run.svc.features()
	cells := make([][]histCell, 0, len(qs))
	kept := map[int][]schema.Value{}
	sink := &histSink{row: func(i int, lead []any, vals []schema.Value) error {
		if err := histLead(i, lead, pristine); err != nil {
			return err
		}
		if len(vals) != len(sfs) {
			return fmt.Errorf("row %d: %d features, want %d", i+1, len(vals), len(sfs))
		}
		where := fmt.Sprintf("%s, spine row %d", run.stage, i+1)
		if run.model != nil && run.model(i) {
			h.check(where, run.svc, qs[i], vals)
		}
		if run.ref != nil {
			h.compareCells(where, run, qs[i], run.ref[i], vals)
		}
		row := make([]histCell, len(vals))
		for fi, v := range vals {
			row[fi] = histCellOf(v)
		}
		cells = append(cells, row)
		if run.keep[i] {
			kept[i] = histClone(vals)
		}
		return nil
	}}
	var progress []int
	req := run.req
	req.Progress = func(n int) { progress = append(progress, n) }
	var spine engine.Spine = sp
	if run.spine != nil {
		spine = run.spine
	}
	err := h.db.GetFeaturesForEvents(context.Background(), &req, spine, sink)
	require.NoError(h.t, err, "%s %s", h.c.name, run.stage)
	require.Equal(h.t, len(qs), sink.rows, "%s %s: rows answered", h.c.name, run.stage)
	require.Equal(h.t, len(qs), sp.pos, "%s %s: spine rows read", h.c.name, run.stage)
	require.Len(h.t, sink.cols, len(sp.cols)+len(sfs), run.stage)
	for i, c := range sp.cols {
		require.Equal(h.t, engine.HistoricalColumn{Name: c, Spine: true}, sink.cols[i], "%s: column %d", run.stage, i)
	}
	for fi, sf := range sfs {
		require.Equal(h.t, engine.HistoricalColumn{Name: sf.name, Type: sf.view.featureType(sf.idx)}, sink.cols[len(sp.cols)+fi],
			"%s: column %d", run.stage, len(sp.cols)+fi)
	}
	require.NotEmpty(h.t, progress, "%s: Progress never called", run.stage)
	require.True(h.t, slices.IsSorted(progress) && progress[len(progress)-1] == len(qs),
		"%s: progress reports %v, want increasing to %d", run.stage, progress, len(qs))
	h.rep.flush(run.stage)
	h.t.Logf("%s: %d rows in %v", run.stage, len(qs), time.Since(start).Round(time.Millisecond))
	return cells, kept
}

// check compares one answered vector with the model.
func (h *genHist) check(where string, svc *genService, q genQuery, vals []schema.Value) {
	for fi, sf := range svc.features() {
		w := h.model.want(sf.view, sf.idx, q.id.key(sf.view), q.t)
		if ok, why := w.check(sf.view, sf.idx, vals[fi]); !ok {
			h.problem(where, svc, q, fi, vals[fi], aggFmt(w.val)+" (the model)", why)
		}
	}
}

// problem records a mismatch, with the online answer as of T when there
// is one, to tell a historical-only bug from one of every read path.
func (h *genHist) problem(where string, svc *genService, q genQuery, fi int, got schema.Value, want, why string) {
	name := svc.features()[fi].name
	h.rep.add(name, func() string {
		s := fmt.Sprintf("%s: %s as of %s (%d ns): %s = %s, want %s: %s", where, q.id, aggTime(q.t), q.t, name, aggFmt(got), want, why)
		if q.t <= h.now.Load() {
			vec, err := h.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: h.repo.ws, Service: svc.name,
				JoinKeys: h.joinKeys(svc, q.id, h.rnd), AsOf: time.Unix(0, q.t)})
			if err == nil {
				s += fmt.Sprintf(" [online as_of T serves %s]", aggFmt(vec.Features[fi].Value))
			}
		}
		return s
	})
	if sf := svc.features()[fi]; !h.shrunk[name] && len(h.shrunk) < 2 {
		h.shrunk[name] = true
		how := genShrinkHow{historical: true, fromSource: strings.Contains(where, "from_source")}
		h.t.Log(genShrink(h.t, how, h.repo, h.snapshotLog(), sf.view.name, name, q.id, q.t, h.now.Load()))
	}
}

// compareCells compares a row with an earlier run's.
func (h *genHist) compareCells(where string, run genSpineRun, q genQuery, ref []histCell, vals []schema.Value) {
	for fi, sf := range run.svc.features() {
		c := histCellOf(vals[fi])
		if c.h == ref[fi].h {
			continue
		}
		loose := genLoose(sf) && !run.strict
		if loose && c.kind == ref[fi].kind {
			w := h.model.want(sf.view, sf.idx, q.id.key(sf.view), q.t)
			if ok, _ := aggCheck(sf.view.aggs[sf.idx], vals[fi], schema.Value{Kind: ref[fi].kind, F: ref[fi].f}, w.pts); ok {
				continue
			}
		}
		want := fmt.Sprintf("the value of %s", run.refOf)
		if ref[fi].kind == schema.Float64 || ref[fi].kind == schema.Float32 {
			want = fmt.Sprintf("%v (%s)", ref[fi].f, run.refOf)
		}
		why := "differs bit for bit"
		if loose {
			why = "beyond the float tolerance"
		}
		h.problem(where, run.svc, q, fi, vals[fi], want, why)
	}
}

// parity reads the kept rows online as of their time (those not after
// the clock) and requires the very same values.
func (h *genHist) parity(stage string, svc *genService, qs []genQuery, kept map[int][]schema.Value) {
	now, n := h.now.Load(), 0
	for i, vals := range kept {
		q := qs[i]
		if q.t > now {
			continue
		}
		vec, err := h.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: h.repo.ws, Service: svc.name,
			JoinKeys: h.joinKeys(svc, q.id, h.rnd), AsOf: time.Unix(0, q.t)})
		require.NoError(h.t, err, "%s: %s as of %s", stage, q.id, aggTime(q.t))
		n++
		for fi, f := range vec.Features {
			if !histSame(f.Value, vals[fi]) {
				h.problem(fmt.Sprintf("%s, spine row %d", stage, i+1), svc, q, fi, vals[fi],
					aggFmt(f.Value)+" (online as_of T)", "historical and online answers differ")
			}
		}
	}
	h.rep.flush(stage)
	h.t.Logf("%s: %d rows read back online", stage, n)
}

// applySpine delivers a spine's rows and applies repo (which must change
// only metadata) after the first chunk's rows.
type applySpine struct {
	*histSpine
	at    int
	apply func()
}

func (s *applySpine) Next() ([]any, error) {
	if s.pos == s.at {
		s.apply()
	}
	return s.histSpine.Next()
}

// fromSourceDuringApply answers the spine from source in chunks while an
// Apply that changes only descriptions runs between two of them: the
// answer must still be the tiles'.
func (h *genHist) fromSourceDuringApply(svc *genService, sp *histSpine, qs []genQuery, pristine [][]any, tiles [][]histCell) {
	if len(qs) < 4 {
		return
	}
	described := h.repo.clone()
	for _, v := range described.views {
		v.desc = "described after the workload"
	}
	as := &applySpine{histSpine: sp, at: len(qs) / 2, apply: func() {
		res, err := h.db.ApplyWait(context.Background(), "gen.yaml", []byte(described.render()))
		require.NoError(h.t, err)
		require.Empty(h.t, res.Rebuilt, "a description change rebuilt views")
	}}
	req := engine.HistoricalRequest{Workspace: h.repo.ws, Service: svc.name, TimestampKey: "ts", FromSource: true, ChunkRows: max(1, len(qs)/4)}
	h.runSpine(genSpineRun{stage: svc.name + " from_source, with an Apply between chunks", svc: svc, req: req, ref: tiles,
		refOf: "the tiles", spine: as}, sp, qs, pristine)
}

// histReport gathers mismatches: the first few in full, then a count per
// feature when the stage ends.
type histReport struct {
	t      *testing.T
	c      genCase
	n      int
	counts map[string]int
	names  []string
}

// histMaxDetailed bounds the mismatches printed in full per stage.
const histMaxDetailed = 12

func newHistReport(t *testing.T, c genCase) *histReport {
	return &histReport{t: t, c: c, counts: map[string]int{}}
}

func (p *histReport) add(feature string, detail func() string) {
	p.n++
	if p.counts[feature] == 0 {
		p.names = append(p.names, feature)
	}
	p.counts[feature]++
	if p.n <= histMaxDetailed {
		p.t.Logf("MISMATCH %s: %s", p.c.name, detail())
	}
}

// flush fails the test when anything mismatched since the last flush.
func (p *histReport) flush(stage string) {
	if p.n == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %s: %d mismatched values in %d features (first %d printed above; rerun with %s):\n",
		p.c.name, stage, p.n, len(p.names), min(p.n, histMaxDetailed), p.c.rerun())
	for _, n := range p.names {
		fmt.Fprintf(&b, "  %-60s %6d\n", n, p.counts[n])
	}
	p.t.Error(b.String())
	p.n, p.counts, p.names = 0, map[string]int{}, nil
}
