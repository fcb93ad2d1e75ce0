package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	apiclient "github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
)

// The jobs benchmarks (issue #11), on the historical workload's 20M
// events over 1M keys in random event-time order (BuildHistoricalData),
// each run as a user runs it, in a process of its own:
//
//   - replay: `featurelog replay` of the workload's log into a new data
//     directory (three views built in one pass over the log);
//   - backfill: a node serving that directory gets an apply that adds an
//     aggregate view; the backfill job's rate and the node's peak RSS, and
//     the p99 of durable single-record ingest requests before and during
//     the backfill;
//   - materialize: a 20M-row Parquet file of the same events, loaded into
//     a view by a materialization job on the same node.

// JobsConfig configures RunJobs.
type JobsConfig struct {
	// Data configures the historical data set; CacheDir defaults to where
	// `featurelog bench historical` caches the same size under CacheRoot.
	Data      HistoricalDataConfig
	CacheRoot string
	// Command is the argv prefix that runs `featurelog bench server`;
	// Featurelog the featurelog binary (for `featurelog replay`).
	Command    []string
	Featurelog string
	// TempDir is where the replayed directory and the Parquet file go
	// (removed afterwards). Default os.TempDir().
	TempDir string
	// Window is how long ingest latency is measured before the backfill.
	// Default 5s.
	Window time.Duration
	// IngestClients send single-record ingest requests back to back
	// during both windows. Default 4.
	IngestClients int
	// BackfillWorkers is the node's engine.Options.BackfillWorkers (0: the
	// default, GOMAXPROCS/2).
	BackfillWorkers int
	// Progress receives a line as each step starts. Default none.
	Progress io.Writer
}

// EnsureDefaults fills in unset fields.
func (c *JobsConfig) EnsureDefaults() {
	c.Data.EnsureDefaults()
	if c.Window == 0 {
		c.Window = 5 * time.Second
	}
	if c.IngestClients == 0 {
		c.IngestClients = 4
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	c.Data.Progress = c.Progress
}

// RunJobs runs the jobs benchmarks and returns their rows.
func RunJobs(cfg JobsConfig) ([]Row, error) {
	cfg.EnsureDefaults()
	if len(cfg.Command) == 0 || cfg.Featurelog == "" {
		return nil, errors.New("bench: JobsConfig.Command and Featurelog are required")
	}
	h, work, err := historicalWork(&cfg.Data, cfg.CacheRoot, cfg.TempDir, "jobs")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	var rows []Row
	replayed := filepath.Join(work, "replayed")
	row, err := benchReplay(&cfg, h, work, replayed)
	if err != nil {
		return rows, err
	}
	rows = append(rows, row...)
	more, err := benchBackfillAndMaterialize(&cfg, h, work, replayed)
	return append(rows, more...), err
}

// historicalWork builds (or reuses) the historical data set of data,
// cached under cacheRoot as by bench historical, and makes a work
// directory under tempDir, which the caller removes.
func historicalWork(data *HistoricalDataConfig, cacheRoot, tempDir, name string) (*HistoricalData, string, error) {
	if data.CacheDir == "" {
		data.CacheDir = historicalCacheDir(cacheRoot, data.Events, data.Keys)
	}
	h, err := BuildHistoricalData(*data)
	if err != nil {
		return nil, "", err
	}
	work, err := os.MkdirTemp(tempDir, "featurelog-bench-"+name+"-")
	return h, work, err
}

// benchReplay times `featurelog replay` of the workload's log.
func benchReplay(cfg *JobsConfig, h *HistoricalData, work, into string) ([]Row, error) {
	repoFile := filepath.Join(work, histRepoName)
	if err := os.WriteFile(repoFile, []byte(histRepo), 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "bench: replay of %s events into a new data directory\n", fmtCount(cfg.Data.Events))
	cmd := exec.Command(cfg.Featurelog, "replay", "--log", h.Dir, "--data", into, "--repo", repoFile, "--quiet")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("bench: featurelog replay: %w\n%s", err, out.String())
	}
	elapsed := time.Since(t0)
	rss := int64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) << 10
	rate := float64(cfg.Data.Events) / elapsed.Seconds()
	return []Row{
		{Benchmark: fmt.Sprintf("replay: %s-event log into a new directory, 3 views (featurelog replay, fresh process)", fmtCount(cfg.Data.Events)),
			Result: fmt.Sprintf("%s events/s (%s)", fmtRate(rate), fmtDur(elapsed)), Baseline: "-", Ratio: "-",
			Target: "≥ 1M events/s", Verdict: verdict(rate >= 1e6)},
		{Benchmark: "replay: peak RSS", Result: fmtMB(rss), Baseline: "-", Ratio: "-", Target: "-", Verdict: "-"},
	}, nil
}

