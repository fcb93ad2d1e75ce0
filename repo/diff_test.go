package repo

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exampleText is the ads example, edited by the tests with replace.
func exampleText(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../examples/ads/features.yaml")
	require.NoError(t, err)
	return string(data)
}

func mustParse(t *testing.T, text string) *Repo {
	t.Helper()
	r, err := Parse("features.yaml", []byte(text))
	require.NoError(t, err)
	return r
}

// withoutOutputStream removes the example's output_stream line.
func withoutOutputStream(t *testing.T, text string) string {
	t.Helper()
	return edit(t, text, "    output_stream: {include_features: true}   # GET .../feature-views/user_click_counts/output-stream\n", "")
}

// TestDiffOutputStreamIsInPlace: adding, changing or removing an output
// stream or its Kafka sink changes nothing the view computes: an update in
// place, same fingerprint, no rebuild.
func TestDiffOutputStreamIsInPlace(t *testing.T) {
	text := exampleText(t)
	old := mustParse(t, text)
	line := "    output_stream: {include_features: true}   # GET .../feature-views/user_click_counts/output-stream\n"
	for name, repl := range map[string]string{
		"removed":  "",
		"features": "    output_stream: {include_features: false}\n",
		"kafka":    "    output_stream: {include_features: true, kafka: {brokers: [\"127.0.0.1:9092\"], topic: clicks, exactly_once: true, max_lag: 30s}}\n",
	} {
		next := mustParse(t, edit(t, text, line, repl))
		ch := Diff(old, next).Change(FeatureViewObject, "user_click_counts")
		assert.Equal(t, UpdateInPlace, ch.Action, name)
		assert.Equal(t, old.FeatureView("user_click_counts").ComputeFingerprint(), next.FeatureView("user_click_counts").ComputeFingerprint(), name)
	}
}

// edit replaces old by new in text, failing when old is absent.
func edit(t *testing.T, text, old, new string) string {
	t.Helper()
	require.Contains(t, text, old)
	return strings.Replace(text, old, new, 1)
}

func TestDiffSameFileTwiceIsEmpty(t *testing.T) {
	for _, path := range []string{"../examples/ads/features.yaml", "testdata/full.yaml"} {
		a, b := parseFile(t, path), parseFile(t, path)
		p := Diff(a, b)
		assert.True(t, p.Empty(), path)
		assert.Equal(t, "No changes: workspace \""+a.Workspace+"\" is up to date.\n", p.String())
		for _, v := range a.FeatureViews {
			assert.Equal(t, v.ComputeFingerprint(), b.FeatureView(v.Name).ComputeFingerprint())
		}
	}
}

func TestDiffFromNothingCreatesAll(t *testing.T) {
	r := mustParse(t, exampleText(t))
	p := Diff(nil, r)
	assert.False(t, p.Empty())
	require.Len(t, p.Changes, 6)
	for _, c := range p.Changes {
		assert.Equal(t, Create, c.Action, c.Name)
	}
	out := p.String()
	assert.Contains(t, out, "+ feature view user_click_counts (new)\n")
	assert.Contains(t, out, "    transform column clicked_squared: Float64 = clicked ** 2\n")
	assert.Contains(t, out, "    feature clicked_count_1h_continuous: Int64 = count(clicked: Int64) over 1h\n")
	assert.Contains(t, out, `Plan for workspace "ads": 6 to create, 0 to update in place, 0 new versions, 0 to delete, 0 unchanged.`)
}

