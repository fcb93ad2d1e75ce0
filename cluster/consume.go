package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
)

// barrierHeader marks a barrier record: its value names the node and
// assignment that produced it. Barriers carry no entry and change no state.
const barrierHeader = "featurelog-barrier"

// retryPause is how long a partition waits before retrying a record its
// DB refused: the record is read again, never skipped.
const retryPause = 200 * time.Millisecond

// assigned opens the DB of every partition newly assigned to the node and
// produces a barrier to each; the partition serves once its barrier is
// consumed (apply).
func (n *Node) assigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	ps := slices.Sorted(slices.Values(assigned[n.cfg.Topic]))
	barriers := make([]*kgo.Record, 0, len(ps))
	for _, p := range ps {
		pt := &partition{barrier: n.cfg.NodeID + "/" + randomID(), ready: make(chan bool)}
		install := func(db *engine.DB) {
			pt.db = db
			n.mu.Lock()
			n.parts[p] = pt
			n.mu.Unlock()
		}
		if db := n.takeLeaving(p); db != nil {
			install(db) // revoked as the node began to close, and assigned back before it left
		} else if _, err := n.openDB(partitionDir(p), install); err != nil {
			// Without its DB the partition cannot be applied: leave the
			// group so that another node takes it, rather than skip it.
			n.cfg.Logger.Error("cluster: cannot open an assigned partition; leaving the group", "partition", p, "err", err)
			go n.cons.LeaveGroup()
			return
		}
		barriers = append(barriers, &kgo.Record{Partition: p, Headers: []kgo.RecordHeader{{Key: barrierHeader, Value: []byte(pt.barrier)}}})
	}
	if len(barriers) == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, internalProduceTimeout)
	defer cancel()
	if err := n.produce(pctx, barriers); err != nil {
		// Without a barrier the partitions never serve: leave so that the
		// group assigns them again.
		n.cfg.Logger.Error("cluster: cannot produce the barriers of assigned partitions; leaving the group", "partitions", ps, "err", err)
		go n.cons.LeaveGroup()
		return
	}
	n.cfg.Logger.Info("cluster: partitions assigned", "node", n.cfg.NodeID, "partitions", ps)
}

// takeLeaving returns the DB of partition p if it was set aside while the
// node closes (leaving), removing it from there; nil otherwise.
func (n *Node) takeLeaving(p int32) *engine.DB {
	n.mu.Lock()
	defer n.mu.Unlock()
	pt := n.leaving[p]
	if pt == nil {
		return nil
	}
	delete(n.leaving, p)
	return pt.db
}

// seek starts every assigned partition after the offset its own log
// stored, or at the start of the partition when it stored none; the
// committed group offsets passed in are ignored.
func (n *Node) seek(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	out := map[string]map[int32]kgo.Offset{n.cfg.Topic: {}}
	for p := range offsets[n.cfg.Topic] {
		n.mu.RLock()
		pt := n.parts[p]
		n.mu.RUnlock()
		if pt == nil {
			return nil, errors.New("cluster: a partition to seek was not opened on assignment")
		}
		pos, ok, err := pt.db.AppliedPosition()
		if err != nil {
			return nil, err
		}
		o := kgo.NewOffset().AtStart()
		if ok {
			o = kgo.NewOffset().At(pos.Offset + 1)
		}
		out[n.cfg.Topic][p] = o.WithEpoch(-1)
	}
	return out, nil
}

// revoked stops serving the partitions at once and closes their DBs (or,
// while the node closes, sets them aside for close to flush: leaving);
// the files stay for a later assignment. It first waits for the requests
// with an Idempotency-Key of each partition that are producing: once it
// returns, their transactions ended, so the next owner, which serves
// after its barrier, knows every key they committed.
func (n *Node) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	for _, p := range revoked[n.cfg.Topic] {
		n.mu.Lock()
		pt := n.parts[p]
		delete(n.parts, p)
		n.mu.Unlock()
		if pt != nil {
			pt.keyed.Wait()
			if n.closing.Load() {
				n.mu.Lock()
				n.leaving[p] = pt // close flushes it once the group is left
				n.mu.Unlock()
				continue
			}
			if err := pt.db.Close(); err != nil {
				n.cfg.Logger.Error("cluster: closing a revoked partition", "partition", p, "err", err)
			}
		}
	}
	if len(revoked[n.cfg.Topic]) > 0 {
		n.announce(context.Background())
		n.cfg.Logger.Info("cluster: partitions revoked", "node", n.cfg.NodeID, "partitions", revoked[n.cfg.Topic])
	}
}

