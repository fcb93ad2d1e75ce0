package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
)

// Idempotency keys, cluster-wide (SPEC §10: "a repeat through any node
// returns the first response and writes nothing").
//
// Each key of a workspace belongs to one partition, its key partition
// (KeyPartition), whose owner serves every request sent with the key;
// other nodes forward such requests to it (package httpapi). The owner:
//
//  1. claims the key in the key partition's DB (engine.ClaimIdempotencyKey:
//     standalone ingest's table and in-flight claim, so repeats on this
//     node wait), which answers a key recorded in the window with its
//     first response, writing nothing;
//  2. validates the request and produces its records (one record per
//     partition, as Ingest does) and, once Kafka has given them their
//     offsets, in the same transaction, the key record to the key
//     partition: the key, the response, and in its positionsHeader the
//     request's positions (engine.DB.KeyEntry);
//  3. once the transaction committed, records the response in its claim,
//     so a repeat is answered at once, and answers.
//
// Every owner of the key partition applies the key record as a kind 4
// entry of its log (engine.DB.ApplyKeyEntry), recording the key: a
// restarted node and the partition's next owner know every committed
// key once they serve, after their barrier. Revoking the key partition
// waits for its claims that are producing (partition.keyed), so that no
// key is committed after the next owner's barrier. A failed produce
// releases the claim: the key was not used, and a retry executes.

// positionsHeader marks a key record; its value is the request's
// positions, as engine.EncodePositions encodes them.
const positionsHeader = "featurelog-positions"

// KeyPartition returns the partition of an Idempotency-Key of workspace:
// PartitionOf of the workspace's length (uvarint), the workspace and the
// key, so that keys are per workspace.
func KeyPartition(workspace, key string, partitions int) int32 {
	b := binary.AppendUvarint(make([]byte, 0, 2+len(workspace)+len(key)), uint64(len(workspace)))
	b = append(append(b, workspace...), key...)
	return int32(PartitionOf(b, partitions))
}

// IngestWithKey is Ingest with an Idempotency-Key (empty: none): a
// request repeating a key used in its workspace by a request that wrote,
// within the window, through any node, is answered with that request's
// response and positions, marked Replayed, and writes nothing, whatever
// its body. Concurrent requests with one key write at most once. A key
// whose request failed or wrote nothing is not remembered, and dry runs
// ignore keys, as standalone ingest does; keys are checked as it checks
// them. Only the node serving the key's partition (KeyPartition) takes
// such requests: others get ErrNotOwner or ErrCatchingUp.
func (n *Node) IngestWithKey(ctx context.Context, body []byte, key string, authorize engine.Authorizer) (*engine.IngestResponse, []engine.Position, error) {
	if key == "" {
		return n.Ingest(ctx, body, authorize)
	}
	ws, dryRun, err := n.keyOf(body, key, authorize)
	if err != nil {
		return nil, nil, err
	}
	if dryRun {
		return n.Ingest(ctx, body, authorize)
	}
	q := KeyPartition(ws, key, n.cfg.Partitions)
	db, err := n.Owner(q)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (partition %d, of the Idempotency-Key)", err, q)
	}
	replay, claim, err := db.ClaimIdempotencyKey(ws, key)
	if errors.Is(err, engine.ErrClosed) { // revoked since Owner
		return nil, nil, fmt.Errorf("%w (partition %d, of the Idempotency-Key, was revoked)", ErrNotOwner, q)
	}
	if err != nil {
		return nil, nil, err
	}
	if replay != nil {
		return replay, replay.Positions, nil
	}
	defer claim.Release()
	pt, err := n.enterKeyed(q, db)
	if err != nil {
		return nil, nil, err
	}
	defer pt.keyed.Done() // after the produce ended; the deferred Release runs next
	if testHookKeyed != nil {
		testHookKeyed(n, key)
	}
	resp, entries, err := n.catalog.PrepareIngest(body, authorize, n.cfg.Partitions, PartitionOf)
	if err != nil || len(entries) == 0 {
		return resp, nil, err // nothing written: the key is not remembered
	}
	recs := make([]*kgo.Record, len(entries))
	for i, e := range entries {
		recs[i] = &kgo.Record{Partition: e.Partition, Value: e.Payload}
	}
	first := *resp
	payload, at := n.catalog.KeyEntry(key, resp)
	err = n.produceThen(recs, func() *kgo.Record {
		first.Positions = positions(recs)
		return &kgo.Record{Partition: q, Value: payload,
			Headers: []kgo.RecordHeader{{Key: positionsHeader, Value: engine.EncodePositions(first.Positions)}}}
	})
	if err != nil {
		return nil, nil, err
	}
	claim.Record(&first, at)
	return &first, first.Positions, nil
}

// KeyPartitionOf checks key and the envelope of body, and authorizes its
// workspace, as IngestWithKey does first, and returns the partition of
// the key (KeyPartition), whose owner serves the request, and whether the
// request is a dry run (which ignores its key, so any node serves it).
func (n *Node) KeyPartitionOf(body []byte, key string, authorize engine.Authorizer) (int32, bool, error) {
	ws, dryRun, err := n.keyOf(body, key, authorize)
	if err != nil {
		return 0, false, err
	}
	return KeyPartition(ws, key, n.cfg.Partitions), dryRun, nil
}

// testHookKeyed, set by tests, runs once a request holds its key's
// claim and counts as producing, before it validates and produces.
var testHookKeyed func(n *Node, key string)

// keyOf checks key and returns the workspace and dry_run of body, after
// authorizing the workspace: the checks of standalone ingest, in its
// order, before the key is looked up.
func (n *Node) keyOf(body []byte, key string, authorize engine.Authorizer) (string, bool, error) {
	if err := engine.CheckIdempotencyKey(key); err != nil {
		return "", false, err
	}
	ws, dryRun, err := engine.IngestEnvelope(body)
	if err != nil {
		return "", false, err
	}
	if authorize != nil {
		if err := authorize(ws); err != nil {
			return "", false, err
		}
	}
	return ws, dryRun, nil
}

// enterKeyed counts a request holding a claim in partition q's DB db as
// producing (partition.keyed), unless q was revoked (or reassigned, with
// another DB) since db was looked up.
func (n *Node) enterKeyed(q int32, db *engine.DB) (*partition, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	pt := n.parts[q]
	if pt == nil || pt.db != db {
		return nil, fmt.Errorf("%w (partition %d, of the Idempotency-Key, was revoked)", ErrNotOwner, q)
	}
	pt.keyed.Add(1)
	return pt, nil
}

// positions returns the positions of written records.
func positions(recs []*kgo.Record) []engine.Position {
	out := make([]engine.Position, len(recs))
	for i, r := range recs {
		out[i] = engine.Position{Partition: r.Partition, Offset: r.Offset}
	}
	return out
}
