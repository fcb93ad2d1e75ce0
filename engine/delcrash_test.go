//go:build unix

package engine

// SIGKILL at random instants of deletion jobs (issue #12): a child process
// opens a data directory that holds the deleted users' records in the
// batch file, merged and flushed segments, the memtable and the log,
// requests the deletion (unless it already did), sends more records after
// the request, and waits for the job; it is killed again and again, at
// random delays after its open and right before a random one of its file
// operations (log seal and rewrite, segment rewrites, manifest switches,
// the flush), and each restart resumes the job. After every kill the log
// still holds every acknowledged record of the other keys, once. At the
// end of each round the job has succeeded, once; reads equal a reference
// built without the deleted users' records acknowledged before the
// request; and no byte of those records is on disk, while a kept key's
// marker and the records sent after the request are.

import (
	"context"
	"fmt"
	"math/rand/v2"
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

	"github.com/featurelog/featurelog/vfs"
)

const (
	delCrashEnv     = "FEATURELOG_DEL_CRASH_DIR"
	delCrashKillEnv = "FEATURELOG_DEL_CRASH_KILL_OP" // the child kills itself before this operation
	// The fixture: pre-request events (some in the batch file), and the
	// events the child sends after the request, delCrashChunk a request.
	delCrashSeed  = 101
	delCrashPre   = 1000
	delCrashPost  = 240
	delCrashChunk = 20
)

// delCrashFS counts the child's file operations that change the disk,
// appends each to a trace file (one write each, so that a kill leaves the
// trace complete up to the op it interrupted), and SIGKILLs the process
// right before operation killAt.
type delCrashFS struct {
	vfs.FS
	n      atomic.Int64
	killAt int64
	mu     sync.Mutex
	trace  *os.File
}

