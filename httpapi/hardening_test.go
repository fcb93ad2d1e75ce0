package httpapi_test

// HTTP hardening (issue #5 item 7): each server limit of Options, tested
// on a real listener with tiny values: a client that trickles its headers
// is cut off after ReadHeaderTimeout, one that trickles its body after
// ReadTimeout, an oversized header block gets 431, an idle keep-alive
// connection is closed after IdleTimeout; 200 slowloris connections do
// not stop normal requests; historical answers still stream for longer
// than ReadTimeout and WriteTimeout. Latency under slowloris is measured
// by `featurelog bench slowloris` (bench.RunSlowloris), never asserted
// here.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/vfs"
	"github.com/featurelog/featurelog/vfs/errorfs"
)

// liveNode is a featurelog node with the ads repo, fsync on and auth off,
// served by Server.ListenAndServe on a loopback port: the real
// http.Server with the timeouts of its Options.
type liveNode struct {
	t    *testing.T
	dir  string
	db   *engine.DB
	srv  *httpapi.Server
	addr string // host:port
	stop func() // stops serving (idempotent); Cleanup calls it and closes db
}

var discard = slog.New(slog.DiscardHandler)

func newLiveNode(t *testing.T, opts httpapi.Options) *liveNode {
	t.Helper()
	n := &liveNode{t: t, dir: t.TempDir()}
	var err error
	n.db, err = engine.Open(engine.Options{Dir: n.dir, Logger: discard})
	require.NoError(t, err)
	ads, err := os.ReadFile(filepath.Join("..", "examples", "ads", "features.yaml"))
	require.NoError(t, err)
	_, err = n.db.Apply("features.yaml", ads)
	require.NoError(t, err)
	opts.Addr, opts.NoAuth, opts.Logger = "127.0.0.1:0", true, discard
	n.srv, err = httpapi.New(n.db, opts)
	require.NoError(t, err)
	httpapi.WrapHandler(n.srv, func(h http.Handler) http.Handler { return validated(t, h, true) })
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- n.srv.ListenAndServe(ctx, func(a net.Addr) { ready <- a.String() }) }()
	select {
	case n.addr = <-ready:
	case err := <-done:
		t.Fatalf("ListenAndServe: %v", err)
	}
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			assert.NoError(t, <-done, "ListenAndServe")
		})
	}
	t.Cleanup(func() {
		n.stop()
		n.db.Close()
	})
	return n
}

func (n *liveNode) url(path string) string { return "http://" + n.addr + path }

// dial opens a raw connection whose reads give up after 10s: far beyond
// every timeout under test, so a read that hits this deadline means the
// server kept a connection open that it should have closed.
func (n *liveNode) dial() net.Conn {
	n.t.Helper()
	c, err := net.Dial("tcp", n.addr)
	require.NoError(n.t, err)
	n.t.Cleanup(func() { c.Close() })
	require.NoError(n.t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	return c
}

// requireClosedByServer reads c to its end and returns what the server
// sent before it closed the connection. It fails if the read ran into
// the client's own deadline: the server did not close.
func requireClosedByServer(t *testing.T, c net.Conn, why string) string {
	t.Helper()
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the server kept the connection open for 10s (read %q)", why, got)
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("%s: reading the connection: %v", why, err)
	}
	return string(got)
}

// ingestBody is a one-record ads ingest request for user, a second ago.
func ingestBody(user string) string {
	return fmt.Sprintf(`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[{"record":{"timestamp":%q,"user_id":%q,"clicked":1}}]}}`,
		time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano), user)
}

// getFeaturesBody asks ad_ctr_feature_service for user.
func getFeaturesBody(user string) string {
	return fmt.Sprintf(`{"params":{"workspace_name":"ads","feature_service_name":"ad_ctr_feature_service","join_key_map":{"user_id":%q}}}`, user)
}

// present reports whether db serves user's latest click: whether a
// record of user was written.
func present(t *testing.T, db *engine.DB, user string) bool {
	t.Helper()
	vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service",
		JoinKeys: map[string]any{"user_id": user}})
	require.NoError(t, err)
	return vec.Features[0].Status == engine.Present
}

