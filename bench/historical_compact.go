package bench

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// CompactionReadsConfig configures RunCompactionReads.
type CompactionReadsConfig struct {
	// TempDir is where the data directory is created (and removed
	// afterwards). Default os.TempDir().
	TempDir string
	// Events and Keys are the history loaded before the run (the
	// historical workload: 3 views, events uniform over 30 days).
	// Default 2,000,000 events of 125,000 users.
	Events, Keys int
	// Segments is how many segments each view holds when the run starts:
	// the history is flushed that many times while loading. Default 16.
	Segments int
	// Rate is the read rate per second (open loop) and Readers the
	// goroutines reading. Rate 0 (the default) is half the rate the
	// readers reach in a closed loop, measured first, but at most
	// maxAutoReadRate: reads that decode segment blocks are far slower
	// than reads of cached states, and a rate the store cannot sustain
	// measures only the queue. Readers default 2.
	Rate    float64
	Readers int
	// IngestRate is the records per second ingested (1000-record batches,
	// NoSync) during both windows, the baseline's and the compaction's.
	// Default 20,000; negative ingests nothing.
	IngestRate float64
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *CompactionReadsConfig) EnsureDefaults() {
	if c.Events == 0 {
		c.Events = 2_000_000
	}
	if c.Keys == 0 {
		c.Keys = 125_000
	}
	if c.Segments == 0 {
		c.Segments = 16
	}
	if c.Readers == 0 {
		c.Readers = 2
	}
	if c.IngestRate == 0 {
		c.IngestRate = 20_000
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *CompactionReadsConfig) Validate() error {
	if c.Events <= 0 || c.Keys <= 0 || c.Segments <= 0 || c.Rate < 0 || c.Readers <= 0 {
		return errors.New("bench: CompactionReadsConfig: Events, Keys, Segments and Readers must be positive, Rate not negative")
	}
	return c.Loop.Validate()
}

// CompactionReadsResult is what RunCompactionReads measured.
type CompactionReadsResult struct {
	// ClosedLoop is the readers' closed loop on the idle store, after a
	// closed loop as long that warms the caches; Rate is the open loops'
	// rate.
	ClosedLoop Result
	Rate       float64
	// Idle is the read latency with nothing else running; Baseline with
	// the ingest running; During with the ingest and back-to-back
	// Flush+CompactAll running.
	Idle, Baseline, During Result
	// FirstCompaction is the first CompactAll of the run, which merges
	// the Segments segments of the loaded history; Compactions counts the
	// Flush+CompactAll rounds in the window (each rewrites every view's
	// whole history), CompactionTime their total time.
	FirstCompaction time.Duration
	Compactions     int
	CompactionTime  time.Duration
	// Load is the time loading the history took.
	Load time.Duration
}

// RunCompactionReads measures engine.GetFeatures latency (service
// spine_service: 4 continuous aggregates and an attribute, random users,
// as of now) at a fixed rate while compaction runs, against the same
// reads while only the ingest runs. Two closed loops of the readers come
// first: one to warm the caches, one to pick the rate unless Rate is set. The history is loaded with the
// background maintainer off and flushed Segments times, so the first
// CompactAll has Segments segments per view to merge; the compaction
// window repeats Flush+CompactAll until it ends.
func RunCompactionReads(cfg CompactionReadsConfig) (CompactionReadsResult, error) {
	cfg.EnsureDefaults()
	var res CompactionReadsResult
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "featurelog-bench-compact-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	db, err := openHist(dir, engine.Options{NoSync: true, DisableAutoFlush: true})
	if err != nil {
		return res, err
	}
	defer db.Close()
	t0 := time.Now()
	if err := loadSegmented(db, &cfg); err != nil {
		return res, err
	}
	res.Load = time.Since(t0)
	reqs := make([]engine.GetFeaturesRequest, cfg.Keys)
	for i := range reqs {
		reqs[i] = engine.GetFeaturesRequest{Workspace: histWorkspace, Service: histService,
			JoinKeys: map[string]any{"user_id": histKey(i)}}
	}
	newOp := func(w int) op {
		r := newRNG(w + 11)
		return func() (int, error) {
			_, err := db.GetFeatures(&reqs[r.intn(len(reqs))])
			return 1, err
		}
	}
	closedLoop("get-features warm-up", cfg.Readers, cfg.Loop, newOp) // fills the state cache
	res.ClosedLoop = closedLoop("get-features closed loop", cfg.Readers, cfg.Loop, newOp)
	if res.ClosedLoop.Errors > 0 || res.ClosedLoop.Ops == 0 {
		return res, fmt.Errorf("bench: reads of the loaded store failed: %d errors, first: %s", res.ClosedLoop.Errors, res.ClosedLoop.FirstError)
	}
	res.Rate = cfg.Rate
	if res.Rate == 0 {
		res.Rate = min(res.ClosedLoop.OpsPerSec/2, maxAutoReadRate)
	}
	if res.Idle, err = openLoop("get-features idle", res.Rate, cfg.Readers, cfg.Loop, newOp); err != nil {
		return res, err
	}
	ing := startTrickle(db, &cfg)
	res.Baseline, err = openLoop("get-features, ingest", res.Rate, cfg.Readers, cfg.Loop, newOp)
	if err != nil {
		return res, errors.Join(err, ing.stop())
	}
	cmp := startCompactions(db)
	res.During, err = openLoop("get-features, ingest + compaction", res.Rate, cfg.Readers, cfg.Loop, newOp)
	cerr := cmp.stop(&res)
	return res, errors.Join(err, cerr, ing.stop())
}

// loadSegmented ingests the history, flushing after every
// Events/Segments events.
func loadSegmented(db *engine.DB, cfg *CompactionReadsConfig) error {
	per := (cfg.Events + cfg.Segments - 1) / cfg.Segments
	for done, seg := 0, 0; done < cfg.Events; seg++ {
		n := min(per, cfg.Events-done)
		hc := HistoricalDataConfig{Events: n, Keys: cfg.Keys, Workers: 2}
		hc.EnsureDefaults()
		// Each segment's batches are drawn from seeds of their own.
		if err := ingestHistoricalSeeded(db, histEnd.Add(-hc.Span), &hc, seg*1_000_000); err != nil {
			return err
		}
		if err := db.Flush(); err != nil {
			return err
		}
		done += n
	}
	return nil
}

// maxAutoReadRate caps the automatic read rate: beyond it the open
// loop's dispatcher, not the store, would set the latency.
const maxAutoReadRate = 10_000

// trickle ingests at a fixed rate in the background.
type trickle struct {
	done chan struct{}
	wg   sync.WaitGroup
	err  error
}

// startTrickle ingests cfg.IngestRate records/s of recent events (within
// the last hour) in 1000-record batches until stop.
func startTrickle(db *engine.DB, cfg *CompactionReadsConfig) *trickle {
	t := &trickle{done: make(chan struct{})}
	if cfg.IngestRate < 0 {
		return t
	}
	const batch = 1000
	interval := time.Duration(float64(time.Second) * batch / cfg.IngestRate)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		r := newRNG(99)
		recs := make([]map[string]any, batch)
		for i := range recs {
			recs[i] = make(map[string]any, 3)
		}
		for {
			select {
			case <-t.done:
				return
			case <-tick.C:
			}
			for _, rec := range recs {
				rec["user_id"] = histKey(r.intn(cfg.Keys))
				rec["timestamp"] = histEnd.Add(-time.Duration(1+r.intn(3_600_000)) * time.Millisecond)
				rec["amount"] = float64(1 + r.intn(100))
			}
			req := &engine.IngestRequest{Workspace: histWorkspace, Records: map[string][]map[string]any{histSource: recs}}
			if _, err := db.Ingest(req); err != nil {
				t.err = fmt.Errorf("bench: ingest during the read benchmark: %w", err)
				return
			}
		}
	}()
	return t
}

func (t *trickle) stop() error {
	close(t.done)
	t.wg.Wait()
	return t.err
}

// compactor runs Flush+CompactAll back to back in the background.
type compactor struct {
	done   chan struct{}
	wg     sync.WaitGroup
	err    error
	rounds []time.Duration
}

func startCompactions(db *engine.DB) *compactor {
	c := &compactor{done: make(chan struct{})}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			select {
			case <-c.done:
				return
			default:
			}
			t0 := time.Now()
			err := db.Flush()
			if err == nil {
				err = db.CompactAll()
			}
			if err != nil {
				c.err = fmt.Errorf("bench: compaction during the read benchmark: %w", err)
				return
			}
			c.rounds = append(c.rounds, time.Since(t0))
		}
	}()
	return c
}

// stop waits for the round in progress to end and records the rounds.
func (c *compactor) stop(res *CompactionReadsResult) error {
	close(c.done)
	c.wg.Wait()
	res.Compactions = len(c.rounds)
	for i, d := range c.rounds {
		if i == 0 {
			res.FirstCompaction = d
		}
		res.CompactionTime += d
	}
	return c.err
}
