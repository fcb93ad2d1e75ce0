package engine_test

// The child side of the crash tests: the node TestCrashChild runs, and
// the parent's handle on it.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"slices"
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
	work, err := crashChildOptions(&opts)
	require.NoError(t, err)
	db, err := engine.Open(opts)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ApplyWait(context.Background(), "crash.yaml", []byte(crashRepo))
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
		if work.maintain > 0 {
			go crashMaintain(db, work.maintain)
		}
		if work.historical > 0 {
			go crashHistorical(db, work.historical)
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

// The environment of TestCrashChild that sets its engine options; unset,
// the engine's defaults.
const (
	crashFlushRecordsEnv = "FEATURELOG_CRASH_FLUSH_RECORDS" // Options.FlushRecords
	crashFanInEnv        = "FEATURELOG_CRASH_FANIN"         // Options.CompactionFanIn
	// crashMaintainEnv is a duration: the child runs crashMaintain,
	// pausing up to that long between operations.
	crashMaintainEnv = "FEATURELOG_CRASH_MAINTAIN"
	// crashHistoricalEnv is a duration: the child runs crashHistorical
	// (crash_historical_test.go), pausing up to that long between reads.
	crashHistoricalEnv = "FEATURELOG_CRASH_HISTORICAL"
)

// crashMaintPrefix starts the lines on which a child announces its
// background work on stderr: "begin <op>", "end <op>" and
// "error <op>: <err>", op being flush, merge or merge-all (crashMaintain)
// or historical (crashHistorical).
const crashMaintPrefix = "FEATURELOG_CRASH_MAINT "

// crashWork is the background work of a child: the pause bounds of
// crashMaintain and crashHistorical, 0 for none.
type crashWork struct{ maintain, historical time.Duration }

// crashChildOptions sets the child's engine options from the environment
// and returns its background work.
func crashChildOptions(opts *engine.Options) (crashWork, error) {
	var w crashWork
	var err error
	for _, o := range []struct {
		env string
		dst *int
	}{{crashFlushRecordsEnv, &opts.FlushRecords}, {crashFanInEnv, &opts.CompactionFanIn}} {
		if s := os.Getenv(o.env); s != "" {
			if *o.dst, err = strconv.Atoi(s); err != nil {
				return w, fmt.Errorf("%s: %w", o.env, err)
			}
		}
	}
	for _, o := range []struct {
		env string
		dst *time.Duration
	}{{crashMaintainEnv, &w.maintain}, {crashHistoricalEnv, &w.historical}} {
		if s := os.Getenv(o.env); s != "" {
			if *o.dst, err = time.ParseDuration(s); err != nil {
				return w, fmt.Errorf("%s: %w", o.env, err)
			}
		}
	}
	return w, nil
}

// crashMaintain flushes and merges until the process dies, pausing up to
// pause between operations: a flush, then a merge of what is due, every
// fifth merge one of everything (CompactAll). It announces each operation
// on stderr (crashMaintPrefix). An operation that finds the background
// maintainer at work waits for it (they share a lock), so the time between
// "begin" and "end" is always a flush or merge at work, this one's or the
// maintainer's.
func crashMaintain(db *engine.DB, pause time.Duration) {
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; ; i++ {
		time.Sleep(time.Duration(r.Int63n(int64(pause))))
		op, fn := "flush", db.Flush
		switch {
		case i%10 == 9:
			op, fn = "merge-all", db.CompactAll
		case i%2 == 1:
			op, fn = "merge", db.Compact
		}
		fmt.Fprintf(os.Stderr, "%sbegin %s\n", crashMaintPrefix, op)
		err := fn()
		if errors.Is(err, engine.ErrClosed) {
			return
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%serror %s: %v\n", crashMaintPrefix, op, err)
		}
		fmt.Fprintf(os.Stderr, "%send %s\n", crashMaintPrefix, op)
	}
}

// childLog is a child's stderr: it appends it to the shared log file and
// follows the child's announcements (crashMaintPrefix lines).
type childLog struct {
	file *os.File
	// mu guards the fields below; Write runs on exec's copying goroutine.
	mu struct {
		sync.Mutex
		line    []byte         // the unfinished last line
		running map[string]int // the announced operations running, by name
		errs    []string       // failures the child announced
		aim     func()         // if set, called once, as the next aimOp begins
		aimOp   string         // the operation aim waits for; "" any
	}
}

func (l *childLog) Write(p []byte) (int, error) {
	if _, err := l.file.Write(p); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.line = append(l.mu.line, p...)
	for {
		i := bytes.IndexByte(l.mu.line, '\n')
		if i < 0 {
			break
		}
		l.lineLocked(string(l.mu.line[:i]))
		l.mu.line = append(l.mu.line[:0], l.mu.line[i+1:]...)
	}
	return len(p), nil
}

func (l *childLog) lineLocked(line string) {
	msg, ok := strings.CutPrefix(line, crashMaintPrefix)
	if !ok {
		return
	}
	verb, op, _ := strings.Cut(msg, " ")
	switch verb {
	case "begin":
		if l.mu.running == nil {
			l.mu.running = map[string]int{}
		}
		l.mu.running[op]++
		if l.mu.aim != nil && (l.mu.aimOp == "" || l.mu.aimOp == op) {
			l.mu.aim()
			l.mu.aim = nil
		}
	case "end":
		if l.mu.running[op]--; l.mu.running[op] <= 0 {
			delete(l.mu.running, op)
		}
	case "error":
		l.mu.errs = append(l.mu.errs, op)
	}
}

func (l *childLog) aimAt(op string, f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.aim, l.mu.aimOp = f, op
}

// state returns the operations running, sorted and joined by "+" ("" if
// none), and the failures announced so far; after the child's death, the
// operations its kill interrupted.
func (l *childLog) state() (ops string, errs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, 0, len(l.mu.running))
	for op := range l.mu.running {
		names = append(names, op)
	}
	slices.Sort(names)
	return strings.Join(names, "+"), slices.Clone(l.mu.errs)
}

// killAt kills the child delay after it next announces op ("" any
// operation) starting; it reports false if none started within 10s.
func (c *child) killAt(op string, delay time.Duration) bool {
	fired := make(chan struct{})
	c.log.aimAt(op, func() {
		go func() {
			time.Sleep(delay)
			c.cmd.Process.Kill() // kill reaps the child
			close(fired)
		}()
	})
	select {
	case <-fired:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}
