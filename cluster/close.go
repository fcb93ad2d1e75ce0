package cluster

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Close stops the node cleanly: it stops applying (a fetch being applied
// completes first), leaves the group, which revokes every partition so
// that other nodes take them at once, then flushes every partition it
// held (flushPartitions) and closes their DBs, the clients and the
// catalog.
func (n *Node) Close() error {
	n.closing.Store(true)
	n.stop()
	<-n.done // nothing is applied after this
	return n.close()
}

func (n *Node) close() error {
	if n.repoCl != nil {
		n.repoCl.Close()
	}
	if n.cons != nil && n.prod != nil {
		n.announceMu.Lock()
		_, gen := n.cons.GroupMetadata()
		n.produceClaim(context.Background(), claim{Node: n.cfg.NodeID, URL: n.cfg.Advertise, Generation: gen})
		n.announceMu.Unlock()
	}
	if n.memb != nil {
		n.memb.Close()
	}
	if n.cons != nil {
		n.cons.Close() // leaves the group: revoked sets the partitions aside (leaving)
	}
	if n.prod != nil {
		n.prod.Close()
	}
	n.mu.Lock()
	parts := n.leaving
	n.leaving = map[int32]*partition{}
	for p, pt := range n.parts { // a partition the leave did not revoke
		parts[p] = pt
		delete(n.parts, p)
	}
	n.mu.Unlock()
	if n.closing.Load() {
		n.flushPartitions(parts)
	}
	var errs []error
	for _, pt := range parts {
		errs = append(errs, pt.db.Close())
	}
	if n.catalog != nil {
		errs = append(errs, n.catalog.Close())
	}
	return errors.Join(errs...)
}

// flushPartitions writes the memtables of parts to segments, as a single
// node's serve does at shutdown, so that their next open (a restart, or
// `featurelog historical` on the directory) replays nothing from their
// logs. Close calls it once nothing is applied any more and the group is
// left: the partitions' next owners do not wait for it. Each partition's
// Kafka position stays in its log (whose last segment a flush never
// removes), so the node resumes each after its last applied record. A
// failure loses nothing: the log keeps every record, and the next open
// replays them. Partitions flush in parallel, up to GOMAXPROCS at once.
func (n *Node) flushPartitions(parts map[int32]*partition) {
	start := time.Now()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		flushed []int32
	)
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	for p, pt := range parts {
		if pt.db.Healthy() != nil {
			continue // a failed log: nothing can be checkpointed
		}
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			if err := pt.db.Flush(); err != nil {
				n.cfg.Logger.Warn("cluster: flushing a partition's memtables at shutdown failed; its next open replays them from its log",
					"partition", p, "err", err)
				return
			}
			mu.Lock()
			flushed = append(flushed, p)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(flushed) > 0 {
		slices.Sort(flushed)
		n.cfg.Logger.Info("cluster: flushed the memtables of the partitions", "node", n.cfg.NodeID, "partitions", flushed,
			"took", time.Since(start).Round(time.Millisecond))
	}
}
