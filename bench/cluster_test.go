package bench

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The cluster benchmarks at a tiny size: each runs and reports sane
// figures; none is checked for speed.

func TestClusterIngest(t *testing.T) {
	res, err := RunClusterIngest(ClusterIngestConfig{TempDir: t.TempDir(), Partitions: 2, Clients: 2, BatchSize: 10, Loop: tiny})
	require.NoError(t, err)
	checkRun(t, res.Standalone, nil, 10)
	checkRun(t, res.Cluster, nil, 10)
	assert.Positive(t, res.Drain)
	assert.Positive(t, res.Applied)
	assert.LessOrEqual(t, res.Applied, res.Cluster.RecordsPerSec)
}

func TestClusterForward(t *testing.T) {
	res, err := RunClusterForward(ClusterForwardConfig{TempDir: t.TempDir(), Partitions: 2, Keys: 200, Rate: 200, Workers: 4, Loop: tiny})
	require.NoError(t, err)
	checkRun(t, res.Local, nil, 1)
	checkRun(t, res.Forwarded, nil, 1)
}

func TestClusterRebalance(t *testing.T) {
	if testing.Short() {
		t.Skip("a rebalance takes seconds (Kafka client heartbeats)")
	}
	res, err := RunClusterRebalance(ClusterRebalanceConfig{TempDir: t.TempDir(), Partitions: 3, Records: 300, BatchSize: 50})
	require.NoError(t, err)
	for _, ph := range []RebalancePhase{res.Leave, res.Join} {
		assert.Zero(t, ph.Errors, "first error: %s", ph.FirstError)
		assert.Positive(t, ph.Took)
		assert.Less(t, ph.Took, time.Minute)
		assert.Positive(t, ph.Moved)
		for _, w := range ph.Windows {
			assert.Positive(t, w)
			assert.LessOrEqual(t, w, ph.Took)
		}
	}
	assert.Equal(t, 300, res.Records)
	assert.GreaterOrEqual(t, res.KafkaRecords, 300/50)
}

// TestClusterSuiteRows: the suite's cluster rows, at a tiny size, print
// every figure without an error note.
func TestClusterSuiteRows(t *testing.T) {
	only := []string{"cluster-ingest", "cluster-forward", "cluster-rebalance"}
	if testing.Short() {
		only = only[:2]
	}
	rows, err := RunSuite(SuiteConfig{Duration: 100 * time.Millisecond, Only: only, TempDir: t.TempDir(),
		Cluster: ClusterSuiteConfig{Partitions: 3, Records: 300}})
	require.NoError(t, err)
	want := map[string]int{"cluster-ingest": 5, "cluster-forward": 2, "cluster-rebalance": 4}
	n := 0
	for _, name := range only {
		n += want[name]
	}
	require.Len(t, rows, n)
	for _, r := range rows {
		assert.NotContains(t, r.Result, "errors", r.Benchmark)
		assert.NotContains(t, r.Result, "failed", r.Benchmark)
		assert.NotContains(t, r.Verdict, "FAIL", r.Benchmark)
		assert.NotEmpty(t, r.Result, r.Benchmark)
	}
}

// TestClusterFailover: a node in a process of its own is SIGKILLed; with
// the smallest session timeout kfake accepts by default (6s) its
// partitions are served again by the survivors, readers seeing only 200
// or 503.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a 6s Kafka session timeout")
	}
	res, err := RunClusterFailover(ClusterFailoverConfig{TempDir: t.TempDir(), Command: []string{os.Args[0], serverArg},
		SessionTimeout: 6 * time.Second, Partitions: 3, Records: 300, BatchSize: 50})
	require.NoError(t, err)
	assert.Zero(t, res.Kill.Errors, "first error: %s", res.Kill.FirstError)
	assert.Positive(t, res.Kill.Moved)
	assert.Greater(t, res.Kill.Took, 6*time.Second, "the group waits out the session timeout")
	for _, w := range res.Kill.Windows {
		assert.Positive(t, w)
		assert.LessOrEqual(t, w, res.Kill.Took)
	}
}
