package httpapi_test

// Admission control of POST /ingest (issue #5 item 6): a request that
// finds every slot taken and the queue full, or the byte budget spent, or
// that waits longer than IngestQueueTimeout, is refused with 429
// ResourceExhausted and Retry-After, writes nothing, and every 200 is
// durable. A slot is held deterministically by a client that sends half
// its body: the handler blocks reading it.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// heldIngest is an ingest request whose body is half sent: it holds an
// execution slot (its handler is reading the body) until finish.
type heldIngest struct {
	c    net.Conn
	rest string
}

func (n *liveNode) holdIngest(user string, pad int) *heldIngest {
	n.t.Helper()
	body := ingestBody(user)
	body = body[:len(body)-1] + strings.Repeat(" ", pad) + "}" // JSON whitespace: a larger declared body
	c := n.dial()
	_, err := fmt.Fprintf(c, "POST /ingest HTTP/1.1\r\nHost: featurelog\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		len(body), body[:len(body)/2])
	require.NoError(n.t, err)
	return &heldIngest{c: c, rest: body[len(body)/2:]}
}

// finish sends the rest of the body and returns the response status.
func (h *heldIngest) finish(t *testing.T) int {
	t.Helper()
	_, err := io.WriteString(h.c, h.rest)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(h.c), nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "held request: %s", b)
	return resp.StatusCode
}

// gauge reads a series (a metric and its labels) from /metrics.
func (n *liveNode) gauge(series string) float64 {
	n.t.Helper()
	v, ok := n.metric(series)
	require.True(n.t, ok, "%s not in /metrics", series)
	return v
}

// counter reads a series from /metrics, 0 when absent (a counter vector
// has no series before its first increment).
func (n *liveNode) counter(series string) float64 {
	v, _ := n.metric(series)
	return v
}

