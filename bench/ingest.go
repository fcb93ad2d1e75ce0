package bench

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// IngestInProcessConfig configures RunIngestInProcess and
// RunIngestJSONInProcess.
type IngestInProcessConfig struct {
	// TempDir is where the data directory is created (and removed
	// afterwards). Default os.TempDir().
	TempDir string
	// Concurrency is the number of goroutines calling the engine; more
	// than one lets group commit share fsyncs. Default 4.
	Concurrency int
	// BatchSize is the number of records per call. Default 1000.
	BatchSize int
	// Batches is the number of distinct batches (distinct users, the
	// current time), built before the run and ingested round-robin.
	// Default 64.
	Batches int
	// NoSync skips fsyncs. Default false: ingest is durable, as over HTTP.
	NoSync bool
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *IngestInProcessConfig) EnsureDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.Batches == 0 {
		c.Batches = 64
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *IngestInProcessConfig) Validate() error {
	if c.Concurrency <= 0 || c.BatchSize <= 0 || c.Batches <= 0 {
		return errors.New("bench: Concurrency, BatchSize and Batches must be positive")
	}
	return c.Loop.Validate()
}

// RunIngestInProcess measures engine.Ingest with BatchSize-record batches
// built before the run (so map building is not measured).
func RunIngestInProcess(cfg IngestInProcessConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	now := time.Now()
	reqs := make([]*engine.IngestRequest, cfg.Batches)
	for i := range reqs {
		reqs[i] = ingestRequest("b", i*cfg.BatchSize, cfg.BatchSize, now)
	}
	name := fmt.Sprintf("ingest-inprocess c=%d b=%d", cfg.Concurrency, cfg.BatchSize)
	return runInProcess(name, cfg, func(db *engine.DB, i int) error {
		_, err := db.Ingest(reqs[i%len(reqs)])
		return err
	})
}

// RunIngestJSONInProcess measures engine.IngestJSON with prebuilt bodies:
// the HTTP ingest path minus HTTP.
func RunIngestJSONInProcess(cfg IngestInProcessConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	bodies := batchBodies(cfg.Batches, cfg.BatchSize, time.Now())
	name := fmt.Sprintf("ingestjson-inprocess c=%d b=%d", cfg.Concurrency, cfg.BatchSize)
	return runInProcess(name, cfg, func(db *engine.DB, i int) error {
		_, err := db.IngestJSON(bodies[i%len(bodies)], nil)
		return err
	})
}

// runInProcess opens a fresh DB with the ads repo and runs ingest (called
// with a round-robin batch number) in a closed loop.
func runInProcess(name string, cfg IngestInProcessConfig, ingest func(db *engine.DB, i int) error) (Result, error) {
	dir, err := os.MkdirTemp(cfg.TempDir, "featurelog-bench-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	db, err := openAds(dir, cfg.NoSync, nil)
	if err != nil {
		return Result{}, err
	}
	var next atomic.Int64
	res := closedLoop(name, cfg.Concurrency, cfg.Loop, func(int) op {
		return func() (int, error) {
			if err := ingest(db, int(next.Add(1))); err != nil {
				return 0, err
			}
			return cfg.BatchSize, nil
		}
	})
	return res, db.Close()
}
