package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/internal/clicks"
)

// histAnswer is a historical response as the client received it.
type histAnswer struct {
	status int
	header http.Header
	body   []byte
}

func postHistorical(t *testing.T, base, contentType, query string, body []byte, hdr ...string) histAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/feature-service/get-features-for-events"+query, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return histAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

// requireSameAnswer requires got to be the oracle's answer: status,
// content type, columns and body, byte for byte (so rows in the same
// order, with the same values and the same error messages).
func requireSameAnswer(t *testing.T, want, got histAnswer, what string) {
	t.Helper()
	require.Equal(t, want.status, got.status, "%s: status; body %s", what, got.body)
	require.Equal(t, want.header.Get("Content-Type"), got.header.Get("Content-Type"), what)
	require.Equal(t, want.header.Get(httpapi.ColumnsHeader), got.header.Get(httpapi.ColumnsHeader), what)
	if !bytes.Equal(want.body, got.body) {
		wl, gl := strings.Split(string(want.body), "\n"), strings.Split(string(got.body), "\n")
		for i := range min(len(wl), len(gl)) {
			require.Equal(t, wl[i], gl[i], "%s: line %d of %d (oracle) and %d", what, i+1, len(wl), len(gl))
		}
		require.Equal(t, string(want.body), string(got.body), what)
	}
}

