// Package bench holds featurelog's macro benchmarks (SPEC §9): each is a
// config struct and a Run* function returning a Result (operations and
// records per second, latency percentiles). `featurelog bench` runs them
// as a suite and prints each figure beside the baseline it is judged
// against, measured in the same run; `go test -bench . ./bench` runs them
// one by one. Micro benchmarks live beside the code they measure.
//
//	res, err := bench.RunIngestInProcess(bench.IngestInProcessConfig{Loop: bench.Loop{Duration: 5 * time.Second}})
//	fmt.Printf("%.0f records/s, p99 %v\n", res.RecordsPerSec, res.Latency.P99)
//
// # Benchmarks
//
// The workload is the ads example (examples/ads/features.yaml, embedded as
// ads.yaml): single records {user_id, timestamp, clicked} for the push
// source impressions_event_source, and reads of the attribute view
// click_events_fv through ad_ctr_feature_service. Ingest is durable
// (fsync on) unless a config says otherwise.
//
//	RunTidwallBaseline       raw tidwall/wal, one Write + fsync per 100-byte record (baseline)
//	RunIngestHTTP            POST /ingest, 1 record, N clients, closed loop
//	RunIngestHTTPRate        the same at a fixed rate, open loop
//	RunBatchIngestHTTP       POST /ingest, 1000 records per request
//	RunIngestInProcess       engine.Ingest, 1000-record batches
//	RunIngestJSONInProcess   engine.IngestJSON, 1000-record bodies: the HTTP path minus HTTP
//	RunGetFeaturesInProcess  engine.GetFeatures, latency of single calls
//	RunGetFeaturesHTTP       get-features, closed loop
//	RunGetFeaturesHTTPRate   get-features at a fixed rate (default 5,000/s), open loop
//	RunReplay                engine.Open replaying the log
//
// The aggregate benchmarks use a repo of their own (agg_workload.go):
// purchases {user_id, timestamp, amount} and continuous views of count,
// sum and mean over 1h, 24h and 7d, with history loaded in-process by
// BuildAggHistory (a stopped clock that follows the events, no fsync)
// and served to HTTP benchmarks as a prepared data directory
// (Server.DataDir). Reads are as of times spread over the last minute of
// the history.
//
//	RunAggReadInProcess      engine.GetFeatures of 9 aggregates, 1 user with 7 days at 10 events/s
//	RunAggReadHTTP           the same over HTTP, closed loop (and against the trivial server)
//	RunAggReadHTTPRate       the same at a fixed rate (default 5,000/s), open loop
//	RunAggBatchHTTPRate      get-features-batch of 100 users at 100 requests/s, open loop
//	RunAggCostGrowth         read latency for 10 vs 1M events per user, and windows 1h, 30d, lifetime
//	RunAggIngest             engine.Ingest into a source with three aggregate views vs (in effect) none
//	RunTileBytes             heap per tile of count+sum+min+max states
//
// The cluster benchmarks (cluster.go; SPEC §10) run an in-process Kafka
// (kfake: its log is in memory, so they measure featurelog's side) and
// cluster nodes behind HTTP on loopback, all in the benchmark's process,
// beside a standalone node in the same process:
//
//	RunClusterIngest         POST /ingest to 1 cluster node vs a standalone node; the drain until applied
//	RunClusterForward        get-features through 1 of 2 nodes: keys it serves vs keys it forwards
//	RunClusterRebalance      3 nodes: the 503 window per moved partition when one stops and one joins
//
// The output stream benchmark (stream.go, `featurelog bench stream`) runs
// nodes of its own (StreamServeMain), some with Kafka sinks to a kfake
// cluster in the benchmark's process:
//
//	RunStream                HTTP batch ingest with SSE or Kafka consumers vs none; 200-to-receipt
//	                         latency; a catch-up from earliest over 20M logged events, HTTP vs in-process
//
// The point-in-time join workload (pitjoin.go, `featurelog
// bench pitjoin`) runs the real CLI as a user would: PreparePITJoin
// generates 20M events over 1M keys (uniform, Zipf or a few hot keys) in
// random event-time order as a parquet file, and a 1M-row parquet spine,
// and loads the events into a fresh `featurelog serve` over HTTP /ingest
// (1000 records a request, 4 clients, fsync on), both cached; then
// RunPITJoinCLI times `featurelog historical --spine spine.parquet --out
// training.parquet` in a fresh process, with its CPU and peak RSS from
// rusage. The module bench/peers (its own go.mod, so the product never
// depends on DuckDB) runs DuckDB's ASOF and RANGE-window joins on the same
// files in the same run, compares every output column row by row, and
// reports the ratio: `cd bench/peers && go run . --dir /tmp/fbench`.
//
//	RunPITJoin               HTTP load in random time order; fresh-process spine join, CPU and peak RSS
//
// # Method
//
// HTTP benchmarks run the server under test in a process of its own,
// started from Server.Command (featurelog re-executes itself as
// `featurelog bench server`; the tests re-execute the test binary), on
// 127.0.0.1 with a fresh data directory. The baseline, a trivial net/http
// handler that reads the body and answers a fixed response as large as
// featurelog's, runs the same way, so both are measured identically by
// the same client process: one http.Client shared by all workers, with a
// kept-alive connection per worker.
//
// Closed loops (N clients, each sending when its previous request
// returns) measure throughput. Open loops measure latency at a given
// rate: a dispatcher releases request i at start + i/rate, sleeping with
// nanosleep(2) rather than Go timers, which round sub-millisecond waits
// up to a millisecond; latency runs from the scheduled time, so a server
// stall is charged for every request it delayed, not just the one in
// flight (no coordinated omission). Result.SendLag shows how late the
// client itself was.
//
// Every loop is bounded in time (Loop.Duration after Loop.Warmup) and in
// count (Loop.MaxOps), and targets only loopback addresses.
//
// # Caveats
//
//   - Client and server share the machine's cores, so absolute HTTP
//     figures depend on the client's cost; compare them with the baseline
//     of the same run, not across machines.
//   - Figures are never asserted in tests: the tests check that every
//     Run* works on a tiny configuration, not how fast it is.
package bench