func TestDiffMetadataIsInPlace(t *testing.T) {
	text := exampleText(t)
	old := mustParse(t, text)
	text = edit(t, text, "description: The aggregated count of ad clicks for a user.", "description: Clicks per user.")
	text = edit(t, text, "tags: {team: ads}", "tags: {team: growth, tier: gold}")
	text = edit(t, text, "    ttl: 7d\n", "    ttl: 3d\n")
	text = edit(t, text, "    online_serving_enabled: true\n", "    online_serving_enabled: false\n")
	next := mustParse(t, text)
	p := Diff(old, next)

	c := p.Change(FeatureViewObject, "user_click_counts")
	require.NotNil(t, c)
	assert.Equal(t, UpdateInPlace, c.Action)
	assert.Equal(t, []string{
		"~ description: The aggregated count of ad clicks for a user. → Clicks per user.",
		"~ tag team: ads → growth",
		"+ tag tier: gold",
	}, c.Details)
	assert.Equal(t, old.FeatureView("user_click_counts").ComputeFingerprint(), next.FeatureView("user_click_counts").ComputeFingerprint())

	c = p.Change(FeatureViewObject, "click_events_fv")
	assert.Equal(t, UpdateInPlace, c.Action)
	assert.Equal(t, []string{"~ ttl: 7d → 3d"}, c.Details)

	assert.Equal(t, UpdateInPlace, p.Change(FeatureServiceObject, "ad_ctr_feature_service").Action)
	assert.Equal(t, Unchanged, p.Change(EntityObject, "user").Action)
	assert.Contains(t, p.String(), "~ feature view click_events_fv (update in place)\n    ~ ttl: 7d → 3d\n")
}

func TestDiffComputationIsNewVersion(t *testing.T) {
	text := withoutOutputStream(t, exampleText(t)) // an interval view may not have one
	old := mustParse(t, text)
	cases := map[string][2]string{
		"window":    {"function: count, window: 12h}", "function: count, window: 6h}"},
		"transform": {`clicked_squared: "clicked ** 2"`, `clicked_squared: "clicked * clicked"`},
		"filter":    {"    transform:\n      columns:\n", "    transform:\n      filter: clicked >= 0\n      columns:\n"},
		"interval":  {"    features:\n      - aggregate: {input: clicked, function: count, window: 1h}", "    aggregation_interval: 1h\n    features:\n      - aggregate: {input: clicked, function: count, window: 1h}"},
		"start":     {"feature_start_time: 2022-10-10T00:00:00Z", "feature_start_time: 2022-10-11T00:00:00Z"},
	}
	for name, c := range cases {
		next := mustParse(t, edit(t, text, c[0], c[1]))
		p := Diff(old, next)
		ch := p.Change(FeatureViewObject, "user_click_counts")
		assert.Equal(t, NewVersion, ch.Action, name)
		assert.NotEqual(t, old.FeatureView("user_click_counts").ComputeFingerprint(),
			next.FeatureView("user_click_counts").ComputeFingerprint(), name)
		assert.Equal(t, Unchanged, p.Change(FeatureViewObject, "click_events_fv").Action, name)
	}

	next := mustParse(t, edit(t, text, "function: count, window: 12h}", "function: count, window: 6h}"))
	ch := Diff(old, next).Change(FeatureViewObject, "user_click_counts")
	assert.Equal(t, []string{
		"+ feature clicked_count_6h_continuous: Int64 = count(clicked: Int64) over 6h",
		"- feature clicked_count_12h_continuous: Int64 = count(clicked: Int64) over 12h",
	}, ch.Details)
	assert.Contains(t, Diff(old, next).String(), "-/+ feature view user_click_counts (new version, rebuilt from the offline log)\n")
	// The service listing the view whole now lists other features.
	assert.Equal(t, UpdateInPlace, Diff(old, next).Change(FeatureServiceObject, "ad_ctr_feature_service_v2").Action)
}

func TestDiffTransformTypeChange(t *testing.T) {
	text := exampleText(t)
	old := mustParse(t, text)
	next := mustParse(t, edit(t, text, `"clicked ** 2"`, `"clicked * clicked"`))
	ch := Diff(old, next).Change(FeatureViewObject, "user_click_counts")
	assert.Contains(t, ch.Details, "~ transform column clicked_squared: Float64 = clicked ** 2 → Int64 = clicked * clicked")
}

