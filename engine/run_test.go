package engine_test

// run (SPEC §6) on generated repos (gen_repo_test.go), after a workload
// with late, out-of-order and duplicate events flushed and merged at
// random moments (gen_workload_test.go), for every view:
//
//   - [MinTimestamp, now) at full equals the online read as_of now
//     (GetFeaturesBatch over a service of that view alone), key for key;
//   - random windows [start, end): disabled gives exactly the model's
//     transformed rows in the window; full equals the model
//     (gen_model_test.go) restricted to the window's rows, read at end;
//     partial gives one row per key and tile holding a row, each feature
//     the model's function over the tile's rows; summing the count and
//     integer sum tiles inside a window reproduces full; an attribute
//     view's partial rows are the key's records with the intervals over
//     which each is the latest.
//
//	go test ./engine -run TestRunGenDiff              # a few seeds and the fixed repos
//	go test ./engine -run TestRunGenDiff -seed=42     # one seed
//	go test ./engine -run TestRunGenDiff -long        # more seeds, bigger workloads

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// runRows collects a run's answer; it is an engine.HistoricalSink.
type runRows struct {
	cols []engine.HistoricalColumn
	rows [][]schema.Value
}

func (r *runRows) Begin(cols []engine.HistoricalColumn) error {
	r.cols = slices.Clone(cols)
	return nil
}

func (r *runRows) Row(lead []any, vals []schema.Value) error {
	if len(lead) != 0 || len(vals) != len(r.cols) {
		return fmt.Errorf("a row of %d lead and %d values for %d columns", len(lead), len(vals), len(r.cols))
	}
	row := make([]schema.Value, len(vals))
	for i, v := range vals {
		if v.Kind == schema.Array {
			v.A = slices.Clone(v.A)
		}
		row[i] = v
	}
	r.rows = append(r.rows, row)
	return nil
}

func (r *runRows) names() []string {
	var out []string
	for _, c := range r.cols {
		out = append(out, c.Name)
	}
	return out
}

// named returns row i by column name.
func (r *runRows) named(i int) map[string]schema.Value {
	m := make(map[string]schema.Value, len(r.cols))
	for j, c := range r.cols {
		m[c.Name] = r.rows[i][j]
	}
	return m
}

