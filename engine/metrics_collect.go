package engine

import (
	"time"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/prometheus/client_golang/prometheus"
)

// collectorDescs describe the metrics the Collector reads from the
// engine's state when scraped.
type collectorDescs struct {
	// Per serving view version, labelled workspace and view.
	segments, segmentBytes     *prometheus.Desc
	memRecords, memBytes       *prometheus.Desc
	freshness, ingestLag       *prometheus.Desc
	hotHits, hotMisses         *prometheus.Desc
	hotBytes                   *prometheus.Desc
	stateHits, stateMisses     *prometheus.Desc
	jobs                       *prometheus.Desc // by type and state
	idemKeys, idemEvicted      *prometheus.Desc
	logCommits, logEntries     *prometheus.Desc
	logBytes, logHealthy       *prometheus.Desc
	logUnapplied, logTruncated *prometheus.Desc
	lastFlush, maintFailing    *prometheus.Desc
}

func newCollectorDescs() collectorDescs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	view := []string{"workspace", "view"}
	return collectorDescs{
		segments:     d("featurelog_segments", "Segment files of a view's serving version.", view...),
		segmentBytes: d("featurelog_segment_bytes", "Bytes of the segment files of a view's serving version.", view...),
		memRecords: d("featurelog_memtable_records",
			"Records in a view's active memtable, not yet flushed; a flush is due at Options.FlushRecords.", view...),
		memBytes: d("featurelog_memtable_bytes",
			"Estimated bytes of the records in a view's active memtable (keys, values and per-record overhead as ingested; an aggregate view's tiles may hold less).", view...),
		freshness: d("featurelog_view_freshness_seconds",
			"Age of the newest event time a view has applied (now minus that event time); absent until it applies one.", view...),
		ingestLag: d("featurelog_view_ingest_lag_seconds",
			"Event-time lag of the last ingest request that reached a view: its ingest time minus the newest event time in it for the view. Unlike freshness it does not grow while no records arrive.", view...),
		hotHits:     d("featurelog_hot_cache_hits_total", "Lookups of merged tile ranges found in the hot tier (fastcache)."),
		hotMisses:   d("featurelog_hot_cache_misses_total", "Lookups of merged tile ranges not found in the hot tier, recomputed from tiles."),
		hotBytes:    d("featurelog_hot_cache_bytes", "Bytes the hot tier holds."),
		stateHits:   d("featurelog_state_cache_hits_total", "Key states of segments found decoded in the state cache (ristretto)."),
		stateMisses: d("featurelog_state_cache_misses_total", "Key states of segments not in the state cache, looked up in the segment."),
		jobs:        d("featurelog_jobs", "Jobs by type and state, as listed by the jobs API (final states included).", "type", "state"),
		idemKeys:    d("featurelog_idempotency_keys", "Idempotency keys remembered, in flight or recorded."),
		idemEvicted: d("featurelog_idempotency_keys_evicted_total",
			"Idempotency keys forgotten before their window ended because Options.IdempotencyMaxKeys was reached."),
		logCommits: d("featurelog_log_commits_total", "Group commits of the log: one write and one fsync each."),
		logEntries: d("featurelog_log_entries_total", "Log entries appended (one per ingest request)."),
		logBytes:   d("featurelog_log_bytes_total", "Payload bytes appended to the log."),
		logHealthy: d("featurelog_log_healthy", "1 while the log can acknowledge writes, 0 after a write or fsync failure."),
		logUnapplied: d("featurelog_log_unapplied_entries",
			"Log entries appended but not yet visible to reads (ingests between their fsync and their apply)."),
		logTruncated: d("featurelog_log_segments_removed_total", "Log segment files removed because checkpoints cover them."),
		lastFlush:    d("featurelog_last_flush_timestamp_seconds", "Unix time of the last flush (the open, before any)."),
		maintFailing: d("featurelog_maintenance_failing", "1 while the background maintainer's last flush or merge failed, else 0."),
	}
}

