package bench

import (
	"fmt"
	"strings"
	"time"
)

// aggShared is what the aggregate benchmarks of one RunSuite share: the
// 7-day history, built by the first that needs it (loading 6M events
// takes seconds) and removed when the suite ends.
type aggShared struct {
	hist *AggHistory
}

func (a *aggShared) remove() {
	if a.hist != nil {
		a.hist.Remove()
		a.hist = nil
	}
}

// aggHistory returns the shared 7-day history of one user.
func (s *suiteRun) aggHistory() (*AggHistory, error) {
	if s.agg.hist == nil {
		fmt.Fprintf(s.cfg.Progress, "bench: loading 7 days of history at 10 events/s (6M events)\n")
		h, err := BuildAggHistory(AggHistoryConfig{TempDir: s.cfg.TempDir})
		if err != nil {
			return nil, err
		}
		s.agg.hist = h
	}
	return s.agg.hist, nil
}

const aggWhat = "9 aggregates, 1 key × 7d at 10 ev/s"

func (s *suiteRun) aggReadInProcess() ([]Row, error) {
	h, err := s.aggHistory()
	if err != nil {
		return nil, err
	}
	res, err := RunAggReadInProcess(AggReadConfig{History: h, Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	return []Row{{Benchmark: "engine.GetFeatures, " + aggWhat,
		Result:   fmt.Sprintf("p99 %s (p50 %s, %s calls/s)", fmtDur(res.Latency.P99), fmtDur(res.Latency.P50), fmtRate(res.OpsPerSec)) + errNote(&res),
		Baseline: "-", Ratio: "-", Target: "p99 <= 20µs", Verdict: verdict(res.Latency.P99 <= 20*time.Microsecond, &res)}}, nil
}

// aggHTTPPair runs run against featurelog serving the shared history,
// then against the trivial server sized from featurelog's answers.
func (s *suiteRun) aggHTTPPair(bench string, run func(AggReadHTTPConfig) (Result, error)) (fl, tr Result, err error) {
	h, err := s.aggHistory()
	if err != nil {
		return fl, tr, err
	}
	if fl, err = run(AggReadHTTPConfig{Server: s.server(bench, false, 0), History: h, Loop: s.loop()}); err != nil {
		return fl, tr, err
	}
	tr, err = run(AggReadHTTPConfig{Server: s.server(bench, true, fl.ResponseBytes), History: h, Loop: s.loop()})
	return fl, tr, err
}

func (s *suiteRun) aggReadHTTP() ([]Row, error) {
	fl, tr, err := s.aggHTTPPair("agg-read-http", RunAggReadHTTP)
	if err != nil {
		return nil, err
	}
	return []Row{ratioRow("agg get-features HTTP, "+aggWhat+", 16 clients (vs trivial handler)", &fl, &tr, "req/s", "req/s", 0.70)}, nil
}

func (s *suiteRun) aggReadHTTPRate() ([]Row, error) {
	fl, tr, err := s.aggHTTPPair("agg-read-http-rate", RunAggReadHTTPRate)
	if err != nil {
		return nil, err
	}
	return p99RateRows("agg get-features HTTP", &fl, &tr), nil
}

func (s *suiteRun) aggBatchHTTPRate() ([]Row, error) {
	res, err := RunAggBatchHTTPRate(AggBatchHTTPRateConfig{Server: s.server("agg-batch-http-rate", false, 0), Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	return []Row{{Benchmark: "agg get-features-batch HTTP, 100 keys (10 ev/s at window edges) @ 100/s p99",
		Result:   fmt.Sprintf("%s (p50 %s, send lag p99 %s)", fmtDur(res.Latency.P99), fmtDur(res.Latency.P50), fmtDur(res.SendLag.P99)) + errNote(&res),
		Baseline: "-", Ratio: "-", Target: "p99 <= 5ms", Verdict: verdict(res.Latency.P99 <= 5*time.Millisecond, &res)}}, nil
}

func (s *suiteRun) aggCostGrowth() ([]Row, error) {
	res, err := RunAggCostGrowth(AggCostGrowthConfig{TempDir: s.cfg.TempDir, Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	row := func(what string, r, base *Result) Row {
		ratio := float64(r.Latency.P99) / float64(max(base.Latency.P99, 1))
		return Row{Benchmark: what, Result: fmt.Sprintf("p99 %s (p50 %s)", fmtDur(r.Latency.P99), fmtDur(r.Latency.P50)) + errNote(r),
			Baseline: fmt.Sprintf("p99 %s (p50 %s)", fmtDur(base.Latency.P99), fmtDur(base.Latency.P50)) + errNote(base),
			Ratio:    fmt.Sprintf("%.2fx", ratio), Target: "< 2x", Verdict: verdict(ratio < 2, r, base)}
	}
	w := res.Windows
	return []Row{
		row("agg in-process read p99, 1M vs 10 events per key (9 aggregates, over 7d)", &res.Large, &res.Small),
		row("agg in-process read p99, window 30d vs 1h (1M events over 365d)", &w[1], &w[0]),
		row("agg in-process read p99, window lifetime vs 1h (1M events over 365d)", &w[2], &w[0]),
	}, nil
}

func (s *suiteRun) aggIngest() ([]Row, error) {
	res, err := RunAggIngest(IngestInProcessConfig{TempDir: s.cfg.TempDir, Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	v, p := &res.Views, &res.Plain
	ratio := v.RecordsPerSec / p.RecordsPerSec
	figure := func(r *Result) string {
		return fmt.Sprintf("%s records/s (call p99 %s)", fmtRate(r.RecordsPerSec), fmtDur(r.Latency.P99)) + errNote(r)
	}
	return []Row{{Benchmark: "engine.Ingest, 1000 records/call, 4 goroutines, 3 aggregate views (vs no view)",
		Result: figure(v), Baseline: figure(p), Ratio: fmt.Sprintf("%.2fx", ratio), Target: ">= 0.70x", Verdict: verdict(ratio >= 0.70, v, p)}}, nil
}

func (s *suiteRun) tileBytes() ([]Row, error) {
	res, err := RunTileBytes(TileBytesConfig{})
	if err != nil {
		return nil, err
	}
	return []Row{
		{Benchmark: fmt.Sprintf("tile state bytes, count+sum+min+max (Float64) as a tile keeps them (%s), heap per tile", strings.Join(res.Planned, "+")),
			Result: fmt.Sprintf("%.0f B", res.States), Baseline: fmt.Sprintf("%.0f B unfused, %d B MemSize", res.Separate, res.MemSize),
			Ratio: "-", Target: "<= 64 B", Verdict: verdictBool(res.States <= 64)},
		{Benchmark: "tile bytes with the tile's []State, heap per tile", Result: fmt.Sprintf("%.0f B", res.Tile),
			Baseline: "-", Ratio: "-", Target: "reported", Verdict: "-"},
	}, nil
}

func verdictBool(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}
