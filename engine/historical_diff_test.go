package engine_test

// Differential tests of historical retrieval (SPEC §5): the answers of
// GetFeaturesForEvents (spine mode) and GetFeaturesForRange (range mode)
// are compared with the naive models of agg_model_test.go (aggregates:
// aggModel, aggCompute, aggCheck) and latest_diff_test.go (attributes:
// diffModel), with online reads (GetFeatures as_of T) and with each other.
//
//   - TestHistoricalAggDiff: a random aggregate workload (aggGen: late,
//     duplicate, out-of-order events, events around 1970), flushed and
//     merged at random moments and at fixed points, so that state is split
//     between the memtable and segments of several levels. A random spine
//     (keys never seen, times before every event, tile boundaries, window
//     edges, event times ±1ns, the far past and future, duplicate rows) is
//     answered with timestamp_key given and inferred, and every value of
//     every row (with -long, of a sample of rows and all rows from 1000
//     before the 65536th on) is checked against the model; spine columns
//     must pass through untouched, in spine order. Then online/offline
//     parity (bit for bit: as_of T, and a read without as_of against a
//     spine row at its effective time), from_source against the tiles
//     (bit for bit but for float sums, means and variances: histLoose),
//     range mode, and the spine again after Close and reopen.
//   - TestHistoricalAttrDiff: the same for attribute views with TTLs
//     (diffRepo), including the TTL expiry instants ts+ttl and ts+ttl+1ns,
//     an Int64 join key given as int64, float64, Number and string, and
//     range mode with and without an entity list.
//   - TestHistoricalErrors: malformed spines and requests (SpineError with
//     the 1-based row, error codes), and the sink's and context's errors.
//   - TestHistoricalStreaming: a 200k-row spine is answered while it is
//     still being read (bounded memory), and spines of exactly the
//     engine's chunk size ±1 come back whole and in order.
//
//	go test ./engine -run Historical             # short: one seed, a few seconds
//	go test ./engine -run Historical -seed=42    # replay one seed
//	go test ./engine -run Historical -long       # 3 random seeds, 70000-row spines, 1M-row error case
//
// The -seed and -long flags are latest_diff_test.go's.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/internal/schema"
)

// ---------------------------------------------------------------------
// Spines, sinks and comparisons.

// histSpine is a Spine over rows held in memory. pos counts the rows read.
type histSpine struct {
	cols []string
	rows [][]any
	pos  int
	// failAt, when positive, makes Next return failErr instead of the
	// row with that 1-based number.
	failAt  int
	failErr error
}

func (s *histSpine) Columns() []string { return s.cols }

func (s *histSpine) Next() ([]any, error) {
	if s.failAt > 0 && s.pos+1 == s.failAt {
		return nil, s.failErr
	}
	if s.pos >= len(s.rows) {
		return nil, io.EOF
	}
	s.pos++
	return s.rows[s.pos-1], nil
}

// histSink is a HistoricalSink that hands each row, with its 0-based
// index, to a callback.
type histSink struct {
	cols   []engine.HistoricalColumn
	begins int
	rows   int
	row    func(i int, lead []any, vals []schema.Value) error
	// beginErr, when set, is returned by Begin.
	beginErr error
}

func (s *histSink) Begin(cols []engine.HistoricalColumn) error {
	s.cols = slices.Clone(cols)
	s.begins++
	return s.beginErr
}

func (s *histSink) Row(lead []any, vals []schema.Value) error {
	i := s.rows
	s.rows++
	if s.begins != 1 {
		return fmt.Errorf("row %d delivered after %d calls of Begin", i+1, s.begins)
	}
	if s.row != nil {
		return s.row(i, lead, vals)
	}
	return nil
}

// histRow is a copy of a delivered row.
type histRow struct {
	lead []any
	vals []schema.Value
}

// histCollector returns a sink that appends a deep copy of every row to
// out (the engine may reuse the slices it passes once Row returns).
func histCollector(out *[]histRow) *histSink {
	return &histSink{row: func(_ int, lead []any, vals []schema.Value) error {
		*out = append(*out, histRow{slices.Clone(lead), histClone(vals)})
		return nil
	}}
}

func histClone(vals []schema.Value) []schema.Value {
	out := make([]schema.Value, len(vals))
	for i, v := range vals {
		out[i] = v
		if v.A != nil {
			out[i].A = histClone(v.A)
		}
	}
	return out
}

// histSame reports whether a and b are the same value bit for bit: same
// kind, same float bits (so 0 and -0 differ, NaNs are compared by bits),
// same elements.
func histSame(a, b schema.Value) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case schema.Null:
		return true
	case schema.Float64, schema.Float32:
		return math.Float64bits(a.F) == math.Float64bits(b.F)
	case schema.String:
		return a.S == b.S
	case schema.Array:
		if len(a.A) != len(b.A) {
			return false
		}
		for i := range a.A {
			if !histSame(a.A[i], b.A[i]) {
				return false
			}
		}
		return true
	}
	return a.I == b.I
}

// histHash fingerprints v with the fields histSame compares. Each step
// (xor a word, multiply by an odd constant) is a bijection of the state,
// so two values that differ in one word never collide.
func histHash(h uint64, v schema.Value) uint64 {
	mix := func(h, x uint64) uint64 { return (h ^ x) * 1099511628211 }
	h = mix(h, uint64(v.Kind))
	switch v.Kind {
	case schema.Null:
	case schema.Float64, schema.Float32:
		h = mix(h, math.Float64bits(v.F))
	case schema.String:
		h = mix(h, uint64(len(v.S)))
		for i := 0; i < len(v.S); i++ {
			h = mix(h, uint64(v.S[i]))
		}
	case schema.Array:
		h = mix(h, uint64(len(v.A)))
		for _, e := range v.A {
			h = histHash(h, e)
		}
	default:
		h = mix(h, uint64(v.I))
	}
	return h
}

// histCell is what a run keeps of one feature value to compare a later
// run with: its fingerprint, and its kind and float for the features
// compared within a tolerance.
type histCell struct {
	h    uint64
	kind schema.Kind
	f    float64
}

func histCellOf(v schema.Value) histCell {
	return histCell{h: histHash(14695981039346656037, v), kind: v.Kind, f: v.F}
}

// histQuery is what a spine row asks: a key's features as of t.
type histQuery struct {
	key string
	t   int64
}

// histReport gathers mismatches: the first few in full, then a count per
// feature when the stage ends.
type histReport struct {
	t      *testing.T
	seed   int64
	n      int
	counts map[string]int
	names  []string
}

// histMaxDetailed bounds the mismatches printed in full per stage.
const histMaxDetailed = 12

func newHistReport(t *testing.T, seed int64) *histReport {
	return &histReport{t: t, seed: seed, counts: map[string]int{}}
}

func (p *histReport) add(feature string, detail func() string) {
	p.n++
	if p.counts[feature] == 0 {
		p.names = append(p.names, feature)
	}
	p.counts[feature]++
	if p.n <= histMaxDetailed {
		p.t.Logf("MISMATCH seed %d: %s", p.seed, detail())
	}
}

// flush fails the test when anything mismatched since the last flush.
func (p *histReport) flush(stage string) {
	if p.n == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, %s: %d mismatched values in %d features (first %d printed above; rerun with -seed=%d):\n",
		p.seed, stage, p.n, len(p.names), min(p.n, histMaxDetailed), p.seed)
	for _, n := range p.names {
		fmt.Fprintf(&b, "  %-60s %6d\n", n, p.counts[n])
	}
	p.t.Error(b.String())
	p.n, p.counts, p.names = 0, map[string]int{}, nil
}

// histTsValue renders a spine time in one of the forms the engine reads:
// time.Time in UTC or another zone, RFC 3339 with Z or an offset.
func histTsValue(t int64, r *rand.Rand) any {
	tt := time.Unix(0, t)
	switch r.Intn(4) {
	case 0:
		return tt.UTC()
	case 1:
		return tt.In(time.FixedZone("IST", 5*3600+1800))
	case 2:
		return tt.UTC().Format(time.RFC3339Nano)
	}
	return tt.In(time.FixedZone("", -7*3600)).Format(time.RFC3339Nano)
}

// histExtra is a pass-through value of any JSON-like kind.
func histExtra(i int, r *rand.Rand) any {
	switch r.Intn(6) {
	case 0:
		return nil
	case 1:
		return int64(i)
	case 2:
		return float64(i) / 4
	case 3:
		return i%2 == 0
	case 4:
		return map[string]any{"i": i, "tag": "x"}
	}
	return []any{"a", i, nil}
}

// histLead checks that the i-th row delivered is the i-th spine row, as
// given.
func histLead(i int, lead []any, pristine [][]any) error {
	if i >= len(pristine) {
		return fmt.Errorf("row %d delivered; the spine has %d rows", i+1, len(pristine))
	}
	if !reflect.DeepEqual(lead, pristine[i]) {
		return fmt.Errorf("row %d: the spine columns come back as %v, want the spine row %v as given, in spine order", i+1, lead, pristine[i])
	}
	return nil
}

// histPristine copies a spine's rows (the slices, not the values) before
// the engine sees them.
func histPristine(rows [][]any) [][]any {
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = slices.Clone(r)
	}
	return out
}

