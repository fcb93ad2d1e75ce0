package kafkasink

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
)

// brokersEnv names a real Kafka cluster to run the tests against instead
// of an in-process kfake; tests that need kfake's fault hooks or its
// restarts are skipped then.
const brokersEnv = "FEATURELOG_KAFKA_BROKERS"

// testBroker is the cluster a test publishes to.
type testBroker struct {
	addrs []string
	c     *kfake.Cluster // nil against brokersEnv
	opts  []kfake.Opt    // to restart c on the same port and data
}

// newBroker starts a one-broker kfake cluster (with its state in a
// directory, so restart keeps the topics, when persistent), or names the
// cluster of brokersEnv.
func newBroker(t testing.TB, persistent bool) *testBroker {
	t.Helper()
	if env := os.Getenv(brokersEnv); env != "" {
		return &testBroker{addrs: strings.Split(env, ",")}
	}
	b := &testBroker{opts: []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(6)}}
	if persistent {
		b.opts = append(b.opts, kfake.DataDir(t.TempDir()))
	}
	c, err := kfake.NewCluster(b.opts...)
	require.NoError(t, err)
	b.c, b.addrs = c, c.ListenAddrs()
	_, port, _ := net.SplitHostPort(b.addrs[0])
	p, _ := strconv.Atoi(port)
	b.opts = append(b.opts, kfake.Ports(p))
	t.Cleanup(func() { b.c.Close() })
	return b
}

// fake returns the kfake cluster, skipping the test against a real one.
func (b *testBroker) fake(t testing.TB) *kfake.Cluster {
	t.Helper()
	if b.c == nil {
		t.Skipf("needs kfake's fault hooks or restarts; skipped against %s", brokersEnv)
	}
	return b.c
}

