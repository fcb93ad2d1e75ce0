package bench

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	apiclient "github.com/featurelog/featurelog/client"
)

// The deletion benchmark (issue #12): a node serving a copy of the
// historical workload's directory (20M events over 1M keys, in random
// event-time order) is asked over HTTP to delete 10,000 random keys,
// online and offline, while clients keep sending single-record ingest
// requests and get-features reads. It reports the job's wall time, the
// node's peak RSS, and the p99 of both loads during the job against the
// same loads before it.

// DeleteConfig configures RunDelete.
type DeleteConfig struct {
	// Data configures the historical data set; CacheDir defaults to where
	// `featurelog bench historical` caches the same size under CacheRoot.
	Data      HistoricalDataConfig
	CacheRoot string
	// Command is the argv prefix that runs `featurelog bench server`.
	Command []string
	// TempDir is where the copy of the data directory goes (removed
	// afterwards). Default os.TempDir().
	TempDir string
	// Keys is how many keys the deletion lists. Default 10,000.
	Keys int
	// Window is how long the loads run before the job: long enough for
	// the node's caches to fill (their growth is not the job's). Default
	// 40s.
	Window time.Duration
	// IngestClients and ReadClients run the two loads. Default 2 each.
	IngestClients, ReadClients int
	// Progress receives a line as each step starts. Default none.
	Progress io.Writer
}

// EnsureDefaults fills in unset fields.
func (c *DeleteConfig) EnsureDefaults() {
	c.Data.EnsureDefaults()
	if c.Keys == 0 {
		c.Keys = 10_000
	}
	if c.Window == 0 {
		c.Window = 40 * time.Second
	}
	if c.IngestClients == 0 {
		c.IngestClients = 2
	}
	if c.ReadClients == 0 {
		c.ReadClients = 2
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	c.Data.Progress = c.Progress
}

// RunDelete runs the deletion benchmark and returns its rows.
func RunDelete(cfg DeleteConfig) ([]Row, error) {
	cfg.EnsureDefaults()
	if len(cfg.Command) == 0 {
		return nil, errors.New("bench: DeleteConfig.Command is required")
	}
	h, work, err := historicalWork(&cfg.Data, cfg.CacheRoot, cfg.TempDir, "delete")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	dir := filepath.Join(work, "data")
	fmt.Fprintf(cfg.Progress, "bench: copying the %s-event data directory\n", fmtCount(cfg.Data.Events))
	if out, err := exec.Command("cp", "-a", h.Dir, dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("bench: copying %s: %w\n%s", h.Dir, err, out)
	}
	srv := Server{Command: cfg.Command, DataDir: dir}
	p, err := srv.start()
	if err != nil {
		return nil, err
	}
	defer p.stop()
	api, err := newNodeAPI(p.addr)
	if err != nil {
		return nil, err
	}

	fmt.Fprintf(cfg.Progress, "bench: %d ingest and %d get-features clients, %s before the job\n", cfg.IngestClients, cfg.ReadClients, cfg.Window)
	ingest := startIngestLoad(p, cfg.IngestClients)
	reads := startFeatureLoad(p, cfg.ReadClients, cfg.Data.Keys)
	time.Sleep(cfg.Window)
	idleIngest, idleRead := ingest.cut(), reads.cut()
	statusPath := "/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status"
	idleRSS := statusBytes(statusPath, "VmHWM")

	req := apiclient.DeleteKeysRequest{Keys: deleteBenchKeys(cfg.Keys, cfg.Data.Keys)}
	fmt.Fprintf(cfg.Progress, "bench: deleting %d keys (online and offline)\n", cfg.Keys)
	t0 := time.Now()
	j, err := api.deleteKeys(histWorkspace, "user_amounts", req)
	if err == nil {
		j, err = waitBenchJob(api, j)
	}
	wall := time.Since(t0)
	duringIngest, duringRead := ingest.cut(), reads.cut()
	ingest.stop()
	reads.stop()
	if err != nil {
		return nil, err
	}
	rss := statusBytes(statusPath, "VmHWM")
	res := j.Result
	ratio := func(a, b time.Duration) string { return fmt.Sprintf("%.2fx", float64(a)/float64(max(b, 1))) }
	return []Row{
		{Benchmark: fmt.Sprintf("delete_keys: %d keys of %s, online+offline, from %s logged events (node, HTTP; %d keys found, %d records erased, %d log and %d view segments rewritten)",
			cfg.Keys, fmtCount(cfg.Data.Keys), fmtCount(cfg.Data.Events), res.KeysFound, res.RecordsErased, res.LogSegmentsRewritten, res.SegmentsRewritten),
			Result: fmtDur(j.FinishedAt.Sub(*j.StartedAt)), Baseline: fmt.Sprintf("%s request to end", fmtDur(wall)), Ratio: "-",
			Target: "≤ 60 s", Verdict: verdict(j.FinishedAt.Sub(*j.StartedAt) <= time.Minute)},
		{Benchmark: "delete_keys: node peak RSS (VmHWM; baseline: its peak serving the same loads before the job)", Result: fmtMB(rss), Baseline: fmtMB(idleRSS),
			Ratio: "+" + fmtMB(rss-idleRSS), Target: "≤ 1 GB", Verdict: verdict(rss <= 1<<30)},
		{Benchmark: fmt.Sprintf("delete_keys: get-features p99 during the job vs before (%d clients, 1 key/request)", cfg.ReadClients),
			Result:   fmt.Sprintf("%s (%d requests)", fmtDur(duringRead.Latency.P99), duringRead.Requests),
			Baseline: fmt.Sprintf("%s (%d requests)", fmtDur(idleRead.Latency.P99), idleRead.Requests),
			Ratio:    ratio(duringRead.Latency.P99, idleRead.Latency.P99), Target: "≤ 2x", Verdict: verdict(duringRead.Latency.P99 <= 2*idleRead.Latency.P99)},
		{Benchmark: fmt.Sprintf("delete_keys: durable ingest p99 during the job vs before (%d clients, 1 record/request)", cfg.IngestClients),
			Result:   fmt.Sprintf("%s (%d requests)", fmtDur(duringIngest.Latency.P99), duringIngest.Requests),
			Baseline: fmt.Sprintf("%s (%d requests)", fmtDur(idleIngest.Latency.P99), idleIngest.Requests),
			Ratio:    ratio(duringIngest.Latency.P99, idleIngest.Latency.P99), Target: "≤ 2x", Verdict: verdict(duringIngest.Latency.P99 <= 2*idleIngest.Latency.P99)},
	}, nil
}

// deleteBenchKeys draws n distinct keys of the workload's users.
func deleteBenchKeys(n, users int) []map[string]any {
	rng := rand.New(rand.NewPCG(12, 34))
	seen := map[int]bool{}
	out := make([]map[string]any, 0, n)
	for len(out) < n && len(seen) < users {
		u := rng.IntN(users)
		if seen[u] {
			continue
		}
		seen[u] = true
		out = append(out, map[string]any{"user_id": histKey(u)})
	}
	return out
}

// startFeatureLoad sends get-features requests for random users.
func startFeatureLoad(p *process, clients, users int) *requestLoad {
	rngs := make([]*rand.Rand, clients)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(uint64(w), 99))
	}
	return startLoad(clients, p.url("/api/v1/feature-service/get-features"), func(w int, _ int64) []byte {
		return fmt.Appendf(nil, `{"params":{"workspace_name":%q,"feature_service_name":%q,"join_key_map":{"user_id":%q}}}`,
			histWorkspace, histService, histKey(rngs[w].IntN(users)))
	})
}
