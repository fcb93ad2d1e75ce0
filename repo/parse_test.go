package repo

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

var (
	tString    = schema.ScalarType(schema.String)
	tInt64     = schema.ScalarType(schema.Int64)
	tInt32     = schema.ScalarType(schema.Int32)
	tFloat64   = schema.ScalarType(schema.Float64)
	tFloat32   = schema.ScalarType(schema.Float32)
	tBool      = schema.ScalarType(schema.Bool)
	tTimestamp = schema.ScalarType(schema.Timestamp)
)

func col(name string, t schema.Type) schema.Column { return schema.Column{Name: name, Type: t} }

func parseFile(t *testing.T, path string) *Repo {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	r, err := Parse(path, data)
	require.NoError(t, err)
	return r
}

func TestParseAdsExample(t *testing.T) {
	r := parseFile(t, "../examples/ads/features.yaml")
	assert.Equal(t, "ads", r.Workspace)

	require.Len(t, r.Entities, 1)
	assert.Equal(t, []string{"user_id"}, r.Entities[0].JoinKeys)

	src := r.Source("impressions_event_source")
	require.NotNil(t, src)
	assert.True(t, src.LogOffline)
	assert.Nil(t, src.Batch)
	assert.Equal(t, []schema.Column{col("user_id", tString), col("timestamp", tTimestamp), col("clicked", tInt64)}, src.Schema)

	v := r.FeatureView("user_click_counts")
	require.NotNil(t, v)
	assert.True(t, v.Online)
	assert.True(t, v.Offline)
	assert.Equal(t, time.Date(2022, 10, 10, 0, 0, 0, 0, time.UTC), v.FeatureStartTime)
	assert.Equal(t, Day, v.BatchSchedule)
	assert.Equal(t, map[string]string{"team": "ads"}, v.Tags)
	assert.Equal(t, []schema.Column{col("user_id", tString)}, v.JoinKeys)
	require.NotNil(t, v.Transform)
	require.Len(t, v.Transform.Columns, 1)
	sq := v.Transform.Columns[0]
	assert.Equal(t, "clicked_squared", sq.Name)
	assert.Equal(t, tFloat64, sq.Type, "expr's ** always yields a float")
	assert.Equal(t, []string{"clicked"}, sq.Expr.Inputs)
	assert.Equal(t, []string{
		"clicked_count_1h_continuous", "clicked_count_12h_continuous",
		"clicked_count_1d_continuous", "clicked_squared_sum_1d_continuous",
	}, featureNames(v))
	assert.Equal(t, tFloat64, v.Feature("clicked_squared_sum_1d_continuous").Type)
	assert.Equal(t, 24*time.Hour, v.ServingTTL(), "default TTL is the largest window")

	attr := r.FeatureView("click_events_fv")
	require.NotNil(t, attr)
	assert.False(t, attr.Aggregate())
	assert.Equal(t, 7*Day, attr.TTL)
	assert.Equal(t, 7*Day, attr.ServingTTL())
	assert.Equal(t, time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC), attr.FeatureStartTime)

	svc := r.FeatureService("ad_ctr_feature_service")
	require.NotNil(t, svc)
	assert.True(t, svc.OnlineServingEnabled)
	assert.Equal(t, []ServiceFeature{{"click_events_fv", "clicked"}}, svc.Features)
	assert.Len(t, r.FeatureService("ad_ctr_feature_service_v2").Features, 5)
}

func TestParseFullSources(t *testing.T) {
	r := parseFile(t, "testdata/full.yaml")
	assert.Equal(t, "shop-prod", r.Workspace)
	orders := r.Source("orders")
	require.NotNil(t, orders)
	assert.False(t, orders.LogOffline)
	assert.Equal(t, &BatchConfig{URI: "s3://bucket/orders/*.parquet", Format: "parquet", TimestampField: "ts"}, orders.Batch)
	items, _ := orders.Column("items")
	assert.Equal(t, schema.ArrayOf(schema.String), items.Type)
	clicks := r.Source("clicks")
	assert.True(t, clicks.LogOffline, "log_offline defaults to true")
	assert.Equal(t, "jsonl", clicks.Batch.Format)

	merchant := r.Entity("merchant")
	assert.Equal(t, []string{"merchant_id", "region"}, merchant.JoinKeys)
	assert.Nil(t, r.Entity("nobody"))
}

