package engine_test

// Crash tests (SPEC §9): a 200 from /ingest means the records are durable.
//
// TestCrashKill runs a real node (engine + httpapi on 127.0.0.1:0) in a
// child process (this test binary re-executed as TestCrashChild), ingests
// into it over HTTP from several goroutines, SIGKILLs it at random moments
// and restarts it on the same data directory. After every kill the log
// must hold every acknowledged record exactly once and no record that was
// never sent. After every restart every acknowledged record must be
// served, and so must, per writer, the count and sum of n (an aggregate
// view) over exactly the records in the log: a record in flight at a kill
// may or may not have made it, but none may be lost or counted twice.
//
// TestCrashKillCompaction (crash_compact_test.go) runs the same workload
// against a node that flushes and merges all the time, and aims kills at
// flushes and merges.
//
//	go test ./engine -run TestCrashKill -crash.cycles=200

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/wal"
)

var crashCycles = flag.Int("crash.cycles", 0,
	"kill/restart cycles of TestCrashKill and TestCrashKillCompaction (0: their defaults, 50 and 20)")

// crashChildEnv names the data directory of the child node; its presence
// makes TestCrashChild run the node instead of skipping.
const crashChildEnv = "FEATURELOG_CRASH_CHILD_DIR"

// crashAddrPrefix starts the line on which the child prints its address.
const crashAddrPrefix = "FEATURELOG_CRASH_ADDR="

// crashWriters is how many goroutines ingest; a record's writer column is
// the index of the goroutine that sent it.
const crashWriters = 4

const crashRepo = `workspace: crash
entities:
  - name: event
    join_keys: [event_id]
  - name: writer
    join_keys: [writer]
sources:
  - name: crash_events
    schema:
      - {name: event_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: writer, type: Int64}
      - {name: n, type: Int64}
feature_views:
  - name: crash_fv
    source: crash_events
    entities: [event]
    timestamp_field: ts
    features:
      - attribute: {name: writer}
      - attribute: {name: n}
  - name: crash_writers
    source: crash_events
    entities: [writer]
    timestamp_field: ts
    features:
      - aggregate: {input: n, function: count, window: lifetime, name: n_count}
      - aggregate: {input: n, function: sum, window: lifetime, name: n_sum}
feature_services:
  - name: crash_fs
    features: [crash_fv]
  - name: crash_writers_fs
    features: [crash_writers]
`

// crashRecord is what was sent for one event id.
type crashRecord struct{ writer, n int64 }

// writerTotals is, per writer, the count and sum of n of a set of records.
type writerTotals [crashWriters]struct{ Count, Sum int64 }

// TestCrashChild is the child node of the crash tests. It serves until it
// is killed, or until its stdin closes (the parent is gone). Its engine
// options come from the environment (crashChildOptions).
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("helper process of the crash tests")
	}
	// The engine logs at Info, so that the log shows its flushes.
	opts := engine.Options{Dir: dir, Holder: "TestCrashChild",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	maintain, err := crashChildOptions(&opts)
	require.NoError(t, err)
	db, err := engine.Open(opts)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Apply("crash.yaml", []byte(crashRepo))
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := httpapi.New(db, httpapi.Options{Addr: "127.0.0.1:0", NoAuth: true, Logger: logger})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	err = srv.ListenAndServe(ctx, func(a net.Addr) {
		if maintain > 0 {
			go crashMaintain(db, maintain)
		}
		fmt.Fprintf(os.Stdout, "%s%s\n", crashAddrPrefix, a)
	})
	require.NoError(t, err)
}

// child is one run of the child node.
type child struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	log      *childLog
	logStart int64         // where its output starts in the log file
	exited   chan struct{} // closed once the child is reaped
	url      string
}

