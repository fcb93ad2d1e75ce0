//go:build unix

package kafkasink

// SIGKILL at random instants: a child process opens the data directory,
// runs both sinks (latest at least once, sums exactly once) to the kfake
// broker living in this process, and ingests numbered requests, printing
// each one acknowledged; it is killed at a random moment, again and
// again, each child resending the request after the last acknowledged
// one with the same Idempotency-Key. A last child catches the sinks up.
// Then every acknowledged record is in the views' streams, and each topic
// holds every record of its stream (no gap), nothing invented, each key
// in log order once repeats are dropped; a read_committed consumer of
// the exactly_once topic sees each record once.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
)

const (
	crashDirEnv   = "FEATURELOG_KSINK_CRASH_DIR"
	crashFromEnv  = "FEATURELOG_KSINK_CRASH_FROM"  // the first request number the child sends
	crashFinalEnv = "FEATURELOG_KSINK_CRASH_FINAL" // the child sends nothing and waits for the sinks
)

// crashCycles is how many children are killed: 300 (issue 13's bar,
// about 90 s here), 1000 with FEATURELOG_LONG, 60 under the race
// detector.
func crashCycles() int {
	switch {
	case os.Getenv("FEATURELOG_LONG") != "":
		return 1000
	case raceEnabled:
		return 60
	}
	return 300
}

func crashRepo(brokers []string, latest, sums string) string {
	return testRepo(sinkSpec{brokers: brokers, topic: latest}, sinkSpec{brokers: brokers, topic: sums, exactlyOnce: true}, true)
}

// crashRequest is request k: 1 to 8 records numbered k*100+j, their
// times within the hour before now (so every one is online and
// published at once).
func crashRequest(k int64, now time.Time) []byte {
	rng := rand.New(rand.NewPCG(uint64(k), 99))
	recs := make([]map[string]any, 1+rng.IntN(8))
	for j := range recs {
		u := int(30 * rng.Float64() * rng.Float64())
		recs[j] = map[string]any{"record": map[string]any{"user_id": fmt.Sprintf("u%03d", u), "ts": now.Add(-time.Duration(rng.Int64N(int64(time.Hour)))).Format(time.RFC3339Nano),
			"amount": float64(rng.IntN(1000)) / 4, "n": k*100 + int64(j)}}
	}
	body, _ := json.Marshal(map[string]any{"workspace_name": "ks", "dry_run": false, "records": map[string]any{"events": recs}})
	return body
}

func crashRecords(k int64) int {
	return 1 + rand.New(rand.NewPCG(uint64(k), 99)).IntN(8)
}

// TestSinkCrashChild is the child; it runs only under crashDirEnv.
func TestSinkCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child of TestSinkCrashCycles")
	}
	db, err := engine.Open(engine.Options{Dir: dir, Logger: testLogger(), HotTierBytes: -1})
	require.NoError(t, err)
	o := Options{Logger: slog.New(resumeReporter{}), BatchRecords: 100, RetryBudget: 2 * time.Second, Reconcile: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		ClientOpts: []kgo.Opt{kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }), kgo.MetadataMinAge(20 * time.Millisecond)}}
	m, err := Start(db, o)
	require.NoError(t, err)
	fmt.Println("opened")
	if os.Getenv(crashFinalEnv) != "" {
		for _, c := range db.Sinks() {
			_, end := readStream(t, db, c.View)
			waitCursor(t, db, c.ID, end, time.Minute)
		}
		require.NoError(t, m.Close())
		require.NoError(t, db.Close())
		fmt.Println("settled")
		return
	}
	k, err := strconv.ParseInt(os.Getenv(crashFromEnv), 10, 64)
	require.NoError(t, err)
	for ; ; k++ {
		_, err := db.IngestJSONWithKey(crashRequest(k, time.Now()), "req-"+strconv.FormatInt(k, 10), nil)
		require.NoError(t, err)
		fmt.Printf("acked %d\n", k)
		time.Sleep(time.Millisecond) // leave the sinks a share of the child's 2 cores
	}
}

// resumeReporter prints a line when a child's exactly_once sink resumes
// from the progress topic past its local cursor: it was killed between a
// commit and the cursor's save.
type resumeReporter struct{}

func (resumeReporter) Enabled(context.Context, slog.Level) bool { return true }
func (resumeReporter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == msgResumeProgress {
		fmt.Println("resumed-from-progress")
	}
	return nil
}
func (h resumeReporter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h resumeReporter) WithGroup(string) slog.Handler      { return h }

