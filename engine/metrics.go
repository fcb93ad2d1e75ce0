package engine

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// dbMetrics are the instruments the engine updates where the work
// happens: flushes and merges (compact.go), the log's fsyncs (the wal
// calls back) and idempotent replays (idempotency.go). Each costs a few
// atomic adds; everything else the Collector reads from the engine's
// state when scraped (metrics_collect.go). They belong to one DB, never
// to a package-level registry, so two DBs in one process do not collide.
type dbMetrics struct {
	flushes       prometheus.Counter
	flushDuration prometheus.Histogram
	flushBytes    prometheus.Counter
	merges        prometheus.Counter
	mergeDuration prometheus.Histogram
	mergeBytes    prometheus.Counter // segment bytes merges wrote
	mergeInput    prometheus.Counter // segment bytes merges read
	fsync         prometheus.Histogram
	replays       prometheus.Counter
	readWait      prometheus.Counter // seconds background work waited for reads (pace.go)
}

func newDBMetrics() *dbMetrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	return &dbMetrics{
		flushes: counter("featurelog_flushes_total",
			"Checkpoints: flushes of every view's active memtable to segments, by the background maintainer or Flush."),
		flushDuration: histogram("featurelog_flush_duration_seconds",
			"Duration of a flush, from swapping the memtables to saving the manifest.", prometheus.ExponentialBuckets(1e-3, 2, 16)),
		flushBytes: counter("featurelog_flush_bytes_total", "Bytes of segment files written by flushes."),
		merges: counter("featurelog_merges_total",
			"Segment merges: each combines segments of one view version into one segment of the next level."),
		mergeDuration: histogram("featurelog_merge_duration_seconds",
			"Duration of one segment merge, from opening its inputs to installing its output.", prometheus.ExponentialBuckets(1e-3, 2, 18)),
		mergeBytes: counter("featurelog_merge_bytes_total", "Bytes of segment files written by merges."),
		mergeInput: counter("featurelog_merge_input_bytes_total",
			"Bytes of the segment files merges read (and made obsolete); with featurelog_merge_bytes_total, what merging rewrites."),
		fsync: histogram("featurelog_wal_fsync_duration_seconds",
			"Duration of each fsync of a log segment file by the group commit (none with Options.NoSync).",
			prometheus.ExponentialBuckets(50e-6, 2, 16)),
		replays: counter("featurelog_idempotent_replays_total",
			"Ingest requests answered with the recorded response of an earlier request with the same Idempotency-Key, writing nothing."),
		readWait: counter("featurelog_background_read_wait_seconds_total",
			"Time flushes, merges and deletions' segment rewrites waited, between keys, for online reads in flight to end (they give way to reads)."),
	}
}

// observeFsync is the log's Options.OnSync.
func (m *dbMetrics) observeFsync(d time.Duration) { m.fsync.Observe(d.Seconds()) }

// observeMerge counts the merge of group into sg, which took d.
func (m *dbMetrics) observeMerge(group []*segRef, sg *segRef, d time.Duration) {
	m.merges.Inc()
	m.mergeDuration.Observe(d.Seconds())
	m.mergeBytes.Add(float64(sg.bytes))
	var in int64
	for _, s := range group {
		in += s.bytes
	}
	m.mergeInput.Add(float64(in))
}

func (m *dbMetrics) instruments() []prometheus.Collector {
	return []prometheus.Collector{m.flushes, m.flushDuration, m.flushBytes, m.merges, m.mergeDuration,
		m.mergeBytes, m.mergeInput, m.fsync, m.replays, m.readWait}
}

// Collector returns the DB's Prometheus metrics (featurelog_*, listed in
// docs/metrics.md). Register it on a registry of your own, once per DB:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(db.Collector())
//
// httpapi registers it on the node's /metrics. Gauges (segments and
// memtables per view, freshness, jobs, cache sizes) are read when
// scraped, under the same locks a read takes, briefly; counters of hot
// paths are kept as they happen. Each call returns a new Collector over
// the same state, so two registries may each hold one.
func (db *DB) Collector() prometheus.Collector { return &collector{db: db, d: newCollectorDescs()} }
