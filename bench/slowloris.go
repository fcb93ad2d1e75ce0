package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// SlowlorisConfig configures RunSlowloris.
type SlowlorisConfig struct {
	// Command starts the featurelog server process (see Server.Command).
	// Required.
	Command []string
	// TempDir is where the data directory is created (and removed
	// afterwards). Default os.TempDir().
	TempDir string
	// Conns is the number of slowloris connections held open. Default 200.
	Conns int
	// Every is how often each slowloris connection sends one more byte of
	// its endless headers. Default 100ms.
	Every time.Duration
	// Clients is the concurrency of the normal requests. Default 4.
	Clients int
	// Keys is the number of users loaded before the run, which the
	// get-features requests ask for. Default 10,000.
	Keys int
	// Progress receives a line per phase. Default none.
	Progress io.Writer
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *SlowlorisConfig) EnsureDefaults() {
	if c.Conns == 0 {
		c.Conns = 200
	}
	if c.Every == 0 {
		c.Every = 100 * time.Millisecond
	}
	if c.Clients == 0 {
		c.Clients = 4
	}
	if c.Keys == 0 {
		c.Keys = 10_000
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *SlowlorisConfig) Validate() error {
	if len(c.Command) == 0 {
		return errors.New("bench: SlowlorisConfig.Command is required: the argv prefix of a program that calls bench.ServeMain")
	}
	if c.Conns <= 0 || c.Every <= 0 || c.Clients <= 0 || c.Keys <= 0 {
		return errors.New("bench: Conns, Every, Clients and Keys must be positive")
	}
	return c.Loop.Validate()
}

// SlowlorisResult is what RunSlowloris measured: the normal requests
// without and with the slowloris connections, in the same run against
// the same server.
type SlowlorisResult struct {
	Conns, Clients int
	// GetBase and IngestBase ran without slowloris connections;
	// GetLoris and IngestLoris with Conns of them open.
	GetBase, GetLoris, IngestBase, IngestLoris Result
	// Closed counts slowloris connections the server closed (after its
	// ReadHeaderTimeout); each was reopened at once, so Conns stayed open.
	Closed int64
}

// RunSlowloris measures what slowloris connections cost normal requests
// (issue #5 item 7): closed loops of get-features and of single-record
// ingest run first alone, then while Conns connections trickle request
// headers that never end, one byte every Every, reconnecting whenever
// the server closes them.
func RunSlowloris(cfg SlowlorisConfig) (*SlowlorisResult, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	srv := Server{Command: cfg.Command, TempDir: cfg.TempDir}
	p, c, err := startReadServer(&srv, cfg.Keys, cfg.Clients)
	if err != nil {
		return nil, err
	}
	res := &SlowlorisResult{Conns: cfg.Conns, Clients: cfg.Clients}
	var size atomic.Int64
	loops := func(label string, get, ingest *Result) {
		fmt.Fprintf(cfg.Progress, "bench: slowloris: get-features and ingest, %s\n", label)
		*get = closedLoop("get-features "+label, cfg.Clients, cfg.Loop, newGetOp(c, p.url(getFeaturesPath), cfg.Keys, &size))
		*ingest = closedLoop("ingest "+label, cfg.Clients, cfg.Loop, newIngestOp(c, p.url(ingestPath), label, &size))
	}
	loops("base", &res.GetBase, &res.IngestBase)
	l, err := startLoris(p.addr, cfg.Conns, cfg.Every)
	if err == nil {
		loops("loris", &res.GetLoris, &res.IngestLoris)
		res.Closed = l.stop()
	}
	c.close()
	return res, errors.Join(err, p.stop())
}

// loris holds slowloris connections open.
type loris struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Int64 // connections the server closed
}

// startLoris opens n connections to addr that send endless headers, one
// byte every every, and returns once all are open.
func startLoris(addr string, n int, every time.Duration) (*loris, error) {
	ctx, cancel := context.WithCancel(context.Background())
	l := &loris{cancel: cancel}
	opened := make(chan error, n)
	for i := range n {
		l.wg.Go(func() { l.run(ctx, addr, i, every, opened) })
	}
	for range n {
		if err := <-opened; err != nil {
			l.stop()
			return nil, fmt.Errorf("bench: opening slowloris connections: %w", err)
		}
	}
	return l, nil
}

// run keeps one slowloris connection open until ctx is done, reporting
// the first dial's outcome on opened.
func (l *loris) run(ctx context.Context, addr string, i int, every time.Duration, opened chan<- error) {
	var d net.Dialer
	first := true
	for ctx.Err() == nil {
		c, err := d.DialContext(ctx, "tcp", addr)
		if first {
			opened <- err
			first = false
		}
		if err != nil {
			return
		}
		if trickleHeaders(ctx, c, i, every) {
			l.closed.Add(1)
		}
		c.Close()
	}
}

// trickleHeaders writes a request line and then header bytes, one every
// every, never ending the headers. It reports whether the server closed
// the connection (rather than ctx ending).
func trickleHeaders(ctx context.Context, c net.Conn, i int, every time.Duration) bool {
	head := "POST " + getFeaturesPath + " HTTP/1.1\r\nHost: featurelog\r\nX-Slow-" + strconv.Itoa(i) + ": "
	t := time.NewTicker(every)
	defer t.Stop()
	for k := 0; ; k++ {
		b := byte('a' + k%26)
		if k < len(head) {
			b = head[k]
		}
		if _, err := c.Write([]byte{b}); err != nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// stop closes the connections and returns how many the server closed.
func (l *loris) stop() int64 {
	l.cancel()
	l.wg.Wait()
	return l.closed.Load()
}

// SlowlorisRows turns r into table rows: the p99 of normal requests with
// the slowloris connections open against without, target at most 2x.
func SlowlorisRows(r *SlowlorisResult) []Row {
	row := func(what string, loris, base *Result) Row {
		ratio := float64(loris.Latency.P99) / float64(max(base.Latency.P99, 1))
		return Row{Benchmark: fmt.Sprintf("slowloris: %s c=%d, %d slow conns", what, r.Clients, r.Conns),
			Result:   fmt.Sprintf("%s, %s req/s", loris.Latency, fmtRate(loris.OpsPerSec)) + errNote(loris),
			Baseline: fmt.Sprintf("%s, %s req/s", base.Latency, fmtRate(base.OpsPerSec)) + errNote(base),
			Ratio:    fmt.Sprintf("%.2fx p99", ratio), Target: "<= 2x p99", Verdict: verdict(ratio <= 2, loris, base)}
	}
	return []Row{
		row("get-features", &r.GetLoris, &r.GetBase),
		row("ingest", &r.IngestLoris, &r.IngestBase),
		{Benchmark: "slowloris: connections cut by ReadHeaderTimeout (reopened)", Result: strconv.FormatInt(r.Closed, 10),
			Baseline: "-", Ratio: "-", Target: "reported", Verdict: "-"},
	}
}
