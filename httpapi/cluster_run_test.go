package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/internal/clicks"
)

func postRun(t *testing.T, base, view, body string) histAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/workspaces/ads/feature-views/"+view+"/run", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return histAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

// ingestClicks sends n random out-of-order click requests through random
// nodes and the same to the oracle, and waits until the nodes applied
// them; it returns the event times.
func ingestClicks(t *testing.T, r *rand.Rand, nodes []*clusterNode, oracle *liveNode, now time.Time, n, users int) []time.Time {
	t.Helper()
	var positions []engine.Position
	var events []time.Time
	for range n {
		body := clicks.Body(r, now, 1+r.IntN(20), users)
		status, _, got := post(t, nodes[r.IntN(len(nodes))].url+"/ingest", string(body))
		require.Equal(t, http.StatusOK, status, got)
		var resp struct {
			KafkaPositions []struct {
				Partition int32  `json:"partition"`
				Offset    string `json:"offset"`
			} `json:"kafkaPositions"`
		}
		require.NoError(t, json.Unmarshal([]byte(got), &resp))
		for _, p := range resp.KafkaPositions {
			off, err := strconv.ParseInt(p.Offset, 10, 64)
			require.NoError(t, err)
			positions = append(positions, engine.Position{Partition: p.Partition, Offset: off})
		}
		status, _, want := post(t, oracle.url("/ingest"), string(body))
		require.Equal(t, http.StatusOK, status, want)
		var req struct {
			Records map[string][]struct {
				Record struct {
					Timestamp time.Time `json:"timestamp"`
				} `json:"record"`
			} `json:"records"`
		}
		require.NoError(t, json.Unmarshal(body, &req))
		for _, rec := range req.Records["impressions_event_source"] {
			events = append(events, rec.Record.Timestamp)
		}
	}
	waitAppliedBy(t, nodes, positions)
	return events
}

