package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/featurelog/featurelog/bench"
)

func benchCmd() *cobra.Command {
	var duration time.Duration
	var only, cpuprofile, serverProfiles string
	var clusterCfg bench.ClusterSuiteConfig
	cmd := &cobra.Command{
		Use:     "bench",
		Example: "  featurelog bench\n  featurelog bench --only ingest-http-rate,agg-ingest --duration 10s",
		Short:   "Run the benchmarks and print a table",
		Long: "Runs the benchmarks of SPEC §9 (package bench), each beside the baseline it is judged\n" +
			"against, measured in the same run, and prints: benchmark, result, baseline, ratio, target, verdict.\n" +
			"HTTP benchmarks start the server under test and the trivial baseline server as child\n" +
			"processes of this binary, on 127.0.0.1. Benchmarks: " + strings.Join(bench.Names(), ", ") + ".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(duration, only, cpuprofile, serverProfiles, clusterCfg)
		},
	}
	cmd.Flags().DurationVar(&duration, "duration", 5*time.Second, "measured window of each benchmark loop")
	cmd.Flags().StringVar(&only, "only", "", "comma-separated benchmarks to run (and those they need)")
	cmd.Flags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of this process (in-process benchmarks and the HTTP client) to FILE")
	cmd.Flags().StringVar(&serverProfiles, "server-cpuprofile-dir", "", "write a CPU profile of every server process to DIR/<benchmark>-<server>.prof")
	cmd.Flags().IntVar(&clusterCfg.Partitions, "cluster-partitions", 12, "cluster-rebalance and cluster-failover: the topic's partition count")
	cmd.Flags().IntVar(&clusterCfg.Records, "cluster-records", 60_000, "cluster-rebalance and cluster-failover: records loaded (spread over the partitions) before nodes move")
	cmd.AddCommand(benchServerCmd(), benchHistoricalCmd(), benchHistoricalChildCmd(), benchOverloadCmd(), benchSlowlorisCmd(), benchJobsCmd(), benchDeleteCmd(),
		benchStreamCmd(), benchStreamServerCmd(), benchPITJoinCmd())
	return cmd
}

// benchHistoricalCmd runs the historical benchmarks (bench.RunHistorical).
func benchHistoricalCmd() *cobra.Command {
	var cfg bench.HistoricalConfig
	var only string
	cmd := &cobra.Command{
		Use:     "historical",
		Example: "  featurelog bench historical --dir /tmp/fbench --only compaction-reads --duration 10s",
		Short:   "Run the historical-retrieval benchmarks (spine join, open, disk, reads during compaction)",
		Long: "Runs the historical benchmarks (package bench, RunHistorical) and prints the same table as bench.\n" +
			"Data directories are built once and cached under --dir, keyed by size. Benchmarks: " +
			strings.Join(bench.HistoricalNames(), ", ") + ".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			command, err := selfCommand("historical-child")
			if err != nil {
				return err
			}
			cfg.Command, cfg.Progress, cfg.Only = command, os.Stderr, splitNames(only)
			rows, err := bench.RunHistorical(cfg)
			return writeRows(rows, err)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Events, "events", 20_000_000, "events in the spine join's data set")
	f.IntVar(&cfg.Keys, "keys", 1_000_000, "users in the spine join's data set")
	f.IntVar(&cfg.SpineRows, "spine-rows", 1_000_000, "spine rows")
	f.BoolVar(&cfg.Rebuild, "rebuild", false, "rebuild the cached data directories")
	f.StringVar(&cfg.TempDir, "dir", "", "where data directories are cached (default the system temp dir)")
	f.StringVar(&only, "only", "", "comma-separated benchmarks to run")
	f.StringVar(&cfg.ChildCPUProfile, "cpuprofile", "", "write a CPU profile of the full-size join child's joins to FILE")
	f.DurationVar(&cfg.Compaction.Duration, "duration", 5*time.Second, "measured window of each compaction-reads loop")
	return cmd
}

