package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The historical benchmarks (issue #4), run by RunHistorical and printed
// with WriteTable like the suite:
//
//	open              engine.Open of the built directory, in a fresh child process
//	spine-join        GetFeaturesForEvents, 1M spine rows over 20M events of 1M users, in a
//	                  fresh child process (wall time, peak RSS), at full and 1/Scale size
//	                  (linearity), and the aggregation_interval variant
//	disk              log + segment bytes per event of the ads example
//	compaction-reads  engine.GetFeatures p99 while Flush+CompactAll run, vs while they do not
//
// The data directories of open and spine-join are built once (engine.Open,
// Apply, Ingest from 2 goroutines with NoSync, then Flush and CompactAll,
// so the history is in segments) and cached under TempDir, keyed by size;
// a marker written last says a directory is complete. The join and the
// open run in child processes started from Command (featurelog re-executes
// itself as `featurelog bench historical-child`, see HistoricalChildMain),
// so their time and memory are those of a process that has just opened the
// directory, with whatever the page cache holds.
var historicalBenches = []string{"open", "spine-join", "disk", "compaction-reads"}

// HistoricalNames returns the names of the historical benchmarks, in run
// order.
func HistoricalNames() []string { return slices.Clone(historicalBenches) }

// HistoricalConfig configures RunHistorical.
type HistoricalConfig struct {
	// Events, Keys and SpineRows size the spine join: Events events of
	// Keys users over 30 days, and a spine of SpineRows rows (users
	// uniform among Keys, times uniform over the 30 days). Defaults
	// 20,000,000, 1,000,000 and 1,000,000.
	Events, Keys, SpineRows int
	// Scale divides all three for the second size of the linearity
	// check. Default 4.
	Scale int
	// JoinRuns is how many joins each child runs back to back; the first,
	// in a freshly started process, is the figure. Default 2.
	JoinRuns int
	// TempDir is where the data directories are cached (and the temporary
	// ones created). Default os.TempDir().
	TempDir string
	// Rebuild discards cached data directories and builds them again.
	Rebuild bool
	// Only restricts the run to the named benchmarks (HistoricalNames).
	// Empty runs all.
	Only []string
	// Command is the argv prefix of a program that calls
	// HistoricalChildMain with the arguments that follow it, e.g.
	// {"/path/featurelog", "bench", "historical-child"}. Required for
	// open and spine-join.
	Command []string
	// ChildCPUProfile, if set, is the file the full-size join child
	// writes a CPU profile of its joins to.
	ChildCPUProfile string
	// Disk and Compaction configure the disk and compaction-reads
	// benchmarks; their TempDir defaults to TempDir.
	Disk       DiskConfig
	Compaction CompactionReadsConfig
	// Progress receives a line as each step starts. Default none.
	Progress io.Writer
}

// EnsureDefaults fills in unset fields.
func (c *HistoricalConfig) EnsureDefaults() {
	if c.Events == 0 {
		c.Events = 20_000_000
	}
	if c.Keys == 0 {
		c.Keys = 1_000_000
	}
	if c.SpineRows == 0 {
		c.SpineRows = 1_000_000
	}
	if c.Scale == 0 {
		c.Scale = 4
	}
	if c.JoinRuns == 0 {
		c.JoinRuns = 2
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	if c.Disk.TempDir == "" {
		c.Disk.TempDir = c.TempDir
	}
	if c.Compaction.TempDir == "" {
		c.Compaction.TempDir = c.TempDir
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	c.Disk.EnsureDefaults()
	c.Compaction.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *HistoricalConfig) Validate() error {
	if c.Events <= 0 || c.Keys <= 0 || c.SpineRows <= 0 || c.Scale <= 0 || c.JoinRuns <= 0 {
		return errors.New("bench: HistoricalConfig: Events, Keys, SpineRows, Scale and JoinRuns must be positive")
	}
	if c.Events/c.Scale == 0 || c.Keys/c.Scale == 0 || c.SpineRows/c.Scale == 0 {
		return fmt.Errorf("bench: HistoricalConfig: Events, Keys and SpineRows must be at least Scale (%d)", c.Scale)
	}
	for _, n := range c.Only {
		if !slices.Contains(historicalBenches, n) {
			return fmt.Errorf("bench: unknown historical benchmark %q; they are: %s", n, strings.Join(historicalBenches, ", "))
		}
	}
	if len(c.Command) == 0 && (c.selected("open") || c.selected("spine-join")) {
		return errors.New("bench: HistoricalConfig.Command is required for open and spine-join: the argv prefix of a program that calls bench.HistoricalChildMain")
	}
	if err := c.Disk.Validate(); err != nil {
		return err
	}
	return c.Compaction.Validate()
}

func (c *HistoricalConfig) selected(name string) bool {
	return len(c.Only) == 0 || slices.Contains(c.Only, name)
}

// histRun is the state of one RunHistorical.
type histRun struct {
	cfg   HistoricalConfig
	sizes map[int]*HistoricalData // built data sets, by divisor (1: full size)
}

// RunHistorical runs the selected historical benchmarks and returns the
// table rows. It stops at the first benchmark that fails to run (a figure
// that misses its target is a FAIL row, not an error), returning the rows
// so far.
func RunHistorical(cfg HistoricalConfig) ([]Row, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &histRun{cfg: cfg, sizes: map[int]*HistoricalData{}}
	runs := map[string]func() ([]Row, error){
		"open": s.open, "spine-join": s.spineJoin, "disk": s.disk, "compaction-reads": s.compactionReads,
	}
	var rows []Row
	load := readLoad()
	for _, name := range historicalBenches {
		if !cfg.selected(name) {
			continue
		}
		fmt.Fprintf(cfg.Progress, "bench: running %s\n", name)
		r, err := runs[name]()
		rows = append(rows, r...)
		if err != nil {
			return append(rows, load.row()), fmt.Errorf("bench: %s: %w", name, err)
		}
	}
	return append(rows, load.row()), nil
}

// machineLoad is the load average and CPU pressure when the run started:
// on a machine shared with other work, figures are only as clean as it
// was idle.
type machineLoad struct {
	load, pressure string
}

// readLoad reads the 1-minute load average (/proc/loadavg) and the share
// of the last minute some task waited for a CPU (/proc/pressure/cpu).
func readLoad() machineLoad {
	l := machineLoad{load: "n/a", pressure: "n/a"}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(data)); len(f) > 0 {
			l.load = f[0]
		}
	}
	if data, err := os.ReadFile("/proc/pressure/cpu"); err == nil {
		for _, f := range strings.Fields(string(data)) {
			if v, ok := strings.CutPrefix(f, "avg60="); ok {
				l.pressure = v + "%"
				break
			}
		}
	}
	return l
}

func (start machineLoad) row() Row {
	end := readLoad()
	return Row{Benchmark: fmt.Sprintf("machine: %d CPUs; 1-min load average and CPU pressure (some, avg60), start -> end", runtime.NumCPU()),
		Result:   fmt.Sprintf("load %s -> %s; pressure %s -> %s", start.load, end.load, start.pressure, end.pressure),
		Baseline: "-", Ratio: "-", Target: "-", Verdict: "-"}
}

// size returns the data set of 1/div of the configured size, building it
// (or finding it cached) the first time, and its build row.
func (s *histRun) size(div int) (*HistoricalData, []Row, error) {
	if h := s.sizes[div]; h != nil {
		return h, nil, nil
	}
	events, keys := s.cfg.Events/div, s.cfg.Keys/div
	dc := HistoricalDataConfig{Events: events, Keys: keys, Rebuild: s.cfg.Rebuild, Progress: s.cfg.Progress,
		CacheDir: historicalCacheDir(s.cfg.TempDir, events, keys)}
	h, err := BuildHistoricalData(dc)
	if err != nil {
		return nil, nil, err
	}
	s.sizes[div] = h
	b := &h.Build
	what := fmt.Sprintf("build %s events, %s keys (engine.Ingest 2000/call, 2 goroutines, NoSync; then Flush+CompactAll)",
		fmtCount(events), fmtCount(keys))
	res := fmt.Sprintf("%s events/s: ingest %s + flush/compact %s = %s", fmtRate(b.IngestRate()), fmtDur(b.Ingest), fmtDur(b.Finish), fmtDur(b.Total))
	if h.Cached {
		res += " (cached, built " + b.Built.Format(time.RFC3339) + ")"
	}
	return h, []Row{{Benchmark: what, Result: res, Baseline: "-", Ratio: "-", Target: "-", Verdict: "-"}}, nil
}

// child runs a historical child on data set h.
func (s *histRun) child(h *HistoricalData, service string, rows int, openOnly bool, profile string) (*childResult, error) {
	return runChild(childSpec{command: s.cfg.Command, dir: h.Dir, service: service, runs: s.cfg.JoinRuns,
		openOnly: openOnly, cpuprofile: profile,
		spine: spineSpec{rows: rows, keys: h.Build.Keys, start: h.Start.UnixNano(), end: h.End.UnixNano(), seed: 1}})
}

func (s *histRun) open() ([]Row, error) {
	h, rows, err := s.size(1)
	if err != nil {
		return rows, err
	}
	fmt.Fprintf(s.cfg.Progress, "bench: opening %s in a child process\n", h.Dir)
	res, err := s.child(h, histService, 0, true, "")
	if err != nil {
		return rows, err
	}
	cache := "page cache warm: built in this run"
	if h.Cached {
		cache = "page cache as earlier runs left it"
	}
	return append(rows, Row{Benchmark: fmt.Sprintf("engine.Open after %s ingested events (fresh process; %s)", fmtCount(h.Build.Events), cache),
		Result:   fmt.Sprintf("%s (%d records replayed, %d log entries, peak RSS %s)", fmtDur(res.Open), res.Replayed, res.LogEntries, fmtMB(res.PeakRSS)),
		Baseline: "-", Ratio: "-", Target: "<= 5s", Verdict: verdictBool(res.Open <= 5*time.Second)}), nil
}

func (s *histRun) spineJoin() ([]Row, error) {
	full, rows, err := s.size(1)
	if err != nil {
		return rows, err
	}
	shape := fmt.Sprintf("%s rows over %s events, %s keys", fmtCount(s.cfg.SpineRows), fmtCount(full.Build.Events), fmtCount(full.Build.Keys))
	fmt.Fprintf(s.cfg.Progress, "bench: spine join, %s, in a child process\n", shape)
	fr, err := s.child(full, histService, s.cfg.SpineRows, false, s.cfg.ChildCPUProfile)
	if err != nil {
		return rows, err
	}
	if err := checkJoin(fr, s.cfg.SpineRows); err != nil {
		return rows, err
	}
	rows = append(rows,
		Row{Benchmark: "spine join (GetFeaturesForEvents), " + shape + ": count+sum 1h/24h continuous + latest, fresh process",
			Result: joinFigure(fr, s.cfg.SpineRows), Baseline: "-", Ratio: "-", Target: "<= 2s", Verdict: verdictBool(fr.Joins[0] <= 2*time.Second)},
		Row{Benchmark: "spine join peak RSS (child VmHWM)",
			Result:   fmt.Sprintf("%s (RSS %s after open + building the spine)", fmtMB(fr.PeakRSS), fmtMB(fr.RSSBeforeJoin)),
			Baseline: "-", Ratio: "-", Target: "<= 1500 MB", Verdict: verdictBool(fr.PeakRSS > 0 && fr.PeakRSS <= 1_500_000_000)})
	fmt.Fprintf(s.cfg.Progress, "bench: spine join, aggregation_interval 1h variant\n")
	ir, err := s.child(full, histIntervalService, s.cfg.SpineRows, false, "")
	if err != nil {
		return rows, err
	}
	if err := checkJoin(ir, s.cfg.SpineRows); err != nil {
		return rows, err
	}
	rows = append(rows, Row{Benchmark: "spine join, same with aggregation_interval: 1h (view user_amounts_hourly)",
		Result: joinFigure(ir, s.cfg.SpineRows) + ", peak RSS " + fmtMB(ir.PeakRSS), Baseline: "-", Ratio: "-", Target: "reported", Verdict: "-"})
	small, more, err := s.size(s.cfg.Scale)
	rows = append(rows, more...)
	if err != nil {
		return rows, err
	}
	n := s.cfg.SpineRows / s.cfg.Scale
	fmt.Fprintf(s.cfg.Progress, "bench: spine join at 1/%d size, in a child process\n", s.cfg.Scale)
	sr, err := s.child(small, histService, n, false, "")
	if err != nil {
		return rows, err
	}
	if err := checkJoin(sr, n); err != nil {
		return rows, err
	}
	ratio := float64(fr.Joins[0]) / float64(max(sr.Joins[0], 1))
	cpuRatio := float64(fr.JoinsCPU[0]) / float64(max(sr.JoinsCPU[0], 1))
	limit := float64(s.cfg.Scale) * 1.25
	rows = append(rows, Row{
		Benchmark: fmt.Sprintf("spine join scaling: full vs 1/%d size (%s rows, %s events, %s keys)", s.cfg.Scale,
			fmtCount(n), fmtCount(small.Build.Events), fmtCount(small.Build.Keys)),
		Result: fmtDur(fr.Joins[0]), Baseline: fmt.Sprintf("%s (peak RSS %s)", joinFigure(sr, n), fmtMB(sr.PeakRSS)),
		Ratio: fmt.Sprintf("%.2fx (CPU %.2fx)", ratio, cpuRatio), Target: fmt.Sprintf("wall <= %.1fx (%dx = linear)", limit, s.cfg.Scale),
		Verdict: verdictBool(ratio <= limit)})
	return rows, nil
}

// checkJoin verifies a child joined every spine row.
func checkJoin(r *childResult, rows int) error {
	if len(r.Joins) == 0 || r.Rows != int64(rows) {
		return fmt.Errorf("the join delivered %d rows for a spine of %d", r.Rows, rows)
	}
	if r.Present == 0 {
		return errors.New("the join found no feature value for any spine row")
	}
	return nil
}

// joinFigure prints a child's first join, its rate and the later runs.
func joinFigure(r *childResult, rows int) string {
	s := fmt.Sprintf("%s (CPU %s; %s rows/s; open %s and spine %s not counted)", fmtDur(r.Joins[0]), fmtDur(r.JoinsCPU[0]),
		fmtRate(float64(rows)/r.Joins[0].Seconds()), fmtDur(r.Open), fmtDur(r.Spine))
	if len(r.Joins) > 1 {
		var later []string
		for _, d := range r.Joins[1:] {
			later = append(later, fmtDur(d))
		}
		s += "; then " + strings.Join(later, ", ")
	}
	return s
}

func (s *histRun) disk() ([]Row, error) {
	c := s.cfg.Disk
	res, err := RunDisk(c)
	if err != nil {
		return nil, err
	}
	total := res.PerEvent(res.LogBytes + res.SegmentBytes)
	return []Row{
		{Benchmark: fmt.Sprintf("disk per event, ads example (%s events, %s users, %.0f%% clicks, %d records/request; after Flush+CompactAll)",
			fmtCount(c.Events), fmtCount(c.Users), c.ClickRate*100, c.BatchSize),
			Result:   fmt.Sprintf("%.2f B (log %.2f B + segments %.2f B)", total, res.PerEvent(res.LogBytes), res.PerEvent(res.SegmentBytes)),
			Baseline: "-", Ratio: "-", Target: "<= 30 B", Verdict: verdictBool(total <= 30)},
		{Benchmark: "segment compression (compaction.Reader RawBytes / FileBytes)",
			Result: fmt.Sprintf("%.2fx (%d segments: %s raw in %s)", res.Compression(), res.Segments,
				fmtMB(res.SegmentRawBytes), fmtMB(res.SegmentFileBytes)),
			Baseline: "-", Ratio: "-", Target: "reported", Verdict: "-"},
	}, nil
}

func (s *histRun) compactionReads() ([]Row, error) {
	c := s.cfg.Compaction
	fmt.Fprintf(s.cfg.Progress, "bench: loading %s events of %s users in %d segments per view\n", fmtCount(c.Events), fmtCount(c.Keys), c.Segments)
	res, err := RunCompactionReads(c)
	if err != nil {
		return nil, err
	}
	b, d := &res.Baseline, &res.During
	ratio := float64(d.Latency.P99) / float64(max(b.Latency.P99, 1))
	rate := fmt.Sprintf("%s/s", fmtRate(res.Rate))
	if c.Rate == 0 {
		rate += " (half the closed loop's " + fmtRate(res.ClosedLoop.OpsPerSec) + "/s, at most " + fmtRate(maxAutoReadRate) + "/s)"
	}
	what := fmt.Sprintf("engine.GetFeatures p99 @ %s, %d readers, %s events/%s users", rate, c.Readers, fmtCount(c.Events), fmtCount(c.Keys))
	fig := func(r *Result) string {
		return fmt.Sprintf("p99 %s (p50 %s)", fmtDur(r.Latency.P99), fmtDur(r.Latency.P50)) + errNote(r)
	}
	busy := res.CompactionTime.Seconds() / (c.Duration + c.Warmup).Seconds()
	return []Row{
		{Benchmark: what + ", during Flush+CompactAll + ingest (vs ingest only)", Result: fig(d), Baseline: fig(b),
			Ratio: fmt.Sprintf("%.2fx", ratio), Target: "<= 1.5x", Verdict: verdict(ratio <= 1.5, d, b)},
		{Benchmark: what + ", idle (no ingest, no compaction)", Result: fig(&res.Idle), Baseline: "-", Ratio: "-", Target: "reported", Verdict: verdictOnly(&res.Idle)},
		{Benchmark: fmt.Sprintf("compaction in that window (%d segments per view at start, ingest %s records/s)", c.Segments, fmtRate(c.IngestRate)),
			Result: fmt.Sprintf("first round %s; %d Flush+CompactAll rounds, %s in all (%.0f%% of the window)",
				fmtDur(res.FirstCompaction), res.Compactions, fmtDur(res.CompactionTime), 100*busy),
			Baseline: "-", Ratio: "-", Target: "-", Verdict: "-"},
	}, nil
}

// fmtMB prints bytes in MB (10^6), or kB below 1 MB.
func fmtMB(b int64) string {
	switch {
	case b <= 0:
		return "n/a"
	case b < 1e6:
		return fmt.Sprintf("%.0f kB", float64(b)/1e3)
	case b < 1e7:
		return fmt.Sprintf("%.1f MB", float64(b)/1e6)
	}
	return fmt.Sprintf("%.0f MB", float64(b)/1e6)
}

// quietLogger discards the engine's logs.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// historicalCacheDir is where the historical data set of a size is
// cached under root; the jobs benchmarks share it.
func historicalCacheDir(root string, events, keys int) string {
	if root == "" {
		root = os.TempDir()
	}
	return filepath.Join(root, fmt.Sprintf("featurelog-bench-historical-%s-events-%s-keys", fmtCount(events), fmtCount(keys)))
}