// histSize is the size of a differential run.
type histSize struct {
	requests int           // ingest requests
	keys     int           // user ids of the aggregate workload
	span     time.Duration // how far the clock moves during the workload
	spine    int           // spine rows of the aggregate test
	parity   int           // spine rows read back online
	ranges   int           // range queries with an entity list
	perKey   int           // range rows per key checked against online reads and the model
	modeled  int           // spine rows checked against the model (the rest against other runs)
}

func histSizes() (histSize, []int64) {
	size := histSize{requests: 300, keys: 120, span: 40 * time.Hour, spine: 3000, parity: 300, ranges: 2, perKey: 40, modeled: 3000}
	seeds := []int64{1}
	if *diffLong {
		size = histSize{requests: 1500, keys: 300, span: 4 * aggD, spine: 70000, parity: 3000, ranges: 6, perKey: 150, modeled: 12000}
		seeds = nil
		for i := 0; i < 3; i++ {
			seeds = append(seeds, time.Now().UnixNano()+int64(i))
		}
	}
	if *diffSeed != 0 {
		seeds = []int64{*diffSeed}
	}
	return size, seeds
}

// ---------------------------------------------------------------------
// Aggregates.

// histAgg is an aggregate workload (agg_diff_test.go's aggRun) and what
// the historical checks need of it.
type histAgg struct {
	*aggRun
	feats []histFeat  // agg_all's features, in order
	all   []*aggEvent // every accepted event (drawing one draws popular keys)
	minTs int64       // the earliest accepted event time
	edges [][2]int64  // window edges: (distance after an event time, aggregation interval)
	rep   *histReport // mismatches
	calls int         // calls of points, every 97th checked against aggModel.points
	// splits counts consecutive range rows that differ only by float
	// rounding (see roundingSplit).
	splits int
	rnd    *rand.Rand // the spine's and the checks' (aggRun.r draws the workload)
}

// histFeat is one served feature of agg_all.
type histFeat struct {
	v     *aggViewSpec
	f     aggFeature
	loose bool // see histLoose
}

// histLoose reports whether two engine answers for f may differ in the
// last bits: float sums, means, variances and standard deviations. The
// tiles path merges partial sums of the memtable, frozen memtables and
// segments (and of tiles within them) in an order that depends on when
// flushes and compactions ran; from_source adds the same values into one
// fresh memtable, and a reopen rebuilds the memtable from the log tail.
// Float addition is not associative, so the results may differ in the
// last bits (tiles.Store.ReadWith says the same). They are compared within
// aggCheck's tolerance (1e-9 relative to the summands' magnitude), the one
// the differential test uses against the model. Everything else is
// merge-order independent and must be bit-identical: integer sums are
// exact, count, min, max, last and the n functions select values,
// HyperLogLog registers merge by max and DDSketch bins by integer counts.
func histLoose(f aggFeature) bool {
	switch f.fn {
	case "mean", "var_samp", "var_pop", "stddev_samp", "stddev_pop":
		return true
	case "sum":
		k := aggKinds[f.input]
		return k == schema.Float64 || k == schema.Float32
	}
	return false
}

func newHistAgg(t *testing.T, seed int64, size histSize) *histAgg {
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	r := rand.New(rand.NewSource(seed))
	d := &aggRun{t: t, seed: seed, size: aggSize{requests: size.requests, keys: size.keys, span: size.span},
		r: r, dir: t.TempDir(), model: newAggModel(), shrunk: map[string]bool{}, stage: "workload"}
	d.now.Store(aggBase.Add(8 * time.Hour).UnixNano())
	for i := 0; i < size.keys; i++ {
		d.keys = append(d.keys, fmt.Sprintf("u%03d", i))
	}
	d.zipf = rand.NewZipf(r, 1.1, 1, uint64(size.keys-1))
	d.gen = newAggGen(r.Int63(), d.keys)
	d.gens = []*aggGen{d.gen}
	d.open()
	t.Cleanup(func() { d.db.Close() })
	_, err := d.db.Apply("agg.yaml", []byte(aggRepo()))
	require.NoError(t, err)
	h := &histAgg{aggRun: d, minTs: math.MaxInt64, rep: newHistReport(t, seed), rnd: rand.New(rand.NewSource(r.Int63()))}
	edges := map[[2]int64]bool{}
	for _, v := range aggViews {
		for _, f := range v.features {
			h.feats = append(h.feats, histFeat{v: v, f: f, loose: histLoose(f)})
			if !f.window.lifetime {
				edges[[2]int64{int64(f.window.offset + f.window.size), int64(v.interval)}] = true
			}
			if f.window.offset > 0 {
				edges[[2]int64{int64(f.window.offset), int64(v.interval)}] = true
			}
		}
	}
	for e := range edges {
		h.edges = append(h.edges, e)
	}
	sort.Slice(h.edges, func(i, j int) bool {
		return h.edges[i][0] < h.edges[j][0] || h.edges[i][0] == h.edges[j][0] && h.edges[i][1] < h.edges[j][1]
	})
	h.workload(size)
	return h
}

// workload ingests the requests, flushing and merging at random moments
// and at fixed points (so segments of several levels exist), but not in
// the last tenth: the memtable (and after a reopen, the replayed log
// tail) holds state too.
func (h *histAgg) workload(size histSize) {
	start := time.Now()
	step := int64(size.span) / int64(size.requests)
	for i := 0; i < size.requests; i++ {
		evs, err := h.request(h.gen)
		require.NoError(h.t, err)
		h.model.add(evs...)
		h.all = append(h.all, evs...)
		h.tick(step)
		switch {
		case i == size.requests/3 || i == 2*size.requests/3:
			require.NoError(h.t, h.db.Flush())
			h.stats.flushes++
		case i == size.requests/2:
			require.NoError(h.t, h.db.Flush())
			require.NoError(h.t, h.db.CompactAll())
			h.stats.flushes++
			h.stats.merges++
		case i < size.requests*9/10:
			h.maintain()
		}
	}
	for _, e := range h.all {
		h.minTs = min(h.minTs, e.ts)
	}
	require.NotEmpty(h.t, h.all)
	h.t.Logf("seed %d: %d requests, %d events, %d flushes, %d merges in %v", h.seed, size.requests, len(h.all),
		h.stats.flushes, h.stats.merges, time.Since(start).Round(time.Millisecond))
}

// spine draws n rows of user_id, ts (the time in any accepted form),
// label, note and extra (pass-through columns), in random order, and
// what each asks.
func (h *histAgg) spine(n int) (*histSpine, []histQuery) {
	sp := &histSpine{cols: []string{"user_id", "ts", "label", "note", "extra"}}
	var qs []histQuery
	for i := 0; i < n; i++ {
		if i > 0 && h.rnd.Intn(30) == 0 { // a duplicate of an earlier row
			j := h.rnd.Intn(i)
			sp.rows = append(sp.rows, slices.Clone(sp.rows[j]))
			qs = append(qs, qs[j])
			continue
		}
		q := h.pick()
		sp.rows = append(sp.rows, []any{q.key, histTsValue(q.t, h.rnd), i, fmt.Sprintf("n%d", i), histExtra(i, h.rnd)})
		qs = append(qs, q)
	}
	return sp, qs
}

// pick draws one key and time: an event time ±1ns, a window edge after
// an event (±1ns), a tile boundary (k·1m, 10m, 1h, 1d) ±1ns, a time
// before every event (down to the earliest storable time), the Unix
// epoch ±1ns (events around 1970 exist), around
// tiles_10m's feature_start_time, now, the future (up to the latest
// storable time), or anywhere; keys that have events (weighted by their
// number of events), any key, or keys never seen.
func (h *histAgg) pick() histQuery {
	r, now := h.rnd, h.now.Load()
	var key string
	switch k := r.Intn(20); {
	case k == 0:
		key = fmt.Sprintf("nobody%02d", r.Intn(10))
	case k < 12:
		key = h.all[r.Intn(len(h.all))].key
	default:
		key = h.keys[r.Intn(len(h.keys))]
	}
	evs := h.model.events[key]
	d := []int64{-1, 0, 1}[r.Intn(3)]
	k := r.Intn(100)
	if len(evs) == 0 && k < 60 {
		k = 99
	}
	var e *aggEvent
	if len(evs) > 0 {
		e = evs[r.Intn(len(evs))]
	}
	grids := []int64{int64(aggM), int64(10 * aggM), int64(aggH), int64(aggD)}
	var t int64
	switch {
	case k < 20:
		t = e.ts + d
	case k < 45:
		edge := h.edges[r.Intn(len(h.edges))]
		t = e.ts + edge[0]
		if edge[1] > 0 && r.Intn(2) == 0 {
			t = ceilTo(t, edge[1])
		}
		t += d
	case k < 60:
		t = ceilTo(e.ts+r.Int63n(int64(3*aggD)), grids[r.Intn(len(grids))]) + d
	case k < 66:
		t = []int64{h.minTs - 1, h.minTs, h.minTs - int64(aggD), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(),
			time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), math.MinInt64, math.MinInt64 + 1, 0, d}[r.Intn(9)]
	case k < 69:
		t = aggStart.UnixNano() + d
		if r.Intn(2) == 0 {
			t = ceilTo(aggStart.UnixNano(), int64(10*aggM)) + d
		}
	case k < 73:
		t = []int64{now, now - 1, now - now%int64(10*aggM), now - now%int64(aggH)}[r.Intn(4)]
	case k < 75:
		t = []int64{now + 1 + r.Int63n(int64(2*aggH)), math.MaxInt64, math.MaxInt64 - 1}[r.Intn(3)]
	default:
		lo := aggBase.UnixNano() - int64(aggD)
		t = lo + r.Int63n(now-lo+1)
	}
	return histQuery{key: key, t: t}
}

