package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/internal/clicks"
)

// brokersEnv names a real Kafka cluster to run against instead of kfake.
const brokersEnv = "FEATURELOG_KAFKA_BROKERS"

const testPartitions = 6

func adsRepo(t *testing.T) []byte {
	b, err := os.ReadFile("../examples/ads/features.yaml")
	require.NoError(t, err)
	return b
}

// brokers starts a one-broker kfake cluster, or names brokersEnv's
// (then the kfake cluster returned is nil).
func brokers(t *testing.T) ([]string, *kfake.Cluster) {
	if env := os.Getenv(brokersEnv); env != "" {
		return strings.Split(env, ","), nil
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs(), c
}

// testCluster is the nodes of one test, each with its data directory.
type testCluster struct {
	t       *testing.T
	brokers []string
	kf      *kfake.Cluster // nil against a real cluster
	topic   string
	repo    []byte
	base    string // the nodes' directories are under it
	dirs    map[string]string
	nodes   map[string]*Node
}

func newTestCluster(t *testing.T) *testCluster {
	tc := &testCluster{t: t, topic: fmt.Sprintf("fl-%d", time.Now().UnixNano()), repo: adsRepo(t),
		base: t.TempDir(), dirs: map[string]string{}, nodes: map[string]*Node{}}
	tc.brokers, tc.kf = brokers(t)
	t.Cleanup(func() { // before base is removed: cleanups run last first

		for _, n := range tc.nodes {
			n.Close()
		}
	})
	return tc
}

// start opens node id, on its earlier directory if it had one.
func (tc *testCluster) start(id string) *Node {
	if tc.dirs[id] == "" {
		tc.dirs[id] = filepath.Join(tc.base, id)
	}
	n, err := Open(context.Background(), Config{Brokers: tc.brokers, Topic: tc.topic, Partitions: testPartitions, NodeID: id, Advertise: "http://" + id,
		Dir: tc.dirs[id], Repo: tc.repo, RepoName: "ads.yaml", Logger: slog.New(slog.DiscardHandler),
		Engine: engine.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)}, ProduceTimeout: 5 * time.Second,
		KafkaOpts: []kgo.Opt{kgo.SessionTimeout(1500 * time.Millisecond), kgo.HeartbeatInterval(100 * time.Millisecond)}})
	require.NoError(tc.t, err)
	tc.nodes[id] = n
	return n
}

func (tc *testCluster) stop(id string) {
	require.NoError(tc.t, tc.nodes[id].Close())
	delete(tc.nodes, id)
}

// owner returns the node serving partition p, waiting for one.
func (tc *testCluster) owner(p int32) *engine.DB {
	var db *engine.DB
	require.Eventually(tc.t, func() bool {
		found := 0
		for _, n := range tc.nodes {
			if d, err := n.Owner(p); err == nil {
				db, found = d, found+1
			}
		}
		require.LessOrEqual(tc.t, found, 1, "partition %d is served by two nodes", p)
		return found == 1
	}, 30*time.Second, 10*time.Millisecond, "no node serves partition %d", p)
	return db
}

// waitServed waits until every partition is served by one node.
func (tc *testCluster) waitServed() {
	for p := range int32(testPartitions) {
		tc.owner(p)
	}
}

