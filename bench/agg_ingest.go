package bench

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// AggIngestResult holds RunAggIngest's two runs.
type AggIngestResult struct {
	// Plain ingests into a source whose one view applies nothing (the
	// baseline: see aggPlainSource); Views into one with three
	// aggregate views (ingest_amounts: count,
	// sum, mean over 1h, 24h, 7d; ingest_extremes: min, max over 1h,
	// 24h; ingest_totals: count, sum over 30d).
	Plain, Views Result
}

// RunAggIngest measures engine.Ingest of the same records into a source
// with (in effect) no view and into one with three aggregate views, each
// in a fresh data directory, one after the other.
func RunAggIngest(cfg IngestInProcessConfig) (AggIngestResult, error) {
	var out AggIngestResult
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return out, err
	}
	var err error
	if out.Plain, err = runAggIngest(cfg, aggPlainSource); err != nil {
		return out, err
	}
	out.Views, err = runAggIngest(cfg, aggViewsSource)
	return out, err
}

func runAggIngest(cfg IngestInProcessConfig, source string) (Result, error) {
	now := time.Now()
	reqs := make([]*engine.IngestRequest, cfg.Batches)
	for i := range reqs {
		recs := make([]map[string]any, cfg.BatchSize)
		for j := range recs {
			recs[j] = map[string]any{"user_id": userPrefix + strconv.Itoa(i*cfg.BatchSize+j),
				"timestamp": now.Add(-time.Duration(j) * time.Second / time.Duration(cfg.BatchSize)), "amount": float64(1 + j%100)}
		}
		reqs[i] = &engine.IngestRequest{Workspace: aggWorkspace, Records: map[string][]map[string]any{source: recs}}
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "featurelog-bench-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	db, err := openAgg(dir, cfg.NoSync, nil)
	if err != nil {
		return Result{}, err
	}
	var next atomic.Int64
	name := fmt.Sprintf("agg-ingest %s c=%d b=%d", source, cfg.Concurrency, cfg.BatchSize)
	res := closedLoop(name, cfg.Concurrency, cfg.Loop, func(int) op {
		return func() (int, error) {
			if _, err := db.Ingest(reqs[int(next.Add(1))%len(reqs)]); err != nil {
				return 0, err
			}
			return cfg.BatchSize, nil
		}
	})
	return res, db.Close()
}
