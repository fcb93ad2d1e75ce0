// Package engine is featurelog's embedded database: open a data directory,
// apply a feature repo, ingest records durably, and read feature vectors.
//
//	db, err := engine.Open(engine.Options{Dir: "featurelog-data"})
//	if err != nil { ... }
//	defer db.Close()
//	_, err = db.ApplyWait(ctx, "features.yaml", repoYAML) // Apply returns at once with its backfill jobs
//	_, err = db.Ingest(&engine.IngestRequest{Workspace: "ads", Records: map[string][]map[string]any{
//		"impressions_event_source": {{"user_id": "u1", "timestamp": time.Now(), "clicked": 1}},
//	}})
//	vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads",
//		Service: "ad_ctr_feature_service", JoinKeys: map[string]any{"user_id": "u1"}})
//
// Data flow: a request is validated against its source schema and every
// subscribed view's rules (join keys, timestamp, transform, filter, TTL,
// clock skew); nothing is written if any record is invalid. The whole
// request becomes one log entry (internal/record), appended and fsynced by
// the wal package with group commit. Only then is it applied to each
// view's online state and acknowledged, so a read that starts after Ingest
// returns sees it. The online state is derived from the log and the
// sources' batch files: Open replays the log after each view's checkpoint,
// and a new view version is built by a backfill job (Jobs, WaitJob,
// CancelJob) beside ingest, through the same projection code that ingest
// uses; Materialize loads a range of batch rows the same way. Run
// computes a view over a range of that data, or over mock rows, in
// private memory and writes nothing (a view's debugger: SPEC §6, "run").
// DeleteKeys starts a deletion job that erases keys' records from every
// file of the data directory (SPEC §6, "delete_keys"; DESIGN.md). A view
// with an output stream yields one record per record it applies, read
// from the log (OpenOutputStream; SinkCursor and SaveSinkCursor keep a
// sink's durable place in it: SPEC §7).
//
// Attribute views keep every version of each entity key (the latest before
// T answers a read as of T); aggregate views keep partial aggregates in
// tiles (package tiles), exact to the nanosecond for continuous windows.
//
// Each view version is a small LSM: memtables in memory, flushed to
// immutable segments on disk with a checkpoint (Flush, Compact, and a
// background maintainer), so Open replays only the log after it and memory
// holds the recent records, not the history. Historical retrieval
// (GetFeaturesForEvents, GetFeaturesForRange) reads the same memtables and
// segments with the online read's code.
//
// Collector returns the DB's Prometheus metrics (flushes, merges,
// segments, memtables, caches, fsyncs, freshness, jobs), for a registry
// of the caller's: reg.MustRegister(db.Collector()). docs/metrics.md
// lists them.
package engine
