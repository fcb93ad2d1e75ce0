//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
)

// TestServeKafkaBrokers: `featurelog serve --kafka-brokers` runs the
// Kafka sink of a view whose repo names no broker: the records ingested
// over HTTP reach the topic, /readyz is 200 and /metrics counts them;
// after SIGTERM the sink's durable cursor is at the stream's end.
func TestServeKafkaBrokers(t *testing.T) {
	brokers := os.Getenv("FEATURELOG_KAFKA_BROKERS")
	if brokers == "" {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		require.NoError(t, err)
		defer c.Close()
		brokers = strings.Join(c.ListenAddrs(), ",")
	}
	topic := fmt.Sprintf("serve-%d", time.Now().UnixNano())
	src, err := os.ReadFile(example)
	require.NoError(t, err)
	const plain = "output_stream: {include_features: true}"
	require.Contains(t, string(src), plain)
	repo := filepath.Join(t.TempDir(), "features.yaml")
	require.NoError(t, os.WriteFile(repo, []byte(strings.Replace(string(src), plain,
		"output_stream: {include_features: true, kafka: {topic: "+topic+", max_lag: 1m}}", 1)), 0o644))
	data := t.TempDir()
	c := startServe(t, data, "--repo", repo, "--kafka-brokers", brokers)

	const n = 50
	for i := range n {
		resp, err := http.Post("http://"+c.addr+"/ingest", "application/json", strings.NewReader(ingestBody(fmt.Sprintf("u%d", i%7))))
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	id := "ads/user_click_counts/kafka:" + topic
	require.Eventually(t, func() bool {
		return strings.Contains(get(t, c.addr, "/metrics"), fmt.Sprintf("featurelog_sink_records_published_total{sink=%q} %d", id, n))
	}, time.Minute, 10*time.Millisecond, "the sink never published the %d records; stderr:\n%s", n, c.stderr)
	assert.Equal(t, `{"status":"ready"}`, get(t, c.addr, "/readyz"))

	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	require.NoError(t, err)
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	require.NoError(t, err)
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	assert.EqualValues(t, n, total, "messages in %s", topic)

	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, c.wait(t), "stderr:\n%s", c.stderr)
	db, err := engine.Open(engine.Options{Dir: data, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	cur, err := db.SinkCursor(id)
	require.NoError(t, err)
	s, err := db.OpenOutputStream("ads", "user_click_counts", engine.StreamStart{Kind: engine.StartAt, Offset: cur})
	require.NoError(t, err)
	defer s.Close()
	rest, err := s.Next(context.Background(), nil, 10, 50*time.Millisecond)
	require.NoError(t, err)
	assert.Empty(t, rest, "records after the durable cursor %s: the sink's progress was not saved", cur)
}

func get(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