// points is aggModel.points, found by binary search in the model's rows
// (sorted by event time): the spine asks for far more reads than the
// model's scan of every event allows. Every 97th call is checked against
// the scan itself. A time at or before every event sees nothing (and
// the model's window arithmetic would overflow near the earliest
// storable time).
func (h *histAgg) points(hf histFeat, key string, t int64) []aggPoint {
	if t <= h.minTs {
		return nil
	}
	rows := h.model.viewRows(hf.v, key)
	lo, hi := hf.v.window(hf.f, t)
	i := sort.Search(len(rows), func(i int) bool { return rows[i].ev.ts >= lo })
	var pts []aggPoint
	for ; i < len(rows) && rows[i].ev.ts < hi; i++ {
		if val := rows[i].row[hf.f.input]; !val.IsNull() {
			pts = append(pts, aggPoint{rows[i].ev, val})
		}
	}
	if h.calls++; h.calls%97 == 0 {
		want := h.model.points(hf.v, hf.f, key, t)
		require.Equal(h.t, len(want), len(pts), "test bug: binary-searched points differ from the model's scan")
		for j := range want {
			require.True(h.t, want[j].ev == pts[j].ev, "test bug: binary-searched points differ from the model's scan")
		}
	}
	return pts
}

// check compares one answered vector with the model.
func (h *histAgg) check(where string, q histQuery, vals []schema.Value) {
	if len(vals) != len(h.feats) {
		h.t.Fatalf("seed %d %s: %d features, want %d", h.seed, where, len(vals), len(h.feats))
	}
	for fi, hf := range h.feats {
		pts := h.points(hf, q.key, q.t)
		want := aggCompute(hf.f, aggKinds[hf.f.input], pts)
		if ok, why := aggCheck(hf.f, vals[fi], want, pts); !ok {
			h.problem(where, q, fi, vals[fi], aggFmt(want)+" (the model)", why)
		}
	}
}

// problem records a mismatch, with the online answer as of T when there
// is one, to tell a historical-only bug from one of every read path.
func (h *histAgg) problem(where string, q histQuery, fi int, got schema.Value, want, why string) {
	name := aggServedNames[fi]
	h.rep.add(name, func() string {
		s := fmt.Sprintf("%s: key %s as of %s (%d ns): %s = %s, want %s: %s", where, q.key, aggTime(q.t), q.t,
			name, aggFmt(got), want, why)
		if q.t <= h.now.Load() {
			vec, err := h.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "aggdiff", Service: "agg_all",
				JoinKeys: map[string]any{"user_id": q.key}, AsOf: time.Unix(0, q.t)})
			if err == nil {
				s += fmt.Sprintf(" [online as_of T serves %s]", aggFmt(vec.Features[fi].Value))
			}
		}
		return s
	})
}

// histSpineRun is one spine-mode run and what to compare it with.
type histSpineRun struct {
	stage  string
	req    engine.HistoricalRequest
	model  func(i int) bool // compare row i with the model (nil: none)
	ref    [][]histCell     // compare every row with an earlier run's (nil: none)
	refOf  string           // that run's stage
	strict bool             // bit for bit, the loose features too
	keep   map[int]bool     // rows whose values to return
}

// runSpine answers the spine and checks the columns, the pass-through of
// the spine's values in spine order, the progress reports and the values
// as asked. It returns every row's cells and the kept rows' values.
func (h *histAgg) runSpine(run histSpineRun, sp *histSpine, qs []histQuery, pristine [][]any) ([][]histCell, map[int][]schema.Value) {
	start := time.Now()
	sp.pos = 0
	cells := make([][]histCell, 0, len(qs))
	kept := map[int][]schema.Value{}
	sink := &histSink{row: func(i int, lead []any, vals []schema.Value) error {
		if err := histLead(i, lead, pristine); err != nil {
			return err
		}
		if len(vals) != len(h.feats) {
			return fmt.Errorf("row %d: %d features, want %d", i+1, len(vals), len(h.feats))
		}
		where := fmt.Sprintf("%s, spine row %d", run.stage, i+1)
		if run.model != nil && run.model(i) {
			h.check(where, qs[i], vals)
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
	err := h.db.GetFeaturesForEvents(context.Background(), &req, sp, sink)
	require.NoError(h.t, err, "seed %d %s", h.seed, run.stage)
	require.Equal(h.t, len(qs), sink.rows, "seed %d %s: rows answered", h.seed, run.stage)
	require.Equal(h.t, len(qs), sp.pos, "seed %d %s: spine rows read", h.seed, run.stage)
	h.checkColumns(run.stage, sink.cols, sp.cols)
	require.NotEmpty(h.t, progress, "%s: Progress never called", run.stage)
	require.True(h.t, slices.IsSorted(progress) && progress[len(progress)-1] == len(qs),
		"%s: progress reports %v, want increasing to %d", run.stage, progress, len(qs))
	h.rep.flush(run.stage)
	h.t.Logf("%s: %d rows in %v", run.stage, len(qs), time.Since(start).Round(time.Millisecond))
	return cells, kept
}

// compareCells compares a row with an earlier run's.
func (h *histAgg) compareCells(where string, run histSpineRun, q histQuery, ref []histCell, vals []schema.Value) {
	for fi, hf := range h.feats {
		c := histCellOf(vals[fi])
		if c.h == ref[fi].h {
			continue
		}
		if hf.loose && !run.strict && c.kind == ref[fi].kind {
			pts := h.points(hf, q.key, q.t)
			if ok, _ := aggCheck(hf.f, vals[fi], schema.Value{Kind: ref[fi].kind, F: ref[fi].f}, pts); ok {
				continue
			}
		}
		want := fmt.Sprintf("the value of %s", run.refOf)
		if ref[fi].kind == schema.Float64 || ref[fi].kind == schema.Float32 {
			want = fmt.Sprintf("%v (%s)", ref[fi].f, run.refOf)
		}
		why := "differs bit for bit"
		if hf.loose && !run.strict {
			why = "beyond the float tolerance"
		}
		h.problem(where, q, fi, vals[fi], want, why)
	}
}

// checkColumns checks Begin's columns: the spine's, then agg_all's
// features with their types.
func (h *histAgg) checkColumns(stage string, got []engine.HistoricalColumn, spineCols []string) {
	require.Len(h.t, got, len(spineCols)+len(h.feats), stage)
	for i, c := range spineCols {
		require.Equal(h.t, engine.HistoricalColumn{Name: c, Spine: true}, got[i], "%s: column %d", stage, i)
	}
	for fi, hf := range h.feats {
		c := got[len(spineCols)+fi]
		want := schema.Type{Kind: aggResultKind(hf.f)}
		if want.Kind == schema.Array {
			want.Elem = aggKinds[hf.f.input]
		}
		require.Equal(h.t, engine.HistoricalColumn{Name: aggServedNames[fi], Type: want}, c, "%s: column %d", stage, len(spineCols)+fi)
	}
}

// online reads agg_all for key as of t, or now without as_of.
func (h *histAgg) online(key string, t int64, now bool) ([]engine.FeatureValue, error) {
	req := &engine.GetFeaturesRequest{Workspace: "aggdiff", Service: "agg_all", JoinKeys: map[string]any{"user_id": key}}
	if !now {
		req.AsOf = time.Unix(0, t).UTC()
	}
	vec, err := h.db.GetFeatures(req)
	if err != nil {
		return nil, err
	}
	return vec.Features, nil
}

// parity reads the kept rows online as of their time (those not after
// the clock) and requires the very same values.
func (h *histAgg) parity(stage string, qs []histQuery, kept map[int][]schema.Value) {
	now, n := h.now.Load(), 0
	for i, vals := range kept {
		q := qs[i]
		if q.t > now {
			continue
		}
		fs, err := h.online(q.key, q.t, false)
		require.NoError(h.t, err, "%s: key %s as of %s", stage, q.key, aggTime(q.t))
		n++
		for fi, f := range fs {
			if !histSame(f.Value, vals[fi]) {
				h.problem(fmt.Sprintf("%s, spine row %d", stage, i+1), q, fi, vals[fi],
					aggFmt(f.Value)+" (online as_of T)", "historical and online answers differ")
			}
		}
	}
	h.rep.flush(stage)
	h.t.Logf("%s: %d rows read back online", stage, n)
}

// parityNow reads keys online without as_of, then answers a spine row at
// the effective time of a continuous, unshifted aggregate (its window
// end, which is the read time), and requires the same vector.
func (h *histAgg) parityNow(stage string, keys []string) {
	require.Equal(h.t, "cont", h.feats[0].v.name)
	require.Zero(h.t, h.feats[0].v.interval+h.feats[0].f.window.offset, "feature 0 must be continuous without offset")
	sp := &histSpine{cols: []string{"user_id", "at"}}
	var want [][]engine.FeatureValue
	for _, k := range keys {
		fs, err := h.online(k, 0, true)
		require.NoError(h.t, err)
		eff := fs[0].EffectiveTime
		require.Equal(h.t, h.now.Load(), eff.UnixNano(), "%s: the effective time of %s read now", stage, fs[0].Name)
		sp.rows = append(sp.rows, []any{k, eff})
		want = append(want, fs)
	}
	var rows []histRow
	err := h.db.GetFeaturesForEvents(context.Background(), &engine.HistoricalRequest{Workspace: "aggdiff",
		Service: "agg_all", TimestampKey: "at"}, sp, histCollector(&rows))
	require.NoError(h.t, err)
	require.Len(h.t, rows, len(keys))
	for i, row := range rows {
		q := histQuery{key: keys[i], t: h.now.Load()}
		for fi, f := range want[i] {
			if !histSame(f.Value, row.vals[fi]) {
				h.problem(fmt.Sprintf("%s, key %s at the online read's effective time", stage, keys[i]), q, fi,
					row.vals[fi], aggFmt(f.Value)+" (online, no as_of)", "historical and online answers differ")
			}
		}
		h.check(stage+", row at now", q, row.vals)
	}
	h.rep.flush(stage)
}

// TestHistoricalAggDiff: spine mode against the aggregate model, online
// parity, from_source, range mode, and all again after a reopen.
func TestHistoricalAggDiff(t *testing.T) {
	size, seeds := histSizes()
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runHistAgg(t, seed, size)
		})
	}
}

