package kafkasink

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// TestSinkBrokerRestart: the broker restarts (on its port, with its
// data) while records are ingested; then it stays down for longer than
// the retry budget: the sink reports failing with the client's error, its
// lag grows past max_lag, so it is not ready and its metrics say so, on
// the node's /readyz (503, naming the sink, its lag and its error) and
// /metrics too; once
// the broker is back, publishing resumes at the cursor (and /readyz says
// ready again): the topic holds
// every record, no gap, each key in order.
func TestSinkBrokerRestart(t *testing.T) {
	b := newBroker(t, true)
	b.fake(t)
	clock := newClock()
	db := openDB(t, t.TempDir(), clock.Now, nil)
	defer db.Close()
	topic := uniqueTopic("restart")
	id := sinkID("latest", topic)
	apply(t, db, testRepo(sinkSpec{brokers: b.addrs, topic: topic, maxLag: "5s"}, sinkSpec{}, true))
	o := testOptions(clock.Now)
	o.RetryBudget = time.Second
	m := startManager(t, db, o)
	defer m.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	next := int64(1)
	send := func(n int) {
		ingest(t, rng, db, events(rng, next, n, 40, clock.Now()), 25)
		next += int64(n)
	}
	caughtUp := func() {
		t.Helper()
		_, end := readStream(t, db, "latest")
		waitCursor(t, db, id, end, time.Minute)
	}

	send(500)
	caughtUp()

	// A quick restart.
	b.c.Close()
	send(500)
	b.restart(t)
	caughtUp()

	// An outage longer than the retry budget.
	b.c.Close()
	send(500)
	var st SinkStatus
	seen := map[string]bool{}
	require.Eventually(t, func() bool {
		st, _ = statusOf(m, id)
		seen[st.LastError] = true
		return st.State == StateFailing && st.Errors >= 3
	}, 30*time.Second, time.Millisecond, "the sink never reported failing: %+v", st)
	assert.Contains(t, st.LastError, "connection refused", "the error says why")
	budget := false
	for e := range seen {
		budget = budget || strings.Contains(e, "still unacknowledged after 1s") && strings.Contains(e, "connection refused")
	}
	assert.True(t, budget, "the batch in flight failed once the retry budget ran out, naming the client's error: %v", seen)
	clock.Add(3 * time.Second)
	lag1 := mustStatus(t, m, id).Lag
	clock.Add(4 * time.Second)
	st = mustStatus(t, m, id)
	assert.Equal(t, lag1+4*time.Second, st.Lag, "lag grows while the broker is down")
	assert.Greater(t, st.Lag, st.MaxLag)
	require.Len(t, m.NotReady(), 1)
	assert.Contains(t, m.NotReady()[0], id)
	assert.Contains(t, m.NotReady()[0], "is failing: lag 7s, max_lag 5s")
	node := newNode(t, db, m)
	code, body := node.get(t, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	var ready struct {
		Status, Error string
		Sinks         []string
	}
	require.NoError(t, json.Unmarshal([]byte(body), &ready), body)
	assert.Equal(t, "unavailable", ready.Status)
	assert.Equal(t, m.NotReady(), ready.Sinks)
	assert.Contains(t, ready.Error, "1 output stream sink not ready: sink "+id)
	assert.Contains(t, ready.Error, "connection refused")
	t.Logf("/readyz while the broker is down: %d %s", code, body)
	_, text := node.get(t, "/metrics")
	assert.Contains(t, text, `featurelog_sink_lagging{sink="`+id+`"} 1`)
	assert.Contains(t, text, `featurelog_sink_lag_seconds{sink="`+id+`"} 7`)
	metrics := gather(t, m)
	assert.Equal(t, 1.0, metrics["featurelog_sink_lagging"][id])
	assert.Equal(t, 1.0, metrics["featurelog_sink_failing"][id])
	assert.Equal(t, 7.0, metrics["featurelog_sink_lag_seconds"][id])
	assert.Equal(t, float64(st.Errors), metrics["featurelog_sink_errors_total"][id])

	b.restart(t)
	caughtUp()
	require.Eventually(t, func() bool { return len(m.NotReady()) == 0 }, 10*time.Second, 10*time.Millisecond)
	st = mustStatus(t, m, id)
	assert.Equal(t, StateRunning, st.State)
	assert.Zero(t, st.Lag)
	assert.Zero(t, gather(t, m)["featurelog_sink_lagging"][id])
	code, body = node.get(t, "/readyz")
	assert.Equal(t, http.StatusOK, code, body)
	require.NoError(t, m.Close())
	stream, _ := readStream(t, db, "latest")
	require.Len(t, stream, 1500)
	repeats := checkTopic(t, stream, consumeAll(t, b.addrs, topic, false), false)
	t.Logf("%d records published through a restart and an outage (%d failed attempts, %d published again); last error: %s",
		len(stream), st.Errors, repeats, st.LastError)
}

// node serves db's HTTP API with m as its sinks, without a listener.
type node struct{ h http.Handler }

func newNode(t *testing.T, db *engine.DB, m *Manager) node {
	t.Helper()
	srv, err := httpapi.New(db, httpapi.Options{NoAuth: true, Sinks: m})
	require.NoError(t, err)
	return node{srv.Handler()}
}

func (n node) get(t *testing.T, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	n.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func mustStatus(t *testing.T, m *Manager, id string) SinkStatus {
	t.Helper()
	st, ok := statusOf(m, id)
	require.True(t, ok, "no sink %s", id)
	return st
}

// gather collects m's metrics: name → sink → value.
func gather(t *testing.T, m *Manager) map[string]map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(m))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]map[string]float64{}
	for _, mf := range mfs {
		require.True(t, strings.HasPrefix(mf.GetName(), "featurelog_sink_"), mf.GetName())
		out[mf.GetName()] = map[string]float64{}
		for _, mt := range mf.Metric {
			v := mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
			out[mf.GetName()][mt.Label[0].GetValue()] = v
		}
	}
	return out
}