// consume polls and applies until ctx ends.
func (n *Node) consume(ctx context.Context) {
	defer close(n.done)
	for {
		fs := n.cons.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			n.cons.AllowRebalance()
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				n.cfg.Logger.Warn("cluster: fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		// Partitions are independent, each with its own DB and log: they
		// apply in parallel, so their fsyncs overlap.
		var wg sync.WaitGroup
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.apply(ftp)
			}()
		})
		wg.Wait()
		n.cons.AllowRebalance()
		// For monitoring only: the stored offsets of each DB are what a
		// node resumes from.
		n.cons.CommitUncommittedOffsets(ctx) //nolint:errcheck
	}
}

// apply applies one partition's fetched records in order: each run of
// plain request records between barriers, key records and job requests
// with one engine.DB.ApplyEntries (one log append, one fsync), the others
// one at a time. A record the DB refuses is not skipped: the partition
// seeks back to it and retries.
func (n *Node) apply(ftp kgo.FetchTopicPartition) {
	n.mu.RLock()
	pt := n.parts[ftp.Partition]
	n.mu.RUnlock()
	if pt == nil {
		return
	}
	retry := func(r *kgo.Record, what string, err error) {
		n.cfg.Logger.Error("cluster: applying "+what+" failed; retrying it", "partition", r.Partition, "offset", r.Offset, "err", err)
		n.cons.SetOffsets(map[string]map[int32]kgo.EpochOffset{n.cfg.Topic: {r.Partition: {Epoch: -1, Offset: r.Offset}}})
		time.Sleep(retryPause)
	}
	var run []*kgo.Record // plain request records not applied yet
	flush := func() bool {
		if len(run) == 0 {
			return true
		}
		batch := make([]engine.PositionedPayload, len(run))
		for i, r := range run {
			batch[i] = engine.PositionedPayload{Payload: r.Value, Pos: engine.Position{Partition: r.Partition, Offset: r.Offset}}
		}
		done, err := pt.db.ApplyEntries(batch)
		if err != nil {
			retry(run[min(len(done), len(run)-1)], "a record", err)
			return false
		}
		run = run[:0]
		return true
	}
	for _, r := range ftp.Records {
		if plainRequest(r) {
			run = append(run, r)
			continue
		}
		if !flush() {
			return
		}
		if b, ok := barrier(r); ok {
			if b == pt.barrier {
				pt.once.Do(func() { close(pt.ready) })
				n.announce(context.Background())
			}
			continue
		}
		if _, ok := header(r, jobHeader); ok {
			if err := n.applyJob(pt.db, r); err != nil {
				retry(r, "a job request", err)
				return
			}
			continue
		}
		if err := n.applyRecord(pt.db, r); err != nil {
			retry(r, "a record", err)
			return
		}
	}
	flush()
}

// plainRequest reports whether r is a request record: not a barrier, a
// job request or a key record.
func plainRequest(r *kgo.Record) bool {
	for _, h := range r.Headers {
		switch h.Key {
		case barrierHeader, jobHeader, positionsHeader:
			return false
		}
	}
	return true
}

// applyRecord applies a request record, or a key record (one with the
// positions header), to db.
func (n *Node) applyRecord(db *engine.DB, r *kgo.Record) error {
	pos := engine.Position{Partition: r.Partition, Offset: r.Offset}
	if h, ok := header(r, positionsHeader); ok {
		ps, err := engine.DecodePositions([]byte(h))
		if err != nil {
			return err
		}
		_, err = db.ApplyKeyEntry(r.Value, pos, ps)
		return err
	}
	_, err := db.ApplyEntry(r.Value, pos)
	return err
}

func barrier(r *kgo.Record) (string, bool) { return header(r, barrierHeader) }

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