// restart starts the stopped cluster again on its port, with its data.
func (b *testBroker) restart(t testing.TB) {
	t.Helper()
	var err error
	require.Eventually(t, func() bool { // the port may take a moment to be free
		var c *kfake.Cluster
		if c, err = kfake.NewCluster(b.opts...); err == nil {
			b.c = c
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "restarting kfake: %v", err)
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// uniqueTopic names a topic no earlier run used (a real cluster keeps
// them).
func uniqueTopic(name string) string {
	return fmt.Sprintf("ks-%s-%d-%04x", name, time.Now().UnixNano(), rand.Uint32()&0xffff)
}

// testClock is a settable clock shared by the engine and the sinks.
type testClock struct{ ns atomic.Int64 }

var clockStart = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func newClock() *testClock {
	c := &testClock{}
	c.ns.Store(clockStart.UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) Add(d time.Duration)     { c.ns.Add(int64(d)) }
func (c *testClock) Since(t time.Time) int64 { return c.ns.Load() - t.UnixNano() }

// testLogger discards unless FEATURELOG_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("FEATURELOG_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func openDB(t testing.TB, dir string, clock func() time.Time, edit func(*engine.Options)) *engine.DB {
	t.Helper()
	o := engine.Options{Dir: dir, NoSync: true, Now: clock, DisableAutoFlush: true, Logger: testLogger()}
	if edit != nil {
		edit(&o)
	}
	db, err := engine.Open(o)
	require.NoError(t, err)
	return db
}

// sinkSpec is the Kafka sink of one view in testRepo.
type sinkSpec struct {
	brokers     []string // none in the file when empty
	topic       string   // no sink when ""
	exactlyOnce bool
	maxLag      string // "" for the default
}

func (s sinkSpec) yaml() string {
	if s.topic == "" {
		return "    output_stream: {include_features: true}\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "    output_stream:\n      include_features: true\n      kafka:\n        topic: %s\n        exactly_once: %v\n", s.topic, s.exactlyOnce)
	if len(s.brokers) > 0 {
		fmt.Fprintf(&b, "        brokers: [%q]\n", strings.Join(s.brokers, `", "`))
	}
	if s.maxLag != "" {
		fmt.Fprintf(&b, "        max_lag: %s\n", s.maxLag)
	}
	return b.String()
}

// testRepo has an attribute view (latest) and a continuous aggregate view
// (sums) with output streams over one source, n numbering the records.
func testRepo(latest, sums sinkSpec, logOffline bool) string {
	return `workspace: ks
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: events
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Float64}
      - {name: n, type: Int64}
    push:
      log_offline: ` + strconv.FormatBool(logOffline) + `
feature_views:
  - name: latest
    source: events
    entities: [user]
    timestamp_field: ts
` + latest.yaml() + `    features:
      - attribute: {name: amount}
      - attribute: {name: n}
  - name: sums
    source: events
    entities: [user]
    timestamp_field: ts
` + sums.yaml() + `    features:
      - aggregate: {input: amount, function: sum, window: 1h}
      - aggregate: {input: amount, function: count, window: 24h}
`
}

func sinkID(view, topic string) string { return "ks/" + view + "/kafka:" + topic }

func apply(t testing.TB, db *engine.DB, repo string) {
	t.Helper()
	_, err := db.ApplyWait(context.Background(), "ks.yaml", []byte(repo))
	require.NoError(t, err)
}

// event is one ingested record.
type event struct {
	user   string
	ts     time.Time
	amount float64
	n      int64
}

// events returns n events numbered from first, over users keys skewed to
// a few hot ones, their times in random order over the two days before
// now.
func events(rng *rand.Rand, first int64, n, users int, now time.Time) []event {
	out := make([]event, n)
	for i := range out {
		u := int(float64(users) * rng.Float64() * rng.Float64())
		out[i] = event{user: fmt.Sprintf("u%03d", u), ts: now.Add(-time.Second - time.Duration(rng.Int64N(int64(48*time.Hour)))).Truncate(time.Microsecond),
			amount: float64(rng.IntN(2000)-100) / 8, n: first + int64(i)}
	}
	return out
}

func (e event) record() map[string]any {
	return map[string]any{"user_id": e.user, "ts": e.ts, "amount": e.amount, "n": e.n}
}

// ingest sends evs in requests of random sizes up to per.
func ingest(t testing.TB, rng *rand.Rand, db *engine.DB, evs []event, per int) {
	t.Helper()
	for len(evs) > 0 {
		n := min(len(evs), 1+rng.IntN(per))
		recs := make([]map[string]any, n)
		for i := range recs {
			recs[i] = evs[i].record()
		}
		_, err := db.Ingest(&engine.IngestRequest{Workspace: "ks", Records: map[string][]map[string]any{"events": recs}})
		require.NoError(t, err)
		evs = evs[n:]
	}
}

// streamRec is one record of a view's output stream, as the sink must
// publish it.
type streamRec struct {
	offset     string
	key, value string
}

// readStream reads a view's whole stream from the earliest record and
// returns it with its end (the position after the last record).
func readStream(t testing.TB, db *engine.DB, view string) ([]streamRec, engine.StreamOffset) {
	t.Helper()
	s, err := db.OpenOutputStream("ks", view, engine.StreamStart{Kind: engine.StartEarliest})
	require.NoError(t, err)
	defer s.Close()
	var out []streamRec
	var buf []engine.OutputRecord
	for {
		buf, err = s.Next(context.Background(), buf, 1000, 100*time.Millisecond)
		require.NoError(t, err)
		if len(buf) == 0 {
			return out, s.Position()
		}
		for i := range buf {
			out = append(out, streamRec{offset: buf[i].Offset.String(), key: string(buf[i].AppendKeyJSON(nil)), value: string(buf[i].AppendJSON(nil))})
		}
	}
}

// waitCursor waits until sink id's durable cursor reaches end.
func waitCursor(t testing.TB, db *engine.DB, id string, end engine.StreamOffset, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		cur, err := db.SinkCursor(id)
		require.NoError(t, err)
		if !cur.Less(end) {
			assert.Equal(t, end, cur, "sink %s: the cursor went past the stream's end", id)
			return
		}
		require.True(t, time.Now().Before(deadline), "sink %s: cursor %s never reached the stream's end %s", id, cur, end)
		time.Sleep(5 * time.Millisecond) // poll the durable cursor
	}
}

// consumed is one message read back from a topic.
type consumed struct {
	partition int32
	offset    int64 // the Kafka offset
	key       string
	value     string
}

// consumeAll reads every message of topic up to its end (the last stable
// offset with committed), control records kept so that a transaction
// marker at the end is seen, and returns the data messages.
func consumeAll(t testing.TB, addrs []string, topic string, committed bool) []consumed {
	t.Helper()
	out, _ := consumeTopic(t, addrs, topic, committed)
	return out
}

// consumeTopic is consumeAll, also counting the transactions aborted.
func consumeTopic(t testing.TB, addrs []string, topic string, committed bool) (out []consumed, aborts int) {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(addrs...), kgo.KeepControlRecords(), kgo.FetchMaxWait(100 * time.Millisecond)}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(cl)
	list := adm.ListEndOffsets
	if committed {
		list = adm.ListCommittedOffsets
	}
	ends, err := list(ctx, topic)
	require.NoError(t, err)
	starts, err := adm.ListStartOffsets(ctx, topic)
	require.NoError(t, err)
	from, left := map[int32]kgo.Offset{}, map[int32]int64{}
	for p, e := range ends[topic] {
		require.NoError(t, e.Err, "topic %s partition %d", topic, p)
		if s := starts[topic][p].Offset; e.Offset > s {
			from[p], left[p] = kgo.NewOffset().At(s), e.Offset
		}
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: from})
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "consuming %s: partitions not read to their end: %v", topic, left)
		for _, fe := range fs.Errors() {
			require.NoError(t, fe.Err, "consuming %s partition %d", topic, fe.Partition)
		}
		fs.EachRecord(func(r *kgo.Record) {
			switch {
			case !r.Attrs.IsControl():
				out = append(out, consumed{partition: r.Partition, offset: r.Offset, key: string(r.Key), value: string(r.Value)})
			case len(r.Key) >= 4 && r.Key[2] == 0 && r.Key[3] == 0: // a control record of type 0: abort
				aborts++
			}
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
	return out, aborts
}

// checkTopic checks the messages of a topic against a view's stream:
// every record of the stream is there, byte for byte, key and value, and
// nothing else; a key's messages are in one partition and, once repeats
// of a record already seen are dropped, their offsets strictly increase.
// With exactlyOnce no record is there twice. It returns how many repeats
// there were.
func checkTopic(t testing.TB, stream []streamRec, got []consumed, exactlyOnce bool) (repeats int) {
	t.Helper()
	byOffset := make(map[string]streamRec, len(stream))
	for _, r := range stream {
		byOffset[r.offset] = r
	}
	seen := map[string]int{}
	lastOfKey := map[string]string{}
	partOfKey := map[string]int32{}
	for _, m := range got {
		var v struct{ Offset string }
		require.NoError(t, json.Unmarshal([]byte(m.value), &v), "partition %d offset %d: %s", m.partition, m.offset, m.value)
		want, ok := byOffset[v.Offset]
		require.True(t, ok, "partition %d offset %d: record %s is not in the stream (invented)", m.partition, m.offset, v.Offset)
		require.Equal(t, want.value, m.value, "record %s: value differs", v.Offset)
		require.Equal(t, want.key, m.key, "record %s: key differs", v.Offset)
		if p, ok := partOfKey[m.key]; ok {
			require.Equal(t, p, m.partition, "key %s in two partitions", m.key)
		}
		partOfKey[m.key] = m.partition
		if seen[v.Offset]++; seen[v.Offset] > 1 {
			repeats++
			require.False(t, exactlyOnce, "record %s published twice (exactly once)", v.Offset)
			continue
		}
		require.Greater(t, v.Offset, lastOfKey[m.key], "key %s: record %s after %s (order lost)", m.key, v.Offset, lastOfKey[m.key])
		lastOfKey[m.key] = v.Offset
	}
	missing := 0
	for _, r := range stream {
		if seen[r.offset] == 0 {
			missing++
		}
	}
	require.Zero(t, missing, "%d of the stream's %d records are not in the topic (gaps)", missing, len(stream))
	return repeats
}

// testOptions are Manager options with short timeouts and backoffs.
func testOptions(clock func() time.Time) Options {
	return Options{
		Logger:       testLogger(),
		BatchRecords: 200,
		RetryBudget:  3 * time.Second,
		Reconcile:    50 * time.Millisecond,
		MaxBackoff:   200 * time.Millisecond,
		Now:          clock,
		ClientOpts: []kgo.Opt{
			kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
			kgo.MetadataMinAge(50 * time.Millisecond),
			kgo.DialTimeout(time.Second),
		},
	}
}

func startManager(t testing.TB, db *engine.DB, o Options) *Manager {
	t.Helper()
	m, err := Start(db, o)
	require.NoError(t, err)
	return m
}

// statusOf returns the status of sink id.
func statusOf(m *Manager, id string) (SinkStatus, bool) {
	for _, s := range m.Status() {
		if s.ID == id {
			return s, true
		}
	}
	return SinkStatus{}, false
}

// logCounter is a slog handler that counts messages, for tests that must
// see a path taken.
type logCounter struct {
	mu   *sync.Mutex
	seen map[string]int
}

func newLogCounter() logCounter { return logCounter{mu: &sync.Mutex{}, seen: map[string]int{}} }

func (l logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[r.Message]++
	return nil
}
func (l logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logCounter) WithGroup(string) slog.Handler      { return l }

func (l logCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[msg]
}