func TestParseFullAggregateView(t *testing.T) {
	v := parseFile(t, "testdata/full.yaml").FeatureView("customer_orders")
	require.NotNil(t, v)
	assert.Equal(t, "ts", v.TimestampField, "the only Timestamp column is the default")
	assert.Equal(t, 10*time.Minute, v.AggregationInterval)
	assert.Equal(t, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), v.FeatureStartTime, "a bare date is midnight UTC")
	assert.Equal(t, 30*Day, v.TTL)
	assert.Equal(t, map[string]string{"team": "shop", "tier": "1"}, v.Tags)

	cases := []struct {
		name       string
		fn         string
		typ        schema.Type
		window     Window
		n          int
		percentile float64
		precision  int
	}{
		{"amt_count_1h_10m", "count", tInt64, Window{Size: time.Hour}, 0, 0, 0},
		{"amt_sum_1d_10m", "sum", tFloat64, Window{Size: Day}, 0, 0, 0},
		{"qty_min_1h_10m", "min", tInt32, Window{Size: time.Hour}, 0, 0, 0},
		{"discount_max_1h_10m", "max", tFloat32, Window{Size: time.Hour}, 0, 0, 0},
		{"amt_mean_3d_10m", "mean", tFloat64, Window{Size: 3 * Day}, 0, 0, 0},
		{"category_last_lifetime_10m", "last", tString, Window{Lifetime: true}, 0, 0, 0},
		{"category_last_10_1h_10m", "last_n", schema.ArrayOf(schema.String), Window{Size: time.Hour}, 10, 0, 0},
		{"total_first_5_1d_10m", "first_n", schema.ArrayOf(schema.Float64), Window{Size: Day}, 5, 0, 0},
		{"category_last_distinct_10_1h_offset_1h_10m", "last_distinct_n", schema.ArrayOf(schema.String), Window{Size: time.Hour, Offset: time.Hour}, 10, 0, 0},
		{"category_first_distinct_3_90m_10m", "first_distinct_n", schema.ArrayOf(schema.String), Window{Size: 90 * time.Minute}, 3, 0, 0},
		{"amt_var_samp_7d_10m", "var_samp", tFloat64, Window{Size: 7 * Day}, 0, 0, 0},
		{"amt_stddev_samp_7d_10m", "stddev_samp", tFloat64, Window{Size: 7 * Day}, 0, 0, 0},
		{"qty_var_pop_1h_10m", "var_pop", tFloat64, Window{Size: time.Hour}, 0, 0, 0},
		{"qty_stddev_pop_1h_10m", "stddev_pop", tFloat64, Window{Size: time.Hour}, 0, 0, 0},
		{"category_approx_count_distinct_1d_10m", "approx_count_distinct", tInt64, Window{Size: Day}, 0, 0, 8},
		{"amt_approx_percentile_p50_1d_10m", "approx_percentile", tFloat64, Window{Size: Day}, 0, 0.5, 200},
		{"lifetime_spend", "sum", tFloat64, Window{Lifetime: true}, 0, 0, 0},
		{"total_sum_lifetime_offset_1h_10m", "sum", tFloat64, Window{Lifetime: true, Offset: time.Hour}, 0, 0, 0},
		{"n_items_sum_1h_10m", "sum", tInt64, Window{Size: time.Hour}, 0, 0, 0},
		{"big_count_1h_10m", "count", tInt64, Window{Size: time.Hour}, 0, 0, 0},
	}
	require.Len(t, v.Features, len(cases))
	for i, c := range cases {
		f := v.Features[i]
		assert.Equal(t, c.name, f.Name)
		assert.Equal(t, AggregateFeature, f.Kind, c.name)
		assert.Equal(t, c.fn, f.Function, c.name)
		assert.Equal(t, c.typ, f.Type, c.name)
		assert.Equal(t, c.window, f.Window, c.name)
		assert.Equal(t, c.n, f.N, c.name)
		assert.Equal(t, c.percentile, f.Percentile, c.name)
		assert.Equal(t, c.precision, f.Precision, c.name)
	}
	assert.Zero(t, v.ServingTTL()-30*Day, "an explicit ttl wins")
}

func TestParseFullTransform(t *testing.T) {
	v := parseFile(t, "testdata/full.yaml").FeatureView("customer_orders")
	want := []struct {
		name   string
		typ    schema.Type
		inputs []string
	}{
		{"total", tFloat64, []string{"amt", "qty"}},
		{"big", tBool, []string{"total"}},
		{"n_items", tInt64, []string{"items"}},
		{"hour", tInt64, []string{"ts"}},
		{"first_item", tString, []string{"items"}},
		{"cheapest", tFloat64, []string{"prices"}},
		{"day", tTimestamp, []string{"ts"}},
	}
	require.Len(t, v.Transform.Columns, len(want))
	for i, w := range want {
		c := v.Transform.Columns[i]
		assert.Equal(t, w.name, c.Name)
		assert.Equal(t, w.typ, c.Type, w.name)
		assert.Equal(t, w.inputs, c.Expr.Inputs, w.name)
	}
	assert.Equal(t, "sum(prices)", v.Transform.Columns[5].Expr.Source, "block scalars are trimmed")
	require.NotNil(t, v.Transform.Filter)
	assert.Equal(t, []string{"amt", "category"}, v.Transform.Filter.Inputs)

	cols := v.Columns()
	assert.Len(t, cols, 11+7)
	assert.Equal(t, schema.Column{Name: "customer_id", Type: tString}, cols[0])
	assert.Equal(t, schema.Column{Name: "day", Type: tTimestamp}, cols[len(cols)-1])
}

