package dirlock

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// helperDirEnv, when set, turns the test binary into a lock-holding child:
// it locks the directory named by the variable, prints "locked" and holds
// the lock until its stdin is closed.
const helperDirEnv = "DIRLOCK_TEST_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperDirEnv); dir != "" {
		os.Exit(runHelper(dir))
	}
	goleak.VerifyTestMain(m)
}

func runHelper(dir string) int {
	l, err := Acquire(dir, "dirlock test helper")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin) // hold until the parent closes stdin
	if err := l.Release(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a helper process holding a lock.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startChild re-executes the test binary as a helper locking dir and waits
// until it reports that it holds the lock.
func startChild(t *testing.T, dir string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// atexit_sleep_ms=0: a -race child would otherwise linger 1s on exit.
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir, "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "child did not report the lock")
	require.Equal(t, "locked\n", line)
	return &child{cmd: cmd, stdin: stdin}
}

func TestAcquireReleaseReacquire(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "featurelog-data") // does not exist yet
	l, err := Acquire(dir, "featurelog serve --addr 127.0.0.1:8080")
	require.NoError(t, err)
	assert.Equal(t, dir, l.Dir())

	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.True(t, st.IsDir())
	assert.Equal(t, os.FileMode(0o755), st.Mode().Perm()&^umask())

	require.NoError(t, l.Release())
	require.NoError(t, l.Release(), "second Release is a no-op")
	_, err = os.Stat(filepath.Join(dir, FileName))
	require.NoError(t, err, "LOCK file stays after Release")

	l2, err := Acquire(dir, "again")
	require.NoError(t, err)
	require.NoError(t, l2.Release())
}

func TestLockFileDescribesHolder(t *testing.T) {
	dir := t.TempDir()
	before := time.Now().Add(-time.Second)
	l, err := Acquire(dir, "featurelog serve\n--addr 127.0.0.1:8080")
	require.NoError(t, err)
	defer l.Release()

	data, err := os.ReadFile(filepath.Join(dir, FileName))
	require.NoError(t, err)
	host, err := os.Hostname()
	require.NoError(t, err)
	line := string(data)
	require.True(t, strings.HasSuffix(line, ")\n"), "one line: %q", line)
	prefix := fmt.Sprintf("pid %d on host %s (featurelog serve --addr 127.0.0.1:8080, since ", os.Getpid(), host)
	require.True(t, strings.HasPrefix(line, prefix), "got %q, want prefix %q", line, prefix)
	since, err := time.Parse(time.RFC3339, strings.TrimSuffix(line[len(prefix):], ")\n"))
	require.NoError(t, err)
	assert.False(t, since.Before(before.Truncate(time.Second)))
	assert.False(t, since.After(time.Now()))
}

func TestStaleFileIsOverwritten(t *testing.T) {
	dir := t.TempDir()
	stale := strings.Repeat("pid 99999 on host gone (old holder with a long description)\n", 10)
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte(stale), 0o644))

	l, err := Acquire(dir, "new holder")
	require.NoError(t, err)
	defer l.Release()
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	require.NoError(t, err)
	assert.NotContains(t, string(data), "99999")
	assert.Contains(t, string(data), "(new holder, since ")
	assert.Equal(t, 1, strings.Count(string(data), "\n"))
}

// TestSecondAcquireInSameProcessFails checks that flock on a second open
// file description conflicts even within one process.
func TestSecondAcquireInSameProcessFails(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, "first holder")
	require.NoError(t, err)

	l2, err := Acquire(dir, "second holder")
	require.Error(t, err)
	assert.Nil(t, l2)
	assert.ErrorIs(t, err, ErrLocked)
	var held *HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, dir, held.Dir)
	assert.Contains(t, held.Holder, fmt.Sprintf("pid %d on host ", os.Getpid()))
	assert.Contains(t, held.Holder, "(first holder, since ")
	assert.NotContains(t, held.Holder, "second holder")

	msg := err.Error()
	assert.True(t, strings.HasPrefix(msg, fmt.Sprintf("data directory %q is in use by pid %d on host ", dir, os.Getpid())), msg)
	assert.True(t, strings.HasSuffix(msg, "); stop that process or use another --data directory"), msg)

	// The failed attempt must not have disturbed the holder's description.
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	require.NoError(t, err)
	assert.Contains(t, string(data), "(first holder, since ")

	require.NoError(t, l.Release())
	l3, err := Acquire(dir, "third holder")
	require.NoError(t, err)
	require.NoError(t, l3.Release())
}

func TestHeldErrorWithEmptyFile(t *testing.T) {
	// A holder that has locked the file but not yet written to it.
	dir := t.TempDir()
	f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	defer f.Close()
	held, err := tryLock(f)
	require.NoError(t, err)
	require.False(t, held)

	_, err = Acquire(dir, "x")
	var he *HeldError
	require.ErrorAs(t, err, &he)
	assert.Equal(t, unknownHolder, he.Holder)
	assert.Contains(t, err.Error(), "is in use by another process")
}

func TestChildProcessHoldsLock(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, dir)

	_, err := Acquire(dir, "parent")
	require.ErrorIs(t, err, ErrLocked)
	var held *HeldError
	require.ErrorAs(t, err, &held)
	assert.Contains(t, held.Holder, fmt.Sprintf("pid %d on host ", c.cmd.Process.Pid))
	assert.Contains(t, held.Holder, "(dirlock test helper, since ")
	assert.Contains(t, err.Error(), fmt.Sprintf("in use by pid %d ", c.cmd.Process.Pid))

	// Closing stdin makes the child release and exit cleanly.
	require.NoError(t, c.stdin.Close())
	require.NoError(t, c.cmd.Wait())
	l, err := Acquire(dir, "parent")
	require.NoError(t, err)
	require.NoError(t, l.Release())
}

func TestLockReleasedWhenChildKilled(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, dir)
	_, err := Acquire(dir, "parent")
	require.ErrorIs(t, err, ErrLocked)

	require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
	err = c.cmd.Wait() // reaped: the kernel has closed its files and dropped the flock
	var exitErr *exec.ExitError
	require.True(t, errors.As(err, &exitErr), "want a killed child, got %v", err)

	l, err := Acquire(dir, "parent")
	require.NoError(t, err)
	defer l.Release()
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	require.NoError(t, err)
	assert.Contains(t, string(data), fmt.Sprintf("pid %d ", os.Getpid()))
}

func TestAcquireErrors(t *testing.T) {
	_, err := Acquire("", "x")
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrLocked)

	// dir exists as a regular file.
	file := filepath.Join(t.TempDir(), "not-a-dir")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err = Acquire(file, "x")
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrLocked)
	assert.Contains(t, err.Error(), "dirlock: ")
}

func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}