// collector is the DB's prometheus.Collector (DB.Collector).
type collector struct {
	db *DB
	d  collectorDescs
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.db.metrics.instruments() {
		m.Describe(ch)
	}
	d := &c.d
	for _, x := range []*prometheus.Desc{d.segments, d.segmentBytes, d.memRecords, d.memBytes, d.freshness, d.ingestLag,
		d.hotHits, d.hotMisses, d.hotBytes, d.stateHits, d.stateMisses, d.jobs, d.idemKeys, d.idemEvicted,
		d.logCommits, d.logEntries, d.logBytes, d.logHealthy, d.logUnapplied, d.logTruncated, d.lastFlush, d.maintFailing} {
		ch <- x
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.db.metrics.instruments() {
		m.Collect(ch)
	}
	c.collectViews(ch)
	c.collectCaches(ch)
	c.collectJobs(ch)
	c.collectLog(ch)
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

// collectViews reports every serving view version: its segments under
// its read lock, its memtable and freshness from atomics.
func (c *collector) collectViews(ch chan<- prometheus.Metric) {
	now := c.db.opts.Now()
	cat := c.db.cat.Load()
	for _, name := range cat.names() {
		for _, v := range cat.workspaces[name].order {
			if s := v.serving(); s != nil {
				c.collectView(ch, s, now, name, v.def.Name)
			}
		}
	}
}

func (c *collector) collectView(ch chan<- prometheus.Metric, v *viewRT, now time.Time, labels ...string) {
	st := v.storage()
	ch <- gauge(c.d.segments, float64(st.Segments), labels...)
	ch <- gauge(c.d.segmentBytes, float64(st.SegmentBytes), labels...)
	ch <- gauge(c.d.memRecords, float64(st.MemtableRecords), labels...)
	ch <- gauge(c.d.memBytes, float64(st.MemtableBytes), labels...)
	if ts := v.stats.newest.Load(); ts != 0 {
		ch <- gauge(c.d.freshness, now.Sub(time.Unix(0, ts)).Seconds(), labels...)
	}
	if lag, ok := v.stats.ingestLag(); ok {
		ch <- gauge(c.d.ingestLag, lag.Seconds(), labels...)
	}
}

func (c *collector) collectCaches(ch chan<- prometheus.Metric) {
	var hs fastcache.Stats
	if h := c.db.hot; h != nil && h.cache != nil {
		h.cache.UpdateStats(&hs)
	}
	ch <- counter(c.d.hotHits, float64(hs.GetCalls-hs.Misses))
	ch <- counter(c.d.hotMisses, float64(hs.Misses))
	ch <- gauge(c.d.hotBytes, float64(hs.BytesSize))
	hits, misses := c.db.hot.states.stats()
	ch <- counter(c.d.stateHits, float64(hits))
	ch <- counter(c.d.stateMisses, float64(misses))
	keys, evicted := c.db.idem.stats()
	ch <- gauge(c.d.idemKeys, float64(keys))
	ch <- counter(c.d.idemEvicted, float64(evicted))
}

// collectJobs reports every type and state, zeros included, so a series
// does not vanish when its last job moves on.
func (c *collector) collectJobs(ch chan<- prometheus.Metric) {
	n := c.db.jobs.countByState()
	for _, t := range []JobType{JobBackfill, JobMaterialization, JobDeletion} {
		for _, s := range []JobState{JobPending, JobRunning, JobSuccess, JobFailed, JobCancelRequested, JobCancelled} {
			ch <- gauge(c.d.jobs, float64(n[jobKind{t, s}]), string(t), string(s))
		}
	}
}

func (c *collector) collectLog(ch chan<- prometheus.Metric) {
	db := c.db
	st := db.log.Stats()
	ch <- counter(c.d.logCommits, float64(st.Batches))
	ch <- counter(c.d.logEntries, float64(st.Entries))
	ch <- counter(c.d.logBytes, float64(st.Bytes))
	healthy := 1.0
	if db.Healthy() != nil {
		healthy = 0
	}
	ch <- gauge(c.d.logHealthy, healthy)
	applied, _ := db.applied.get()
	ch <- gauge(c.d.logUnapplied, float64(db.log.LastSeq()-min(applied, db.log.LastSeq())))
	ch <- counter(c.d.logTruncated, float64(db.truncations.Load()))
	ch <- gauge(c.d.lastFlush, float64(db.lastFlush.Load())/1e9)
	failing := 0.0
	if db.MaintenanceErr() != nil {
		failing = 1
	}
	ch <- gauge(c.d.maintFailing, failing)
}
