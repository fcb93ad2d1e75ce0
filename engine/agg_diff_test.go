package engine_test

// A differential test of aggregate features (SPEC §1, §3): seeded random
// workloads are ingested into the engine (Ingest and IngestJSON, a fake
// clock that moves with the events), and GetFeatures is compared, for
// every feature of three aggregate views, with the naive model of
// agg_model_test.go at many read times: event times and ±1ns, window
// edges (event time + W, + W + O) ±1ns, tile boundaries (k·1m, k·10m,
// k·1h, k·1d) ±1ns, before any event, and now (with and without as_of).
//
//   - phase 1: one writer; live checkpoints every few requests read a few
//     keys at now and at recent times, and read the previous checkpoint's
//     keys and times again (late events must show in windows, and cached
//     tile ranges, read before); then a full comparison of every key, and
//     the same after Close and reopen (replay of the log);
//   - phase 2: more requests on the reopened DB, then a full comparison;
//   - phase 3: concurrent writers over disjoint keys while readers read
//     (checked for shape only), the clock still; then a full comparison,
//     live and after another reopen.
//
// The views: "cont" (continuous), "tiles_10m" (aggregation_interval 10m,
// feature_start_time with nanoseconds, off the tile grid) and "tiles_1h"
// (aggregation_interval 1h, a transform with an Int64 and a Bool column
// and a filter that drops nulls). Every function of SPEC §3 appears in
// each view; windows 1h, 90m, 1d, 3d, {1h, offset 30m}, {90m, offset
// 30m}, {1d, offset 1h} and lifetime; HyperLogLog precisions 6, 8, 12, 16.
//
// The workload: hundreds of keys with Zipf popularity; out-of-order, late
// (up to days) and very late events (older than tiles_1h's TTL: not counted
// in its metrics, still applied, DESIGN.md §6), a few around the Unix epoch
// (negative tile arithmetic); events exactly on tile boundaries and around
// feature_start_time; equal event times within and across requests; exact
// duplicates (identical rows ingested twice count twice); null and absent
// columns; requests with a record beyond the clock skew (rejected whole,
// every bad record listed); dry runs. Ingest metrics are checked per
// request. TestAggDefaultTTL checks the default TTL rule on a source
// without lifetime windows.
//
// On a mismatch the test prints the feature, key, read time, got and want,
// and the events in (and just outside) the window, and for the first
// mismatch of each feature (up to 6) it shrinks the key's events to a
// minimal set on a fresh DB and prints them as a reproduction.
//
//	go test ./engine -run TestAggDiff                # short: one seed, a few seconds
//	go test ./engine -run TestAggDiff -seed=42       # replay one seed
//	go test ./engine -run TestAggDiff -long          # 8 random seeds, bigger workloads
//	go test ./engine -run TestAggDiff -long -seed=N  # replay one seed of a -long run
//
// The -seed and -long flags are latest_diff_test.go's (the package is
// engine_test, as there, so that they are shared and not redefined).

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	"github.com/featurelog/featurelog/internal/schema"
)

// aggBase is the start of the workload's time line; the clock starts 8h
// later, so late events reach before it.
var aggBase = time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)

// aggStart is tiles_10m's feature_start_time: not on a tile boundary, and
// with nanoseconds.
var aggStart = aggBase.Add(20*time.Hour + 5*time.Minute + 7)

const aggSkew = 5 * time.Minute

func aggW(size time.Duration) aggWindow { return aggWindow{size: size} }
func aggWO(size, offset time.Duration) aggWindow {
	return aggWindow{size: size, offset: offset}
}

var aggLifetime = aggWindow{lifetime: true}

const (
	aggM = time.Minute
	aggH = time.Hour
	aggD = 24 * time.Hour
)

// aggViews are the repo's views, in file order.
var aggViews = []*aggViewSpec{
	{name: "cont", start: math.MinInt64, features: []aggFeature{
		{input: "amount", fn: "count", window: aggW(aggH)},
		{input: "amount", fn: "sum", window: aggW(aggH)},
		{input: "amount", fn: "mean", window: aggW(90 * aggM)},
		{input: "qty", fn: "min", window: aggW(aggD)},
		{input: "qty", fn: "max", window: aggW(aggD)},
		{input: "amount", fn: "last", window: aggW(aggH)},
		{input: "category", fn: "last_n", n: 5, window: aggWO(aggH, 30*aggM)},
		{input: "qty", fn: "first_n", n: 3, window: aggW(aggH)},
		{input: "category", fn: "last_distinct_n", n: 4, window: aggW(3 * aggD)},
		{input: "category", fn: "first_distinct_n", n: 4, window: aggW(aggD)},
		{input: "amount", fn: "var_samp", window: aggW(aggD)},
		{input: "amount", fn: "stddev_samp", window: aggW(3 * aggD)},
		{input: "amount", fn: "var_pop", window: aggW(90 * aggM)},
		{input: "amount", fn: "stddev_pop", window: aggW(aggD)},
		{input: "category", fn: "approx_count_distinct", window: aggW(aggD)},
		{input: "amount", fn: "approx_percentile", q: 0.5, window: aggW(aggD)},
		{input: "qty", fn: "sum", window: aggW(3 * aggD)},
		{input: "category", fn: "count", window: aggLifetime},
		{input: "amount", fn: "max", window: aggWO(aggD, aggH)},
		{input: "qty", fn: "approx_count_distinct", prec: 12, window: aggW(3 * aggD)},
		{input: "amount", fn: "count", window: aggWO(90*aggM, 30*aggM)},
		{input: "amount", fn: "min", window: aggLifetime, name: "amount_min_ever"},
		{input: "amount", fn: "last_n", n: 3, window: aggW(aggD)},
		// Int32 and Float32 inputs: sum, min, max, last and the n
		// functions keep the input type.
		{input: "small", fn: "sum", window: aggW(aggD)},
		{input: "small", fn: "max", window: aggW(aggH)},
		{input: "small", fn: "last_distinct_n", n: 3, window: aggW(3 * aggD)},
		{input: "small", fn: "approx_percentile", q: 0.5, window: aggW(aggD)},
		{input: "small", fn: "mean", window: aggW(90 * aggM)},
		{input: "ratio", fn: "min", window: aggW(aggD)},
		{input: "ratio", fn: "sum", window: aggW(90 * aggM)},
		{input: "ratio", fn: "last_n", n: 2, window: aggW(aggH)},
		{input: "ratio", fn: "mean", window: aggW(aggD)},
		{input: "ratio", fn: "last", window: aggWO(aggH, 30*aggM)},
		{input: "ratio", fn: "var_samp", window: aggW(3 * aggD)},
	}},
	{name: "tiles_10m", interval: 10 * aggM, start: aggStart.UnixNano(), features: []aggFeature{
		{input: "amount", fn: "count", window: aggW(aggH)},
		{input: "qty", fn: "sum", window: aggW(90 * aggM)},
		{input: "amount", fn: "sum", window: aggW(aggD)},
		{input: "amount", fn: "min", window: aggW(aggH)},
		{input: "amount", fn: "max", window: aggW(90 * aggM)},
		{input: "amount", fn: "mean", window: aggW(aggD)},
		{input: "category", fn: "last", window: aggW(aggH)},
		{input: "qty", fn: "last_n", n: 4, window: aggWO(aggH, 30*aggM)},
		{input: "amount", fn: "first_n", n: 3, window: aggW(aggD)},
		{input: "qty", fn: "last_distinct_n", n: 5, window: aggW(aggD)},
		{input: "category", fn: "first_distinct_n", n: 3, window: aggW(90 * aggM)},
		{input: "amount", fn: "var_samp", window: aggW(90 * aggM)},
		{input: "qty", fn: "stddev_samp", window: aggW(aggD)},
		{input: "amount", fn: "var_pop", window: aggW(aggD)},
		{input: "amount", fn: "stddev_pop", window: aggWO(aggH, 30*aggM)},
		{input: "category", fn: "approx_count_distinct", window: aggW(aggD)},
		{input: "amount", fn: "approx_percentile", q: 0.9, window: aggW(90 * aggM)},
		{input: "amount", fn: "approx_percentile", q: 0.99, window: aggW(aggD)},
		{input: "qty", fn: "approx_percentile", q: 0, window: aggW(3 * aggD)},
		{input: "qty", fn: "count", window: aggLifetime},
		{input: "amount", fn: "sum", window: aggLifetime},
		{input: "amount", fn: "last", window: aggLifetime},
		{input: "category", fn: "approx_count_distinct", prec: 6, window: aggW(3 * aggD)},
		{input: "small", fn: "sum", window: aggW(aggH)},
		{input: "ratio", fn: "max", window: aggW(aggD)},
		{input: "small", fn: "first_n", n: 2, window: aggW(90 * aggM)},
	}},
	{name: "tiles_1h", interval: aggH, start: math.MinInt64, ttl: 3 * aggD, transform: aggTxTransform, features: []aggFeature{
		{input: "qty3", fn: "sum", window: aggW(aggH)},
		{input: "qty3", fn: "count", window: aggW(aggD)},
		{input: "amount", fn: "mean", window: aggW(3 * aggD)},
		{input: "qty3", fn: "min", window: aggWO(aggD, aggH)},
		{input: "qty3", fn: "max", window: aggW(3 * aggD)},
		{input: "amount", fn: "last", window: aggW(aggD)},
		{input: "category", fn: "last_n", n: 3, window: aggW(aggH)},
		{input: "category", fn: "first_n", n: 2, window: aggW(3 * aggD)},
		{input: "big", fn: "last_distinct_n", n: 2, window: aggW(aggD)},
		{input: "amount", fn: "first_distinct_n", n: 3, window: aggW(3 * aggD)},
		{input: "qty3", fn: "var_samp", window: aggW(aggD)},
		{input: "amount", fn: "stddev_samp", window: aggW(aggH)},
		{input: "qty3", fn: "var_pop", window: aggW(3 * aggD)},
		{input: "amount", fn: "stddev_pop", window: aggW(aggD)},
		{input: "qty3", fn: "approx_count_distinct", window: aggW(3 * aggD)},
		{input: "qty3", fn: "approx_percentile", q: 0.25, window: aggW(aggD)},
		{input: "big", fn: "count", window: aggW(aggH)},
		{input: "big", fn: "last", window: aggW(3 * aggD)},
		{input: "amount", fn: "approx_percentile", q: 1, window: aggW(3 * aggD)},
		{input: "qty3", fn: "approx_count_distinct", prec: 16, window: aggW(aggD), name: "qty3_distinct_p16"},
	}},
}

