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
// flushes and merges. TestCrashKillHistorical (crash_historical_test.go)
// adds historical reads, in the node and over HTTP, aims kills at them
// too, and checks historical reads after every restart.
//
// The harness is split by concern: this file drives the cycles and the
// writers, crash_child_test.go is the child node and the parent's handle
// on it, crash_verify_test.go holds the checks.
//
//	go test ./engine -run TestCrashKill -crash.cycles=200
//	go test ./engine -run TestCrashKillHistorical -crash.cycles=1000 -timeout 2h   # the long campaign

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
)

var crashCycles = flag.Int("crash.cycles", 0,
	"kill/restart cycles of TestCrashKill, TestCrashKillCompaction and TestCrashKillHistorical (0: their defaults, 50, 20 and 30)")

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

// crashState is what the parent knows: every id sent and every id
// acknowledged, and per writer the totals of each.
type crashState struct {
	mu          sync.Mutex
	sent        map[string]crashRecord
	acked       map[string]crashRecord
	sentTotals  writerTotals
	ackedTotals writerTotals
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

// addLocked adds recs to m and to the totals t.
func addLocked(m map[string]crashRecord, t *writerTotals, recs map[string]crashRecord) {
	for id, rec := range recs {
		m[id] = rec
		t[rec.writer].Count++
		t[rec.writer].Sum += rec.n
	}
}

// totals returns the per-writer totals of the records acknowledged and
// of those sent so far.
func (s *crashState) totals() (acked, sent writerTotals) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ackedTotals, s.sentTotals
}

// crashConfig is a crash test's node and workload.
type crashConfig struct {
	cycles    int      // kill/restart cycles (-crash.cycles overrides; -short caps at 5)
	maxTarget int      // requests acknowledged before a kill: uniform in [0, maxTarget)
	env       []string // added to the child's environment: its engine options
	// aimAtMaint is the share of kills aimed at an operation the child
	// announces (a flush, merge or historical read): once the target is
	// reached, the child dies 0–aimDelay after it next announces one of
	// aimOps starting (chosen at random; nil: any). The child must
	// announce them (crashMaintainEnv, crashHistoricalEnv).
	aimAtMaint float64
	aimDelay   time.Duration
	aimOps     []string
	// afterKill, if set, inspects the data directory a kill left, before
	// anything recovers it; op is the announced operation the kill
	// interrupted, "" if none.
	afterKill func(t *testing.T, dir, stage, op string)
	// afterStart, if set, checks a restarted node further, after the
	// checks of every crash test; c.want is what it must serve.
	afterStart func(c *crashRun, ch *child, stage string)
	// reader, if set, runs beside the writers until the kill: it must
	// return once a request to the node fails.
	reader func(c *crashRun, ch *child, cycle int)
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
	verifyServed(c.t, ch, c.servedSample(cycle), stage)
	c.verifyWritersServed(ch, stage)
	if c.cfg.afterStart != nil {
		c.cfg.afterStart(c, ch, stage)
	}
	target := int64(c.r.Intn(c.cfg.maxTarget)) // acknowledged requests before the kill; 0: at once
	aim := ""
	if c.r.Float64() < c.cfg.aimAtMaint {
		aim = "any"
		if len(c.cfg.aimOps) > 0 {
			aim = c.cfg.aimOps[c.r.Intn(len(c.cfg.aimOps))]
		}
	}
	delay := time.Duration(c.r.Int63n(int64(c.cfg.aimDelay) + 1))
	c.ingestUntilKilled(ch, cycle, target, c.r.Int63(), aim, delay)

	stage = fmt.Sprintf("cycle %d, after kill", cycle)
	op, errs := ch.log.state()
	assert.Empty(c.t, errs[:min(len(errs), 5)], "%s: the child's flushes, merges or historical reads failed (%d times; the first 5)", stage, len(errs))
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

// crashServedSample bounds the acknowledged records of cycles before the
// last whose service is checked after a restart: every record of the last
// cycle is checked, and a random sample of this many of the others. The
// per-writer totals (served and in the log) and checkLog still cover every
// record at every cycle; the sample keeps a long campaign's cycles from
// slowing down as records accumulate.
const crashServedSample = 2000

// servedSample returns the acknowledged records that the restart of cycle
// checks by id.
func (c *crashRun) servedSample(cycle int) map[string]crashRecord {
	acked := c.st.ackedCopy()
	if len(acked) <= crashServedSample {
		return acked
	}
	last := fmt.Sprintf("c%d-", cycle-1)
	out := map[string]crashRecord{}
	var older []string
	for id, rec := range acked {
		if strings.HasPrefix(id, last) {
			out[id] = rec
		} else {
			older = append(older, id)
		}
	}
	slices.Sort(older) // map order is not the seed's
	c.r.Shuffle(len(older), func(i, j int) { older[i], older[j] = older[j], older[i] })
	for _, id := range older[:min(len(older), crashServedSample)] {
		out[id] = acked[id]
	}
	return out
}

// ingestUntilKilled runs writers against the child until target requests
// have been acknowledged, then SIGKILLs the child with requests in flight:
// at once, or, if aim is set, delay after the child next announces that
// operation starting ("any": any operation).
func (c *crashRun) ingestUntilKilled(ch *child, cycle int, target, seed int64, aim string, delay time.Duration) {
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
	if c.cfg.reader != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.cfg.reader(c, ch, cycle)
		}()
	}
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
				addLocked(st.sent, &st.sentTotals, recs)
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
				addLocked(st.acked, &st.ackedTotals, recs)
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
	if aim != "" {
		c.aimed++
		op := aim
		if op == "any" {
			op = ""
		}
		if !ch.killAt(op, delay) {
			t.Errorf("cycle %d: the child started no %s operation within 10s; its log: %s", cycle, aim, tail(c.logFile))
		}
	}
	ch.kill()
	wg.Wait()
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
	_, err := db.ApplyWait(context.Background(), "crash.yaml", []byte(crashRepo))
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