func runHistAgg(t *testing.T, seed int64, size histSize) {
	h := newHistAgg(t, seed, size)
	sp, qs := h.spine(size.spine)
	pristine := histPristine(sp.rows)
	keep := map[int]bool{}
	for len(keep) < min(size.parity, len(qs)) {
		keep[h.rnd.Intn(len(qs))] = true
	}
	base := engine.HistoricalRequest{Workspace: "aggdiff", Service: "agg_all"}

	// 1. Spine mode against the model, timestamp_key given and inferred.
	req := base
	req.TimestampKey = "ts"
	// The model is slow on big spines (a scan of up to days of events per
	// feature): it checks every stride-th row, and every row around the
	// end of the first chunk of 1<<16 rows and after it; the other runs
	// are compared with this one row by row.
	stride := max(1, size.spine/size.modeled)
	modeled := func(i int) bool { return i%stride == 0 || i >= 1<<16-1000 }
	tiles, kept := h.runSpine(histSpineRun{stage: "spine", req: req, model: modeled, keep: keep}, sp, qs, pristine)
	h.runSpine(histSpineRun{stage: "spine, timestamp_key inferred", req: base, ref: tiles, refOf: "the spine run",
		strict: true}, sp, qs, pristine)

	// 2. Online/offline parity.
	h.parity("parity (as_of T)", qs, kept)
	keys := []string{"nobody_now", h.all[len(h.all)-1].key, h.keys[0], h.keys[h.rnd.Intn(len(h.keys))]}
	h.parityNow("parity (no as_of)", keys)

	// 3. from_source equals the tiles (which the model checked: from here
	// on, runs are compared with an earlier run, which is cheaper).
	req.FromSource = true
	h.runSpine(histSpineRun{stage: "from_source", req: req, ref: tiles, refOf: "the tiles"}, sp, qs, pristine)

	// 4. Range mode.
	h.ranges(size)

	// After Close and reopen: segments plus the replayed log tail.
	require.NoError(t, h.db.Close())
	h.open()
	req.FromSource = false
	reopened, kept2 := h.runSpine(histSpineRun{stage: "spine after reopen", req: req, ref: tiles,
		refOf: "the tiles before the reopen", keep: keep}, sp, qs, pristine)
	h.parity("parity after reopen", qs, kept2)
	req.FromSource = true
	h.runSpine(histSpineRun{stage: "from_source after reopen", req: req, ref: reopened,
		refOf: "the tiles after the reopen"}, sp, qs, pristine)
}

