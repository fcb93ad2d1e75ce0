package engine

import "time"

// truncateLogLocked removes the prefix of the log nothing needs any more
// (SPEC §6, push.log_offline: false): the records every view has
// checkpointed, and that no output stream sink still has to publish
// (sinks.go). It does so only when every source of every workspace has
// log_offline: false (one log holds them all, so a source that keeps its
// records keeps the log), no backfill or materialization is pending (they
// read the log), and never past the entries the idempotency table is
// rebuilt from on open (IdempotencyWindow, plus its clock slack). The
// caller holds db.maint, so no checkpoint moves meanwhile.
func (db *DB) truncateLogLocked() error {
	cat := db.cat.Load()
	if len(cat.workspaces) == 0 {
		return nil
	}
	for _, name := range cat.names() {
		for _, s := range cat.workspaces[name].sources {
			if s.def.LogOffline {
				return nil
			}
		}
	}
	if len(db.jobs.list(func(j *Job) bool { return !j.State.Final() })) > 0 {
		return nil // backfills and materializations read the log; a deletion rebuilds keys from what follows its cut
	}
	horizon := db.log.LastSeq() + 1
	for _, d := range liveViews(cat) {
		horizon = min(horizon, d.checkpoint()+1)
	}
	idem, err := db.idemScanStart(db.opts.Now().Add(-db.opts.IdempotencyWindow).UnixNano() - int64(idemClockSlack))
	if err != nil {
		return err
	}
	horizon = min(horizon, idem)
	if c := db.sinks.minSeq(); c > 0 {
		horizon = min(horizon, c) // a sink's cursor holds the log (SPEC §7)
	}
	if horizon <= db.log.FirstSeq() {
		return nil
	}
	start := time.Now()
	n, first, err := db.log.TruncateFront(horizon)
	if n > 0 {
		db.truncations.Add(int64(n))
		db.opts.Logger.Info("truncated the log: every view has checkpointed its records and no source keeps them (log_offline: false)",
			"segments_removed", n, "log_starts_at", first, "took", time.Since(start).Round(time.Millisecond))
	}
	return err
}