// waitRoutes waits until every node routes every partition to the node
// that serves it.
func (tc *testCluster) waitRoutes() {
	require.Eventually(tc.t, func() bool {
		for p := range int32(testPartitions) {
			var owner string
			for id, n := range tc.nodes {
				if _, err := n.Owner(p); err == nil {
					owner = id
				}
			}
			for id, n := range tc.nodes {
				r, err := n.RouteOf(p)
				if err != nil || r.Node != owner || r.Self != (id == owner) || r.URL != "http://"+owner {
					return false
				}
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "the nodes do not agree on who serves what")
}

// newOracle is one engine with the test's repo: the single node fed the
// acknowledged requests that every cluster read is compared with.
func (tc *testCluster) newOracle() *engine.DB {
	oracle, err := engine.Open(engine.Options{Dir: tc.t.TempDir(), NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(tc.t, err)
	tc.t.Cleanup(func() { oracle.Close() })
	_, err = oracle.ApplyWait(context.Background(), "ads.yaml", tc.repo)
	require.NoError(tc.t, err)
	return oracle
}

// checkAgainst waits until the owners applied every position, then
// requires every user's vector, read from its partition's owner, to equal
// the oracle's.
func (tc *testCluster) checkAgainst(oracle *engine.DB, users int, positions []engine.Position) {
	for _, pos := range positions {
		db := tc.owner(pos.Partition)
		require.Eventually(tc.t, func() bool {
			got, ok, err := db.AppliedPosition()
			return err == nil && ok && got.Offset >= pos.Offset
		}, 30*time.Second, 5*time.Millisecond, "partition %d never applied offset %d", pos.Partition, pos.Offset)
	}
	asOf := time.Now() // aggregates' effective time is the read's time
	for u := range users {
		user := fmt.Sprintf("u%d", u)
		want, got := tc.read(oracle, user, asOf), tc.read(tc.owner(int32(PartitionOf([]byte(user), testPartitions))), user, asOf)
		assert.Equal(tc.t, fmt.Sprint(want), fmt.Sprint(got), "user %s", user)
	}
}

func (tc *testCluster) read(db *engine.DB, user string, asOf time.Time) *engine.FeatureVector {
	v, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2",
		JoinKeys: map[string]any{"user_id": user}, AsOf: asOf})
	require.NoError(tc.t, err)
	return v
}

// logOwners logs which node owns which partitions.
func (tc *testCluster) logOwners(when string) {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(tc.nodes)) {
		fmt.Fprintf(&b, " %s%v", id, slices.Sorted(slices.Values(tc.nodes[id].Owned())))
	}
	tc.t.Logf("%s:%s", when, b.String())
}

func (tc *testCluster) any(r *rand.Rand) *Node {
	ids := make([]string, 0, len(tc.nodes))
	for id := range tc.nodes {
		ids = append(ids, id)
	}
	return tc.nodes[ids[r.IntN(len(ids))]]
}

// TestClusterAppliesEveryRecordOnce: requests ingested through any node
// of a changing cluster — a node leaves, a new one joins, the first comes
// back on its old data — are applied exactly once: every key's features,
// read from its partition's owner, equal those of one node that ingested
// every acknowledged request.
func TestClusterAppliesEveryRecordOnce(t *testing.T) {
	const users = 60
	tc := newTestCluster(t)
	oracle := tc.newOracle()
	for _, id := range []string{"n1", "n2", "n3"} {
		tc.start(id)
	}
	tc.waitServed()
	r := rand.New(rand.NewPCG(11, 12))
	var positions []engine.Position
	ingest := func(k int) {
		for range k {
			body := clicks.Body(r, time.Now(), 1+r.IntN(40), users)
			resp, pos, err := tc.any(r).Ingest(context.Background(), body, nil)
			require.NoError(t, err)
			want, err := oracle.IngestJSON(body, nil)
			require.NoError(t, err)
			require.Equal(t, want, resp)
			require.NotEmpty(t, pos)
			positions = append(positions, pos...)
		}
	}
	ingest(20)
	tc.logOwners("3 nodes")
	tc.stop("n2") // its partitions move to n1 and n3, which replay them from Kafka
	ingest(20)
	tc.waitServed()
	tc.logOwners("n2 stopped")
	tc.start("n4") // a new node takes some partitions
	ingest(20)
	tc.waitServed()
	tc.logOwners("n4 joined")
	tc.start("n2") // back on its old data: resumes each partition it gets from its own offset
	ingest(20)
	tc.waitServed()
	tc.logOwners("n2 back")
	tc.waitRoutes()
	tc.checkAgainst(oracle, users, positions)
}

// TestNodeResumesFromItsOwnOffsets: a node that stops while requests go
// on being produced, and restarts on its data, applies each record once:
// those it had applied are not applied again, the rest are.
func TestNodeResumesFromItsOwnOffsets(t *testing.T) {
	tc := newTestCluster(t)
	oracle := tc.newOracle()
	r := rand.New(rand.NewPCG(21, 22))
	tc.start("n1")
	tc.start("n2")
	tc.waitServed()
	var last []engine.Position
	for i := range 30 {
		if i == 10 {
			tc.stop("n1") // n2 takes n1's partitions, replaying them
		}
		if i == 20 {
			tc.stop("n2")  // nobody consumes now; Kafka holds the requests
			tc.start("n1") // back on its old data, with every partition
		}
		body := clicks.Body(r, time.Now(), 1+r.IntN(30), 20)
		_, pos, err := tc.any(r).Ingest(context.Background(), body, nil)
		require.NoError(t, err)
		_, err = oracle.IngestJSON(body, nil)
		require.NoError(t, err)
		last = append(last, pos...)
	}
	tc.waitServed()
	tc.logOwners("end")
	require.NoError(t, tc.nodes["n1"].WaitApplied(context.Background(), last))
	tc.checkAgainst(oracle, 20, last)
}

// TestIngestRefusesBadInput: a bad request is refused before anything is
// produced, with the engine's error.
func TestIngestRefusesBadInput(t *testing.T) {
	tc := newTestCluster(t)
	n := tc.start("n1")
	_, pos, err := n.Ingest(context.Background(), []byte(`{"workspace_name": "ads", "dry_run": false, "records": {"impressions_event_source": [{"record": {"user_id": "u", "clicked": 1}}]}}`), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "timestamp")
	assert.Empty(t, pos)
	resp, pos, err := n.Ingest(context.Background(), []byte(`{"workspace_name": "ads", "dry_run": true, "records": {"impressions_event_source": [{"record": {"user_id": "u", "timestamp": "`+time.Now().Format(time.RFC3339)+`", "clicked": 1}}]}}`), nil)
	require.NoError(t, err)
	assert.NotNil(t, resp)
	assert.Empty(t, pos, "a dry run produces nothing")
}

// TestOpenRefusesBadConfig: a configuration that cannot work is refused
// with what to fix, before anything joins the group.
func TestOpenRefusesBadConfig(t *testing.T) {
	tc := newTestCluster(t)
	tc.start("n1") // creates the topic with testPartitions
	for name, c := range map[string]struct {
		cfg  Config
		want string
	}{
		"no_brokers":     {Config{Topic: "t", Partitions: 1, NodeID: "a", Dir: t.TempDir(), Repo: tc.repo}, "no Kafka brokers"},
		"zero_parts":     {Config{Brokers: tc.brokers, Topic: "t", NodeID: "a", Dir: t.TempDir(), Repo: tc.repo}, "partition count must be 1 to 65536, not 0"},
		"no_repo":        {Config{Brokers: tc.brokers, Topic: "t", Partitions: 1, NodeID: "a", Dir: t.TempDir()}, "no repo"},
		"parts_mismatch": {Config{Brokers: tc.brokers, Topic: tc.topic, Partitions: testPartitions + 1, NodeID: "b", Dir: t.TempDir(), Repo: tc.repo}, "has 6 partitions, but this node is configured with --partitions 7"},
		"unpartitionable": {Config{Brokers: tc.brokers, Topic: tc.topic, Partitions: testPartitions, NodeID: "c", Dir: t.TempDir(), Repo: []byte(`workspace: shop
entities: [{name: user, join_keys: [user_id]}, {name: item, join_keys: [item_id]}]
sources: [{name: orders, schema: [{name: user_id, type: String}, {name: item_id, type: String}, {name: ts, type: Timestamp}]}]
feature_views:
  - {name: by_user, source: orders, entities: [user], timestamp_field: ts, features: [{attribute: {name: item_id}}]}
  - {name: by_item, source: orders, entities: [item], timestamp_field: ts, features: [{attribute: {name: user_id}}]}
`)}, "same join keys"},
	} {
		t.Run(name, func(t *testing.T) {
			c.cfg.Logger = slog.New(slog.DiscardHandler)
			c.cfg.Engine.Logger = c.cfg.Logger
			n, err := Open(context.Background(), c.cfg)
			if n != nil {
				n.Close()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

// TestPartitionOfIsKafkas: keys land where Kafka's default partitioner
// puts them. The hashes are those of Kafka's own murmur2 test
// (org.apache.kafka.common.utils.UtilsTest.testMurmur2), high bit masked;
// with n = 2³¹−1 the partition is the masked hash itself.
func TestPartitionOfIsKafkas(t *testing.T) {
	for key, h := range map[string]int32{"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
		"a-little-bit-longer-string": -1486304829, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, "abc": 479470107} {
		masked := int(uint32(h) & 0x7fffffff)
		assert.Equal(t, masked%math.MaxInt32, PartitionOf([]byte(key), math.MaxInt32), "key %q", key)
		assert.Equal(t, masked%12, PartitionOf([]byte(key), 12), "key %q", key)
	}
}

// TestBrokerRestart: Kafka goes away and comes back on its port with its
// data while two nodes run. Ingest fails cleanly while it is down
// (nothing acknowledged), and afterwards every acknowledged request is
// applied once: the nodes reconnect and go on from their own offsets.
func TestBrokerRestart(t *testing.T) {
	if os.Getenv(brokersEnv) != "" {
		t.Skip("restarts kfake; skipped against a real cluster")
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100 * time.Millisecond), kfake.DataDir(t.TempDir())}
	kf, err := kfake.NewCluster(opts...)
	require.NoError(t, err)
	addr := kf.ListenAddrs()[0]
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	opts = append(opts, kfake.Ports(p))
	t.Cleanup(func() { kf.Close() })
	tc := newTestCluster(t)
	tc.brokers = []string{addr}
	oracle := tc.newOracle()
	tc.start("n1")
	tc.start("n2")
	tc.waitServed()
	r := rand.New(rand.NewPCG(41, 42))
	var positions []engine.Position
	ingest := func(k int) {
		for range k {
			body := clicks.Body(r, time.Now(), 1+r.IntN(20), 20)
			_, pos, err := tc.any(r).Ingest(context.Background(), body, nil)
			require.NoError(t, err)
			_, err = oracle.IngestJSON(body, nil)
			require.NoError(t, err)
			positions = append(positions, pos...)
		}
	}
	ingest(10)
	kf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	// Three records of user "gone" while Kafka is away: refused, so not
	// acknowledged; such a request may still commit late (the
	// transaction may reach Kafka before it went), but whole or not at
	// all, which is checked at the end.
	rec := fmt.Sprintf(`{"record": {"user_id": "gone", "timestamp": %q, "clicked": 1}}`, time.Now().Add(-time.Minute).Format(time.RFC3339Nano))
	gone := `{"workspace_name": "ads", "dry_run": false, "records": {"impressions_event_source": [` + rec + "," + rec + "," + rec + `]}}`
	_, _, err = tc.any(r).Ingest(ctx, []byte(gone), nil)
	cancel()
	require.ErrorIs(t, err, ErrUnavailable, "with Kafka down nothing is acknowledged")
	require.Eventually(t, func() bool { // the port may take a moment to be free
		kf, err = kfake.NewCluster(opts...)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "restarting kfake: %v", err)
	for _, id := range []string{"n1", "n2"} {
		require.Eventually(t, func() bool { // each node's producer reconnects
			body := clicks.Body(r, time.Now(), 1+r.IntN(20), 20)
			_, pos, err := tc.nodes[id].Ingest(context.Background(), body, nil)
			if err != nil {
				require.ErrorIs(t, err, ErrUnavailable)
				return false
			}
			_, err = oracle.IngestJSON(body, nil)
			require.NoError(t, err)
			positions = append(positions, pos...)
			return true
		}, 30*time.Second, 100*time.Millisecond)
	}
	ingest(10)
	tc.waitServed()
	tc.checkAgainst(oracle, 20, positions)
	got := tc.read(tc.owner(int32(PartitionOf([]byte("gone"), testPartitions))), "gone", time.Now())
	count := got.Features[3].Value.I // clicked_count_1d
	assert.True(t, count == 0 || count == 3, "the refused request was applied in part: %d of its 3 records", count)
	t.Logf("the request refused while Kafka was away: %d of its 3 records applied", count)
}

// TestConcurrentIngest: many requests at once through two nodes share
// transactions (group commit); each is acknowledged with its own
// positions and applied exactly once.
func TestConcurrentIngest(t *testing.T) {
	tc := newTestCluster(t)
	oracle := tc.newOracle()
	tc.start("n1")
	tc.start("n2")
	tc.waitServed()
	var mu sync.Mutex
	var positions []engine.Position
	var wg sync.WaitGroup
	for w := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 77))
			n := tc.nodes[[]string{"n1", "n2"}[w%2]]
			for range 5 {
				body := clicks.Body(r, time.Now(), 1+r.IntN(3), 30)
				_, pos, err := n.Ingest(context.Background(), body, nil)
				if !assert.NoError(t, err) {
					return
				}
				_, err = oracle.IngestJSON(body, nil)
				assert.NoError(t, err)
				mu.Lock()
				positions = append(positions, pos...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	seen := map[engine.Position]bool{}
	for _, p := range positions {
		require.False(t, seen[p], "two requests were given the same position %+v", p)
		seen[p] = true
	}
	tc.checkAgainst(oracle, 30, positions)
}

// adsV2 is the ads repo with one more aggregate in user_click_counts: a
// change of its computation, so a new version built by a backfill.
func adsV2(t *testing.T, repo []byte) []byte {
	const after = "      - aggregate: {input: clicked_squared, function: sum, window: 24h}\n"
	require.Contains(t, string(repo), after)
	return []byte(strings.Replace(string(repo), after, after+"      - aggregate: {input: clicked, function: sum, window: 6h}\n", 1))
}

// agrees reports whether every user's vector, read from its partition's
// owner, equals the oracle's.
func (tc *testCluster) agrees(oracle *engine.DB, users int) bool {
	asOf := time.Now()
	for u := range users {
		user := fmt.Sprintf("u%d", u)
		db, err := tc.ownerNow(int32(PartitionOf([]byte(user), testPartitions)))
		if err != nil {
			return false
		}
		want, err1 := oracle.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2",
			JoinKeys: map[string]any{"user_id": user}, AsOf: asOf})
		got, err2 := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2",
			JoinKeys: map[string]any{"user_id": user}, AsOf: asOf})
		if err1 != nil || err2 != nil || fmt.Sprint(want) != fmt.Sprint(got) {
			return false
		}
	}
	return true
}

// ownerNow returns the DB serving partition p now, if one does.
func (tc *testCluster) ownerNow(p int32) (*engine.DB, error) {
	for _, n := range tc.nodes {
		if db, err := n.Owner(p); err == nil {
			return db, nil
		}
	}
	return nil, ErrNoOwner
}

func viewVersion(t *testing.T, db *engine.DB) int {
	s, err := db.FeatureViewSummary("ads", "user_click_counts")
	require.NoError(t, err)
	return s.Version
}

// TestApplyReachesEveryNode: a repo file applied through one node is
// applied by every node, to its catalog and to every partition it owns,
// now or later (a partition that moves, a node that joins): reads equal
// one node that applied it; a node that restarts does not apply its
// start file again over it; a file that does not parse is refused and
// written nowhere.
func TestApplyReachesEveryNode(t *testing.T) {
	const users = 40
	tc := newTestCluster(t)
	oracle := tc.newOracle()
	for _, id := range []string{"n1", "n2", "n3"} {
		tc.start(id)
	}
	tc.waitServed()
	r := rand.New(rand.NewPCG(31, 32))
	ingest := func(k int) {
		for range k {
			body := clicks.Body(r, time.Now(), 1+r.IntN(30), users)
			_, _, err := tc.any(r).Ingest(context.Background(), body, nil)
			require.NoError(t, err)
			_, err = oracle.IngestJSON(body, nil)
			require.NoError(t, err)
		}
	}
	ingest(15)
	v1, v2 := tc.repo, adsV2(t, tc.repo)

	_, err := tc.nodes["n2"].Apply(context.Background(), "ads.yaml", []byte("workspace: ads\nfeature_views: [oops"))
	require.Error(t, err, "a file that does not parse is refused")

	res, err := tc.nodes["n2"].Apply(context.Background(), "ads.yaml", v2)
	require.NoError(t, err)
	require.Equal(t, "ads", res.Workspace)
	require.False(t, res.Plan.Empty())
	_, err = oracle.ApplyWait(context.Background(), "ads.yaml", v2)
	require.NoError(t, err)
	ingest(15)
	require.Eventually(t, func() bool { return tc.agrees(oracle, users) }, 30*time.Second, 20*time.Millisecond,
		"the nodes' partitions never served what one node that applied the file serves")
	for id, n := range tc.nodes {
		plan, err := n.Plan("ads.yaml", v2)
		require.NoError(t, err)
		assert.True(t, plan.Empty(), "node %s's catalog lacks the applied file", id)
	}
	res, err = tc.nodes["n3"].Apply(context.Background(), "ads.yaml", v2)
	require.NoError(t, err)
	require.True(t, res.Plan.Empty(), "the same file again changes nothing")

	tc.stop("n3")  // its partitions open on n1 and n2 with the applied file, and replay Kafka
	tc.start("n4") // a new node reads the applied file before it opens anything
	plan, err := tc.nodes["n4"].Plan("ads.yaml", v2)
	require.NoError(t, err)
	require.True(t, plan.Empty(), "a node that joins after the apply starts with its file, not only its --repo")
	ingest(10)
	tc.waitServed()
	require.Eventually(t, func() bool { return tc.agrees(oracle, users) }, 30*time.Second, 20*time.Millisecond)

	before := viewVersion(t, tc.nodes["n1"].Catalog())
	tc.stop("n1")
	n1 := tc.start("n1") // starts with --repo v1, but the topic's v2 is the workspace's definition
	require.Equal(t, before, viewVersion(t, n1.Catalog()), "a restart applied its start file over the applied one")
	plan, err = n1.Plan("ads.yaml", v1)
	require.NoError(t, err)
	require.False(t, plan.Empty())
	tc.waitServed()
	require.Eventually(t, func() bool { return tc.agrees(oracle, users) }, 30*time.Second, 20*time.Millisecond)
}

// TestNodesStartedWithDifferentFilesAgree: the first node's --repo file
// becomes the cluster's definition of its workspace; a node started later
// with another file takes the cluster's, so that every node validates and
// serves the same views; the other file is then applied through the API.
func TestNodesStartedWithDifferentFilesAgree(t *testing.T) {
	tc := newTestCluster(t)
	v1, v2 := tc.repo, adsV2(t, tc.repo)
	tc.start("n1")
	tc.repo = v2
	n2 := tc.start("n2")
	for id, n := range tc.nodes {
		plan, err := n.Plan("ads.yaml", v1)
		require.NoError(t, err)
		assert.True(t, plan.Empty(), "node %s does not hold the cluster's file", id)
	}
	res, err := n2.Apply(context.Background(), "ads.yaml", v2)
	require.NoError(t, err)
	require.False(t, res.Plan.Empty())
	require.Eventually(t, func() bool {
		plan, err := tc.nodes["n1"].Plan("ads.yaml", v2)
		return err == nil && plan.Empty()
	}, 10*time.Second, 10*time.Millisecond, "n1 never applied the file applied through n2")
}