// byUser groups an answer's rows by their user_id, each group in the
// answer's order.
func byUser(t *testing.T, body []byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		if line == "" {
			continue
		}
		var row struct {
			User string `json:"user_id"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &row), line)
		out[row.User] = append(out[row.User], line)
	}
	return out
}

// TestClusterRun: run through every node of a three-node cluster answers
// what one node fed the same acknowledged (out-of-order) requests
// answers. partial and full levels, of an aggregate view and of an
// attribute view, over several ranges (all the data, a middle range,
// ranges starting or ending exactly at an event, one without data), byte
// for byte: status, content type, columns and rows in the same order.
// disabled: the same status, headers and rows; the rows of each key in
// the oracle's order (the cluster answers partition after partition).
// Mock rows run on the catalog, byte for byte the oracle's answer; bad
// inputs (level, times, view, workspace, mock source, mock row) get the
// oracle's status and message. A sub-request (marked forwarded, naming
// one partition) is answered from that partition only by the node serving
// it, refused with 503 by the others (never forwarded again), and refused
// with 400 when it names two. A node that keeps its partitions but
// cannot be reached makes runs through the others 503 with Retry-After
// and no row.
func TestClusterRun(t *testing.T) {
	c := newHTTPCluster(t, []string{"n1", "n2", "n3"})
	nodes, oracle := c.nodes, c.oracle

	r := rand.New(rand.NewPCG(21, 22))
	const users = 30
	now := time.Now().UTC()
	events := ingestClicks(t, r, nodes, oracle, now, 20, users)
	slices.SortFunc(events, func(a, b time.Time) int { return a.Compare(b) })

	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	type span struct{ start, end time.Time }
	mid := events[len(events)/2]
	spans := []span{
		{now.Add(-48 * time.Hour), now.Add(time.Minute)},                                           // all the data
		{now.Add(-30 * time.Hour), now.Add(-10 * time.Hour)},                                       // the middle
		{mid, mid.Add(7 * time.Hour)},                                                              // from an event on
		{events[3].Add(-3 * time.Hour), events[len(events)-4]},                                     // to an event, excluded
		{now.Add(-2 * time.Hour), now.Add(-time.Hour)},                                             // the last hours
		{time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2023, 1, 2, 0, 0, 0, 0, time.UTC)}, // no data
	}
	checked := map[string]int{}
	for _, view := range []string{"user_click_counts", "click_events_fv"} {
		for _, sp := range spans {
			for _, level := range []string{"partial", "full", "disabled"} {
				body := fmt.Sprintf(`{"start_time": %q, "end_time": %q, "aggregation_level": %q}`, rfc(sp.start), rfc(sp.end), level)
				want := postRun(t, oracle.url(""), view, body)
				require.Equal(t, http.StatusOK, want.status, string(want.body))
				checked[level] += bytes.Count(want.body, []byte("\n"))
				for _, n := range nodes {
					got := postRun(t, n.url, view, body)
					what := fmt.Sprintf("%s %s [%s, %s) through %s", view, level, rfc(sp.start), rfc(sp.end), n.id)
					if level != "disabled" {
						requireSameAnswer(t, want, got, what)
						continue
					}
					require.Equal(t, want.status, got.status, "%s: %s", what, got.body)
					require.Equal(t, want.header.Get("Content-Type"), got.header.Get("Content-Type"), what)
					require.Equal(t, want.header.Get(httpapi.ColumnsHeader), got.header.Get(httpapi.ColumnsHeader), what)
					require.Equal(t, byUser(t, want.body), byUser(t, got.body), "%s: each key's rows, in order", what)
				}
			}
		}
	}
	t.Logf("rows compared per level: %v", checked)
	require.Greater(t, checked["partial"], 100)
	require.Greater(t, checked["full"], 2*users)

	// Mock rows: the catalog answers, as the oracle does (which also has
	// data, which mock rows replace).
	mock := `"mock_sources": {"impressions_event_source": [
		{"user_id": "u7", "timestamp": "2024-05-01T10:00:00Z", "clicked": 1},
		{"user_id": "u2", "timestamp": "2024-05-01T10:00:05Z", "clicked": "0"},
		{"user_id": "u7", "timestamp": "2024-05-01T09:59:59Z", "clicked": 1},
		{"user_id": "u9", "timestamp": "2024-05-02T00:00:00Z", "clicked": 1}]}`
	for _, level := range []string{"partial", "full", "disabled"} {
		for _, view := range []string{"user_click_counts", "click_events_fv"} {
			body := fmt.Sprintf(`{"start_time": "2024-05-01T00:00:00Z", "end_time": "2024-05-02T00:00:00Z", "aggregation_level": %q, %s}`, level, mock)
			want := postRun(t, oracle.url(""), view, body)
			require.Equal(t, http.StatusOK, want.status, string(want.body))
			for _, n := range nodes {
				requireSameAnswer(t, want, postRun(t, n.url, view, body), fmt.Sprintf("mock %s %s through %s", view, level, n.id))
			}
		}
	}

	// Bad inputs: the oracle's status and message.
	bad := []struct{ view, body string }{
		{"user_click_counts", `{"start_time": "2024-05-01T00:00:00Z", "end_time": "2024-05-02T00:00:00Z", "aggregation_level": "tiles"}`},
		{"user_click_counts", `{"start_time": "2024-05-01T00:00:00Z", "end_time": "2024-05-01T00:00:00Z", "aggregation_level": "full"}`},
		{"user_click_counts", `{"end_time": "2024-05-01T00:00:00Z", "aggregation_level": "full"}`},
		{"user_click_counts", `{"start_time": "yesterday", "end_time": "2024-05-01T00:00:00Z", "aggregation_level": "full"}`},
		{"user_click_counts", `{"start_time": "2024-05-01T00:00:00Z", "end_time": "2024-05-02T00:00:00Z", "aggregation_level": "full", "extra": 1}`},
		{"no_such_view", `{"start_time": "2024-05-01T00:00:00Z", "end_time": "2024-05-02T00:00:00Z", "aggregation_level": "full"}`},
		{"click_events_fv", `{"start_time": "2024-05-01T00:00:00Z", "end_time": "2024-05-02T00:00:00Z", "aggregation_level": "full", "mock_sources": {"other": []}}`},
		{"click_events_fv", `{"start_time": "2024-05-01T00:00:00Z", "end_time": "2024-05-02T00:00:00Z", "aggregation_level": "partial",
			"mock_sources": {"impressions_event_source": [{"user_id": "u1", "timestamp": "2024-05-01T10:00:00Z", "clickd": 1}, {"timestamp": "2024-05-01T10:00:00Z"}]}}`},
	}
	for _, b := range bad {
		want := postRun(t, oracle.url(""), b.view, b.body)
		require.GreaterOrEqual(t, want.status, 400, string(want.body))
		for _, n := range nodes {
			got := postRun(t, n.url, b.view, b.body)
			require.Equal(t, want.status, got.status, "%s through %s: %s", b.body, n.id, got.body)
			require.Equal(t, string(want.body), string(got.body), "%s through %s", b.body, n.id)
		}
	}

	// A sub-request names one partition, which its receiver must serve:
	// it never forwards again.
	whole := fmt.Sprintf(`{"start_time": %q, "end_time": %q, "aggregation_level": "full"}`, rfc(spans[0].start), rfc(spans[0].end))
	for p := range int32(clusterParts) {
		for _, n := range nodes {
			_, err := n.node.Owner(p)
			status, hdr, got := post(t, n.url+"/api/v1/workspaces/ads/feature-views/user_click_counts/run", whole,
				"X-Featurelog-Forwarded-By", "elsewhere", "X-Featurelog-Partitions", fmt.Sprint(p))
			if err == nil {
				require.Equal(t, http.StatusOK, status, got)
				for user := range byUser(t, []byte(got)) {
					require.Equal(t, int(p), partitionOfUser(user), "partition %d's run through %s answers %s", p, n.id, user)
				}
				continue
			}
			require.Equal(t, http.StatusServiceUnavailable, status, got)
			require.Equal(t, "1", hdr.Get("Retry-After"))
			require.Contains(t, got, "does not serve partition")
		}
	}
	status, _, got := post(t, nodes[0].url+"/api/v1/workspaces/ads/feature-views/user_click_counts/run", whole,
		"X-Featurelog-Forwarded-By", "elsewhere", "X-Featurelog-Partitions", "0,1")
	require.Equal(t, http.StatusBadRequest, status, got)

	// n2 keeps its partitions but cannot be reached: a run through the
	// others is a 503 with Retry-After, before any row; mock rows still
	// run on the catalog.
	nodes[1].stopHTTP()
	body := fmt.Sprintf(`{"start_time": %q, "end_time": %q, "aggregation_level": "partial"}`, rfc(spans[0].start), rfc(spans[0].end))
	for _, n := range []*clusterNode{nodes[0], nodes[2]} {
		got := postRun(t, n.url, "user_click_counts", body)
		require.Equal(t, http.StatusServiceUnavailable, got.status, string(got.body))
		require.Equal(t, "1", got.header.Get("Retry-After"))
		require.Contains(t, string(got.body), `"code":14`)
		require.NotContains(t, string(got.body), "_tile_start")
		mockBody := fmt.Sprintf(`{"start_time": "2024-05-01T00:00:00Z", "end_time": "2024-05-02T00:00:00Z", "aggregation_level": "full", %s}`, mock)
		requireSameAnswer(t, postRun(t, oracle.url(""), "user_click_counts", mockBody), postRun(t, n.url, "user_click_counts", mockBody), "mock rows while n2 is unreachable")
	}
}
