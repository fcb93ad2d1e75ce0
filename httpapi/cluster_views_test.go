package httpapi_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
)

func getFigures(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

type viewFigures struct {
	Online    int64   `json:"online_record_count"`
	Offline   int64   `json:"offline_record_count"`
	Keys      int     `json:"entity_keys_online"`
	Freshness *string `json:"freshness"`
	Version   int     `json:"version"`
	Features  []string
	Storage   struct {
		Segments        int   `json:"segments"`
		SegmentBytes    int64 `json:"segment_bytes"`
		MemtableRecords int64 `json:"memtable_records"`
		MemtableBytes   int64 `json:"memtable_bytes"`
	} `json:"storage"`
}

type ratePoints struct {
	Interval int `json:"interval_seconds"`
	Points   []struct {
		Start   time.Time `json:"start"`
		Records int64     `json:"records"`
	} `json:"points"`
}

// TestClusterViewFigures: a view's summary and ingest rate through every
// node of a three-node cluster are the cluster's, not the catalog's
// zeros: the record counts, entity keys and freshness equal those of one
// node fed the same requests; storage is the sum of the partitions'
// (each read from its DB); the per-minute ingest rate is the sum of the
// partitions' per minute, and the oracle's (per minute when the ingest
// did not cross a minute, else in total). The list of views gives each
// view the figures its summary gives. While a node keeps its partitions
// but cannot be reached, all three answer 503 with Retry-After.
func TestClusterViewFigures(t *testing.T) {
	c := newHTTPCluster(t, []string{"n1", "n2", "n3"})
	nodes, oracle := c.nodes, c.oracle

	r := rand.New(rand.NewPCG(31, 32))
	const users = 30
	first := time.Now()
	ingestClicks(t, r, nodes, oracle, time.Now().UTC(), 25, users)
	oneMinute := first.Truncate(time.Minute).Equal(time.Now().Truncate(time.Minute))

	// partitionDBs returns the DB of every partition, from its owner.
	partitionDBs := func() []*engine.DB {
		var dbs []*engine.DB
		for p := range int32(clusterParts) {
			for _, n := range nodes {
				if db, err := n.node.Owner(p); err == nil {
					dbs = append(dbs, db)
				}
			}
		}
		require.Len(t, dbs, clusterParts)
		return dbs
	}
	for _, view := range []string{"user_click_counts", "click_events_fv"} {
		path := "/api/v1/workspaces/ads/feature-views/" + view
		status, _, b := getFigures(t, oracle.url(path))
		require.Equal(t, http.StatusOK, status, string(b))
		var want viewFigures
		require.NoError(t, json.Unmarshal(b, &want))
		require.Positive(t, want.Online)
		var storage engine.ViewStorage
		for _, db := range partitionDBs() {
			sum, err := db.FeatureViewSummary("ads", view)
			require.NoError(t, err)
			storage.Segments += sum.Storage.Segments
			storage.SegmentBytes += sum.Storage.SegmentBytes
			storage.MemtableRecords += sum.Storage.MemtableRecords
			storage.MemtableBytes += sum.Storage.MemtableBytes
		}
		for _, n := range nodes {
			status, _, b := getFigures(t, n.url+path)
			require.Equal(t, http.StatusOK, status, string(b))
			var got viewFigures
			require.NoError(t, json.Unmarshal(b, &got))
			what := view + " through " + n.id
			assert.Equal(t, want.Online, got.Online, what)
			assert.Equal(t, want.Offline, got.Offline, what)
			assert.Equal(t, want.Keys, got.Keys, what)
			require.NotNil(t, got.Freshness, what)
			assert.Equal(t, *want.Freshness, *got.Freshness, what)
			assert.Equal(t, want.Version, got.Version, what)
			assert.Equal(t, storage, engine.ViewStorage{Segments: got.Storage.Segments, SegmentBytes: got.Storage.SegmentBytes,
				MemtableRecords: got.Storage.MemtableRecords, MemtableBytes: got.Storage.MemtableBytes}, what)
			assert.Positive(t, got.Storage.MemtableRecords+int64(got.Storage.Segments), what)
			if want.Storage.Segments == 0 && got.Storage.Segments == 0 {
				assert.Equal(t, want.Storage.MemtableRecords, got.Storage.MemtableRecords, what)
			}
		}

		// The ingest rate: the partitions' per minute.
		status, _, b = getFigures(t, oracle.url(path+"/ingest-rate?minutes=5"))
		require.Equal(t, http.StatusOK, status, string(b))
		var wantRate ratePoints
		require.NoError(t, json.Unmarshal(b, &wantRate))
		var wantTotal int64
		for _, p := range wantRate.Points {
			wantTotal += p.Records
		}
		require.Equal(t, want.Online, wantTotal, "every record of this test was ingested in the last 5 minutes")
		for _, n := range nodes {
			status, _, b := getFigures(t, n.url+path+"/ingest-rate?minutes=5")
			require.Equal(t, http.StatusOK, status, string(b))
			var got ratePoints
			require.NoError(t, json.Unmarshal(b, &got))
			what := view + " ingest rate through " + n.id
			require.Len(t, got.Points, 5, what)
			sums := make([]int64, 5)
			for _, db := range partitionDBs() {
				pts, err := db.IngestRateUntil("ads", view, 5, got.Points[4].Start)
				require.NoError(t, err)
				for i, p := range pts {
					sums[i] += p.Records
				}
			}
			var total int64
			for i, p := range got.Points {
				assert.Equal(t, sums[i], p.Records, "%s: minute %s", what, p.Start)
				total += p.Records
			}
			assert.Equal(t, wantTotal, total, what)
			if oneMinute && got.Points[4].Start.Equal(wantRate.Points[4].Start) {
				assert.Equal(t, fmt.Sprint(wantRate), fmt.Sprint(got), what)
			}
		}
	}

	// The list: each view's figures, as its summary's.
	status, _, b := getFigures(t, oracle.url("/api/v1/workspaces/ads/feature-views"))
	require.Equal(t, http.StatusOK, status, string(b))
	var wantList struct {
		Views []viewFigures `json:"feature_views"`
	}
	require.NoError(t, json.Unmarshal(b, &wantList))
	require.Len(t, wantList.Views, 2)
	for _, n := range nodes {
		status, _, b := getFigures(t, n.url+"/api/v1/workspaces/ads/feature-views")
		require.Equal(t, http.StatusOK, status, string(b))
		var got struct {
			Views []viewFigures `json:"feature_views"`
		}
		require.NoError(t, json.Unmarshal(b, &got))
		require.Len(t, got.Views, 2)
		for i, want := range wantList.Views {
			what := fmt.Sprintf("the list's view %d through %s", i, n.id)
			assert.Equal(t, want.Online, got.Views[i].Online, what)
			assert.Equal(t, want.Offline, got.Views[i].Offline, what)
			assert.Equal(t, want.Keys, got.Views[i].Keys, what)
			require.NotNil(t, got.Views[i].Freshness, what)
			assert.Equal(t, *want.Freshness, *got.Views[i].Freshness, what)
		}
	}

	// The route between nodes refuses what is wrong, as the public ones.
	internal := nodes[0].url + "/internal/v1/workspaces/ads/partition-views"
	status, _, got := post(t, internal, `{"feature_view": "user_click_counts", "minutes": 5000}`)
	assert.Equal(t, http.StatusBadRequest, status, got)
	status, _, got = post(t, internal, `{"feature_view": "user_click_counts", "extra": 1}`)
	assert.Equal(t, http.StatusBadRequest, status, got)
	status, _, got = post(t, internal, `{"feature_view": "nope"}`)
	assert.Equal(t, http.StatusNotFound, status, got)
	status, _, got = post(t, nodes[0].url+"/internal/v1/workspaces/nope/partition-views", `{}`)
	assert.Equal(t, http.StatusNotFound, status, got)

	// n3 keeps its partitions but cannot be reached: 503, never a
	// partial sum.
	nodes[2].stopHTTP()
	for _, n := range nodes[:2] {
		for _, path := range []string{"/api/v1/workspaces/ads/feature-views", "/api/v1/workspaces/ads/feature-views/user_click_counts",
			"/api/v1/workspaces/ads/feature-views/user_click_counts/ingest-rate"} {
			status, hdr, b := getFigures(t, n.url+path)
			require.Equal(t, http.StatusServiceUnavailable, status, "%s through %s: %s", path, n.id, b)
			require.Equal(t, "1", hdr.Get("Retry-After"))
		}
	}
	// Errors of the request come first, as on a single node.
	status, _, b = getFigures(t, nodes[0].url+"/api/v1/workspaces/ads/feature-views/nope")
	assert.Equal(t, http.StatusNotFound, status, string(b))
	status, _, b = getFigures(t, nodes[0].url+"/api/v1/workspaces/ads/feature-views/user_click_counts/ingest-rate?minutes=0")
	assert.Equal(t, http.StatusBadRequest, status, string(b))
}
