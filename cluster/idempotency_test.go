package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/internal/clicks"
)

// keyOwner returns the node serving the partition of key in "ads",
// waiting for one.
func (tc *testCluster) keyOwner(key string) *Node {
	q := KeyPartition("ads", key, testPartitions)
	var owner *Node
	require.Eventually(tc.t, func() bool {
		for _, n := range tc.nodes {
			if _, err := n.Owner(q); err == nil {
				owner = n
				return true
			}
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "no node serves partition %d, of key %q", q, key)
	return owner
}

// ingestKey sends body with key to the node serving the key's partition
// (what httpapi forwards to), retrying while the partition moves, and
// requires success.
func (tc *testCluster) ingestKey(body []byte, key string) (*engine.IngestResponse, []engine.Position) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, pos, err := tc.keyOwner(key).IngestWithKey(context.Background(), body, key, nil)
		if err == nil {
			return resp, pos
		}
		if !errors.Is(err, ErrNotOwner) && !errors.Is(err, ErrCatchingUp) || time.Now().After(deadline) {
			require.NoError(tc.t, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sameFirst requires resp to be first's response: the same counts and
// positions, marked Replayed unless it is the first itself.
func sameFirst(t *testing.T, first, resp *engine.IngestResponse, firstPos, pos []engine.Position, what string) {
	t.Helper()
	c := *resp
	c.Replayed = false
	assert.Equal(t, *first, c, what)
	assert.Equal(t, firstPos, pos, what)
}

// TestIdempotencyKeyConcurrent: many requests with one key at once, on
// the node serving the key's partition, write once: one of them writes,
// the others are answered with its response (positions included), and
// the features equal those of one node fed each request once. Later
// repeats, with another body too, write nothing; a dry run with the key
// writes nothing and is not remembered; a key's partition is where
// KeyPartition says, per workspace.
func TestIdempotencyKeyConcurrent(t *testing.T) {
	tc := newTestCluster(t)
	oracle := tc.newOracle()
	tc.start("n1")
	tc.start("n2")
	tc.waitServed()
	const users, keys, senders = 20, 6, 16
	r := rand.New(rand.NewPCG(31, 32))
	var positions []engine.Position
	for k := range keys {
		key := fmt.Sprintf("key-%d-%s", k, strings.Repeat("x", k*40))
		body := clicks.Body(r, time.Now(), 1+r.IntN(20), users)
		resps := make([]*engine.IngestResponse, senders)
		poss := make([][]engine.Position, senders)
		owner := tc.keyOwner(key)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				var err error
				resps[i], poss[i], err = owner.IngestWithKey(context.Background(), body, key, nil)
				assert.NoError(t, err)
			}()
		}
		close(start)
		wg.Wait()
		var first *engine.IngestResponse
		var firstPos []engine.Position
		writers := 0
		for i, resp := range resps {
			require.NotNil(t, resp, "sender %d", i)
			if !resp.Replayed {
				first, firstPos = resp, poss[i]
				writers++
			}
		}
		require.Equal(t, 1, writers, "key %d: requests that wrote", k)
		for i, resp := range resps {
			sameFirst(t, first, resp, firstPos, poss[i], fmt.Sprintf("key %d, sender %d", k, i))
		}
		want, err := oracle.IngestJSON(body, nil)
		require.NoError(t, err)
		first.Positions = nil
		assert.Equal(t, want, first)
		positions = append(positions, firstPos...)

		other := clicks.Body(r, time.Now(), 3, users)
		resp, pos := tc.ingestKey(other, key)
		require.True(t, resp.Replayed, "another body with the key")
		assert.Equal(t, firstPos, pos)
	}
	tc.checkAgainst(oracle, users, positions)

	dry := strings.Replace(string(clicks.Body(r, time.Now(), 2, users)), `"dry_run": false`, `"dry_run":false`, 1)
	dry = strings.Replace(dry, `"dry_run":false`, `"dry_run":true`, 1)
	require.Contains(t, dry, `"dry_run":true`)
	for _, n := range tc.nodes { // any node takes a dry run: it ignores its key
		resp, pos, err := n.IngestWithKey(context.Background(), []byte(dry), "dry", nil)
		require.NoError(t, err)
		assert.False(t, resp.Replayed)
		assert.Empty(t, pos)
	}
	body := clicks.Body(r, time.Now(), 2, users)
	resp, pos := tc.ingestKey(body, "dry")
	require.False(t, resp.Replayed, "a dry run does not use its key")
	_, err := oracle.IngestJSON(body, nil)
	require.NoError(t, err)
	tc.checkAgainst(oracle, users, pos)

	q := KeyPartition("ads", "dry", testPartitions)
	for _, n := range tc.nodes {
		if _, err := n.Owner(q); err != nil {
			_, _, err := n.IngestWithKey(context.Background(), body, "dry", nil)
			require.ErrorIs(t, err, ErrNotOwner, "a node not serving the key's partition refuses the request")
		}
	}
	assert.NotEqual(t, KeyPartition("ads", "ab", 1<<16), KeyPartition("adsa", "b", 1<<16), "the workspace and key are not just concatenated")
}

// TestIdempotencyKeyBadKeys: a key the engine refuses gets standalone
// ingest's error, on any node, before anything is looked up.
func TestIdempotencyKeyBadKeys(t *testing.T) {
	tc := newTestCluster(t)
	oracle := tc.newOracle()
	n := tc.start("n1")
	tc.waitServed()
	body := clicks.Body(rand.New(rand.NewPCG(1, 1)), time.Now(), 1, 5)
	for _, key := range []string{strings.Repeat("k", engine.MaxIdempotencyKeyLen+1), "tab\tkey", "é"} {
		_, want := oracle.IngestJSONWithKey(body, key, nil)
		require.Error(t, want)
		_, _, err := n.IngestWithKey(context.Background(), body, key, nil)
		require.Error(t, err)
		assert.Equal(t, want.Error(), err.Error())
		assert.Equal(t, engine.CodeInvalidArgument, engine.CodeOf(err))
	}
	_, _, err := n.IngestWithKey(context.Background(), []byte(`{"workspace_name": "nope", "dry_run": false, "records": {}}`), "k", nil)
	require.Error(t, err)
	assert.Equal(t, engine.CodeNotFound, engine.CodeOf(err))
}

// TestIdempotencyKeyProduceFailure: a request whose transaction Kafka
// refuses is not acknowledged and does not use its key: a retry with the
// key writes, once, and a repeat after it writes nothing.
func TestIdempotencyKeyProduceFailure(t *testing.T) {
	tc := newTestCluster(t)
	if tc.kf == nil {
		t.Skip("injects faults into kfake; skipped against a real cluster")
	}
	oracle := tc.newOracle()
	tc.start("n1")
	tc.start("n2")
	tc.waitServed()
	r := rand.New(rand.NewPCG(51, 52))
	const users = 20
	key := "retry-after-failure"
	q := KeyPartition("ads", key, testPartitions)
	body := clicks.Body(r, time.Now(), 5, users)
	owner := tc.keyOwner(key)
	// Kafka refuses the next write to the key's partition: the key record
	// (or the request's records there), so the transaction aborts.
	fault := tc.kf.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: tc.topic, Partitions: []int32{q}, Err: kerr.InvalidRecord})
	_, _, err := owner.IngestWithKey(context.Background(), body, key, nil)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Equal(t, 1, fault.Hits())
	resp, pos := tc.ingestKey(body, key)
	require.False(t, resp.Replayed, "the failed request did not use the key")
	_, err = oracle.IngestJSON(body, nil)
	require.NoError(t, err)
	again, againPos := tc.ingestKey(body, key)
	require.True(t, again.Replayed)
	sameFirst(t, resp, again, pos, againPos, "the repeat")
	tc.checkAgainst(oracle, users, pos)
}

