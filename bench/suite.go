package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// SuiteConfig configures RunSuite, the set of figures the performance
// issue names (SPEC §9), each beside its baseline.
type SuiteConfig struct {
	// Duration is the measured window of each loop. Default 5s; the whole
	// suite then takes about a minute and a half.
	Duration time.Duration
	// Only restricts the run to the named benchmarks (see Names); the
	// benchmarks they need a figure from run too. Empty runs all.
	Only []string
	// Command starts the server processes of the HTTP benchmarks (see
	// Server.Command). Required unless only in-process benchmarks run.
	Command []string
	// TempDir is where data directories are created. Default os.TempDir().
	TempDir string
	// Progress receives a line as each benchmark starts. Default none.
	Progress io.Writer
	// ServerProfileDir, if set, makes every server process write a CPU
	// profile there, named after the benchmark and server
	// (ingest-http-featurelog.prof, ...).
	ServerProfileDir string
	// Cluster sizes the cluster benchmarks.
	Cluster ClusterSuiteConfig
}

// EnsureDefaults fills in unset fields.
func (c *SuiteConfig) EnsureDefaults() {
	if c.Duration == 0 {
		c.Duration = 5 * time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Validate reports a configuration that cannot run.
func (c *SuiteConfig) Validate() error {
	if c.Duration <= 0 {
		return errors.New("bench: --duration must be positive")
	}
	for _, n := range c.Only {
		if !slices.ContainsFunc(suite, func(b suiteBench) bool { return b.name == n }) {
			return fmt.Errorf("bench: unknown benchmark %q; the benchmarks are: %s", n, strings.Join(Names(), ", "))
		}
	}
	return nil
}

// Row is one line of the suite's table.
type Row struct {
	Benchmark string // what was measured
	Result    string // the figure
	Baseline  string // the baseline's figure, measured in the same run
	Ratio     string // result against baseline (or the absolute gap)
	Target    string // the target
	Verdict   string // "pass", "FAIL", or "-" when there is no target
}

// suiteBench is one selectable benchmark of the suite.
type suiteBench struct {
	name  string
	needs []string // benchmarks whose results it uses
	run   func(s *suiteRun) ([]Row, error)
}

// suite lists the benchmarks in run order; a benchmark's needs come
// before it.
var suite = []suiteBench{
	{name: "tidwall", run: (*suiteRun).tidwall},
	{name: "ingest-http", needs: []string{"tidwall"}, run: (*suiteRun).ingestHTTP},
	{name: "ingest-http-rate", needs: []string{"ingest-http"}, run: (*suiteRun).ingestHTTPRate},
	{name: "batch-ingest-http", run: (*suiteRun).batchIngestHTTP},
	{name: "ingest-inprocess", run: (*suiteRun).ingestInProcess},
	{name: "ingestjson-inprocess", run: (*suiteRun).ingestJSONInProcess},
	{name: "get-features-inprocess", run: (*suiteRun).getFeaturesInProcess},
	{name: "get-features-http", run: (*suiteRun).getFeaturesHTTP},
	{name: "get-features-http-rate", run: (*suiteRun).getFeaturesHTTPRate},
	{name: "replay", run: (*suiteRun).replay},
	{name: "agg-read-inprocess", run: (*suiteRun).aggReadInProcess},
	{name: "agg-read-http", run: (*suiteRun).aggReadHTTP},
	{name: "agg-read-http-rate", run: (*suiteRun).aggReadHTTPRate},
	{name: "agg-batch-http-rate", run: (*suiteRun).aggBatchHTTPRate},
	{name: "agg-cost-growth", run: (*suiteRun).aggCostGrowth},
	{name: "agg-ingest", run: (*suiteRun).aggIngest},
	{name: "tile-bytes", run: (*suiteRun).tileBytes},
	{name: "cluster-ingest", run: (*suiteRun).clusterIngest},
	{name: "cluster-forward", run: (*suiteRun).clusterForward},
	{name: "cluster-rebalance", run: (*suiteRun).clusterRebalance},
	{name: "cluster-failover", run: (*suiteRun).clusterFailover},
}

// Names returns the names of the suite's benchmarks, in run order.
func Names() []string {
	out := make([]string, len(suite))
	for i, b := range suite {
		out[i] = b.name
	}
	return out
}

// suiteRun is the state of one RunSuite: the config and the results that
// later benchmarks compare against.
type suiteRun struct {
	cfg            SuiteConfig
	tidwallRes     *Result
	ingestHTTPRes  *Result   // featurelog, closed loop
	ingestRespSize int       // featurelog's ingest response, which the trivial server mimics
	getRespSize    int       // featurelog's get-features response, likewise
	agg            aggShared // the aggregate benchmarks' shared history, removed when the suite ends
}

// RunSuite runs the selected benchmarks and returns the table rows. It
// stops at the first benchmark that fails to run (a figure that misses
// its target is a FAIL row, not an error), returning the rows so far.
func RunSuite(cfg SuiteConfig) ([]Row, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ServerProfileDir != "" {
		if err := os.MkdirAll(cfg.ServerProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	s := &suiteRun{cfg: cfg}
	defer s.agg.remove()
	var rows []Row
	for _, b := range suite {
		if !s.selected(b.name) {
			continue
		}
		fmt.Fprintf(cfg.Progress, "bench: running %s\n", b.name)
		r, err := b.run(s)
		rows = append(rows, r...)
		if err != nil {
			return rows, fmt.Errorf("bench: %s: %w", b.name, err)
		}
	}
	return rows, nil
}

// selected reports whether name runs: chosen, or needed by a chosen one.
func (s *suiteRun) selected(name string) bool {
	if len(s.cfg.Only) == 0 || slices.Contains(s.cfg.Only, name) {
		return true
	}
	for _, b := range suite {
		if slices.Contains(b.needs, name) && s.selected(b.name) {
			return true
		}
	}
	return false
}

func (s *suiteRun) loop() Loop {
	l := Loop{Duration: s.cfg.Duration}
	l.EnsureDefaults()
	return l
}

// server describes a server process for the benchmark named bench.
func (s *suiteRun) server(bench string, trivial bool, size int) Server {
	srv := Server{Command: s.cfg.Command, Trivial: trivial, ResponseSize: size, TempDir: s.cfg.TempDir}
	if s.cfg.ServerProfileDir != "" {
		srv.CPUProfile = filepath.Join(s.cfg.ServerProfileDir, bench+"-"+srv.label()+".prof")
	}
	return srv
}

func (s *suiteRun) tidwall() ([]Row, error) {
	res, err := RunTidwallBaseline(TidwallConfig{TempDir: s.cfg.TempDir, Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	s.tidwallRes = &res
	return []Row{{Benchmark: "tidwall/wal Write loop, fsync each (baseline)", Result: opsFigure(&res, "writes/s"),
		Baseline: "-", Ratio: "-", Target: "-", Verdict: verdictOnly(&res)}}, nil
}

func (s *suiteRun) ingestHTTP() ([]Row, error) {
	fl, err := RunIngestHTTP(IngestHTTPConfig{Server: s.server("ingest-http", false, 0), Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	s.ingestHTTPRes, s.ingestRespSize = &fl, fl.ResponseBytes
	tr, err := RunIngestHTTP(IngestHTTPConfig{Server: s.server("ingest-http", true, fl.ResponseBytes), Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	return []Row{
		ratioRow("ingest HTTP, 1 record, 16 clients (vs tidwall loop)", &fl, s.tidwallRes, "req/s", "writes/s", 3),
		ratioRow("ingest HTTP, 1 record, 16 clients (vs trivial handler)", &fl, &tr, "req/s", "req/s", 0.70),
	}, nil
}

func (s *suiteRun) ingestHTTPRate() ([]Row, error) {
	rate := s.ingestHTTPRes.OpsPerSec / 2
	if rate <= 0 {
		return nil, errors.New("the closed-loop ingest run measured no throughput to take half of")
	}
	fl, err := RunIngestHTTPRate(IngestHTTPRateConfig{Server: s.server("ingest-http-rate", false, 0), Rate: rate, Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	tr, err := RunIngestHTTPRate(IngestHTTPRateConfig{Server: s.server("ingest-http-rate", true, s.ingestRespSize), Rate: rate, Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("ingest HTTP ack latency @ %s req/s (half of closed loop)", fmtRate(rate))
	gap := fl.Latency.P99 - tr.Latency.P99
	return []Row{
		{Benchmark: what + " p50", Result: fmtDur(fl.Latency.P50) + errNote(&fl), Baseline: fmtDur(tr.Latency.P50) + errNote(&tr),
			Ratio: signedDur(fl.Latency.P50 - tr.Latency.P50), Target: "reported", Verdict: verdictOnly(&fl, &tr)},
		{Benchmark: what + " p99", Result: fmtDur(fl.Latency.P99), Baseline: fmtDur(tr.Latency.P99),
			Ratio: signedDur(gap), Target: "gap <= 2ms", Verdict: verdict(gap <= 2*time.Millisecond, &fl, &tr)},
		{Benchmark: what + " send lag p99 (client)", Result: fmtDur(fl.SendLag.P99), Baseline: fmtDur(tr.SendLag.P99),
			Ratio: "-", Target: "-", Verdict: "-"},
	}, nil
}

func (s *suiteRun) batchIngestHTTP() ([]Row, error) {
	res, err := RunBatchIngestHTTP(BatchIngestHTTPConfig{Server: s.server("batch-ingest-http", false, 0), Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	return []Row{absRow("ingest HTTP, 1000 records/request, 4 clients", &res, 500_000)}, nil
}

func (s *suiteRun) ingestInProcess() ([]Row, error) {
	res, err := RunIngestInProcess(IngestInProcessConfig{TempDir: s.cfg.TempDir, Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	return []Row{absRow("engine.Ingest, 1000 records/call, 4 goroutines", &res, 1_000_000)}, nil
}

func (s *suiteRun) ingestJSONInProcess() ([]Row, error) {
	res, err := RunIngestJSONInProcess(IngestInProcessConfig{TempDir: s.cfg.TempDir, Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	row := absRow("engine.IngestJSON, 1000 records/call, 4 goroutines", &res, 0)
	row.Target, row.Verdict = "- (HTTP path minus HTTP)", verdictOnly(&res)
	return []Row{row}, nil
}

func (s *suiteRun) getFeaturesInProcess() ([]Row, error) {
	res, err := RunGetFeaturesInProcess(GetFeaturesConfig{TempDir: s.cfg.TempDir, Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	return []Row{{Benchmark: "engine.GetFeatures, attribute view, 100k keys",
		Result:   fmt.Sprintf("p99 %s (p50 %s, %s calls/s)", fmtDur(res.Latency.P99), fmtDur(res.Latency.P50), fmtRate(res.OpsPerSec)) + errNote(&res),
		Baseline: "-", Ratio: "-", Target: "p99 <= 10µs", Verdict: verdict(res.Latency.P99 <= 10*time.Microsecond, &res)}}, nil
}

func (s *suiteRun) getFeaturesHTTP() ([]Row, error) {
	fl, err := RunGetFeaturesHTTP(GetFeaturesHTTPConfig{Server: s.server("get-features-http", false, 0), Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	tr, err := RunGetFeaturesHTTP(GetFeaturesHTTPConfig{Server: s.server("get-features-http", true, fl.ResponseBytes), Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	s.getRespSize = fl.ResponseBytes
	return []Row{ratioRow("get-features HTTP, 16 clients (vs trivial handler)", &fl, &tr, "req/s", "req/s", 0.70)}, nil
}

func (s *suiteRun) getFeaturesHTTPRate() ([]Row, error) {
	if s.getRespSize == 0 {
		// Size the trivial server from a short featurelog probe, so this
		// benchmark also runs on its own.
		probe, err := RunGetFeaturesHTTP(GetFeaturesHTTPConfig{Server: s.server("get-features-http-probe", false, 0), Clients: 1, Keys: 100,
			Loop: Loop{Duration: 100 * time.Millisecond, Warmup: 10 * time.Millisecond}})
		if err != nil {
			return nil, err
		}
		s.getRespSize = probe.ResponseBytes
	}
	fl, err := RunGetFeaturesHTTPRate(GetFeaturesHTTPRateConfig{Server: s.server("get-features-http-rate", false, 0), Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	tr, err := RunGetFeaturesHTTPRate(GetFeaturesHTTPRateConfig{Server: s.server("get-features-http-rate", true, s.getRespSize), Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	return p99RateRows("get-features HTTP", &fl, &tr), nil
}

// p99RateRows compares featurelog's p99 at 5k req/s with the trivial
// handler's (target: within 1.5x) and reports both clients' send lag.
func p99RateRows(what string, fl, tr *Result) []Row {
	ratio := float64(fl.Latency.P99) / float64(max(tr.Latency.P99, 1))
	return []Row{
		{Benchmark: what + " latency @ 5k req/s p99", Result: fmt.Sprintf("%s (p50 %s)", fmtDur(fl.Latency.P99), fmtDur(fl.Latency.P50)) + errNote(fl),
			Baseline: fmt.Sprintf("%s (p50 %s)", fmtDur(tr.Latency.P99), fmtDur(tr.Latency.P50)) + errNote(tr),
			Ratio:    fmt.Sprintf("%.2fx", ratio), Target: "<= 1.5x", Verdict: verdict(ratio <= 1.5, fl, tr)},
		{Benchmark: what + " @ 5k req/s send lag p99 (client)", Result: fmtDur(fl.SendLag.P99), Baseline: fmtDur(tr.SendLag.P99),
			Ratio: "-", Target: "-", Verdict: "-"},
	}
}

func (s *suiteRun) replay() ([]Row, error) {
	res, err := RunReplay(ReplayConfig{TempDir: s.cfg.TempDir})
	if err != nil {
		return nil, err
	}
	row := absRow("replay on open, 2M records (engine.Open)", &res, 2_000_000)
	row.Result = fmt.Sprintf("%s records/s (open %s)", fmtRate(res.RecordsPerSec), fmtDur(res.Elapsed))
	return []Row{row}, nil
}

// ratioRow compares res's ops/s with base's; target is the least ratio.
func ratioRow(what string, res, base *Result, unit, baseUnit string, target float64) Row {
	ratio := res.OpsPerSec / base.OpsPerSec
	return Row{Benchmark: what, Result: opsFigure(res, unit), Baseline: opsFigure(base, baseUnit),
		Ratio: fmt.Sprintf("%.2fx", ratio), Target: fmt.Sprintf(">= %.2fx", target), Verdict: verdict(ratio >= target, res, base)}
}

// absRow checks res's records/s against an absolute target (0: none).
func absRow(what string, res *Result, target float64) Row {
	r := Row{Benchmark: what, Result: fmt.Sprintf("%s records/s", fmtRate(res.RecordsPerSec)) + errNote(res),
		Baseline: "-", Ratio: "-", Target: "-", Verdict: verdictOnly(res)}
	if target > 0 {
		r.Target = fmt.Sprintf(">= %s records/s", fmtRate(target))
		r.Verdict = verdict(res.RecordsPerSec >= target, res)
	}
	return r
}

func opsFigure(res *Result, unit string) string {
	return fmt.Sprintf("%s %s (p50 %s, p99 %s)", fmtRate(res.OpsPerSec), unit, fmtDur(res.Latency.P50), fmtDur(res.Latency.P99)) + errNote(res)
}

// errNote mentions failed or dropped operations, which void a figure.
func errNote(res *Result) string {
	if res.Errors == 0 && res.Dropped == 0 {
		return ""
	}
	return fmt.Sprintf(" [%d errors, %d dropped: %.120s]", res.Errors, res.Dropped, res.FirstError)
}

// verdict is pass or FAIL; any failed operation in the runs makes it FAIL.
func verdict(ok bool, runs ...*Result) string {
	for _, r := range runs {
		if r.Errors > 0 || r.Dropped > 0 {
			return "FAIL (errors)"
		}
	}
	if ok {
		return "pass"
	}
	return "FAIL"
}

// verdictOnly is "-" for a run without a target, unless it had errors.
func verdictOnly(runs ...*Result) string {
	if v := verdict(true, runs...); v != "pass" {
		return v
	}
	return "-"
}

func signedDur(d time.Duration) string {
	if d < 0 {
		return "-" + fmtDur(-d)
	}
	return "+" + fmtDur(d)
}

// WriteTable prints rows as an aligned text table.
func WriteTable(w io.Writer, rows []Row) error {
	cells := [][]string{{"benchmark", "result", "baseline", "ratio", "target", "verdict"}}
	for _, r := range rows {
		cells = append(cells, []string{r.Benchmark, r.Result, r.Baseline, r.Ratio, r.Target, r.Verdict})
	}
	widths := make([]int, len(cells[0]))
	for _, row := range cells {
		for i, c := range row {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for k, row := range cells {
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(c))+2))
			}
		}
		b.WriteByte('\n')
		if k == 0 {
			total := 0
			for _, wd := range widths {
				total += wd + 2
			}
			b.WriteString(strings.Repeat("-", total-2) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
