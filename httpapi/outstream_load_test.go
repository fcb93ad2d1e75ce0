//go:build unix

package httpapi_test

// Output streams under load (SPEC §7): consumers whose connections are
// cut at random points, while two clients ingest, resume from the last
// offset they saw and end up with exactly the engine's sequence; a
// consumer asking get-features on receipt of a record is served an
// effective time at least the record's feature_timestamp, even for
// records dated ahead of the clock; a consumer that reads nothing has its
// stream ended after the write timeout, without the handler running
// ahead of it, and resumes.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/httpapi"
)

// cutTransport cuts each response body after a random number of bytes,
// closing the connection, as a network failure would.
type cutTransport struct {
	mu      sync.Mutex
	rng     *rand.Rand
	maxCut  int
	streams atomic.Int64 // responses served
}

func (c *cutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	left := 1 + c.rng.IntN(c.maxCut)
	c.mu.Unlock()
	c.streams.Add(1)
	resp.Body = &cutBody{rc: resp.Body, left: left}
	return resp, nil
}

type cutBody struct {
	rc   io.ReadCloser
	left int
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		b.rc.Close()
		return 0, io.ErrUnexpectedEOF
	}
	n, err := b.rc.Read(p[:min(len(p), b.left)])
	b.left -= n
	return n, err
}

func (b *cutBody) Close() error { return b.rc.Close() }

// resumer is a consumer that reconnects after every cut: its connection
// is cut by a cutTransport, or dropped by itself after a random number of
// records.
type resumer struct {
	n      *streamNode
	view   string
	sse    bool // resume with Last-Event-ID; else with from=<last offset>, inclusive
	rng    *rand.Rand
	client *http.Client
	target *atomic.Int64 // records to read; 0 until known

	seen       []string
	last       string
	reconnects int
}

// run reads until it has target records or ctx ends.
func (r *resumer) run(ctx context.Context) error {
	for {
		done, err := r.connect(ctx)
		if done || err != nil {
			return err
		}
		r.reconnects++
	}
}

// connect reads one connection; done when the consumer has every record.
func (r *resumer) connect(ctx context.Context) (done bool, err error) {
	header := map[string]string{}
	query := "from=earliest"
	switch {
	case r.sse:
		header["Accept"] = "text/event-stream"
		if r.last != "" {
			header["Last-Event-ID"] = r.last
		}
	case r.last != "":
		query = "from=" + r.last
	}
	s, err := openStream(ctx, r.client, r.n.srv.URL+streamPath(r.view, query), r.n.reader, header)
	if err != nil {
		return false, err
	}
	defer s.close()
	if s.resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status %d", s.resp.StatusCode)
	}
	drop := 1 + r.rng.IntN(300) // records after which the consumer hangs up
	first := r.last != "" && !r.sse
	for got := 0; got < drop; {
		if t := r.target.Load(); t > 0 && len(r.seen) >= int(t) {
			return true, nil
		}
		rec, err := r.next(s)
		if err != nil {
			return false, nil // cut: reconnect
		}
		if rec == "" {
			continue // a heartbeat
		}
		off := offsetFromJSON(rec)
		if first { // from is inclusive: the record last seen comes again
			first = false
			if off != r.last {
				return false, fmt.Errorf("from=%s started with %s", r.last, off)
			}
			continue
		}
		r.seen = append(r.seen, rec)
		r.last = off
		got++
	}
	return false, nil
}

// next returns the next record, "" for a heartbeat.
func (r *resumer) next(s *liveStream) (string, error) {
	if !r.sse {
		return s.line()
	}
	ev, err := s.event()
	if err != nil || ev.comment != "" {
		return "", err
	}
	if ev.event != "record" || ev.id != offsetFromJSON(ev.data) {
		return "", fmt.Errorf("bad event %+v", ev)
	}
	return ev.data, nil
}

func offsetFromJSON(rec string) string {
	var r struct{ Offset string }
	json.Unmarshal([]byte(rec), &r)
	return r.Offset
}

