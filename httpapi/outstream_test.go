//go:build unix

package httpapi_test

// The output stream endpoint (SPEC §7) over real HTTP: NDJSON and
// server-sent events carry exactly the records the engine's stream
// yields, byte for byte; from is inclusive, Last-Event-ID exclusive and
// wins over from, latest is the default; heartbeats on idle streams; an
// error after the stream started ends it with an error object; a
// truncated offset is 410; a stream outlives the server's ReadTimeout and
// WriteTimeout and ends when the server shuts down. Load, resumption and
// slow consumers are in outstream_load_test.go.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// streamRepo has an attribute view and a continuous aggregate view with
// output streams, a view without one, and a service over the first two.
const streamRepo = `workspace: os
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: events
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Float64}
      - {name: note, type: String}
feature_views:
  - name: latest
    source: events
    entities: [user]
    timestamp_field: ts
    output_stream: {include_features: true}
    features:
      - attribute: {name: amount}
      - attribute: {name: note}
  - name: sums
    source: events
    entities: [user]
    timestamp_field: ts
    output_stream: {include_features: true}
    features:
      - aggregate: {input: amount, function: sum, window: 1h}
      - aggregate: {input: amount, function: count, window: 24h}
      - aggregate: {input: amount, function: sum, window: lifetime, name: total}
  - name: quiet
    source: events
    entities: [user]
    timestamp_field: ts
    features:
      - attribute: {name: amount}
feature_services:
  - name: all
    features:
      - latest
      - sums
`

// streamNode is a node with streamRepo applied and a viewer of it.
type streamNode struct {
	*node
	reader string // viewer on workspace os
}

func newStreamNode(t *testing.T, hopts httpapi.Options) *streamNode {
	t.Helper()
	n := newNode(t, hopts)
	_, err := n.db.ApplyWait(context.Background(), "os.yaml", []byte(streamRepo))
	require.NoError(t, err)
	return &streamNode{node: n, reader: n.account("os-viewer", map[string]auth.Role{"os": auth.Viewer})}
}

// streamEvent is one event of source events.
type streamEvent struct {
	user   string
	ts     time.Time
	amount float64
	note   string
}

// streamEvents returns n events over 40 users, skewed to a few hot keys,
// dated in [at()-before, at()+after).
func streamEvents(rng *rand.Rand, n int, at func() time.Time, before, after time.Duration) []streamEvent {
	out := make([]streamEvent, n)
	for i := range out {
		u := int(40 * rng.Float64() * rng.Float64())
		ts := at().Add(-before + time.Duration(rng.Int64N(int64(before+after)))).Truncate(time.Microsecond)
		out[i] = streamEvent{user: fmt.Sprintf("u%03d", u), ts: ts, amount: float64(rng.IntN(2000)-100) / 7, note: fmt.Sprintf("n%d", rng.IntN(5))}
	}
	return out
}

// ingestEvents ingests evs in requests of per() events. It returns the
// first error, for use in goroutines.
func ingestEvents(db *engine.DB, evs []streamEvent, per func() int) error {
	for len(evs) > 0 {
		k := min(len(evs), max(1, per()))
		recs := make([]map[string]any, k)
		for i, e := range evs[:k] {
			recs[i] = map[string]any{"user_id": e.user, "ts": e.ts, "amount": e.amount, "note": e.note}
		}
		if _, err := db.Ingest(&engine.IngestRequest{Workspace: "os", Records: map[string][]map[string]any{"events": recs}}); err != nil {
			return err
		}
		evs = evs[k:]
	}
	return nil
}

// engineRecords reads a view's stream from the earliest record with the
// engine's API until it has nothing new for a moment: the reference the
// HTTP streams must equal.
func engineRecords(t *testing.T, db *engine.DB, view string) []string {
	t.Helper()
	st, err := db.OpenOutputStream("os", view, engine.StreamStart{Kind: engine.StartEarliest})
	require.NoError(t, err)
	defer st.Close()
	var out []string
	var buf []engine.OutputRecord
	for {
		buf, err = st.Next(context.Background(), buf, 256, 200*time.Millisecond)
		require.NoError(t, err)
		if len(buf) == 0 {
			return out
		}
		for i := range buf {
			out = append(out, string(buf[i].AppendJSON(nil)))
		}
	}
}

// offsetOf returns a record's offset member.
func offsetOf(t *testing.T, rec string) string {
	t.Helper()
	var r struct{ Offset string }
	require.NoError(t, json.Unmarshal([]byte(rec), &r), rec)
	require.Len(t, r.Offset, 24, rec)
	return r.Offset
}