// jobsView is the view the backfill benchmark adds.
const jobsView = `  - name: user_amounts_7d
    source: events
    entities: [user]
    timestamp_field: timestamp
    features:
      - aggregate: {input: amount, function: count, window: 7d}
      - aggregate: {input: amount, function: sum, window: 7d}
      - aggregate: {input: amount, function: max, window: 1d}
`

// jobsBatchSource and jobsBatchView are the source with batch files and
// its view, for the materialization benchmark.
const jobsBatchSource = `  - name: events_batch
    schema:
      - {name: user_id, type: String}
      - {name: timestamp, type: Timestamp}
      - {name: amount, type: Float64}
    batch:
      uri: %q
      format: parquet
      timestamp_field: timestamp
`

const jobsBatchView = `  - name: batch_amounts
    source: events_batch
    entities: [user]
    timestamp_field: timestamp
    features:
      - aggregate: {input: amount, function: count, window: 1d}
      - aggregate: {input: amount, function: sum, window: 1d}
`

func withViews(sources, views string) string {
	r := strings.Replace(histRepo, "feature_views:\n", sources+"\nfeature_views:\n", 1)
	return strings.Replace(r, "feature_views:\n", "feature_views:\n"+views, 1)
}

func benchBackfillAndMaterialize(cfg *JobsConfig, h *HistoricalData, work, dir string) ([]Row, error) {
	srv := Server{Command: cfg.Command, DataDir: dir, BackfillWorkers: cfg.BackfillWorkers}
	p, err := srv.start()
	if err != nil {
		return nil, err
	}
	defer p.stop()
	api, err := newNodeAPI(p.addr)
	if err != nil {
		return nil, err
	}

	fmt.Fprintf(cfg.Progress, "bench: durable single-record ingest, %d clients, %s idle\n", cfg.IngestClients, cfg.Window)
	load := startIngestLoad(p, cfg.IngestClients)
	time.Sleep(cfg.Window)
	idle := load.cut()
	statusPath := "/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status"
	idleRSS := statusBytes(statusPath, "VmRSS")

	fmt.Fprintf(cfg.Progress, "bench: apply a new aggregate view: its backfill over the log, ingest going on\n")
	jobs, err := api.apply(histRepoName, []byte(withViews("", jobsView)))
	if err != nil {
		load.stop()
		return nil, err
	}
	if len(jobs) != 1 {
		load.stop()
		return nil, fmt.Errorf("bench: the apply started %d jobs, want 1", len(jobs))
	}
	job, err := waitBenchJob(api, jobs[0])
	during := load.cut()
	load.stop()
	if err != nil {
		return nil, err
	}
	rss := statusBytes(statusPath, "VmHWM")
	took := job.FinishedAt.Sub(*job.StartedAt)
	rate := float64(job.Result.LogRecords) / took.Seconds()
	idleP99, duringP99 := idle.Latency.P99, during.Latency.P99
	rows := []Row{
		{Benchmark: fmt.Sprintf("backfill: new aggregate view over %s logged events, beside ingest (node, HTTP apply)", fmtCount(int(job.Result.LogRecords))),
			Result: fmt.Sprintf("%s events/s (%s)", fmtRate(rate), fmtDur(took)), Baseline: "-", Ratio: "-",
			Target: "≥ 1M events/s", Verdict: verdict(rate >= 1e6)},
		{Benchmark: "backfill: node peak RSS (VmHWM; baseline: its RSS serving, before the apply)", Result: fmtMB(rss), Baseline: fmtMB(idleRSS),
			Ratio: "+" + fmtMB(rss-idleRSS), Target: "≤ 1 GB", Verdict: verdict(rss <= 1<<30)},
		{Benchmark: fmt.Sprintf("backfill: durable ingest p99 during it vs idle (%d clients, 1 record/request)", cfg.IngestClients),
			Result: fmt.Sprintf("%s (%d requests)", fmtDur(duringP99), during.Requests), Baseline: fmt.Sprintf("%s idle (%d requests)", fmtDur(idleP99), idle.Requests),
			Ratio: fmt.Sprintf("%.2fx", float64(duringP99)/float64(max(idleP99, 1))), Target: "≤ 2x", Verdict: verdict(duringP99 <= 2*idleP99)},
	}

	batchDir := filepath.Join(work, "batch")
	if err := os.MkdirAll(batchDir, 0o755); err != nil {
		return rows, err
	}
	if err := writeBenchParquet(filepath.Join(batchDir, "history.parquet"), 1, h.Start, time.Hour, cfg.Data.Keys); err != nil {
		return rows, err
	}
	repo := withViews(fmt.Sprintf(jobsBatchSource, filepath.Join(batchDir, "*.parquet")), jobsView+jobsBatchView)
	jobs, err = api.apply(histRepoName, []byte(repo))
	if err != nil {
		return rows, err
	}
	for _, j := range jobs {
		if _, err := waitBenchJob(api, j); err != nil {
			return rows, err
		}
	}
	start := time.Now().UTC().Add(time.Minute)
	fmt.Fprintf(cfg.Progress, "bench: writing a %s-row Parquet file\n", fmtCount(cfg.Data.Events))
	if err := writeBenchParquet(filepath.Join(batchDir, "export.parquet"), cfg.Data.Events, start, cfg.Data.Span, cfg.Data.Keys); err != nil {
		return rows, err
	}
	st, err := os.Stat(filepath.Join(batchDir, "export.parquet"))
	if err != nil {
		return rows, err
	}
	fmt.Fprintf(cfg.Progress, "bench: materialization of the file's rows into a view\n")
	mj, err := api.materialize("histbench", "batch_amounts", apiclient.MaterializationRequest{StartTime: start, EndTime: start.Add(cfg.Data.Span + time.Hour)})
	if err != nil {
		return rows, err
	}
	mj, err = waitBenchJob(api, mj)
	if err != nil {
		return rows, err
	}
	took = mj.FinishedAt.Sub(*mj.StartedAt)
	loaded := mj.Result.BatchRows - 1 // the history file's row is reloaded too
	rate = float64(loaded) / took.Seconds()
	return append(rows, Row{
		Benchmark: fmt.Sprintf("materialization: %s rows from one Parquet file (%s) into a view (node, HTTP)", fmtCount(int(loaded)), fmtMB(st.Size())),
		Result:    fmt.Sprintf("%s rows/s (%s)", fmtRate(rate), fmtDur(took)), Baseline: "-", Ratio: "-",
		Target: "≥ 1M rows/s", Verdict: verdict(rate >= 1e6)}), nil
}

