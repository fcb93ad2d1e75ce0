package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape gathers reg into series → value: counters and gauges by value,
// histograms by sample count (name_count) and sum (name_sum).
func scrape(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName() + labelString(m.GetLabel())
			switch {
			case m.Counter != nil:
				out[name] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[name] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[mf.GetName()+"_count"+labelString(m.GetLabel())] = float64(m.Histogram.GetSampleCount())
				out[mf.GetName()+"_sum"+labelString(m.GetLabel())] = m.Histogram.GetSampleSum()
			}
		}
	}
	return out
}

func labelString(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	var parts []string
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// metricsNode is the ads example on a test clock, fsyncing (for the
// fsync histogram), with its Collector on a registry.
type metricsNode struct {
	*idemNode
	reg *prometheus.Registry
}

func newMetricsNode(t *testing.T) *metricsNode {
	n := &metricsNode{idemNode: &idemNode{t: t, dir: t.TempDir()}, reg: prometheus.NewPedanticRegistry()}
	n.set(idemT0)
	db, err := Open(Options{Dir: n.dir, Now: n.clock, DisableAutoFlush: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	n.db = db
	t.Cleanup(func() { db.Close() })
	src, err := os.ReadFile("../examples/ads/features.yaml")
	require.NoError(t, err)
	_, err = db.ApplyWait(context.Background(), "ads.yaml", src)
	require.NoError(t, err)
	require.NoError(t, n.reg.Register(db.Collector()))
	return n
}

const (
	mAgg  = `{view="user_click_counts",workspace="ads"}`
	mAttr = `{view="click_events_fv",workspace="ads"}`
)

// TestMetricsMove drives every kind of engine work and checks that each
// metric moved by what the work did: ingests, an idempotent repeat,
// reads through the hot tier and the state cache, two flushes, a merge
// and a deletion job.
func TestMetricsMove(t *testing.T) {
	n := newMetricsNode(t)
	m0 := scrape(t, n.reg)
	for _, s := range []string{"featurelog_flushes_total", "featurelog_merges_total", "featurelog_idempotent_replays_total",
		"featurelog_hot_cache_hits_total", "featurelog_state_cache_hits_total", "featurelog_log_entries_total",
		"featurelog_segments" + mAgg, "featurelog_memtable_records" + mAgg} {
		assert.Zero(t, m0[s], s)
	}
	assert.NotContains(t, m0, "featurelog_view_freshness_seconds"+mAgg, "no event applied yet")
	assert.Equal(t, 1.0, m0["featurelog_log_healthy"])

	// Ingest: 40 records of u1 (a key with tiles: reads go through the
	// hot tier), sent twice with one Idempotency-Key.
	body := n.body("ads", "u1", 40)
	n.ingest(body, "key-1")
	assert.True(t, n.ingest(body, "key-1").Replayed)
	m1 := scrape(t, n.reg)
	assert.Equal(t, 1.0, m1["featurelog_idempotent_replays_total"])
	assert.Equal(t, 1.0, m1["featurelog_log_entries_total"], "the repeat appends nothing")
	assert.Equal(t, 1.0, m1["featurelog_log_commits_total"])
	assert.Equal(t, 1.0, m1["featurelog_wal_fsync_duration_seconds_count"], "one group commit, one fsync")
	assert.Positive(t, m1["featurelog_wal_fsync_duration_seconds_sum"])
	assert.Equal(t, 1.0, m1["featurelog_idempotency_keys"])
	assert.Zero(t, m1["featurelog_log_unapplied_entries"])
	for _, v := range []string{mAgg, mAttr} {
		assert.Equal(t, 40.0, m1["featurelog_memtable_records"+v], v)
		assert.Greater(t, m1["featurelog_memtable_bytes"+v], 40.0*float64(len("u1")+versionBytes), v)
		// The records are a minute old on a clock that stands still.
		assert.Equal(t, 60.0, m1["featurelog_view_freshness_seconds"+v], v)
		assert.Equal(t, 60.0, m1["featurelog_view_ingest_lag_seconds"+v], v)
	}
	n.set(idemT0.Add(time.Minute))
	m1b := scrape(t, n.reg)
	assert.Equal(t, 120.0, m1b["featurelog_view_freshness_seconds"+mAgg], "freshness ages while nothing arrives")
	assert.Equal(t, 60.0, m1b["featurelog_view_ingest_lag_seconds"+mAgg], "ingest lag is the last request's")

	// Reads from the memtable: the first misses the hot tier, the
	// second finds what the first cached.
	require.Equal(t, int64(40), n.clicks1h("ads", "u1"))
	m2 := scrape(t, n.reg)
	assert.Zero(t, m2["featurelog_hot_cache_hits_total"])
	misses := m2["featurelog_hot_cache_misses_total"]
	assert.Positive(t, misses)
	assert.Positive(t, m2["featurelog_hot_cache_bytes"])
	require.Equal(t, int64(40), n.clicks1h("ads", "u1"))
	m3 := scrape(t, n.reg)
	assert.Equal(t, misses, m3["featurelog_hot_cache_hits_total"], "the second read finds every range the first cached")
	assert.Equal(t, misses, m3["featurelog_hot_cache_misses_total"])
	assert.Zero(t, m3["featurelog_state_cache_hits_total"]+m3["featurelog_state_cache_misses_total"], "no segments yet")

	// A flush moves the memtables to segments.
	beforeFlush := float64(time.Now().UnixNano()) / 1e9
	require.NoError(t, n.db.Flush())
	m4 := scrape(t, n.reg)
	assert.Equal(t, 1.0, m4["featurelog_flushes_total"])
	assert.Equal(t, 1.0, m4["featurelog_flush_duration_seconds_count"])
	segBytes := 0.0
	for _, v := range []string{mAgg, mAttr} {
		assert.Equal(t, 1.0, m4["featurelog_segments"+v], v)
		assert.Positive(t, m4["featurelog_segment_bytes"+v], v)
		assert.Zero(t, m4["featurelog_memtable_records"+v], v)
		assert.Zero(t, m4["featurelog_memtable_bytes"+v], v)
		segBytes += m4["featurelog_segment_bytes"+v]
	}
	assert.Equal(t, segBytes, m4["featurelog_flush_bytes_total"])
	assert.GreaterOrEqual(t, m4["featurelog_last_flush_timestamp_seconds"], beforeFlush, "the flush's wall-clock time")
	// Reads from a segment: a miss decodes the key's state and caches it,
	// the next read finds it.
	require.Equal(t, int64(40), n.clicks1h("ads", "u1"))
	m5 := scrape(t, n.reg)
	assert.Zero(t, m5["featurelog_state_cache_hits_total"])
	assert.Equal(t, 2.0, m5["featurelog_state_cache_misses_total"], "the service's two views, a segment each, one key")
	n.db.hot.states.c.Wait() // ristretto admits sets asynchronously
	require.Equal(t, int64(40), n.clicks1h("ads", "u1"))
	m6 := scrape(t, n.reg)
	assert.Equal(t, 2.0, m6["featurelog_state_cache_hits_total"])
	assert.Equal(t, 2.0, m6["featurelog_state_cache_misses_total"])

	// A second flush, then a merge of each view's two segments.
	n.ingest(n.body("ads", "u2", 3), "")
	require.NoError(t, n.db.Flush())
	m7 := scrape(t, n.reg)
	assert.Equal(t, 2.0, m7["featurelog_flushes_total"])
	inBytes := 0.0
	for _, v := range []string{mAgg, mAttr} {
		assert.Equal(t, 2.0, m7["featurelog_segments"+v], v)
		inBytes += m7["featurelog_segment_bytes"+v]
	}
	require.NoError(t, n.db.CompactAll())
	m8 := scrape(t, n.reg)
	assert.Equal(t, 2.0, m8["featurelog_merges_total"], "one merge per view")
	assert.Equal(t, 2.0, m8["featurelog_merge_duration_seconds_count"])
	assert.Equal(t, inBytes, m8["featurelog_merge_input_bytes_total"])
	outBytes := 0.0
	for _, v := range []string{mAgg, mAttr} {
		assert.Equal(t, 1.0, m8["featurelog_segments"+v], v)
		outBytes += m8["featurelog_segment_bytes"+v]
	}
	assert.Equal(t, outBytes, m8["featurelog_merge_bytes_total"])

	// A deletion job.
	before := m8[`featurelog_jobs{state="SUCCESS",type="deletion"}`]
	j, err := n.db.DeleteKeys("ads", "click_events_fv", DeleteKeysRequest{Keys: []map[string]any{{"user_id": "u2"}}, Online: true})
	require.NoError(t, err)
	j, err = n.db.WaitJob(context.Background(), "ads", j.ID)
	require.NoError(t, err)
	require.Equal(t, JobSuccess, j.State)
	m9 := scrape(t, n.reg)
	assert.Equal(t, before+1, m9[`featurelog_jobs{state="SUCCESS",type="deletion"}`])
	assert.Zero(t, m9[`featurelog_jobs{state="RUNNING",type="deletion"}`])
	assert.Contains(t, m9, `featurelog_jobs{state="FAILED",type="backfill"}`, "every type and state is reported, zeros too")

	problems, err := testutil.CollectAndLint(n.db.Collector())
	require.NoError(t, err)
	assert.Empty(t, problems, "metric names and help follow Prometheus conventions")
}

// TestMetricsScrapeConcurrent scrapes while ingests, flushes and merges
// run (with -race: the collect-time reads take the engine's locks).
func TestMetricsScrapeConcurrent(t *testing.T) {
	n := newMetricsNode(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			scrape(t, n.reg)
		}
	}()
	for i := range 20 {
		n.ingest(n.body("ads", fmt.Sprintf("u%d", i%3), 5), "")
		if i%5 == 4 {
			require.NoError(t, n.db.Flush())
			require.NoError(t, n.db.Compact())
		}
	}
	close(stop)
	wg.Wait()
	m := scrape(t, n.reg)
	assert.Equal(t, 4.0, m["featurelog_flushes_total"])
	assert.Equal(t, 20.0, m["featurelog_log_entries_total"])

	// A registry may outlive its DB: a scrape after Close still works.
	require.NoError(t, n.db.Close())
	m = scrape(t, n.reg)
	assert.Zero(t, m["featurelog_log_healthy"], "a closed DB acknowledges nothing")
	assert.Equal(t, 20.0, m["featurelog_log_entries_total"])
}
