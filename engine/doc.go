// Package engine is featurelog's embedded database: open a data directory,
// apply a feature repo, ingest records durably, and read feature vectors.
//
//	db, err := engine.Open(engine.Options{Dir: "featurelog-data"})
//	if err != nil { ... }
//	defer db.Close()
//	_, err = db.Apply("features.yaml", repoYAML)
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
// returns sees it. The online state is derived from the log alone: Open and
// Apply rebuild it by replaying the log through the same projection code
// that ingest uses.
//
// Attribute views keep every version of each entity key (the latest before
// T answers a read as of T); aggregate views keep partial aggregates in
// tiles (package tiles), exact to the nanosecond for continuous windows.
//
// Caveats: all online state lives in memory and Open replays the whole
// log; checkpoints and segments come with the compaction milestone.
package engine
