package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/cluster"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/internal/clicks"
)

const clusterParts = 6

// clusterNode is one node of a test cluster behind its HTTP server,
// every exchange validated against api/openapi.yaml.
type clusterNode struct {
	id, url  string
	node     *cluster.Node
	stop     func() // HTTP down, then the node leaves the group
	stopHTTP func() // HTTP down only: the node keeps its partitions
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func startClusterNode(t *testing.T, brokers []string, topic, id, dir string, repo []byte, opts ...func(*httpapi.Options)) *clusterNode {
	addr := freeAddr(t)
	n, err := cluster.Open(context.Background(), cluster.Config{Brokers: brokers, Topic: topic, Partitions: clusterParts, NodeID: id,
		Advertise: "http://" + addr, Dir: dir, Repo: repo, RepoName: "ads.yaml", Logger: discard,
		Engine:    engine.Options{NoSync: true, Logger: discard},
		KafkaOpts: []kgo.Opt{kgo.SessionTimeout(1500 * time.Millisecond), kgo.HeartbeatInterval(100 * time.Millisecond)}})
	require.NoError(t, err)
	o := httpapi.Options{Addr: addr, NoAuth: true, Logger: discard, Cluster: n}
	for _, f := range opts {
		f(&o)
	}
	srv, err := httpapi.New(n.Catalog(), o)
	require.NoError(t, err)
	httpapi.WrapHandler(srv, func(h http.Handler) http.Handler { return validated(t, h, true) })
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, func(net.Addr) { close(ready) }) }()
	<-ready
	cn := &clusterNode{id: id, url: "http://" + addr, node: n}
	var once, httpOnce sync.Once
	cn.stopHTTP = func() {
		httpOnce.Do(func() {
			cancel()
			<-done
		})
	}
	cn.stop = func() {
		once.Do(func() {
			cn.stopHTTP()
			n.Close()
		})
	}
	t.Cleanup(cn.stop)
	return cn
}

// httpCluster is a test cluster over HTTP: a kfake Kafka, nodes on the
// ads example's repo, and a single node (the oracle) to compare them with.
type httpCluster struct {
	t      *testing.T
	kf     *kfake.Cluster
	repo   []byte
	base   string
	nodes  []*clusterNode
	oracle *liveNode
	mods   []func(*httpapi.Options)
}

// newHTTPCluster starts the nodes ids and waits until they settled.
func newHTTPCluster(t *testing.T, ids []string, mods ...func(*httpapi.Options)) *httpCluster {
	kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(kf.Close) // after the nodes' cleanups, which run first
	repo, err := os.ReadFile(filepath.Join("..", "examples", "ads", "features.yaml"))
	require.NoError(t, err)
	c := &httpCluster{t: t, kf: kf, repo: repo, base: t.TempDir(), oracle: newLiveNode(t, httpapi.Options{}), mods: mods}
	for _, id := range ids {
		c.add(id)
	}
	waitRoutes(t, c.nodes)
	return c
}

// add starts node id, on its earlier directory if it had one, and adds
// it to c.nodes; it does not wait for the group to settle.
func (c *httpCluster) add(id string) *clusterNode {
	n := startClusterNode(c.t, c.kf.ListenAddrs(), "fl", id, filepath.Join(c.base, id), c.repo, c.mods...)
	c.nodes = append(c.nodes, n)
	return n
}

func post(t *testing.T, url, body string, hdr ...string) (int, http.Header, string) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