// ranges runs range queries with entity lists (keys with many events,
// few, none, out of order) and one without (every key with data).
func (h *histAgg) ranges(size histSize) {
	now := h.now.Load()
	for i := 0; i < size.ranges; i++ {
		start := now - int64(4*aggH) - h.rnd.Int63n(int64(size.span)-int64(4*aggH))
		if i%2 == 1 {
			start -= start % int64(aggH) // on a tile boundary
		}
		end := min(now, start+int64(aggH)+h.rnd.Int63n(int64(5*aggH)))
		if i == 0 {
			end = now
		}
		keys := []string{h.all[h.rnd.Intn(len(h.all))].key, h.keys[h.rnd.Intn(len(h.keys))], "nobody_range"}
		keys = slices.Compact(keys)
		if keys[0] < keys[len(keys)-1] { // out of key order: the engine's cursors must restart
			slices.Reverse(keys)
		}
		var ents []map[string]any
		for _, k := range keys {
			ents = append(ents, map[string]any{"user_id": k})
		}
		h.rangeRun(fmt.Sprintf("range %d", i+1), start, end, keys, true, ents, size.perKey)
	}
	start := now - int64(aggH) - h.rnd.Int63n(int64(size.span)-int64(aggH))
	var keys []string
	for k, evs := range h.model.events {
		if len(evs) > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	h.rangeRun("range, every key", start, start+int64(20*aggM), keys, true, nil, max(2, size.perKey/10))
	h.t.Logf("seed %d: %d range row boundaries where only the rounding of float features changed", h.seed, h.splits)
}

func (h *histAgg) rangeRun(stage string, start, end int64, keys []string, ordered bool, ents []map[string]any, perKey int) {
	t0 := time.Now()
	unseen := map[string]bool{}
	for _, k := range keys {
		unseen[k] = len(h.model.events[k]) == 0
	}
	rows := histRange(h.t, h.db, histRangeRun{
		stage: stage, req: engine.HistoricalRequest{Workspace: "aggdiff", Service: "agg_all", Entities: ents,
			Start: time.Unix(0, start), End: time.Unix(0, end)},
		keys: keys, ordered: ordered, unseen: unseen, keyKind: schema.String, perKey: perKey, rep: h.rep,
		keyOf: func(v schema.Value) string { return v.S },
		online: func(key string, t int64) ([]schema.Value, error) {
			fs, err := h.online(key, t, false)
			return histValues(fs), err
		},
		model: func(where, key string, t int64, vals []schema.Value) { h.check(where, histQuery{key, t}, vals) },
		// A continuous window holds the same events all through a row's
		// interval, but the engine sums it from tiles and raw edge events
		// split where T falls on the tile grid, so float sums, means and
		// variances read at different times of the interval may differ in
		// the last bits (see histLoose). The row is read at _valid_from,
		// which must match bit for bit; later times within tolerance.
		equal: func(fi int, key string, t int64, online, row schema.Value) bool {
			hf := h.feats[fi]
			if !hf.loose {
				return false
			}
			ok, _ := aggCheck(hf.f, online, row, h.points(hf, key, t))
			return ok
		},
		adjacent: func(key string, a, b histRow) { h.splits += h.roundingSplit(key, a, b) },
	}, h.rnd)
	h.rep.flush(stage)
	h.t.Logf("%s [%s, %s): %d keys, %d rows in %v", stage, aggTime(start), aggTime(end), len(keys), len(rows),
		time.Since(t0).Round(time.Millisecond))
}

// roundingSplit reports (as 1) whether two consecutive range rows differ
// only in the rounding of float features whose windows hold the same
// events at both rows' starts: a row boundary where no value changed.
func (h *histAgg) roundingSplit(key string, a, b histRow) int {
	ta, tb := a.lead[1].(time.Time).UnixNano(), b.lead[1].(time.Time).UnixNano()
	var diffs []string
	for fi, hf := range h.feats {
		if histSame(a.vals[fi], b.vals[fi]) {
			continue
		}
		if !hf.loose {
			return 0
		}
		diffs = append(diffs, fmt.Sprintf("%s %s → %s", aggServedNames[fi], aggFmt(a.vals[fi]), aggFmt(b.vals[fi])))
		pa, pb := h.points(hf, key, ta), h.points(hf, key, tb)
		if len(pa) != len(pb) {
			return 0
		}
		for i := range pa {
			if pa[i].ev != pb[i].ev {
				return 0
			}
		}
	}
	if h.splits == 0 {
		h.t.Logf("a range row boundary where only float rounding changed: key %s, rows from %s and %s: %s",
			key, aggTime(ta), aggTime(tb), strings.Join(diffs, "; "))
	}
	return 1
}

func histValues(fs []engine.FeatureValue) []schema.Value {
	out := make([]schema.Value, len(fs))
	for i, f := range fs {
		out[i] = f.Value
	}
	return out
}

// ---------------------------------------------------------------------
// Range mode, for both repos.

// histRangeRun is one range query and how to check its answer.
type histRangeRun struct {
	stage   string
	req     engine.HistoricalRequest
	keys    []string        // the model keys expected
	ordered bool            // in that order (else in any order)
	unseen  map[string]bool // keys without data: exactly one row
	keyKind schema.Kind     // the join key's kind
	keyOf   func(schema.Value) string
	perKey  int // rows per key checked against online reads and the model (structure: all)
	online  func(key string, t int64) ([]schema.Value, error)
	model   func(where, key string, t int64, vals []schema.Value)
	// equal, when set, says whether the online value of feature fi read
	// at t inside a row's interval (not at its start) is the row's value;
	// nil: bit for bit.
	equal func(fi int, key string, t int64, online, row schema.Value) bool
	// adjacent, when set, is called with each pair of consecutive rows
	// of a key.
	adjacent func(key string, a, b histRow)
	rep      *histReport
}

// histRange runs a range query and checks that each key's rows are
// contiguous, in time order, cover [start, end) exactly with no gap or
// overlap, that consecutive rows differ, and, for up to perKey rows of
// each key, that online reads as of _valid_from (bit for bit), _valid_to
// − 1ns and a random time inside (run.equal) serve the row's features,
// and the model agrees.
func histRange(t *testing.T, db *engine.DB, run histRangeRun, r *rand.Rand) []histRow {
	var rows []histRow
	sink := histCollector(&rows)
	t0 := time.Now()
	require.NoError(t, db.GetFeaturesForRange(context.Background(), &run.req, sink), run.stage)
	t.Logf("%s: the engine answered %d rows in %v", run.stage, len(rows), time.Since(t0).Round(time.Millisecond))
	require.Equal(t, 1, sink.begins, run.stage)
	cols := sink.cols
	require.GreaterOrEqual(t, len(cols), 3, run.stage)
	require.Equal(t, []engine.HistoricalColumn{
		{Name: cols[0].Name, Type: schema.Type{Kind: run.keyKind}},
		{Name: "_valid_from", Type: schema.Type{Kind: schema.Timestamp}},
		{Name: "_valid_to", Type: schema.Type{Kind: schema.Timestamp}},
	}, cols[:3], "%s: the lead columns", run.stage)
	start, end := run.req.Start.UnixNano(), run.req.End.UnixNano()
	type group struct {
		key  string
		rows []histRow
	}
	var groups []*group
	seen := map[string]bool{}
	for i, row := range rows {
		require.Len(t, row.lead, 3, "%s: row %d", run.stage, i+1)
		require.Len(t, row.vals, len(cols)-3, "%s: row %d", run.stage, i+1)
		kv, ok := row.lead[0].(schema.Value)
		require.True(t, ok && kv.Kind == run.keyKind, "%s: row %d: join key %#v", run.stage, i+1, row.lead[0])
		key := run.keyOf(kv)
		if len(groups) == 0 || groups[len(groups)-1].key != key {
			require.False(t, seen[key], "%s: the rows of key %s are not contiguous (row %d)", run.stage, key, i+1)
			seen[key] = true
			groups = append(groups, &group{key: key})
		}
		g := groups[len(groups)-1]
		g.rows = append(g.rows, row)
	}
	var got []string
	for _, g := range groups {
		got = append(got, g.key)
	}
	if run.ordered {
		require.Equal(t, run.keys, got, "%s: the keys answered, in order", run.stage)
	} else {
		require.ElementsMatch(t, run.keys, got, "%s: the keys answered", run.stage)
	}
	for _, g := range groups {
		prev := start
		for j, row := range g.rows {
			from, ok1 := row.lead[1].(time.Time)
			to, ok2 := row.lead[2].(time.Time)
			require.True(t, ok1 && ok2, "%s: key %s row %d: _valid_from/_valid_to are %T, %T", run.stage, g.key, j, row.lead[1], row.lead[2])
			require.Equal(t, aggTime(prev), aggTime(from.UnixNano()), "%s: key %s row %d: a gap or an overlap", run.stage, g.key, j)
			require.Less(t, from.UnixNano(), to.UnixNano(), "%s: key %s row %d: an empty interval", run.stage, g.key, j)
			if j > 0 {
				same := true
				for fi := range row.vals {
					same = same && row.vals[fi].Equal(g.rows[j-1].vals[fi])
				}
				require.False(t, same, "%s: key %s rows %d and %d hold the same vector", run.stage, g.key, j-1, j)
				if run.adjacent != nil {
					run.adjacent(g.key, g.rows[j-1], row)
				}
			}
			prev = to.UnixNano()
		}
		require.Equal(t, aggTime(end), aggTime(prev), "%s: key %s: the rows end before end_time", run.stage, g.key)
		if run.unseen[g.key] {
			require.Len(t, g.rows, 1, "%s: key %s has no data: one row of empty-window values", run.stage, g.key)
		}
		idx := make([]int, len(g.rows))
		for j := range idx {
			idx[j] = j
		}
		if len(idx) > run.perKey {
			r.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
			idx = append(idx[:run.perKey-2], 0, len(g.rows)-1)
		}
		for _, j := range idx {
			row := g.rows[j]
			from, to := row.lead[1].(time.Time).UnixNano(), row.lead[2].(time.Time).UnixNano()
			for _, at := range []int64{from, to - 1, from + r.Int63n(to-from)} {
				where := fmt.Sprintf("%s, key %s row %d [%s, %s) read at %s", run.stage, g.key, j, aggTime(from), aggTime(to), aggTime(at))
				vals, err := run.online(g.key, at)
				require.NoError(t, err, where)
				for fi := range vals {
					ok := histSame(vals[fi], row.vals[fi])
					if !ok && at != from && run.equal != nil {
						ok = run.equal(fi, g.key, at, vals[fi], row.vals[fi])
					}
					if !ok {
						run.rep.add(cols[3+fi].Name, func() string {
							return fmt.Sprintf("%s: %s = %s, but online as_of serves %s", where, cols[3+fi].Name,
								aggFmt(row.vals[fi]), aggFmt(vals[fi]))
						})
					}
				}
				run.model(where, g.key, at, row.vals)
			}
		}
	}
	return rows
}

// ---------------------------------------------------------------------
// Attributes.

// histAttr is an attribute workload (latest_diff_test.go's diffRun).
type histAttr struct {
	*diffRun
	rep *histReport
}

// histAttrCase is one service of diffRepo and how its spine names keys.
type histAttrCase struct {
	service string
	views   []diffView
	source  string
	keyCol  string
	keyKind schema.Kind
	keys    []string // model keys, and one never seen
	jk      func(key string, r *rand.Rand) any
	keyOf   func(schema.Value) string
}

func newHistAttr(t *testing.T, seed int64, requests int) *histAttr {
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	r := rand.New(rand.NewSource(seed))
	d := &diffRun{t: t, seed: seed, r: r, dir: t.TempDir(), model: newDiffModel()}
	d.now.Store(diffBase.Add(3 * time.Hour).UnixNano())
	nUsers, nAccounts := 20+r.Intn(40), 8+r.Intn(12)
	for i := 0; i < nUsers; i++ {
		d.users = append(d.users, fmt.Sprintf("u%03d", i))
	}
	for i := 0; i < nAccounts; i++ {
		d.accounts = append(d.accounts, int64(i*7919-50000)) // negative ids too
	}
	d.open()
	t.Cleanup(func() { d.db.Close() })
	_, err := d.db.Apply("diff.yaml", []byte(diffRepo))
	require.NoError(t, err)
	gen := newDiffGen(r.Int63(), d.users, d.accounts)
	for i := 0; i < requests; i++ {
		accepted, err := d.request(gen, true)
		require.NoError(t, err)
		d.model.add(accepted...)
		switch {
		case i == requests/3 || i == 2*requests/3:
			require.NoError(t, d.db.Flush())
		case i == requests/2:
			require.NoError(t, d.db.Flush())
			require.NoError(t, d.db.Compact())
		case i < requests*9/10 && r.Intn(30) < 2:
			require.NoError(t, d.db.Flush())
		case i < requests*9/10 && r.Intn(30) == 0:
			require.NoError(t, d.db.Compact())
		}
	}
	d.now.Add(int64(90 * time.Minute)) // some records have expired by now, some not
	return &histAttr{diffRun: d, rep: newHistReport(t, seed)}
}

func (h *histAttr) cases() []*histAttrCase {
	users := append(slices.Clone(h.users), "nobody")
	var accounts []string
	for _, a := range h.accounts {
		accounts = append(accounts, fmt.Sprint(a))
	}
	accounts = append(accounts, "4242424242")
	return []*histAttrCase{
		{service: "user_fs", views: diffViews[:2], source: "events", keyCol: "user_id", keyKind: schema.String, keys: users,
			jk:    func(k string, _ *rand.Rand) any { return k },
			keyOf: func(v schema.Value) string { return v.S }},
		{service: "account_fs", views: diffViews[2:], source: "alt_events", keyCol: "account_id", keyKind: schema.Int64, keys: accounts,
			jk: func(k string, r *rand.Rand) any {
				var a int64
				fmt.Sscan(k, &a)
				return []any{a, float64(a), engine.Number(k), k}[r.Intn(4)]
			},
			keyOf: func(v schema.Value) string { return fmt.Sprint(v.I) }},
	}
}

// spine asks every key at readTimes (every event time ±1ns, ts+ttl and
// ts+ttl+1ns for both TTLs, the feature start time ±1ns, before
// everything, now), in the future, and at random times; shuffled, with
// duplicates. The time column comes first for accounts, so that the
// join key is not always column 0.
func (h *histAttr) spine(c *histAttrCase) (*histSpine, []histQuery) {
	now := h.now.Load()
	var qs []histQuery
	for _, k := range c.keys {
		ts := readTimes(h.model.events[c.source][k], now)
		ts = append(ts, now+1, now+int64(4*time.Hour), diffBase.UnixNano()+h.r.Int63n(now-diffBase.UnixNano()))
		for _, t := range ts {
			qs = append(qs, histQuery{k, t})
		}
	}
	for i := 0; i < len(qs)/20; i++ {
		qs = append(qs, qs[h.r.Intn(len(qs))])
	}
	h.r.Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })
	sp := &histSpine{cols: []string{c.keyCol, "when", "label"}}
	if c.keyKind != schema.String {
		sp.cols = []string{"when", c.keyCol, "label"}
	}
	for i, q := range qs {
		row := []any{c.jk(q.key, h.r), histTsValue(q.t, h.r), i}
		if c.keyKind != schema.String {
			row[0], row[1] = row[1], row[0]
		}
		sp.rows = append(sp.rows, row)
	}
	return sp, qs
}

