package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
)

// Config configures a Node.
type Config struct {
	Brokers    []string // Kafka bootstrap brokers
	Topic      string   // the topic every node produces to and consumes; created with Partitions when absent
	Partitions int      // the topic's partition count: the same on every node, checked against the topic
	NodeID     string   // unique per node; names its transactional producer
	Advertise  string   // the node's base URL for other nodes, e.g. http://10.0.0.5:8080
	Group      string   // the consumer group; "featurelog-<Topic>" when empty
	Dir        string   // the node's data directory
	// Repo is the repo file applied to the node's catalog and to every
	// partition it owns, named RepoName.
	Repo     []byte
	RepoName string
	// Engine is the template of every engine.Options the node opens; its
	// Dir is set per partition.
	Engine engine.Options
	Logger *slog.Logger
	// SessionTimeout is how long the group waits for a silent node before
	// its partitions move: the longest a failed node's partitions go
	// unserved, plus their catch-up. 0: Kafka's default, 45s.
	SessionTimeout time.Duration
	// ProduceTimeout bounds how long a request waits for Kafka before it
	// is refused with ErrUnavailable. 0: 10s.
	ProduceTimeout time.Duration
	// KafkaOpts are added to both Kafka clients (tests shorten timeouts).
	KafkaOpts []kgo.Opt
}

func (c *Config) validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("cluster: no Kafka brokers given")
	case c.Topic == "":
		return errors.New("cluster: no topic given")
	case c.Partitions <= 0 || c.Partitions > 1<<16:
		return fmt.Errorf("cluster: the partition count must be 1 to 65536, not %d", c.Partitions)
	case c.NodeID == "":
		return errors.New("cluster: no node id given")
	case c.Dir == "":
		return errors.New("cluster: no data directory given")
	case len(c.Repo) == 0:
		return errors.New("cluster: no repo given")
	}
	if c.Group == "" {
		c.Group = "featurelog-" + c.Topic
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RepoName == "" {
		c.RepoName = "features.yaml"
	}
	if c.ProduceTimeout <= 0 {
		c.ProduceTimeout = 10 * time.Second
	}
	return nil
}

// Errors of reads from a Node. Both mean: retry later, or ask the owner.
var (
	// ErrNotOwner is returned for a partition another node owns.
	ErrNotOwner = errors.New("cluster: this node does not own the partition")
	// ErrCatchingUp is returned for a partition this node owns but has
	// not caught up on since it was assigned.
	ErrCatchingUp = errors.New("cluster: the partition is catching up")
)

// Node is one featurelog node of a cluster.
type Node struct {
	cfg     Config
	catalog *engine.DB  // the repo, for validating ingest; holds no records
	prod    *kgo.Client // transactional: requests, barriers and claims
	cons    *kgo.Client // the group member
	memb    *kgo.Client // reads the members topic
	repoCl  *kgo.Client // reads the repo topic (repo.go)
	prodMu  sync.Mutex  // one transaction at a time on prod
	groupMu sync.Mutex  // guards pending
	pending *txnGroup   // the requests waiting for the next transaction (produce)
	txOpen  bool        // a failure left prod's transaction open; guarded by prodMu

	// reads counts the online reads in flight on every partition: their
	// DBs share it (engine.Options.Reads), so a read of one partition
	// makes the flushes and merges of all of them wait.
	reads *engine.ReadGate
	mu    sync.RWMutex
	parts map[int32]*partition // owned partitions; guarded by mu
	// leaving holds the partitions revoked while the node closes: they
	// no longer serve, and close flushes and closes them once the group
	// is left, so that their next owners do not wait for the flushes.
	// Guarded by mu.
	leaving map[int32]*partition
	// closing is set by Close before it stops consuming: revoked sets
	// partitions aside in leaving rather than closing them.
	closing atomic.Bool

	members members   // every node's claim (members.go)
	repo    repoState // the cluster's repo (repo.go)
	// partApplies queues the applies of repo files to owned partitions,
	// run one after another (repo.go, applyPartitions).
	partApplies chan func()
	// acctPending are the account records read by syncRepo before the
	// catalog opened (accounts.go).
	acctPending []accountChange
	announceMu  sync.Mutex // one announcement at a time, in snapshot order (announce)

	stop context.CancelFunc
	done chan struct{}
}