func TestDiffSourceTypeChangeReversionsViews(t *testing.T) {
	text := exampleText(t)
	old := mustParse(t, text)
	next := mustParse(t, edit(t, text, "{name: clicked, type: Int64}", "{name: clicked, type: Int32}"))
	p := Diff(old, next)
	assert.Equal(t, UpdateInPlace, p.Change(SourceObject, "impressions_event_source").Action)
	assert.Equal(t, []string{"~ column clicked: Int64 → Int32"}, p.Change(SourceObject, "impressions_event_source").Details)
	assert.Equal(t, NewVersion, p.Change(FeatureViewObject, "user_click_counts").Action)
	assert.Equal(t, NewVersion, p.Change(FeatureViewObject, "click_events_fv").Action)
}

func TestDiffReorderedFeaturesIsNewVersion(t *testing.T) {
	text := exampleText(t)
	old := mustParse(t, text)
	next := mustParse(t, edit(t, text,
		"      - aggregate: {input: clicked, function: count, window: 1h}\n      - aggregate: {input: clicked, function: count, window: 12h}\n",
		"      - aggregate: {input: clicked, function: count, window: 12h}\n      - aggregate: {input: clicked, function: count, window: 1h}\n"))
	ch := Diff(old, next).Change(FeatureViewObject, "user_click_counts")
	assert.Equal(t, NewVersion, ch.Action)
	assert.Equal(t, []string{"~ order changed"}, ch.Details)
}

func TestDiffDeletions(t *testing.T) {
	old := mustParse(t, exampleText(t))
	next := mustParse(t, `
workspace: ads
entities:
  - name: user
    description: A user who sees ads.
    join_keys: [user_id]
`)
	p := Diff(old, next)
	var got []string
	for _, c := range p.Changes {
		if c.Action == Delete {
			got = append(got, c.Kind.String()+" "+c.Name)
		}
	}
	assert.Equal(t, []string{
		"feature service ad_ctr_feature_service", "feature service ad_ctr_feature_service_v2",
		"feature view user_click_counts", "feature view click_events_fv",
		"source impressions_event_source",
	}, got, "deletions come last, dependents first")
	assert.Equal(t, Unchanged, p.Changes[0].Action)
	out := p.String()
	assert.Contains(t, out, "- feature view click_events_fv (delete)\n")
	assert.Contains(t, out, "0 to create, 0 to update in place, 0 new versions, 5 to delete, 1 unchanged.")
}

func TestDiffGolden(t *testing.T) {
	text := exampleText(t)
	old := mustParse(t, text)
	text = edit(t, text, "function: count, window: 24h}", "function: approx_percentile, percentile: 0.99, window: 24h}")
	text = edit(t, text, "owner: ads-team@example.com", "owner: growth@example.com")
	text = edit(t, text, "  - name: ad_ctr_feature_service_v2\n", "  - name: ad_ctr_feature_service_v3\n")
	got := Diff(old, mustParse(t, text)).String()
	want := `-/+ feature view user_click_counts (new version, rebuilt from the offline log)
    + feature clicked_approx_percentile_p99_1d_continuous: Float64 = approx_percentile(clicked: Int64, percentile: 0.99, precision: 100) over 1d
    - feature clicked_count_1d_continuous: Int64 = count(clicked: Int64) over 1d
    ~ owner: ads-team@example.com → growth@example.com
+ feature service ad_ctr_feature_service_v3 (new)
    online serving enabled: true
    description: The latest click and the user's click counts.
    feature click_events_fv.clicked
    feature user_click_counts.clicked_count_1h_continuous
    feature user_click_counts.clicked_count_12h_continuous
    feature user_click_counts.clicked_approx_percentile_p99_1d_continuous
    feature user_click_counts.clicked_squared_sum_1d_continuous
- feature service ad_ctr_feature_service_v2 (delete)

Plan for workspace "ads": 1 to create, 0 to update in place, 1 new version, 1 to delete, 4 unchanged.
`
	assert.Equal(t, want, got)
}
