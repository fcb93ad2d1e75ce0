package bench

import (
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
