package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// follower counts the records of one view's output stream that a consumer
// received, and hands the latency probe the keys of those it looks for.
type follower struct {
	view string
	slot int          // the follower's index in its set: its column of the probe's receipts
	n    atomic.Int64 // records received
	last atomic.Int64 // when the last one was, Unix ns
	err  atomic.Pointer[string]
	// probe, when set, is told of every record whose key it may be
	// looking for.
	probe *atomic.Pointer[latencyProbe]
}

func (f *follower) fail(err error) {
	s := err.Error()
	f.err.CompareAndSwap(nil, &s)
}

func (f *follower) errText() string {
	if s := f.err.Load(); s != nil {
		return *s
	}
	return ""
}

// received notes a record with entity key key (nil when unknown).
func (f *follower) received(key []byte) {
	f.n.Add(1)
	now := time.Now()
	f.last.Store(now.UnixNano())
	if p := f.probe.Load(); p != nil && key != nil {
		p.receive(f.slot, key, now)
	}
}

// followerSet is the consumers of one node, one follower per view.
type followerSet struct {
	fs    []*follower
	probe atomic.Pointer[latencyProbe]
	stop  func() // ends the consumers and waits for them
}

func newFollowerSet(views []string) *followerSet {
	s := &followerSet{stop: func() {}}
	for i, v := range views {
		s.fs = append(s.fs, &follower{view: v, slot: i, probe: &s.probe})
	}
	return s
}

// tally waits up to timeout for every follower to have received want
// records, and returns their counts; loop is how long the loop ran.
func (s *followerSet) tally(want int64, loop, timeout time.Duration) []ConsumerTally {
	if s == nil {
		return nil
	}
	counts := make([]*atomic.Int64, len(s.fs))
	out := make([]ConsumerTally, len(s.fs))
	for i, f := range s.fs {
		counts[i] = &f.n
		out[i] = ConsumerTally{View: f.view, Want: want, AtEnd: f.n.Load(), Loop: loop}
	}
	took := waitCounts(counts, want, timeout)
	for i, f := range s.fs {
		out[i].Got, out[i].Drain, out[i].Err = f.n.Load(), took[i], f.errText()
	}
	return out
}

// streamHTTPClient reads output streams: no timeout (a stream lasts), no
// compression, no proxy.
func streamHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true, ReadBufferSize: 256 << 10,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
}

// followHTTP opens the output stream of each follower's view on the node
// at base (workspace ws) from from, as server-sent events or NDJSON, and
// counts what arrives until ctx ends. It returns once every stream has
// answered 200.
func (s *followerSet) followHTTP(ctx context.Context, base, ws, from string, sse bool) error {
	hc := streamHTTPClient()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	s.stop = func() { cancel(); wg.Wait(); hc.CloseIdleConnections() }
	for _, f := range s.fs {
		body, err := openHTTPStream(ctx, hc, base+"/api/v1/workspaces/"+ws+"/feature-views/"+f.view+"/output-stream?from="+from, sse)
		if err != nil {
			s.stop()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer body.Close()
			err := readStream(body, sse, f)
			if err != nil && ctx.Err() == nil {
				f.fail(err)
			}
		}()
	}
	return nil
}

// openHTTPStream sends the GET of a stream and returns its body once the
// node answered 200.
func openHTTPStream(ctx context.Context, hc *http.Client, url string, sse bool) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if sse {
		req.Header.Set("Accept", "text/event-stream")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		resp.Body.Close()
		return nil, fmt.Errorf("bench: GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(msg))
	}
	return resp.Body, nil
}

// readStream counts the records of an NDJSON or SSE output stream. It
// looks at each line's start only: a line longer than the buffer is
// counted once, from its first chunk.
func readStream(r io.Reader, sse bool, f *follower) error {
	br := bufio.NewReaderSize(r, 1<<20)
	event := ""        // SSE: the current event's type
	continued := false // the line read is the rest of a long one
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 && !continued {
			if ferr := streamLine(line, sse, &event, f); ferr != nil {
				return ferr
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continued = true
		case err != nil:
			return err
		default:
			continued = false
		}
	}
}