// TestClusterOverHTTP: three nodes on kfake behind their HTTP servers.
// Requests ingested through any node are read, from every node (served
// or forwarded once), as one node fed the same requests serves them;
// batches merge rows served by several nodes in row order; while a node
// leaves, reads answer the oracle's value or 503 with Retry-After,
// never another value; routes that need every partition and are not
// built yet answer 501.
func TestClusterOverHTTP(t *testing.T) {
	c := newHTTPCluster(t, []string{"n1", "n2", "n3"})
	nodes, oracle := c.nodes, c.oracle

	r := rand.New(rand.NewPCG(5, 6))
	const users = 30
	var positions []map[string]any
	for range 25 {
		body := string(clicks.Body(r, time.Now(), 1+r.IntN(20), users))
		status, _, got := post(t, nodes[r.IntN(len(nodes))].url+"/ingest", body)
		require.Equal(t, http.StatusOK, status, got)
		var resp struct {
			KafkaPositions []map[string]any `json:"kafkaPositions"`
		}
		require.NoError(t, json.Unmarshal([]byte(got), &resp))
		require.NotEmpty(t, resp.KafkaPositions)
		positions = append(positions, resp.KafkaPositions...)
		status, _, want := post(t, oracle.url("/ingest"), body)
		require.Equal(t, http.StatusOK, status, want)
		assert.Equal(t, want, got[:strings.Index(got, `,"kafkaPositions"`)]+"}", "the ingest answer, but for the positions")
	}
	minPos, err := json.Marshal(positions)
	require.NoError(t, err)
	asOf := time.Now().UTC().Format(time.RFC3339Nano)
	read := func(url, user string) (int, http.Header, string) {
		return post(t, url+"/api/v1/feature-service/get-features", fmt.Sprintf(`{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service_v2",
			"join_key_map": {"user_id": "u%s"}, "as_of": %q, "min_positions": %s, "metadata_options": {"include_effective_times": true, "include_serving_status": true}}}`, user, asOf, minPos))
	}
	oracleRead := func(user string) string {
		status, _, b := post(t, oracle.url("/api/v1/feature-service/get-features"), fmt.Sprintf(`{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service_v2",
			"join_key_map": {"user_id": "u%s"}, "as_of": %q, "metadata_options": {"include_effective_times": true, "include_serving_status": true}}}`, user, asOf))
		require.Equal(t, http.StatusOK, status, b)
		return b
	}
	for u := range users {
		want := oracleRead(fmt.Sprint(u))
		for _, n := range nodes {
			status, _, got := read(n.url, fmt.Sprint(u))
			require.Equal(t, http.StatusOK, status, got)
			assert.Equal(t, want, got, "user u%d read through %s", u, n.id)
		}
	}

	// A batch over every user: rows of every partition, merged in order.
	var rows []string
	for u := range users {
		rows = append(rows, fmt.Sprintf(`{"join_key_map": {"user_id": "u%d"}}`, u))
	}
	batch := fmt.Sprintf(`{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service_v2", "request_data": [%s], "as_of": %q,
		"metadata_options": {"include_names": true, "include_effective_times": true, "include_serving_status": true}}}`, strings.Join(rows, ","), asOf)
	status, _, want := post(t, oracle.url("/api/v1/feature-service/get-features-batch"), batch)
	require.Equal(t, http.StatusOK, status, want)
	for _, n := range nodes {
		status, _, got := post(t, n.url+"/api/v1/feature-service/get-features-batch", batch)
		require.Equal(t, http.StatusOK, status, got)
		assert.JSONEq(t, want, got, "batch through %s", n.id)
	}
	// min_positions on a batch (SPEC §10): the positions ingest returned
	// read as before; one never written is refused with 503 after the wait.
	withPos := strings.Replace(batch, `"as_of"`, `"min_positions": `+string(minPos)+`, "as_of"`, 1)
	for _, n := range nodes {
		status, _, got := post(t, n.url+"/api/v1/feature-service/get-features-batch", withPos)
		require.Equal(t, http.StatusOK, status, got)
		assert.JSONEq(t, want, got, "batch with min_positions through %s", n.id)
	}
	never := strings.Replace(batch, `"as_of"`, `"min_positions": [{"partition": 0, "offset": "1099511627776"}], "as_of"`, 1)
	bstatus, bhdr, bgot := post(t, nodes[0].url+"/api/v1/feature-service/get-features-batch", never)
	assert.Equal(t, http.StatusServiceUnavailable, bstatus, bgot)
	assert.Equal(t, "1", bhdr.Get("Retry-After"))

	// n2 leaves: its partitions move. Reads give the oracle's value or
	// 503 with Retry-After, never anything else.
	nodes[1].stop()
	live := []*clusterNode{nodes[0], nodes[2]}
	refused := 0
	deadline := time.Now().Add(30 * time.Second)
	for served := false; !served; {
		require.True(t, time.Now().Before(deadline), "the partitions of n2 were never served again")
		served = true
		for u := range users {
			want := oracleRead(fmt.Sprint(u))
			for _, n := range live {
				status, hdr, got := read(n.url, fmt.Sprint(u))
				switch status {
				case http.StatusOK:
					require.Equal(t, want, got, "user u%d through %s during the rebalance", u, n.id)
				case http.StatusServiceUnavailable:
					require.Equal(t, "1", hdr.Get("Retry-After"), got)
					refused++
					served = false
				default:
					t.Fatalf("user u%d through %s: %d %s", u, n.id, status, got)
				}
			}
		}
	}
	t.Logf("reads refused with 503 while n2's partitions moved: %d", refused)

	// What cluster mode does not serve yet says so.
	req, err := http.NewRequest(http.MethodGet, nodes[0].url+"/api/v1/workspaces/ads/feature-views/user_click_counts/output-stream", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	status, got := resp.StatusCode, string(b)
	assert.Equal(t, http.StatusNotImplemented, status)
	assert.Contains(t, got, "not available in cluster mode yet")
	status, _, got = post(t, nodes[0].url+"/api/v1/feature-service/get-features", `{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service_v2",
		"join_key_map": {"user_id": "u1"}, "min_positions": [{"partition": -1, "offset": "3"}]}}`)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, got, "min_positions[0] needs a partition and an offset")
	status, hdr, got := post(t, nodes[0].url+"/api/v1/feature-service/get-features", fmt.Sprintf(`{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service_v2",
		"join_key_map": {"user_id": "u1"}, "min_positions": [{"partition": %d, "offset": "%d"}]}}`, partitionOfUser("u1"), 1<<40))
	assert.Equal(t, http.StatusServiceUnavailable, status, "a position never written is never applied")
	assert.Equal(t, "1", hdr.Get("Retry-After"))
	assert.Contains(t, got, "has not applied offset 1099511627776")
}