// check compares one vector with the model's latest record as of t.
func (h *histAttr) check(where string, c *histAttrCase, q histQuery, vals []schema.Value) {
	i := 0
	for _, v := range c.views {
		rec := h.model.latest(v, q.key, q.t)
		for _, col := range v.columns {
			var want schema.Value
			if rec != nil {
				want = rec.cols[col] // absent reads as null
			}
			if i >= len(vals) {
				h.t.Fatalf("seed %d %s: %d features", h.seed, where, len(vals))
			}
			if got := vals[i]; !histSame(got, want) {
				name := v.name + "." + col
				h.rep.add(name, func() string {
					s := fmt.Sprintf("%s: %s key %s as of %s: %s = %s, want %s", where, c.service, q.key, aggTime(q.t), name, aggFmt(got), aggFmt(want))
					if rec != nil {
						s += fmt.Sprintf(" (record #%d at %s)", rec.order, aggTime(rec.ts))
					} else {
						s += " (no record in [T − ttl, T))"
					}
					return s
				})
			}
			i++
		}
	}
	if i != len(vals) {
		h.t.Fatalf("seed %d %s: %d features, want %d", h.seed, where, len(vals), i)
	}
}

func (h *histAttr) online(c *histAttrCase, key string, t int64) ([]schema.Value, error) {
	var jk any = key
	if c.keyKind != schema.String {
		jk = engine.Number(key)
	}
	vec, err := h.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "diff", Service: c.service,
		JoinKeys: map[string]any{c.keyCol: jk}, AsOf: time.Unix(0, t)})
	if err != nil {
		return nil, err
	}
	return histValues(vec.Features), nil
}

// runSpine answers the spine, checks the pass-through and every row
// against the model, and returns the rows' values.
func (h *histAttr) runSpine(stage string, c *histAttrCase, req engine.HistoricalRequest, sp *histSpine, qs []histQuery, pristine [][]any) [][]schema.Value {
	sp.pos = 0
	var out [][]schema.Value
	sink := &histSink{row: func(i int, lead []any, vals []schema.Value) error {
		if err := histLead(i, lead, pristine); err != nil {
			return err
		}
		h.check(fmt.Sprintf("%s, spine row %d", stage, i+1), c, qs[i], vals)
		out = append(out, histClone(vals))
		return nil
	}}
	req.Workspace, req.Service = "diff", c.service
	require.NoError(h.t, h.db.GetFeaturesForEvents(context.Background(), &req, sp, sink), "seed %d %s", h.seed, stage)
	require.Equal(h.t, len(qs), sink.rows, "%s: rows answered", stage)
	require.Len(h.t, sink.cols, len(sp.cols)+len(out[0]), stage)
	for i, col := range sp.cols {
		require.Equal(h.t, engine.HistoricalColumn{Name: col, Spine: true}, sink.cols[i], stage)
	}
	h.rep.flush(stage)
	return out
}

// same requires two runs' values to be identical.
func (h *histAttr) same(stage string, qs []histQuery, a, b [][]schema.Value) {
	require.Len(h.t, b, len(a))
	for i := range a {
		for fi := range a[i] {
			require.True(h.t, histSame(a[i][fi], b[i][fi]), "seed %d %s: spine row %d (key %s as of %s) feature %d: %s, want %s",
				h.seed, stage, i+1, qs[i].key, aggTime(qs[i].t), fi, aggFmt(b[i][fi]), aggFmt(a[i][fi]))
		}
	}
}

// TestHistoricalAttrDiff: spine and range mode against the attribute
// model, including TTL expiry boundaries, from_source and a reopen.
func TestHistoricalAttrDiff(t *testing.T) {
	size, seeds := histSizes()
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runHistAttr(t, seed, size)
		})
	}
}

func runHistAttr(t *testing.T, seed int64, size histSize) {
	start := time.Now()
	h := newHistAttr(t, seed, size.requests)
	type spined struct {
		sp       *histSpine
		qs       []histQuery
		pristine [][]any
		tiles    [][]schema.Value
	}
	var done []spined
	for _, c := range h.cases() {
		sp, qs := h.spine(c)
		pristine := histPristine(sp.rows)
		stage := c.service
		req := engine.HistoricalRequest{TimestampKey: "when"}
		if c.keyKind != schema.String {
			req.TimestampKey = "" // inferred
		}
		tiles := h.runSpine(stage+" spine", c, req, sp, qs, pristine)
		req.FromSource = true
		h.same(stage+" from_source", qs, tiles, h.runSpine(stage+" from_source", c, req, sp, qs, pristine))
		// Parity: every 10th row not after the clock, read online.
		now := h.now.Load()
		for i := 0; i < len(qs); i += 10 {
			if qs[i].t > now {
				continue
			}
			vals, err := h.online(c, qs[i].key, qs[i].t)
			require.NoError(t, err)
			h.same(fmt.Sprintf("%s parity, spine row %d", stage, i+1), qs[i:i+1], tiles[i:i+1], [][]schema.Value{vals})
		}
		done = append(done, spined{sp, qs, pristine, tiles})
		t.Logf("%s: %d spine rows checked", stage, len(qs))
	}
	h.attrRanges(size)
	require.NoError(t, h.db.Close())
	h.open()
	for i, c := range h.cases() {
		s := done[i]
		h.same(c.service+" after reopen", s.qs, s.tiles,
			h.runSpine(c.service+" spine after reopen", c, engine.HistoricalRequest{TimestampKey: "when"}, s.sp, s.qs, s.pristine))
	}
	m := h.model
	t.Logf("seed %d: model answers: %d present, %d missing; %v", seed, m.present, m.missing, time.Since(start).Round(time.Millisecond))
	require.Positive(t, m.missing, "the spines never read an expired or missing value")
}

// attrRanges: user_fs for a few users (and one never seen) over random
// ranges, tiles and from_source; account_fs for every account over the
// whole workload.
func (h *histAttr) attrRanges(size histSize) {
	cs := h.cases()
	users, accounts := cs[0], cs[1]
	now := h.now.Load()
	for i := 0; i < size.ranges; i++ {
		start := diffBase.UnixNano() + h.r.Int63n(now-diffBase.UnixNano()-int64(time.Hour))
		end := min(now, start+int64(time.Hour)+h.r.Int63n(int64(4*time.Hour)))
		keys := []string{"nobody", h.users[h.r.Intn(len(h.users))], h.users[0]}
		keys = slices.Compact(keys)
		var ents []map[string]any
		for _, k := range keys {
			ents = append(ents, map[string]any{"user_id": k})
		}
		req := engine.HistoricalRequest{Workspace: "diff", Service: "user_fs", Entities: ents,
			Start: time.Unix(0, start), End: time.Unix(0, end)}
		stage := fmt.Sprintf("user_fs range %d", i+1)
		tiles := h.rangeRun(stage, users, req, keys, true, size.perKey)
		req.FromSource = true
		fromSource := h.rangeRun(stage+" from_source", users, req, keys, true, 4)
		require.Len(h.t, fromSource, len(tiles), "%s: from_source rows", stage)
		for j := range tiles {
			require.Equal(h.t, tiles[j].lead, fromSource[j].lead, "%s: from_source row %d", stage, j)
			for fi := range tiles[j].vals {
				require.True(h.t, histSame(tiles[j].vals[fi], fromSource[j].vals[fi]), "%s: from_source row %d feature %d", stage, j, fi)
			}
		}
	}
	var keys []string
	for k, evs := range h.model.events["alt_events"] {
		if len(evs) > 0 {
			keys = append(keys, k)
		}
	}
	h.rangeRun("account_fs range, every key", accounts, engine.HistoricalRequest{Workspace: "diff", Service: "account_fs",
		Start: diffBase, End: time.Unix(0, now)}, keys, false, size.perKey)
}

func (h *histAttr) rangeRun(stage string, c *histAttrCase, req engine.HistoricalRequest, keys []string, ordered bool, perKey int) []histRow {
	unseen := map[string]bool{}
	for _, k := range keys {
		unseen[k] = len(h.model.events[c.source][k]) == 0
	}
	rows := histRange(h.t, h.db, histRangeRun{stage: stage, req: req, keys: keys, ordered: ordered, unseen: unseen,
		keyKind: c.keyKind, keyOf: c.keyOf, perKey: perKey, rep: h.rep,
		online: func(key string, t int64) ([]schema.Value, error) { return h.online(c, key, t) },
		model: func(where, key string, t int64, vals []schema.Value) {
			h.check(where, c, histQuery{key, t}, vals)
		},
	}, h.r)
	h.rep.flush(stage)
	h.t.Logf("%s: %d keys, %d rows", stage, len(keys), len(rows))
	return rows
}

// ---------------------------------------------------------------------
// Errors and streaming, on a small repo.

// histRepo has a source kept in the offline log and one that is not
// (log_offline: false), and a service without online serving.
const histRepo = `workspace: hist
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: clicks
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: x, type: Int64}
  - name: nolog
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: x, type: Int64}
    push:
      log_offline: false
feature_views:
  - name: clicks_agg
    source: clicks
    entities: [user]
    timestamp_field: ts
    features:
      - aggregate: {input: x, function: count, window: 1h}
      - aggregate: {input: x, function: sum, window: 1d}
  - name: nolog_last
    source: nolog
    entities: [user]
    timestamp_field: ts
    features:
      - attribute: {name: x}
feature_services:
  - name: clicks_fs
    features: [clicks_agg]
  - name: training_fs
    online_serving_enabled: false
    features: [clicks_agg]
  - name: nolog_fs
    features: [nolog_last]
  - name: mixed_fs
    features: [clicks_agg, nolog_last]
`