func TestServerOptionsReachHTTPServer(t *testing.T) {
	n := newLiveNode(t, httpapi.Options{ReadHeaderTimeout: 1 * time.Second, ReadTimeout: 2 * time.Second,
		WriteTimeout: 3 * time.Second, IdleTimeout: 4 * time.Second, MaxHeaderBytes: 5000})
	hs := n.srv.HTTPServer()
	assert.Equal(t, 1*time.Second, hs.ReadHeaderTimeout)
	assert.Equal(t, 2*time.Second, hs.ReadTimeout)
	assert.Equal(t, 3*time.Second, hs.WriteTimeout)
	assert.Equal(t, 4*time.Second, hs.IdleTimeout)
	assert.Equal(t, 5000, hs.MaxHeaderBytes)

	var o httpapi.Options
	o.EnsureDefaults()
	assert.Equal(t, 10*time.Second, o.ReadHeaderTimeout)
	assert.Equal(t, 60*time.Second, o.ReadTimeout)
	assert.Equal(t, 60*time.Second, o.WriteTimeout)
	assert.Equal(t, 120*time.Second, o.IdleTimeout)
	assert.Equal(t, 1<<20, o.MaxHeaderBytes)
	assert.Equal(t, 30*time.Second, o.ShutdownTimeout)
	require.NoError(t, o.Validate())
	for name, bad := range map[string]httpapi.Options{
		"negative ReadTimeout":            {ReadTimeout: -1},
		"negative MaxHeaderBytes":         {MaxHeaderBytes: -1},
		"negative MaxInflightIngest":      {MaxInflightIngest: -1},
		"pending bytes below a body":      {MaxBodyBytes: 1 << 20, MaxPendingIngestBytes: 1 << 19},
		"negative IngestQueueTimeout":     {IngestQueueTimeout: -time.Second},
		"negative ShutdownTimeout":        {ShutdownTimeout: -time.Second},
		"negative MaxQueuedIngest (fill)": {MaxQueuedIngest: -2},
	} {
		bad.EnsureDefaults()
		assert.Error(t, bad.Validate(), name)
	}
}

func TestServerReadHeaderTimeout(t *testing.T) {
	n := newLiveNode(t, httpapi.Options{ReadHeaderTimeout: 100 * time.Millisecond, ReadTimeout: time.Minute, IdleTimeout: time.Minute})
	c := n.dial()
	_, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: featurelog\r\n") // no blank line: headers never end
	require.NoError(t, err)
	got := requireClosedByServer(t, c, "headers never completed")
	assert.Empty(t, got, "net/http hangs up on a header timeout without answering")
}