// aggKinds are the columns' kinds (source, then tiles_1h's transform).
var aggKinds = map[string]schema.Kind{"amount": schema.Float64, "qty": schema.Int64, "category": schema.String,
	"small": schema.Int32, "ratio": schema.Float32, "qty3": schema.Int64, "big": schema.Bool}

// aggResultKind is the kind SPEC §3 gives a function's result.
func aggResultKind(f aggFeature) schema.Kind {
	switch f.fn {
	case "count", "approx_count_distinct":
		return schema.Int64
	case "mean", "var_samp", "stddev_samp", "var_pop", "stddev_pop", "approx_percentile":
		return schema.Float64
	case "last_n", "first_n", "last_distinct_n", "first_distinct_n":
		return schema.Array
	}
	return aggKinds[f.input]
}

// aggDur spells a duration in its largest whole unit, as the repo does.
func aggDur(d time.Duration) string {
	switch {
	case d%aggD == 0:
		return fmt.Sprintf("%dd", d/aggD)
	case d%aggH == 0:
		return fmt.Sprintf("%dh", d/aggH)
	case d%aggM == 0:
		return fmt.Sprintf("%dm", d/aggM)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// aggDefaultName is SPEC §1's default feature name.
func aggDefaultName(f aggFeature, interval time.Duration) string {
	fn := f.fn
	switch f.fn {
	case "last_n", "first_n", "last_distinct_n", "first_distinct_n":
		fn = strings.TrimSuffix(f.fn, "n") + fmt.Sprint(f.n)
	case "approx_percentile":
		fn = "approx_percentile_p" + strings.ReplaceAll(fmt.Sprint(math.Round(f.q*1e8)/1e6), ".", "_")
	}
	w := "lifetime"
	if !f.window.lifetime {
		w = aggDur(f.window.size)
	}
	if f.window.offset > 0 {
		w += "_offset_" + aggDur(f.window.offset)
	}
	iv := "continuous"
	if interval > 0 {
		iv = aggDur(interval)
	}
	return f.input + "_" + fn + "_" + w + "_" + iv
}

// aggFeatureName is the served name within its view.
func aggFeatureName(v *aggViewSpec, f aggFeature) string {
	if f.name != "" {
		return f.name
	}
	return aggDefaultName(f, v.interval)
}

// aggRepo renders the repo file from aggViews.
func aggRepo() string {
	var b strings.Builder
	b.WriteString(`workspace: aggdiff
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: tx
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Float64}
      - {name: qty, type: Int64}
      - {name: category, type: String}
      - {name: small, type: Int32}
      - {name: ratio, type: Float32}
feature_views:
`)
	for _, v := range aggViews {
		fmt.Fprintf(&b, "  - name: %s\n    source: tx\n    entities: [user]\n    timestamp_field: ts\n", v.name)
		if v.interval > 0 {
			fmt.Fprintf(&b, "    aggregation_interval: %s\n", aggDur(v.interval))
		}
		if v.start != math.MinInt64 {
			fmt.Fprintf(&b, "    feature_start_time: %s\n", aggTime(v.start))
		}
		if v.transform != nil {
			b.WriteString("    transform:\n      columns:\n        qty3: \"qty * 3\"\n        big: \"amount > 50.0\"\n      filter: \"qty >= -2\"\n")
		}
		b.WriteString("    features:\n")
		for _, f := range v.features {
			w := aggDur(f.window.size)
			switch {
			case f.window.lifetime:
				w = "lifetime"
			case f.window.offset > 0:
				w = fmt.Sprintf("{size: %s, offset: %s}", aggDur(f.window.size), aggDur(f.window.offset))
			}
			fmt.Fprintf(&b, "      - aggregate: {input: %s, function: %s, window: %s", f.input, f.fn, w)
			if f.n > 0 {
				fmt.Fprintf(&b, ", n: %d", f.n)
			}
			if f.fn == "approx_percentile" {
				fmt.Fprintf(&b, ", percentile: %v", f.q)
			}
			if f.prec > 0 {
				fmt.Fprintf(&b, ", precision: %d", f.prec)
			}
			if f.name != "" {
				fmt.Fprintf(&b, ", name: %s", f.name)
			}
			b.WriteString("}\n")
		}
	}
	b.WriteString("feature_services:\n  - name: agg_all\n    features: [")
	for i, v := range aggViews {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(v.name)
	}
	b.WriteString("]\n")
	for _, v := range aggViews {
		fmt.Fprintf(&b, "  - name: agg_%s\n    features: [%s]\n", v.name, v.name)
	}
	return b.String()
}

// aggSize is a workload's size.
type aggSize struct {
	requests int           // ingest requests of phase 1 (phase 2 adds a quarter)
	keys     int           // user ids
	span     time.Duration // how far the clock moves during phase 1
	reads    int           // read times per key in a full comparison
	every    int           // requests between live checkpoints
}

func TestAggDiff(t *testing.T) {
	seeds := []int64{1}
	size := aggSize{requests: 500, keys: 200, span: 40 * time.Hour, reads: 14, every: 25}
	if *diffLong {
		size = aggSize{requests: 2500, keys: 400, span: 4 * aggD, reads: 60, every: 20}
		seeds = nil
		for i := 0; i < 8; i++ {
			seeds = append(seeds, time.Now().UnixNano()+int64(i))
		}
	}
	if *diffSeed != 0 {
		seeds = []int64{*diffSeed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runAggDiff(t, seed, size)
		})
	}
}

// TestAggDefaultTTL checks the default serving TTL of aggregate views
// (DESIGN.md: the largest window plus its offset) at ingest, on a source
// with no lifetime window: a record is rejected when it is older than
// every view's TTL, and counted only by the views whose TTL it is within.
func TestAggDefaultTTL(t *testing.T) {
	repo := `workspace: aggttl
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: s
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: x, type: Int64}
feature_views:
  - name: wide
    source: s
    entities: [user]
    timestamp_field: ts
    aggregation_interval: 1h
    features:
      - aggregate: {input: x, function: count, window: {size: 1d, offset: 1h}}
      - aggregate: {input: x, function: sum, window: 3h}
  - name: narrow
    source: s
    entities: [user]
    timestamp_field: ts
    features:
      - aggregate: {input: x, function: count, window: 2h}
feature_services:
  - name: fs
    features: [wide, narrow]
`
	now := time.Date(2024, 5, 1, 12, 30, 0, 0, time.UTC)
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Now: func() time.Time { return now }, NoSync: true,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Apply("ttl.yaml", []byte(repo))
	require.NoError(t, err)
	ingest := func(ts time.Time) (*engine.IngestResponse, error) {
		return db.Ingest(&engine.IngestRequest{Workspace: "aggttl", Records: map[string][]map[string]any{
			"s": {{"user_id": "u", "ts": ts, "x": 1}}}})
	}
	// wide: TTL 25h (1d + 1h offset); narrow: 2h.
	_, err = ingest(now.Add(-25*time.Hour - 1))
	var re *engine.RecordErrors
	require.True(t, errors.As(err, &re), "a record older than every view's TTL was accepted (err %v)", err)
	resp, err := ingest(now.Add(-25 * time.Hour))
	require.NoError(t, err)
	require.Equal(t, []engine.ViewIngestMetrics{{FeatureView: "wide", Online: 1, Offline: 1}, {FeatureView: "narrow"}}, resp.Metrics)
	resp, err = ingest(now.Add(-2 * time.Hour))
	require.NoError(t, err)
	require.Equal(t, []engine.ViewIngestMetrics{{FeatureView: "wide", Online: 1, Offline: 1}, {FeatureView: "narrow", Online: 1, Offline: 1}}, resp.Metrics)

	vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "aggttl", Service: "fs", JoinKeys: map[string]any{"user_id": "u"}})
	if engine.CodeOf(err) == engine.CodeUnimplemented {
		t.Fatalf("aggregate features not served yet: %v", err)
	}
	require.NoError(t, err)
	// As of 12:30: wide's tiles end at 12:00; its count window is
	// [11:00 the day before, 11:00) and holds 11:30 the day before and
	// 10:30; its sum window [09:00, 12:00) holds 10:30. narrow's window
	// [10:30, 12:30) holds 10:30.
	want := []schema.Value{schema.Int(2), schema.Int(1), schema.Int(1)}
	for i, f := range vec.Features {
		require.True(t, want[i].Equal(f.Value), "%s: got %s, want %s", f.Name, aggFmt(f.Value), aggFmt(want[i]))
	}
}

