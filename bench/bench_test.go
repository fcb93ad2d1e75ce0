package bench

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// serverArg makes the test binary act as a benchmark server process:
// testServer re-executes the binary with it.
const serverArg = "featurelog-bench-server"

var benchDuration = flag.Duration("duration", 2*time.Second, "measured window of each benchmark (go test -bench . ./bench -args -duration 5s)")

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == serverArg {
		if err := ServeMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func testServer(t testing.TB, trivial bool, size int) Server {
	return Server{Command: []string{os.Args[0], serverArg}, Trivial: trivial, ResponseSize: size, TempDir: t.TempDir()}
}

// tiny is a loop short enough for unit tests.
var tiny = Loop{Duration: 150 * time.Millisecond, Warmup: 20 * time.Millisecond}

func TestAdsRepoMatchesExample(t *testing.T) {
	want, err := os.ReadFile("../examples/ads/features.yaml")
	require.NoError(t, err)
	assert.Equal(t, string(want), string(adsRepo), "bench/ads.yaml must stay a copy of examples/ads/features.yaml")
}

// checkRun asserts a run did work without errors; it never checks speed.
func checkRun(t *testing.T, res Result, err error, perOp int64) {
	t.Helper()
	require.NoError(t, err)
	require.Zero(t, res.Errors, "first error: %s", res.FirstError)
	require.Zero(t, res.Dropped)
	require.Positive(t, res.Ops)
	assert.Equal(t, res.Ops*perOp, res.Records)
	assert.Positive(t, res.Latency.P50, "%+v", res)
	assert.LessOrEqual(t, res.Latency.P50, res.Latency.P99)
	assert.LessOrEqual(t, res.Latency.P99, res.Latency.Max)
}

func TestRunInProcessTiny(t *testing.T) {
	t.Run("tidwall", func(t *testing.T) {
		res, err := RunTidwallBaseline(TidwallConfig{TempDir: t.TempDir(), Loop: tiny})
		checkRun(t, res, err, 1)
	})
	cfg := IngestInProcessConfig{BatchSize: 50, Batches: 4, Concurrency: 2, Loop: tiny}
	t.Run("ingest", func(t *testing.T) {
		cfg.TempDir = t.TempDir()
		res, err := RunIngestInProcess(cfg)
		checkRun(t, res, err, 50)
	})
	t.Run("ingestjson", func(t *testing.T) {
		cfg.TempDir = t.TempDir()
		res, err := RunIngestJSONInProcess(cfg)
		checkRun(t, res, err, 50)
	})
	t.Run("get-features", func(t *testing.T) {
		res, err := RunGetFeaturesInProcess(GetFeaturesConfig{TempDir: t.TempDir(), Keys: 1500, Loop: tiny})
		checkRun(t, res, err, 1)
	})
	t.Run("replay", func(t *testing.T) {
		res, err := RunReplay(ReplayConfig{TempDir: t.TempDir(), Records: 5000, BatchSize: 100, Keys: 300, Opens: 1})
		require.NoError(t, err)
		assert.Equal(t, int64(5000), res.Records)
		assert.Positive(t, res.RecordsPerSec)
	})
}

func TestRunHTTPTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	var ingestSize, getSize int
	t.Run("ingest", func(t *testing.T) {
		res, err := RunIngestHTTP(IngestHTTPConfig{Server: testServer(t, false, 0), Clients: 4, Loop: tiny})
		checkRun(t, res, err, 1)
		require.Positive(t, res.ResponseBytes)
		ingestSize = res.ResponseBytes
		res, err = RunIngestHTTP(IngestHTTPConfig{Server: testServer(t, true, ingestSize), Clients: 4, Loop: tiny})
		checkRun(t, res, err, 1)
		assert.Equal(t, ingestSize, res.ResponseBytes, "the trivial server answers as many bytes as featurelog")
	})
	t.Run("ingest-rate", func(t *testing.T) {
		for _, trivial := range []bool{false, true} {
			res, err := RunIngestHTTPRate(IngestHTTPRateConfig{Server: testServer(t, trivial, 200), Rate: 500, Workers: 8, Loop: tiny})
			checkRun(t, res, err, 1)
		}
	})
	t.Run("batch-ingest", func(t *testing.T) {
		res, err := RunBatchIngestHTTP(BatchIngestHTTPConfig{Server: testServer(t, false, 0), Clients: 2, BatchSize: 100, Bodies: 3, Loop: tiny})
		checkRun(t, res, err, 100)
	})
	t.Run("get-features", func(t *testing.T) {
		res, err := RunGetFeaturesHTTP(GetFeaturesHTTPConfig{Server: testServer(t, false, 0), Clients: 4, Keys: 1200, Loop: tiny})
		checkRun(t, res, err, 1)
		getSize = res.ResponseBytes
		res, err = RunGetFeaturesHTTP(GetFeaturesHTTPConfig{Server: testServer(t, true, getSize), Clients: 4, Keys: 1200, Loop: tiny})
		checkRun(t, res, err, 1)
	})
	t.Run("get-features-rate", func(t *testing.T) {
		res, err := RunGetFeaturesHTTPRate(GetFeaturesHTTPRateConfig{Server: testServer(t, false, 0), Rate: 1000, Workers: 8, Keys: 100, Loop: tiny})
		checkRun(t, res, err, 1)
	})
}