// startChild starts the node on dir, with env added to its environment,
// and waits for its address.
func startChild(t *testing.T, dir string, env []string, logFile *os.File) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), crashChildEnv+"="+dir), env...)
	c := &child{cmd: cmd, log: &childLog{file: logFile}, exited: make(chan struct{})}
	cmd.Stderr = c.log
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	c.stdin, err = cmd.StdinPipe()
	require.NoError(t, err)
	fi, err := logFile.Stat()
	require.NoError(t, err)
	c.logStart = fi.Size()
	require.NoError(t, cmd.Start())
	go func() {
		cmd.Wait() // also waits for the copy of its stderr to the log
		close(c.exited)
	}()
	t.Cleanup(func() { c.kill() })

	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), crashAddrPrefix); ok {
				addr <- a
				break
			}
		}
		io.Copy(io.Discard, stdout)
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		require.True(t, ok, "the child node exited before serving; its log: %s", tail(logFile))
		c.url = "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatalf("the child node did not start within 60s; its log: %s", tail(logFile))
	}
	return c
}

// kill SIGKILLs the child and waits until it is reaped. It is idempotent.
// Once it returns, the child's log is complete.
func (c *child) kill() {
	c.cmd.Process.Kill() // fails harmlessly once the child is reaped
	<-c.exited
}

// dump has a child that stopped answering print its goroutines (SIGQUIT),
// kills it, and returns its log.
func (c *child) dump() string {
	c.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
	}
	c.kill()
	data, _ := os.ReadFile(c.log.file.Name())
	return string(data[min(c.logStart, int64(len(data))):])
}

func tail(f *os.File) string {
	data, _ := os.ReadFile(f.Name())
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// crashState is what the parent knows: every id sent and every id
// acknowledged.
type crashState struct {
	mu    sync.Mutex
	sent  map[string]crashRecord
	acked map[string]crashRecord
}

func (s *crashState) ackedCopy() map[string]crashRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]crashRecord, len(s.acked))
	for k, v := range s.acked {
		out[k] = v
	}
	return out
}

// crashConfig is a crash test's node and workload.
type crashConfig struct {
	cycles    int      // kill/restart cycles (-crash.cycles overrides; -short caps at 5)
	maxTarget int      // requests acknowledged before a kill: uniform in [0, maxTarget)
	env       []string // added to the child's environment: its engine options
	// aimAtMaint is the share of kills aimed at a flush or merge: once
	// the target is reached, the child dies 0–aimDelay after it next
	// announces one starting. The child must announce them
	// (crashMaintainEnv).
	aimAtMaint float64
	aimDelay   time.Duration
	// afterKill, if set, inspects the data directory a kill left, before
	// anything recovers it; op is the announced operation the kill
	// interrupted, "" if none.
	afterKill func(t *testing.T, dir, stage, op string)
}

// crashRun is one run of a crash test.
type crashRun struct {
	t       *testing.T
	cfg     crashConfig
	r       *rand.Rand
	dir     string   // the node's data directory
	scratch string   // where checkLog copies the log
	logFile *os.File // every child's stderr, in order
	st      *crashState
	cycles  int
	// want is, per writer, the totals of the records in the log after
	// the last kill: what the node must serve until it ingests more.
	want writerTotals
	// killsIn counts the kills by the announced operation they
	// interrupted ("" none), and aimed the kills aimed at one.
	killsIn map[string]int
	aimed   int
}

func TestCrashKill(t *testing.T) {
	runCrash(t, crashConfig{cycles: 50, maxTarget: 40})
}

