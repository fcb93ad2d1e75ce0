//go:build unix

package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/httpapi"
)

// TestFeatureViewConsoleFields: the summary of GET .../feature-views/{name}
// and of each view the list gives has the transformation and feature
// definitions as the repo file declares them, the versions, and the
// storage of the view.
func TestFeatureViewConsoleFields(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	status, body := n.ingest(n.editor, n.adsClicks("console", 3))
	require.Equal(t, http.StatusOK, status, "%s", body)

	describe := func(ws, view string) map[string]json.RawMessage {
		t.Helper()
		status, body := n.get("/api/v1/workspaces/"+ws+"/feature-views/"+view, bearer(n.viewer))
		require.Equal(t, http.StatusOK, status, "%s", body)
		var out map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(body, &out))
		return out
	}
	agg := describe("ads", "user_click_counts")
	assert.JSONEq(t, `{"columns":{"clicked_squared":"clicked ** 2"},"filter":null}`, string(agg["transformation"]))
	// Windows as SPEC §1 prints them, in their largest whole unit: the
	// file's 24h is 1d.
	assert.JSONEq(t, `[
	  {"name":"clicked_count_1h_continuous","dataType":{"type":"int64"},"function":"count","column":"clicked","time_window":"1h"},
	  {"name":"clicked_count_12h_continuous","dataType":{"type":"int64"},"function":"count","column":"clicked","time_window":"12h"},
	  {"name":"clicked_count_1d_continuous","dataType":{"type":"int64"},"function":"count","column":"clicked","time_window":"1d"},
	  {"name":"clicked_squared_sum_1d_continuous","dataType":{"type":"float64"},"function":"sum","column":"clicked_squared","time_window":"1d"}
	]`, string(agg["feature_definitions"]))
	assert.JSONEq(t, `[{"version":1,"created_at":"`+ts(t0)+`","serving":true,"job":null}]`, string(agg["versions"]))
	var storage struct {
		Segments        int   `json:"segments"`
		SegmentBytes    int64 `json:"segment_bytes"`
		MemtableRecords int64 `json:"memtable_records"`
		MemtableBytes   int64 `json:"memtable_bytes"`
	}
	require.NoError(t, json.Unmarshal(agg["storage"], &storage))
	assert.Equal(t, int64(3), storage.MemtableRecords, "%s", agg["storage"])
	assert.Positive(t, storage.MemtableBytes)

	attr := describe("ads", "click_events_fv")
	assert.JSONEq(t, `null`, string(attr["transformation"]))
	assert.JSONEq(t, `[{"name":"clicked","dataType":{"type":"int64"},"function":null,"column":"clicked","time_window":null}]`,
		string(attr["feature_definitions"]))
	calc := describe("shop", "calc_fv")
	assert.JSONEq(t, `{"columns":{"rem":"a % b"},"filter":"a >= 0"}`, string(calc["transformation"]))

	// The list gives the same summaries.
	status, body = n.get("/api/v1/workspaces/ads/feature-views", bearer(n.viewer))
	require.Equal(t, http.StatusOK, status, "%s", body)
	var list struct {
		FeatureViews []map[string]json.RawMessage `json:"feature_views"`
	}
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.FeatureViews, 2)
	for _, k := range []string{"transformation", "feature_definitions", "versions", "storage"} {
		assert.JSONEq(t, string(agg[k]), string(list.FeatureViews[0][k]), k)
		assert.JSONEq(t, string(attr[k]), string(list.FeatureViews[1][k]), k)
	}
}

// ingestRateReply is the body of GET .../ingest-rate.
type ingestRateReply struct {
	IntervalSeconds int `json:"interval_seconds"`
	Points          []struct {
		Start   string `json:"start"`
		Records int64  `json:"records"`
	} `json:"points"`
}

// TestIngestRateRoute: per-minute counts of what ingest applied to a
// view, over the node's clock; refusals are in TestBadInputCatalogue and
// the auth matrix.
func TestIngestRateRoute(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	ingestAt := func(at time.Time, k int) {
		t.Helper()
		n.clock.Set(at)
		status, body := n.ingest(n.editor, n.adsClicks("rate", k))
		require.Equal(t, http.StatusOK, status, "%s", body)
	}
	rate := func(query string) ingestRateReply {
		t.Helper()
		status, body := n.get(rateOf("ads", "user_click_counts", query), bearer(n.viewer))
		require.Equal(t, http.StatusOK, status, "%s", body)
		var out ingestRateReply
		require.NoError(t, json.Unmarshal(body, &out), "%s", body)
		assert.Equal(t, 60, out.IntervalSeconds)
		return out
	}
	ingestAt(t0.Add(10*time.Second), 2)
	ingestAt(t0.Add(50*time.Second), 1)
	ingestAt(t0.Add(2*time.Minute), 4)
	n.clock.Set(t0.Add(3*time.Minute + 30*time.Second))

	got := rate("")
	require.Len(t, got.Points, 60, "the default is an hour")
	assert.Equal(t, ts(t0.Add(-56*time.Minute)), got.Points[0].Start, "oldest first")
	assert.Equal(t, ts(t0.Add(3*time.Minute)), got.Points[59].Start, "the last point is the current minute")
	counts := map[string]int64{}
	var sum int64
	for _, p := range got.Points {
		counts[p.Start] = p.Records
		sum += p.Records
	}
	assert.Equal(t, int64(3), counts[ts(t0)])
	assert.Equal(t, int64(4), counts[ts(t0.Add(2*time.Minute))])
	assert.Equal(t, int64(7), sum, "every other minute is zero")

	got = rate("minutes=3")
	require.Len(t, got.Points, 3)
	assert.Equal(t, []int64{0, 4, 0}, []int64{got.Points[0].Records, got.Points[1].Records, got.Points[2].Records})
	assert.Len(t, rate("minutes=1440").Points, 1440)
	assert.Len(t, rate("minutes=1").Points, 1)
}