// partition is an owned partition's state.
type partition struct {
	db      *engine.DB
	barrier string    // the value of the barrier produced on assignment
	ready   chan bool // closed once the barrier is consumed
	once    sync.Once
	// keyed counts the requests with an Idempotency-Key of this
	// partition that hold their key's claim and have not yet ended their
	// transaction (IngestWithKey); revoked waits for them. Added to only
	// while the partition is in Node.parts, under Node.mu.
	keyed sync.WaitGroup
}

// PartitionOf returns the partition of an entity key: Kafka's own
// partitioner for keyed records (murmur2, high bit masked, modulo n), so
// that any Kafka client places a key where featurelog does.
func PartitionOf(key []byte, n int) int {
	return kafkaPartitioner.Partition(&kgo.Record{Key: key}, n)
}

var kafkaPartitioner = kgo.StickyKeyPartitioner(nil).ForTopic("")

// Open starts a node: it applies the repo to the node's catalog, makes
// sure the topic exists with the configured partition count, and joins
// the consumer group. It returns once the node has joined; partitions
// serve as they catch up (Owner).
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, reads: new(engine.ReadGate), parts: map[int32]*partition{}, leaving: map[int32]*partition{}, done: make(chan struct{}), members: members{claims: map[string]claim{}},
		repo: repoState{waiters: map[string]chan applied{}, inTopic: map[string]bool{}}, partApplies: make(chan func(), 64)}
	var err error
	if n.repo.files, err = startFiles(&n.cfg); err != nil {
		return nil, err
	}
	if err := n.connectProducer(ctx); err != nil {
		n.close()
		return nil, err
	}
	start := maps.Clone(n.repo.files)
	if err := n.syncRepo(ctx); err != nil {
		n.close()
		return nil, err
	}
	if err := n.publishStartFiles(ctx, start); err != nil {
		n.close()
		return nil, err
	}
	if n.catalog, err = n.openDB("catalog", nil); err != nil {
		n.close()
		return nil, err
	}
	if err := n.catalog.CheckPartitionable(); err != nil {
		n.close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := n.applyPendingAccounts(); err != nil {
		n.close()
		return nil, err
	}
	if err := n.connectConsumers(); err != nil {
		n.close()
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	go n.consume(cctx)
	go n.followMembers(cctx, n.memb)
	go n.followRepo(cctx)
	go n.applyPartitions(cctx)
	return n, nil
}

// openDB opens the engine under <Dir>/<name> and applies the latest file
// of every workspace of the cluster's repo; install, when not nil, is
// called with the DB before an apply read from Kafka can miss it.
func (n *Node) openDB(name string, install func(*engine.DB)) (*engine.DB, error) {
	opts := n.cfg.Engine
	opts.Dir = filepath.Join(n.cfg.Dir, name)
	opts.OwnsKey = func(string) bool { return false } // the catalog keeps no records, nor batch rows
	if p, ok := partitionOfDir(name); ok {
		parts := n.cfg.Partitions
		opts.OwnsKey = func(key string) bool { return PartitionOf([]byte(key), parts) == int(p) }
	}
	if opts.Logger == nil {
		opts.Logger = n.cfg.Logger
	}
	if opts.Reads == nil { // the partitions share the node's processors
		opts.Reads = n.reads
	}
	if err := os.MkdirAll(filepath.Dir(opts.Dir), 0o755); err != nil {
		return nil, err
	}
	db, err := engine.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: opening %s: %w", opts.Dir, err)
	}
	n.repo.mu.Lock()
	defer n.repo.mu.Unlock()
	if err := n.applyRepo(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("cluster: %s: %w", opts.Dir, err)
	}
	if install != nil {
		install(db)
	}
	return db, nil
}

// baseOpts are the options of every Kafka client of the node.
func (n *Node) baseOpts() []kgo.Opt {
	c := &n.cfg
	base := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID("featurelog-" + c.NodeID)}
	if c.SessionTimeout > 0 {
		base = append(base, kgo.SessionTimeout(c.SessionTimeout), kgo.HeartbeatInterval(max(c.SessionTimeout/10, 100*time.Millisecond)))
	}
	return append(base, c.KafkaOpts...)
}