// runCrash kills and restarts a child node cfg.cycles times, checking
// after every kill and every restart.
func runCrash(t *testing.T, cfg crashConfig) *crashRun {
	c := &crashRun{t: t, cfg: cfg, cycles: cfg.cycles, dir: filepath.Join(t.TempDir(), "data"),
		scratch: t.TempDir(), killsIn: map[string]int{},
		st: &crashState{sent: map[string]crashRecord{}, acked: map[string]crashRecord{}}}
	if *crashCycles > 0 {
		c.cycles = *crashCycles
	}
	if testing.Short() {
		c.cycles = min(c.cycles, 5)
	}
	seed := time.Now().UnixNano()
	c.r = rand.New(rand.NewSource(seed))
	t.Logf("seed %d, %d cycles", seed, c.cycles)
	var err error
	c.logFile, err = os.Create(filepath.Join(t.TempDir(), "child.log"))
	require.NoError(t, err)
	t.Cleanup(func() { c.logFile.Close() })

	for cycle := 0; cycle < c.cycles; cycle++ {
		c.cycle(cycle)
	}
	c.verifyInProcess("after the last kill")
	log, err := os.ReadFile(c.logFile.Name())
	require.NoError(t, err)
	for _, bad := range []string{"WARNING: DATA RACE", "\npanic: "} {
		if i := bytes.Index(log, []byte(bad)); i >= 0 {
			t.Errorf("a child reported a failure in its log:\n%s", log[i:min(len(log), i+4000)])
		}
	}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	t.Logf("%d records sent, %d acknowledged", len(c.st.sent), len(c.st.acked))
	require.NotEmpty(t, c.st.acked, "no request was ever acknowledged")
	return c
}

// cycle starts the node, checks what it serves, ingests, kills it and
// checks what the kill left.
func (c *crashRun) cycle(cycle int) {
	ch := startChild(c.t, c.dir, c.cfg.env, c.logFile)
	stage := fmt.Sprintf("cycle %d, after restart", cycle)
	verifyServed(c.t, ch, c.st.ackedCopy(), stage)
	c.verifyWritersServed(ch, stage)
	target := int64(c.r.Intn(c.cfg.maxTarget)) // acknowledged requests before the kill; 0: at once
	aim := c.r.Float64() < c.cfg.aimAtMaint
	delay := time.Duration(c.r.Int63n(int64(c.cfg.aimDelay) + 1))
	c.ingestUntilKilled(ch, cycle, target, c.r.Int63(), aim, delay)

	stage = fmt.Sprintf("cycle %d, after kill", cycle)
	op, errs := ch.log.state()
	assert.Empty(c.t, errs, "%s: the child's flushes or merges failed", stage)
	c.killsIn[op]++
	if c.cfg.afterKill != nil {
		c.cfg.afterKill(c.t, c.dir, stage, op)
	}
	c.want = c.checkLog(stage)
	if cycle%2 == 1 {
		// Every other cycle the parent recovers the directory itself and
		// counts; otherwise the child recovers what the kill left.
		c.verifyInProcess(stage)
	}
}

// ingestUntilKilled runs writers against the child until target requests
// have been acknowledged, then SIGKILLs the child with requests in flight:
// at once, or, if aim, delay after it next starts a flush or merge.
func (c *crashRun) ingestUntilKilled(ch *child, cycle int, target, seed int64, aim bool, delay time.Duration) {
	t, st := c.t, c.st
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	var acks atomic.Int64
	reached := make(chan struct{})
	var once sync.Once
	if target == 0 {
		once.Do(func() { close(reached) })
	}
	var wg sync.WaitGroup
	for w := 0; w < crashWriters; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed + int64(w)))
			for n := 0; ; n++ {
				recs := map[string]crashRecord{}
				var body bytes.Buffer
				body.WriteString(`{"workspace_name":"crash","dry_run":false,"records":{"crash_events":[`)
				for i, k := 0, 1+r.Intn(5); i < k; i++ {
					id := fmt.Sprintf("c%d-w%d-r%d-%d", cycle, w, n, i)
					rec := crashRecord{writer: int64(w), n: int64(n*10 + i)}
					recs[id] = rec
					if i > 0 {
						body.WriteByte(',')
					}
					fmt.Fprintf(&body, `{"record":{"event_id":%q,"ts":%q,"writer":%d,"n":%d}}`,
						id, time.Now().UTC().Format(time.RFC3339Nano), rec.writer, rec.n)
				}
				body.WriteString(`]}}`)
				st.mu.Lock()
				for id, rec := range recs {
					st.sent[id] = rec
				}
				st.mu.Unlock()
				resp, err := client.Post(ch.url+"/ingest", "application/json", &body)
				if err != nil {
					return // the node is gone
				}
				data, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if rerr != nil {
					return
				}
				if !assert.Equal(t, http.StatusOK, resp.StatusCode, "cycle %d: %s", cycle, data) {
					once.Do(func() { close(reached) }) // kill now; the test has failed
					return
				}
				st.mu.Lock()
				for id, rec := range recs {
					st.acked[id] = rec
				}
				st.mu.Unlock()
				if acks.Add(1) >= target {
					once.Do(func() { close(reached) })
				}
			}
		}(w)
	}
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		t.Errorf("cycle %d: %d of %d requests acknowledged within 60s", cycle, acks.Load(), target)
	}
	if aim {
		c.aimed++
		if !ch.killAtMaint(delay) {
			t.Errorf("cycle %d: the child started no flush or merge within 10s; its log: %s", cycle, tail(c.logFile))
		}
	}
	ch.kill()
	wg.Wait()
}