// histSmallDB opens a DB with histRepo and a few hundred events of users
// u0..u9 over the 10 hours before now.
func histSmallDB(t *testing.T) (*engine.DB, time.Time) {
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Now: func() time.Time { return now }, NoSync: true,
		DisableAutoFlush: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	_, err = db.Apply("hist.yaml", []byte(histRepo))
	require.NoError(t, err)
	r := rand.New(rand.NewSource(7))
	for i := 0; i < 300; i++ {
		rec := map[string]any{"user_id": fmt.Sprintf("u%d", r.Intn(10)), "ts": now.Add(-time.Duration(r.Int63n(int64(10 * time.Hour)))), "x": r.Intn(100)}
		_, err := db.Ingest(&engine.IngestRequest{Workspace: "hist", Records: map[string][]map[string]any{"clicks": {rec}, "nolog": {rec}}})
		require.NoError(t, err)
		if i == 150 {
			require.NoError(t, db.Flush())
		}
	}
	return db, now
}

// TestHistoricalErrors: malformed spines and requests.
func TestHistoricalErrors(t *testing.T) {
	db, now := histSmallDB(t)
	ctx := context.Background()
	ts := now.Add(-time.Hour)
	ok := []any{"u1", ts}
	errIO := errors.New("disk on fire")
	big := func(n int, bad []any) [][]any { // n good rows, then bad
		rows := make([][]any, n, n+1)
		for i := range rows {
			rows[i] = []any{fmt.Sprintf("u%d", i%10), now.Add(-time.Duration(i) * time.Second)}
		}
		return append(rows, bad)
	}
	type histErrCase struct {
		name     string
		cols     []string
		rows     [][]any
		req      engine.HistoricalRequest // Workspace hist, Service clicks_fs unless set
		failAt   int                      // the spine's Next fails at this row
		failErr  error
		code     engine.Code
		row      int    // the SpineError's row (0: not a SpineError)
		written  int    // rows delivered before the error (-1: whole chunks before the bad row's)
		contains string // the message names this
	}
	cases := []histErrCase{
		{name: "missing join-key column", cols: []string{"uid", "ts"}, rows: [][]any{ok},
			code: engine.CodeInvalidArgument, contains: "user_id"},
		{name: "timestamp_key names no column", cols: []string{"user_id", "ts"}, rows: [][]any{ok},
			req: engine.HistoricalRequest{TimestampKey: "event_time"}, code: engine.CodeInvalidArgument, contains: "event_time"},
		{name: "unparsable timestamp", cols: []string{"user_id", "ts"}, rows: [][]any{ok, ok, {"u2", "yesterday"}},
			req: engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 3},
		{name: "null timestamp", cols: []string{"user_id", "ts"}, rows: [][]any{ok, {"u2", nil}},
			req: engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 2},
		{name: "number as timestamp", cols: []string{"user_id", "ts"}, rows: [][]any{{"u2", 1717243200}},
			req: engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 1},
		{name: "timestamp after 2262", cols: []string{"user_id", "ts"},
			rows: [][]any{ok, ok, ok, {"u2", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}},
			req:  engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 4},
		{name: "RFC 3339 timestamp before 1677", cols: []string{"user_id", "ts"}, rows: [][]any{ok, {"u2", "1600-01-01T00:00:00Z"}},
			req: engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 2},
		{name: "bad timestamp in the second chunk", cols: []string{"user_id", "ts"}, rows: big(1<<16+6, []any{"u1", "soon"}),
			req: engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 1<<16 + 7, written: -1},
		{name: "null join key", cols: []string{"user_id", "ts"}, rows: [][]any{ok, {nil, ts}},
			code: engine.CodeInvalidArgument, row: 2},
		{name: "array join key", cols: []string{"user_id", "ts"}, rows: [][]any{ok, ok, {[]any{"u1"}, ts}},
			code: engine.CodeInvalidArgument, row: 3},
		{name: "number for a String join key", cols: []string{"user_id", "ts"}, rows: [][]any{{7, ts}},
			code: engine.CodeInvalidArgument, row: 1},
		{name: "short row", cols: []string{"user_id", "ts", "label"}, rows: [][]any{{"u1", ts, 1}, {"u1", ts}},
			req: engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 2},
		{name: "spine read error", cols: []string{"user_id", "ts"}, rows: [][]any{ok, ok, ok, ok, ok, ok},
			failAt: 5, failErr: errIO, code: engine.CodeInvalidArgument, row: 5},
		{name: "spine's own SpineError", cols: []string{"user_id", "ts"}, rows: [][]any{ok, ok},
			failAt: 2, failErr: &engine.SpineError{Row: 9, Err: errIO}, code: engine.CodeInvalidArgument, row: 9},
		{name: "two timestamp columns, no timestamp_key", cols: []string{"user_id", "ts", "ts2"},
			rows: [][]any{{"u1", ts, ts.Format(time.RFC3339)}}, code: engine.CodeInvalidArgument, contains: "ts2"},
		{name: "no timestamp column", cols: []string{"user_id", "label"}, rows: [][]any{{"u1", "x"}},
			code: engine.CodeInvalidArgument, contains: "timestamp_key"},
		{name: "inferred timestamp column with a bad value", cols: []string{"user_id", "ts"}, rows: [][]any{ok, {"u1", "later"}},
			code: engine.CodeInvalidArgument, contains: "timestamp_key"},
		{name: "unknown service", cols: []string{"user_id", "ts"}, rows: [][]any{ok},
			req: engine.HistoricalRequest{Service: "nope"}, code: engine.CodeNotFound, contains: "nope"},
		{name: "unknown workspace", cols: []string{"user_id", "ts"}, rows: [][]any{ok},
			req: engine.HistoricalRequest{Workspace: "nope"}, code: engine.CodeNotFound, contains: "nope"},
		{name: "from_source without the offline log", cols: []string{"user_id", "ts"}, rows: [][]any{ok},
			req: engine.HistoricalRequest{Service: "nolog_fs", FromSource: true}, code: engine.CodeInvalidArgument, contains: "log_offline"},
		{name: "from_source with one view without the offline log", cols: []string{"user_id", "ts"}, rows: [][]any{ok},
			req: engine.HistoricalRequest{Service: "mixed_fs", FromSource: true}, code: engine.CodeInvalidArgument, contains: "nolog"},
	}
	if *diffLong { // past a chunk of 1<<20 rows too
		c := cases[slices.IndexFunc(cases, func(c histErrCase) bool { return c.name == "bad timestamp in the second chunk" })]
		c.name, c.rows, c.row = c.name+" (1M rows)", big(1<<20+6, []any{"u1", "soon"}), 1<<20+7
		cases = append(cases, c)
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			req := c.req
			req.Workspace = cmp.Or(req.Workspace, "hist")
			req.Service = cmp.Or(req.Service, "clicks_fs")
			sp := &histSpine{cols: c.cols, rows: c.rows, failAt: c.failAt, failErr: c.failErr}
			sink := &histSink{row: func(i int, lead []any, _ []schema.Value) error { return histLead(i, lead, c.rows) }}
			err := db.GetFeaturesForEvents(ctx, &req, sp, sink)
			require.Error(t, err)
			t.Logf("%v", err)
			require.Equal(t, c.code, engine.CodeOf(err), "code of %v", err)
			var se *engine.SpineError
			if c.row > 0 {
				require.True(t, errors.As(err, &se), "want a *engine.SpineError, got %T %v", err, err)
				require.Equal(t, c.row, se.Row, "the row of %v", err)
				require.Contains(t, err.Error(), fmt.Sprintf("row %d", c.row))
			} else {
				require.False(t, errors.As(err, &se), "a *engine.SpineError for a request error: %v", err)
			}
			if c.failErr != nil {
				require.ErrorIs(t, err, errIO)
			}
			if c.contains != "" {
				require.Contains(t, err.Error(), c.contains)
			}
			if c.written >= 0 {
				require.Equal(t, c.written, sink.rows, "rows delivered before the error")
			} else {
				// Rows of chunks before the bad row's chunk may have been
				// delivered; those of its own chunk not.
				require.Less(t, sink.rows, c.row, "rows delivered before the error")
			}
		})
	}

	t.Run("range", func(t *testing.T) {
		from, to := now.Add(-2*time.Hour), now
		for _, c := range []struct {
			name     string
			req      engine.HistoricalRequest
			code     engine.Code
			contains string
		}{
			{"end equals start", engine.HistoricalRequest{Start: to, End: to}, engine.CodeInvalidArgument, "end_time"},
			{"end before start", engine.HistoricalRequest{Start: to, End: from}, engine.CodeInvalidArgument, "end_time"},
			{"no start", engine.HistoricalRequest{End: to}, engine.CodeInvalidArgument, "start_time"},
			{"unknown service", engine.HistoricalRequest{Service: "nope", Start: from, End: to}, engine.CodeNotFound, "nope"},
			{"from_source without the offline log", engine.HistoricalRequest{Service: "nolog_fs", FromSource: true, Start: from, End: to},
				engine.CodeInvalidArgument, "log_offline"},
			{"entity without the join key", engine.HistoricalRequest{Start: from, End: to, Entities: []map[string]any{{"user_id": "u1"}, {"uid": "u1"}}},
				engine.CodeInvalidArgument, "entities[1]"},
			{"entity with an extra key", engine.HistoricalRequest{Start: from, End: to, Entities: []map[string]any{{"user_id": "u1", "x": 1}}},
				engine.CodeInvalidArgument, "entities[0]"},
			{"entity with a null key", engine.HistoricalRequest{Start: from, End: to, Entities: []map[string]any{{"user_id": nil}}},
				engine.CodeInvalidArgument, "entities[0]"},
		} {
			req := c.req
			req.Workspace = "hist"
			req.Service = cmp.Or(req.Service, "clicks_fs")
			sink := &histSink{}
			err := db.GetFeaturesForRange(ctx, &req, sink)
			require.Error(t, err, c.name)
			require.Equal(t, c.code, engine.CodeOf(err), "%s: %v", c.name, err)
			require.Contains(t, err.Error(), c.contains, c.name)
			require.Zero(t, sink.rows, c.name)
		}
	})

	t.Run("sink_and_context_errors", func(t *testing.T) {
		errSink := errors.New("sink full")
		spine := func() *histSpine { return &histSpine{cols: []string{"user_id", "ts"}, rows: [][]any{ok, ok, ok}} }
		rng := engine.HistoricalRequest{Workspace: "hist", Service: "clicks_fs", Start: now.Add(-time.Hour), End: now}
		evReq := engine.HistoricalRequest{Workspace: "hist", Service: "clicks_fs"}
		err := db.GetFeaturesForEvents(ctx, &evReq, spine(), &histSink{beginErr: errSink})
		require.ErrorIs(t, err, errSink)
		err = db.GetFeaturesForRange(ctx, &rng, &histSink{beginErr: errSink})
		require.ErrorIs(t, err, errSink)
		failRow := &histSink{row: func(i int, _ []any, _ []schema.Value) error {
			if i == 1 {
				return errSink
			}
			return nil
		}}
		require.ErrorIs(t, db.GetFeaturesForEvents(ctx, &evReq, spine(), failRow), errSink)
		require.Equal(t, 2, failRow.rows, "rows delivered after the sink failed")
		failRow = &histSink{row: failRow.row}
		rng.Entities = []map[string]any{{"user_id": "u1"}, {"user_id": "u2"}}
		require.ErrorIs(t, db.GetFeaturesForRange(ctx, &rng, failRow), errSink)
		require.Equal(t, 2, failRow.rows, "rows delivered after the sink failed")
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		require.ErrorIs(t, db.GetFeaturesForEvents(cctx, &evReq, spine(), &histSink{}), context.Canceled)
		require.ErrorIs(t, db.GetFeaturesForRange(cctx, &rng, &histSink{}), context.Canceled)
	})

	t.Run("accepted", func(t *testing.T) {
		// An empty spine: the columns, no rows, with or without timestamp_key.
		for _, key := range []string{"", "ts"} {
			sink := &histSink{}
			err := db.GetFeaturesForEvents(ctx, &engine.HistoricalRequest{Workspace: "hist", Service: "clicks_fs", TimestampKey: key},
				&histSpine{cols: []string{"user_id", "ts"}}, sink)
			require.NoError(t, err)
			require.Equal(t, 1, sink.begins)
			require.Zero(t, sink.rows)
			require.Len(t, sink.cols, 4)
		}
		// Two timestamp columns, one named; a service without online
		// serving; both answered as an online read as of the named column.
		_, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "hist", Service: "training_fs", JoinKeys: map[string]any{"user_id": "u1"}})
		require.Error(t, err, "training_fs has online_serving_enabled: false")
		sp := &histSpine{cols: []string{"user_id", "ts", "ts2"}}
		for i := 0; i < 20; i++ {
			sp.rows = append(sp.rows, []any{fmt.Sprintf("u%d", i%12), now.Add(-time.Duration(i) * time.Hour),
				now.Add(-time.Duration(i) * 17 * time.Minute).Format(time.RFC3339Nano)})
		}
		for _, svc := range []string{"clicks_fs", "training_fs"} {
			var rows []histRow
			sp.pos = 0
			err := db.GetFeaturesForEvents(ctx, &engine.HistoricalRequest{Workspace: "hist", Service: svc, TimestampKey: "ts2"}, sp, histCollector(&rows))
			require.NoError(t, err, svc)
			require.Len(t, rows, len(sp.rows))
			for i, row := range rows {
				at, err := time.Parse(time.RFC3339Nano, sp.rows[i][2].(string))
				require.NoError(t, err)
				vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "hist", Service: "clicks_fs",
					JoinKeys: map[string]any{"user_id": sp.rows[i][0]}, AsOf: at})
				require.NoError(t, err)
				for fi, f := range vec.Features {
					require.True(t, histSame(f.Value, row.vals[fi]), "%s row %d %s: %s, online %s", svc, i+1, f.Name, aggFmt(row.vals[fi]), aggFmt(f.Value))
				}
			}
		}
	})
}