// TestOutputStreamResumeWithDrops: while two clients ingest 3000 records
// in many requests, three consumers read the sums view's stream with
// their connections cut at random points (by the transport, mid-line or
// mid-event, and by themselves after a random number of records): one
// resumes with Last-Event-ID (SSE), one with from=<last offset> (NDJSON,
// dropping the repeated record), one is the Go client, which resumes by
// itself. Each ends with exactly the engine's sequence: no gap, no
// duplicate.
func TestOutputStreamResumeWithDrops(t *testing.T) {
	n := newStreamNode(t, httpapi.Options{OutputStreamHeartbeat: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var target atomic.Int64
	newCut := func(seed uint64) *cutTransport {
		return &cutTransport{rng: rand.New(rand.NewPCG(seed, 1)), maxCut: 96 << 10}
	}
	consumers := []*resumer{
		{n: n, view: "sums", sse: true, rng: rand.New(rand.NewPCG(11, 1)), client: &http.Client{Transport: newCut(12)}, target: &target},
		{n: n, view: "sums", rng: rand.New(rand.NewPCG(13, 1)), client: &http.Client{Transport: newCut(14)}, target: &target},
	}
	errs := make(chan error, len(consumers)+3)
	var wg sync.WaitGroup
	for _, c := range consumers {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- c.run(ctx) }()
	}
	clientCut := newCut(15)
	var viaClient []string
	var viaClientN atomic.Int64
	clientCtx, stopClient := context.WithCancel(ctx)
	defer stopClient()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := newClient(t, n.srv.URL, n.reader, &http.Client{Transport: clientCut})
		for rec, err := range c.OutputStream(clientCtx, "os", "sums", client.StreamOptions{From: "earliest"}) {
			if err != nil {
				if !errors.Is(err, context.Canceled) || ctx.Err() != nil {
					errs <- err
				}
				break
			}
			viaClient = append(viaClient, string(rec.JSON))
			viaClientN.Add(1)
		}
	}()

	var ingest sync.WaitGroup
	for c := range 2 {
		ingest.Add(1)
		go func() {
			defer ingest.Done()
			rng := rand.New(rand.NewPCG(uint64(20+c), 2))
			evs := streamEvents(rng, 1500, func() time.Time { return t0 }, 48*time.Hour, 0)
			errs <- ingestEvents(n.db, evs, func() int { return 1 + rng.IntN(25) })
		}()
	}
	ingest.Wait()
	want := engineRecords(t, n.db, "sums")
	require.Len(t, want, 3000)
	target.Store(int64(len(want)))
	require.Eventually(t, func() bool { return viaClientN.Load() >= int64(len(want)) }, time.Minute, 10*time.Millisecond,
		"the Go client received %d of %d records", viaClientN.Load(), len(want))
	stopClient() // it follows the stream until its context ends
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for i, c := range consumers {
		requireSame(t, want, c.seen, fmt.Sprintf("consumer %d (sse=%t)", i, c.sse))
		assert.Greater(t, c.reconnects, 10, "consumer %d was cut often", i)
		t.Logf("consumer %d (sse=%t): %d reconnections", i, c.sse, c.reconnects)
	}
	requireSame(t, want, viaClient, "the Go client")
	assert.Greater(t, clientCut.streams.Load(), int64(10), "the client's connection was cut often")
	t.Logf("client: %d connections", clientCut.streams.Load())
}

