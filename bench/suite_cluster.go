package bench

import (
	"fmt"
	"slices"
	"time"
)

// ClusterSuiteConfig sizes the cluster rows of the suite (SPEC §10).
type ClusterSuiteConfig struct {
	// Partitions is the topic's partition count of cluster-rebalance and
	// cluster-failover. Default 12 (cluster-ingest and cluster-forward
	// use 4).
	Partitions int
	// Records is the number of records cluster-rebalance and
	// cluster-failover load before nodes move. Default 60,000.
	Records int
}

func (s *suiteRun) clusterIngest() ([]Row, error) {
	batch, err := RunClusterIngest(ClusterIngestConfig{TempDir: s.cfg.TempDir, Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	single, err := RunClusterIngest(ClusterIngestConfig{TempDir: s.cfg.TempDir, BatchSize: 1, Clients: 16, Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	c, b := &batch.Cluster, &batch.Standalone
	rows := []Row{
		{Benchmark: "ingest HTTP, 100 records/request, 4 clients: 1 cluster node, 4 partitions, kfake (vs standalone)",
			Result: recordsFigure(c), Baseline: recordsFigure(b), Ratio: fmt.Sprintf("%.2fx", c.RecordsPerSec/b.RecordsPerSec),
			Target: "reported", Verdict: verdictOnly(c, b)},
		{Benchmark: "  the same: acknowledged records applied by the node, drain included",
			Result:   fmt.Sprintf("%s records/s (drain after the window %s)", fmtRate(batch.Applied), fmtDur(batch.Drain)),
			Baseline: "-", Ratio: fmt.Sprintf("%.2fx", batch.Applied/b.RecordsPerSec), Target: "-", Verdict: "-"},
	}
	c, b = &single.Cluster, &single.Standalone
	rows = append(rows,
		Row{Benchmark: "ingest HTTP, 1 record/request, 16 clients: 1 cluster node (vs standalone)",
			Result: opsFigure(c, "req/s"), Baseline: opsFigure(b, "req/s"), Ratio: fmt.Sprintf("%.2fx", c.OpsPerSec/b.OpsPerSec),
			Target: "reported", Verdict: verdictOnly(c, b)},
		Row{Benchmark: "  the same: acknowledged records applied by the node, drain included",
			Result:   fmt.Sprintf("%s records/s (drain after the window %s)", fmtRate(single.Applied), fmtDur(single.Drain)),
			Baseline: "-", Ratio: fmt.Sprintf("%.2fx", single.Applied/b.RecordsPerSec), Target: "-", Verdict: "-"},
		Row{Benchmark: "  the same: producer time per request (1 / req/s; waiting requests share a transaction)",
			Result: fmtDur(time.Duration(float64(time.Second) / max(c.OpsPerSec, 1e-9))), Baseline: "-", Ratio: "-", Target: "-", Verdict: "-"})
	return rows, nil
}

func recordsFigure(res *Result) string {
	return fmt.Sprintf("%s records/s (p50 %s, p99 %s)", fmtRate(res.RecordsPerSec), fmtDur(res.Latency.P50), fmtDur(res.Latency.P99)) + errNote(res)
}

func (s *suiteRun) clusterForward() ([]Row, error) {
	res, err := RunClusterForward(ClusterForwardConfig{TempDir: s.cfg.TempDir, Loop: s.loop()})
	if err != nil {
		return nil, err
	}
	f, l := &res.Forwarded, &res.Local
	what := fmt.Sprintf("get-features HTTP @ %s req/s, 2 cluster nodes: forwarded to the owner (vs served by the node)", fmtRate(f.OpsPerSec))
	return []Row{
		{Benchmark: what + " p50", Result: fmtDur(f.Latency.P50) + errNote(f), Baseline: fmtDur(l.Latency.P50) + errNote(l),
			Ratio: signedDur(f.Latency.P50 - l.Latency.P50), Target: "reported", Verdict: verdictOnly(f, l)},
		{Benchmark: what + " p99", Result: fmtDur(f.Latency.P99), Baseline: fmtDur(l.Latency.P99),
			Ratio: signedDur(f.Latency.P99 - l.Latency.P99), Target: "reported", Verdict: verdictOnly(f, l)},
	}, nil
}

func (s *suiteRun) clusterRebalance() ([]Row, error) {
	res, err := RunClusterRebalance(ClusterRebalanceConfig{TempDir: s.cfg.TempDir, Partitions: s.cfg.Cluster.Partitions, Records: s.cfg.Cluster.Records})
	if err != nil {
		return nil, err
	}
	perPart := res.Records / res.Partitions
	size := fmt.Sprintf("%d partitions of ~%s records (~%d Kafka records) each", res.Partitions, fmtCount(perPart), res.KafkaRecords/res.Partitions)
	leaveOK := res.Leave.Took <= 60*time.Second && res.Leave.Errors == 0
	return []Row{
		{Benchmark: "rebalance, 1 of 3 nodes stops, " + size + ": every partition served again after",
			Result: fmt.Sprintf("%s (its Close took %s)", fmtDur(res.Leave.Took), fmtDur(res.Leave.Change)) + phaseErr(&res.Leave), Baseline: "-", Ratio: "-", Target: "<= 60s (SPEC §10)", Verdict: passFail(leaveOK)},
		{Benchmark: fmt.Sprintf("  503 window per moved partition, as a reader sees it (%d moved, %d refused reads)", res.Leave.Moved, res.Leave.Refused),
			Result: windows(res.Leave.Windows), Baseline: "-", Ratio: "-", Target: "-", Verdict: "-"},
		{Benchmark: "rebalance, a new node joins the 2 (replays each partition it gets from the start): every partition served after",
			Result: fmt.Sprintf("%s (cluster.Open took %s)", fmtDur(res.Join.Took), fmtDur(res.Join.Change)) + phaseErr(&res.Join), Baseline: "-", Ratio: "-", Target: "reported", Verdict: passFail(res.Join.Errors == 0)},
		{Benchmark: fmt.Sprintf("  503 window per moved partition, as a reader sees it (%d moved, %d refused reads)", res.Join.Moved, res.Join.Refused),
			Result: windows(res.Join.Windows), Baseline: "-", Ratio: "-", Target: "-", Verdict: "-"},
	}, nil
}

// failoverSessions are the killed node's session timeouts cluster-failover
// measures: the Kafka client's default (0: 45s), `serve --cluster`'s
// default (10s), and 6s, the smallest a broker accepts by default
// (group.min.session.timeout.ms).
var failoverSessions = []time.Duration{0, 10 * time.Second, 6 * time.Second}

func (s *suiteRun) clusterFailover() ([]Row, error) {
	var rows []Row
	for _, st := range failoverSessions {
		res, err := RunClusterFailover(ClusterFailoverConfig{TempDir: s.cfg.TempDir, Command: s.cfg.Command, SessionTimeout: st,
			Partitions: s.cfg.Cluster.Partitions, Records: s.cfg.Cluster.Records})
		if err != nil {
			return rows, err
		}
		session := "the Kafka client's default 45s"
		if st > 0 {
			session = fmtDur(st)
		}
		if st == 10*time.Second {
			session += ", serve --cluster's default"
		}
		perPart := res.Records / res.Partitions
		size := fmt.Sprintf("%d partitions of ~%s records (~%d Kafka records) each", res.Partitions, fmtCount(perPart), res.KafkaRecords/res.Partitions)
		ok := res.Kill.Took <= 60*time.Second && res.Kill.Errors == 0
		rows = append(rows,
			Row{Benchmark: fmt.Sprintf("failover, 1 of 3 nodes SIGKILLed (session timeout %s), %s: every partition served again after", session, size),
				Result: fmtDur(res.Kill.Took) + phaseErr(&res.Kill), Baseline: "-", Ratio: "-", Target: "<= 60s (SPEC §10)", Verdict: passFail(ok)},
			Row{Benchmark: fmt.Sprintf("  503 window per moved partition, as a reader sees it (%d moved, %d refused reads)", res.Kill.Moved, res.Kill.Refused),
				Result: windows(res.Kill.Windows), Baseline: "-", Ratio: "-", Target: "-", Verdict: "-"})
	}
	return rows, nil
}

func phaseErr(p *RebalancePhase) string {
	if p.Errors == 0 {
		return ""
	}
	return fmt.Sprintf(" [%d failed reads: %.120s]", p.Errors, p.FirstError)
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}

// windows prints the min, median and max of sorted windows.
func windows(w []time.Duration) string {
	if len(w) == 0 {
		return "none refused"
	}
	w = slices.Clone(w)
	slices.Sort(w)
	return fmt.Sprintf("min %s, p50 %s, max %s (%d partitions)", fmtDur(w[0]), fmtDur(w[len(w)/2]), fmtDur(w[len(w)-1]), len(w))
}