func streamPath(view, query string) string {
	p := "/api/v1/workspaces/os/feature-views/" + view + "/output-stream"
	if query != "" {
		p += "?" + query
	}
	return p
}

// liveStream is an open output stream response.
type liveStream struct {
	resp   *http.Response
	br     *bufio.Reader
	cancel context.CancelFunc
}

// openStream requests an output stream with client (http.DefaultClient
// when nil) and returns it once its headers arrived, whatever the status.
func openStream(ctx context.Context, client *http.Client, url, key string, header map[string]string) (*liveStream, error) {
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", bearer(key))
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	return &liveStream{resp: resp, br: bufio.NewReader(resp.Body), cancel: cancel}, nil
}

// stream opens a stream of the node that must be answered 200.
func (n *streamNode) stream(t *testing.T, view, query string, header map[string]string) *liveStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	s, err := openStream(ctx, nil, n.srv.URL+streamPath(view, query), n.reader, header)
	require.NoError(t, err)
	t.Cleanup(s.close)
	if s.resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(s.resp.Body)
		require.Equal(t, http.StatusOK, s.resp.StatusCode, "%s", body)
	}
	return s
}

func (s *liveStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// line returns the next line of an NDJSON stream without its newline; a
// line cut off by the end of the connection is an error.
func (s *liveStream) line() (string, error) {
	l, err := s.br.ReadString('\n')
	if err != nil {
		if err == io.EOF && l != "" {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return strings.TrimSuffix(l, "\n"), nil
}

// sseEvent is one server-sent event, or a comment.
type sseEvent struct {
	id, event, data string
	comment         string // a comment line, without the colon
}

// event returns the next event or comment of an SSE stream; an event cut
// off by the end of the connection is an error.
func (s *liveStream) event() (sseEvent, error) {
	var ev sseEvent
	seen := false
	for {
		l, err := s.line()
		if err != nil {
			return sseEvent{}, err
		}
		if l == "" {
			if seen {
				return ev, nil
			}
			continue
		}
		seen = true
		field, value, _ := strings.Cut(l, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			ev.comment = value
		case "id":
			ev.id = value
		case "event":
			ev.event = value
		case "data":
			if ev.data != "" {
				ev.data += "\n"
			}
			ev.data += value
		default:
			return sseEvent{}, fmt.Errorf("unknown SSE field in %q", l)
		}
	}
}

// records reads n records from an NDJSON (sse false) or SSE stream,
// checking that an SSE record's id is its offset. Heartbeats are skipped.
func (s *liveStream) records(t *testing.T, sse bool, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		if !sse {
			l, err := s.line()
			require.NoError(t, err, "after %d records", len(out))
			if l != "" {
				out = append(out, l)
			}
			continue
		}
		ev, err := s.event()
		require.NoError(t, err, "after %d records", len(out))
		if ev.comment != "" {
			continue
		}
		require.Equal(t, "record", ev.event, "%+v", ev)
		assert.Equal(t, offsetOf(t, ev.data), ev.id, "an event's id is its record's offset")
		out = append(out, ev.data)
	}
	return out
}

var sseAccept = map[string]string{"Accept": "text/event-stream"}

// metricValue returns the value of a metric series from /metrics (0 when
// absent); labels as Prometheus prints them, sorted by name.
func (n *node) metricValue(t *testing.T, name, labels string) float64 {
	t.Helper()
	r := n.send(get("/metrics"), "")
	require.Equal(t, http.StatusOK, r.status)
	for _, l := range strings.Split(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(l, name+"{"+labels+"} "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, l)
			return f
		}
	}
	return 0
}

func osLabels(view string) string { return `view="` + view + `",workspace="os"` }

// requireSame asserts got equals want, naming the first difference.
func requireSame(t *testing.T, want, got []string, what string) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		require.Equal(t, want[i], got[i], "%s: record %d of %d differs", what, i, len(want))
	}
	require.Equal(t, len(want), len(got), "%s: record count", what)
}