func TestServerReadTimeoutCutsASlowBody(t *testing.T) {
	n := newLiveNode(t, httpapi.Options{ReadHeaderTimeout: time.Minute, ReadTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute})
	body := ingestBody("slow-body")
	c := n.dial()
	_, err := fmt.Fprintf(c, "POST /ingest HTTP/1.1\r\nHost: featurelog\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		len(body), body[:len(body)/2]) // half the body, then nothing
	require.NoError(t, err)
	got := requireClosedByServer(t, c, "body never completed")
	assert.Contains(t, got, "HTTP/1.1 400 ")
	assert.Contains(t, got, "i/o timeout")
	assert.False(t, present(t, n.db, "slow-body"), "a request whose body timed out must write nothing")
	// The slot the slow request held was released: ingest still works.
	resp, err := http.Post(n.url("/ingest"), "application/json", strings.NewReader(ingestBody("after")))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestServerMaxHeaderBytes(t *testing.T) {
	n := newLiveNode(t, httpapi.Options{MaxHeaderBytes: 1024})
	c := n.dial()
	// net/http allows MaxHeaderBytes plus 4 KiB of slack; send 64 KiB.
	_, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: featurelog\r\nX-Big: %s\r\n\r\n", strings.Repeat("x", 64<<10))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	// A header block within the limit is served.
	req, err := http.NewRequest(http.MethodGet, n.url("/healthz"), nil)
	require.NoError(t, err)
	req.Header.Set("X-Small", strings.Repeat("x", 512))
	ok, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	ok.Body.Close()
	assert.Equal(t, http.StatusOK, ok.StatusCode)
}

func TestServerIdleTimeout(t *testing.T) {
	n := newLiveNode(t, httpapi.Options{ReadHeaderTimeout: time.Minute, ReadTimeout: time.Minute, IdleTimeout: 100 * time.Millisecond})
	c := n.dial()
	br := bufio.NewReader(c)
	for range 2 { // the connection is kept alive between requests...
		_, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: featurelog\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.False(t, resp.Close, "the server must keep the connection alive")
	}
	// ...and closed once idle for IdleTimeout.
	got := requireClosedByServer(t, readerConn{c, br}, "idle keep-alive connection")
	assert.Empty(t, got)
}

// readerConn reads through a bufio.Reader that may hold buffered bytes.
type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestServerSlowloris holds 200 connections that trickle their headers a
// byte at a time: normal ingest and get-features requests succeed while
// they are open, and the server closes every one of them after
// ReadHeaderTimeout although each keeps sending.
func TestServerSlowloris(t *testing.T) {
	const conns = 200
	n := newLiveNode(t, httpapi.Options{ReadHeaderTimeout: time.Second, ReadTimeout: time.Minute, IdleTimeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	closed := make(chan error, conns)
	for i := range conns {
		c := n.dial()
		go func() { closed <- trickle(ctx, c, i) }()
	}
	for i := range 20 {
		user := fmt.Sprintf("normal-%d", i)
		resp, err := http.Post(n.url("/ingest"), "application/json", strings.NewReader(ingestBody(user)))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "ingest during slowloris")
		resp, err = http.Post(n.url("/api/v1/feature-service/get-features"), "application/json", strings.NewReader(getFeaturesBody(user)))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "get-features during slowloris: %s", b)
		require.Contains(t, string(b), `"1"`, "read-after-write during slowloris")
	}
	for range conns {
		require.NoError(t, <-closed)
	}
}

// trickle sends a request's headers to c one byte every 10ms, repeating
// header lines so they never end, until the server closes c (nil) or ctx
// is done or 10s pass (an error: the server let it trickle on).
func trickle(ctx context.Context, c net.Conn, i int) error {
	head := fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: featurelog\r\nX-Loris-%d: ", i)
	deadline := time.Now().Add(10 * time.Second)
	for k := 0; time.Now().Before(deadline); k++ {
		b := byte('a' + k%26)
		if k < len(head) {
			b = head[k]
		}
		if _, err := c.Write([]byte{b}); err != nil {
			return nil // closed by the server
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("slowloris connection %d was still open after 10s of trickled headers", i)
}

// TestServerHistoricalStreamsPastTimeouts: a historical NDJSON request
// whose spine arrives over about a second still answers every row with
// ReadTimeout and WriteTimeout of 200ms: the handler extends its
// connection's deadlines as data moves.
func TestServerHistoricalStreamsPastTimeouts(t *testing.T) {
	n := newLiveNode(t, httpapi.Options{ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	resp, err := http.Post(n.url("/ingest"), "application/json", strings.NewReader(ingestBody("u1")))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	const rows = 10
	pr, pw := io.Pipe()
	go func() {
		for i := range rows {
			fmt.Fprintf(pw, "{\"i\": %d, \"user_id\": \"u1\", \"ts\": %q}\n", i, time.Now().UTC().Format(time.RFC3339Nano))
			time.Sleep(100 * time.Millisecond) // the client's pace, not a wait for state
		}
		pw.Close()
	}()
	c := newClient(t, "http://"+n.addr, "", nil)
	res, err := c.GetFeaturesForEvents(context.Background(), client.HistoricalRequest{Workspace: "ads", Service: "ad_ctr_feature_service", SpineSource: client.NDJSONSpine(pr)})
	require.NoError(t, err)
	defer res.Close()
	got := 0
	for {
		_, err := res.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "row %d", got)
		got++
	}
	assert.Equal(t, rows, got, "every spine row is answered")
}

// TestReadyzReportsFailingCheckpoints: while background checkpoints fail
// (segment files cannot be created), /readyz stays 200, says "degraded"
// and why, and ingest keeps acknowledging; once they succeed it is plain
// "ready" again.
func TestReadyzReportsFailingCheckpoints(t *testing.T) {
	in := errorfs.NewInjector(vfs.Default)
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Logger: discard, FS: in, FlushRecords: 1})
	require.NoError(t, err)
	defer db.Close()
	ads, err := os.ReadFile(filepath.Join("..", "examples", "ads", "features.yaml"))
	require.NoError(t, err)
	_, err = db.Apply("features.yaml", ads)
	require.NoError(t, err)
	srv, err := httpapi.New(db, httpapi.Options{NoAuth: true, Logger: discard})
	require.NoError(t, err)
	h := validated(t, srv.Handler(), true)
	do := func(method, path, body string) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
		return w.Code, w.Body.String()
	}
	readyz := func() string {
		code, body := do(http.MethodGet, "/readyz", "")
		require.Equal(t, http.StatusOK, code, body)
		return body
	}
	assert.Equal(t, `{"status":"ready"}`, readyz())

	in.FailOps(errorfs.OpCreate)
	i := 0
	require.Eventually(t, func() bool {
		i++
		code, body := do(http.MethodPost, "/ingest", ingestBody(fmt.Sprintf("u%d", i)))
		require.Equal(t, http.StatusOK, code, body)
		return strings.Contains(readyz(), `"degraded"`)
	}, 10*time.Second, 20*time.Millisecond)
	assert.Contains(t, readyz(), "background checkpoints are failing")
	assert.Contains(t, readyz(), "injected fault")

	in.FailOps()
	require.Eventually(t, func() bool {
		i++
		code, body := do(http.MethodPost, "/ingest", ingestBody(fmt.Sprintf("u%d", i)))
		require.Equal(t, http.StatusOK, code, body)
		return readyz() == `{"status":"ready"}`
	}, 10*time.Second, 20*time.Millisecond)
}
