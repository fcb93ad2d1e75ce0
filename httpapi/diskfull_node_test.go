//go:build linux

package httpapi_test

// The node of TestDiskFull (diskfull_test.go): the child process that
// serves under a file-size limit, and the parent's handle on it.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// The environment of TestDiskFullChild. Its presence (dfDirEnv, the data
// directory) makes it run the node instead of skipping.
const (
	dfDirEnv     = "FEATURELOG_DISKFULL_DIR"
	dfFsizeEnv   = "FEATURELOG_DISKFULL_FSIZE"   // RLIMIT_FSIZE in bytes; unset: no limit
	dfSegmentEnv = "FEATURELOG_DISKFULL_SEGMENT" // engine Options.SegmentSize (the log's)
	dfFlushEnv   = "FEATURELOG_DISKFULL_FLUSH"   // engine Options.FlushRecords
	// dfMaintainEnv is a duration: the child also flushes and merges
	// (Flush, Compact) that often, announcing failures on stderr
	// (dfMaintFailed).
	dfMaintainEnv = "FEATURELOG_DISKFULL_MAINTAIN"
)

// dfMaintFailed starts the lines on which the child announces a failed
// flush or merge of its own.
const dfMaintFailed = "FEATURELOG_DISKFULL_MAINT failed"

// dfAddrPrefix starts the line on which the child prints its address.
const dfAddrPrefix = "FEATURELOG_DISKFULL_ADDR="

// dfWriters is how many goroutines ingest; a record's writer column is the
// goroutine's index.
const dfWriters = 4

const dfRepo = `workspace: df
entities:
  - name: event
    join_keys: [event_id]
  - name: writer
    join_keys: [writer]
sources:
  - name: df_events
    schema:
      - {name: event_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: writer, type: Int64}
      - {name: n, type: Int64}
feature_views:
  - name: df_fv
    source: df_events
    entities: [event]
    timestamp_field: ts
    features:
      - attribute: {name: writer}
      - attribute: {name: n}
  - name: df_writers
    source: df_events
    entities: [writer]
    timestamp_field: ts
    features:
      - aggregate: {input: n, function: count, window: lifetime, name: n_count}
      - aggregate: {input: n, function: sum, window: lifetime, name: n_sum}
feature_services:
  - name: df_fs
    features: [df_fv]
  - name: df_writers_fs
    features: [df_writers]
`

// TestDiskFullChild is the node of TestDiskFull. It serves until it is
// killed or its stdin closes, then closes the engine.
func TestDiskFullChild(t *testing.T) {
	dir := os.Getenv(dfDirEnv)
	if dir == "" {
		t.Skip("helper process of TestDiskFull")
	}
	opts := engine.Options{Dir: dir, Holder: "TestDiskFullChild", CompactionFanIn: 2,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	var err error
	for env, dst := range map[string]*int{dfSegmentEnv: &opts.SegmentSize, dfFlushEnv: &opts.FlushRecords} {
		if s := os.Getenv(env); s != "" {
			*dst, err = strconv.Atoi(s)
			require.NoError(t, err, env)
		}
	}
	if s := os.Getenv(dfFsizeEnv); s != "" {
		limit, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, dfFsizeEnv)
		// Without this the kernel kills the process at the first write
		// past the limit; ignored, the write fails with EFBIG.
		signal.Ignore(syscall.SIGXFSZ)
		var rl syscall.Rlimit
		require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &rl))
		rl.Cur = limit
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &rl))
	}
	db, err := engine.Open(opts)
	require.NoError(t, err)
	_, err = db.Apply("df.yaml", []byte(dfRepo))
	require.NoError(t, err)
	srv, err := httpapi.New(db, httpapi.Options{Addr: "127.0.0.1:0", NoAuth: true, Logger: opts.Logger})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	if s := os.Getenv(dfMaintainEnv); s != "" {
		every, err := time.ParseDuration(s)
		require.NoError(t, err, dfMaintainEnv)
		go dfMaintain(db, every)
	}
	err = srv.ListenAndServe(ctx, func(a net.Addr) { fmt.Printf("%s%s\n", dfAddrPrefix, a) })
	require.NoError(t, err)
	// Close reports the log's failure, if any: that is expected here.
	fmt.Fprintf(os.Stderr, "FEATURELOG_DISKFULL_CLOSE err=%v\n", db.Close())
}

// dfMaintain flushes and merges every period until the engine closes.
func dfMaintain(db *engine.DB, every time.Duration) {
	for range time.Tick(every) {
		for op, fn := range map[string]func() error{"flush": db.Flush, "merge": db.Compact} {
			err := fn()
			if errors.Is(err, engine.ErrClosed) {
				return
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s %s: %v\n", dfMaintFailed, op, err)
			}
		}
	}
}

// dfNode is one run of the child node.
type dfNode struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *dfLog
	exited chan struct{} // closed once the child is reaped
	url    string
	client *http.Client
}

// dfLog collects a child's output: its stderr, and its stdout after the
// address line.
type dfLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *dfLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *dfLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startDFNode starts the node on dir with env added to its environment and
// waits for its address.
func startDFNode(t *testing.T, dir string, env ...string) *dfNode {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullChild$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), dfDirEnv+"="+dir), env...)
	n := &dfNode{cmd: cmd, stderr: &dfLog{}, exited: make(chan struct{}),
		client: &http.Client{Timeout: 30 * time.Second}}
	cmd.Stderr = n.stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	n.stdin, err = cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(n.kill)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), dfAddrPrefix); ok {
				addr <- a
				break
			}
		}
		io.Copy(n.stderr, stdout) // the child test's own output, after the address
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		require.True(t, ok, "the node exited before serving; its log:\n%s", n.stderr)
		n.url = "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatalf("the node did not start within 60s; its log:\n%s", n.stderr)
	}
	return n
}

// kill SIGKILLs the node and waits until it is reaped.
func (n *dfNode) kill() {
	n.cmd.Process.Kill()
	<-n.exited
}

// checkLog fails the test if the node's log reports a race or a panic.
func (n *dfNode) checkLog(t *testing.T) {
	t.Helper()
	log := n.stderr.String()
	for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "--- FAIL"} {
		if i := strings.Index(log, bad); i >= 0 {
			t.Errorf("the node reported a failure in its log:\n%s", log[i:min(len(log), i+4000)])
		}
	}
}

// stop closes the node's stdin, so that it shuts down and closes the
// engine, and waits for it to exit.
func (n *dfNode) stop(t *testing.T) {
	t.Helper()
	n.stdin.Close()
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		n.kill()
		t.Fatalf("the node did not stop within 30s; its log:\n%s", n.stderr)
	}
	n.checkLog(t)
}

// post posts body to path and returns the answer; a transport error fails
// the test and returns status 0. It is safe in any goroutine.
func (n *dfNode) post(t *testing.T, path, body string) (int, []byte) {
	t.Helper()
	resp, err := n.client.Post(n.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Errorf("POST %s: %v", path, err)
		return 0, nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("POST %s: reading the answer: %v", path, err)
		return 0, nil
	}
	return resp.StatusCode, data
}

func (n *dfNode) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := n.client.Get(n.url + path)
	require.NoError(t, err, "GET %s", path)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, data
}