func TestServerRefusesNonLoopback(t *testing.T) {
	err := ServeMain([]string{"--mode", "trivial", "--response-size", "10", "--addr", "0.0.0.0:0"})
	require.ErrorContains(t, err, "not loopback")
}

func TestServerProcessErrorIncludesStderr(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	s := testServer(t, false, 0)
	s.Command = append(s.Command, "--bogus-flag")
	_, err := s.start()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bogus-flag")
}

// The open loop keeps its timetable: the number of measured requests is
// fixed by rate × duration, whatever the server does.
func TestOpenLoopSendsOnTimetable(t *testing.T) {
	var calls atomic.Int64
	res, err := openLoop("fixed", 1000, 4, Loop{Duration: 100 * time.Millisecond, Warmup: 20 * time.Millisecond, MaxOps: 1e6},
		func(int) op { return func() (int, error) { calls.Add(1); return 1, nil } })
	require.NoError(t, err)
	assert.Equal(t, int64(100), res.Ops)
	assert.Equal(t, int64(120), calls.Load())
	assert.Equal(t, 100*time.Millisecond, res.Elapsed)
}

// A stall delays the requests due during it, and the open loop charges
// each of them from its scheduled time (no coordinated omission): with a
// 50 ms stall at 1000 req/s, about 50 of 100 requests wait, so p90 is
// far above the stall-free latency. A closed loop would record one slow
// request.
func TestOpenLoopChargesStalls(t *testing.T) {
	var calls atomic.Int64
	res, err := openLoop("stall", 1000, 1, Loop{Duration: 100 * time.Millisecond, Warmup: 10 * time.Millisecond, MaxOps: 1e6},
		func(int) op {
			return func() (int, error) {
				if calls.Add(1) == 11 { // the first measured request
					time.Sleep(50 * time.Millisecond)
				}
				return 1, nil
			}
		})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, res.Latency.Max, 50*time.Millisecond)
	assert.GreaterOrEqual(t, res.Latency.P90, 10*time.Millisecond)
}

func TestClosedLoopHonoursMaxOps(t *testing.T) {
	res := closedLoop("bounded", 3, Loop{Duration: 10 * time.Second, Warmup: time.Nanosecond, MaxOps: 500},
		func(int) op { return func() (int, error) { return 2, nil } })
	assert.LessOrEqual(t, res.Ops, int64(500))
	assert.GreaterOrEqual(t, res.Ops, int64(497)) // ops that started in the warm-up nanosecond are not counted
	assert.Equal(t, 2*res.Ops, res.Records)
}

func TestSummarize(t *testing.T) {
	samples := make([]int64, 100)
	for i := range samples {
		samples[i] = int64(100 - i) // 100..1, unsorted
	}
	l := summarize(samples)
	assert.Equal(t, Latency{P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50}, Latency{P50: l.P50, P90: l.P90, P99: l.P99, Max: l.Max, Mean: l.Mean - l.Mean%50})
	assert.Equal(t, Latency{}, summarize(nil))
}

func TestSuiteInProcess(t *testing.T) {
	rows, err := RunSuite(SuiteConfig{Duration: 100 * time.Millisecond, Only: []string{"get-features-inprocess"}, TempDir: t.TempDir()})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Contains(t, []string{"pass", "FAIL"}, rows[0].Verdict)
	var buf bytes.Buffer
	require.NoError(t, WriteTable(&buf, rows))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 3)
	assert.True(t, strings.HasPrefix(lines[0], "benchmark "))
	assert.Contains(t, lines[2], "engine.GetFeatures")
}

func TestSuiteRejectsUnknownNames(t *testing.T) {
	_, err := RunSuite(SuiteConfig{Only: []string{"ingest-htp"}})
	require.ErrorContains(t, err, `unknown benchmark "ingest-htp"`)
}