// benchOverloadCmd runs the admission-control benchmark (bench.RunOverload).
func benchOverloadCmd() *cobra.Command {
	var cfg bench.OverloadConfig
	cmd := &cobra.Command{
		Use:     "overload",
		Example: "  featurelog bench overload --duration 10s",
		Short:   "Offer twice the sustainable ingest rate: admitted, 429s, admitted p99, peak RSS, acks lost",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			command, err := selfCommand("server")
			if err != nil {
				return err
			}
			cfg.Command, cfg.Progress = command, os.Stderr
			res, err := bench.RunOverload(cfg)
			if res == nil {
				return err
			}
			return writeRows(bench.OverloadRows(res), err)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured window of each loop")
	f.IntVar(&cfg.Clients, "clients", 0, "closed-loop concurrency that finds the sustainable rate (0: 64)")
	f.Float64Var(&cfg.Factor, "factor", 0, "offered rate as a multiple of the sustainable rate (0: 2)")
	f.IntVar(&cfg.BatchSize, "batch", 0, "records per request (0: 100)")
	return cmd
}

// benchSlowlorisCmd runs the slowloris benchmark (bench.RunSlowloris).
func benchSlowlorisCmd() *cobra.Command {
	var cfg bench.SlowlorisConfig
	cmd := &cobra.Command{
		Use:     "slowloris",
		Example: "  featurelog bench slowloris --duration 10s",
		Short:   "p99 of get-features and ingest with and without 200 connections trickling headers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			command, err := selfCommand("server")
			if err != nil {
				return err
			}
			cfg.Command, cfg.Progress = command, os.Stderr
			res, err := bench.RunSlowloris(cfg)
			if res == nil {
				return err
			}
			return writeRows(bench.SlowlorisRows(res), err)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.Duration, "duration", 5*time.Second, "measured window of each loop")
	f.IntVar(&cfg.Conns, "conns", 0, "slowloris connections (0: 200)")
	f.IntVar(&cfg.Clients, "clients", 0, "concurrency of the normal requests (0: 4)")
	return cmd
}

// benchHistoricalChildCmd is the hidden entry point of the historical
// benchmarks' child processes (bench.HistoricalChildMain).
func benchHistoricalChildCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "historical-child",
		Short:              "Open a data directory and run a spine join for the historical benchmarks (internal)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return bench.HistoricalChildMain(args)
		},
	}
}

func splitNames(list string) []string {
	var out []string
	for _, name := range strings.Split(list, ",") {
		if name = strings.TrimSpace(name); name != "" {
			out = append(out, name)
		}
	}
	return out
}

// writeRows prints the table of rows, if any, and returns err.
func writeRows(rows []bench.Row, err error) error {
	if len(rows) > 0 {
		if werr := bench.WriteTable(os.Stdout, rows); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// benchServerCmd is the hidden entry point of the server processes the
// HTTP benchmarks start: featurelog bench server --mode ... (bench.ServeMain).
func benchServerCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "server",
		Short:              "Serve featurelog or the trivial baseline for the HTTP benchmarks (internal)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return bench.ServeMain(args)
		},
	}
}

// selfCommand is the command line that runs this binary's hidden
// `bench <sub>` entry point, for benchmarks that start child processes.
func selfCommand(sub string) ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this binary to start the benchmark's child processes: %w", err)
	}
	return []string{self, "bench", sub}, nil
}

