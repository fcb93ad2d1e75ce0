package bench

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
)

// tinyAggHistory is one user with 2000 events over 10 minutes, one every
// 300 ms, the last at End.
func tinyAggHistory(t *testing.T) AggHistoryConfig {
	return AggHistoryConfig{TempDir: t.TempDir(), Events: 2000, Span: 10 * time.Minute, BatchSize: 300}
}

func TestAggRepoApplies(t *testing.T) {
	db, err := openAgg(t.TempDir(), true, nil)
	require.NoError(t, err)
	defer db.Close()
	fs, err := db.ServiceFeatures(aggWorkspace, aggService)
	require.NoError(t, err)
	require.Len(t, fs, aggFeatures)
	assert.Equal(t, "user_amounts.amount_count_7d_continuous", fs[aggCount7d].Name)
	for _, w := range aggWindows {
		fs, err := db.ServiceFeatures(aggWorkspace, aggWindowService(w))
		require.NoError(t, err)
		assert.Len(t, fs, 3, w)
	}
}

// The history holds what it says: read back, each window counts exactly
// the events before the read time.
func TestAggHistoryReadsBack(t *testing.T) {
	h, err := BuildAggHistory(tinyAggHistory(t))
	require.NoError(t, err)
	defer h.Remove()
	assert.Equal(t, 2000, h.Events)
	assert.Equal(t, []string{"user-0"}, h.Keys)
	db, err := h.Open()
	require.NoError(t, err)
	defer db.Close()
	// Events at End − k·300ms, k = 0..1999; as of End − 30s, those with
	// k > 100 are before it, all within 1h.
	vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: aggWorkspace, Service: aggService,
		JoinKeys: map[string]any{"user_id": "user-0"}, AsOf: h.End.Add(-30 * time.Second)})
	require.NoError(t, err)
	require.NoError(t, checkAggVector(vec))
	for _, i := range []int{0, 3, aggCount7d} {
		assert.Equal(t, int64(1899), vec.Features[i].Value.I, vec.Features[i].Name)
	}
}

func TestAggHistoryDenseOffsets(t *testing.T) {
	cfg := AggHistoryConfig{Span: 2 * time.Hour, DenseAt: []time.Duration{0, time.Hour}, DenseWidth: time.Minute, DenseRate: 2}
	cfg.EnsureDefaults()
	offs := cfg.offsets()
	assert.True(t, slices.IsSortedFunc(offs, func(a, b time.Duration) int { return int(b - a) }), "oldest first")
	assert.Equal(t, len(offs), len(slices.Compact(slices.Clone(offs))), "no duplicates")
	assert.Equal(t, 2*time.Hour, offs[0])
	assert.Equal(t, time.Duration(0), offs[len(offs)-1])
	count := func(lo, hi time.Duration) int {
		n := 0
		for _, o := range offs {
			if o >= lo && o < hi {
				n++
			}
		}
		return n
	}
	assert.Equal(t, 240, count(time.Hour-time.Minute, time.Hour+time.Minute), "2/s within a minute of 1h")
	assert.Equal(t, 10, count(90*time.Minute, 100*time.Minute), "one a minute elsewhere")
}

func TestAggReadInProcessTiny(t *testing.T) {
	res, err := RunAggReadInProcess(AggReadConfig{HistoryConfig: tinyAggHistory(t), Phases: 10, Loop: tiny})
	checkRun(t, res, err, 1)
}

func TestAggCostGrowthTiny(t *testing.T) {
	res, err := RunAggCostGrowth(AggCostGrowthConfig{TempDir: t.TempDir(), SmallEvents: 5, LargeEvents: 3000, Span: time.Hour,
		WindowEvents: 3000, WindowSpan: 40 * 24 * time.Hour, Phases: 10, Loop: tiny})
	require.NoError(t, err)
	require.Len(t, res.Windows, len(aggWindows))
	for _, r := range append([]Result{res.Small, res.Large}, res.Windows...) {
		checkRun(t, r, nil, 1)
	}
}

func TestAggIngestTiny(t *testing.T) {
	res, err := RunAggIngest(IngestInProcessConfig{TempDir: t.TempDir(), BatchSize: 50, Batches: 4, Concurrency: 2, Loop: tiny})
	require.NoError(t, err)
	checkRun(t, res.Plain, nil, 50)
	checkRun(t, res.Views, nil, 50)
}

func TestTileBytesTiny(t *testing.T) {
	res, err := RunTileBytes(TileBytesConfig{Tiles: 20_000})
	require.NoError(t, err)
	assert.Positive(t, res.States)
	assert.Greater(t, res.Tile, res.States, "a tile adds its []State")
	assert.GreaterOrEqual(t, res.Separate, res.States, "fusing never costs more")
	assert.Positive(t, res.MemSize)
	assert.NotEmpty(t, res.Planned)
	_, err = RunTileBytes(TileBytesConfig{Functions: []string{"median"}})
	require.Error(t, err)
}

func TestAggHTTPTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	h, err := BuildAggHistory(tinyAggHistory(t))
	require.NoError(t, err)
	defer h.Remove()
	var size int
	t.Run("read", func(t *testing.T) {
		res, err := RunAggReadHTTP(AggReadHTTPConfig{Server: testServer(t, false, 0), History: h, Clients: 4, Phases: 10, Loop: tiny})
		checkRun(t, res, err, 1)
		size = res.ResponseBytes
		require.Positive(t, size)
		res, err = RunAggReadHTTP(AggReadHTTPConfig{Server: testServer(t, true, size), History: h, Clients: 4, Phases: 10, Loop: tiny})
		checkRun(t, res, err, 1)
		assert.Equal(t, size, res.ResponseBytes)
	})
	t.Run("read-rate", func(t *testing.T) {
		for _, trivial := range []bool{false, true} {
			res, err := RunAggReadHTTPRate(AggReadHTTPConfig{Server: testServer(t, trivial, 300), HistoryConfig: tinyAggHistory(t),
				Rate: 500, Workers: 8, Phases: 10, Loop: tiny})
			checkRun(t, res, err, 1)
		}
	})
	t.Run("batch-rate", func(t *testing.T) {
		res, err := RunAggBatchHTTPRate(AggBatchHTTPRateConfig{Server: testServer(t, false, 0), BatchKeys: 5, Rate: 200, Workers: 4, Phases: 10,
			HistoryConfig: AggHistoryConfig{Keys: 7, Span: 2 * time.Hour, DenseAt: []time.Duration{0, time.Hour}, DenseWidth: time.Minute}, Loop: tiny})
		checkRun(t, res, err, 5)
	})
	db, err := h.Open() // the servers left the history in place
	require.NoError(t, err)
	require.NoError(t, db.Close())
}

func TestSuiteTileBytes(t *testing.T) {
	rows, err := RunSuite(SuiteConfig{Duration: 100 * time.Millisecond, Only: []string{"tile-bytes"}, TempDir: t.TempDir()})
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Contains(t, []string{"pass", "FAIL"}, rows[0].Verdict)
	assert.Contains(t, rows[0].Result, " B")
}

// The aggregate macro benchmarks, one by one (go test -bench Agg ./bench).

func BenchmarkAggReadInProcess(b *testing.B) {
	res, err := RunAggReadInProcess(AggReadConfig{TempDir: b.TempDir(), Loop: benchLoop()})
	report(b, res, err)
}

func BenchmarkAggCostGrowth(b *testing.B) {
	res, err := RunAggCostGrowth(AggCostGrowthConfig{TempDir: b.TempDir(), Loop: benchLoop()})
	require.NoError(b, err)
	b.Run("events=small", func(b *testing.B) { report(b, res.Small, nil) })
	b.Run("events=large", func(b *testing.B) { report(b, res.Large, nil) })
	for i, w := range aggWindows {
		b.Run("window="+w, func(b *testing.B) { report(b, res.Windows[i], nil) })
	}
}

func BenchmarkAggIngest(b *testing.B) {
	res, err := RunAggIngest(IngestInProcessConfig{TempDir: b.TempDir(), Loop: benchLoop()})
	require.NoError(b, err)
	b.Run("plain", func(b *testing.B) { report(b, res.Plain, nil) })
	b.Run("views", func(b *testing.B) { report(b, res.Views, nil) })
}

func BenchmarkAggHTTP(b *testing.B) {
	skipShort(b)
	h, err := BuildAggHistory(AggHistoryConfig{TempDir: b.TempDir()})
	require.NoError(b, err)
	defer h.Remove()
	size := 0
	b.Run(modeFeaturelog, func(b *testing.B) {
		res, err := RunAggReadHTTP(AggReadHTTPConfig{Server: testServer(b, false, 0), History: h, Loop: benchLoop()})
		report(b, res, err)
		size = res.ResponseBytes
	})
	b.Run(modeTrivial, func(b *testing.B) {
		res, err := RunAggReadHTTP(AggReadHTTPConfig{Server: testServer(b, true, size), History: h, Loop: benchLoop()})
		report(b, res, err)
	})
	b.Run("rate-5k/"+modeFeaturelog, func(b *testing.B) {
		res, err := RunAggReadHTTPRate(AggReadHTTPConfig{Server: testServer(b, false, 0), History: h, Loop: benchLoop()})
		report(b, res, err)
	})
	b.Run("rate-5k/"+modeTrivial, func(b *testing.B) {
		res, err := RunAggReadHTTPRate(AggReadHTTPConfig{Server: testServer(b, true, size), History: h, Loop: benchLoop()})
		report(b, res, err)
	})
	b.Run("batch-100-rate-100", func(b *testing.B) {
		res, err := RunAggBatchHTTPRate(AggBatchHTTPRateConfig{Server: testServer(b, false, 0), Loop: benchLoop()})
		report(b, res, err)
	})
}

func BenchmarkTileBytes(b *testing.B) {
	res, err := RunTileBytes(TileBytesConfig{})
	require.NoError(b, err)
	b.ReportMetric(res.States, "B/tile-states")
	b.ReportMetric(res.Separate, "B/tile-unfused")
	b.ReportMetric(res.Tile, "B/tile")
}