// TestOutputStreamConsistency: for every record a consumer receives, a
// get-features call it then makes returns, for the record's view, an
// effective time at least the record's feature_timestamp. The events are
// dated up to 4 minutes ahead of a clock that moves on meanwhile, so the
// node must hold a record until the clock passes its time.
func TestOutputStreamConsistency(t *testing.T) {
	n := newStreamNode(t, httpapi.Options{OutputStreamHeartbeat: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	views := []string{"latest", "sums"}
	got := make([][]string, len(views))
	var counts [2]atomic.Int64
	var ahead atomic.Int64 // events dated ahead of the clock when generated
	errs := make(chan error, 8)
	var consumers sync.WaitGroup
	for i, view := range views {
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			c := newClient(t, n.srv.URL, n.reader, nil)
			errs <- func() error {
				for rec, err := range c.OutputStream(ctx, "os", view, client.StreamOptions{From: "earliest"}) {
					if err != nil {
						return err
					}
					got[i] = append(got[i], string(rec.JSON))
					counts[i].Add(1)
					if err := checkEffective(n, view, rec.JSON); err != nil {
						return err
					}
				}
				return nil
			}()
		}()
	}

	stopClock := make(chan struct{})
	clockDone := make(chan struct{})
	go func() { // the clock runs 1000 times as fast as real time
		defer close(clockDone)
		for {
			select {
			case <-stopClock:
				return
			case <-time.After(time.Millisecond):
				n.clock.Set(n.clock.Now().Add(time.Second))
			}
		}
	}()
	var ingest sync.WaitGroup
	for c := range 2 {
		ingest.Add(1)
		go func() {
			defer ingest.Done()
			rng := rand.New(rand.NewPCG(uint64(30+c), 3))
			for range 60 {
				evs := streamEvents(rng, 5, n.clock.Now, 10*time.Minute, 4*time.Minute)
				for _, e := range evs {
					if e.ts.After(n.clock.Now()) {
						ahead.Add(1)
					}
				}
				if err := ingestEvents(n.db, evs, func() int { return 5 }); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	ingest.Wait()
	close(stopClock)
	<-clockDone
	n.clock.Set(n.clock.Now().Add(10 * time.Minute)) // past every event: the held records are published
	for i, view := range views {
		want := engineRecords(t, n.db, view)
		require.Len(t, want, 600)
		require.Eventually(t, func() bool { return counts[i].Load() >= int64(len(want)) }, time.Minute, 10*time.Millisecond,
			"%s: the consumer received %d of %d records", view, counts[i].Load(), len(want))
	}
	cancel()
	consumers.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			require.NoError(t, err)
		}
	}
	for i, view := range views {
		requireSame(t, engineRecords(t, n.db, view), got[i], view)
	}
	assert.Greater(t, ahead.Load(), int64(50), "events dated ahead of the clock, which the node must hold")
	t.Logf("%d of 600 events were dated ahead of the clock", ahead.Load())
}

// checkEffective calls get-features for a record's key and checks the
// effective times of its view's features.
func checkEffective(n *streamNode, view string, rec json.RawMessage) error {
	var r struct {
		FeatureTimestamp time.Time         `json:"feature_timestamp"`
		EntityKeys       map[string]string `json:"entity_keys"`
	}
	if err := json.Unmarshal(rec, &r); err != nil {
		return err
	}
	body := fmt.Sprintf(`{"params":{"workspace_name":"os","feature_service_name":"all","join_key_map":{"user_id":%q},`+
		`"metadata_options":{"include_names":true,"include_effective_times":true}}}`, r.EntityKeys["user_id"])
	req, err := http.NewRequest(http.MethodPost, n.srv.URL+"/api/v1/feature-service/get-features", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", bearer(n.reader))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get-features: %d %s %v", resp.StatusCode, data, err)
	}
	var out struct {
		Metadata struct {
			Features []struct {
				Name          string     `json:"name"`
				EffectiveTime *time.Time `json:"effectiveTime"`
			} `json:"features"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return err
	}
	checked := 0
	for _, f := range out.Metadata.Features {
		if !strings.HasPrefix(f.Name, view+".") {
			continue
		}
		checked++
		if f.EffectiveTime == nil || f.EffectiveTime.Before(r.FeatureTimestamp) {
			return fmt.Errorf("record %s: feature %s has effective time %v, before the record's feature_timestamp %s", rec, f.Name, f.EffectiveTime, r.FeatureTimestamp)
		}
	}
	if checked == 0 {
		return fmt.Errorf("get-features has no feature of view %s: %s", view, data)
	}
	return nil
}

// smallBuffers sets a small socket buffer on every connection a listener
// accepts, so that a consumer that reads nothing blocks the server's
// writes after a few kilobytes, not megabytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4 << 10)
	}
	return c, err
}

// smallReceiveBuffer is a dialer whose sockets have a small receive
// buffer, set before connecting so the window stays small.
var smallReceiveBuffer = &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10) }); err != nil {
		return err
	}
	return serr
}}

// TestOutputStreamSlowConsumer: a consumer that reads nothing while 20k
// records are ingested has its stream ended once a write has waited for
// the write timeout; the handler wrote only what the socket buffers took
// and one batch (it did not run ahead of the consumer, so its memory did
// not grow with the backlog); the consumer resumes from the last complete
// record it received and ends with exactly the engine's sequence.
func TestOutputStreamSlowConsumer(t *testing.T) {
	n := newStreamNode(t, httpapi.Options{OutputStreamWriteTimeout: 300 * time.Millisecond})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.h.Load().(http.Handler).ServeHTTP(w, r)
	}))
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	defer srv.Close()
	slow := &http.Client{Transport: &http.Transport{DialContext: smallReceiveBuffer.DialContext, DisableCompression: true}}
	defer slow.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := openStream(ctx, slow, srv.URL+streamPath("latest", "from=earliest"), n.reader, nil)
	require.NoError(t, err)
	defer s.close()
	require.Equal(t, http.StatusOK, s.resp.StatusCode)

	const total = 20000
	rng := rand.New(rand.NewPCG(40, 4))
	require.NoError(t, ingestEvents(n.db, streamEvents(rng, total, func() time.Time { return t0 }, 48*time.Hour, 0), func() int { return 500 }))
	require.Eventually(t, func() bool {
		return n.metricValue(t, "featurelog_output_stream_slow_consumers_total", osLabels("latest")) == 1
	}, time.Minute, 20*time.Millisecond, "the stream of a consumer that reads nothing is ended")
	assert.Equal(t, float64(0), n.metricValue(t, "featurelog_output_stream_consumers", osLabels("latest")))
	sent := n.metricValue(t, "featurelog_output_stream_records_sent_total", osLabels("latest"))
	t.Logf("records written (whole batches) before the stream was ended: %v of %d", sent, total)

	// The consumer wakes up: it reads what reached it, up to the last
	// complete line, and resumes from there.
	var seen []string
	for {
		l, err := s.line()
		if err != nil {
			break
		}
		seen = append(seen, l)
	}
	require.NotEmpty(t, seen, "the records that reached the consumer before the cut")
	assert.Less(t, len(seen), total/4, "the consumer's connection took only a few records before the handler's write blocked")
	t.Logf("records that reached the consumer before the cut: %d", len(seen))
	want := engineRecords(t, n.db, "latest")
	require.Len(t, want, total)
	r := n.stream(t, "latest", "", map[string]string{"Last-Event-ID": offsetOf(t, seen[len(seen)-1])})
	seen = append(seen, r.records(t, false, total-len(seen))...)
	requireSame(t, want, seen, "the slow consumer, resumed")
}