// TestOutputStreamMatchesEngine: over both formats, both views' streams
// from earliest are byte for byte the engine's; from=OFFSET starts at that
// record and Last-Event-ID right after it, winning over from; without from
// the stream starts with the next record appended; the metrics count the
// records and consumers.
func TestOutputStreamMatchesEngine(t *testing.T) {
	n := newStreamNode(t, httpapi.Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	require.NoError(t, ingestEvents(n.db, streamEvents(rng, 700, func() time.Time { return t0 }, 48*time.Hour, 0), func() int { return 1 + rng.IntN(40) }))
	for _, view := range []string{"latest", "sums"} {
		want := engineRecords(t, n.db, view)
		require.Len(t, want, 700, "every event yields a record")
		for _, sse := range []bool{false, true} {
			name := fmt.Sprintf("%s sse=%t", view, sse)
			var header map[string]string
			if sse {
				header = sseAccept
			}
			s := n.stream(t, view, "from=earliest", header)
			if sse {
				assert.Equal(t, "text/event-stream", s.resp.Header.Get("Content-Type"))
			} else {
				assert.Equal(t, "application/x-ndjson", s.resp.Header.Get("Content-Type"))
			}
			assert.Equal(t, "no-store", s.resp.Header.Get("Cache-Control"))
			requireSame(t, want, s.records(t, sse, len(want)), name+" from earliest")
			s.close()

			k := 1 + rng.IntN(len(want)-2)
			s = n.stream(t, view, "from="+offsetOf(t, want[k]), header)
			requireSame(t, want[k:], s.records(t, sse, len(want)-k), name+" from=OFFSET is inclusive")
			s.close()

			resume := map[string]string{"Last-Event-ID": offsetOf(t, want[k])}
			for hk, hv := range header {
				resume[hk] = hv
			}
			s = n.stream(t, view, "from=earliest", resume)
			requireSame(t, want[k+1:], s.records(t, sse, len(want)-k-1), name+" Last-Event-ID resumes after, over from")
			s.close()
		}
	}

	// No from: latest, the records appended after the request.
	s := n.stream(t, "sums", "", nil)
	before := len(engineRecords(t, n.db, "sums"))
	require.NoError(t, ingestEvents(n.db, streamEvents(rng, 5, func() time.Time { return t0 }, time.Hour, 0), func() int { return 2 }))
	all := engineRecords(t, n.db, "sums")
	requireSame(t, all[before:], s.records(t, false, 5), "default from=latest")
	assert.Equal(t, float64(1), n.metricValue(t, "featurelog_output_stream_consumers", osLabels("sums")))
	s.close()
	require.Eventually(t, func() bool { return n.metricValue(t, "featurelog_output_stream_consumers", osLabels("sums")) == 0 },
		10*time.Second, 10*time.Millisecond, "a closed stream is no longer counted")
	sent := n.metricValue(t, "featurelog_output_stream_records_sent_total", osLabels("sums"))
	assert.GreaterOrEqual(t, sent, float64(2*700+5), "records sent counts what the consumers read")
}

// TestOutputStreamHeartbeat: an idle stream gets a heartbeat: an SSE
// comment, an empty NDJSON line; a record still follows.
func TestOutputStreamHeartbeat(t *testing.T) {
	n := newStreamNode(t, httpapi.Options{OutputStreamHeartbeat: 50 * time.Millisecond})
	sse := n.stream(t, "latest", "from=latest", sseAccept)
	nd := n.stream(t, "latest", "", nil)
	for range 2 {
		ev, err := sse.event()
		require.NoError(t, err)
		assert.Equal(t, sseEvent{comment: "heartbeat"}, ev)
		l, err := nd.line()
		require.NoError(t, err)
		assert.Equal(t, "", l, "an NDJSON heartbeat is an empty line")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	require.NoError(t, ingestEvents(n.db, streamEvents(rng, 1, func() time.Time { return t0 }, time.Hour, 0), func() int { return 1 }))
	want := engineRecords(t, n.db, "latest")
	requireSame(t, want, sse.records(t, true, 1), "sse after heartbeats")
	requireSame(t, want, nd.records(t, false, 1), "ndjson after heartbeats")
}

// TestOutputStreamEndsWithError: an engine error after the stream
// started (here the engine closing) ends it with the error object: an
// NDJSON line, an SSE event "error"; then the response ends. The Go
// client returns it as a *StreamError.
func TestOutputStreamEndsWithError(t *testing.T) {
	n := newStreamNode(t, httpapi.Options{})
	nd := n.stream(t, "latest", "", nil)
	sse := n.stream(t, "sums", "", sseAccept)
	clientErr := make(chan error, 1)
	go func() {
		for _, err := range newClient(t, n.srv.URL, n.reader, nil).OutputStream(context.Background(), "os", "latest", client.StreamOptions{}) {
			if err != nil {
				clientErr <- err
			}
		}
	}()
	require.Eventually(t, func() bool { return n.metricValue(t, "featurelog_output_stream_consumers", osLabels("latest")) == 2 },
		10*time.Second, 10*time.Millisecond, "the client's stream is open")
	require.NoError(t, n.db.Close())
	defer n.node.open() // for the node's cleanup

	l, err := nd.line()
	require.NoError(t, err)
	obj := jsonObject(t, []byte(l), "code", "error", "message")
	assert.Equal(t, float64(14), obj["code"], "Unavailable")
	assert.Contains(t, obj["message"], "closed")
	_, err = nd.line()
	assert.ErrorIs(t, err, io.EOF, "the response ends after the error")

	ev, err := sse.event()
	require.NoError(t, err)
	assert.Equal(t, "error", ev.event)
	obj = jsonObject(t, []byte(ev.data), "code", "error", "message")
	assert.Equal(t, float64(14), obj["code"])
	_, err = sse.event()
	assert.ErrorIs(t, err, io.EOF)

	var ce *client.Error
	require.ErrorAs(t, <-clientErr, &ce)
	assert.Equal(t, client.Error{Status: http.StatusOK, Code: 14, Message: obj["message"].(string)}, *ce)
}

// TestOutputStreamClient: the Go client reads the stream from an offset,
// inclusive, and reports a refusal as a *StreamError.
func TestOutputStreamClient(t *testing.T) {
	n := newStreamNode(t, httpapi.Options{})
	rng := rand.New(rand.NewPCG(5, 6))
	require.NoError(t, ingestEvents(n.db, streamEvents(rng, 50, func() time.Time { return t0 }, time.Hour, 0), func() int { return 7 }))
	want := engineRecords(t, n.db, "sums")
	c := newClient(t, n.srv.URL, n.reader, nil)
	var got []string
	for rec, err := range c.OutputStream(context.Background(), "os", "sums", client.StreamOptions{From: offsetOf(t, want[10])}) {
		require.NoError(t, err)
		assert.Equal(t, offsetOf(t, string(rec.JSON)), rec.Offset)
		got = append(got, string(rec.JSON))
		if len(got) == len(want)-10 {
			break
		}
	}
	requireSame(t, want[10:], got, "client from an offset")

	for _, c := range []struct {
		view, from string
		status     int
	}{{"quiet", "", 404}, {"nope", "", 404}, {"sums", "12", 400}} {
		var err error
		for _, err = range newClient(t, n.srv.URL, n.reader, nil).OutputStream(context.Background(), "os", c.view, client.StreamOptions{From: c.from}) {
		}
		var ce *client.Error
		require.ErrorAs(t, err, &ce, "%s", c.view)
		assert.Equal(t, c.status, ce.Status, ce.Message)
	}
}

// goneRepo is a workspace whose source does not keep its records
// offline, so the log is truncated once the views checkpointed.
const goneRepo = `workspace: os
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: events
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Float64}
      - {name: note, type: String}
    push:
      log_offline: false
feature_views:
  - name: latest
    source: events
    entities: [user]
    timestamp_field: ts
    output_stream: {include_features: false}
    features:
      - attribute: {name: amount}
`

// TestOutputStreamGone: an offset the truncated log no longer holds is
// 410, from from and from Last-Event-ID alike; earliest starts at the
// first retained record.
func TestOutputStreamGone(t *testing.T) {
	clock := &fakeClock{}
	clock.Set(t0)
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Now: clock.Now, NoSync: true, DisableAutoFlush: true,
		SegmentSize: 4 << 10, IdempotencyWindow: time.Minute, Logger: quiet})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ApplyWait(context.Background(), "os.yaml", []byte(goneRepo))
	require.NoError(t, err)
	srv, err := httpapi.New(db, httpapi.Options{NoAuth: true, Logger: quiet})
	require.NoError(t, err)
	hs := httptest.NewServer(validated(t, srv.Handler(), true))
	defer hs.Close()

	rng := rand.New(rand.NewPCG(7, 8))
	require.NoError(t, ingestEvents(db, streamEvents(rng, 400, func() time.Time { return t0 }, time.Hour, 0), func() int { return 2 }))
	before := engineRecords(t, db, "latest")
	clock.Set(t0.Add(2 * time.Hour)) // past the idempotency window, which holds the log
	require.NoError(t, db.Flush())
	after := engineRecords(t, db, "latest")
	require.Less(t, len(after), len(before), "the flush truncated the log")
	requireSame(t, before[len(before)-len(after):], after, "the retained suffix")

	first := offsetOf(t, before[0])
	for _, h := range []map[string]string{nil, {"Last-Event-ID": first}} {
		s, err := openStream(context.Background(), nil, hs.URL+streamPath("latest", "from="+first), "", h)
		require.NoError(t, err)
		body, err := io.ReadAll(s.resp.Body)
		s.close()
		require.NoError(t, err)
		requireServingError(t, s.resp.StatusCode, body, http.StatusGone, 11)
		assert.Contains(t, string(body), "is no longer retained")
	}
	s, err := openStream(context.Background(), nil, hs.URL+streamPath("latest", "from=earliest"), "", nil)
	require.NoError(t, err)
	defer s.close()
	require.Equal(t, http.StatusOK, s.resp.StatusCode)
	requireSame(t, after, s.records(t, false, len(after)), "earliest after truncation")
}