func runBench(duration time.Duration, only, cpuprofile, serverProfiles string, clusterCfg bench.ClusterSuiteConfig) error {
	command, err := selfCommand("server")
	if err != nil {
		return err
	}
	cfg := bench.SuiteConfig{Duration: duration, Command: command, Progress: os.Stderr,
		ServerProfileDir: serverProfiles, Cluster: clusterCfg}
	for _, name := range strings.Split(only, ",") {
		if name = strings.TrimSpace(name); name != "" {
			cfg.Only = append(cfg.Only, name)
		}
	}
	if cpuprofile != "" {
		stop, err := bench.StartCPUProfile(cpuprofile)
		if err != nil {
			return err
		}
		defer stop()
	}
	rows, err := bench.RunSuite(cfg)
	if len(rows) > 0 {
		if werr := bench.WriteTable(os.Stdout, rows); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// cacheFlags adds the flags of the historical workload's cache, shared
// with bench historical.
func cacheFlags(f *pflag.FlagSet, root *string, rebuild *bool) {
	f.StringVar(root, "dir", "", "where the workload's data directory is cached, as by bench historical (default the system temp dir)")
	f.BoolVar(rebuild, "rebuild", false, "rebuild the cached data directory")
}

// benchDeleteCmd runs the deletion benchmark (bench.RunDelete).
func benchDeleteCmd() *cobra.Command {
	var cfg bench.DeleteConfig
	cmd := &cobra.Command{
		Use:     "delete",
		Example: "  featurelog bench delete --dir /tmp/fbench",
		Short:   "delete_keys of 10,000 keys from the 20M-event workload, with ingest and get-features p99 beside it",
		Long: "Runs the deletion benchmark (package bench, RunDelete): a node serving a copy of the historical\n" +
			"workload's directory (cached under --dir, shared with bench historical) deletes --keys random keys\n" +
			"online and offline over HTTP, while clients send single-record ingest requests and get-features\n" +
			"reads: the job's wall time, the node's peak RSS, and both loads' p99 during the job against before it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			command, err := selfCommand("server")
			if err != nil {
				return err
			}
			cfg.Command, cfg.Progress = command, os.Stderr
			rows, err := bench.RunDelete(cfg)
			return writeRows(rows, err)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Data.Events, "events", 20_000_000, "events in the log")
	f.IntVar(&cfg.Data.Keys, "users", 1_000_000, "users")
	f.IntVar(&cfg.Keys, "keys", 10_000, "keys to delete")
	cacheFlags(f, &cfg.CacheRoot, &cfg.Data.Rebuild)
	f.StringVar(&cfg.TempDir, "tmp", "", "where the copy of the data directory goes (default the system temp dir)")
	f.DurationVar(&cfg.Window, "window", 40*time.Second, "how long the loads run before the job (the node's caches fill meanwhile)")
	f.IntVar(&cfg.IngestClients, "ingest-clients", 2, "clients sending single-record ingest requests")
	f.IntVar(&cfg.ReadClients, "read-clients", 2, "clients sending get-features requests")
	return cmd
}

// benchJobsCmd runs the jobs benchmarks (bench.RunJobs).
func benchJobsCmd() *cobra.Command {
	var cfg bench.JobsConfig
	cmd := &cobra.Command{
		Use:     "jobs",
		Example: "  featurelog bench jobs --dir /tmp/fbench",
		Short:   "Replay, backfill (with ingest p99 beside it) and materialization over the 20M-event workload",
		Long: "Runs the jobs benchmarks (package bench, RunJobs) on the historical workload (cached under --dir,\n" +
			"shared with bench historical): featurelog replay of its log into a new directory; a node serving\n" +
			"that directory, applied a new aggregate view (backfill rate, peak RSS, durable ingest p99 beside\n" +
			"it against idle); a materialization of a Parquet file of as many rows.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			command, err := selfCommand("server")
			if err != nil {
				return err
			}
			cfg.Command, cfg.Featurelog, cfg.Progress = command, command[0], os.Stderr
			rows, err := bench.RunJobs(cfg)
			return writeRows(rows, err)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Data.Events, "events", 20_000_000, "events in the log (and rows in the Parquet file)")
	f.IntVar(&cfg.Data.Keys, "keys", 1_000_000, "users")
	cacheFlags(f, &cfg.CacheRoot, &cfg.Data.Rebuild)
	f.StringVar(&cfg.TempDir, "tmp", "", "where the replayed directory and the Parquet file go (default the system temp dir)")
	f.DurationVar(&cfg.Window, "window", 5*time.Second, "ingest latency window before the backfill")
	f.IntVar(&cfg.IngestClients, "clients", 4, "clients sending single-record ingest requests")
	f.IntVar(&cfg.BackfillWorkers, "backfill-workers", 0, "the node's BackfillWorkers: cores a job keeps busy (0: GOMAXPROCS/2)")
	return cmd
}

// benchStreamCmd runs the output stream benchmark (bench.RunStream).
func benchStreamCmd() *cobra.Command {
	var cfg bench.StreamConfig
	var only, views string
	cmd := &cobra.Command{
		Use:     "stream",
		Example: "  featurelog bench stream --dir /tmp/fbench",
		Short:   "Output streams: ingest with SSE and Kafka consumers vs none, end-to-end latency, catch-up over 20M events",
		Long: "Runs the output stream benchmark (package bench, RunStream). ingest: durable HTTP batch ingest into a\n" +
			"continuous aggregate view and an attribute view, (a) without output streams, (b) with output_stream\n" +
			"{include_features: true} followed by an SSE consumer per view, (c) with Kafka sinks to a kfake cluster in\n" +
			"this process, followed by a Kafka consumer; then, on each node, the time from a small request's 200 to\n" +
			"its record's receipt at half the rate it sustained. catchup: a consumer from earliest over the historical\n" +
			"workload's log (cached under --dir, shared with bench historical), HTTP NDJSON against in-process, and\n" +
			"the node's peak RSS.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			command, err := selfCommand("stream-server")
			if err != nil {
				return err
			}
			cfg.Command, cfg.Progress, cfg.Only, cfg.CatchUpViews = command, os.Stderr, splitNames(only), splitNames(views)
			res, err := bench.RunStream(cfg)
			if res == nil {
				return err
			}
			return writeRows(bench.StreamRows(res), err)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured window of each ingest loop")
	f.IntVar(&cfg.Clients, "clients", 4, "closed-loop ingest clients")
	f.IntVar(&cfg.BatchSize, "batch", 1000, "records per closed-loop request")
	f.IntVar(&cfg.Users, "users", 1_000_000, "users the closed loop's records are drawn from (fewer: hotter keys)")
	f.IntVar(&cfg.LatencyBatch, "latency-batch", 100, "records per request of the latency loop")
	f.StringSliceVar(&cfg.Streams, "streams", []string{"user_amounts"}, "views given an output stream in (b) and (c): user_amounts (aggregate), user_last (attribute), or both")
	f.IntVar(&cfg.Data.Events, "events", 20_000_000, "logged events of the catch-up's data set")
	f.IntVar(&cfg.Data.Keys, "keys", 1_000_000, "users of the catch-up's data set")
	cacheFlags(f, &cfg.CacheRoot, &cfg.Data.Rebuild)
	f.StringVar(&cfg.TempDir, "tmp", "", "where the nodes' data directories go (default the system temp dir)")
	f.StringVar(&only, "only", "", "comma-separated parts to run: ingest, catchup")
	f.StringVar(&views, "catchup-views", "", "comma-separated views the catch-up reads (default user_last,user_amounts)")
	f.StringVar(&cfg.ServerProfileDir, "server-cpuprofile-dir", "", "write a CPU profile (and a heap profile when it stops) of every node to DIR/stream-<node>.prof (.heap)")
	return cmd
}

// benchStreamServerCmd is the hidden entry point of the stream benchmark's
// nodes (bench.StreamServeMain).
func benchStreamServerCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "stream-server",
		Short:              "Serve a prepared data directory, with its Kafka sinks, for the stream benchmark (internal)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return bench.StreamServeMain(args)
		},
	}
}