// aggRun is one seeded workload against one DB.
type aggRun struct {
	t     *testing.T
	seed  int64
	size  aggSize
	r     *rand.Rand // the test goroutine's; concurrent writers have their own generators
	dir   string
	now   atomic.Int64 // the fake clock, Unix ns
	db    *engine.DB
	model *aggModel
	stage string

	keys  []string
	zipf  *rand.Zipf
	gen   *aggGen      // the generator of the sequential phases
	gens  []*aggGen    // every generator, for the statistics
	reqNo atomic.Int64 // request numbers: log order within one writer

	// What the reads exercised, so that the test fails instead of passing
	// vacuously when the generator drifts.
	stats struct {
		reads, values, empty, crossTies int
		flushes, merges                 int
	}
	mismatches     []aggMismatch
	shrunk         map[string]bool // features already shrunk
	lastCheckpoint []aggRead
}

// aggGen draws requests over a set of keys. Each writer goroutine has its
// own.
type aggGen struct {
	r      *rand.Rand
	keys   []string
	zipf   *rand.Zipf
	cats   *rand.Zipf
	usedTs []int64
	recent []*aggEvent // accepted events, for duplicates
	// What the workload sent.
	stats struct {
		requests, events, rejected, dryRuns, dups, veryLate, ancient, boundary, future, nulls int
	}
}

func newAggGen(seed int64, keys []string) *aggGen {
	r := rand.New(rand.NewSource(seed))
	return &aggGen{r: r, keys: keys, zipf: rand.NewZipf(r, 1.1, 1, uint64(len(keys)-1)), cats: rand.NewZipf(r, 1.3, 1, 59)}
}

// aggMismatch is one feature value the engine got wrong.
type aggMismatch struct {
	stage, view, feature, key string
	t                         int64
	detail                    string
}

func (d *aggRun) clock() time.Time { return time.Unix(0, d.now.Load()).UTC() }

func (d *aggRun) open() {
	db, err := engine.Open(engine.Options{Dir: d.dir, Now: d.clock, NoSync: true, SegmentSize: 64 << 10,
		Logger: slog.New(slog.DiscardHandler), DisableAutoFlush: true, CompactionFanIn: 2})
	require.NoError(d.t, err, "seed %d", d.seed)
	d.db = db
}

// maintain flushes the memtables to segments and merges segments at
// random moments of the workload, so reads merge memtables with segments
// of every level, and reopens start from a checkpoint.
func (d *aggRun) maintain() {
	switch n := d.r.Intn(40); {
	case n < 3:
		require.NoError(d.t, d.db.Flush(), "seed %d", d.seed)
		d.stats.flushes++
	case n == 3:
		require.NoError(d.t, d.db.Compact(), "seed %d", d.seed)
		d.stats.merges++
	case n == 4:
		require.NoError(d.t, d.db.CompactAll(), "seed %d", d.seed)
		d.stats.merges++
	}
}