// streamLine handles one line of a stream.
func streamLine(line []byte, sse bool, event *string, f *follower) error {
	if !sse {
		switch {
		case len(line) <= 1: // a heartbeat
		case bytes.HasPrefix(line, []byte(`{"code"`)):
			return fmt.Errorf("bench: the stream of %s ended with an error: %s", f.view, bytes.TrimSpace(line))
		default:
			f.received(recordKey(line, f))
		}
		return nil
	}
	switch {
	case bytes.HasPrefix(line, []byte("event: ")):
		*event = string(bytes.TrimSpace(line[len("event: "):]))
	case bytes.HasPrefix(line, []byte("data: ")):
		if *event == "error" {
			return fmt.Errorf("bench: the stream of %s ended with an error: %s", f.view, bytes.TrimSpace(line))
		}
		f.received(recordKey(line, f))
	}
	return nil
}

// userKeyField precedes the user_id of an output record's entity keys.
var userKeyField = []byte(`"entity_keys":{"user_id":"`)

// recordKey returns the user_id of an output record's line when a probe
// is listening, else nil.
func recordKey(line []byte, f *follower) []byte {
	if f.probe.Load() == nil {
		return nil
	}
	i := bytes.Index(line, userKeyField)
	if i < 0 {
		return nil
	}
	k := line[i+len(userKeyField):]
	if j := bytes.IndexByte(k, '"'); j >= 0 {
		return k[:j]
	}
	return nil
}

// latencyProbe matches the latency loop's requests with the receipt of
// their records: request i carries the record of user "p<i>" first, the
// others "q<i>-<j>".
type latencyProbe struct {
	epoch time.Time
	// sent and acked are request i's send and 200 times, recv[slot][i]
	// the first receipt of its record by follower slot: ns since epoch,
	// 0 for none.
	sent, acked []atomic.Int64
	recv        [][]atomic.Int64
}

func newLatencyProbe(requests, slots int) *latencyProbe {
	p := &latencyProbe{epoch: time.Now(), sent: make([]atomic.Int64, requests), acked: make([]atomic.Int64, requests)}
	for range slots {
		p.recv = append(p.recv, make([]atomic.Int64, requests))
	}
	return p
}

func (p *latencyProbe) since(t time.Time) int64 { return int64(t.Sub(p.epoch)) + 1 }

// receive notes that follower slot received the record of user key.
func (p *latencyProbe) receive(slot int, key []byte, at time.Time) {
	if len(key) < 2 || key[0] != 'p' {
		return
	}
	i, err := strconv.Atoi(string(key[1:]))
	if err != nil || i < 0 || i >= len(p.sent) {
		return
	}
	p.recv[slot][i].CompareAndSwap(0, p.since(at))
}

// appendProbeBody appends request i's body of n records.
func appendProbeBody(dst []byte, i, n int, ts time.Time) []byte {
	dst = appendStreamBody(dst, "p", i, 1, ts)
	if n == 1 {
		return dst
	}
	// Splice the other records into the same array.
	dst = dst[:len(dst)-len("]}}")]
	rest := appendStreamBody(nil, "q"+strconv.Itoa(i)+"-", 1, n-1, ts)
	rest = rest[len(streamBodyHead):]
	dst = append(dst, ',')
	return append(dst, rest...)
}

// endToEnd returns the distribution, over requests sent at or after from
// (ns since epoch) and every slot, of the time from the request's 200 to
// its record's receipt.
func (p *latencyProbe) endToEnd(from int64) (lat Latency, samples, early, missing int) {
	var s []int64
	for i := range p.sent {
		sent, acked := p.sent[i].Load(), p.acked[i].Load()
		if sent == 0 || acked == 0 || sent < from {
			continue
		}
		for slot := range p.recv {
			r := p.recv[slot][i].Load()
			switch {
			case r == 0:
				missing++
			case r < acked:
				early++
				s = append(s, 0)
			default:
				s = append(s, r-acked)
			}
		}
	}
	return summarize(s), len(s), early, missing
}
