package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/bench"
)

// featurelogBin is the CLI built once for the tests.
var featurelogBin string

func TestMain(m *testing.M) {
	bin, err := buildFeaturelog("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	featurelogBin = bin
	code := m.Run()
	os.RemoveAll(filepath.Dir(bin))
	os.Exit(code)
}

// joined prepares cfg's workload, joins it with featurelog historical and
// with DuckDB, and returns DuckDB (closed with the test) and featurelog's
// output file.
func joined(t *testing.T, cfg bench.PITJoinConfig) (*duck, string) {
	t.Helper()
	cfg.Featurelog, cfg.CacheDir = []string{featurelogBin}, t.TempDir()
	data, err := bench.PreparePITJoin(cfg)
	require.NoError(t, err)
	j, err := bench.RunPITJoinCLI(cfg.Featurelog, data, filepath.Join(t.TempDir(), "training.parquet"))
	require.NoError(t, err)
	d, err := openDuck(data, cfg.Shape, 0)
	require.NoError(t, err)
	t.Cleanup(d.close)
	_, err = d.joins()
	require.NoError(t, err)
	return d, j.Out
}

// TestAgreesWithDuckDB is a differential test of featurelog's
// point-in-time join against DuckDB's ASOF and window joins, on small
// workloads of every key distribution, loaded over HTTP in random time
// order: every output column must equal DuckDB's, row by row.
func TestAgreesWithDuckDB(t *testing.T) {
	type shape struct {
		dist, shape string
		span        time.Duration
	}
	shapes := []shape{{bench.DistUniform, bench.ShapeHours, 3 * 24 * time.Hour}, {bench.DistZipf, bench.ShapeHours, 3 * 24 * time.Hour},
		{bench.DistHot, bench.ShapeHours, 3 * 24 * time.Hour}, {bench.DistUniform, bench.ShapeDays, 90 * 24 * time.Hour},
		{bench.DistZipf, bench.ShapeDays, 90 * 24 * time.Hour}}
	for _, sh := range shapes {
		t.Run(sh.dist+"/"+sh.shape, func(t *testing.T) {
			d, out := joined(t, bench.PITJoinConfig{Events: 60_000, Keys: 3_000, SpineRows: 6_000, Span: sh.span, Dist: sh.dist, Shape: sh.shape})
			cmp, err := d.compare(out)
			require.NoError(t, err)
			require.True(t, cmp.ok(), "%s", cmp)
			require.EqualValues(t, 6_000, cmp.matched)
			// The windows are not all empty: the comparison compares values.
			var nonEmpty int64
			require.NoError(t, d.conn.QueryRowContext(t.Context(), "SELECT count(*) FROM duck_win WHERE f0 > 0").Scan(&nonEmpty))
			require.Positive(t, nonEmpty)
		})
	}
}

// TestCompareFindsADifference changes one value of featurelog's output
// and expects the comparison to name it.
func TestCompareFindsADifference(t *testing.T) {
	d, out := joined(t, bench.PITJoinConfig{Events: 20_000, Keys: 1_000, SpineRows: 2_000, Span: 24 * time.Hour})
	bad := filepath.Join(t.TempDir(), "bad.parquet")
	col := "user_amounts.amount_sum_1d_continuous"
	_, err := d.conn.ExecContext(t.Context(), fmt.Sprintf(`COPY (SELECT * REPLACE (CASE WHEN row_id = 7 THEN coalesce(%[1]q, 0) + 0.25 ELSE %[1]q END AS %[1]q)
		FROM read_parquet(%[2]s)) TO %[3]s (FORMAT parquet)`, col, quote(out), quote(bad)))
	require.NoError(t, err)
	cmp, err := d.compare(bad)
	require.NoError(t, err)
	require.False(t, cmp.ok())
	require.EqualValues(t, 1, cmp.diffs[col], "%s", cmp)
	require.Contains(t, cmp.String(), col+": 1 rows differ")
}

var (
	pitFull     = flag.Bool("pit.full", false, "run BenchmarkPITJoinVsDuckDB at the table's full size (20M events, 1M keys, 1M spine rows, cached in the system temp dir) instead of a small one")
	pitDuration = flag.Duration("pit.duration", 10*time.Second, "measured window of each loop of the rows that need no peer")
)

// BenchmarkPITJoinVsDuckDB runs every row of the performance-at-scale
// table in one run: the point-in-time join against DuckDB's on the same
// files (and their answers compared), then the rows that need no peer
// (bench.RunTargets), each beside its baseline:
//
//	cd bench/peers && go test -run '^$' -bench . -benchtime 1x -timeout 2h -args -pit.full
func BenchmarkPITJoinVsDuckDB(b *testing.B) {
	cfg := bench.PITJoinConfig{CacheDir: b.TempDir(), Events: 200_000, Keys: 20_000, SpineRows: 20_000, Span: 3 * 24 * time.Hour}
	if *pitFull {
		cfg = bench.PITJoinConfig{}
	}
	rows, err := run(cfg, featurelogBin, 1, 0)
	if err == nil {
		var more []bench.Row
		more, err = bench.RunTargets(bench.TargetsConfig{Featurelog: []string{featurelogBin}, SkipPIT: true,
			Duration: *pitDuration, TempDir: b.TempDir()})
		rows = append(rows, more...)
	}
	bench.ReportRows(b, rows)
	require.NoError(b, err)
}
