package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/featurelog/featurelog/cluster"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// The cluster benchmarks (SPEC §10) run everything in this process: an
// in-process Kafka (kfake, which keeps its log in memory and fsyncs
// nothing: not a real broker, so the figures measure featurelog's side)
// and nodes behind their HTTP servers on loopback, as featurelog
// dev-cluster runs them. The standalone baseline runs in this process too,
// so that both sides share the same CPUs with the same load generator.

// clusterTopic is the topic of every benchmark cluster.
const clusterTopic = "bench"

var quietLog = slog.New(slog.DiscardHandler)

// benchNode is a node (standalone or cluster) behind its HTTP server.
type benchNode struct {
	id, url string
	node    *cluster.Node // nil for a standalone node
	stop    func() error  // stops HTTP, then the node; idempotent
}

// serveInProcess serves db (and node, in cluster mode) on addr and
// returns the node; closeDB closes what is behind the server.
func serveInProcess(id, addr string, db *engine.DB, node *cluster.Node, closeDB func() error) (*benchNode, error) {
	srv, err := httpapi.New(db, httpapi.Options{Addr: addr, NoAuth: true, Logger: quietLog, Cluster: node})
	if err != nil {
		return nil, errors.Join(err, closeDB())
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan net.Addr, 1), make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, func(a net.Addr) { ready <- a }) }()
	var a net.Addr
	select {
	case a = <-ready:
	case err := <-done:
		cancel()
		return nil, errors.Join(err, closeDB())
	}
	var once sync.Once
	var stopErr error
	n := &benchNode{id: id, url: "http://" + a.String(), node: node}
	n.stop = func() error {
		once.Do(func() {
			cancel()
			stopErr = errors.Join(<-done, closeDB())
		})
		return stopErr
	}
	return n, nil
}

// startStandalone starts a standalone node (fsync on, the ads repo) in dir.
func startStandalone(dir string) (*benchNode, error) {
	db, err := openAds(dir, false, quietLog)
	if err != nil {
		return nil, err
	}
	return serveInProcess("standalone", "127.0.0.1:0", db, nil, db.Close)
}

// freeLoopbackAddr returns a loopback address free now, for a node that
// must advertise its URL before it listens.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startClusterNode starts a cluster node (fsync on, Kafka client defaults
// as featurelog serve --cluster kafka uses them) with its data in dir.
func startClusterNode(brokers []string, partitions int, id, dir string) (*benchNode, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	n, err := cluster.Open(context.Background(), cluster.Config{Brokers: brokers, Topic: clusterTopic, Partitions: partitions, NodeID: id,
		Advertise: "http://" + addr, Dir: dir, Repo: adsRepo, RepoName: adsRepoName, Logger: quietLog,
		Engine: engine.Options{Logger: quietLog}})
	if err != nil {
		return nil, err
	}
	return serveInProcess(id, addr, n.Catalog(), n, n.Close)
}

// startKafka starts a one-broker kfake.
func startKafka() (*kfake.Cluster, error) {
	return kfake.NewCluster(kfake.NumBrokers(1))
}

// benchCluster is one cluster benchmark's directory, kfake and the nodes
// it started in this process.
type benchCluster struct {
	dir        string
	kf         *kfake.Cluster
	partitions int
	nodes      []*benchNode // every node start started, for close
}

// newBenchCluster makes a temporary directory named for the benchmark
// under root and starts kfake.
func newBenchCluster(root, name string, partitions int) (*benchCluster, error) {
	dir, err := tempDir(root, "featurelog-bench-cluster-"+name+"-")
	if err != nil {
		return nil, err
	}
	kf, err := startKafka()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &benchCluster{dir: dir, kf: kf, partitions: partitions}, nil
}

// start starts node id in this process, in its directory under c.dir.
func (c *benchCluster) start(id string) (*benchNode, error) {
	n, err := startClusterNode(c.kf.ListenAddrs(), c.partitions, id, filepath.Join(c.dir, id))
	if err == nil {
		c.nodes = append(c.nodes, n)
	}
	return n, err
}

