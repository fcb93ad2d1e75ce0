package engine_test

// The fixed repos of the differential tests: the repos of the hand-written
// differential tests that the generated-repo tests replaced (issue 10),
// kept as cases of their own because they were tuned to corner cases: every
// function of SPEC §3 in each of a continuous and two interval views,
// HyperLogLog precisions 6 to 16, Int32 and Float32 inputs, a
// feature_start_time off the tile grid with nanoseconds, a transform with a
// filter that reads nulls, attribute views with TTLs and a start time, and
// an Int64 join key.

import (
	"math"
	"time"

	"github.com/featurelog/featurelog/schema"
)

// genFixedRepos are run by every differential test besides the seeds.
var genFixedRepos = []struct {
	name string
	repo func() *genRepo
}{
	{"fixed-agg", genFixedAggRepo},
	{"fixed-attr", genFixedAttrRepo},
	{"fixed-shared", genFixedSharedRepo},
}

func aggW(size time.Duration) aggWindow { return aggWindow{size: size} }
func aggWO(size, offset time.Duration) aggWindow {
	return aggWindow{size: size, offset: offset}
}

var aggLifetime = aggWindow{lifetime: true}

func genScalar(name string, k schema.Kind) genCol { return genCol{name, schema.ScalarType(k)} }

// genFixedAggRepo is the aggregate test's repo: views cont (continuous),
// tiles_10m (10m tiles, feature_start_time with nanoseconds, off the tile
// grid) and tiles_1h (1h tiles, a 3d TTL, a transform with an Int64 and a
// Bool column and a filter that drops nulls).
func genFixedAggRepo() *genRepo {
	user := &genEntity{name: "user", keys: []string{"user_id"}}
	tx := &genSource{name: "tx", keys: []string{"user_id"}, times: []string{"ts"}, cols: []genCol{
		genScalar("user_id", schema.String), genScalar("ts", schema.Timestamp), genScalar("amount", schema.Float64),
		genScalar("qty", schema.Int64), genScalar("category", schema.String), genScalar("small", schema.Int32),
		genScalar("ratio", schema.Float32)}}
	view := func(name string, interval time.Duration, start int64, aggs []aggFeature) *genView {
		return &genView{name: name, src: tx, entities: []*genEntity{user}, ts: "ts", interval: interval, start: start, offline: true, aggs: aggs}
	}
	cont := view("cont", 0, math.MinInt64, []aggFeature{
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
	})
	tiles10 := view("tiles_10m", 10*aggM, genBase.Add(20*time.Hour+5*time.Minute+7).UnixNano(), []aggFeature{
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
	})
	tiles1h := view("tiles_1h", aggH, math.MinInt64, []aggFeature{
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
	})
	cont.stream = genStreamFeatures
	tiles1h.ttl = 3 * aggD
	tiles1h.txCols = []genTxCol{
		{genScalar("qty3", schema.Int64), genUn("qty * 3", "qty", func(x schema.Value) schema.Value { return schema.Int(x.I * 3) })},
		{genScalar("big", schema.Bool), genUn("amount > 50.0", "amount", func(x schema.Value) schema.Value { return schema.BoolVal(x.F > 50) })},
	}
	tiles1h.filter = genUn("qty >= -2", "qty", func(x schema.Value) schema.Value { return schema.BoolVal(x.I >= -2) })
	g := &genRepo{name: "fixed-agg", ws: "aggdiff", entities: []*genEntity{user}, sources: []*genSource{tx},
		views: []*genView{cont, tiles10, tiles1h}}
	g.services = []*genService{{name: "agg_all", entries: []genEntry{{view: cont}, {view: tiles10}, {view: tiles1h}}}}
	for _, v := range g.views {
		g.services = append(g.services, &genService{name: "agg_" + v.name, entries: []genEntry{{view: v}}})
	}
	return g
}