func TestParseFullContinuousView(t *testing.T) {
	v := parseFile(t, "testdata/full.yaml").FeatureView("customer_clicks")
	assert.Equal(t, "event_time", v.TimestampField)
	assert.Zero(t, v.AggregationInterval)
	assert.Equal(t, &OutputStream{IncludeFeatures: true}, v.OutputStream)
	assert.Equal(t, map[string]string{"team": "shop", "tier": "1"}, v.Tags, "an alias reuses the anchored tags")
	assert.Equal(t, []string{
		"page_count_1h_continuous",
		"page_approx_count_distinct_lifetime_continuous",
		"latency_approx_percentile_p95_1h_continuous",
		"latency_approx_percentile_p99_9_1h_continuous",
		"latency_sum_1h_offset_1h_continuous",
		"page_last_distinct_10_1h_offset_1h_continuous",
	}, featureNames(v))
	assert.Equal(t, 12, v.Features[1].Precision)
	assert.Equal(t, 100, v.Features[2].Precision, "approx_percentile's default precision")
	assert.Zero(t, v.ServingTTL(), "a lifetime window keeps every event relevant")
}

func TestParseFullAttributeView(t *testing.T) {
	v := parseFile(t, "testdata/full.yaml").FeatureView("merchant_latest")
	assert.False(t, v.Online)
	assert.True(t, v.Offline)
	assert.Equal(t, []schema.Column{col("merchant_id", tInt64), col("region", tInt32)}, v.JoinKeys)
	require.Len(t, v.Features, 3)
	total := v.Features[2]
	assert.Equal(t, Feature{Name: "total", Kind: AttributeFeature, Input: "total", InputType: tFloat64, Type: tFloat64, Line: total.Line}, *total)
	assert.Equal(t, 7*Day, v.ServingTTL())
}

func TestParseFullServices(t *testing.T) {
	r := parseFile(t, "testdata/full.yaml")
	online := r.FeatureService("shop_online")
	require.NotNil(t, online)
	assert.Len(t, online.Features, 20+2, "a whole view expands to all its features")
	assert.Equal(t, ServiceFeature{"customer_orders", "amt_count_1h_10m"}, online.Features[0])
	assert.Equal(t, ServiceFeature{"customer_clicks", "latency_approx_percentile_p95_1h_continuous"}, online.Features[21])

	training := r.FeatureService("shop_training")
	assert.False(t, training.OnlineServingEnabled)
	assert.Equal(t, []ServiceFeature{
		{"merchant_latest", "amt"}, {"merchant_latest", "category"}, {"merchant_latest", "total"},
		{"customer_orders", "lifetime_spend"},
	}, training.Features[:4])
	assert.Len(t, training.Features, 4+6, "{feature_view: v} without features is the whole view")
}

func TestParseMergeKeys(t *testing.T) {
	r, err := Parse("m.yaml", []byte(`
workspace: ads
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
  - &base
    name: a
    source: s
    entities: [user]
    description: shared
    features:
      - attribute: {name: x}
  - <<: *base
    name: b
    description: own
`))
	require.NoError(t, err)
	b := r.FeatureView("b")
	require.NotNil(t, b)
	assert.Equal(t, "own", b.Description, "explicit keys override merged ones")
	assert.Equal(t, "s", b.Source)
	assert.Equal(t, []string{"x"}, featureNames(b))
}

func TestParseNullsAreAbsent(t *testing.T) {
	r, err := Parse("n.yaml", []byte(`
workspace: ads
entities:
sources:
feature_views: ~
`))
	require.NoError(t, err)
	assert.Empty(t, r.Entities)
	assert.Equal(t, "ads", r.Workspace)
}

func TestParseErrorsAreTyped(t *testing.T) {
	_, err := Parse("x.yaml", []byte("workspace: ads\nentities: [{name: u}]\n"))
	var errs *Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs.List, 1)
	assert.Equal(t, &Error{File: "x.yaml", Line: 2, Object: `entity "u"`, Msg: `missing required key "join_keys"`}, errs.List[0])
	var one *Error
	assert.ErrorAs(t, err, &one, "each problem is reachable with errors.As")
}
