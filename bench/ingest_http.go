package bench

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// IngestHTTPConfig configures RunIngestHTTP.
type IngestHTTPConfig struct {
	Server Server
	// Clients is the number of concurrent clients, each with one request
	// in flight. Default 16.
	Clients int
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *IngestHTTPConfig) EnsureDefaults() {
	if c.Clients == 0 {
		c.Clients = 16
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *IngestHTTPConfig) Validate() error {
	if c.Clients <= 0 {
		return errors.New("bench: Clients must be positive")
	}
	if err := c.Server.Validate(); err != nil {
		return err
	}
	return c.Loop.Validate()
}

// RunIngestHTTP measures durable single-record ingest over HTTP in a
// closed loop: Clients clients each POST /ingest one record (a new user
// and the current time in every request) and wait for the answer before
// sending the next. Against featurelog a 200 means the record is fsynced.
func RunIngestHTTP(cfg IngestHTTPConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	p, err := cfg.Server.start()
	if err != nil {
		return Result{}, err
	}
	c := newClient(cfg.Clients)
	var size atomic.Int64
	name := fmt.Sprintf("ingest-http c=%d (%s)", cfg.Clients, cfg.Server.label())
	res := closedLoop(name, cfg.Clients, cfg.Loop, newIngestOp(c, p.url(ingestPath), "", &size))
	res.ResponseBytes = int(size.Load())
	c.close()
	return res, p.stop()
}

// newIngestOp returns ops that POST one new record each: worker w sends
// users prefix+"w<w>-<n>" for n = 0, 1, ...
func newIngestOp(c *client, url, prefix string, size *atomic.Int64) func(int) op {
	return func(w int) op {
		pre := prefix + "w" + strconv.Itoa(w) + "-"
		var body []byte
		n := 0
		return func() (int, error) {
			body = appendIngestBody(body[:0], pre, n, 1, time.Now())
			n++
			resp, err := c.post(w, url, body)
			if err != nil {
				return 0, err
			}
			size.Store(int64(len(resp)))
			return 1, nil
		}
	}
}

// IngestHTTPRateConfig configures RunIngestHTTPRate.
type IngestHTTPRateConfig struct {
	Server Server
	// Rate is the request rate per second. Required.
	Rate float64
	// Workers bounds the requests in flight (one connection each).
	// Default 128.
	Workers int
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *IngestHTTPRateConfig) EnsureDefaults() {
	if c.Workers == 0 {
		c.Workers = 128
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *IngestHTTPRateConfig) Validate() error {
	if c.Rate <= 0 {
		return errors.New("bench: Rate must be positive")
	}
	if c.Workers <= 0 {
		return errors.New("bench: Workers must be positive")
	}
	if err := c.Server.Validate(); err != nil {
		return err
	}
	return c.Loop.Validate()
}

// RunIngestHTTPRate measures the acknowledgement latency of single-record
// ingest at a fixed request rate (open loop): requests leave on a fixed
// timetable whatever the server does, and each latency runs from the
// request's scheduled send time to its response.
func RunIngestHTTPRate(cfg IngestHTTPRateConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	p, err := cfg.Server.start()
	if err != nil {
		return Result{}, err
	}
	c := newClient(cfg.Workers)
	var size atomic.Int64
	name := fmt.Sprintf("ingest-http @%s/s (%s)", fmtRate(cfg.Rate), cfg.Server.label())
	res, err := openLoop(name, cfg.Rate, cfg.Workers, cfg.Loop, newIngestOp(c, p.url(ingestPath), "", &size))
	res.ResponseBytes = int(size.Load())
	c.close()
	return res, errors.Join(err, p.stop())
}

// BatchIngestHTTPConfig configures RunBatchIngestHTTP.
type BatchIngestHTTPConfig struct {
	Server Server
	// Clients is the number of concurrent clients. Default 4.
	Clients int
	// BatchSize is the number of records per request. Default 1000.
	BatchSize int
	// Bodies is the number of distinct request bodies, built before the
	// run (distinct users, the current time) and sent round-robin, so the
	// client spends its CPU on HTTP, not on JSON. Default 16.
	Bodies int
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *BatchIngestHTTPConfig) EnsureDefaults() {
	if c.Clients == 0 {
		c.Clients = 4
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.Bodies == 0 {
		c.Bodies = 16
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *BatchIngestHTTPConfig) Validate() error {
	if c.Clients <= 0 || c.BatchSize <= 0 || c.Bodies <= 0 {
		return errors.New("bench: Clients, BatchSize and Bodies must be positive")
	}
	if err := c.Server.Validate(); err != nil {
		return err
	}
	return c.Loop.Validate()
}

// RunBatchIngestHTTP measures durable batched ingest over HTTP: Clients
// clients in a closed loop, BatchSize records per request.
func RunBatchIngestHTTP(cfg BatchIngestHTTPConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	bodies := batchBodies(cfg.Bodies, cfg.BatchSize, time.Now())
	p, err := cfg.Server.start()
	if err != nil {
		return Result{}, err
	}
	c := newClient(cfg.Clients)
	var next atomic.Int64
	url := p.url(ingestPath)
	name := fmt.Sprintf("batch-ingest-http c=%d b=%d (%s)", cfg.Clients, cfg.BatchSize, cfg.Server.label())
	res := closedLoop(name, cfg.Clients, cfg.Loop, func(w int) op {
		return func() (int, error) {
			body := bodies[int(next.Add(1))%len(bodies)]
			if _, err := c.post(w, url, body); err != nil {
				return 0, err
			}
			return cfg.BatchSize, nil
		}
	})
	c.close()
	return res, p.stop()
}

// batchBodies builds n ingest bodies of size records each, for distinct
// users "b<i>", all at time ts.
func batchBodies(n, size int, ts time.Time) [][]byte {
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = appendIngestBody(nil, "b", i*size, size, ts)
	}
	return bodies
}