// TestOutputStreamServerTimeouts: a stream served by Server.HTTPServer
// outlives its ReadTimeout and WriteTimeout (many times over), and the
// server's shutdown ends it cleanly at once rather than after the
// shutdown timeout.
func TestOutputStreamServerTimeouts(t *testing.T) {
	n := newStreamNode(t, httpapi.Options{})
	const timeout = 200 * time.Millisecond
	srv, err := httpapi.New(n.db, httpapi.Options{Addr: "127.0.0.1:0", ReadHeaderTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
		OutputStreamHeartbeat: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	httpapi.WrapHandler(srv, func(h http.Handler) http.Handler { return validated(t, h, false) })
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, func(a net.Addr) { addr <- a }) }()
	base := "http://" + (<-addr).String()

	s, err := openStream(context.Background(), nil, base+streamPath("latest", ""), n.reader, sseAccept)
	require.NoError(t, err)
	defer s.close()
	require.Equal(t, http.StatusOK, s.resp.StatusCode)
	start := time.Now()
	for time.Since(start) < 5*timeout {
		ev, err := s.event()
		require.NoError(t, err, "the stream is alive after %s", time.Since(start))
		require.Equal(t, "heartbeat", ev.comment)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	require.NoError(t, ingestEvents(n.db, streamEvents(rng, 3, func() time.Time { return t0 }, time.Hour, 0), func() int { return 3 }))
	requireSame(t, engineRecords(t, n.db, "latest"), s.records(t, true, 3), "records after the server's timeouts passed")

	stop()
	for {
		_, err := s.event()
		if err != nil {
			assert.ErrorIs(t, err, io.EOF, "shutdown ends the stream cleanly")
			break
		}
	}
	select {
	case err := <-done:
		assert.NoError(t, err, "the shutdown did not wait for the stream")
	case <-time.After(20 * time.Second): // ShutdownTimeout is 30s
		t.Fatal("ListenAndServe did not return: the stream held the shutdown")
	}
}

// TestOutputStreamRevokedKey: a stream whose key is revoked while it runs
// ends with an Unauthenticated error before the next record is sent.
func TestOutputStreamRevokedKey(t *testing.T) {
	n := newStreamNode(t, httpapi.Options{})
	key, acct, err := n.db.Accounts().CreateAccount("short-lived", "")
	require.NoError(t, err)
	require.NoError(t, n.db.Accounts().AssignRole(acct.ID, "os", auth.Viewer))
	s, err := openStream(context.Background(), nil, n.srv.URL+streamPath("latest", ""), key, sseAccept)
	require.NoError(t, err)
	defer s.close()
	require.Equal(t, http.StatusOK, s.resp.StatusCode)

	require.NoError(t, n.db.Accounts().DeleteAccount(acct.ID))
	rng := rand.New(rand.NewPCG(11, 12))
	require.NoError(t, ingestEvents(n.db, streamEvents(rng, 1, func() time.Time { return t0 }, time.Hour, 0), func() int { return 1 }))
	ev, err := s.event()
	require.NoError(t, err)
	require.Equal(t, "error", ev.event, "no record after the key was revoked: %+v", ev)
	obj := jsonObject(t, []byte(ev.data), "code", "error", "message")
	assert.Equal(t, float64(16), obj["code"])
	assert.Contains(t, obj["message"], "invalid API key")
	_, err = s.event()
	assert.ErrorIs(t, err, io.EOF)
}
