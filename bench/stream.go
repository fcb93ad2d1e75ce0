package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// The output stream benchmark (issue #13), three parts:
//
//   - ingest: durable batched ingest over HTTP, closed loop, against a
//     node whose repo has a continuous aggregate view and an attribute
//     view, (a) without output streams, (b) with output_stream
//     {include_features: true} on both and an SSE consumer following each,
//     (c) with a Kafka sink on both, to a kfake cluster in this process,
//     followed by a Kafka consumer. Events/s of (b) and (c) against (a),
//     and whether the consumers received every record by the end;
//   - latency: on the same nodes, an open loop of small ingest requests
//     at half the rate each sustained; the time from each request's 200
//     to the receipt of its first record by the SSE and the Kafka
//     consumers, beside the requests' acknowledgement latency;
//   - catch-up: a consumer that starts from earliest over the historical
//     workload's log (20M events): records/s over HTTP NDJSON against an
//     engine.OutputStream Next loop in-process, and the node's peak RSS
//     while it serves the stream (read from the log on disk, not held in
//     memory).
//
// Every node runs in a process of its own (StreamServeMain), with fsync
// on, over a data directory this process prepared (its repo applied).

// StreamConfig configures RunStream.
type StreamConfig struct {
	// Command is the argv prefix that runs StreamServeMain (`featurelog
	// bench stream-server`). Required.
	Command []string
	// TempDir is where data directories are created (and removed
	// afterwards). Default os.TempDir().
	TempDir string
	// Only restricts the run to the named parts: "ingest" (throughput and
	// latency) and "catchup". Empty runs both.
	Only []string
	// Clients is the closed loop's concurrency. Default 4.
	Clients int
	// BatchSize is the records per request of the closed loop. Default
	// 1000.
	BatchSize int
	// Users is the closed loop's key space: each record's user is drawn
	// uniformly from it, its time is the request's. Default 1,000,000
	// (the historical workload's), so a key has a few events in a run, as
	// in a real one; an aggregate view's output record costs a read of
	// the key's events in its longest window (tiles.ReadLogged), so a
	// small key space measures hot keys.
	Users int
	// LatencyBatch is the records per request of the latency loop: small
	// requests, the first record of each under a key of its own. Default
	// 100: at half the closed loop's rate, single records would need
	// more requests per second than HTTP sustains on a small machine.
	LatencyBatch int
	// LatencyWorkers bounds the latency loop's requests in flight.
	// Default 64.
	LatencyWorkers int
	// Partitions is the partitions of each Kafka topic. Default 1.
	Partitions int
	// Streams are the views given an output stream (and a consumer or a
	// Kafka sink) in (b) and (c). Default: user_amounts alone, the
	// costlier one (an aggregate vector per record): issue 13's figure is
	// "with one output stream". Both views: user_amounts,user_last.
	Streams []string
	// Drain bounds the wait, after a loop, for the consumers to receive
	// every acknowledged record. Default 60s.
	Drain time.Duration
	// Data configures the catch-up's historical data set (Data.Events
	// events, default 20M); CacheDir defaults to where `featurelog bench
	// historical` caches the same size under CacheRoot. The cached
	// directory is copied, never changed.
	Data      HistoricalDataConfig
	CacheRoot string
	// CatchUpViews are the historical views whose streams the catch-up
	// reads from earliest. Default user_last (a record per event) and
	// user_amounts (a record per event within its 24h TTL when logged,
	// each with the aggregate vector over the log up to it).
	CatchUpViews []string
	// ServerProfileDir, if set, makes every node write a CPU profile
	// there, and a heap profile when it stops: stream-a.prof,
	// stream-b.prof, stream-c.prof (closed loops), stream-a-latency.prof,
	// ... (latency loops) and stream-catchup.prof, each with its .heap.
	ServerProfileDir string
	// Progress receives a line as each step starts. Default none.
	Progress io.Writer
	Loop
}

// The parts of RunStream.
const (
	streamPartIngest  = "ingest"
	streamPartCatchUp = "catchup"
)