// verifyServed reads every acknowledged id from a running node with
// get-features-batch.
func verifyServed(t *testing.T, ch *child, acked map[string]crashRecord, stage string) {
	t.Helper()
	ids := sortedIDs(acked)
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 1000)]
		ids = ids[len(chunk):]
		var rows []string
		for _, id := range chunk {
			rows = append(rows, fmt.Sprintf(`{"join_key_map":{"event_id":%q}}`, id))
		}
		out := getFeaturesBatch(t, ch, "crash_fs", rows, stage)
		for i, id := range chunk {
			want := acked[id]
			f := out[i]
			require.Len(t, f, 2, stage)
			require.NotNil(t, f[0], "%s: acknowledged record %s is not served", stage, id)
			require.NotNil(t, f[1], "%s: acknowledged record %s is not served", stage, id)
			assert.Equal(t, fmt.Sprint(want.writer), *f[0], "%s: record %s", stage, id)
			assert.Equal(t, fmt.Sprint(want.n), *f[1], "%s: record %s", stage, id)
		}
	}
}

// verifyWritersServed reads the per-writer count and sum from a running
// node: they must be those of the records in the log.
func (c *crashRun) verifyWritersServed(ch *child, stage string) {
	t := c.t
	t.Helper()
	var rows []string
	for w := 0; w < crashWriters; w++ {
		rows = append(rows, fmt.Sprintf(`{"join_key_map":{"writer":%d}}`, w))
	}
	out := getFeaturesBatch(t, ch, "crash_writers_fs", rows, stage)
	var got writerTotals
	for w, f := range out {
		require.Len(t, f, 2, stage)
		for i, dst := range []*int64{&got[w].Count, &got[w].Sum} {
			if f[i] == nil {
				continue // nothing yet: 0
			}
			v, err := strconv.ParseInt(*f[i], 10, 64)
			require.NoError(t, err, "%s: writer %d", stage, w)
			*dst = v
		}
	}
	c.requireWriters(got, stage)
}

// requireWriters compares served per-writer totals with the log's.
func (c *crashRun) requireWriters(got writerTotals, stage string) {
	c.t.Helper()
	require.Equal(c.t, c.want, got,
		"%s: per writer, the count and sum of n served (actual) are not those of the records in the log (expected): a record lost or counted twice", stage)
}