func (f *delCrashFS) op(op, path string) {
	n := f.n.Add(1)
	f.mu.Lock()
	fmt.Fprintf(f.trace, "%d %s %s\n", n, op, path)
	f.mu.Unlock()
	if n == f.killAt {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

func (f *delCrashFS) Create(name string) (vfs.File, error) {
	f.op("create", name)
	return f.wrap(f.FS.Create(name))
}

func (f *delCrashFS) CreateExclusive(name string) (vfs.File, error) {
	f.op("create", name)
	return f.wrap(f.FS.CreateExclusive(name))
}

func (f *delCrashFS) OpenWrite(name string) (vfs.File, error) {
	f.op("openwrite", name)
	return f.wrap(f.FS.OpenWrite(name))
}

func (f *delCrashFS) Rename(oldpath, newpath string) error {
	f.op("rename", oldpath+" "+newpath)
	return f.FS.Rename(oldpath, newpath)
}

func (f *delCrashFS) Remove(name string) error {
	f.op("remove", name)
	return f.FS.Remove(name)
}

func (f *delCrashFS) SyncDir(dir string) error {
	f.op("syncdir", dir)
	return f.FS.SyncDir(dir)
}

// NoteWrite implements vfs.WriteNoter: the log's appends to its tail.
func (f *delCrashFS) NoteWrite(path string, n int) error {
	f.op("append", path)
	return vfs.NoteWrite(f.FS, path, n)
}

func (f *delCrashFS) wrap(file vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &delCrashFile{File: file, fs: f}, nil
}

type delCrashFile struct {
	vfs.File
	fs *delCrashFS
}

func (f *delCrashFile) Write(p []byte) (int, error) {
	f.fs.op("write", f.Name())
	return f.File.Write(p)
}

func (f *delCrashFile) Sync() error {
	f.fs.op("sync", f.Name())
	return f.File.Sync()
}

func (f *delCrashFile) Truncate(size int64) error {
	f.fs.op("truncate", f.Name())
	return f.File.Truncate(size)
}

func (f *delCrashFile) Close() error {
	f.fs.op("close", f.Name())
	return f.File.Close()
}

// TestDelCrashChild is the child: it drives the deletion to its end and
// says so ("opened", "settled").
func TestDelCrashChild(t *testing.T) {
	dir := os.Getenv(delCrashEnv)
	if dir == "" {
		t.Skip("helper process of TestDeletionSurvivesSIGKILL")
	}
	trace, err := os.OpenFile(filepath.Join(dir, "ops"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	require.NoError(t, err)
	defer trace.Close()
	fs := &delCrashFS{FS: vfs.Default, trace: trace}
	if s := os.Getenv(delCrashKillEnv); s != "" {
		fs.killAt, err = strconv.ParseInt(s, 10, 64)
		require.NoError(t, err)
	}
	f := newDelFixture(delCrashSeed, delCrashPre, delCrashPost)
	db, err := Open(delOptions(filepath.Join(dir, "data"), fs, true)) // a SIGKILL keeps the page cache
	require.NoError(t, err)
	defer db.Close()
	fmt.Println("opened")

	jobs, err := db.Jobs("bf", JobFilter{Type: JobDeletion})
	require.NoError(t, err)
	var id string
	if len(jobs) == 0 {
		j, err := db.DeleteKeys("bf", "latest", delRequest(true, true))
		require.NoError(t, err)
		id = j.ID
	} else {
		require.Len(t, jobs, 1)
		id = jobs[0].ID
	}
	noted := make(chan struct{})
	go func() { // mark the job's end in the trace
		defer close(noted)
		if j, err := db.WaitJob(context.Background(), "bf", id); err == nil && j.State == JobSuccess {
			fs.mu.Lock()
			fmt.Fprintf(fs.trace, "%d job-succeeded -\n", fs.n.Load())
			fs.mu.Unlock()
			fmt.Println("job-succeeded")
		}
	}()
	defer func() { <-noted }()
	// The records sent after the request, a request at a time, each with
	// an Idempotency-Key so that a request in flight at a kill can be
	// sent again; acked lists those acknowledged.
	acked := delCrashAcked(t, dir)
	ack, err := os.OpenFile(filepath.Join(dir, "acked"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	require.NoError(t, err)
	defer ack.Close()
	for b := 0; b*delCrashChunk < len(f.post); b++ {
		if acked[b] {
			continue
		}
		chunk := f.post[b*delCrashChunk : min((b+1)*delCrashChunk, len(f.post))]
		_, err := db.Ingest(&IngestRequest{Workspace: "bf", IdempotencyKey: fmt.Sprintf("post-%d", b),
			Records: map[string][]map[string]any{"events": delRecords(chunk)}})
		require.NoError(t, err)
		_, err = fmt.Fprintf(ack, "%d\n", b)
		require.NoError(t, err)
		time.Sleep(2 * time.Millisecond) // spread the requests over the job
	}
	j, err := db.WaitJob(context.Background(), "bf", id)
	require.NoError(t, err)
	require.Equal(t, JobSuccess, j.State, "error: %v", j.Error)
	fmt.Println("settled")
}

// delCrashAcked reads the acknowledged post-request requests of dir.
func delCrashAcked(t *testing.T, dir string) map[int]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "acked"))
	if os.IsNotExist(err) {
		return map[int]bool{}
	}
	require.NoError(t, err)
	out := map[int]bool{}
	for _, l := range strings.Fields(string(data)) {
		b, err := strconv.Atoi(l)
		require.NoError(t, err)
		out[b] = true
	}
	return out
}

// delCrashRun is what one run of the child did.
type delCrashRun struct {
	settled, killed bool
	opened          time.Duration // from start to "opened"
	took            time.Duration // from "opened" to "settled"
	jobTook         time.Duration // from "opened" to the job's success
	ops             int64         // operations traced
	last            string        // the last operation traced
	// lastWrite is the last operation traced other than a log append:
	// where the job was (appends of the records sent meanwhile aside).
	lastWrite string
}

// runDelCrashChild runs the child on dir: killed by the parent delay
// after it opened (0: not), or by itself before operation killOp (0: not).
func runDelCrashChild(t *testing.T, dir string, delay time.Duration, killOp int64) delCrashRun {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDelCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), delCrashEnv+"="+dir)
	if killOp > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", delCrashKillEnv, killOp))
	}
	start := time.Now()
	lines, stderr := startChildLines(t, cmd)
	var r delCrashRun
	var timer <-chan time.Time
	var openedAt time.Time
	hang := time.After(2 * time.Minute)
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			switch {
			case !ok:
				done = true
			case l == "opened":
				openedAt = time.Now()
				r.opened = openedAt.Sub(start)
				if delay > 0 {
					timer = time.After(delay)
				}
			case l == "job-succeeded":
				r.jobTook = time.Since(openedAt)
			case l == "settled":
				r.settled, timer = true, nil
				r.took = time.Since(openedAt)
			}
		case <-timer:
			cmd.Process.Kill()
			timer = nil
		case <-hang:
			cmd.Process.Kill()
			t.Fatalf("the child hung; its log: %s", stderr.String())
		}
	}
	err := cmd.Wait()
	r.killed = err != nil && strings.Contains(err.Error(), "killed")
	if !r.killed {
		require.NoError(t, err, "the child failed: %s", stderr.String())
		require.True(t, r.settled, "the child ended without settling: %s", stderr.String())
	}
	data, err := os.ReadFile(filepath.Join(dir, "ops"))
	require.NoError(t, err)
	if ls := strings.Split(strings.TrimSpace(string(data)), "\n"); len(ls) > 0 && ls[0] != "" {
		r.last = ls[len(ls)-1]
		r.ops, _ = strconv.ParseInt(strings.Fields(r.last)[0], 10, 64)
		for i := len(ls) - 1; i >= 0 && r.lastWrite == ""; i-- {
			if f := strings.Fields(ls[i]); len(f) > 1 && f[1] != "append" {
				r.lastWrite = ls[i]
			}
		}
	}
	return r
}

