package engine

import (
	"fmt"
	"time"

	"github.com/featurelog/featurelog/internal/record"
)

// Idempotency keys in cluster mode (SPEC §10: "a repeat through any node
// returns the first response and writes nothing"). Package cluster maps
// each (workspace, key) to one Kafka partition, the key's partition, whose
// owner serves every request with that key. The owner claims the key in
// its partition's DB (ClaimIdempotencyKey: the table standalone ingest
// uses, with the same in-flight claim), produces the request's records
// and, in the same Kafka transaction, a key record to the key's partition
// (KeyEntry), and records the response in the claim once Kafka committed
// (IdempotencyClaim.Record). Applying the key record (ApplyKeyEntry) logs
// the key, the response and the Kafka position in one kind 4 entry and
// records the key: the partition's next owner, or this one after a
// restart, knows it from its log.

// CheckIdempotencyKey reports a key the engine does not accept: empty,
// longer than MaxIdempotencyKeyLen, or with bytes other than printable
// ASCII; the error is a CodeInvalidArgument *Error.
func CheckIdempotencyKey(key string) error { return checkIdempotencyKey(key) }

// IngestEnvelope decodes the envelope of an ingest body (SPEC §2) and
// returns its workspace and dry_run, without looking at its records; its
// errors are IngestJSON's for the same body.
func IngestEnvelope(body []byte) (workspace string, dryRun bool, err error) {
	env, err := decodeEnvelope(body)
	if err != nil {
		return "", false, err
	}
	return env.workspace, env.dryRun, nil
}

// IdempotencyClaim is a request's claim on an Idempotency-Key of a DB's
// table (ClaimIdempotencyKey). Other claims of the key wait until it is
// recorded or released.
type IdempotencyClaim struct {
	db *DB
	tk *idemTicket
}

// ClaimIdempotencyKey returns the response recorded for key in workspace
// within the window, marked Replayed, or else claims the key: the caller
// must Release the claim, after Record if the request was written. A
// claim in flight is waited for, as ingest with a key waits. Keys are
// checked as IngestJSONWithKey checks them.
func (db *DB) ClaimIdempotencyKey(workspace, key string) (*IngestResponse, *IdempotencyClaim, error) {
	if err := checkIdempotencyKey(key); err != nil {
		return nil, nil, err
	}
	if db.closed.Load() {
		return nil, nil, ErrClosed
	}
	if err := db.waitIdempotencyKeys(); err != nil {
		return nil, nil, err
	}
	resp, tk := db.idem.begin(idemScope{workspace: workspace, key: key}, db.opts.Now())
	if resp != nil {
		db.metrics.replays.Inc()
		return resp, nil, nil
	}
	return nil, &IdempotencyClaim{db: db, tk: tk}, nil
}

// Record remembers resp as the key's first response, from ingest time at
// on: the request's records and its key entry are durable (Kafka
// committed them). The claim's waiters are answered with resp. If the key
// entry was applied already, the key keeps the response applied.
func (c *IdempotencyClaim) Record(resp *IngestResponse, at time.Time) {
	c.db.idem.record(c.tk, resp, at.UnixNano())
}

// Release frees the key unless it was recorded (by Record, or by applying
// its key entry); one of the waiters then claims it.
func (c *IdempotencyClaim) Release() { c.db.idem.release(c.tk) }

// KeyEntry encodes the Kafka record of an Idempotency-Key: a kind 2
// entry (docs/format/record.md) without records, holding the key and the
// response's workspace and view counts, ingested now by db's clock,
// which it returns: the key is remembered for the window from then on.
// The response's positions travel beside it (EncodePositions,
// ApplyKeyEntry).
func (db *DB) KeyEntry(key string, resp *IngestResponse) ([]byte, time.Time) {
	at := db.opts.Now()
	e := record.Entry{Workspace: resp.Workspace, IngestTime: at.UnixNano(), IdempotencyKey: key, Response: responseRecord(resp)}
	return record.AppendEntry(nil, &e), at
}

// EncodePositions encodes a list of Kafka positions as kind 4 entries
// hold them (docs/format/record.md); DecodePositions reads it back.
func EncodePositions(ps []Position) []byte { return record.AppendPositions(nil, ps) }

// DecodePositions decodes what EncodePositions encoded.
func DecodePositions(b []byte) ([]Position, error) { return record.DecodePositions(b) }

// ApplyKeyEntry applies a KeyEntry consumed from Kafka at pos, the first
// response having reported responsePositions: it logs the key, the
// response and pos in one fsynced kind 4 entry and records the key in
// the table, as of the entry's ingest time, filling a claim of it in
// flight. Positions are handled as ApplyEntry handles them: an entry at
// or before AppliedPosition is skipped, returning (nil, nil). It returns
// the recorded response.
func (db *DB) ApplyKeyEntry(payload []byte, pos Position, responsePositions []Position) (*IngestResponse, error) {
	var e record.Entry
	if err := record.Decode(payload, &e); err != nil {
		return nil, errorf(CodeInvalidArgument, "partition %d offset %d is not a featurelog entry: %v", pos.Partition, pos.Offset, err)
	}
	if e.Kind() != record.KindIngestIdempotent {
		return nil, errorf(CodeInvalidArgument, "partition %d offset %d holds a kind %d entry; key entries are kind 2", pos.Partition, pos.Offset, e.Kind())
	}
	if err := checkIdempotencyKey(e.IdempotencyKey); err != nil {
		return nil, fmt.Errorf("partition %d offset %d: %w", pos.Partition, pos.Offset, err)
	}
	for _, p := range responsePositions {
		if p.Partition < 0 || p.Offset < 0 {
			return nil, errorf(CodeInvalidArgument, "partition %d offset %d: negative response position %+v", pos.Partition, pos.Offset, p)
		}
	}
	resp := &IngestResponse{Workspace: e.Workspace, Metrics: make([]ViewIngestMetrics, len(e.Response)), Positions: responsePositions}
	for i, m := range e.Response {
		resp.Metrics[i] = ViewIngestMetrics{FeatureView: m.View, Online: m.Online, Offline: m.Offline}
	}
	return db.applyPositioned(&e, pos, &appliedKey{scope: idemScope{workspace: e.Workspace, key: e.IdempotencyKey}, resp: resp})
}