// TestIdempotencyKeysAcrossRebalance: requests with keys keep coming
// through the nodes while the keys' partitions move (a node joins, then
// another leaves), each sent until acknowledged, then repeated at once:
// every key writes once, and every repeat, before or after its partition
// moved, is answered with the first response.
func TestIdempotencyKeysAcrossRebalance(t *testing.T) {
	tc := newTestCluster(t)
	oracle := tc.newOracle()
	tc.start("n1")
	tc.start("n2")
	tc.waitServed()
	const users, senders = 20, 6
	t0 := time.Now()
	body := func(k int) []byte { // the same for every send of k
		return clicks.Body(rand.New(rand.NewPCG(uint64(k), 63)), t0, 1+k%5, users)
	}
	var live atomic.Pointer[[]*Node] // the senders' view of the nodes: tc.nodes changes under them
	setLive := func() {
		ns := slices.Collect(maps.Values(tc.nodes))
		live.Store(&ns)
	}
	setLive()
	var refused, unserved atomic.Int64
	// send sends body with key to whichever live node serves its
	// partition, until one acknowledges it.
	send := func(body []byte, key string) (*engine.IngestResponse, []engine.Position) {
		q := KeyPartition("ads", key, testPartitions)
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			served := false
			for _, n := range *live.Load() {
				if _, err := n.Owner(q); err != nil {
					continue
				}
				served = true
				resp, pos, err := n.IngestWithKey(context.Background(), body, key, nil)
				if err == nil {
					return resp, pos
				}
				if !errors.Is(err, ErrNotOwner) && !errors.Is(err, ErrCatchingUp) {
					t.Errorf("key %s through %s: %v", key, n.ID(), err)
					return nil, nil
				}
				refused.Add(1)
			}
			if !served {
				unserved.Add(1)
			}
		}
		t.Errorf("key %s was never acknowledged", key)
		return nil, nil
	}
	var (
		mu       sync.Mutex
		firsts   = map[int]*engine.IngestResponse{}
		firstPos = map[int][]engine.Position{}
		next     atomic.Int64
		done     atomic.Bool
		wg       sync.WaitGroup
	)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() && !t.Failed() {
				k := int(next.Add(1))
				key := fmt.Sprint("k", k)
				resp, pos := send(body(k), key)
				if resp == nil {
					return
				}
				assert.False(t, resp.Replayed, "key %d was new", k)
				again, againPos := send(body(k+1), key) // another body: answered with the first's response
				if again == nil {
					return
				}
				assert.True(t, again.Replayed, "key %d repeated", k)
				sameFirst(t, resp, again, pos, againPos, key)
				_, err := oracle.IngestJSON(body(k), nil)
				assert.NoError(t, err)
				mu.Lock()
				firsts[k], firstPos[k] = resp, pos
				mu.Unlock()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	tc.start("n3") // partitions move to n3 while keys are sent
	setLive()
	tc.waitServed()
	sentBefore := next.Load()
	live.Store(&[]*Node{tc.nodes["n2"], tc.nodes["n3"], tc.nodes["n1"]}) // n1 last: it serves until it stops
	tc.stop("n1")                                                        // its partitions move to n2 and n3
	setLive()
	tc.waitServed()
	time.Sleep(200 * time.Millisecond)
	done.Store(true)
	wg.Wait()
	require.False(t, t.Failed())
	t.Logf("keys sent: %d, %d of them after n3 joined; requests refused while partitions moved (then sent again): %d; waits for an owner: %d",
		len(firsts), len(firsts)-int(sentBefore), refused.Load(), unserved.Load())
	var positions []engine.Position
	for k, first := range firsts {
		resp, pos := send(body(k), fmt.Sprint("k", k))
		require.NotNil(t, resp)
		require.True(t, resp.Replayed, "key %d after the moves", k)
		sameFirst(t, first, resp, firstPos[k], pos, fmt.Sprintf("key %d", k))
		positions = append(positions, pos...)
	}
	tc.checkAgainst(oracle, users, positions)
}