func (n *liveNode) metric(series string) (float64, bool) {
	n.t.Helper()
	resp, err := http.Get(n.url("/metrics"))
	require.NoError(n.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(n.t, err)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(n.t, err)
	return v, true
}

// waitGauge waits until the metric reaches want.
func (n *liveNode) waitGauge(name string, want float64) {
	n.t.Helper()
	require.Eventually(n.t, func() bool { return n.gauge(name) == want }, 10*time.Second, time.Millisecond,
		"%s never reached %v", name, want)
}

// ingestResult is the status, Retry-After and body of one ingest.
type ingestResult struct {
	status     int
	retryAfter string
	body       []byte
}

func (n *liveNode) ingest(body string, chunked bool) ingestResult {
	n.t.Helper()
	var r io.Reader = strings.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // hides the length: Transfer-Encoding: chunked
	}
	resp, err := http.Post(n.url("/ingest"), "application/json", r)
	require.NoError(n.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(n.t, err)
	return ingestResult{resp.StatusCode, resp.Header.Get("Retry-After"), b}
}

// requireRefused checks a 429 ResourceExhausted with a Retry-After of
// whole seconds ≥ 1, and returns its message.
func requireRefused(t *testing.T, r ingestResult) string {
	t.Helper()
	require.Equal(t, http.StatusTooManyRequests, r.status, "body %s", r.body)
	secs, err := strconv.Atoi(r.retryAfter)
	require.NoError(t, err, "Retry-After %q must be whole seconds", r.retryAfter)
	assert.GreaterOrEqual(t, secs, 1, "Retry-After")
	var e struct {
		RequestError struct{ ErrorMessage, ErrorType string } `json:"requestError"`
	}
	require.NoError(t, json.Unmarshal(r.body, &e), "body %s", r.body)
	assert.Equal(t, "ResourceExhausted", e.RequestError.ErrorType)
	assert.Contains(t, e.RequestError.ErrorMessage, "saturated")
	return e.RequestError.ErrorMessage
}

func TestIngestAdmissionQueueFull(t *testing.T) {
	n := newLiveNode(t, httpapi.Options{MaxInflightIngest: 1, MaxQueuedIngest: 1, IngestQueueTimeout: 30 * time.Second})
	held := n.holdIngest("held", 0)
	n.waitGauge("featurelog_ingest_inflight", 1)
	queued := make(chan ingestResult, 1)
	go func() { queued <- n.ingest(ingestBody("queued"), false) }()
	n.waitGauge("featurelog_ingest_queued", 1)

	msg := requireRefused(t, n.ingest(ingestBody("refused"), false))
	assert.Contains(t, msg, "MaxQueuedIngest")
	assert.Equal(t, "30", n.ingest(ingestBody("refused-2"), false).retryAfter, "Retry-After is IngestQueueTimeout in seconds")

	held.finish(t)
	r := <-queued
	require.Equal(t, http.StatusOK, r.status, "the queued request gets the slot: %s", r.body)
	n.waitGauge("featurelog_ingest_inflight", 0)
	assert.Equal(t, 2.0, n.counter(`featurelog_ingest_rejected_total{reason="queue_full"}`))
	assert.True(t, present(t, n.db, "held"))
	assert.True(t, present(t, n.db, "queued"))
	assert.False(t, present(t, n.db, "refused"), "a refused request writes nothing")
}

func TestIngestAdmissionQueueTimeout(t *testing.T) {
	n := newLiveNode(t, httpapi.Options{MaxInflightIngest: 1, MaxQueuedIngest: 8, IngestQueueTimeout: 50 * time.Millisecond})
	held := n.holdIngest("held", 0)
	n.waitGauge("featurelog_ingest_inflight", 1)
	msg := requireRefused(t, n.ingest(ingestBody("timed-out"), false))
	assert.Contains(t, msg, "IngestQueueTimeout")
	n.waitGauge("featurelog_ingest_queued", 0)
	held.finish(t)
	assert.Equal(t, http.StatusOK, n.ingest(ingestBody("after"), false).status, "the slot is free again")
	assert.False(t, present(t, n.db, "timed-out"))
}

func TestIngestAdmissionByteBudget(t *testing.T) {
	const limit = 4 << 10
	n := newLiveNode(t, httpapi.Options{MaxBodyBytes: limit, MaxPendingIngestBytes: limit, MaxInflightIngest: 8, IngestQueueTimeout: 30 * time.Second})
	held := n.holdIngest("held", limit-len(ingestBody("held"))-64) // reserves all but ~64 bytes
	n.waitGauge("featurelog_ingest_inflight", 1)
	msg := requireRefused(t, n.ingest(ingestBody("no-room"), false))
	assert.Contains(t, msg, "MaxPendingIngestBytes")
	held.finish(t)
	n.waitGauge("featurelog_ingest_pending_bytes", 0)
	assert.Equal(t, http.StatusOK, n.ingest(ingestBody("fits"), false).status)

	// A chunked body reserves MaxBodyBytes: it is refused while any
	// other request holds bytes, and admitted alone.
	held = n.holdIngest("held-2", 0)
	n.waitGauge("featurelog_ingest_inflight", 1)
	requireRefused(t, n.ingest(ingestBody("chunked"), true))
	held.finish(t)
	n.waitGauge("featurelog_ingest_pending_bytes", 0)
	assert.Equal(t, http.StatusOK, n.ingest(ingestBody("chunked"), true).status)

	// A body over MaxBodyBytes is not counted: 413, not 429.
	assert.Equal(t, http.StatusRequestEntityTooLarge, n.ingest(ingestBody("huge")+strings.Repeat(" ", limit), false).status)
}

// TestIngestAdmissionAcksAreDurable sends many concurrent ingests at a
// node with one slot and a queue of two: some are refused, and after the
// node is stopped and its directory reopened, every acknowledged record
// is there and no refused one is.
func TestIngestAdmissionAcksAreDurable(t *testing.T) {
	n := newLiveNode(t, httpapi.Options{MaxInflightIngest: 1, MaxQueuedIngest: 2, IngestQueueTimeout: 20 * time.Millisecond})
	const clients, each = 64, 8
	var (
		mu      sync.Mutex
		results = map[string]ingestResult{}
		wg      sync.WaitGroup
	)
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				user := fmt.Sprintf("c%d-%d", c, i)
				r := n.ingest(ingestBody(user), false)
				mu.Lock()
				results[user] = r
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	n.stop()
	require.NoError(t, n.db.Close())
	db, err := engine.Open(engine.Options{Dir: n.dir, Logger: discard})
	require.NoError(t, err)
	defer db.Close()
	var acked, refused int
	for user, r := range results {
		switch r.status {
		case http.StatusOK:
			acked++
			assert.True(t, present(t, db, user), "acknowledged record of %s lost", user)
		case http.StatusTooManyRequests:
			refused++
			requireRefused(t, r)
			assert.False(t, present(t, db, user), "refused record of %s written", user)
		default:
			t.Errorf("%s: unexpected %d %s", user, r.status, r.body)
		}
	}
	t.Logf("%d acknowledged, %d refused", acked, refused)
	assert.Positive(t, acked)
	assert.Positive(t, refused, "%d concurrent clients at 1 slot + 2 queued must see 429s", clients)
}
