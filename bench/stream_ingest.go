package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// streamNodeKind says how a node of the ingest part publishes.
type streamNodeKind int

const (
	nodeNoStream streamNodeKind = iota // (a) views without output_stream
	nodeSSE                            // (b) output streams, followed over SSE
	nodeKafka                          // (c) output streams with Kafka sinks, followed by a Kafka consumer
)

// streamIngest runs the ingest part: the three nodes one after the other.
func streamIngest(cfg *StreamConfig, res *StreamResult) error {
	nodes := []struct {
		kind  streamNodeKind
		name  string
		label string
		into  **StreamNode
	}{
		{nodeNoStream, "a", "a: no output stream", &res.None},
		{nodeSSE, "b", fmt.Sprintf("b: output streams on %s, an SSE consumer each", strings.Join(cfg.Streams, ", ")), &res.SSE},
		{nodeKafka, "c", fmt.Sprintf("c: Kafka sinks (kfake) on %s, 1 Kafka consumer", strings.Join(cfg.Streams, ", ")), &res.Kafka},
	}
	for _, n := range nodes {
		fmt.Fprintf(cfg.Progress, "bench: stream: node %s\n", n.label)
		node, err := runStreamNode(cfg, n.kind, n.name, n.label)
		*n.into = node
		if err != nil {
			return fmt.Errorf("bench: stream: node %s: %w", n.label, err)
		}
	}
	return nil
}

// runStreamNode runs the closed loop against a node of kind, then the
// latency loop against a fresh one: a backlog the first left in a sink
// would otherwise delay the second's records.
func runStreamNode(cfg *StreamConfig, kind streamNodeKind, name, label string) (*StreamNode, error) {
	node := &StreamNode{Label: label}
	var acked atomic.Int64 // records acknowledged, warm-up included
	err := withStreamNode(cfg, kind, name, node, func(p *process, fs *followerSet) error {
		t0 := time.Now()
		if err := closedStreamLoop(cfg, p, node, &acked); err != nil {
			return err
		}
		node.Throughput = fs.tally(acked.Load(), time.Since(t0), cfg.Drain)
		return nil
	})
	if err != nil {
		return node, err
	}
	node.Rate = node.Ingest.RecordsPerSec / 2 / float64(cfg.LatencyBatch)
	fmt.Fprintf(cfg.Progress, "bench: stream: %s events/s; latency loop at %s requests/s of %d records\n",
		fmtRate(node.Ingest.RecordsPerSec), fmtRate(node.Rate), cfg.LatencyBatch)
	acked.Store(0)
	return node, withStreamNode(cfg, kind, name+"-latency", node, func(p *process, fs *followerSet) error {
		t0 := time.Now()
		probe, from, err := latencyStreamLoop(cfg, p, node, fs, &acked)
		if err != nil {
			return err
		}
		node.Latency = fs.tally(acked.Load(), time.Since(t0), cfg.Drain)
		node.EndToEnd, node.Samples, node.EarlyReceipts, node.Missing = probe.endToEnd(from)
		return nil
	})
}

// withStreamNode starts a node of kind over a new data directory (and,
// for Kafka, a new kfake cluster), attaches its consumers, runs fn, and
// stops them all. A node that does not stop cleanly is noted in
// node.StopErrors, not failed: its figures stand.
func withStreamNode(cfg *StreamConfig, kind streamNodeKind, name string, node *StreamNode, fn func(*process, *followerSet) error) error {
	var brokers []string
	if kind == nodeKafka {
		cluster, err := newKafkaCluster(cfg.Streams, cfg.Partitions)
		if err != nil {
			return fmt.Errorf("bench: starting the kfake cluster: %w", err)
		}
		defer cluster.Close()
		brokers = cluster.ListenAddrs()
	}
	dir, err := prepareDir(cfg.TempDir, name, streamRepoName, streamRepo(streamsOf(cfg, kind), brokers))
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	p, err := cfg.startNode(dir, brokers, cfg.profilePath(name))
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	var fs *followerSet
	switch kind {
	case nodeSSE:
		fs = newFollowerSet(cfg.Streams)
		err = fs.followHTTP(context.Background(), "http://"+p.addr, streamWorkspace, "earliest", true)
	case nodeKafka:
		fs = newFollowerSet(cfg.Streams)
		err = fs.followKafka(brokers)
	}
	if err == nil {
		err = fn(p, fs)
		if fs != nil {
			fs.stop()
		}
	}
	t0 := time.Now()
	if serr := p.stop(); serr != nil {
		node.StopErrors = append(node.StopErrors, fmt.Sprintf("%s: %v (after %s)", name, serr, fmtDur(time.Since(t0))))
	}
	return err
}