func TestSuiteSelectsNeeds(t *testing.T) {
	s := &suiteRun{cfg: SuiteConfig{Only: []string{"ingest-http-rate"}}}
	for name, want := range map[string]bool{"ingest-http-rate": true, "ingest-http": true, "tidwall": true, "replay": false} {
		assert.Equal(t, want, s.selected(name), name)
	}
}

// report publishes a macro benchmark's figures; ns/op is the mean time
// per operation of the measured window.
func report(b *testing.B, res Result, err error) {
	b.Helper()
	require.NoError(b, err)
	require.Zero(b, res.Errors, "first error: %s", res.FirstError)
	if res.Ops > 0 {
		b.ReportMetric(float64(res.Elapsed)/float64(res.Ops), "ns/op")
	}
	b.ReportMetric(res.OpsPerSec, "ops/s")
	if res.Records != res.Ops {
		b.ReportMetric(res.RecordsPerSec, "records/s")
	}
	b.ReportMetric(float64(res.Latency.P50), "p50-ns")
	b.ReportMetric(float64(res.Latency.P99), "p99-ns")
}

// benchLoop is the measured window of the macro benchmarks. Each runs once
// (b.N is 1): they are bounded by time, not by b.N.
func benchLoop() Loop { return Loop{Duration: *benchDuration} }

func BenchmarkTidwallBaseline(b *testing.B) {
	res, err := RunTidwallBaseline(TidwallConfig{TempDir: b.TempDir(), Loop: benchLoop()})
	report(b, res, err)
}

func BenchmarkIngestInProcess(b *testing.B) {
	res, err := RunIngestInProcess(IngestInProcessConfig{TempDir: b.TempDir(), Loop: benchLoop()})
	report(b, res, err)
}

func BenchmarkIngestJSONInProcess(b *testing.B) {
	res, err := RunIngestJSONInProcess(IngestInProcessConfig{TempDir: b.TempDir(), Loop: benchLoop()})
	report(b, res, err)
}

func BenchmarkGetFeaturesInProcess(b *testing.B) {
	res, err := RunGetFeaturesInProcess(GetFeaturesConfig{TempDir: b.TempDir(), Loop: benchLoop()})
	report(b, res, err)
}

func BenchmarkReplay(b *testing.B) {
	res, err := RunReplay(ReplayConfig{TempDir: b.TempDir()})
	report(b, res, err)
}

func skipShort(b *testing.B) {
	if testing.Short() {
		b.Skip("starts server processes")
	}
}

// The HTTP benchmarks run featurelog, then the trivial baseline sized
// from featurelog's responses.

func BenchmarkIngestHTTP(b *testing.B) {
	skipShort(b)
	size := 0
	b.Run(modeFeaturelog, func(b *testing.B) {
		res, err := RunIngestHTTP(IngestHTTPConfig{Server: testServer(b, false, 0), Loop: benchLoop()})
		report(b, res, err)
		size = res.ResponseBytes
	})
	b.Run(modeTrivial, func(b *testing.B) {
		res, err := RunIngestHTTP(IngestHTTPConfig{Server: testServer(b, true, size), Loop: benchLoop()})
		report(b, res, err)
	})
}

func BenchmarkBatchIngestHTTP(b *testing.B) {
	skipShort(b)
	res, err := RunBatchIngestHTTP(BatchIngestHTTPConfig{Server: testServer(b, false, 0), Loop: benchLoop()})
	report(b, res, err)
}

func BenchmarkGetFeaturesHTTP(b *testing.B) {
	skipShort(b)
	size := 0
	b.Run(modeFeaturelog, func(b *testing.B) {
		res, err := RunGetFeaturesHTTP(GetFeaturesHTTPConfig{Server: testServer(b, false, 0), Loop: benchLoop()})
		report(b, res, err)
		size = res.ResponseBytes
	})
	b.Run(modeTrivial, func(b *testing.B) {
		res, err := RunGetFeaturesHTTP(GetFeaturesHTTPConfig{Server: testServer(b, true, size), Loop: benchLoop()})
		report(b, res, err)
	})
	b.Run("rate-5k/"+modeFeaturelog, func(b *testing.B) {
		res, err := RunGetFeaturesHTTPRate(GetFeaturesHTTPRateConfig{Server: testServer(b, false, 0), Loop: benchLoop()})
		report(b, res, err)
	})
	b.Run("rate-5k/"+modeTrivial, func(b *testing.B) {
		res, err := RunGetFeaturesHTTPRate(GetFeaturesHTTPRateConfig{Server: testServer(b, true, size), Loop: benchLoop()})
		report(b, res, err)
	})
}