func partitionOfUser(u string) int { return cluster.PartitionOf([]byte(u), clusterParts) }

// waitRoutes waits until the group settled: every node serves some
// partitions, and every node routes every partition to the same node.
func waitRoutes(t *testing.T, nodes []*clusterNode) {
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if len(n.node.Owned()) == 0 {
				return false
			}
		}
		for p := range int32(clusterParts) {
			owner := ""
			for _, n := range nodes {
				r, err := n.node.RouteOf(p)
				if err != nil || (owner != "" && r.Node != owner) {
					return false
				}
				owner = r.Node
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "the cluster never settled")
}

// TestClusterIdempotencyKeyOverHTTP: three nodes on kfake behind their
// HTTP servers, and one standalone node (the oracle) fed each keyed
// request once. A key sent through every node in turn, and a key sent by
// many clients at once through any node, write once: every answer is the
// first's, byte for byte (its kafkaPositions too), the repeats marked
// Idempotent-Replayed, and every user's features equal the oracle's.
// After the node serving a key's partition stops, repeats through the
// remaining nodes still get the first answer and write nothing. Bad keys
// get the standalone node's answer; a request forwarded to a node that
// does not serve its key's partition is refused with 503; dry runs ignore
// keys.
func TestClusterIdempotencyKeyOverHTTP(t *testing.T) {
	c := newHTTPCluster(t, []string{"n1", "n2", "n3"})
	nodes, oracle := c.nodes, c.oracle

	r := rand.New(rand.NewPCG(9, 10))
	const users = 30
	firsts := map[string]string{} // key → the first answer
	var positions []jsontext.Value
	// first records the first answer of key, whose body the oracle
	// ingests once, and checks it against the oracle's.
	first := func(key, body, got string) {
		t.Helper()
		firsts[key] = got
		var resp struct {
			KafkaPositions []jsontext.Value `json:"kafkaPositions"`
		}
		require.NoError(t, json.Unmarshal([]byte(got), &resp))
		require.NotEmpty(t, resp.KafkaPositions)
		positions = append(positions, resp.KafkaPositions...)
		status, _, want := post(t, oracle.url("/ingest"), body)
		require.Equal(t, http.StatusOK, status, want)
		assert.Equal(t, want, got[:strings.Index(got, `,"kafkaPositions"`)]+"}", "key %s: the ingest answer, but for the positions", key)
	}
	// Sequentially, through every node in turn, twice.
	for k := range 4 {
		key, body := fmt.Sprint("seq-", k), string(clicks.Body(r, time.Now(), 1+r.IntN(20), users))
		for i, n := range append(slices.Clone(nodes), nodes...) {
			status, hdr, got := post(t, n.url+"/ingest", body, "Idempotency-Key", key)
			require.Equal(t, http.StatusOK, status, got)
			if i == 0 {
				assert.Empty(t, hdr.Get("Idempotent-Replayed"))
				first(key, body, got)
				continue
			}
			assert.Equal(t, "true", hdr.Get("Idempotent-Replayed"), "key %s through %s", key, n.id)
			assert.Equal(t, firsts[key], got, "key %s through %s", key, n.id)
		}
		// Another body with the key: the first answer, nothing written.
		status, _, got := post(t, nodes[k%3].url+"/ingest", string(clicks.Body(r, time.Now(), 5, users)), "Idempotency-Key", key)
		require.Equal(t, http.StatusOK, status, got)
		assert.Equal(t, firsts[key], got)
	}
	// Concurrently: many clients send each key through any node at once.
	for k := range 4 {
		key, body := fmt.Sprint("conc-", k), string(clicks.Body(r, time.Now(), 1+r.IntN(20), users))
		const clients = 24
		answers, replayed := make([]string, clients), make([]string, clients)
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, hdr, got := post(t, nodes[c%len(nodes)].url+"/ingest", body, "Idempotency-Key", key)
				assert.Equal(t, http.StatusOK, status, got)
				answers[c], replayed[c] = got, hdr.Get("Idempotent-Replayed")
			}()
		}
		wg.Wait()
		writers := 0
		for c := range clients {
			assert.Equal(t, answers[0], answers[c], "key %s, client %d", key, c)
			if replayed[c] == "" {
				writers++
			}
		}
		assert.Equal(t, 1, writers, "key %s: answers not marked replayed", key)
		first(key, body, answers[0])
	}
	minPos, err := json.Marshal(positions)
	require.NoError(t, err)
	compare := func(live []*clusterNode, when string) {
		t.Helper()
		asOf := time.Now().UTC().Format(time.RFC3339Nano)
		for u := range users {
			q := fmt.Sprintf(`{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service_v2",
				"join_key_map": {"user_id": "u%d"}, "as_of": %q%%s}}`, u, asOf)
			status, _, want := post(t, oracle.url("/api/v1/feature-service/get-features"), fmt.Sprintf(q, ""))
			require.Equal(t, http.StatusOK, status, want)
			n := live[u%len(live)]
			require.Eventually(t, func() bool {
				status, _, got := post(t, n.url+"/api/v1/feature-service/get-features", fmt.Sprintf(q, `, "min_positions": `+string(minPos)))
				if status == http.StatusServiceUnavailable {
					return false // the partition is moving
				}
				require.Equal(t, http.StatusOK, status, got)
				assert.Equal(t, want, got, "user u%d through %s, %s", u, n.id, when)
				return true
			}, 30*time.Second, 20*time.Millisecond)
		}
	}
	compare(nodes, "every key sent")

	// Bad keys: the standalone node's answer. (A control byte is refused
	// by net/http before any handler, so a tab stands for them.)
	body := string(clicks.Body(r, time.Now(), 1, users))
	for _, key := range []string{"", strings.Repeat("k", engine.MaxIdempotencyKeyLen+1), "tab\tkey", "é"} {
		wantStatus, _, want := post(t, oracle.url("/ingest"), body, "Idempotency-Key", key)
		require.Equal(t, http.StatusBadRequest, wantStatus, want)
		for _, n := range nodes {
			status, _, got := post(t, n.url+"/ingest", body, "Idempotency-Key", key)
			assert.Equal(t, wantStatus, status, "key %q through %s", key, n.id)
			assert.Equal(t, want, got, "key %q through %s", key, n.id)
		}
	}
	// A dry run ignores its key: any node answers it, and nothing is
	// remembered.
	dry := strings.Replace(body, `"dry_run": false`, `"dry_run": true`, 1)
	require.NotEqual(t, body, dry)
	_, _, want := post(t, oracle.url("/ingest"), dry)
	for _, n := range nodes {
		status, _, got := post(t, n.url+"/ingest", dry, "Idempotency-Key", "dry")
		require.Equal(t, http.StatusOK, status, got)
		assert.Equal(t, want, got[:strings.Index(got, `,"kafkaPositions"`)]+"}")
	}
	// A request forwarded to a node that does not serve its key's
	// partition is refused, not forwarded again.
	q := cluster.KeyPartition("ads", "seq-0", clusterParts)
	var owner *clusterNode
	for _, n := range nodes {
		if _, err := n.node.Owner(q); err == nil {
			owner = n
		} else {
			status, hdr, got := post(t, n.url+"/ingest", body, "Idempotency-Key", "seq-0", "X-Featurelog-Forwarded-By", "elsewhere")
			assert.Equal(t, http.StatusServiceUnavailable, status, got)
			assert.Equal(t, "1", hdr.Get("Retry-After"))
			assert.Contains(t, got, "does not serve partition")
		}
	}
	require.NotNil(t, owner)

	// The node serving seq-0's partition stops: the partition moves, and
	// every key repeated through the remaining nodes gets its first answer.
	owner.stop()
	var live []*clusterNode
	for _, n := range nodes {
		if n != owner {
			live = append(live, n)
		}
	}
	waitRoutes(t, live)
	refused := 0
	for _, key := range slices.Sorted(maps.Keys(firsts)) {
		for _, n := range live {
			for {
				status, hdr, got := post(t, n.url+"/ingest", body, "Idempotency-Key", key)
				if status == http.StatusServiceUnavailable { // the routes are settling
					require.Equal(t, "1", hdr.Get("Retry-After"))
					refused++
					require.Less(t, refused, 1000, got)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				require.Equal(t, http.StatusOK, status, got)
				assert.Equal(t, "true", hdr.Get("Idempotent-Replayed"))
				assert.Equal(t, firsts[key], got, "key %s through %s after %s stopped", key, n.id, owner.id)
				break
			}
		}
	}
	t.Logf("repeats refused with 503 while the routes settled: %d", refused)
	compare(live, "after "+owner.id+" stopped")
}