// startAll starts the nodes ids.
func (c *benchCluster) startAll(ids ...string) ([]*benchNode, error) {
	var out []*benchNode
	for _, id := range ids {
		n, err := c.start(id)
		if err != nil {
			return out, err
		}
		out = append(out, n)
	}
	return out, nil
}

// close stops every node still running, then kfake, and removes the
// directory; it returns the nodes' errors.
func (c *benchCluster) close() error {
	err := stopAll(c.nodes...)
	c.kf.Close()
	os.RemoveAll(c.dir)
	return err
}

// stopAll stops nodes, ignoring those already stopped.
func stopAll(nodes ...*benchNode) error {
	var errs []error
	for _, n := range nodes {
		if n != nil {
			errs = append(errs, n.stop())
		}
	}
	return errors.Join(errs...)
}

// waitServing waits until every partition is served by one of nodes and
// every node routes every partition to one of them. want, if positive, is the number of
// nodes that must serve at least one partition. others names live nodes
// outside nodes (in processes of their own), which may serve partitions
// too but are not asked.
func waitServing(nodes []*benchNode, partitions, want int, timeout time.Duration, others ...string) error {
	deadline := time.Now().Add(timeout)
	live := map[string]bool{}
	for _, n := range nodes {
		live[n.id] = true
	}
	otherServes := map[string]bool{}
	for _, id := range others {
		live[id] = true
	}
	for {
		ok, serving := true, 0
		for _, n := range nodes {
			mine := 0
			for p := range int32(partitions) {
				r, err := n.node.RouteOf(p)
				if err != nil || !live[r.Node] {
					ok = false
				} else if r.Self {
					mine++
				} else if slices.Contains(others, r.Node) {
					otherServes[r.Node] = true
				}
			}
			if mine > 0 {
				serving++
			}
		}
		if ok && serving+len(otherServes) >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: the cluster did not serve every partition within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// partitionTops tracks the highest acknowledged offset of each partition.
type partitionTops map[int32]int64

func (t partitionTops) add(pos []engine.Position) {
	for _, p := range pos {
		if o, ok := t[p.Partition]; !ok || p.Offset > o {
			t[p.Partition] = p.Offset
		}
	}
}

// waitApplied waits until, for every partition in tops, the node serving
// it applied its top offset.
func waitApplied(nodes []*benchNode, tops partitionTops, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for p, top := range tops {
		for {
			done := false
			for _, n := range nodes {
				if db, err := n.node.Owner(p); err == nil {
					pos, ok, err := db.AppliedPosition()
					if err != nil {
						return err
					}
					done = ok && pos.Offset >= top
				}
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("bench: partition %d did not apply offset %d within %s", p, top, timeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// loadUsersCluster ingests users userKey(0..keys-1) through n, batch
// records a request, and returns the top offsets it produced.
func loadUsersCluster(n *cluster.Node, keys, batch int) (partitionTops, int, error) {
	tops := partitionTops{}
	now, kafkaRecords := time.Now(), 0
	var body []byte
	for first := 0; first < keys; first += batch {
		body = appendIngestBody(body[:0], userPrefix, first, min(batch, keys-first), now)
		_, pos, err := n.Ingest(context.Background(), body, nil)
		if err != nil {
			return nil, 0, err
		}
		tops.add(pos)
		kafkaRecords += len(pos)
	}
	return tops, kafkaRecords, nil
}

// keyPartition returns the partition of user key.
func keyPartition(n *cluster.Node, key string) (int32, error) {
	k, err := n.Catalog().ServiceKey(adsWorkspace, adsService, map[string]any{"user_id": key})
	if err != nil {
		return 0, err
	}
	return int32(cluster.PartitionOf(k, n.Partitions())), nil
}

// tempDir makes a directory under base (os.TempDir() when empty).
func tempDir(base, pattern string) (string, error) {
	return os.MkdirTemp(base, pattern)
}

// ClusterIngestConfig configures RunClusterIngest.
type ClusterIngestConfig struct {
	TempDir string
	// Partitions is the topic's partition count. Default 4.
	Partitions int
	// Clients is the number of concurrent clients. Default 4.
	Clients int
	// BatchSize is the number of records per request. Default 100.
	BatchSize int
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *ClusterIngestConfig) EnsureDefaults() {
	if c.Partitions == 0 {
		c.Partitions = 4
	}
	if c.Clients == 0 {
		c.Clients = 4
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *ClusterIngestConfig) Validate() error {
	if c.Partitions <= 0 || c.Clients <= 0 || c.BatchSize <= 0 {
		return errors.New("bench: Partitions, Clients and BatchSize must be positive")
	}
	return c.Loop.Validate()
}

// ClusterIngestResult is what RunClusterIngest measured.
type ClusterIngestResult struct {
	Standalone, Cluster Result
	// Drain is how long after the cluster's window the node took to apply
	// every record it had acknowledged (ingest acknowledges once Kafka
	// committed, before the owner applies).
	Drain time.Duration
	// Applied is the cluster's records applied per second, the drain
	// included: acknowledged records over window plus drain.
	Applied float64
}

// RunClusterIngest measures durable ingest over HTTP, BatchSize records a
// request from Clients clients in a closed loop, against a standalone
// node and then against one cluster node on kfake: the same request
// bodies (batchBodies), both in this process.
func RunClusterIngest(cfg ClusterIngestConfig) (ClusterIngestResult, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return ClusterIngestResult{}, err
	}
	var out ClusterIngestResult
	bc, err := newBenchCluster(cfg.TempDir, "ingest", cfg.Partitions)
	if err != nil {
		return out, err
	}
	defer bc.close()
	bodies := batchBodies(16, cfg.BatchSize, time.Now())
	run := func(n *benchNode, label string) Result {
		c := newClient(cfg.Clients)
		defer c.close()
		var next sync.Mutex
		i := 0
		name := fmt.Sprintf("ingest-http c=%d b=%d (%s)", cfg.Clients, cfg.BatchSize, label)
		return closedLoop(name, cfg.Clients, cfg.Loop, func(w int) op {
			return func() (int, error) {
				next.Lock()
				body := bodies[i%len(bodies)]
				i++
				next.Unlock()
				if _, err := c.post(w, n.url+ingestPath, body); err != nil {
					return 0, err
				}
				return cfg.BatchSize, nil
			}
		})
	}

	sa, err := startStandalone(filepath.Join(bc.dir, "standalone"))
	if err != nil {
		return out, err
	}
	out.Standalone = run(sa, "standalone")
	if err := sa.stop(); err != nil {
		return out, err
	}

	n, err := bc.start("n1")
	if err != nil {
		return out, err
	}
	if err := waitServing([]*benchNode{n}, cfg.Partitions, 1, time.Minute); err != nil {
		return out, err
	}
	out.Cluster = run(n, fmt.Sprintf("cluster, 1 node, %d partitions", cfg.Partitions))
	// A last request for users of every partition: once its positions
	// are applied, so is everything acknowledged before it (one node's
	// transactions are serial).
	end := time.Now()
	_, pos, err := n.node.Ingest(context.Background(), appendIngestBody(nil, "drain-", 0, 64*cfg.Partitions, time.Now()), nil)
	if err != nil {
		return out, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := n.node.WaitApplied(ctx, pos); err != nil {
		return out, fmt.Errorf("bench: waiting for the node to apply what it acknowledged: %w", err)
	}
	out.Drain = time.Since(end)
	out.Applied = float64(out.Cluster.Records) / (out.Cluster.Elapsed + out.Drain).Seconds()
	return out, n.stop()
}

// ClusterForwardConfig configures RunClusterForward.
type ClusterForwardConfig struct {
	TempDir string
	// Partitions is the topic's partition count. Default 4.
	Partitions int
	// Keys is the number of users loaded. Default 10,000.
	Keys int
	// Rate is the request rate of each run (open loop). Default 1000/s.
	Rate float64
	// Workers bounds the requests in flight. Default 64.
	Workers int
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *ClusterForwardConfig) EnsureDefaults() {
	if c.Partitions == 0 {
		c.Partitions = 4
	}
	if c.Keys == 0 {
		c.Keys = 10_000
	}
	if c.Rate == 0 {
		c.Rate = 1000
	}
	if c.Workers == 0 {
		c.Workers = 64
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *ClusterForwardConfig) Validate() error {
	if c.Partitions < 2 || c.Keys <= 0 || c.Rate <= 0 || c.Workers <= 0 {
		return errors.New("bench: Partitions must be at least 2; Keys, Rate and Workers positive")
	}
	return c.Loop.Validate()
}

// ClusterForwardResult is what RunClusterForward measured.
type ClusterForwardResult struct {
	Local, Forwarded Result
}

// RunClusterForward measures get-features latency through one node of a
// two-node cluster at a fixed rate: first for keys that node serves
// itself, then for keys it forwards to the other node (one loopback
// hop on a keep-alive connection).
func RunClusterForward(cfg ClusterForwardConfig) (ClusterForwardResult, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return ClusterForwardResult{}, err
	}
	var out ClusterForwardResult
	bc, err := newBenchCluster(cfg.TempDir, "forward", cfg.Partitions)
	if err != nil {
		return out, err
	}
	defer bc.close()
	nodes, err := bc.startAll("n1", "n2")
	if err != nil {
		return out, err
	}
	if err := waitServing(nodes, cfg.Partitions, 2, time.Minute); err != nil {
		return out, err
	}
	tops, _, err := loadUsersCluster(nodes[0].node, cfg.Keys, 1000)
	if err != nil {
		return out, err
	}
	if err := waitApplied(nodes, tops, 5*time.Minute); err != nil {
		return out, err
	}
	var local, remote []string
	for i := range cfg.Keys {
		k := userKey(i)
		p, err := keyPartition(nodes[0].node, k)
		if err != nil {
			return out, err
		}
		if _, err := nodes[0].node.Owner(p); err == nil {
			local = append(local, k)
		} else {
			remote = append(remote, k)
		}
	}
	if len(local) == 0 || len(remote) == 0 {
		return out, fmt.Errorf("bench: n1 serves %d of %d keys; both kinds are needed", len(local), cfg.Keys)
	}
	run := func(keys []string, label string) (Result, error) {
		c := newClient(cfg.Workers)
		defer c.close()
		name := fmt.Sprintf("get-features-http @%s/s (%s)", fmtRate(cfg.Rate), label)
		return openLoop(name, cfg.Rate, cfg.Workers, cfg.Loop, func(w int) op {
			r := newRNG(w + 1)
			var body []byte
			return func() (int, error) {
				body = appendGetFeaturesBody(body[:0], keys[r.intn(len(keys))])
				resp, err := c.post(w, nodes[0].url+getFeaturesPath, body)
				if err != nil {
					return 0, err
				}
				if bytes.Contains(resp, []byte("null")) {
					return 0, fmt.Errorf("a loaded user's feature is missing: %.300s", resp)
				}
				return 1, nil
			}
		})
	}
	if out.Local, err = run(local, "served by the node"); err != nil {
		return out, err
	}
	if out.Forwarded, err = run(remote, "forwarded to the other node"); err != nil {
		return out, err
	}
	return out, stopAll(nodes...)
}

// ClusterRebalanceConfig configures RunClusterRebalance.
type ClusterRebalanceConfig struct {
	TempDir string
	// Partitions is the topic's partition count. Default 12.
	Partitions int
	// Records is the number of records loaded before the nodes move,
	// spread evenly over the partitions. Default 60,000.
	Records int
	// BatchSize is the number of records per ingest request of the load;
	// each request writes one Kafka record per partition it touches.
	// Default 100.
	BatchSize int
	// ReadPause is each reader's pause between reads. Default 2ms.
	ReadPause time.Duration
}

// EnsureDefaults fills in unset fields.
func (c *ClusterRebalanceConfig) EnsureDefaults() {
	if c.Partitions == 0 {
		c.Partitions = 12
	}
	if c.Records == 0 {
		c.Records = 60_000
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.ReadPause == 0 {
		c.ReadPause = 2 * time.Millisecond
	}
}

// Validate reports a configuration that cannot run.
func (c *ClusterRebalanceConfig) Validate() error {
	if c.Partitions < 3 || c.Records < c.Partitions || c.BatchSize <= 0 || c.ReadPause < 0 {
		return errors.New("bench: Partitions must be at least 3, Records at least Partitions, BatchSize positive")
	}
	return nil
}

// RebalancePhase is one membership change as readers saw it.
type RebalancePhase struct {
	// Took runs from the change (a node's stop, or a new node's Open)
	// until every partition was served again and routed by every node.
	Took time.Duration
	// Change is how long the change itself took: the stopping node's
	// Close (HTTP server, then leaving the group), or cluster.Open.
	Change time.Duration
	// Windows holds, for each partition a reader saw refused (503), the
	// time from its first refusal to its first read served after the
	// last refusal.
	Windows []time.Duration
	// Moved is the number of partitions that changed owner.
	Moved int
	// Refused counts 503 answers; Errors any other failed read.
	Refused, Errors int64
	FirstError      string
}

// ClusterRebalanceResult is what RunClusterRebalance measured.
type ClusterRebalanceResult struct {
	Partitions int
	// Records and KafkaRecords are what was loaded: records, and the
	// Kafka records (one per request and partition) that carried them.
	Records, KafkaRecords int
	// Leave is a node of three stopping (closing, so leaving the group);
	// its partitions move to the other two, which had never owned them
	// and replay them from the start of the partition.
	Leave RebalancePhase
	// Join is a new node (empty directory) joining the remaining two; it
	// replays each partition it is given from the start.
	Join RebalancePhase
}

// RunClusterRebalance measures how long partitions are unavailable while
// they move: three nodes on kfake serve Partitions partitions holding
// Records records; one reader per partition reads one of its keys
// through the first node, back to back; then the third node stops, and
// then a fourth node joins.
func RunClusterRebalance(cfg ClusterRebalanceConfig) (ClusterRebalanceResult, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return ClusterRebalanceResult{}, err
	}
	out := ClusterRebalanceResult{Partitions: cfg.Partitions, Records: cfg.Records}
	bc, err := newBenchCluster(cfg.TempDir, "rebalance", cfg.Partitions)
	if err != nil {
		return out, err
	}
	defer bc.close()
	nodes, err := bc.startAll("n1", "n2", "n3")
	if err != nil {
		return out, err
	}
	if err := waitServing(nodes, cfg.Partitions, 3, 2*time.Minute); err != nil {
		return out, err
	}
	tops, kr, err := loadUsersCluster(nodes[0].node, cfg.Records, cfg.BatchSize)
	if err != nil {
		return out, err
	}
	out.KafkaRecords = kr
	if err := waitApplied(nodes, tops, 10*time.Minute); err != nil {
		return out, err
	}
	// One key of each partition.
	keys := make([]string, cfg.Partitions)
	for i, found := 0, 0; i < cfg.Records && found < cfg.Partitions; i++ {
		p, err := keyPartition(nodes[0].node, userKey(i))
		if err != nil {
			return out, err
		}
		if keys[p] == "" {
			keys[p], found = userKey(i), found+1
		}
	}
	if slices.Contains(keys, "") {
		return out, errors.New("bench: some partition holds none of the loaded keys; load more records")
	}
	rd := startReaders(nodes[0].url, keys, cfg.ReadPause)
	defer rd.close()

	// A node leaves.
	leaving := nodes[2]
	moved := len(leaving.node.Owned())
	rd.reset()
	t0 := time.Now()
	if err := leaving.stop(); err != nil {
		return out, err
	}
	change := time.Since(t0)
	nodes = nodes[:2]
	if out.Leave, err = rd.phase(nodes, cfg.Partitions, t0, 2, 10*time.Minute); err != nil {
		return out, err
	}
	out.Leave.Moved, out.Leave.Change = moved, change

	// A node joins.
	rd.reset()
	t0 = time.Now()
	n4, err := bc.start("n4")
	if err != nil {
		return out, err
	}
	change = time.Since(t0)
	nodes = append(nodes, n4)
	if out.Join, err = rd.phase(nodes, cfg.Partitions, t0, 3, 10*time.Minute); err != nil {
		return out, err
	}
	out.Join.Moved, out.Join.Change = len(n4.node.Owned()), change
	return out, stopAll(bc.nodes...)
}

// readers read one key of each partition through one node, back to
// back, and note when each partition is refused and served again.
type readers struct {
	mu     sync.Mutex
	parts  []readerState
	stopCh chan struct{}
	wg     sync.WaitGroup
	c      *client
}

type readerState struct {
	served                       bool // a read was served
	firstFail, lastFail, okAfter time.Time
	refused, errors              int64
	firstError                   string
}

func startReaders(url string, keys []string, pause time.Duration) *readers {
	rd := &readers{parts: make([]readerState, len(keys)), stopCh: make(chan struct{}), c: newClient(len(keys))}
	for p, k := range keys {
		rd.wg.Add(1)
		go func() {
			defer rd.wg.Done()
			body := appendGetFeaturesBody(nil, k)
			for {
				select {
				case <-rd.stopCh:
					return
				default:
				}
				status, msg := rd.read(p, url+getFeaturesPath, body)
				now := time.Now()
				rd.mu.Lock()
				s := &rd.parts[p]
				switch status {
				case http.StatusOK:
					s.served = true
					if !s.lastFail.IsZero() && s.okAfter.IsZero() {
						s.okAfter = now
					}
				case http.StatusServiceUnavailable:
					if s.firstFail.IsZero() {
						s.firstFail = now
					}
					s.lastFail, s.okAfter = now, time.Time{}
					s.refused++
				default:
					s.errors++
					if s.firstError == "" {
						s.firstError = msg
					}
				}
				rd.mu.Unlock()
				time.Sleep(pause)
			}
		}()
	}
	return rd
}

// read returns the status of one read (0 for a transport error) and, for
// an unexpected answer, what it was.
func (rd *readers) read(worker int, url string, body []byte) (int, string) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := rd.c.hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return 0, err.Error()
	case resp.StatusCode == http.StatusOK && bytes.Contains(b, []byte("null")):
		return 0, fmt.Sprintf("a loaded user's feature is missing: %.300s", b)
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable:
		return resp.StatusCode, fmt.Sprintf("%s: %.300s", resp.Status, b)
	}
	return resp.StatusCode, ""
}

func (rd *readers) reset() {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	clear(rd.parts)
}

// phase waits until every partition is served by nodes (want of them
// serving) and every reader was served since its last refusal, and
// summarizes what the readers saw since t0.
func (rd *readers) phase(nodes []*benchNode, partitions int, t0 time.Time, want int, timeout time.Duration) (RebalancePhase, error) {
	deadline := t0.Add(timeout)
	for {
		if err := waitServing(nodes, partitions, want, time.Until(deadline)); err != nil {
			return RebalancePhase{}, err
		}
		rd.mu.Lock()
		settled := true
		for _, s := range rd.parts {
			if !s.lastFail.IsZero() && s.okAfter.IsZero() {
				settled = false
			}
		}
		var ph RebalancePhase
		if settled {
			ph.Took = time.Since(t0)
			for _, s := range rd.parts {
				ph.Refused += s.refused
				ph.Errors += s.errors
				if ph.FirstError == "" {
					ph.FirstError = s.firstError
				}
				if !s.firstFail.IsZero() {
					ph.Windows = append(ph.Windows, s.okAfter.Sub(s.firstFail))
				}
			}
		}
		rd.mu.Unlock()
		if settled {
			slices.Sort(ph.Windows)
			return ph, nil
		}
		if time.Now().After(deadline) {
			return RebalancePhase{}, fmt.Errorf("bench: partitions were still refused %s after the change", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (rd *readers) close() {
	select {
	case <-rd.stopCh:
	default:
		close(rd.stopCh)
	}
	rd.wg.Wait()
	rd.c.close()
}