// TestIdempotencyKeyRevokeWaitsForProducers: requests holding their
// key's claim, one in each partition, stopped before they produce, while
// a new node joins and takes some partitions: the revoke waits for
// them, so the new owner serves a moved key's partition only once their
// transactions ended, and a repeat sent meanwhile, wherever the
// partition is served, is answered with the first response. Without the
// wait, the new owner would serve the partition before the held request
// produced, and the repeat would write a second time.
func TestIdempotencyKeyRevokeWaitsForProducers(t *testing.T) {
	tc := newTestCluster(t)
	oracle := tc.newOracle()
	tc.start("n1")
	tc.start("n2")
	tc.waitServed()
	const users = 20
	// One key in each partition; their first requests are held.
	var keys []string
	for p := range int32(testPartitions) {
		for i := 0; ; i++ {
			if k := fmt.Sprintf("held-%d", i); KeyPartition("ads", k, testPartitions) == p {
				keys = append(keys, k)
				break
			}
		}
	}
	held, release := make(chan string, len(keys)), make(chan struct{})
	var toHold sync.Map // the first request of each key is held, not the repeats
	for _, k := range keys {
		toHold.Store(k, true)
	}
	testHookKeyed = func(_ *Node, key string) {
		if _, ok := toHold.LoadAndDelete(key); ok {
			held <- key
			<-release
		}
	}
	t.Cleanup(func() { testHookKeyed = nil })
	t0 := time.Now()
	bodies := map[string][]byte{}
	for i, k := range keys {
		bodies[k] = clicks.Body(rand.New(rand.NewPCG(uint64(i), 71)), t0, 3, users)
		_, err := oracle.IngestJSON(bodies[k], nil)
		require.NoError(t, err)
	}
	type answer struct {
		resp *engine.IngestResponse
		pos  []engine.Position
	}
	firsts, repeats := make(chan answer, len(keys)), make(chan answer, len(keys))
	for _, k := range keys {
		owner := tc.keyOwner(k)
		go func() {
			resp, pos, err := owner.IngestWithKey(context.Background(), bodies[k], k, nil)
			assert.NoError(t, err)
			firsts <- answer{resp, pos}
		}()
	}
	for range keys {
		<-held
	}
	// n3 joins: n1 and n2 must hand partitions over, with their requests
	// held.
	var live atomic.Pointer[[]*Node]
	n3 := tc.start("n3")
	live.Store(&[]*Node{tc.nodes["n1"], tc.nodes["n2"], n3})
	// Without the revoke's wait, n3 would serve a partition now, whose
	// key's first request has not produced yet; with it, the rebalance
	// waits for the held requests. (They are held for less than the
	// session timeout: a revoke must not outlast it.)
	moved := false
	for deadline := time.Now().Add(700 * time.Millisecond); time.Now().Before(deadline) && !moved; time.Sleep(10 * time.Millisecond) {
		for _, p := range n3.Owned() {
			_, err := n3.Owner(p)
			moved = moved || err == nil
		}
	}
	t.Logf("n3 served partitions while requests were held: %v", moved)
	// Repeats now: each goes to whichever node serves its key's partition.
	for _, k := range keys {
		go func() {
			q := KeyPartition("ads", k, testPartitions)
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				for _, n := range *live.Load() {
					if _, err := n.Owner(q); err != nil {
						continue
					}
					resp, pos, err := n.IngestWithKey(context.Background(), bodies[k], k, nil)
					if err == nil {
						repeats <- answer{resp, pos}
						return
					}
				}
			}
			repeats <- answer{}
		}()
	}
	time.Sleep(100 * time.Millisecond) // the repeats reach their nodes
	close(release)
	byKey := map[string][]answer{} // a key's answers share their positions
	for range keys {
		for _, ch := range []chan answer{firsts, repeats} {
			a := <-ch
			require.NotNil(t, a.resp)
			byKey[fmt.Sprint(a.pos)] = append(byKey[fmt.Sprint(a.pos)], a)
		}
	}
	writers := 0
	for _, as := range byKey {
		for _, a := range as {
			if !a.resp.Replayed {
				writers++
			}
		}
	}
	assert.Equal(t, len(keys), writers, "requests that wrote, for %d keys: each key must write once", len(keys))
	assert.Len(t, byKey, len(keys), "each key's requests answer the same positions")
	tc.waitServed()
	var positions []engine.Position
	for _, as := range byKey {
		positions = append(positions, as[0].pos...)
	}
	tc.checkAgainst(oracle, users, positions)
}
