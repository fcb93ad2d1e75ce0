//go:build unix

package engine

// SIGKILL at random instants of backfill and materialization jobs: a
// child process drives an apply that adds a view (a backfill over the
// logged records and batch files) and a materialization, and is killed
// again and again; each restart resumes what was interrupted. At the end
// every job has ended, each was applied once (one successful backfill of
// the version, one successful materialization of the range), and the
// served features equal those of the same steps run without a crash.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const jobCrashEnv = "FEATURELOG_JOB_CRASH_DIR"

// jobCrashRepo is the repo the child applies: the sums view over a source
// with batch files in dir.
func jobCrashRepo(dir string) []byte {
	return bfRepoText(bfSums, "      - sums", batchBlock(filepath.Join(dir, "batch", "*.jsonl"), "jsonl"))
}

var jobCrashRange = [2]time.Time{bfNow.Add(-6 * time.Hour), bfNow}

// jobCrashDrive runs the steps to their end, each only if not done yet:
// apply (starting the backfill), wait, materialize, wait.
func jobCrashDrive(t *testing.T, db *DB, dir string) {
	ctx := context.Background()
	all, err := db.Jobs("bf", JobFilter{})
	require.NoError(t, err)
	require.NoError(t, db.WaitJobs(ctx, pendingOnly(all)))
	sum, err := db.FeatureViewSummary("bf", "sums")
	if err != nil || sum.Job != "" {
		res, err := db.ApplyWait(ctx, filepath.Join(dir, "bf.yaml"), jobCrashRepo(dir))
		require.NoError(t, err)
		require.NotEmpty(t, res.Jobs)
	}
	mats, err := db.Jobs("bf", JobFilter{Type: JobMaterialization, State: JobSuccess})
	require.NoError(t, err)
	if len(mats) == 0 {
		j, err := db.Materialize("bf", "sums", MaterializeRequest{Start: jobCrashRange[0], End: jobCrashRange[1], Online: true, Offline: true})
		require.NoError(t, err)
		require.NoError(t, db.WaitJobs(ctx, []Job{j}))
	}
}

func pendingOnly(jobs []Job) []Job {
	var out []Job
	for _, j := range jobs {
		if !j.State.Final() {
			out = append(out, j)
		}
	}
	return out
}

// TestJobCrashChild is the child: it drives the steps and says so.
func TestJobCrashChild(t *testing.T) {
	dir := os.Getenv(jobCrashEnv)
	if dir == "" {
		t.Skip("helper process of TestJobsSurviveSIGKILL")
	}
	db := bfOpen(t, filepath.Join(dir, "data"), 2000)
	defer db.Close()
	fmt.Println("opened")
	jobCrashDrive(t, db, dir)
	fmt.Println("settled")
}

func TestJobsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	users := 80
	evs := bfEvents(31, 30000, users)
	var pushed, batch []bfEvent
	for i, e := range evs {
		if i%3 == 0 {
			batch = append(batch, e)
		} else {
			pushed = append(pushed, e)
		}
	}
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "batch"), 0o755))
	writeBatch(t, filepath.Join(dir, "batch", "a.jsonl"), batch)
	db := bfOpen(t, filepath.Join(dir, "data"), 0)
	_, err := db.ApplyWait(context.Background(), "bf.yaml", bfRepoText("", "", ""))
	require.NoError(t, err)
	bfIngest(t, db, pushed)
	require.NoError(t, db.Close())

	// The reference: the same steps without a crash.
	refDir := t.TempDir()
	require.NoError(t, os.CopyFS(refDir, os.DirFS(dir)))
	ref := bfOpen(t, filepath.Join(refDir, "data"), 2000)
	jobCrashDrive(t, ref, dir)
	want := bfRead(t, ref, users)
	require.NoError(t, ref.Close())

	rng := rand.New(rand.NewPCG(7, 7))
	kills, settled := 0, false
	for cycle := 0; cycle < 40 && !settled; cycle++ {
		// Short delays first, then longer: the kills land in every step,
		// and the run eventually gets through.
		delay := time.Millisecond + time.Duration(rng.Int64N(int64(time.Duration(cycle+1)*15*time.Millisecond)))
		settled = runJobCrashChild(t, dir, delay)
		if !settled {
			kills++
		}
	}
	if !settled {
		require.True(t, runJobCrashChild(t, dir, 0), "the last run, unkilled, settles")
	}

	db = bfOpen(t, filepath.Join(dir, "data"), 0)
	defer db.Close()
	jobs, err := db.Jobs("bf", JobFilter{})
	require.NoError(t, err)
	success := map[string]int{}
	var runs []string
	for _, j := range jobs {
		runs = append(runs, fmt.Sprintf("%s %s: %s after %d run(s)", j.Type, j.FeatureView, j.State, j.Runs))
		require.True(t, j.State.Final(), "job %s is left %s", j.ID, j.State)
		if j.State == JobSuccess {
			success[fmt.Sprintf("%s %s@%d", j.Type, j.FeatureView, j.Version)]++
		}
	}
	sum, err := db.FeatureViewSummary("bf", "sums")
	require.NoError(t, err)
	assert.Equal(t, 1, success[fmt.Sprintf("backfill sums@%d", sum.Version)], "the serving version was backfilled once: %v", success)
	assert.Equal(t, 1, success[fmt.Sprintf("materialization sums@%d", sum.Version)], "the range was materialized once: %v", success)
	assert.Equal(t, want, bfRead(t, db, users), "the served features equal a run without crashes")
	t.Logf("%d SIGKILLs at random instants of the apply, backfill and materialization; jobs: %s; every one ended, each applied once",
		kills, strings.Join(runs, "; "))
}

// startChildLines starts a child test process and returns the lines it
// prints on stdout (closed when it exits) and what it writes on stderr.
func startChildLines(t *testing.T, cmd *exec.Cmd) (<-chan string, *strings.Builder) {
	t.Helper()
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
		close(lines)
	}()
	return lines, stderr
}

// runJobCrashChild runs the child and SIGKILLs it after delay (0: never)
// once it has opened; it reports whether the child settled first.
func runJobCrashChild(t *testing.T, dir string, delay time.Duration) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestJobCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), jobCrashEnv+"="+dir)
	lines, stderr := startChildLines(t, cmd)
	var timer <-chan time.Time
	settled := false
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			switch {
			case !ok:
				done = true
			case l == "opened" && delay > 0:
				timer = time.After(delay)
			case l == "settled":
				settled, timer = true, nil
			}
		case <-timer:
			cmd.Process.Kill()
			timer = nil
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
			t.Fatalf("the child hung; its log: %s", stderr.String())
		}
	}
	err := cmd.Wait()
	if settled && (err == nil || !strings.Contains(err.Error(), "killed")) { // a kill as it settled is fine
		require.NoError(t, err, "the child failed after settling: %s", stderr.String())
	} else if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the child ended without settling or being killed (%v): %s", err, stderr.String())
	}
	return settled
}