// benchPITJoinCmd runs issue 14's point-in-time join workload through the
// CLI as a user would (bench.RunPITJoin); bench/peers runs DuckDB on the
// same files in the same run.
func benchPITJoinCmd() *cobra.Command {
	var cfg bench.PITJoinConfig
	cmd := &cobra.Command{
		Use:   "pitjoin",
		Short: "Point-in-time join workload: load 20M events over HTTP in random time order, then featurelog historical on a 1M-row parquet spine in a fresh process",
		Long: "Generates (once, cached under --dir) 20M events {user_id, ts, amount} over 1M keys in random\n" +
			"event-time order as a parquet file and a 1M-row parquet spine; loads the events into a fresh\n" +
			"`featurelog serve` over HTTP /ingest (1000 records a request, 4 clients, fsync on), and runs\n" +
			"`featurelog historical --spine spine.parquet --out training.parquet` in a fresh process, timing it\n" +
			"and reading its peak RSS from the kernel. The DuckDB comparison on the same files is the separate\n" +
			"module bench/peers: cd bench/peers && go run . (see its doc).",
		Example: "  featurelog bench pitjoin --dir /tmp/fbench\n" +
			"  featurelog bench pitjoin --dir /tmp/fbench --dist zipf --events 2000000 --keys 100000 --spine-rows 100000\n" +
			"  featurelog bench pitjoin --dir /tmp/fbench --shape days",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.Featurelog, cfg.Progress = []string{self}, os.Stderr
			rows, _, _, err := bench.RunPITJoin(cfg)
			return writeRows(rows, err)
		},
	}
	workload := flag.NewFlagSet("pitjoin", flag.ContinueOnError)
	cfg.Flags(workload)
	f := cmd.Flags()
	f.AddGoFlagSet(workload)
	f.IntVar(&cfg.Clients, "clients", 4, "loading clients")
	f.IntVar(&cfg.BatchSize, "batch", 1000, "records per /ingest request")
	f.IntVar(&cfg.JoinRuns, "join-runs", 1, "fresh processes running the join")
	return cmd
}