// connectProducer creates the producer, the topics when they are absent,
// and the reader of the repo topic.
func (n *Node) connectProducer(ctx context.Context) error {
	c := &n.cfg
	var err error
	n.prod, err = kgo.NewClient(append(n.baseOpts(),
		kgo.DefaultProduceTopic(c.Topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.TransactionalID("featurelog-"+c.Topic+"-"+c.NodeID),
		kgo.RecordDeliveryTimeout(c.ProduceTimeout),
		kgo.RetryTimeout(c.ProduceTimeout), // AddPartitionsToTxn, EndTxn, metadata: not retried forever
	)...)
	if err != nil {
		return fmt.Errorf("cluster: Kafka producer: %w", err)
	}
	if err := n.ensureTopic(ctx); err != nil {
		return err
	}
	n.repoCl, err = kgo.NewClient(append(n.baseOpts(),
		kgo.ConsumeTopics(repoTopic(c.Topic), accountsTopic(c.Topic)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return fmt.Errorf("cluster: Kafka repo consumer: %w", err)
	}
	return nil
}

// connectConsumers creates the group member and the reader of the
// members topic.
func (n *Node) connectConsumers() error {
	c := &n.cfg
	var err error
	n.cons, err = kgo.NewClient(append(n.baseOpts(),
		kgo.ConsumerGroup(c.Group),
		kgo.ConsumeTopics(c.Topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(n.assigned),
		kgo.OnPartitionsRevoked(n.revoked),
		kgo.OnPartitionsLost(n.revoked),
		kgo.AdjustFetchOffsetsFn(n.seek),
	)...)
	if err != nil {
		return fmt.Errorf("cluster: Kafka consumer: %w", err)
	}
	n.memb, err = kgo.NewClient(append(n.baseOpts(),
		kgo.ConsumeTopics(membersTopic(c.Topic)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return fmt.Errorf("cluster: Kafka members consumer: %w", err)
	}
	return nil
}

// ensureTopic creates the topic with the configured partitions, or checks
// that the existing one has them: nodes that disagree on the count would
// place keys on different partitions.
func (n *Node) ensureTopic(ctx context.Context) error {
	adm := kadm.NewClient(n.prod)
	c := &n.cfg
	// The topic keeps every record: a partition new to a node is rebuilt
	// by replaying it from its start, so a retention shorter than the
	// partition's history would silently rebuild only its tail.
	compact, forever := "compact", "-1"
	keep := map[string]*string{"retention.ms": &forever, "retention.bytes": &forever}
	for _, t := range []struct {
		name    string
		parts   int32
		configs map[string]*string
	}{{c.Topic, int32(c.Partitions), keep}, {membersTopic(c.Topic), 1, map[string]*string{"cleanup.policy": &compact}},
		{repoTopic(c.Topic), 1, map[string]*string{"cleanup.policy": &compact}},
		{accountsTopic(c.Topic), 1, map[string]*string{"cleanup.policy": &compact}}} {
		resp, err := adm.CreateTopic(ctx, t.parts, -1, t.configs, t.name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("cluster: creating topic %q: %w", t.name, err)
		}
	}
	topics, err := adm.ListTopics(ctx, c.Topic)
	if err != nil {
		return fmt.Errorf("cluster: describing topic %q: %w", c.Topic, err)
	}
	td, ok := topics[c.Topic]
	if !ok || td.Err != nil {
		return fmt.Errorf("cluster: topic %q is not available: %v", c.Topic, td.Err)
	}
	if got := len(td.Partitions); got != c.Partitions {
		return fmt.Errorf("cluster: topic %q has %d partitions, but this node is configured with --partitions %d; "+
			"every node must use the topic's count", c.Topic, got, c.Partitions)
	}
	return nil
}

// Catalog returns the node's catalog DB: the repo, no records. Listing
// and describing read it.
func (n *Node) Catalog() *engine.DB { return n.catalog }

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Partitions returns the topic's partition count.
func (n *Node) Partitions() int { return n.cfg.Partitions }

// Ingest validates an ingest body (SPEC §2) and produces its records in
// one Kafka transaction, returning the response and the position of each
// partition's record once Kafka committed them. Nothing is visible to
// owners unless the transaction commits. A dry run produces nothing.
func (n *Node) Ingest(ctx context.Context, body []byte, authorize engine.Authorizer) (*engine.IngestResponse, []engine.Position, error) {
	resp, entries, err := n.catalog.PrepareIngest(body, authorize, n.cfg.Partitions, PartitionOf)
	if err != nil || len(entries) == 0 {
		return resp, nil, err
	}
	recs := make([]*kgo.Record, len(entries))
	for i, e := range entries {
		recs[i] = &kgo.Record{Partition: e.Partition, Value: e.Payload}
	}
	if err := n.produce(ctx, recs); err != nil {
		return nil, nil, err
	}
	pos := make([]engine.Position, len(recs))
	for i, r := range recs {
		pos[i] = engine.Position{Partition: r.Partition, Offset: r.Offset}
	}
	return resp, pos, nil
}

// ErrUnavailable wraps a failed produce: the request may not have been
// written, and it was not acknowledged.
var ErrUnavailable = errors.New("cluster: Kafka did not commit the request in time; it was not acknowledged, and if its transaction commits late it is applied once")

// txnGroup is the records of the requests that share one transaction.
type txnGroup struct {
	recs []*kgo.Record
	// then are called once recs are written, before the commit, and
	// return more records for the same transaction (produceThen).
	then []func() *kgo.Record
	done chan struct{} // closed once the transaction ended; err is then set
	err  error
}

// produce writes recs in a Kafka transaction: the group commit of
// transactions. The producer runs one transaction at a time; requests
// arriving meanwhile join one pending group, which the first of them
// commits as one transaction once the producer is free. A group commits
// or aborts whole, so each request in it does too. Waits at most about
// twice ProduceTimeout; recs' offsets are set when it returns nil.
func (n *Node) produce(_ context.Context, recs []*kgo.Record) error {
	return n.produceThen(recs, nil)
}

// produceThen is produce, and when then is set, it is called once recs
// are written (their offsets set), and the record it returns is written
// in the same transaction: a request's Idempotency-Key record, which
// reports the request's positions.
func (n *Node) produceThen(recs []*kgo.Record, then func() *kgo.Record) error {
	n.groupMu.Lock()
	g, leader := n.pending, false
	if g == nil {
		g, leader = &txnGroup{done: make(chan struct{})}, true
		n.pending = g
	}
	g.recs = append(g.recs, recs...)
	if then != nil {
		g.then = append(g.then, then)
	}
	n.groupMu.Unlock()
	if leader {
		n.prodMu.Lock() // the previous transaction ends; meanwhile others join g
		n.groupMu.Lock()
		n.pending = nil // later requests start the next group
		n.groupMu.Unlock()
		g.err = n.transact(g.recs, g.then)
		n.prodMu.Unlock()
		close(g.done)
	}
	<-g.done
	return g.err
}

// transact writes recs, then the records then returns, in one
// transaction, waiting at most ProduceTimeout for Kafka. A transaction a
// failure left open is aborted first. The caller holds prodMu.
func (n *Node) transact(recs []*kgo.Record, then []func() *kgo.Record) error {
	ctx := context.Background()
	if n.txOpen {
		if err := n.endTransaction(kgo.TryAbort); err != nil {
			return fmt.Errorf("%w: aborting the transaction an earlier failure left open: %v", ErrUnavailable, err)
		}
	}
	if err := n.prod.BeginTransaction(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	n.txOpen = true
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ProduceTimeout)
	defer cancel()
	done := make(chan error, 1)
	// abandoned is set once the transaction timed out: the records of
	// then must not be produced after that, or they could join the next
	// transaction. Guarded by thenMu, held while they are buffered.
	var (
		thenMu    sync.Mutex
		abandoned bool
	)
	go func() {
		err := n.prod.ProduceSync(context.WithoutCancel(ctx), recs...).FirstErr()
		if err == nil && len(then) > 0 {
			err = n.produceThenRecords(context.WithoutCancel(ctx), then, &thenMu, &abandoned)
		}
		done <- err
	}()
	var perr error
	select {
	case perr = <-done:
	case <-ctx.Done():
		thenMu.Lock()
		abandoned = true
		thenMu.Unlock()
		// Kafka did not answer in time (franz-go retries a dead broker
		// without end): fail what is still buffered, then abort the
		// transaction now or, if Kafka is still away, before the next.
		actx, acancel := context.WithTimeout(context.Background(), n.cfg.ProduceTimeout)
		n.prod.AbortBufferedRecords(actx) //nolint:errcheck // the abort below decides
		acancel()
		// Records already sent stay in flight until Kafka answers; the
		// abort waits for them, and is retried before the next
		// transaction while Kafka is away.
		n.endTransaction(kgo.TryAbort) //nolint:errcheck
		return fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
	if err := n.endTransaction(kgo.TransactionEndTry(perr == nil)); err != nil {
		return fmt.Errorf("%w: ending the transaction: %v", ErrUnavailable, err)
	}
	if perr != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, perr)
	}
	return nil
}

// produceThenRecords produces the records then returns, in the open
// transaction, unless it was abandoned (a timeout): they are buffered
// under mu, so that a timeout either fails them with the buffered records
// it aborts, or stops them from being produced at all.
func (n *Node) produceThenRecords(ctx context.Context, then []func() *kgo.Record, mu *sync.Mutex, abandoned *bool) error {
	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		ferr error
	)
	mu.Lock()
	if *abandoned {
		mu.Unlock()
		return errors.New("the transaction timed out")
	}
	for _, f := range then {
		wg.Add(1)
		n.prod.TryProduce(ctx, f(), func(_ *kgo.Record, err error) { // TryProduce: never blocks under mu
			if err != nil {
				emu.Lock()
				ferr = cmp.Or(ferr, err)
				emu.Unlock()
			}
			wg.Done()
		})
	}
	mu.Unlock()
	wg.Wait()
	return ferr
}

// endTransaction ends prod's transaction within ProduceTimeout; the
// caller holds prodMu.
func (n *Node) endTransaction(try kgo.TransactionEndTry) error {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ProduceTimeout)
	defer cancel()
	if err := n.prod.EndTransaction(ctx, try); err != nil {
		return err
	}
	n.txOpen = false
	return nil
}

// Owner returns the DB of partition p when this node owns it and has
// caught up on it; ErrNotOwner or ErrCatchingUp otherwise.
func (n *Node) Owner(p int32) (*engine.DB, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	pt := n.parts[p]
	if pt == nil {
		return nil, ErrNotOwner
	}
	select {
	case <-pt.ready:
		return pt.db, nil
	default:
		return nil, ErrCatchingUp
	}
}

// Joined reports whether the node is a member of the consumer group now:
// before its first join it does not know which partitions it owns.
func (n *Node) Joined() bool {
	_, gen := n.cons.GroupMetadata()
	return gen >= 0
}

// Owned returns the partitions this node owns, caught up or not, in
// order.
func (n *Node) Owned() []int32 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make([]int32, 0, len(n.parts))
	for p := range n.parts {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// WaitApplied waits until the owner of each position (this node) has
// applied it, or ctx ends. Positions of partitions this node does not
// own return ErrNotOwner.
func (n *Node) WaitApplied(ctx context.Context, positions []engine.Position) error {
	for _, want := range positions {
		for {
			db, err := n.Owner(want.Partition)
			if err != nil && !errors.Is(err, ErrCatchingUp) {
				return err
			}
			if db != nil {
				got, ok, err := db.AppliedPosition()
				if err != nil {
					return err
				}
				if ok && got.Offset >= want.Offset {
					break
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("cluster: partition %d has not applied offset %d: %w", want.Partition, want.Offset, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return nil
}

func partitionDir(p int32) string { return filepath.Join("partitions", strconv.Itoa(int(p))) }

// partitionOfDir returns the partition whose DB is under name, if it is a
// partition's.
func partitionOfDir(name string) (int32, bool) {
	rest, ok := strings.CutPrefix(name, "partitions"+string(filepath.Separator))
	if !ok {
		return 0, false
	}
	p, err := strconv.Atoi(rest)
	return int32(p), err == nil
}
