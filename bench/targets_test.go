package bench

import (
	"flag"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var targetsFull = flag.Bool("targets.full", false, "run BenchmarkTargets at the table's full size (20M events, 1M keys, 1M spine rows; cached in the system temp dir; about 15 minutes) instead of a small one")

// BenchmarkTargets runs every row of the performance-at-scale table that
// needs no peer, each beside its baseline in the same run (RunTargets),
// with the featurelog CLI built from this checkout:
//
//	go test -run '^$' -bench Targets -benchtime 1x ./bench -args -targets.full -duration 10s
//
// The join against DuckDB is BenchmarkPITJoinVsDuckDB in bench/peers.
func BenchmarkTargets(b *testing.B) {
	skipShort(b)
	bin := filepath.Join(b.TempDir(), "featurelog")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/featurelog/featurelog/cmd/featurelog").CombinedOutput()
	require.NoError(b, err, "building the featurelog CLI: %s", out)
	cfg := TargetsConfig{Featurelog: []string{bin}, Duration: *benchDuration, TempDir: b.TempDir()}
	if !*targetsFull {
		cfg.PIT = PITJoinConfig{CacheDir: b.TempDir(), Events: 200_000, Keys: 20_000, SpineRows: 20_000, Span: 3 * 24 * time.Hour}
		cfg.Compaction = CompactionReadsConfig{Events: 200_000, Keys: 20_000}
	}
	rows, err := RunTargets(cfg)
	ReportRows(b, rows)
	require.NoError(b, err)
}

func TestRowMetric(t *testing.T) {
	for _, c := range []struct {
		ratio, unit string
		v           float64
		ok          bool
	}{
		{"2.14x", "x", 2.14, true},
		{"5.10x faster", "x", 5.10, true},
		{"+13ms", "ms-gap", 13, true},
		{"+592µs", "ms-gap", 0.592, true},
		{"-", "", 0, false},
		{"reported", "", 0, false},
	} {
		v, unit, ok := RowMetric(Row{Ratio: c.ratio})
		assert.Equal(t, c.ok, ok, c.ratio)
		assert.Equal(t, c.unit, unit, c.ratio)
		assert.InDelta(t, c.v, v, 1e-9, c.ratio)
	}
	assert.Equal(t, "03-pitjoin-load-20M-events", RowName(3, Row{Benchmark: "pitjoin load: 20M events"}))
}
