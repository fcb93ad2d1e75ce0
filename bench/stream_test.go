package bench

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// streamServerArg makes the test binary act as a stream benchmark node.
// It is checked in init, not TestMain (bench_test.go's), which knows only
// the server processes.
const streamServerArg = "featurelog-bench-stream-server"

func init() {
	if len(os.Args) > 1 && os.Args[1] == streamServerArg {
		if err := StreamServeMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// TestRunStreamTiny runs the whole stream benchmark at a tiny size: three
// nodes, their consumers (SSE and Kafka), the latency loop and a catch-up
// over a 20k-event historical directory. It checks that every consumer
// received every record and every figure was produced, never how fast.
func TestRunStreamTiny(t *testing.T) {
	var progress bytes.Buffer
	cfg := StreamConfig{Command: []string{os.Args[0], streamServerArg}, Streams: []string{"user_amounts", "user_last"}, TempDir: t.TempDir(), CacheRoot: t.TempDir(),
		Clients: 2, BatchSize: 50, Users: 1000, LatencyBatch: 5, LatencyWorkers: 16, Drain: 20 * time.Second,
		Data:     HistoricalDataConfig{Events: 20_000, Keys: 2000},
		Progress: &progress, Loop: Loop{Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond}}
	res, err := RunStream(cfg)
	require.NoError(t, err, progress.String())
	rows := StreamRows(res)
	var table bytes.Buffer
	require.NoError(t, WriteTable(&table, rows))
	t.Log("\n" + table.String())

	for _, n := range []*StreamNode{res.None, res.SSE, res.Kafka} {
		require.NotNil(t, n)
		assert.Zero(t, n.Ingest.Errors, "%s: %s", n.Label, n.Ingest.FirstError)
		assert.Zero(t, n.Acks.Errors, "%s: %s", n.Label, n.Acks.FirstError)
		assert.Positive(t, n.Ingest.Records, n.Label)
		assert.Positive(t, n.Acks.Ops, n.Label)
	}
	assert.Empty(t, res.None.Throughput)
	for _, n := range []*StreamNode{res.SSE, res.Kafka} {
		assert.Len(t, n.Latency, len(cfg.Streams), n.Label)
		for _, c := range append(n.Throughput, n.Latency...) {
			assert.Equal(t, c.Want, c.Got, "%s: %s received %d of %d records (%s)", n.Label, c.View, c.Got, c.Want, c.Err)
		}
		assert.Positive(t, n.Samples, n.Label)
		assert.Zero(t, n.Missing, n.Label)
	}

	c := res.CatchUp
	require.NotNil(t, c)
	assert.Empty(t, c.Rebuilt, "adding output streams must not rebuild a view")
	require.Len(t, c.Views, 2)
	assert.Equal(t, int64(20_000), c.Views[0].InProcess.Records, "user_last publishes a record per event")
	for _, v := range c.Views {
		assert.Positive(t, v.InProcess.Records, v.View)
		assert.Equal(t, v.InProcess.Records, v.HTTP.Records, "%s: %s", v.View, v.HTTP.Err)
		assert.Empty(t, v.HTTP.Err, v.View)
	}
	assert.Positive(t, c.RSSPeak)
	for _, r := range rows {
		assert.NotContains(t, r.Verdict, "errors", r.Benchmark)
		assert.NotContains(t, r.Verdict, "missing", r.Benchmark)
	}
}
