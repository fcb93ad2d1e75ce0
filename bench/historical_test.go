package bench

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
)

// historicalChildArg makes the test binary act as a historical child
// process. It is checked in init, not TestMain (bench_test.go's), which
// runs later and knows only the server processes.
const historicalChildArg = "featurelog-bench-historical-child"

func init() {
	if len(os.Args) > 1 && os.Args[1] == historicalChildArg {
		if err := HistoricalChildMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// tinyHistorical is a historical configuration small enough for a unit
// test: every benchmark runs, child processes included.
func tinyHistorical(t *testing.T) HistoricalConfig {
	return HistoricalConfig{Events: 20_000, Keys: 2000, SpineRows: 4000, TempDir: t.TempDir(),
		Command:    []string{os.Args[0], historicalChildArg},
		Disk:       DiskConfig{Events: 20_000, Users: 1000},
		Compaction: CompactionReadsConfig{Events: 20_000, Keys: 1000, Segments: 4, Rate: 2000, Loop: tiny},
	}
}

// TestRunHistoricalTiny runs the whole historical suite at tiny sizes, to
// keep it working; it checks that every figure was produced, never how
// good it is.
func TestRunHistoricalTiny(t *testing.T) {
	cfg := tinyHistorical(t)
	var progress bytes.Buffer
	cfg.Progress = &progress
	rows, err := RunHistorical(cfg)
	require.NoError(t, err, progress.String())
	var table bytes.Buffer
	require.NoError(t, WriteTable(&table, rows))
	t.Log("\n" + table.String())
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = r.Benchmark
		assert.NotContains(t, r.Verdict, "errors", r.Benchmark)
		if strings.Contains(r.Benchmark, "RSS") {
			assert.NotContains(t, r.Result, "n/a", "%s: /proc/self/status should be readable on Linux", r.Benchmark)
		}
	}
	all := strings.Join(names, "\n")
	for _, want := range []string{"build 20k events", "build 5k events", "engine.Open after 20k", "spine join (GetFeaturesForEvents)",
		"peak RSS", "aggregation_interval", "scaling", "disk per event", "segment compression", "during Flush+CompactAll", "idle"} {
		assert.Contains(t, all, want)
	}

	// A second run reuses the cached data directories.
	cfg.Only, progress = []string{"open"}, bytes.Buffer{}
	rows, err = RunHistorical(cfg)
	require.NoError(t, err)
	assert.Contains(t, rows[0].Result, "cached")
	assert.Contains(t, progress.String(), "reusing")
}

// TestSpineJoinMatchesOnlineReads checks the benchmark's join against
// online reads as of each spine row's time, so the figure is of a join
// that answers correctly.
func TestSpineJoinMatchesOnlineReads(t *testing.T) {
	h, err := BuildHistoricalData(HistoricalDataConfig{CacheDir: t.TempDir(), Events: 5000, Keys: 200})
	require.NoError(t, err)
	db, err := openHist(h.Dir, engine.Options{})
	require.NoError(t, err)
	defer db.Close()
	for _, service := range []string{histService, histIntervalService} {
		sp := newMemSpine(spineSpec{rows: 300, keys: 250, start: h.Start.UnixNano(), end: h.End.UnixNano(), seed: 3})
		sink := countingSink{keep: 300}
		_, err := joinOnce(db, service, sp, &sink)
		require.NoError(t, err)
		require.EqualValues(t, 300, sink.rows)
		require.Positive(t, sink.present)
		for i, lead := range sink.kept {
			vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: histWorkspace, Service: service,
				JoinKeys: map[string]any{"user_id": lead[0]}, AsOf: lead[1].(time.Time)})
			require.NoError(t, err)
			require.Len(t, vec.Features, len(sink.keptVals[i]))
			for k, f := range vec.Features {
				assert.True(t, f.Value.Equal(sink.keptVals[i][k]), "%s row %d %s: online %v, join %v", service, i, f.Name, f.Value, sink.keptVals[i][k])
			}
		}
	}
}

func TestClickUserIDs(t *testing.T) {
	seen := map[string]bool{}
	for i := range 300_000 {
		id := clickUserID(i)
		require.Len(t, id, 8)
		require.False(t, seen[id], "duplicate id %s for user %d", id, i)
		seen[id] = true
	}
	assert.Equal(t, "A00000", clickUserID(0)[:6])
}

// BenchmarkSpineJoin measures the spine join in-process on a small data
// set (200k events of 10k users, 10k spine rows); ns/row is per spine row.
// The full-size figure, in a fresh process, is `featurelog bench
// historical`.
func BenchmarkSpineJoin(b *testing.B) {
	h, err := BuildHistoricalData(HistoricalDataConfig{CacheDir: b.TempDir(), Events: 200_000, Keys: 10_000})
	require.NoError(b, err)
	db, err := openHist(h.Dir, engine.Options{})
	require.NoError(b, err)
	defer db.Close()
	const rows = 10_000
	sp := newMemSpine(spineSpec{rows: rows, keys: 10_000, start: h.Start.UnixNano(), end: h.End.UnixNano(), seed: 1})
	b.ResetTimer()
	for b.Loop() {
		sp.rewind()
		var sink countingSink
		if _, err := joinOnce(db, histService, sp, &sink); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}

func TestFmtSpan(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{500 * time.Nanosecond, "500ns"},
		{1_234_567, "1.23ms"},
		{999_600_000, "1s"},
		{999_400_000, "999ms"},
		{4_414_000_000, "4.41s"},
		{1090 * time.Second, "18m10s"},
	} {
		assert.Equal(t, c.want, fmtDur(c.d), "%d ns", int64(c.d))
	}
}