// getFeaturesBatch posts one get-features-batch request for rows (request
// data items) to the child and returns each row's features. A child that
// does not answer within 60s fails the test with its goroutines.
func getFeaturesBatch(t *testing.T, ch *child, service string, rows []string, stage string) [][]*string {
	t.Helper()
	body := `{"params":{"workspace_name":"crash","feature_service_name":"` + service + `","request_data":[` + strings.Join(rows, ",") + `]}}`
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Post(ch.url+"/api/v1/feature-service/get-features-batch", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s: get-features-batch of %s: %v; the child's log since it started:\n%s", stage, service, err, ch.dump())
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", stage, data)
	var out struct {
		Result []struct {
			Features []*string `json:"features"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(data, &out), stage)
	require.Len(t, out.Result, len(rows), stage)
	res := make([][]*string, len(rows))
	for i, r := range out.Result {
		res[i] = r.Features
	}
	return res
}

// verifyInProcess opens the killed node's directory in this process:
// every acknowledged record is served, and so are the per-writer totals of
// the log; after Close the log still holds what it held.
func (c *crashRun) verifyInProcess(stage string) {
	t := c.t
	t.Helper()
	acked := c.st.ackedCopy()
	db, err := engine.Open(engine.Options{Dir: c.dir, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err, stage)
	ids := sortedIDs(acked)
	jks := make([]map[string]any, len(ids))
	for i, id := range ids {
		jks[i] = map[string]any{"event_id": id}
	}
	vecs, err := db.GetFeaturesBatch("crash", "crash_fs", jks, time.Time{})
	require.NoError(t, err, stage)
	for i, id := range ids {
		f := vecs[i].Features
		require.Equal(t, engine.Present, f[0].Status, "%s: acknowledged record %s is not served", stage, id)
		assert.Equal(t, acked[id].writer, f[0].Value.I, "%s: record %s", stage, id)
		assert.Equal(t, acked[id].n, f[1].Value.I, "%s: record %s", stage, id)
	}
	jks = jks[:0]
	for w := 0; w < crashWriters; w++ {
		jks = append(jks, map[string]any{"writer": int64(w)})
	}
	vecs, err = db.GetFeaturesBatch("crash", "crash_writers_fs", jks, time.Time{})
	require.NoError(t, err, stage)
	var got writerTotals
	for w, v := range vecs {
		if f := v.Features; f[0].Status == engine.Present {
			got[w].Count, got[w].Sum = f[0].Value.I, f[1].Value.I
		}
	}
	c.requireWriters(got, stage+", in process")
	require.NoError(t, db.Close(), stage)
	require.Equal(t, c.want, c.checkLog(stage+", after an in-process open"), "%s: opening changed the log", stage)
	t.Logf("%s: %d acknowledged records and the writers' totals verified in process", stage, len(ids))
}

// checkLog reads a copy of the log (so that the node, not this check,
// repairs a torn tail of the real one): it must hold every acknowledged
// record exactly once, and at most once records that were sent but not
// acknowledged, and nothing else. It returns the per-writer totals of the
// records it holds: what the node must serve.
func (c *crashRun) checkLog(stage string) writerTotals {
	t := c.t
	t.Helper()
	counts := logCounts(t, copyLog(t, c.dir, c.scratch), "crash_events", "event_id")
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	for id := range c.st.acked {
		require.Equal(t, 1, counts[id], "%s: acknowledged record %s is in the log %d times", stage, id, counts[id])
	}
	var totals writerTotals
	unacked := 0
	for id, n := range counts {
		rec, sent := c.st.sent[id]
		require.True(t, sent, "%s: the log holds record %s, which was never sent", stage, id)
		require.Equal(t, 1, n, "%s: record %s is in the log %d times", stage, id, n)
		totals[rec.writer].Count++
		totals[rec.writer].Sum += rec.n
		if _, ok := c.st.acked[id]; !ok {
			unacked++
		}
	}
	t.Logf("%s: the log holds the %d acknowledged records once each, and %d that were in flight at a kill", stage, len(c.st.acked), unacked)
	return totals
}

// copyLog copies the log of data directory dir into scratch, replacing
// any earlier copy, and returns the data directory of the copy.
func copyLog(t *testing.T, dir, scratch string) string {
	t.Helper()
	dst := filepath.Join(scratch, "wal")
	require.NoError(t, os.RemoveAll(dst))
	require.NoError(t, os.CopyFS(dst, os.DirFS(filepath.Join(dir, "wal"))))
	return scratch
}

// logCounts reads the log in dir directly and counts, per value of the
// String column col of source, the logged records.
func logCounts(t *testing.T, dir, source, col string) map[string]int {
	t.Helper()
	l, err := wal.Open(wal.Options{Dir: filepath.Join(dir, "wal"), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer l.Close()
	counts := map[string]int{}
	var e record.Entry
	err = l.Replay(1, func(seq uint64, payload []byte) error {
		if err := record.Decode(payload, &e); err != nil {
			return fmt.Errorf("log entry %d: %w", seq, err)
		}
		for si := range e.Sections {
			sec := &e.Sections[si]
			if sec.Source != source {
				continue
			}
			ci := -1
			for i, c := range sec.Columns {
				if c.Name == col {
					ci = i
				}
			}
			if ci < 0 {
				return fmt.Errorf("log entry %d: source %s has no column %s", seq, source, col)
			}
			for r := 0; r < sec.NumRows(); r++ {
				counts[sec.Row(r)[ci].S]++
			}
		}
		return nil
	})
	require.NoError(t, err)
	return counts
}

func sortedIDs(m map[string]crashRecord) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// TestRestartServesAcknowledged: records acknowledged by Ingest and
// IngestJSON are served after Close and Open, twice over, and the log
// holds each exactly once.
func TestRestartServesAcknowledged(t *testing.T) {
	dir := t.TempDir()
	open := func() *engine.DB {
		db, err := engine.Open(engine.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler), SegmentSize: 4 << 10})
		require.NoError(t, err)
		return db
	}
	db := open()
	_, err := db.Apply("crash.yaml", []byte(crashRepo))
	require.NoError(t, err)
	acked := map[string]crashRecord{}
	now := time.Now()
	for req := 0; req < 60; req++ {
		recs := []map[string]any{}
		for i := 0; i < 1+req%7; i++ {
			id := fmt.Sprintf("restart-%d-%d", req, i)
			rec := crashRecord{writer: int64(req % 3), n: int64(req*100 + i)}
			acked[id] = rec
			recs = append(recs, map[string]any{"event_id": id, "ts": now.Add(-time.Duration(req) * time.Second), "writer": rec.writer, "n": rec.n})
		}
		if req%2 == 0 {
			_, err = db.Ingest(&engine.IngestRequest{Workspace: "crash", Records: map[string][]map[string]any{"crash_events": recs}})
		} else {
			var rows []string
			for _, rec := range recs {
				rec["ts"] = rec["ts"].(time.Time).UTC().Format(time.RFC3339Nano)
				data, _ := json.Marshal(map[string]any{"record": rec})
				rows = append(rows, string(data))
			}
			_, err = db.IngestJSON([]byte(`{"workspace_name":"crash","dry_run":false,"records":{"crash_events":[`+strings.Join(rows, ",")+`]}}`), nil)
		}
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())
	_, err = db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "crash", Service: "crash_fs", JoinKeys: map[string]any{"event_id": "x"}})
	require.ErrorIs(t, err, engine.ErrClosed)

	for round := 0; round < 2; round++ {
		db = open()
		for id, want := range acked {
			vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "crash", Service: "crash_fs", JoinKeys: map[string]any{"event_id": id}})
			require.NoError(t, err)
			require.Equal(t, engine.Present, vec.Features[0].Status, "round %d: record %s", round, id)
			assert.Equal(t, want.writer, vec.Features[0].Value.I)
			assert.Equal(t, want.n, vec.Features[1].Value.I)
		}
		require.NoError(t, db.Close())
		counts := logCounts(t, dir, "crash_events", "event_id")
		require.Len(t, counts, len(acked))
		for id := range acked {
			require.Equal(t, 1, counts[id], "record %s", id)
		}
	}
}
