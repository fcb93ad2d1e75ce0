//go:build unix

package main

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestServeClusterFlushesAtShutdown: a cluster node stopped with SIGTERM
// flushes the memtables of every partition it owns, as a single node
// does (TestServeFlushesAtShutdown): restarted on its data directory, it
// replays nothing from the partitions' logs (no record in a memtable,
// every view in segments), and every record it had applied is there
// once, neither lost nor applied again from Kafka.
func TestServeClusterFlushesAtShutdown(t *testing.T) {
	kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(kf.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	data := filepath.Join(t.TempDir(), "n1")
	start := func() *serveChild {
		c := startServe(t, data, "--cluster", "kafka", "--brokers", kf.ListenAddrs()[0], "--topic", "stop", "--partitions", "3",
			"--node-id", "n1", "--addr", addr, "--advertise", "http://"+addr, "--session-timeout", "3s")
		require.Eventually(t, func() bool {
			ps, ok := readyPartitions(addr)
			return ok && len(ps) == 3
		}, 60*time.Second, 20*time.Millisecond, "the node never served its 3 partitions")
		return c
	}
	const users = 12 // over the 3 partitions
	var positions []jsontext.Value
	read := func(u int) (int, string) {
		minPos, err := json.Marshal(positions)
		require.NoError(t, err)
		return httpPost(t, "http://"+addr+"/api/v1/feature-service/get-features", fmt.Sprintf(`{"params": {"workspace_name": "ads",
			"feature_service_name": "ad_ctr_feature_service", "join_key_map": {"user_id": "u%d"}, "min_positions": %s}}`, u, minPos))
	}
	want := `{"result":{"features":["1"]}}` // each user's one click

	node := start()
	for u := range users {
		status, got := httpPost(t, "http://"+addr+"/ingest", ingestBody(fmt.Sprintf("u%d", u)))
		require.Equal(t, http.StatusOK, status, got)
		var resp struct {
			KafkaPositions []jsontext.Value `json:"kafkaPositions"`
		}
		require.NoError(t, json.Unmarshal([]byte(got), &resp))
		positions = append(positions, resp.KafkaPositions...)
	}
	for u := range users { // each answered once its partition applied every position
		status, got := read(u)
		require.Equal(t, http.StatusOK, status, got)
		require.JSONEq(t, want, got, "u%d", u)
	}
	require.NoError(t, node.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, node.wait(t), "stderr:\n%s", node.stderr)
	assert.Contains(t, node.stderr.String(), "flushed the memtables")

	node = start()
	for _, view := range []string{"user_click_counts", "click_events_fv"} {
		var got struct {
			Storage struct {
				Segments        int   `json:"segments"`
				MemtableRecords int64 `json:"memtable_records"`
			} `json:"storage"`
		}
		resp, err := http.Get("http://" + addr + "/api/v1/workspaces/ads/feature-views/" + view)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.UnmarshalRead(resp.Body, &got))
		resp.Body.Close()
		assert.Equal(t, int64(0), got.Storage.MemtableRecords, "%s: nothing replayed from the partitions' logs", view)
		assert.Positive(t, got.Storage.Segments, "%s", view)
	}
	for u := range users {
		status, got := read(u)
		require.Equal(t, http.StatusOK, status, got)
		assert.JSONEq(t, want, got, "u%d: read back from the segments, once", u)
	}
	require.NoError(t, node.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, node.wait(t), "stderr:\n%s", node.stderr)
}