// waitBenchJob waits for a job to end and fails unless it succeeded.
func waitBenchJob(api nodeAPI, j engine.Job) (engine.Job, error) {
	for {
		got, err := api.waitJob(j.Workspace, j.ID, 30*time.Second)
		if err != nil {
			return got, err
		}
		if got.State.Final() {
			if got.State != engine.JobSuccess {
				msg := ""
				if got.Error != nil {
					msg = *got.Error
				}
				return got, fmt.Errorf("bench: %s job %s ended %s: %s", got.Type, got.ID, got.State, msg)
			}
			return got, nil
		}
	}
}

type benchParquetRow struct {
	User   string    `parquet:"user_id"`
	TS     time.Time `parquet:"timestamp,timestamp(millisecond)"`
	Amount float64   `parquet:"amount"`
}

// writeBenchParquet writes n rows of the workload's shape, times uniform
// in [start, start+span), users uniform over keys.
func writeBenchParquet(path string, n int, start time.Time, span time.Duration, keys int) error {
	rng := rand.New(rand.NewPCG(uint64(n), 11))
	spanMs := max(int64(span/time.Millisecond), 1)
	return writeParquetRows(path, n, func(buf []benchParquetRow) {
		for i := range buf {
			buf[i] = benchParquetRow{User: histKey(rng.IntN(keys)), TS: start.Add(time.Duration(rng.Int64N(spanMs)) * time.Millisecond),
				Amount: float64(1 + rng.IntN(100))}
		}
	})
}

// requestLoad sends requests back to back from a few clients, recording
// each latency, until stopped.
type requestLoad struct {
	mu      sync.Mutex
	samples []int64
	errs    atomic.Int64
	quit    chan struct{}
	wg      sync.WaitGroup
}

// loadWindow is what a window of the load saw.
type loadWindow struct {
	Requests int
	Latency  Latency
}

// startLoad starts clients posting body(client, n) to url, n counting the
// requests of all clients from 1.
func startLoad(clients int, url string, body func(client int, n int64) []byte) *requestLoad {
	l := &requestLoad{quit: make(chan struct{})}
	c := newClient(clients)
	var seq atomic.Int64
	for w := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.quit:
					return
				default:
				}
				b := body(w, seq.Add(1))
				t0 := time.Now()
				_, err := c.post(w, url, b)
				d := time.Since(t0)
				if err != nil {
					l.errs.Add(1)
					continue
				}
				l.mu.Lock()
				l.samples = append(l.samples, int64(d))
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// startIngestLoad sends durable single-record ingest requests.
func startIngestLoad(p *process, clients int) *requestLoad {
	return startLoad(clients, p.url("/ingest"), func(_ int, i int64) []byte {
		return fmt.Appendf(nil, `{"workspace_name":%q,"dry_run":false,"records":{%q:[{"record":{"user_id":%q,"timestamp":%q,"amount":%d}}]}}`,
			histWorkspace, histSource, histKey(int(i)%1000), time.Now().UTC().Format(time.RFC3339Nano), i%100)
	})
}

// cut returns the window since the last cut and starts a new one.
func (l *requestLoad) cut() loadWindow {
	l.mu.Lock()
	s := l.samples
	l.samples = nil
	l.mu.Unlock()
	slices.Sort(s)
	return loadWindow{Requests: len(s), Latency: summarize(s)}
}

func (l *requestLoad) stop() {
	close(l.quit)
	l.wg.Wait()
}
