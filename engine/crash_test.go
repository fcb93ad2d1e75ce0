package engine_test

// Crash tests (SPEC §9): a 200 from /ingest means the records are durable.
//
// TestCrashKill runs a real node (engine + httpapi on 127.0.0.1:0) in a
// child process (this test binary re-executed as TestCrashChild), ingests
// into it over HTTP from several goroutines, SIGKILLs it at random moments
// and restarts it on the same data directory. After every restart every
// acknowledged record must be served, and the log must hold every
// acknowledged record exactly once and no record that was never sent.
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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/wal"
)

var crashCycles = flag.Int("crash.cycles", 50, "kill/restart cycles of TestCrashKill")

// crashChildEnv names the data directory of the child node; its presence
// makes TestCrashChild run the node instead of skipping.
const crashChildEnv = "FEATURELOG_CRASH_CHILD_DIR"

// crashAddrPrefix starts the line on which the child prints its address.
const crashAddrPrefix = "FEATURELOG_CRASH_ADDR="

const crashRepo = `workspace: crash
entities:
  - name: event
    join_keys: [event_id]
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
feature_services:
  - name: crash_fs
    features: [crash_fv]
`

// crashRecord is what was sent for one event id.
type crashRecord struct{ writer, n int64 }

// TestCrashChild is the child node of TestCrashKill. It serves until it is
// killed, or until its stdin closes (the parent is gone).
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashKill")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := engine.Open(engine.Options{Dir: dir, Logger: logger, Holder: "TestCrashChild"})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Apply("crash.yaml", []byte(crashRepo))
	require.NoError(t, err)
	srv, err := httpapi.New(db, httpapi.Options{Addr: "127.0.0.1:0", NoAuth: true, Logger: logger})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	err = srv.ListenAndServe(ctx, func(a net.Addr) {
		fmt.Fprintf(os.Stdout, "%s%s\n", crashAddrPrefix, a)
	})
	require.NoError(t, err)
}

// child is one run of the child node.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string
}

// startChild starts the node on dir and waits for its address.
func startChild(t *testing.T, dir string, logFile *os.File) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, stdin: stdin}
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

// kill SIGKILLs the child and reaps it. It is idempotent.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Kill()
	c.cmd.Wait()
	c.stdin.Close()
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

func TestCrashKill(t *testing.T) {
	cycles := *crashCycles
	if testing.Short() {
		cycles = min(cycles, 5)
	}
	seed := time.Now().UnixNano()
	r := rand.New(rand.NewSource(seed))
	t.Logf("seed %d, %d cycles", seed, cycles)
	dir := filepath.Join(t.TempDir(), "data")
	logFile, err := os.Create(filepath.Join(t.TempDir(), "child.log"))
	require.NoError(t, err)
	defer logFile.Close()
	st := &crashState{sent: map[string]crashRecord{}, acked: map[string]crashRecord{}}

	for cycle := 0; cycle < cycles; cycle++ {
		c := startChild(t, dir, logFile)
		verifyServed(t, c.url, st.ackedCopy(), fmt.Sprintf("cycle %d, after restart", cycle))
		target := int64(r.Intn(40)) // acknowledged requests before the kill; 0: at once
		ingestUntilKilled(t, c, st, cycle, target, r.Int63())
		if cycle%2 == 1 {
			// Every other cycle the parent recovers the directory itself and
			// counts; otherwise the child recovers what the kill left.
			verifyInProcess(t, dir, st, fmt.Sprintf("cycle %d, after kill", cycle))
		}
	}
	verifyInProcess(t, dir, st, "after the last kill")
	st.mu.Lock()
	defer st.mu.Unlock()
	t.Logf("%d records sent, %d acknowledged", len(st.sent), len(st.acked))
	require.NotEmpty(t, st.acked, "no request was ever acknowledged")
}

// ingestUntilKilled runs writers against the child until target requests
// have been acknowledged, then SIGKILLs the child with requests in flight.
func ingestUntilKilled(t *testing.T, c *child, st *crashState, cycle int, target, seed int64) {
	const writers = 4
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	var acks atomic.Int64
	reached := make(chan struct{})
	var once sync.Once
	if target == 0 {
		once.Do(func() { close(reached) })
	}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
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
				resp, err := client.Post(c.url+"/ingest", "application/json", &body)
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
	c.kill()
	wg.Wait()
}

// verifyServed reads every acknowledged id from a running node with
// get-features-batch.
func verifyServed(t *testing.T, url string, acked map[string]crashRecord, stage string) {
	t.Helper()
	ids := sortedIDs(acked)
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 1000)]
		ids = ids[len(chunk):]
		var rows []string
		for _, id := range chunk {
			rows = append(rows, fmt.Sprintf(`{"join_key_map":{"event_id":%q}}`, id))
		}
		body := `{"params":{"workspace_name":"crash","feature_service_name":"crash_fs","request_data":[` + strings.Join(rows, ",") + `]}}`
		resp, err := http.Post(url+"/api/v1/feature-service/get-features-batch", "application/json", strings.NewReader(body))
		require.NoError(t, err, stage)
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
		require.Len(t, out.Result, len(chunk), stage)
		for i, id := range chunk {
			want := acked[id]
			f := out.Result[i].Features
			require.Len(t, f, 2, stage)
			require.NotNil(t, f[0], "%s: acknowledged record %s is not served", stage, id)
			require.NotNil(t, f[1], "%s: acknowledged record %s is not served", stage, id)
			assert.Equal(t, fmt.Sprint(want.writer), *f[0], "%s: record %s", stage, id)
			assert.Equal(t, fmt.Sprint(want.n), *f[1], "%s: record %s", stage, id)
		}
	}
}

// verifyInProcess opens the killed node's directory in this process:
// every acknowledged record is served, and the log holds each of them
// exactly once and nothing that was never sent.
func verifyInProcess(t *testing.T, dir string, st *crashState, stage string) {
	t.Helper()
	st.mu.Lock()
	defer st.mu.Unlock()
	db, err := engine.Open(engine.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err, stage)
	ids := sortedIDs(st.acked)
	jks := make([]map[string]any, len(ids))
	for i, id := range ids {
		jks[i] = map[string]any{"event_id": id}
	}
	vecs, err := db.GetFeaturesBatch("crash", "crash_fs", jks, time.Time{})
	require.NoError(t, err, stage)
	for i, id := range ids {
		f := vecs[i].Features
		require.Equal(t, engine.Present, f[0].Status, "%s: acknowledged record %s is not served", stage, id)
		assert.Equal(t, st.acked[id].writer, f[0].Value.I, "%s: record %s", stage, id)
		assert.Equal(t, st.acked[id].n, f[1].Value.I, "%s: record %s", stage, id)
	}
	require.NoError(t, db.Close(), stage)

	counts := logCounts(t, dir, "crash_events", "event_id")
	for _, id := range ids {
		require.Equal(t, 1, counts[id], "%s: acknowledged record %s is in the log %d times", stage, id, counts[id])
	}
	unacked := 0
	for id, n := range counts {
		_, sent := st.sent[id]
		require.True(t, sent, "%s: the log holds record %s, which was never sent", stage, id)
		require.Equal(t, 1, n, "%s: record %s is in the log %d times", stage, id, n)
		if _, ok := st.acked[id]; !ok {
			unacked++
		}
	}
	t.Logf("%s: %d acknowledged records verified; %d records in the log were in flight at a kill", stage, len(ids), unacked)
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
