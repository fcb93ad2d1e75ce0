package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TargetsConfig configures RunTargets: the rows of the open-targets
// table (docs/performance.md, "Open targets") that need no peer,
// each measured beside its baseline in the same run.
type TargetsConfig struct {
	// Featurelog is the argv prefix that runs the featurelog CLI. Its
	// `historical` joins the spine in a fresh process and its hidden
	// `bench server` runs the HTTP servers. Required.
	Featurelog []string
	// PIT is the join workload (load over HTTP, join, peak RSS); its
	// Featurelog is set from Featurelog. Ignored when SkipPIT is set (the
	// bench/peers module runs the join itself, beside DuckDB's).
	PIT     PITJoinConfig
	SkipPIT bool
	// Compaction sizes the reads-during-merges row; its TempDir and
	// Loop.Duration default to TempDir and Duration.
	Compaction CompactionReadsConfig
	// Duration is the measured window of each loop. Default 10s.
	Duration time.Duration
	// TempDir is where data directories are created. Default
	// os.TempDir().
	TempDir string
	// Progress receives a line as each step starts. Default none.
	Progress io.Writer
}

// RunTargets runs, one after the other and each beside its baseline:
// the point-in-time join workload (its HTTP load rate, the join in a
// fresh process and its peak RSS), get-features p99 while flushes and
// merges run (against ingest only), durable single-record ack p99
// (against a trivial handler at the same rate) and engine.Ingest with
// three aggregate views (against none). It returns the rows so far when
// a step fails to run; a missed target is a FAIL row, not an error.
func RunTargets(cfg TargetsConfig) ([]Row, error) {
	if len(cfg.Featurelog) == 0 {
		return nil, errors.New("bench: TargetsConfig.Featurelog is required: the argv prefix that runs the featurelog CLI")
	}
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	var rows []Row
	if !cfg.SkipPIT {
		pit := cfg.PIT
		pit.Featurelog, pit.Progress = cfg.Featurelog, cfg.Progress
		r, _, _, err := RunPITJoin(pit)
		rows = append(rows, r...)
		if err != nil {
			return rows, err
		}
	}
	comp := cfg.Compaction
	if comp.TempDir == "" {
		comp.TempDir = cfg.TempDir
	}
	if comp.Duration == 0 {
		comp.Duration = cfg.Duration
	}
	r, err := RunHistorical(HistoricalConfig{TempDir: cfg.TempDir, Only: []string{"compaction-reads"}, Compaction: comp, Progress: cfg.Progress})
	rows = append(rows, r...)
	if err != nil {
		return rows, err
	}
	server := append(append([]string(nil), cfg.Featurelog...), "bench", "server")
	r, err = RunSuite(SuiteConfig{Duration: cfg.Duration, Only: []string{"ingest-http-rate", "agg-ingest"},
		Command: server, TempDir: cfg.TempDir, Progress: cfg.Progress})
	return append(rows, r...), err
}

// RowMetric is a row's ratio as a number for testing.B.ReportMetric: a
// ratio "2.14x" (or "5.10x faster") is (2.14, "x"), a gap "+13ms" is (13,
// "ms-gap"). ok is
// false for rows without one.
func RowMetric(r Row) (v float64, unit string, ok bool) {
	s := strings.TrimSpace(strings.TrimSuffix(r.Ratio, " faster"))
	if x, found := strings.CutSuffix(s, "x"); found {
		if v, err := strconv.ParseFloat(x, 64); err == nil {
			return v, "x", true
		}
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(strings.ReplaceAll(s, "µ", "u"), "+")); err == nil {
		return float64(d) / float64(time.Millisecond), "ms-gap", true
	}
	return 0, "", false
}

var nonName = regexp.MustCompile(`[^A-Za-z0-9]+`)

// RowName is a short name for a row, for sub-benchmark names.
func RowName(i int, r Row) string {
	n := strings.Trim(nonName.ReplaceAllString(r.Benchmark, "-"), "-")
	if len(n) > 48 {
		n = strings.TrimRight(n[:48], "-")
	}
	return fmt.Sprintf("%02d-%s", i, n)
}

// ReportRows reports rows from a benchmark: the table in the log, and a
// sub-benchmark per row (RowName) with its ratio or gap as a metric
// (RowMetric) and its verdict in the log.
func ReportRows(b *testing.B, rows []Row) {
	var sb strings.Builder
	if err := WriteTable(&sb, rows); err == nil {
		b.Log("\n" + sb.String())
	}
	for i, r := range rows {
		b.Run(RowName(i, r), func(b *testing.B) {
			if v, unit, ok := RowMetric(r); ok {
				b.ReportMetric(v, unit)
			}
			b.Logf("%s: %s (baseline %s; ratio %s; target %s): %s", r.Benchmark, r.Result, r.Baseline, r.Ratio, r.Target, r.Verdict)
		})
	}
}