// crashChild runs one child; it kills it after killAfter once opened
// (never when final) and returns the last request it acknowledged (0 if
// none) and whether it was killed.
func crashChild(t *testing.T, dir string, from int64, killAfter time.Duration, final bool) (acked int64, killed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSinkCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashFromEnv+"="+strconv.FormatInt(from, 10))
	if final {
		cmd.Env = append(cmd.Env, crashFinalEnv+"=1")
	}
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
		close(lines)
	}()
	var timer <-chan time.Time
	began := time.Now()
	hang := time.After(2 * time.Minute)
	settled := false
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			switch {
			case !ok:
				done = true
			case l == "opened" && !final:
				openTook.Add(int64(time.Since(began)))
				timer = time.After(killAfter)
			case l == "settled":
				settled = true
			case l == "resumed-from-progress":
				resumedFromProgress.Add(1)
			case strings.HasPrefix(l, "acked "):
				acked, err = strconv.ParseInt(l[len("acked "):], 10, 64)
				require.NoError(t, err, l)
			default: // the test framework's own output: a failure
				fmt.Fprintln(stderr, l)
			}
		case <-timer:
			require.NoError(t, cmd.Process.Kill()) // SIGKILL
			timer = nil
		case <-hang:
			cmd.Process.Kill()
			t.Fatalf("the child hung; its log: %s", stderr.String())
		}
	}
	err = cmd.Wait()
	killed = err != nil && strings.Contains(err.Error(), "killed")
	if !killed {
		require.NoError(t, err, "the child failed: %s", stderr.String())
		require.True(t, !final || settled, "the last child ended without settling: %s", stderr.String())
	}
	return acked, killed
}

var openTook, resumedFromProgress atomic.Int64

func TestSinkCrashCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("SIGKILL cycles")
	}
	b := newBroker(t, false)
	dir := t.TempDir()
	latest, sums := uniqueTopic("crash-latest"), uniqueTopic("crash-sums")
	db := openDB(t, dir, nil, nil)
	apply(t, db, crashRepo(b.addrs, latest, sums))
	require.NoError(t, db.Close())

	rng := rand.New(rand.NewPCG(12, 13))
	var acked int64
	kills, cycles := 0, crashCycles()
	start := time.Now()
	for range cycles {
		last, killed := crashChild(t, dir, acked+1, time.Duration(rng.Int64N(int64(200*time.Millisecond))), false)
		require.True(t, killed, "a child not meant to end ended")
		kills++
		acked = max(acked, last)
	}
	cycleTime := time.Since(start)
	t.Logf("children took %s on average to open", (time.Duration(openTook.Load()) / time.Duration(cycles)).Round(time.Millisecond))
	crashChild(t, dir, acked+1, 0, true)

	db = openDB(t, dir, nil, nil)
	defer db.Close()
	streams := map[string][]streamRec{}
	for _, view := range []string{"latest", "sums"} {
		streams[view], _ = readStream(t, db, view)
	}
	// Every acknowledged record is in the log, once (an unacknowledged
	// request resent with its key is not logged twice).
	got := map[int64]int{}
	for _, r := range streams["latest"] {
		var v struct {
			FeatureValues map[string]string `json:"feature_values"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.value), &v))
		n, err := strconv.ParseInt(v.FeatureValues["n"], 10, 64)
		require.NoError(t, err)
		got[n]++
	}
	records := 0
	for k := int64(1); k <= acked; k++ {
		for j := range crashRecords(k) {
			require.Equal(t, 1, got[k*100+int64(j)], "record %d of acknowledged request %d", j, k)
			records++
		}
	}
	require.Len(t, streams["sums"], len(streams["latest"]), "every record is online in both views")
	repeats := checkTopic(t, streams["latest"], consumeAll(t, b.addrs, latest, false), false)
	eos, aborts := consumeTopic(t, b.addrs, sums, true)
	checkTopic(t, streams["sums"], eos, true)
	require.Positive(t, aborts, "no kill hit an open transaction")
	if cycles >= 150 { // about 1 kill in 20 falls there: seen 6 to 37 times in 150 to 300 cycles
		require.Positive(t, resumedFromProgress.Load(), "no kill fell between a commit and the cursor's save")
	}
	t.Logf("%d children SIGKILLed in %s (%s each); %d requests (%d records) acknowledged, %d records logged; "+
		"at least once: every record published, %d published again; exactly once: every record once, "+
		"%d transactions aborted by kills, %d restarts resumed from the progress topic past the local cursor",
		kills, cycleTime.Round(time.Millisecond), (cycleTime / time.Duration(kills)).Round(time.Millisecond), acked, records, len(streams["latest"]), repeats,
		aborts, resumedFromProgress.Load())
}