// text renders the whole answer, for equality checks between runs.
func (r *runRows) text() string {
	var b strings.Builder
	fmt.Fprintln(&b, strings.Join(r.names(), ","))
	for _, row := range r.rows {
		for j, v := range row {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(runFmt(v))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// runFmt renders a value exactly: floats by their bits, so that two
// answers are equal only when every value is.
func runFmt(v schema.Value) string {
	switch v.Kind {
	case schema.Float64, schema.Float32:
		return fmt.Sprintf("%v:%x", v.Kind, math.Float64bits(v.F))
	case schema.Array:
		parts := make([]string, len(v.A))
		for i, e := range v.A {
			parts[i] = runFmt(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return v.Kind.String() + ":" + aggFmt(v)
}

func runView(t *testing.T, db *engine.DB, ws, view string, req engine.RunRequest) *runRows {
	t.Helper()
	out := &runRows{}
	require.NoError(t, db.Run(context.Background(), ws, view, &req, out), "run %s %s [%s, %s)", view, req.Level, req.Start, req.End)
	return out
}

var runLevels = []engine.RunLevel{engine.RunDisabled, engine.RunPartial, engine.RunFull}

func TestRunGenDiff(t *testing.T) {
	size := genSize{requests: 160, span: 40 * aggH, keys: 60}
	windows := 3
	if *diffLong {
		size, windows = genSize{requests: 800, span: 4 * aggD, keys: 200}, 8
	}
	for _, c := range genCases([]int64{1, 2, 3, 4}, 10) {
		t.Run(c.name, func(t *testing.T) { runRunDiff(t, c, size, windows) })
	}
}

// runDiff is one generated repo's run checks.
type runDiff struct {
	*genRun
	rnd   *rand.Rand
	count struct{ rows, tiles, versions, keys, online, sums int }
}

func runRunDiff(t *testing.T, c genCase, size genSize, windows int) {
	base := c.repo
	c.repo = func() *genRepo { // a service per view: the online reads of one view
		r := base()
		for _, v := range r.views {
			r.services = append(r.services, &genService{name: "run_" + v.name, entries: []genEntry{{view: v}}})
		}
		return r
	}
	d := newGenRun(t, c, size)
	(&genHist{genRun: d}).workload()
	r := &runDiff{genRun: d, rnd: rand.New(rand.NewSource(c.seed + 7))}
	for _, v := range d.repo.views {
		r.online(v)
		for range windows {
			start, end := r.window()
			r.check(v, start, end)
		}
		_, end := r.window()
		r.check(v, end.Add(-5*time.Minute), end) // short: inside most windows, for the tile sums

	}
	t.Logf("%s: %d disabled rows, %d tiles, %d versions, %d keys at full, %d online comparisons, %d tile sums",
		c.name, r.count.rows, r.count.tiles, r.count.versions, r.count.keys, r.count.online, r.count.sums)
	require.Positive(t, r.count.rows)
	require.Positive(t, r.count.keys)
	require.Positive(t, r.count.online)
	if d.hasAggregates() {
		require.Positive(t, r.count.tiles)
		require.Positive(t, r.count.sums)
	}
	if d.hasAttributes() {
		require.Positive(t, r.count.versions)
	}
}

// window draws [start, end) within the workload's span, end on an hour
// (so that interval windows end on a tile boundary) and not after now.
func (r *runDiff) window() (time.Time, time.Time) {
	now := r.clock()
	span := r.size.span + 8*time.Hour
	end := now.Add(-time.Duration(r.rnd.Int63n(int64(span)))).Truncate(time.Hour)
	start := end.Add(-time.Duration(1+r.rnd.Int63n(int64(24*time.Hour))) / time.Second * time.Second)
	if r.rnd.Intn(4) == 0 {
		start = schema.MinTimestamp // the whole history before end
	}
	return start, end
}

func (r *runDiff) run(v *genView, start, end time.Time, level engine.RunLevel) *runRows {
	return runView(r.t, r.db, r.repo.ws, v.name, engine.RunRequest{Start: start, End: end, Level: level})
}

// rowsIn returns the model's rows of v with event time in [s, e), by key,
// sorted by event time then log order.
func (r *runDiff) rowsIn(v *genView, s, e int64) map[string][]genRow {
	out := map[string][]genRow{}
	for _, key := range r.model.keys(v) {
		for _, gr := range r.model.keyRows(v, key) {
			if gr.ts >= s && gr.ts < e {
				out[key] = append(out[key], gr)
			}
		}
	}
	return out
}

// windowModel is a model holding only the rows of v in rows.
func (r *runDiff) windowModel(v *genView, rows map[string][]genRow) *genModel {
	m := newGenModel(r.repo)
	for key, rs := range rows {
		m.rows[v][key] = &genRows{rows: rs, sorted: true}
		for _, gr := range rs {
			m.minT = min(m.minT, gr.ts)
		}
	}
	return m
}

// keyOf is the model key of an answer row.
func (r *runDiff) keyOf(v *genView, row map[string]schema.Value) string {
	key, ok := genViewKey(v, row)
	require.True(r.t, ok, "%s: an answer row lacks a join key: %v", v.name, row)
	return key
}

func (r *runDiff) check(v *genView, start, end time.Time) {
	s, e := start.UnixNano(), end.UnixNano()
	rows := r.rowsIn(v, s, e)
	where := fmt.Sprintf("%s: view %s [%s, %s)", r.c.name, v.name, start.Format(time.RFC3339), end.Format(time.RFC3339))
	r.checkDisabled(where, v, rows, r.run(v, start, end, engine.RunDisabled))
	full := r.run(v, start, end, engine.RunFull)
	r.checkFull(where, v, rows, e, full)
	partial := r.run(v, start, end, engine.RunPartial)
	if v.aggregate() {
		r.checkTiles(where, v, rows, s, e, partial)
		r.checkSums(where, v, s, e, partial, full)
	} else {
		r.checkVersions(where, v, rows, e, partial)
	}
}

// checkDisabled: the answer's rows are the model's transformed rows in
// the window, as a multiset per key.
func (r *runDiff) checkDisabled(where string, v *genView, rows map[string][]genRow, out *runRows) {
	var cols []string
	for _, c := range v.src.cols {
		cols = append(cols, c.name)
	}
	for _, c := range v.txCols {
		cols = append(cols, c.name)
	}
	require.Equal(r.t, cols, out.names(), "%s: disabled columns", where)
	got, want := map[string][]string{}, map[string][]string{}
	for i := range out.rows {
		m := out.named(i)
		key := r.keyOf(v, m)
		got[key] = append(got[key], runRowText(cols, m))
	}
	for key, rs := range rows {
		for _, gr := range rs {
			want[key] = append(want[key], runRowText(cols, gr.row))
		}
		r.count.rows += len(rs)
	}
	for _, m := range []map[string][]string{got, want} {
		for _, rs := range m {
			sort.Strings(rs)
		}
	}
	assert.Equal(r.t, want, got, "%s: disabled rows", where)
}

func runRowText(cols []string, row map[string]schema.Value) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c + "=" + aggFmt(row[c])
	}
	return strings.Join(parts, " ")
}

// checkFull: one row per key with rows in the window, each feature the
// model's as of end over the window's rows.
func (r *runDiff) checkFull(where string, v *genView, rows map[string][]genRow, e int64, out *runRows) {
	m := r.windowModel(v, rows)
	names := v.featureNames()
	require.Equal(r.t, append(runJoinKeyNames(v), names...), out.names(), "%s: full columns", where)
	seen := map[string]bool{}
	for i := range out.rows {
		row := out.named(i)
		key := r.keyOf(v, row)
		assert.False(r.t, seen[key], "%s: full answers key %q twice", where, key)
		seen[key] = true
		assert.NotEmpty(r.t, rows[key], "%s: full answers key %q, which has no rows in the window", where, key)
		for idx, name := range names {
			w := m.want(v, idx, key, e)
			if ok, why := w.check(v, idx, row[name]); !ok {
				r.t.Errorf("%s: full, key %q, feature %s = %s, model %s: %s", where, key, name, aggFmt(row[name]), aggFmt(w.val), why)
			}
		}
	}
	assert.Len(r.t, seen, len(rows), "%s: full answers %d keys; %d have rows in the window", where, len(seen), len(rows))
	r.count.keys += len(seen)
}

func runJoinKeyNames(v *genView) []string {
	var out []string
	for _, c := range v.joinKeys() {
		out = append(out, c.name)
	}
	return out
}

// tileSize is the partial tile of v: its interval, or 10s when continuous.
func runTileSize(v *genView) int64 {
	if v.interval > 0 {
		return int64(v.interval)
	}
	return int64(10 * time.Second)
}

// checkTiles: one row per key and tile holding a row of the window, each
// feature the model's function over the tile's rows in the window.
func (r *runDiff) checkTiles(where string, v *genView, rows map[string][]genRow, s, e int64, out *runRows) {
	size := runTileSize(v)
	require.Equal(r.t, append(append([]string{"_tile_start", "_tile_end"}, runJoinKeyNames(v)...), v.featureNames()...), out.names(), "%s: partial columns", where)
	want := map[string]bool{}
	for key, rs := range rows {
		for _, gr := range rs {
			want[fmt.Sprintf("%q@%d", key, floorDiv(gr.ts, size)*size)] = true
		}
	}
	got := map[string]bool{}
	for i := range out.rows {
		row := out.named(i)
		key, t0, t1 := r.keyOf(v, row), row["_tile_start"].I, row["_tile_end"].I
		require.Equal(r.t, size, t1-t0, "%s: a tile of %v", where, time.Duration(t1-t0))
		require.Zero(r.t, t0-floorDiv(t0, size)*size, "%s: a tile not aligned to %v", where, time.Duration(size))
		got[fmt.Sprintf("%q@%d", key, t0)] = true
		for idx, f := range v.aggs {
			pts := runPoints(rows[key], f.input, max(t0, s), min(t1, e))
			name := v.featureNames()[idx]
			wv := aggCompute(f, v.colType(f.input).Kind, pts)
			if ok, why := aggCheck(f, row[name], wv, pts); !ok {
				r.t.Errorf("%s: partial, key %q, tile %s, feature %s = %s, model %s: %s", where, key,
					time.Unix(0, t0).UTC().Format(time.RFC3339), name, aggFmt(row[name]), aggFmt(wv), why)
			}
		}
	}
	assert.Equal(r.t, want, got, "%s: partial (key, tile) pairs", where)
	r.count.tiles += len(got)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// runPoints are the non-null values of column in of rows in [lo, hi).
func runPoints(rows []genRow, in string, lo, hi int64) []aggPoint {
	var pts []aggPoint
	for _, gr := range rows {
		if gr.ts >= lo && gr.ts < hi && !gr.row[in].IsNull() {
			pts = append(pts, aggPoint{ts: gr.ts, req: gr.ev.req, val: gr.row[in]})
		}
	}
	return pts
}

// checkSums: where a feature's window as of end holds all of [start, E)
// and E is a tile boundary, the sum of its count (or integer sum) tiles
// ending by E is its full value.
func (r *runDiff) checkSums(where string, v *genView, s, e int64, partial, full *runRows) {
	size := runTileSize(v)
	names := v.featureNames()
	for idx, f := range v.aggs {
		integral := v.colType(f.input).Kind.Integral()
		if f.fn != "count" && (f.fn != "sum" || !integral) {
			continue
		}
		end := genWindowEnd(v, f, e)
		lo, _ := genWindow(v, f, e)
		if end%size != 0 || (!f.window.lifetime && lo > s) {
			continue
		}
		sums := map[string]int64{}
		for i := range partial.rows {
			row := partial.named(i)
			if row["_tile_end"].I <= end {
				sums[r.keyOf(v, row)] += row[names[idx]].I
			}
		}
		for i := range full.rows {
			row := full.named(i)
			key := r.keyOf(v, row)
			assert.Equal(r.t, row[names[idx]].I, sums[key], "%s: key %q, feature %s: the tiles before %s sum to %d, full is %d",
				where, key, names[idx], time.Unix(0, end).UTC().Format(time.RFC3339), sums[key], row[names[idx]].I)
			r.count.sums++
		}
	}
}

// checkVersions: an attribute view's partial rows are each key's records
// in order, with the intervals over which each is the latest.
func (r *runDiff) checkVersions(where string, v *genView, rows map[string][]genRow, e int64, out *runRows) {
	names := v.featureNames()
	require.Equal(r.t, append(append([]string{"_tile_start", "_tile_end"}, runJoinKeyNames(v)...), names...), out.names(), "%s: partial columns", where)
	got := map[string][]string{}
	for i := range out.rows {
		row := out.named(i)
		key := r.keyOf(v, row)
		got[key] = append(got[key], fmt.Sprintf("[%d,%d) %s", row["_tile_start"].I, row["_tile_end"].I, runRowText(names, row)))
	}
	want := map[string][]string{}
	for key, rs := range rows {
		for i, gr := range rs {
			to := e
			if i+1 < len(rs) {
				to = rs[i+1].ts
			}
			want[key] = append(want[key], fmt.Sprintf("[%d,%d) %s", gr.ts, to, runRowText(names, gr.row)))
		}
		r.count.versions += len(rs)
	}
	assert.Equal(r.t, want, got, "%s: partial versions", where)
}

// online: [MinTimestamp, now) at full equals the online read as_of now,
// feature for feature (within rounding for float sums and moments, whose
// merge order differs between the tiles and run's fresh memtable).
func (r *runDiff) online(v *genView) {
	now := r.clock()
	out := r.run(v, schema.MinTimestamp, now, engine.RunFull)
	jks := runJoinKeyNames(v)
	maps := make([]map[string]any, len(out.rows))
	for i := range out.rows {
		maps[i] = map[string]any{}
		for j, name := range jks {
			maps[i][name] = out.rows[i][j].Any()
		}
	}
	vecs, err := r.db.GetFeaturesBatch(r.repo.ws, "run_"+v.name, maps, now)
	require.NoError(r.t, err)
	svc := &genService{entries: []genEntry{{view: v}}}
	for i, vec := range vecs {
		for fi, sf := range svc.features() {
			got, want := out.rows[i][len(jks)+fi], vec.Features[fi].Value
			if !histSame(got, want) && !(genLoose(sf) && runClose(got, want)) {
				r.t.Errorf("%s: view %s, key %v, feature %s: run full %s, online as_of now %s", r.c.name, v.name, maps[i],
					sf.name, aggFmt(got), aggFmt(want))
			}
			r.count.online++
		}
	}
	assert.Len(r.t, out.rows, len(r.rowsIn(v, math.MinInt64, now.UnixNano())), "%s: view %s: keys at full", r.c.name, v.name)
}

func runClose(a, b schema.Value) bool {
	if a.Kind != b.Kind || (a.Kind != schema.Float64 && a.Kind != schema.Float32) {
		return false
	}
	if math.IsNaN(a.F) || math.IsNaN(b.F) {
		return math.IsNaN(a.F) && math.IsNaN(b.F)
	}
	return math.Abs(a.F-b.F) <= 1e-9*max(1, math.Abs(a.F), math.Abs(b.F))
}