func runAggDiff(t *testing.T, seed int64, size aggSize) {
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	start := time.Now()
	r := rand.New(rand.NewSource(seed))
	d := &aggRun{t: t, seed: seed, size: size, r: r, dir: t.TempDir(), model: newAggModel(), shrunk: map[string]bool{}}
	d.now.Store(aggBase.Add(8 * time.Hour).UnixNano())
	for i := 0; i < size.keys; i++ {
		d.keys = append(d.keys, fmt.Sprintf("u%03d", i))
	}
	d.zipf = rand.NewZipf(r, 1.1, 1, uint64(size.keys-1))
	d.gen = newAggGen(r.Int63(), d.keys)
	d.gens = []*aggGen{d.gen}
	d.open()
	defer func() { d.db.Close() }()
	_, err := d.db.Apply("agg.yaml", []byte(aggRepo()))
	require.NoError(t, err, "the repo:\n%s", aggRepo())
	d.checkNames()

	// Phase 1: the workload, with live checkpoints.
	step := int64(size.span) / int64(size.requests)
	d.sequentialPhase("phase 1", size.requests, step)
	reads := d.readPlan()
	d.compareAll("after phase 1", reads)
	require.NoError(t, d.db.Close())
	d.open()
	d.compareAll("after reopen (replay)", reads)

	// Phase 2: more events on the reopened DB, late ones landing in tiles
	// rebuilt by the replay.
	d.sequentialPhase("phase 2", size.requests/4, step)
	d.compareAll("after phase 2", d.readPlan())

	// Phase 3: concurrent writers over disjoint keys, and readers, the
	// clock still; then everything is compared, live and after a reopen.
	d.concurrentPhase("phase 3", size.requests/4)
	d.now.Add(step)
	reads = d.readPlan()
	d.compareAll("after phase 3 (concurrent)", reads)
	require.NoError(t, d.db.Close())
	d.open()
	d.compareAll("after phase 3 and a reopen", reads)

	var g aggGen
	for _, x := range d.gens {
		s := x.stats
		g.stats.requests += s.requests
		g.stats.events += s.events
		g.stats.rejected += s.rejected
		g.stats.dryRuns += s.dryRuns
		g.stats.dups += s.dups
		g.stats.veryLate += s.veryLate
		g.stats.ancient += s.ancient
		g.stats.boundary += s.boundary
		g.stats.future += s.future
		g.stats.nulls += s.nulls
	}
	gs, s := g.stats, d.stats
	t.Logf("seed %d: %d requests, %d events (%d duplicates, %d very late, %d around 1970, %d on tile boundaries, %d ahead of the clock, %d null or absent columns), %d rejected requests, %d dry runs",
		seed, gs.requests, gs.events, gs.dups, gs.veryLate, gs.ancient, gs.boundary, gs.future, gs.nulls, gs.rejected, gs.dryRuns)
	t.Logf("seed %d: %d reads, %d feature values compared (%d of empty windows, %d 'last' reads with a tie across requests), %d flushes, %d merges in %v",
		seed, s.reads, s.values, s.empty, s.crossTies, s.flushes, s.merges, time.Since(start).Round(time.Millisecond))
	d.report()
	require.Positive(t, gs.rejected, "the workload never sent a request beyond the clock skew")
	require.Positive(t, gs.dups, "the workload never sent a duplicate")
	require.Positive(t, gs.veryLate, "the workload never sent an event older than tiles_1h's TTL")
	require.Positive(t, gs.ancient, "the workload never sent an event around 1970")
	require.Positive(t, s.crossTies, "the workload never read a tie across requests")
	require.Positive(t, s.empty, "the workload never read an empty window")
	require.Positive(t, s.flushes, "the workload never flushed memtables to segments")
	require.Positive(t, s.merges, "the workload never merged segments")
}

// sequentialPhase sends requests from the test goroutine, the clock moving
// on after each, with a live checkpoint every size.every requests.
func (d *aggRun) sequentialPhase(stage string, requests int, step int64) {
	d.stage = stage
	for i := 0; i < requests; i++ {
		evs, err := d.request(d.gen)
		require.NoError(d.t, err)
		d.model.add(evs...)
		d.tick(step)
		d.maintain()
		if i%d.size.every == d.size.every-1 {
			d.checkpoint()
		}
	}
}

// aggWriters and aggReaders are the goroutines of the concurrent phase.
const (
	aggWriters = 4
	aggReaders = 2
)

// concurrentPhase sends requests from aggWriters goroutines, each over
// its own keys, while aggReaders goroutines read (their answers are only
// checked for shape: what they must see depends on the interleaving). The
// clock stands still. Each writer's accepted events go to the model in
// its order; request numbers grow within a writer, which is all the log
// order the model needs, as writers share no key.
func (d *aggRun) concurrentPhase(stage string, requests int) {
	d.stage = stage
	accepted := make([][]*aggEvent, aggWriters)
	errs := make([]error, aggWriters+aggReaders+1)
	var writing sync.WaitGroup
	for w := 0; w < aggWriters; w++ {
		var keys []string
		for i, k := range d.keys {
			if i%aggWriters == w {
				keys = append(keys, k)
			}
		}
		g := newAggGen(d.r.Int63(), keys)
		// Duplicates and ties draw on the writer's own keys' history.
		for _, e := range d.gen.recent {
			if d.keyWriter(e.key) == w {
				g.recent = append(g.recent, e)
				g.usedTs = append(g.usedTs, e.ts)
			}
		}
		d.gens = append(d.gens, g)
		writing.Add(1)
		go func(w int) {
			defer writing.Done()
			for i := 0; i < requests/aggWriters && errs[w] == nil; i++ {
				evs, err := d.request(g)
				accepted[w] = append(accepted[w], evs...)
				errs[w] = err
			}
		}(w)
	}
	done := make(chan struct{})
	var reading sync.WaitGroup
	reading.Add(1)
	go func() { // flushes and merges race with the writers and readers
		defer reading.Done()
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
				errs[aggWriters+aggReaders] = fmt.Errorf("concurrent flush: %w", err)
				return
			}
		}
	}()
	for rd := 0; rd < aggReaders; rd++ {
		r := rand.New(rand.NewSource(d.r.Int63()))
		reading.Add(1)
		go func(i int) {
			defer reading.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				now := d.now.Load()
				req := &engine.GetFeaturesRequest{Workspace: "aggdiff", Service: "agg_all",
					JoinKeys: map[string]any{"user_id": d.keys[r.Intn(len(d.keys))]}}
				if r.Intn(2) == 0 {
					req.AsOf = time.Unix(0, now-r.Int63n(int64(2*aggD))).UTC()
				}
				vec, err := d.db.GetFeatures(req)
				if err == nil && len(vec.Features) != len(aggServedNames) {
					err = fmt.Errorf("%d features served, want %d", len(vec.Features), len(aggServedNames))
				}
				if err != nil {
					errs[aggWriters+i] = fmt.Errorf("concurrent reader: %w", err)
					return
				}
			}
		}(rd)
	}
	writing.Wait()
	close(done)
	reading.Wait()
	for _, err := range errs {
		require.NoError(d.t, err)
	}
	for w := range accepted {
		d.model.add(accepted[w]...)
		d.gen.recent = append(d.gen.recent, accepted[w]...)
	}
}

