//go:build unix

package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/featurelog/featurelog/internal/clicks"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestClusterNodeSIGKILL: three `featurelog serve --cluster kafka` child
// processes on an in-process kfake. One is killed with SIGKILL between
// requests, ingest goes on through the others, and it restarts on its
// data directory. Every acknowledged request is applied exactly once:
// reads through every node, carrying the positions ingest returned,
// equal a standalone node fed the acknowledged requests; and while the
// killed node's partitions move, a read gives that value or 503, never
// another.
func TestClusterNodeSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four featurelog processes")
	}
	kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(kf.Close)
	brokers := kf.ListenAddrs()[0]
	base := t.TempDir()
	oracle := startServe(t, filepath.Join(base, "oracle"))
	ports := map[string]string{}
	start := func(id string) *serveChild {
		if ports[id] == "" {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			ports[id] = ln.Addr().String()
			ln.Close()
		}
		return startServe(t, filepath.Join(base, id), "--cluster", "kafka", "--brokers", brokers, "--topic", "kill", "--partitions", "6",
			"--node-id", id, "--addr", ports[id], "--advertise", "http://"+ports[id], "--session-timeout", "3s")
	}
	nodes := map[string]*serveChild{"n1": start("n1"), "n2": start("n2"), "n3": start("n3")}

	const users = 24
	r := rand.New(rand.NewPCG(31, 32))
	var positions []jsontext.Value
	ingest := func(k int, through ...string) {
		for range k {
			body := string(clicks.Body(r, time.Now(), 1+r.IntN(20), users))
			id := through[r.IntN(len(through))]
			status, got := httpPost(t, "http://"+nodes[id].addr+"/ingest", body)
			require.Equal(t, http.StatusOK, status, "through %s: %s", id, got)
			var resp struct {
				KafkaPositions []jsontext.Value `json:"kafkaPositions"`
			}
			require.NoError(t, json.Unmarshal([]byte(got), &resp))
			positions = append(positions, resp.KafkaPositions...)
			status, want := httpPost(t, "http://"+oracle.addr+"/ingest", body)
			require.Equal(t, http.StatusOK, status, want)
		}
	}
	asOf := func() string { return time.Now().UTC().Format(time.RFC3339Nano) }
	read := func(addr, user, at string) (int, string) {
		minPos, err := json.Marshal(positions)
		require.NoError(t, err)
		return httpPost(t, "http://"+addr+"/api/v1/feature-service/get-features", fmt.Sprintf(`{"params": {"workspace_name": "ads",
			"feature_service_name": "ad_ctr_feature_service_v2", "join_key_map": {"user_id": "u%s"}, "as_of": %q, "min_positions": %s}}`, user, at, minPos))
	}
	// checkAll reads every user through the given nodes until each read
	// is served, requiring every served answer to equal the oracle's.
	checkAll := func(through ...string) (refused int) {
		at := asOf()
		deadline := time.Now().Add(60 * time.Second)
		for u := range users {
			status, want := read(oracle.addr, fmt.Sprint(u), at)
			require.Equal(t, http.StatusOK, status, want)
			for _, id := range through {
				for {
					status, got := read(nodes[id].addr, fmt.Sprint(u), at)
					if status == http.StatusOK {
						require.Equal(t, want, got, "user u%d through %s", u, id)
						break
					}
					require.Equal(t, http.StatusServiceUnavailable, status, "user u%d through %s: %s", u, id, got)
					require.True(t, time.Now().Before(deadline), "user u%d through %s: still 503 after 60s: %s", u, id, got)
					refused++
					time.Sleep(20 * time.Millisecond)
				}
			}
		}
		return refused
	}

	// settled waits until every node serves some of the 6 partitions
	// (/readyz lists them) and all 6 are served.
	settled := func(ids ...string) {
		require.Eventually(t, func() bool {
			served := map[int]bool{}
			for _, id := range ids {
				ps, ok := readyPartitions(nodes[id].addr)
				if !ok || len(ps) == 0 {
					return false
				}
				for _, p := range ps {
					served[p] = true
				}
			}
			return len(served) == 6
		}, 60*time.Second, 20*time.Millisecond, "the cluster never settled")
	}
	settled("n1", "n2", "n3")
	ingest(15, "n1", "n2", "n3")
	checkAll("n1", "n2", "n3")
	require.NoError(t, nodes["n2"].cmd.Process.Signal(syscall.SIGKILL))
	<-nodes["n2"].done
	ingest(15, "n1", "n3")
	t.Logf("reads refused while n2's partitions moved: %d", checkAll("n1", "n3"))
	nodes["n2"] = start("n2") // back on the data it had when killed
	settled("n1", "n2", "n3")
	ingest(15, "n1", "n2", "n3")
	checkAll("n1", "n2", "n3")
}

func httpPost(t *testing.T, url, body string) (int, string) {
	resp, err := http.Post(url, "application/json", bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// readyPartitions returns the partitions the node at addr serves, as its
// /readyz lists them, and false when it does not answer ready.
func readyPartitions(addr string) ([]int, bool) {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var st struct {
		Partitions []int `json:"partitions"`
	}
	if err := json.UnmarshalRead(resp.Body, &st); err != nil || resp.StatusCode != http.StatusOK {
		return nil, false
	}
	return st.Partitions, true
}