// histGenSpine makes n rows on demand and holds none: row i is user
// u<i mod 13> at t0 − i seconds (time.Time or RFC 3339 alternately),
// label i. pos counts the rows read.
type histGenSpine struct {
	n, pos int
	t0     time.Time
}

func (s *histGenSpine) Columns() []string { return []string{"user_id", "ts", "label"} }

func (s *histGenSpine) Next() ([]any, error) {
	if s.pos >= s.n {
		return nil, io.EOF
	}
	s.pos++
	return s.row(s.pos - 1), nil
}

func (s *histGenSpine) row(i int) []any {
	var ts any = s.t0.Add(-time.Duration(i) * time.Second)
	if i%2 == 1 {
		ts = ts.(time.Time).Format(time.RFC3339Nano)
	}
	return []any{fmt.Sprintf("u%d", i%13), ts, i}
}

// TestHistoricalStreaming: a 200k-row spine is answered chunk by chunk:
// the sink receives rows while the spine is still being read, and the
// engine never reads more than half the spine ahead of what it wrote.
// The join holds a chunk's rows and their feature vectors (64 bytes per
// value), so the chunk bounds its memory: with chunks of 1<<16 rows it
// reads one chunk ahead. Spines of 1<<16 rows ±1 come back whole and in
// order.
func TestHistoricalStreaming(t *testing.T) {
	db, now := histSmallDB(t)
	const total = 200_000
	sp := &histGenSpine{n: total, t0: now}
	firstAt, maxAhead := -1, 0
	kept := map[int][]schema.Value{}
	sink := &histSink{row: func(i int, lead []any, vals []schema.Value) error {
		if firstAt < 0 {
			firstAt = sp.pos
		}
		maxAhead = max(maxAhead, sp.pos-i)
		if !reflect.DeepEqual(lead, sp.row(i)) {
			return fmt.Errorf("row %d: %v, want %v", i+1, lead, sp.row(i))
		}
		if i%9973 == 0 {
			kept[i] = histClone(vals)
		}
		return nil
	}}
	var progress []int
	start := time.Now()
	err := db.GetFeaturesForEvents(context.Background(), &engine.HistoricalRequest{Workspace: "hist", Service: "clicks_fs",
		TimestampKey: "ts", ChunkRows: 1 << 16, Progress: func(n int) { progress = append(progress, n) }}, sp, sink)
	require.NoError(t, err)
	t.Logf("%d rows in %v; first row delivered after %d spine rows were read; at most %d rows read ahead; progress %v",
		total, time.Since(start).Round(time.Millisecond), firstAt, maxAhead, progress)
	require.Equal(t, total, sink.rows)
	require.Equal(t, total, sp.pos)
	require.Less(t, firstAt, total, "the sink received nothing before the whole spine was read")
	require.LessOrEqual(t, maxAhead, total/2, "the engine read too far ahead of what it wrote")
	require.True(t, slices.IsSorted(progress) && progress[len(progress)-1] == total, "progress %v", progress)
	for i, vals := range kept {
		row := sp.row(i)
		var at time.Time
		switch ts := row[1].(type) {
		case time.Time:
			at = ts
		case string:
			at, err = time.Parse(time.RFC3339Nano, ts)
			require.NoError(t, err)
		}
		vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "hist", Service: "clicks_fs",
			JoinKeys: map[string]any{"user_id": row[0]}, AsOf: at})
		require.NoError(t, err)
		for fi, f := range vec.Features {
			require.True(t, histSame(f.Value, vals[fi]), "row %d %s: %s, online %s", i+1, f.Name, aggFmt(vals[fi]), aggFmt(f.Value))
		}
	}

	for _, n := range []int{1<<16 - 1, 1 << 16, 1<<16 + 1} {
		sp := &histGenSpine{n: n, t0: now}
		sink := &histSink{row: func(i int, lead []any, _ []schema.Value) error {
			if lead[2] != i {
				return fmt.Errorf("row %d has label %v", i+1, lead[2])
			}
			return nil
		}}
		require.NoError(t, db.GetFeaturesForEvents(context.Background(), &engine.HistoricalRequest{Workspace: "hist",
			Service: "clicks_fs"}, sp, sink), "%d rows", n)
		require.Equal(t, n, sink.rows, "a spine of %d rows", n)
		require.Equal(t, 1, sink.begins)
	}
}