// keyWriter is the writer of the concurrent phase that owns key.
func (d *aggRun) keyWriter(key string) int {
	for i, k := range d.keys {
		if k == key {
			return i % aggWriters
		}
	}
	return -1
}

// checkNames checks that the service serves the features in file order
// with SPEC §1's default names and §3's types.
func (d *aggRun) checkNames() {
	fs, err := d.db.ServiceFeatures("aggdiff", "agg_all")
	require.NoError(d.t, err)
	var got []string
	for _, f := range fs {
		got = append(got, f.Name)
	}
	require.Equal(d.t, aggServedNames, got)
	i := 0
	for _, v := range aggViews {
		for _, f := range v.features {
			typ := fs[i].Type
			require.Equal(d.t, aggResultKind(f), typ.Kind, fs[i].Name)
			if typ.Kind == schema.Array {
				require.Equal(d.t, aggKinds[f.input], typ.Elem, fs[i].Name)
			}
			i++
		}
	}
}

func (d *aggRun) tick(step int64) {
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

// event draws one record at now.
func (g *aggGen) event(now int64) *aggEvent {
	r := g.r
	if len(g.recent) > 0 && r.Intn(25) == 0 { // an exact duplicate of an accepted event
		src := g.recent[len(g.recent)-1-r.Intn(min(len(g.recent), 200))]
		g.stats.dups++
		return &aggEvent{key: src.key, ts: src.ts, cols: src.cols}
	}
	e := &aggEvent{key: g.keys[g.zipf.Uint64()], cols: map[string]schema.Value{}}
	switch k := r.Intn(20); {
	case k < 12:
		// +0 turns a -0 into 0: whether -0 and 0 are distinct values is
		// not this test's question.
		e.cols["amount"] = schema.Float(math.Round((50+30*r.NormFloat64())*100)/100 + 0)
	case k < 15:
		e.cols["amount"] = schema.Float(float64(r.Intn(101)))
	case k < 16:
		e.cols["amount"] = schema.Float(1e6 + math.Round(r.Float64()*1000)/1000) // variance small next to the mean
	case k < 18:
		e.cols["amount"] = schema.Value{}
	}
	switch k := r.Intn(20); {
	case k < 14:
		e.cols["qty"] = schema.Int(int64(r.Intn(26) - 5))
	case k < 16:
		e.cols["qty"] = schema.Int(int64(r.Intn(2000)))
	case k < 18:
		e.cols["qty"] = schema.Value{}
	}
	switch k := r.Intn(20); {
	case k < 15:
		e.cols["category"] = schema.Str(fmt.Sprintf("c%d", g.cats.Uint64()))
	case k < 17:
		e.cols["category"] = schema.Str(fmt.Sprintf("x%d", r.Intn(5000)))
	case k < 19:
		e.cols["category"] = schema.Value{}
	}
	switch k := r.Intn(10); {
	case k < 7:
		e.cols["small"] = schema.Int32Val(int32(r.Intn(2001) - 1000))
	case k < 8:
		e.cols["small"] = schema.Value{}
	}
	switch k := r.Intn(10); {
	case k < 7:
		e.cols["ratio"] = schema.Float32Val(float32(math.Round(r.Float64()*1000)/100 + 0))
	case k < 8:
		e.cols["ratio"] = schema.Value{}
	}
	for _, c := range []string{"amount", "qty", "category", "small", "ratio"} {
		if e.cols[c].IsNull() {
			g.stats.nulls++
		}
	}
	tile := []int64{int64(aggM), int64(10 * aggM), int64(aggH), int64(aggD)}
	switch k := r.Intn(200); {
	case k < 30 && len(g.usedTs) > 0: // an event time seen before: ties
		e.ts = g.usedTs[len(g.usedTs)-1-r.Intn(min(len(g.usedTs), 60))]
	case k < 50: // late, up to a day
		e.ts = now - r.Int63n(int64(aggD))
	case k < 56: // late, up to two days
		e.ts = now - r.Int63n(int64(2*aggD))
	case k < 60: // very late: older than tiles_1h's TTL (3d)
		e.ts = now - int64(3*aggD) - 1 - r.Int63n(int64(12*aggH))
		g.stats.veryLate++
	case k < 76: // on a tile boundary, or 1ns off
		t := tile[r.Intn(len(tile))]
		b := now - r.Int63n(int64(3*aggH))
		e.ts = b - b%t + []int64{0, 0, 1, -1}[r.Intn(4)]
		g.stats.boundary++
	case k < 84: // ahead of the clock, within the skew
		e.ts = now + r.Int63n(int64(aggSkew)+1)
		if r.Intn(4) == 0 {
			e.ts = now + int64(aggSkew)
		}
		g.stats.future++
	case k < 88: // around tiles_10m's feature_start_time
		e.ts = aggStart.UnixNano() + []int64{-1, 0, 1, -int64(aggM), int64(aggM)}[r.Intn(5)]
		if e.ts > now+int64(aggSkew) {
			e.ts = now
		}
	case k < 89: // around the Unix epoch: tiles of negative times
		t := tile[r.Intn(len(tile))]
		e.ts = (r.Int63n(5)-3)*t + []int64{0, 1, -1, r.Int63n(t)}[r.Intn(4)]
		g.stats.ancient++
	default: // recent, at nanosecond or second resolution
		e.ts = now - r.Int63n(int64(20*aggM))
		if r.Intn(2) == 0 {
			e.ts -= e.ts % int64(time.Second)
		}
	}
	g.usedTs = append(g.usedTs, e.ts)
	return e
}

// aggValid is the model's ingest rule (SPEC §2): a record is rejected when
// it lies more than the clock skew in the future, or is older than the
// serving TTL of every view (never here: cont has no TTL).
func aggValid(e *aggEvent, now int64) bool {
	if e.ts > now+int64(aggSkew) {
		return false
	}
	for _, v := range aggViews {
		if v.ttl == 0 || e.ts >= now-int64(v.ttl) {
			return true
		}
	}
	return false
}

// request sends one random request drawn by g and returns the events it
// wrote (none for a rejected request or a dry run), or an error when the
// engine's answer is not the model's. It is safe for concurrent use with
// distinct generators.
func (d *aggRun) request(g *aggGen) ([]*aggEvent, error) {
	r := g.r
	reqNo := int(d.reqNo.Add(1))
	g.stats.requests++
	now := d.now.Load()
	n := 1 + r.Intn(12)
	var evs []*aggEvent
	var bad []int
	for i := 0; i < n; i++ {
		var e *aggEvent
		if i > 0 && r.Intn(30) == 0 { // a duplicate within the request
			src := evs[r.Intn(i)]
			e = &aggEvent{key: src.key, ts: src.ts, cols: src.cols}
			g.stats.dups++
		} else {
			e = g.event(now)
		}
		if r.Intn(300) == 0 { // beyond the clock skew: the request is rejected
			e = &aggEvent{key: e.key, ts: now + int64(aggSkew) + 1 + r.Int63n(int64(aggH)), cols: e.cols}
		}
		e.req, e.idx, e.now = reqNo, i, now
		if !aggValid(e, now) {
			bad = append(bad, i)
		}
		evs = append(evs, e)
	}
	dryRun := r.Intn(25) == 0
	useJSON := r.Intn(2) == 0
	resp, err := aggSend(d.db, evs, dryRun, useJSON)
	where := fmt.Sprintf("seed %d %s request %d (json=%v dry_run=%v, clock %s)", d.seed, d.stage, reqNo, useJSON, dryRun, aggTime(now))
	if len(bad) > 0 {
		g.stats.rejected++
		var re *engine.RecordErrors
		if !errors.As(err, &re) {
			return nil, fmt.Errorf("%s: records %v lie beyond the clock skew, but the request was accepted (err %v)", where, bad, err)
		}
		var got []int
		for _, e := range re.Errors {
			got = append(got, e.Index)
		}
		if !slices.Equal(bad, got) {
			return nil, fmt.Errorf("%s: the record errors list records %v, want exactly the bad ones %v", where, got, bad)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err := aggCheckMetrics(resp, evs, now); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if dryRun {
		g.stats.dryRuns++
		return nil, nil
	}
	g.recent = append(g.recent, evs...)
	g.stats.events += len(evs)
	return evs, nil
}

// aggCheckMetrics compares a response's per-view counts with the model's:
// records the view sees (feature_start_time, filter) within its TTL.
func aggCheckMetrics(resp *engine.IngestResponse, evs []*aggEvent, now int64) error {
	var want, got []string
	for _, v := range aggViews {
		n := 0
		for _, e := range evs {
			if _, ok := v.row(e); ok && (v.ttl == 0 || e.ts >= now-int64(v.ttl)) {
				n++
			}
		}
		want = append(want, fmt.Sprintf("%s online=%d offline=%d", v.name, n, n))
	}
	for _, m := range resp.Metrics {
		got = append(got, fmt.Sprintf("%s online=%d offline=%d", m.FeatureView, m.Online, m.Offline))
	}
	if !slices.Equal(want, got) {
		return fmt.Errorf("ingest metrics: got %v, want %v", got, want)
	}
	return nil
}

// aggRecord renders an event as an ingest record: absent columns are left
// out, null ones sent as null.
func aggRecord(e *aggEvent, ts any) map[string]any {
	rec := map[string]any{"user_id": e.key, "ts": ts}
	for c, v := range e.cols {
		rec[c] = v.Any()
	}
	return rec
}

func aggSend(db *engine.DB, evs []*aggEvent, dryRun, useJSON bool) (*engine.IngestResponse, error) {
	if useJSON {
		var recs []any
		for _, e := range evs {
			recs = append(recs, map[string]any{"record": aggRecord(e, aggTime(e.ts))})
		}
		body, err := json.Marshal(map[string]any{"workspace_name": "aggdiff", "dry_run": dryRun,
			"records": map[string]any{"tx": recs}})
		if err != nil {
			panic(err)
		}
		return db.IngestJSON(body, nil)
	}
	req := &engine.IngestRequest{Workspace: "aggdiff", DryRun: dryRun, Records: map[string][]map[string]any{}}
	for _, e := range evs {
		req.Records["tx"] = append(req.Records["tx"], aggRecord(e, time.Unix(0, e.ts).UTC()))
	}
	return db.Ingest(req)
}

// aggRead is one read: a key at a time (zero: as of now, without as_of).
type aggRead struct {
	key string
	t   int64
	now bool // send no as_of
}

// checkpoint reads a few keys while the workload runs: at now, just
// before, at the current tile boundaries and at recent event times.
func (d *aggRun) checkpoint() {
	now := d.now.Load()
	var reads []aggRead
	keys := map[string]bool{}
	recent := d.gen.recent
	for i := 0; i < 3 && len(recent) > 0; i++ {
		keys[recent[len(recent)-1-d.r.Intn(min(len(recent), 50))].key] = true
	}
	keys[d.keys[d.zipf.Uint64()]] = true
	keys[d.keys[d.r.Intn(len(d.keys))]] = true
	for k := range keys {
		reads = append(reads, aggRead{key: k, t: now, now: true}, aggRead{key: k, t: now - 1})
		for _, g := range []int64{int64(aggM), int64(10 * aggM), int64(aggH)} {
			b := now - now%g
			reads = append(reads, aggRead{key: k, t: b}, aggRead{key: k, t: b - 1})
		}
		if evs := d.model.events[k]; len(evs) > 0 {
			e := evs[len(evs)-1]
			for _, dt := range []int64{0, 1} {
				if e.ts+dt <= now {
					reads = append(reads, aggRead{key: k, t: e.ts + dt})
				}
			}
		}
	}
	sort.Slice(reads, func(i, j int) bool {
		return reads[i].key < reads[j].key || reads[i].key == reads[j].key && reads[i].t < reads[j].t
	})
	for _, rd := range reads {
		d.read(d.stage+" checkpoint", rd)
	}
	// Read the previous checkpoint's keys and times again: late events
	// since then must show in windows (and cached tile ranges) read before.
	for _, rd := range d.lastCheckpoint {
		rd.now = false
		d.read(d.stage+" checkpoint, re-read", rd)
	}
	d.lastCheckpoint = reads
}

// readPlan chooses, for every key (and one never seen), the read times of a
// full comparison: before anything, now, and a random selection among the
// interesting times of a few of its events.
func (d *aggRun) readPlan() []aggRead {
	now := d.now.Load()
	var out []aggRead
	spans := []time.Duration{30 * aggM, aggH, 90 * aggM, 2 * aggH, aggD, aggD + aggH, 3 * aggD}
	grids := []int64{int64(aggM), int64(10 * aggM), int64(aggH), int64(aggD)}
	for _, k := range append(append([]string(nil), d.keys...), "never_seen") {
		evs := d.model.events[k]
		set := map[int64]bool{aggBase.UnixNano() - int64(10*aggD): true}
		var cands []int64
		add := func(t int64) {
			if t <= now {
				cands = append(cands, t)
			}
		}
		for i := 0; i < 4 && len(evs) > 0; i++ {
			e := evs[d.r.Intn(len(evs))]
			if i == 0 {
				set[e.ts-1] = true // before (at least) one event
			}
			for _, dt := range []int64{0, 1, -1} {
				add(e.ts + dt)
				for _, s := range spans {
					add(e.ts + int64(s) + dt)
				}
				for _, g := range grids {
					add(ceilTo(e.ts, g) + dt)
					s := int64(spans[d.r.Intn(len(spans))])
					add(ceilTo(e.ts+s, g) + dt)
				}
			}
		}
		if len(evs) > 0 {
			first := evs[0].ts
			for _, e := range evs {
				first = min(first, e.ts)
			}
			set[first-1] = true
			set[first] = true
			set[first+1] = true
		}
		for len(set) < d.size.reads && len(cands) > 0 {
			i := d.r.Intn(len(cands))
			set[cands[i]] = true
			cands[i] = cands[len(cands)-1]
			cands = cands[:len(cands)-1]
		}
		var ts []int64
		for t := range set {
			if t <= now {
				ts = append(ts, t)
			}
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		for _, t := range ts {
			out = append(out, aggRead{key: k, t: t})
		}
		out = append(out, aggRead{key: k, t: now, now: true}, aggRead{key: k, t: now})
	}
	return out
}

// ceilTo is the smallest multiple of g at or after t (negative t too).
func ceilTo(t, g int64) int64 {
	f := t - ((t%g)+g)%g
	if f == t {
		return t
	}
	return f + g
}

// compareAll runs a read plan, then one batch read of every key.
func (d *aggRun) compareAll(stage string, reads []aggRead) {
	start := time.Now()
	for _, rd := range reads {
		d.read(stage, rd)
	}
	now := d.now.Load()
	t := aggBase.UnixNano() + d.r.Int63n(now-aggBase.UnixNano())
	var jks []map[string]any
	for _, k := range d.keys {
		jks = append(jks, map[string]any{"user_id": k})
	}
	vecs, err := d.db.GetFeaturesBatch("aggdiff", "agg_all", jks, time.Unix(0, t))
	d.requireServed(err, stage+" (batch)")
	require.Len(d.t, vecs, len(d.keys))
	for i, k := range d.keys {
		d.match(stage+" (batch)", k, t, vecs[i].Features)
	}
	d.t.Logf("%s: %d reads in %v", stage, len(reads)+len(d.keys), time.Since(start).Round(time.Millisecond))
}

func (d *aggRun) requireServed(err error, where string) {
	if err != nil && engine.CodeOf(err) == engine.CodeUnimplemented {
		d.t.Fatalf("seed %d %s: aggregate features not served yet: %v", d.seed, where, err)
	}
	require.NoError(d.t, err, "seed %d %s", d.seed, where)
}

// read reads one key through agg_all, and now and then through the view's
// own service too, and compares with the model.
func (d *aggRun) read(stage string, rd aggRead) {
	req := &engine.GetFeaturesRequest{Workspace: "aggdiff", Service: "agg_all", JoinKeys: map[string]any{"user_id": rd.key}}
	if !rd.now {
		req.AsOf = time.Unix(0, rd.t).UTC()
	}
	vec, err := d.db.GetFeatures(req)
	d.requireServed(err, fmt.Sprintf("%s: key %s as of %s", stage, rd.key, aggTime(rd.t)))
	d.stats.reads++
	d.match(stage, rd.key, rd.t, vec.Features)
	if d.r.Intn(15) == 0 {
		i := 0
		for _, v := range aggViews {
			req.Service = "agg_" + v.name
			one, err := d.db.GetFeatures(req)
			require.NoError(d.t, err)
			for j, f := range one.Features {
				all := vec.Features[i+j]
				require.True(d.t, f.Name == all.Name && f.Value.Equal(all.Value) && f.EffectiveTime.Equal(all.EffectiveTime),
					"seed %d %s: key %s as of %s: service agg_%s serves %s = %s, agg_all %s", d.seed, stage, rd.key, aggTime(rd.t),
					v.name, f.Name, aggFmt(f.Value), aggFmt(all.Value))
			}
			i += len(v.features)
		}
	}
}

// match compares one served vector with the model.
func (d *aggRun) match(stage, key string, t int64, got []engine.FeatureValue) {
	if len(got) != len(aggServedNames) {
		d.t.Fatalf("seed %d %s: key %s as of %s: %d features served, want %d", d.seed, stage, key, aggTime(t), len(got), len(aggServedNames))
	}
	i := 0
	for _, v := range aggViews {
		for _, f := range v.features {
			fv := got[i]
			name := aggServedNames[i]
			i++
			if fv.Name != name {
				d.t.Fatalf("seed %d %s: feature %d is %q, want %q", d.seed, stage, i-1, fv.Name, name)
			}
			pts := d.model.points(v, f, key, t)
			want := aggCompute(f, aggKinds[f.input], pts)
			d.stats.values++
			if len(pts) == 0 {
				d.stats.empty++
			}
			if f.fn == "last" && aggCrossTie(pts) {
				d.stats.crossTies++
			}
			end := v.windowEnd(f, t)
			var why []string
			if fv.Status != engine.Present {
				why = append(why, fmt.Sprintf("status %s, want PRESENT", fv.Status))
			}
			if fv.EffectiveTime.UnixNano() != end || fv.EffectiveTime.IsZero() {
				why = append(why, fmt.Sprintf("effective time %s, want the window end %s", aggTime(fv.EffectiveTime.UnixNano()), aggTime(end)))
			}
			if ok, w := aggCheck(f, fv.Value, want, pts); !ok {
				why = append(why, w)
			}
			if len(why) > 0 {
				d.mismatch(stage, v, f, key, t, fv, want, pts, strings.Join(why, "; "))
			}
		}
	}
}

// aggServedNames are agg_all's feature names, in order.
var aggServedNames = func() []string {
	var out []string
	for _, v := range aggViews {
		for _, f := range v.features {
			out = append(out, v.name+"."+aggFeatureName(v, f))
		}
	}
	return out
}()

// aggCrossTie reports whether the latest point ties on event time with a
// point of another request.
func aggCrossTie(pts []aggPoint) bool {
	if len(pts) < 2 {
		return false
	}
	last := pts[len(pts)-1].ev
	for _, p := range pts[:len(pts)-1] {
		if p.ev.ts == last.ts && p.ev.req != last.req {
			return true
		}
	}
	return false
}

// aggMaxDetailed bounds the mismatches printed in full.
const aggMaxDetailed = 12

func (d *aggRun) mismatch(stage string, v *aggViewSpec, f aggFeature, key string, t int64, fv engine.FeatureValue, want schema.Value, pts []aggPoint, why string) {
	name := v.name + "." + aggFeatureName(v, f)
	m := aggMismatch{stage: stage, view: v.name, feature: name, key: key, t: t}
	lo, hi := v.window(f, t)
	var b strings.Builder
	fmt.Fprintf(&b, "MISMATCH seed %d, %s: %s, key %s, as of %s (%d ns)\n", d.seed, stage, name, key, aggTime(t), t)
	fmt.Fprintf(&b, "  got:  %s (%v), effective %s, status %s\n", aggFmt(fv.Value), fv.Value.Kind, aggTime(fv.EffectiveTime.UnixNano()), fv.Status)
	fmt.Fprintf(&b, "  want: %s (%v), effective %s\n", aggFmt(want), want.Kind, aggTime(v.windowEnd(f, t)))
	fmt.Fprintf(&b, "  why:  %s\n", why)
	fmt.Fprintf(&b, "  window [%s, %s); %d non-null input values in it, in latest order:\n", aggTime(lo), aggTime(hi), len(pts))
	for i, p := range pts {
		if len(pts) > 20 && i >= 15 && i < len(pts)-5 {
			if i == 15 {
				fmt.Fprintf(&b, "    ... %d more ...\n", len(pts)-20)
			}
			continue
		}
		fmt.Fprintf(&b, "    %s = %s   [%s]\n", f.input, aggFmt(p.val), p.ev)
	}
	// Events just outside the window: an edge off by a tile or a
	// nanosecond shows up here.
	g := int64(10 * aggM)
	if v.interval > 0 {
		g = int64(v.interval)
	}
	var near []string
	evs := append([]*aggEvent(nil), d.model.events[key]...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].logBefore(evs[j]) })
	for _, e := range evs {
		if (e.ts >= hi && e.ts < hi+g) || (!f.window.lifetime && e.ts < lo && e.ts >= lo-g) {
			row, ok := v.row(e)
			in := "dropped by the view"
			if ok {
				in = f.input + "=" + aggFmt(row[f.input])
			}
			near = append(near, fmt.Sprintf("    %s   [%s]", in, e))
		}
	}
	if len(near) > 0 {
		fmt.Fprintf(&b, "  events of the key within %s outside the window:\n%s\n", time.Duration(g), strings.Join(near, "\n"))
	}
	m.detail = b.String()
	d.mismatches = append(d.mismatches, m)
	if len(d.mismatches) <= aggMaxDetailed {
		d.t.Log(m.detail)
	}
	if !d.shrunk[name] && len(d.shrunk) < 6 {
		d.shrunk[name] = true
		d.t.Log(d.shrink(v, f, key, t))
	}
}

// report fails the test with a summary of the mismatches per feature.
func (d *aggRun) report() {
	if len(d.mismatches) == 0 {
		return
	}
	type agg struct {
		n      int
		stages map[string]int
		first  aggMismatch
	}
	by := map[string]*agg{}
	var names []string
	for _, m := range d.mismatches {
		a := by[m.feature]
		if a == nil {
			a = &agg{stages: map[string]int{}, first: m}
			by[m.feature] = a
			names = append(names, m.feature)
		}
		a.n++
		a.stages[m.stage]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d mismatched feature values in %d features (first %d printed in full above):\n", d.seed, len(d.mismatches), len(names), aggMaxDetailed)
	for _, n := range names {
		a := by[n]
		fmt.Fprintf(&b, "  %-60s %5d  first: key %s as of %s; by stage %v\n", n, a.n, a.first.key, aggTime(a.first.t), a.stages)
	}
	d.t.Error(b.String())
}

// ---------------------------------------------------------------------
// Shrinking: a minimal reproduction on a fresh DB.

// aggReproMode is how a reproduction replays the events.
type aggReproMode int

const (
	aggPlain       aggReproMode = iota // ingest, then read
	aggReopen                          // ingest, close and reopen, then read
	aggInterleaved                     // read as of t after every request once the clock allows, then read
)

func (m aggReproMode) String() string {
	return [...]string{"ingest then read", "ingest, close and reopen, then read", "ingest with a read as of t after every request"}[m]
}

// shrink looks for a small set of the key's events that still makes the
// engine's value of f as of t differ from the model's, ingested in their
// original requests at their original clock into a fresh DB, and returns
// it printed. It tries the plain replay first, then with a reopen before
// the read, then with reads interleaved (stale tiles).
func (d *aggRun) shrink(v *aggViewSpec, f aggFeature, key string, t int64) string {
	evs := append([]*aggEvent(nil), d.model.events[key]...)
	now := d.now.Load()
	name := v.name + "." + aggFeatureName(v, f)
	runs := 0
	mode := aggPlain
	fails := func(set []*aggEvent) bool {
		runs++
		bad, _ := d.tryRepro(v, f, key, t, now, set, mode)
		return bad
	}
	for !fails(evs) {
		if mode == aggInterleaved {
			return fmt.Sprintf("SHRINK %s key %s as of %s: the key's %d events alone on a fresh DB do not reproduce it in any mode; it needs other keys or the DB's history",
				name, key, aggTime(t), len(evs))
		}
		mode++
	}
	// Events at or after t cannot be in the window; try without them.
	var before []*aggEvent
	for _, e := range evs {
		if e.ts < t {
			before = append(before, e)
		}
	}
	if len(before) < len(evs) && fails(before) {
		evs = before
	}
	// ddmin-style: remove chunks while the failure persists.
	for chunk := len(evs) / 2; chunk >= 1 && runs < 400; {
		removed := false
		for i := 0; i+chunk <= len(evs) && runs < 400; {
			cand := append(append([]*aggEvent(nil), evs[:i]...), evs[i+chunk:]...)
			if len(cand) > 0 && fails(cand) {
				evs, removed = cand, true
				continue
			}
			i += chunk
		}
		if !removed {
			chunk /= 2
		}
	}
	_, detail := d.tryRepro(v, f, key, t, now, evs, mode)
	var b strings.Builder
	fmt.Fprintf(&b, "SHRINK %s: minimal reproduction (%d events, %d attempts; %s) on a fresh DB with the test's repo (aggRepo()):\n",
		name, len(evs), runs, mode)
	lastReq := -1
	for _, e := range evs {
		if e.req != lastReq {
			fmt.Fprintf(&b, "  clock %s, ingest request %d:\n", aggTime(e.now), e.req)
			lastReq = e.req
		}
		rec, _ := json.Marshal(aggRecord(e, aggTime(e.ts)))
		fmt.Fprintf(&b, "    %s\n", rec)
	}
	if mode == aggReopen {
		b.WriteString("  close and reopen the DB\n")
	}
	fmt.Fprintf(&b, "  clock %s, GetFeatures(agg_all, user_id=%s, as_of %s):\n%s", aggTime(now), key, aggTime(t), detail)
	return b.String()
}

// tryRepro ingests evs (grouped by their requests, each at its clock) into
// a fresh DB and reports whether f as of t mismatches the model.
func (d *aggRun) tryRepro(v *aggViewSpec, f aggFeature, key string, t, now int64, evs []*aggEvent, mode aggReproMode) (bool, string) {
	dir := d.t.TempDir()
	var clock atomic.Int64
	opts := engine.Options{Dir: dir, Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }, NoSync: true,
		Logger: slog.New(slog.DiscardHandler)}
	db, err := engine.Open(opts)
	require.NoError(d.t, err)
	defer func() { db.Close() }()
	_, err = db.Apply("agg.yaml", []byte(aggRepo()))
	require.NoError(d.t, err)
	m := newAggModel()
	for i := 0; i < len(evs); {
		j := i
		for j < len(evs) && evs[j].req == evs[i].req {
			j++
		}
		clock.Store(evs[i].now)
		_, err := aggSend(db, evs[i:j], false, false)
		require.NoError(d.t, err, "shrink: replaying request %d", evs[i].req)
		m.add(evs[i:j]...)
		i = j
		if mode == aggInterleaved && clock.Load() >= t {
			_, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "aggdiff", Service: "agg_all",
				JoinKeys: map[string]any{"user_id": key}, AsOf: time.Unix(0, t).UTC()})
			require.NoError(d.t, err)
		}
	}
	clock.Store(now)
	if mode == aggReopen {
		require.NoError(d.t, db.Close())
		db, err = engine.Open(opts)
		require.NoError(d.t, err)
	}
	vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "aggdiff", Service: "agg_all",
		JoinKeys: map[string]any{"user_id": key}, AsOf: time.Unix(0, t).UTC()})
	require.NoError(d.t, err)
	i := 0
	for _, w := range aggViews {
		for _, g := range w.features {
			if w == v && g.name == f.name && g.fn == f.fn && g.input == f.input && g.window == f.window && g.n == f.n && g.q == f.q {
				fv := vec.Features[i]
				pts := m.points(v, f, key, t)
				want := aggCompute(f, aggKinds[f.input], pts)
				ok, why := aggCheck(f, fv.Value, want, pts)
				if fv.EffectiveTime.UnixNano() != v.windowEnd(f, t) {
					ok, why = false, why+fmt.Sprintf(" effective time %s, want %s", aggTime(fv.EffectiveTime.UnixNano()), aggTime(v.windowEnd(f, t)))
				}
				if fv.Status != engine.Present {
					ok, why = false, why+" status "+string(fv.Status)
				}
				lo, hi := v.window(f, t)
				return !ok, fmt.Sprintf("    got %s, want %s (window [%s, %s)) %s\n", aggFmt(fv.Value), aggFmt(want), aggTime(lo), aggTime(hi), why)
			}
			i++
		}
	}
	panic("shrink: feature not found")
}