// delCrashPhase names where a kill landed, from the last operation the
// child started.
func delCrashPhase(last string, settled bool) string {
	f := strings.Fields(last)
	switch {
	case settled:
		return "after the job succeeded"
	case len(f) < 3:
		return "before the job's first write"
	}
	op, path := f[1], f[2]
	switch {
	case op == "job-succeeded":
		return "after the job succeeded, records still being sent"
	case strings.Contains(path, rewriteSuffix):
		return "log rewrite (temporary file, rename, dir fsync)"
	case strings.Contains(last, string(filepath.Separator)+"wal"):
		return "log seal or rewrite switch (segment create, dir fsync, close)"
	case strings.Contains(path, "MANIFEST"):
		return "manifest switch"
	case op == "remove" && strings.HasSuffix(path, ".seg"):
		return "removal of a replaced segment"
	case strings.Contains(path, ".seg"):
		return "segment write (rewrite or flush)"
	case op == "syncdir":
		return "segments dir fsync"
	}
	return op
}

// rewriteSuffix mirrors the wal's name for a rewrite's temporary file.
const rewriteSuffix = ".rewrite"

func TestDeletionSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	f := newDelFixture(delCrashSeed, delCrashPre, delCrashPost)
	scratch := delScratch(t)
	tmplRoot := filepath.Join(scratch, "template")
	require.NoError(t, os.MkdirAll(tmplRoot, 0o755))
	db := delPrepare(t, f, tmplRoot, delOptions("", vfs.Default, true))
	require.NoError(t, db.Close())
	ref := delReference(t, f, f.post)
	kept := without(f.pre[delBatchN:], isDeleted) // pushed before the request, other users

	newRound := func(name string) string {
		dir := filepath.Join(scratch, name)
		require.NoError(t, os.CopyFS(filepath.Join(dir, "data"), os.DirFS(filepath.Join(tmplRoot, "data"))))
		return dir
	}
	// Calibrate: an unkilled run, for its durations and operation count.
	cal := runDelCrashChild(t, newRound("calibration"), 0, 0)
	require.True(t, cal.settled)
	require.Positive(t, cal.jobTook)
	span, ops := cal.jobTook, cal.ops
	t.Logf("an unkilled child opens in %v, then requests the deletion and sends %d records while the job runs; the job succeeds after %v, the child settles after %v, with %d operations that write",
		cal.opened.Round(time.Millisecond), len(f.post), span.Round(time.Millisecond), cal.took.Round(time.Millisecond), ops)

	// checkLog checks, after a kill, that a copy of the log holds every
	// acknowledged record of the kept keys once, and nothing twice.
	checkLog := func(dir, msg string) {
		cp := filepath.Join(scratch, "logcheck")
		require.NoError(t, os.RemoveAll(cp))
		require.NoError(t, os.CopyFS(filepath.Join(cp, "wal"), os.DirFS(filepath.Join(dir, "data", "wal"))))
		counts := delLogRows(t, cp, msg)
		for _, e := range kept {
			require.Equal(t, 1, counts[e.id()], "%s: acknowledged record %s", msg, e.id())
		}
		acked := delCrashAcked(t, dir)
		for i, e := range f.post {
			if acked[i/delCrashChunk] {
				require.Equal(t, 1, counts[e.id()], "%s: acknowledged post-request record %s", msg, e.id())
			} else {
				require.LessOrEqual(t, counts[e.id()], 1, "%s: post-request record %s", msg, e.id())
			}
		}
	}

	// Each round starts from the data directory before the request, and
	// kills its child up to perRound times: alternately right before a
	// random one of its writing operations (they come in the calibration's
	// order but for the interleaving of the job and the appends) and at a
	// random delay within the job's duration; each run resumes the job.
	// Kills after the job succeeded (while records are still sent) do not
	// count towards the target.
	target, perRound := 200, 12
	rng := rand.New(rand.NewPCG(12, 12))
	jobKills, lateKills, rounds, runs := 0, 0, 0, 1
	phases := map[string]int{}
	var timed, aimed int
	start := time.Now()
	for jobKills < target {
		rounds++
		dir := newRound(fmt.Sprintf("round%d", rounds))
		settled := false
		for c := 0; c < perRound && !settled; c++ {
			var r delCrashRun
			if c%2 == 0 {
				r = runDelCrashChild(t, dir, 0, 1+rng.Int64N(ops))
			} else {
				r = runDelCrashChild(t, dir, time.Duration(1+rng.Int64N(int64(span))), 0)
			}
			runs++
			settled = r.settled
			if !r.killed || r.settled {
				continue
			}
			checkLog(dir, fmt.Sprintf("round %d, after the kill at %q", rounds, r.last))
			phase := delCrashPhase(r.lastWrite, false)
			if strings.HasPrefix(phase, "after the job") {
				lateKills++
				continue
			}
			jobKills++
			phases[phase]++
			if c%2 == 0 {
				aimed++
			} else {
				timed++
			}
		}
		if !settled {
			require.True(t, runDelCrashChild(t, dir, 0, 0).settled, "an unkilled run settles")
			runs++
		}

		msg := fmt.Sprintf("round %d", rounds)
		db, err := Open(delOptions(filepath.Join(dir, "data"), vfs.Default, true))
		require.NoError(t, err, msg)
		jobs, err := db.Jobs("bf", JobFilter{Type: JobDeletion})
		require.NoError(t, err)
		require.Len(t, jobs, 1, "%s: one deletion job", msg)
		require.Equal(t, JobSuccess, jobs[0].State, "%s: %v", msg, jobs[0].Error)
		delCheckReads(t, ref, db, true, msg)
		require.NoError(t, db.Close())
		delMarkers(t, filepath.Join(dir, "data"), msg)
		n, _ := diskOccurrences(t, filepath.Join(dir, "data"), "kept-after-request")
		require.Positive(t, n, "%s: records acknowledged after the request stay", msg)
		delCheckLog(t, filepath.Join(dir, "data"), append(slices.Clone(kept), f.post...), msg)
		require.NoError(t, os.RemoveAll(dir))
	}
	var where []string
	for p, n := range phases {
		where = append(where, fmt.Sprintf("%s: %d", p, n))
	}
	slices.Sort(where)
	t.Logf("%d SIGKILLs during deletion jobs in %d rounds (%d child runs, %v): %d right before a random one of the child's %d writing operations, %d at random delays within the job's %v; "+
		"by the job's last writing operation started (log appends aside): %s; and %d more after the job succeeded, while records were still being sent. "+
		"After every kill the log held every acknowledged record of the kept keys once; after every round one deletion job succeeded, reads equal the reference, "+
		"0 deleted markers on disk, the kept marker and the post-request records found",
		jobKills, rounds, runs, time.Since(start).Round(time.Second), aimed, ops, timed, span.Round(time.Millisecond), strings.Join(where, "; "), lateKills)
	assert.GreaterOrEqual(t, jobKills, target)
}