// EnsureDefaults fills in unset fields.
func (c *StreamConfig) EnsureDefaults() {
	if c.Clients == 0 {
		c.Clients = 4
	}
	if len(c.Streams) == 0 {
		c.Streams = []string{"user_amounts"}
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.Users == 0 {
		c.Users = 1_000_000
	}
	if c.LatencyBatch == 0 {
		c.LatencyBatch = 100
	}
	if c.LatencyWorkers == 0 {
		c.LatencyWorkers = 64
	}
	if c.Partitions == 0 {
		c.Partitions = 1
	}
	if c.Drain == 0 {
		c.Drain = time.Minute
	}
	if len(c.CatchUpViews) == 0 {
		c.CatchUpViews = []string{"user_last", "user_amounts"}
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	c.Loop.EnsureDefaults()
	c.Data.EnsureDefaults()
	c.Data.Progress = c.Progress
}

// Validate reports a configuration that cannot run.
func (c *StreamConfig) Validate() error {
	if len(c.Command) == 0 {
		return errors.New("bench: StreamConfig.Command is required: the argv prefix of a program that calls bench.StreamServeMain")
	}
	if c.Clients <= 0 || c.BatchSize <= 0 || c.Users <= 0 || c.LatencyBatch <= 0 || c.LatencyWorkers <= 0 || c.Partitions <= 0 || c.Drain <= 0 {
		return errors.New("bench: StreamConfig: Clients, BatchSize, Users, LatencyBatch, LatencyWorkers, Partitions and Drain must be positive")
	}
	for _, p := range c.Only {
		if p != streamPartIngest && p != streamPartCatchUp {
			return fmt.Errorf("bench: unknown part %q of the stream benchmark; the parts are %s and %s", p, streamPartIngest, streamPartCatchUp)
		}
	}
	return c.Loop.Validate()
}

func (c *StreamConfig) runs(part string) bool {
	return len(c.Only) == 0 || slices.Contains(c.Only, part)
}

// StreamResult is what RunStream measured.
type StreamResult struct {
	// Clients, BatchSize and Users describe the closed loop, LatencyBatch
	// the latency loop's requests.
	Clients, BatchSize, Users, LatencyBatch int
	// None, SSE and Kafka are the three nodes: (a) no output stream, (b)
	// output streams followed over SSE, (c) Kafka sinks followed by a
	// Kafka consumer. Nil when the ingest part did not run.
	None, SSE, Kafka *StreamNode
	// CatchUp has one entry per catch-up view; nil when the part did not
	// run.
	CatchUp *StreamCatchUp
}

// StreamNode is what one node of the ingest part measured.
type StreamNode struct {
	// Label names the node: "a: no output stream", ...
	Label string
	// Ingest is the closed loop; its RecordsPerSec the sustainable rate.
	Ingest Result
	// ServerCPU and ClientCPU are the node's and this process's CPU time
	// during the closed loop's measured window (warm-up included),
	// divided by its wall time: the cores each kept busy.
	ServerCPU, ClientCPU float64
	// Throughput and Latency tally the consumers, one per view (none for
	// a), after the closed loop and after the latency loop.
	Throughput, Latency []ConsumerTally
	// Rate is the latency loop's request rate (records per second over
	// LatencyBatch).
	Rate float64
	// Acks is the latency loop: its Latency from each request's scheduled
	// send to its 200 (no coordinated omission).
	Acks Result
	// EndToEnd is the time from a request's 200 to the receipt of its
	// first record by a consumer, over the measured requests and every
	// view; EarlyReceipts counts receipts that came before the client saw
	// the 200 (counted as 0), Missing measured requests whose record no
	// consumer of some view received.
	EndToEnd      Latency
	Samples       int
	EarlyReceipts int
	Missing       int
	// StopErrors note the node's processes that did not exit cleanly
	// within 10s of being asked to (and were killed).
	StopErrors []string
}

// ConsumerTally is one consumer's count against the records it should
// have received.
type ConsumerTally struct {
	View string
	// Want is the records acknowledged for the view's source; AtEnd the
	// records received when the loop ended, Got when the drain ended.
	Want, AtEnd, Got int64
	// Loop is how long the loop ran (warm-up included); Drain how long
	// the consumer took, after it, to receive the rest (the whole drain
	// timeout when it never did).
	Loop, Drain time.Duration
	// Err is the consumer's error, if its stream failed.
	Err string
}

// keptUp reports whether every consumer received every record.
func keptUp(ts []ConsumerTally) bool {
	for _, t := range ts {
		if t.Got < t.Want || t.Err != "" {
			return false
		}
	}
	return len(ts) > 0
}

// RunStream runs the output stream benchmark.
func RunStream(cfg StreamConfig) (*StreamResult, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ServerProfileDir != "" {
		if err := os.MkdirAll(cfg.ServerProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	res := &StreamResult{Clients: cfg.Clients, BatchSize: cfg.BatchSize, Users: cfg.Users, LatencyBatch: cfg.LatencyBatch}
	if cfg.runs(streamPartIngest) {
		if err := streamIngest(&cfg, res); err != nil {
			return res, err
		}
	}
	if cfg.runs(streamPartCatchUp) {
		c, err := streamCatchUp(&cfg)
		res.CatchUp = c
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// The workload of the ingest part: events {user_id, timestamp, amount}
// (as the historical workload's) into a continuous aggregate view and an
// attribute view.
const (
	streamWorkspace = "streambench"
	streamSource    = "events"
	streamRepoName  = "streambench.yaml"
)

// streamViews are the views of the ingest part's repo, each followed by a
// consumer when it has an output stream.
var streamViews = []string{"user_amounts", "user_last"}

// streamRepo returns the ingest part's repo: with {include_features:
// true} on the views of streams, and a Kafka sink to brokers (topic
// streamTopic(view)) when brokers is set.
func streamRepo(streams []string, brokers []string) string {
	declare := func(view string) string {
		if !slices.Contains(streams, view) {
			return ""
		}
		s := "    output_stream:\n      include_features: true\n"
		if len(brokers) > 0 {
			s += fmt.Sprintf("      kafka: {brokers: [%s], topic: %s}\n", quoteList(brokers), streamTopic(view))
		}
		return s
	}
	return `workspace: streambench

entities:
  - name: user
    join_keys: [user_id]

sources:
  - name: events
    schema:
      - {name: user_id, type: String}
      - {name: timestamp, type: Timestamp}
      - {name: amount, type: Float64}

feature_views:
  - name: user_amounts
    source: events
    entities: [user]
    timestamp_field: timestamp
    features:
      - aggregate: {input: amount, function: count, window: 1h}
      - aggregate: {input: amount, function: sum, window: 1h}
      - aggregate: {input: amount, function: count, window: 24h}
      - aggregate: {input: amount, function: sum, window: 24h}
` + declare("user_amounts") + `
  - name: user_last
    source: events
    entities: [user]
    timestamp_field: timestamp
    features:
      - attribute: {name: amount}
` + declare("user_last") + `
feature_services:
  - name: stream_service
    online_serving_enabled: true
    features: [user_amounts, user_last]
`
}

// streamTopic is the Kafka topic of a view's sink.
func streamTopic(view string) string { return "featurelog-bench-" + view }

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// prepareDir creates a data directory under tempDir with repo applied, for
// a node to open as is.
func prepareDir(tempDir, name, repoName, repo string) (string, error) {
	dir, err := os.MkdirTemp(tempDir, "featurelog-bench-stream-"+name+"-")
	if err != nil {
		return "", err
	}
	db, err := engine.Open(engine.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler), Holder: "featurelog bench stream"})
	if err != nil {
		return dir, err
	}
	_, err = db.ApplyWait(context.Background(), repoName, []byte(repo))
	return dir, errors.Join(err, db.Close())
}

// streamBodyHead starts an ingest body of the ingest part's source.
const streamBodyHead = `{"workspace_name":"streambench","dry_run":false,"records":{"events":[`

// appendStreamBody appends an ingest body of n records: users
// prefix+(first+j), all at ts, amounts 1..100.
func appendStreamBody(dst []byte, prefix string, first, n int, ts time.Time) []byte {
	dst = append(dst, streamBodyHead...)
	var stamp [40]byte
	st := ts.UTC().AppendFormat(stamp[:0], time.RFC3339Nano)
	for j := range n {
		dst = appendStreamRecord(dst, j > 0, st, prefix, first+j, 1+j%100)
	}
	return append(dst, "]}}"...)
}

// appendRandomBody appends an ingest body of n records of users drawn
// from r among users, all at ts.
func appendRandomBody(dst []byte, r *rng, users, n int, ts time.Time) []byte {
	dst = append(dst, streamBodyHead...)
	var stamp [40]byte
	st := ts.UTC().AppendFormat(stamp[:0], time.RFC3339Nano)
	for j := range n {
		dst = appendStreamRecord(dst, j > 0, st, "u", r.intn(users), 1+j%100)
	}
	return append(dst, "]}}"...)
}

func appendStreamRecord(dst []byte, comma bool, stamp []byte, prefix string, user, amount int) []byte {
	if comma {
		dst = append(dst, ',')
	}
	dst = append(dst, `{"record":{"timestamp":"`...)
	dst = append(dst, stamp...)
	dst = append(dst, `","user_id":"`...)
	dst = append(dst, prefix...)
	dst = strconv.AppendInt(dst, int64(user), 10)
	dst = append(dst, `","amount":`...)
	dst = strconv.AppendInt(dst, int64(amount), 10)
	return append(dst, "}}"...)
}

// waitCounts waits until every count reaches want or timeout passes; it
// returns how long each took (timeout for those that never did).
func waitCounts(counts []*atomic.Int64, want int64, timeout time.Duration) []time.Duration {
	t0 := time.Now()
	took := make([]time.Duration, len(counts))
	for i := range took {
		took[i] = -1
	}
	for {
		pending := false
		for i, c := range counts {
			if took[i] >= 0 {
				continue
			}
			if c.Load() >= want {
				took[i] = time.Since(t0)
			} else {
				pending = true
			}
		}
		if !pending {
			return took
		}
		if time.Since(t0) >= timeout {
			for i := range took {
				if took[i] < 0 {
					took[i] = timeout
				}
			}
			return took
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// profilePath is where node name writes its profiles (less the
// extension), or "".
func (c *StreamConfig) profilePath(name string) string {
	if c.ServerProfileDir == "" {
		return ""
	}
	return filepath.Join(c.ServerProfileDir, "stream-"+name)
}
