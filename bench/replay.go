package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// ReplayConfig configures RunReplay.
type ReplayConfig struct {
	// TempDir is where the data directory is created (and removed
	// afterwards). Default os.TempDir().
	TempDir string
	// Records is the number of records in the log. Default 2,000,000.
	Records int
	// BatchSize is the number of records per ingest request, so per log
	// entry. Default 1000.
	BatchSize int
	// Keys is the number of distinct users the records cycle through.
	// Default 100,000.
	Keys int
	// Opens is how many times the DB is opened; the median is reported.
	// Default 3.
	Opens int
}

// EnsureDefaults fills in unset fields.
func (c *ReplayConfig) EnsureDefaults() {
	if c.Records == 0 {
		c.Records = 2_000_000
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.Keys == 0 {
		c.Keys = 100_000
	}
	if c.Opens == 0 {
		c.Opens = 3
	}
}

// Validate reports a configuration that cannot run.
func (c *ReplayConfig) Validate() error {
	if c.Records <= 0 || c.BatchSize <= 0 || c.Keys <= 0 || c.Opens <= 0 {
		return errors.New("bench: Records, BatchSize, Keys and Opens must be positive")
	}
	return nil
}

// RunReplay measures replay on open: it ingests Records records (without
// fsync; only the reading is measured), closes the DB and times
// engine.Open, which replays the whole log into the online state. The log
// is in the page cache, as on a restart right after a clean stop.
func RunReplay(cfg ReplayConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "featurelog-bench-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	if err := fillLog(dir, cfg); err != nil {
		return Result{}, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	times := make([]int64, 0, cfg.Opens)
	for range cfg.Opens {
		t0 := time.Now()
		db, err := engine.Open(engine.Options{Dir: dir, Logger: quiet, Holder: "featurelog bench"})
		if err != nil {
			return Result{}, err
		}
		times = append(times, int64(time.Since(t0)))
		if err := db.Close(); err != nil {
			return Result{}, err
		}
	}
	slices.Sort(times)
	res := Result{Name: fmt.Sprintf("replay records=%d", cfg.Records), Ops: 1, Records: int64(cfg.Records),
		Elapsed: time.Duration(times[len(times)/2]), Latency: summarize(times)}
	res.finish()
	return res, nil
}

// fillLog ingests cfg.Records records into a new DB in dir from a few
// goroutines (so entries are committed in groups) and closes it.
func fillLog(dir string, cfg ReplayConfig) error {
	db, err := openAds(dir, true, nil)
	if err != nil {
		return err
	}
	const workers = 4
	ts := time.Now().Add(-time.Second)
	batches := (cfg.Records + cfg.BatchSize - 1) / cfg.BatchSize
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := w; b < batches && errs[w] == nil; b += workers {
				first := b * cfg.BatchSize
				n := min(cfg.BatchSize, cfg.Records-first)
				_, errs[w] = db.Ingest(ingestRequest(userPrefix, first%cfg.Keys, n, ts))
			}
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, db.Close())...)
}
