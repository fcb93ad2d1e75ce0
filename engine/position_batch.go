package engine

import (
	"fmt"

	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/wal"
)

// PositionedPayload is a Kafka record's value, a log entry produced by
// PrepareIngest, with the record's position.
type PositionedPayload struct {
	Payload []byte
	Pos     Position
}

// maxApplyBatchBytes bounds the encoded entries ApplyEntries hands the
// log at once: the log's largest group commit (the engine keeps the wal's
// default). A longer run takes one fsync per such share.
const maxApplyBatchBytes = wal.DefaultMaxBatchBytes

// ApplyEntries applies a run of entries consumed from one partition, in
// increasing offsets, as ApplyEntry applies them one after the other, but
// logs them with one fsync: each is still its own log entry (kind 3, with
// its own position and ingest time, validated as of that time), and the
// entries are appended together by one group commit of the log. A crash
// before the fsync keeps a prefix of them, each whole with its position,
// so that AppliedPosition is the last one kept and a replay of the run
// applies each record once.
//
// Entries at or before AppliedPosition are skipped (a nil response). The
// responses returned are those of the entries handled, in order: when err
// is nil, all of them; otherwise the first len(resps) entries were
// applied (or skipped), and entries[len(resps)] is the one that failed,
// for the reason err gives, with nothing after it written. As with
// ApplyEntry, an entry that no longer validates must not be skipped: the
// caller retries from it.
func (db *DB) ApplyEntries(entries []PositionedPayload) (resps []*IngestResponse, err error) {
	resps = make([]*IngestResponse, 0, len(entries))
	for i, e := range entries { // a run that is not one partition's increasing offsets writes nothing
		if e.Pos.Partition < 0 || e.Pos.Offset < 0 {
			return resps, errorf(CodeInvalidArgument, "engine: negative Kafka position %+v", e.Pos)
		}
		if p := entries[max(i, 1)-1].Pos; i > 0 && (p.Partition != e.Pos.Partition || e.Pos.Offset <= p.Offset) {
			return resps, errorf(CodeInvalidArgument, "engine: ApplyEntries needs increasing offsets of one partition: %+v follows %+v", e.Pos, p)
		}
	}
	db.posMu.Lock()
	defer db.posMu.Unlock()
	last, ok, err := db.appliedPositionLocked()
	if err != nil {
		return resps, err
	}
	db.ingestMu.RLock()
	defer db.ingestMu.RUnlock()
	if db.closed.Load() {
		return resps, ErrClosed
	}
	// Check every entry first, stopping at the first that fails; then log
	// those before it together and apply them.
	var (
		run     []*checked
		stopErr error
	)
	for i := range entries {
		c, skip, err := db.checkPositioned(entries[i].Payload, entries[i].Pos, last, ok)
		if err != nil {
			stopErr = err
			break
		}
		if skip { // offsets increase, so the skipped entries come first
			resps = append(resps, nil)
			continue
		}
		run = append(run, c)
	}
	n, err := db.logChecked(run)
	for _, c := range run[:n] {
		resps = append(resps, c.resp)
	}
	if n > 0 {
		db.pos = positionState{loaded: true, pos: *run[n-1].b.pos, ok: true}
	}
	if err != nil {
		return resps, err
	}
	return resps, stopErr
}

// checkPositioned decodes and validates the entry payload at pos, or
// reports that pos is at or before the applied position last (when ok).
func (db *DB) checkPositioned(payload []byte, pos, last Position, ok bool) (*checked, bool, error) {
	if ok && last.Partition != pos.Partition {
		return nil, false, errorf(CodeInvalidArgument, "this log applies partition %d, not partition %d", last.Partition, pos.Partition)
	}
	if ok && pos.Offset <= last.Offset {
		return nil, true, nil
	}
	var e record.Entry
	if err := record.Decode(payload, &e); err != nil {
		return nil, false, errorf(CodeInvalidArgument, "partition %d offset %d is not a featurelog entry: %v", pos.Partition, pos.Offset, err)
	}
	if e.Positioned || e.IdempotencyKey != "" {
		return nil, false, errorf(CodeInvalidArgument, "partition %d offset %d holds a kind %d entry; only kind 1 entries are produced (key entries go to ApplyKeyEntry)", pos.Partition, pos.Offset, e.Kind())
	}
	b, err := db.entryBatch(&e, pos, nil)
	if err == nil {
		var c *checked
		if c, err = noLongerValid(db.check(b)); err == nil {
			return c, false, nil
		}
	}
	return nil, false, fmt.Errorf("applying partition %d offset %d: %w", pos.Partition, pos.Offset, err)
}

// logChecked logs run, entries that checked, with one group commit per
// maxApplyBatchBytes of entries, and applies them. It returns how many
// were logged and applied: on an error, a prefix of run.
func (db *DB) logChecked(run []*checked) (int, error) {
	if len(run) == 0 {
		return 0, nil
	}
	if err := db.Healthy(); err != nil {
		return 0, err
	}
	done := 0
	for done < len(run) {
		payloads := make([][]byte, 0, len(run)-done)
		size := 0
		for _, c := range run[done:] {
			p := appendBatchEntry(nil, c.b, c.resp, c.now)
			if len(payloads) > 0 && size+len(p) > maxApplyBatchBytes {
				break
			}
			payloads = append(payloads, p)
			size += len(p)
		}
		first, err := db.log.AppendBatch(payloads)
		if err != nil {
			c := run[done]
			return done, fmt.Errorf("applying partition %d offset %d: %w", c.b.pos.Partition, c.b.pos.Offset, appendError(err))
		}
		for i := range payloads {
			db.finish(run[done+i], first+uint64(i))
		}
		done += len(payloads)
	}
	return done, nil
}