// closedStreamLoop runs the closed loop of batched ingest requests and
// measures the CPU both processes spent on it.
func closedStreamLoop(cfg *StreamConfig, p *process, node *StreamNode, acked *atomic.Int64) error {
	c := newClient(cfg.Clients)
	defer c.close()
	url := p.url(ingestPath)
	pid := p.cmd.Process.Pid
	srv0, self0, t0 := pidCPUTime(pid), procCPUTime(), time.Now()
	node.Ingest = closedLoop(fmt.Sprintf("stream ingest c=%d b=%d", cfg.Clients, cfg.BatchSize), cfg.Clients, cfg.Loop, func(w int) op {
		r := newRNG(w + 1)
		var body []byte
		return func() (int, error) {
			body = appendRandomBody(body[:0], &r, cfg.Users, cfg.BatchSize, time.Now())
			if _, err := c.post(w, url, body); err != nil {
				return 0, err
			}
			acked.Add(int64(cfg.BatchSize))
			return cfg.BatchSize, nil
		}
	})
	wall := time.Since(t0).Seconds()
	node.ServerCPU = (pidCPUTime(pid) - srv0).Seconds() / wall
	node.ClientCPU = (procCPUTime() - self0).Seconds() / wall
	if node.Ingest.Ops == 0 {
		return fmt.Errorf("the closed loop completed no request: %s", node.Ingest.FirstError)
	}
	return nil
}

// latencyStreamLoop sends small requests at node.Rate, open loop, each
// stamped in the probe at its send and its 200, and returns the probe and
// when its measured requests begin.
func latencyStreamLoop(cfg *StreamConfig, p *process, node *StreamNode, fs *followerSet, acked *atomic.Int64) (*latencyProbe, int64, error) {
	requests := int(node.Rate*(cfg.Warmup+cfg.Duration).Seconds()) + 16
	slots := 0
	if fs != nil {
		slots = len(fs.fs)
	}
	probe := newLatencyProbe(requests, slots)
	if fs != nil {
		fs.probe.Store(probe)
	}
	c := newClient(cfg.LatencyWorkers)
	defer c.close()
	url := p.url(ingestPath)
	var next atomic.Int64
	n := cfg.LatencyBatch
	from := probe.since(time.Now().Add(10*time.Millisecond + cfg.Warmup)) // openLoop starts 10ms from now
	res, err := openLoop(fmt.Sprintf("stream ingest b=%d @%s/s", n, fmtRate(node.Rate)), node.Rate, cfg.LatencyWorkers, cfg.Loop, func(w int) op {
		var body []byte
		return func() (int, error) {
			i := int(next.Add(1) - 1)
			now := time.Now()
			body = appendProbeBody(body[:0], i, n, now)
			if _, err := c.post(w, url, body); err != nil {
				return 0, err
			}
			acked.Add(int64(n))
			if i < len(probe.sent) {
				probe.sent[i].Store(probe.since(now))
				probe.acked[i].Store(probe.since(time.Now()))
			}
			return n, nil
		}
	})
	node.Acks = res
	if err == nil && res.Ops == 0 {
		err = fmt.Errorf("the latency loop completed no request: %s", res.FirstError)
	}
	return probe, from, err
}

// streamsOf returns the views given an output stream on a node of kind.
func streamsOf(cfg *StreamConfig, kind streamNodeKind) []string {
	if kind == nodeNoStream {
		return nil
	}
	return cfg.Streams
}