// TestClusterHistorical: historical joins through every node of a
// three-node cluster answer, byte for byte, what one node fed the same
// acknowledged requests answers: spine mode with a JSON spine (the time
// column named or found) and with an NDJSON spine (blank lines, several
// chunks), range mode with entities and without, from the tiles and
// from the offline log (from_source), including keys without
// data, rows exactly at window edges and pass-through columns of every
// JSON kind; bad spines and entities sent to a node that does not serve
// the bad row give the oracle's status and message, naming the row of the
// whole spine; a partition whose owner cannot be reached, or that a
// forwarded sub-request's receiver does not serve, is a 503 with
// Retry-After and no row; after a node leaves, joins answer the oracle's
// rows or 503, and the oracle's rows once its partitions moved; a join
// passing the min_positions of an ingest it follows sees its records, and
// one passing a position never written is a 503.
func TestClusterHistorical(t *testing.T) {
	kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(kf.Close)
	repo, err := os.ReadFile(filepath.Join("..", "examples", "ads", "features.yaml"))
	require.NoError(t, err)
	// Small chunks, on the oracle as on the nodes, so that the spines
	// below span several of them.
	const chunk = 16
	oracle := newLiveNode(t, httpapi.Options{HistoricalChunkRows: chunk})
	base := t.TempDir()
	var nodes []*clusterNode
	for _, id := range []string{"n1", "n2", "n3"} {
		nodes = append(nodes, startClusterNode(t, kf.ListenAddrs(), "fl", id, filepath.Join(base, id), repo,
			func(o *httpapi.Options) { o.HistoricalChunkRows = chunk }))
	}
	waitRoutes(t, nodes)

	// Out-of-order clicks of 30 users through random nodes, the same to
	// the oracle.
	r := rand.New(rand.NewPCG(11, 12))
	const users = 30
	now := time.Now().UTC()
	events := ingestClicks(t, r, nodes, oracle, now, 20, users)

	// The spine: users with data and without (u30..u34), at random times
	// and at the edges of the windows (1h, 12h, 24h, the TTL of 7d) of
	// events; the first row holds every member (NDJSON needs it), the
	// others some of them, in any order, with values of every JSON kind.
	tsAt := func() time.Time {
		if r.IntN(3) == 0 {
			return now.Add(-time.Duration(r.Int64N(int64(50 * time.Hour))))
		}
		e := events[r.IntN(len(events))]
		edges := []time.Duration{0, 1, -1, time.Hour, time.Hour + 1, 12 * time.Hour, 12*time.Hour + 1, 24 * time.Hour, 24*time.Hour + 1, 7 * 24 * time.Hour, 7*24*time.Hour + 1}
		return e.Add(edges[r.IntN(len(edges))])
	}
	row := func(i int, user string, ts time.Time) string {
		ms := []string{fmt.Sprintf(`"user_id": %q`, user), fmt.Sprintf(`"ts": %q`, ts.Format(time.RFC3339Nano))}
		extras := []string{fmt.Sprintf(`"label": %d`, r.IntN(2)), `"note": {"a": [1, 2.5, "x"], "b": null}`, fmt.Sprintf(`"weight": %g`, r.Float64()), `"flag": true`, `"none": null`, `"name": "caf\u00e9 \"q\""`}
		if i == 0 {
			return "{" + strings.Join(append(ms, extras...), ", ") + "}"
		}
		for _, e := range extras {
			if r.IntN(2) == 0 {
				ms = append(ms, e)
			}
		}
		r.Shuffle(len(ms), func(a, b int) { ms[a], ms[b] = ms[b], ms[a] })
		return "{" + strings.Join(ms, ", ") + "}"
	}
	userAt := func() string { return fmt.Sprintf("u%d", r.IntN(users+5)) }
	var spine []string
	for i := range 120 {
		spine = append(spine, row(i, userAt(), tsAt()))
	}
	jsonSpine := func(rows []string, tsKey string) []byte {
		p := `{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service_v2", "spine": [` + strings.Join(rows, ", ") + `]`
		if tsKey != "" {
			p += fmt.Sprintf(`, "timestamp_key": %q`, tsKey)
		}
		return []byte(p + "}}")
	}
	ndjson := func(rows []string) []byte {
		var b strings.Builder
		for i, row := range rows {
			b.WriteString(row + "\n")
			if i%7 == 3 {
				b.WriteString("\n") // blank lines count: lines are not rows
			}
		}
		return []byte(b.String())
	}
	query := func(tsKey string) string {
		q := url.Values{"workspace_name": {"ads"}, "feature_service_name": {"ad_ctr_feature_service_v2"}}
		if tsKey != "" {
			q.Set("timestamp_key", tsKey)
		}
		return "?" + q.Encode()
	}
	rangeBody := func(start, end time.Time, entities []string) []byte {
		p := fmt.Sprintf(`{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service_v2", "start_time": %q, "end_time": %q`,
			start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))
		if entities != nil {
			var es []string
			for _, u := range entities {
				es = append(es, fmt.Sprintf(`{"user_id": %q}`, u))
			}
			p += `, "entities": [` + strings.Join(es, ", ") + `]`
		}
		return []byte(p + "}}")
	}
	entities := []string{"u3", "u0", "u33", "u17", "u0", "u1", "u2", "u29", "u31", "u5"}

	type request struct {
		name, contentType, query string
		body                     []byte
	}
	requests := []request{
		{"JSON spine, timestamp_key", "application/json", "", jsonSpine(spine, "ts")},
		{"JSON spine, time column found", "application/json", "", jsonSpine(spine, "")},
		{"JSON spine of one chunk", "application/json", "", jsonSpine(spine[:chunk-1], "ts")},
		{"JSON spine, empty", "application/json", "", jsonSpine(nil, "ts")},
		{"NDJSON spine, timestamp_key", "application/x-ndjson", query("ts"), ndjson(spine)},
		{"NDJSON spine, time column found", "application/x-ndjson", query(""), ndjson(spine)},
		{"NDJSON spine, empty", "application/x-ndjson", query("ts"), nil},
		{"range, entities", "application/json", "", rangeBody(now.Add(-30*time.Hour), now, entities)},
		{"range, every key", "application/json", "", rangeBody(now.Add(-50*time.Hour), now.Add(time.Hour), nil)},
		{"range, every key, a short range", "application/json", "", rangeBody(now.Add(-3*time.Hour), now.Add(-2*time.Hour), nil)},
		{"range, empty entities", "application/json", "", rangeBody(now.Add(-3*time.Hour), now, []string{})},
		{"JSON spine, from_source", "application/json", "", bytes.Replace(jsonSpine(spine, "ts"), []byte(`"spine":`), []byte(`"from_source": true, "spine":`), 1)},
		{"NDJSON spine, from_source", "application/x-ndjson", query("ts") + "&from_source=true", ndjson(spine)},
		{"range, every key, from_source", "application/json", "", bytes.Replace(rangeBody(now.Add(-50*time.Hour), now.Add(time.Hour), nil), []byte(`"start_time":`), []byte(`"from_source": true, "start_time":`), 1)},
	}
	oracleAnswers := map[string]histAnswer{}
	for _, req := range requests {
		want := postHistorical(t, oracle.url(""), req.contentType, req.query, req.body)
		oracleAnswers[req.name] = want
		if !strings.Contains(req.name, "empty") {
			require.Equal(t, http.StatusOK, want.status, "%s: %s", req.name, want.body)
			require.NotEmpty(t, want.body, req.name)
		}
		for _, n := range nodes {
			got := postHistorical(t, n.url, req.contentType, req.query, req.body)
			requireSameAnswer(t, want, got, req.name+" through "+n.id)
		}
	}
	// The data is worth comparing: rows with and without data, every
	// partition in the spine, many keys in the ranges.
	lines := strings.Split(strings.TrimSuffix(string(oracleAnswers["JSON spine, timestamp_key"].body), "\n"), "\n")
	require.Len(t, lines, len(spine))
	require.Greater(t, countContaining(lines, `"click_events_fv.clicked":"1"`), 10)
	require.Greater(t, countContaining(lines, `"click_events_fv.clicked":null`), 10)
	parts := map[int]bool{}
	for _, row := range spine {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(row), &m))
		parts[partitionOfUser(m["user_id"].(string))] = true
	}
	require.Len(t, parts, clusterParts, "the spine has rows of every partition")
	require.Greater(t, len(strings.Split(string(oracleAnswers["range, every key"].body), "\n")), 3*users)
	require.Equal(t, http.StatusBadRequest, oracleAnswers["JSON spine, empty"].status, "an empty JSON spine names no column")
	require.Equal(t, http.StatusBadRequest, oracleAnswers["NDJSON spine, empty"].status)

	// Bad input, sent to a node that does not serve the bad row's user:
	// the oracle's status and message, naming the row of the whole
	// spine (in the third chunk of a JSON spine; in the first of an
	// NDJSON one, where a later chunk's error would race the answer's
	// first flush on the oracle too).
	notOwner := func(user string) *clusterNode {
		p := int32(partitionOfUser(user))
		for _, n := range nodes {
			if !slices.Contains(n.node.Owned(), p) {
				return n
			}
		}
		t.Fatalf("every node serves partition %d", p)
		return nil
	}
	const badAt = 2*chunk + 5
	badRows := map[string]string{
		"an object as user_id": `{"user_id": {"id": 4}, "ts": "%s"}`,
		"no user_id":           `{"ts": "%s"}`,
		"a null user_id":       `{"user_id": null, "ts": "%s"}`,
		"a number as user_id":  `{"user_id": 4, "ts": "%s"}`,
		"no time":              `{"user_id": "u4"}`,
		"a bad time":           `{"user_id": "u4", "ts": "yesterday %s"}`,
		"a time out of range":  `{"user_id": "u4", "ts": "9999-12-31T23:59:59Z"}`,
	}
	for what, bad := range badRows {
		badRow := bad
		if strings.Contains(bad, "%s") {
			badRow = fmt.Sprintf(bad, now.Format(time.RFC3339))
		}
		rows := slices.Clone(spine)
		rows[badAt] = badRow
		n := notOwner("u4")
		want := postHistorical(t, oracle.url(""), "application/json", "", jsonSpine(rows, "ts"))
		require.Equal(t, http.StatusBadRequest, want.status, "%s: %s", what, want.body)
		got := postHistorical(t, n.url, "application/json", "", jsonSpine(rows, "ts"))
		requireSameAnswer(t, want, got, "JSON spine with "+what+" through "+n.id)
		require.Contains(t, string(got.body), fmt.Sprintf("params.spine[%d]", badAt), what)

		rows = slices.Clone(spine[:chunk])
		rows[9] = badRow
		want = postHistorical(t, oracle.url(""), "application/x-ndjson", query("ts"), ndjson(rows))
		require.Equal(t, http.StatusBadRequest, want.status, "%s: %s", what, want.body)
		got = postHistorical(t, n.url, "application/x-ndjson", query("ts"), ndjson(rows))
		requireSameAnswer(t, want, got, "NDJSON spine with "+what+" through "+n.id)
		require.Contains(t, string(got.body), "line 11", "%s: row 10 is on line 11, after a blank line", what)
	}
	for what, req := range map[string]request{
		"a malformed NDJSON line":       {"", "application/x-ndjson", query("ts"), []byte(spine[0] + "\n" + spine[1] + "\n\n{\"user_id\": \"u1\",\n" + spine[2] + "\n")},
		"a member not in the first row": {"", "application/x-ndjson", query("ts"), []byte(spine[0] + "\n" + `{"user_id": "u1", "ts": "2026-01-01T00:00:00Z", "other": 1}` + "\n")},
		"an unknown timestamp_key":      {"", "application/json", "", jsonSpine(spine, "when")},
		"no join key column":            {"", "application/json", "", jsonSpine([]string{`{"ts": "2026-01-01T00:00:00Z"}`}, "")},
		"two time columns":              {"", "application/json", "", jsonSpine([]string{`{"user_id": "u1", "ts": "2026-01-01T00:00:00Z", "t2": "2026-01-01T00:00:00Z"}`}, "")},
		"a bad entity":                  {"", "application/json", "", []byte(strings.Replace(string(rangeBody(now.Add(-time.Hour), now, entities)), `{"user_id": "u17"}`, `{"user_id": "u17", "x": "1"}`, 1))},
		"an unknown service":            {"", "application/json", "", bytes.Replace(jsonSpine(spine, "ts"), []byte("service_v2"), []byte("service_v9"), 1)},
		"an end before the start":       {"", "application/json", "", rangeBody(now, now.Add(-time.Hour), nil)},
	} {
		want := postHistorical(t, oracle.url(""), req.contentType, req.query, req.body)
		require.GreaterOrEqual(t, want.status, 400, "%s: %s", what, want.body)
		for _, n := range nodes {
			requireSameAnswer(t, want, postHistorical(t, n.url, req.contentType, req.query, req.body), what+" through "+n.id)
		}
	}

	// A sub-request forwarded to a node for a partition it does not
	// serve is refused, never forwarded again.
	n := notOwner("u4")
	got := postHistorical(t, n.url, "application/x-ndjson", query("ts"), []byte(`{"user_id": "u4", "ts": "2026-01-01T00:00:00Z"}`+"\n"),
		"X-Featurelog-Forwarded-By", "n0", "X-Featurelog-Partitions", strconv.Itoa(partitionOfUser("u4")))
	require.Equal(t, http.StatusServiceUnavailable, got.status, "%s", got.body)
	require.Equal(t, "1", got.header.Get("Retry-After"))
	require.Contains(t, string(got.body), "does not serve partition")

	// n3's HTTP server stops: it still holds its partitions, but cannot
	// be reached. A join that needs one of them is a 503 with
	// Retry-After and no row; one that needs none is answered.
	nodes[2].stopHTTP()
	var n3Users, others []string
	for u := range users {
		user := fmt.Sprintf("u%d", u)
		if slices.Contains(nodes[2].node.Owned(), int32(partitionOfUser(user))) {
			n3Users = append(n3Users, user)
		} else {
			others = append(others, user)
		}
	}
	require.NotEmpty(t, n3Users)
	require.NotEmpty(t, others)
	var othersSpine []string
	for i := range 40 {
		othersSpine = append(othersSpine, row(i, others[r.IntN(len(others))], tsAt()))
	}
	requireSameAnswer(t, postHistorical(t, oracle.url(""), "application/json", "", jsonSpine(othersSpine, "ts")),
		postHistorical(t, nodes[0].url, "application/json", "", jsonSpine(othersSpine, "ts")), "a spine of the live nodes' users")
	withN3 := slices.Clone(othersSpine)
	withN3[3*chunk/2] = row(1, n3Users[0], tsAt()) // in the second chunk
	for _, req := range []request{
		{"JSON spine", "application/json", "", jsonSpine(withN3, "ts")},
		{"NDJSON spine", "application/x-ndjson", query("ts"), ndjson(append(slices.Clone(othersSpine[:5]), row(1, n3Users[0], tsAt())))},
		{"range, entities", "application/json", "", rangeBody(now.Add(-30*time.Hour), now, []string{others[0], n3Users[0]})},
		{"range, every key", "application/json", "", rangeBody(now.Add(-30*time.Hour), now, nil)},
	} {
		for _, n := range nodes[:2] {
			got := postHistorical(t, n.url, req.contentType, req.query, req.body)
			require.Equal(t, http.StatusServiceUnavailable, got.status, "%s through %s: %s", req.name, n.id, got.body)
			require.Equal(t, "1", got.header.Get("Retry-After"), req.name)
			require.Contains(t, string(got.body), `"code":14`, req.name)
		}
	}

	// n3 leaves: its partitions move. Joins through the others answer the
	// oracle's rows or 503, and the oracle's rows once they moved.
	nodes[2].stop()
	refused := 0
	deadline := time.Now().Add(45 * time.Second)
	for _, req := range requests[:9] {
		want := oracleAnswers[req.name]
		for _, n := range nodes[:2] {
			for {
				got := postHistorical(t, n.url, req.contentType, req.query, req.body)
				if got.status == http.StatusServiceUnavailable {
					require.Equal(t, "1", got.header.Get("Retry-After"), string(got.body))
					require.True(t, time.Now().Before(deadline), "n3's partitions were never served again: %s", got.body)
					refused++
					time.Sleep(50 * time.Millisecond)
					continue
				}
				requireSameAnswer(t, want, got, req.name+" through "+n.id+" after n3 left")
				break
			}
		}
	}
	t.Logf("joins refused with 503 while n3's partitions moved: %d", refused)

	// Read your writes: a join passing the positions an ingest returned
	// sees its records through any node, in every mode, though the
	// ingest was answered before its owner applied it.
	body := clicks.Body(r, now, 40, users)
	status, _, ingested := post(t, nodes[0].url+"/ingest", string(body))
	require.Equal(t, http.StatusOK, status, ingested)
	status, _, want := post(t, oracle.url("/ingest"), string(body))
	require.Equal(t, http.StatusOK, status, want)
	var resp struct {
		KafkaPositions []struct {
			Partition int32  `json:"partition"`
			Offset    string `json:"offset"`
		} `json:"kafkaPositions"`
	}
	require.NoError(t, json.Unmarshal([]byte(ingested), &resp))
	var inJSON, inQuery []string
	for _, p := range resp.KafkaPositions {
		inJSON = append(inJSON, fmt.Sprintf(`{"partition": %d, "offset": %q}`, p.Partition, p.Offset))
		inQuery = append(inQuery, fmt.Sprintf("%d:%s", p.Partition, p.Offset))
	}
	withPositions := func(b []byte, positions string) []byte {
		return bytes.Replace(b, []byte(`{"params": {`), []byte(`{"params": {"min_positions": [`+positions+`], `), 1)
	}
	for _, req := range []request{
		{"JSON spine, min_positions", "application/json", "", jsonSpine(spine, "ts")},
		{"NDJSON spine, min_positions", "application/x-ndjson", query("ts"), ndjson(spine)},
		{"range, entities, min_positions", "application/json", "", rangeBody(now.Add(-30*time.Hour), now, entities)},
		{"range, every key, min_positions", "application/json", "", rangeBody(now.Add(-50*time.Hour), now.Add(time.Hour), nil)},
	} {
		want := postHistorical(t, oracle.url(""), req.contentType, req.query, req.body)
		require.Equal(t, http.StatusOK, want.status, "%s: %s", req.name, want.body)
		for _, n := range nodes[:2] {
			q, b := req.query, req.body
			if req.contentType == "application/x-ndjson" {
				q += "&min_positions=" + strings.Join(inQuery, ",")
			} else {
				b = withPositions(b, strings.Join(inJSON, ", "))
			}
			requireSameAnswer(t, want, postHistorical(t, n.url, req.contentType, q, b), req.name+" through "+n.id)
		}
	}
	// A position never written, of a partition the join reads, is never
	// applied: 503 after the wait. (Positions of partitions it does not
	// read are not waited for, as for get-features.)
	never := fmt.Sprintf(`{"partition": %d, "offset": "%d"}`, partitionOfUser("u4"), 1<<40)
	for _, n := range nodes[:2] {
		got := postHistorical(t, n.url, "application/json", "", withPositions(jsonSpine(append(slices.Clone(spine[:3]), row(1, "u4", tsAt())), "ts"), never))
		require.Equal(t, http.StatusServiceUnavailable, got.status, "%s", got.body)
		require.Equal(t, "1", got.header.Get("Retry-After"))
		require.Contains(t, string(got.body), "has not applied offset 1099511627776")
	}
	got = postHistorical(t, nodes[0].url, "application/x-ndjson", query("ts")+"&min_positions=3", ndjson(spine[:3]))
	require.Equal(t, http.StatusBadRequest, got.status, "%s", got.body)
	require.Contains(t, string(got.body), "partition:offset pairs")
}

// waitAppliedBy waits until the owners applied positions.
func waitAppliedBy(t *testing.T, nodes []*clusterNode, positions []engine.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range nodes {
		owned := n.node.Owned()
		var mine []engine.Position
		for _, p := range positions {
			if slices.Contains(owned, p.Partition) {
				mine = append(mine, p)
			}
		}
		require.NoError(t, n.node.WaitApplied(ctx, mine), n.id)
	}
}

func countContaining(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}
