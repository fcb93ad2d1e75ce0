package httpapi_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/httpapi"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// logTo points the node's HTTP server at a new Server logging JSON at
// level into the returned buffer.
func (n *node) logTo(level slog.Level) *syncBuffer {
	var buf syncBuffer
	hopts := n.hopts
	hopts.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}))
	s, err := httpapi.New(n.db, hopts)
	require.NoError(n.t, err)
	n.h.Store(s.Handler())
	return &buf
}

// TestAccessLog: at debug level every request gets one JSON line with
// its method, path, status, bytes, duration and remote address; the API
// key and the query's values never appear. At info level there is none.
func TestAccessLog(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	buf := n.logTo(slog.LevelDebug)
	status, _, body := n.ingestKeyed(n.editor, n.adsClicks("u1", 2))
	require.Equal(t, http.StatusOK, status, "%s", body)
	r := n.send(testRequest{method: http.MethodGet, path: "/api/v1/workspaces/ads/jobs?token=query-secret"}, "Tecton-key "+n.viewer)
	require.Equal(t, http.StatusBadRequest, r.status, "an unknown parameter: %s", r.body)
	r = n.send(testRequest{method: http.MethodGet, path: "/no/such/route"}, "")
	require.Equal(t, http.StatusNotFound, r.status)

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "every line is one JSON object: %q", l)
		if m["msg"] == "http request" {
			lines = append(lines, m)
		}
	}
	require.Len(t, lines, 3, "one line per request:\n%s", buf.String())
	want := []struct {
		method, path string
		status       float64
	}{
		{"POST", "/ingest", 200},
		{"GET", "/api/v1/workspaces/ads/jobs", 400},
		{"GET", "/no/such/route", 404},
	}
	for i, w := range want {
		l := lines[i]
		assert.Equal(t, "DEBUG", l["level"])
		assert.Equal(t, w.method, l["method"], "line %d", i)
		assert.Equal(t, w.path, l["path"], "line %d: the path without its query", i)
		assert.Equal(t, w.status, l["status"], "line %d", i)
		assert.Positive(t, l["bytes"], "line %d: the body's bytes", i)
		assert.Positive(t, l["duration"], "line %d", i)
		assert.Contains(t, l["remote"], "127.0.0.1:", "line %d", i)
	}
	for _, secret := range []string{n.editor, n.viewer, "query-secret", "Tecton-key", "Authorization"} {
		assert.NotContains(t, buf.String(), secret)
	}

	info := n.logTo(slog.LevelInfo)
	require.Equal(t, http.StatusOK, n.send(testRequest{method: http.MethodGet, path: "/healthz"}, "").status)
	assert.NotContains(t, info.String(), "http request", "no access log above debug level")
}

// TestMetricsServesEngineMetrics: /metrics carries the engine's
// Collector: the log's counters (once, as before they moved into the
// engine), flushes and per-view segments.
func TestMetricsServesEngineMetrics(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	status, _, body := n.ingestKeyed(n.editor, n.adsClicks("u1", 2), "k1")
	require.Equal(t, http.StatusOK, status, "%s", body)
	status, replayed, _ := n.ingestKeyed(n.editor, n.adsClicks("u1", 2), "k1")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "true", replayed)
	require.NoError(t, n.db.Flush())
	r := n.send(get("/metrics"), "")
	require.Equal(t, http.StatusOK, r.status)
	text := string(r.body)
	assert.Equal(t, 1, strings.Count(text, "\nfeaturelog_log_entries_total "), "registered once")
	for _, series := range []string{
		"featurelog_flushes_total 1",
		"featurelog_idempotent_replays_total 1",
		`featurelog_segments{view="user_click_counts",workspace="ads"} 1`,
		`featurelog_memtable_records{view="user_click_counts",workspace="ads"} 0`,
		`featurelog_view_freshness_seconds{view="user_click_counts",workspace="ads"} 60`,
		"featurelog_log_healthy 1",
	} {
		assert.Contains(t, text, "\n"+series+"\n")
	}
}