// genFixedAttrRepo is the attribute test's repo: a String-keyed source
// with two attribute views (TTL 1h with a feature_start_time, TTL 3h),
// and an Int64-keyed source with a view that never expires.
func genFixedAttrRepo() *genRepo {
	user := &genEntity{name: "user", keys: []string{"user_id"}}
	account := &genEntity{name: "account", keys: []string{"account_id"}}
	events := &genSource{name: "events", keys: []string{"user_id"}, times: []string{"ts"}, cols: []genCol{
		genScalar("user_id", schema.String), genScalar("ts", schema.Timestamp), genScalar("value", schema.Int64), genScalar("label", schema.String)}}
	alt := &genSource{name: "alt_events", keys: []string{"account_id"}, times: []string{"event_time"}, cols: []genCol{
		genScalar("account_id", schema.Int64), genScalar("event_time", schema.Timestamp), genScalar("score", schema.Float64)}}
	latest := &genView{name: "latest_value", src: events, entities: []*genEntity{user}, ts: "ts", ttl: time.Hour,
		start: genBase.Add(9*time.Hour + 30*time.Minute).UnixNano(), offline: true, attrs: []string{"value", "label"}}
	value3h := &genView{name: "value_3h", src: events, entities: []*genEntity{user}, ts: "ts", ttl: 3 * time.Hour,
		start: math.MinInt64, offline: true, attrs: []string{"value"}}
	score := &genView{name: "alt_score", src: alt, entities: []*genEntity{account}, ts: "event_time",
		start: math.MinInt64, offline: true, attrs: []string{"score"}}
	latest.stream, score.stream = genStreamFeatures, genStreamKeys
	return &genRepo{name: "fixed-attr", ws: "diff", entities: []*genEntity{user, account}, sources: []*genSource{events, alt},
		views: []*genView{latest, value3h, score},
		services: []*genService{
			{name: "all_fs", entries: []genEntry{{view: latest}, {view: value3h}, {view: score}}},
			{name: "user_fs", entries: []genEntry{{view: latest}, {view: value3h}}},
			{name: "account_fs", entries: []genEntry{{view: score}}},
		}}
}

// genFixedSharedRepo is one source's views keyed alike, as ingest shares
// work between them (engine/refs.go): amounts, extremes (10m tiles),
// totals and last_amount (an attribute view) project every record alike
// and share its projection; mixed (another input), started (a
// feature_start_time) and doubled (a transform and a filter) do not, but
// their memtables share one key group with the others.
func genFixedSharedRepo() *genRepo {
	user := &genEntity{name: "user", keys: []string{"user_id"}}
	buys := &genSource{name: "buys", keys: []string{"user_id"}, times: []string{"ts"}, cols: []genCol{
		genScalar("user_id", schema.String), genScalar("ts", schema.Timestamp), genScalar("amount", schema.Float64),
		genScalar("qty", schema.Int64)}}
	view := func(name string, interval time.Duration, start int64, aggs []aggFeature) *genView {
		return &genView{name: name, src: buys, entities: []*genEntity{user}, ts: "ts", interval: interval, start: start, offline: true, aggs: aggs}
	}
	amounts := view("amounts", 0, math.MinInt64, []aggFeature{
		{input: "amount", fn: "count", window: aggW(aggH)}, {input: "amount", fn: "sum", window: aggW(aggH)},
		{input: "amount", fn: "mean", window: aggW(aggD)}, {input: "amount", fn: "sum", window: aggW(3 * aggD)}})
	extremes := view("extremes", 10*aggM, math.MinInt64, []aggFeature{
		{input: "amount", fn: "min", window: aggW(aggH)}, {input: "amount", fn: "max", window: aggW(aggD)}})
	totals := view("totals", 0, math.MinInt64, []aggFeature{
		{input: "amount", fn: "count", window: aggLifetime}, {input: "amount", fn: "var_samp", window: aggW(aggD)}})
	mixed := view("mixed", 0, math.MinInt64, []aggFeature{
		{input: "qty", fn: "sum", window: aggW(aggH)}, {input: "amount", fn: "last", window: aggW(aggD)}})
	started := view("started", 0, genBase.Add(10*time.Hour+7).UnixNano(), []aggFeature{
		{input: "amount", fn: "sum", window: aggW(aggD)}, {input: "amount", fn: "count", window: aggW(aggH)}})
	doubled := view("doubled", 0, math.MinInt64, []aggFeature{
		{input: "qty2", fn: "sum", window: aggW(aggH)}, {input: "amount", fn: "max", window: aggW(aggD)}})
	doubled.txCols = []genTxCol{
		{genScalar("qty2", schema.Int64), genUn("qty * 2", "qty", func(x schema.Value) schema.Value { return schema.Int(x.I * 2) })},
	}
	doubled.filter = genUn("qty >= -2", "qty", func(x schema.Value) schema.Value { return schema.BoolVal(x.I >= -2) })
	last := &genView{name: "last_amount", src: buys, entities: []*genEntity{user}, ts: "ts", ttl: 3 * time.Hour,
		start: math.MinInt64, offline: true, attrs: []string{"amount"}}
	g := &genRepo{name: "fixed-shared", ws: "shared", entities: []*genEntity{user}, sources: []*genSource{buys},
		views: []*genView{amounts, extremes, totals, mixed, started, doubled, last}}
	for _, v := range g.views {
		g.services = append(g.services, &genService{name: "shared_" + v.name, entries: []genEntry{{view: v}}})
	}
	return g
}
