package engine

// Fault injection on deletion jobs (issue #12): every file-system
// operation a deletion job makes through Options.FS (log rewrite and seal,
// segment rewrites, manifest switches, the flush of the rebuilt keys) is
// failed in turn, once (a transient error) and from then on (a dead
// disk). Each error must surface, as a FAILED job or as a node refusing
// writes when the log itself failed; a job that reports SUCCESS must
// have erased everything; after a reopen every acknowledged record of the
// other keys is there; and the deletion requested again succeeds and
// leaves no byte of the deleted keys on disk.
//
// The jobs directory, ERASURES and the catalog are written with os
// directly (internal/atomicfile), not through Options.FS: their faults
// cannot be injected here.
//
// This file also holds what the deletion campaigns share: the fixture
// (delFixture), the data directory they start from (delPrepare), the
// reference (delReference) and the checks (delCheckReads, delLogRows).

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/vfs"
	"github.com/featurelog/featurelog/vfs/errorfs"
)

// delUsers is the number of users of delEvents.
const delUsers = 20

// delBatchN is how many of a fixture's pre-request events are in the
// batch file rather than pushed.
const delBatchN = 150

// delFixture is the data of a deletion campaign: pre is acknowledged
// before the request (pre[:delBatchN] in the batch file h.csv, the rest
// pushed: some merged, some flushed, some in the memtable), post is sent
// after it. The notes of the deleted users (isDeleted) carry MARKER-DEL
// in pre and "kept-after-request" in post; those of u005 MARKER-KEEP.
type delFixture struct {
	pre, post []bfEvent
}

func newDelFixture(seed uint64, nPre, nPost int) delFixture {
	evs := delEvents(seed, nPre+nPost)
	post := evs[nPre:]
	for i := range post {
		if isDeleted(post[i]) {
			post[i].note = "kept-after-request"
		}
	}
	return delFixture{pre: evs[:nPre:nPre], post: post}
}

// delRepo is the repo, with its batch file at root/h.csv (an absolute
// path, so that copies of a data directory read the same file): the views
// latest and sums keyed by user_id, and by_note keyed by another column,
// note, whose keys carry the markers themselves: a deletion must rebuild
// by_note's keys that the deleted users' records had, which only the log
// tells.
func delRepo(root string) []byte {
	text := string(bfRepoText(bfSums+delByNote, "      - sums", batchBlock(filepath.Join(root, "h.csv"), "csv")))
	text = strings.Replace(text, "    join_keys: [user_id]\n", "    join_keys: [user_id]\n  - name: notekey\n    join_keys: [note]\n", 1)
	return []byte(text + "  - name: notes\n    features:\n      - by_note\n")
}

const delByNote = `  - name: by_note
    source: events
    entities: [notekey]
    timestamp_field: ts
    features:
      - aggregate: {input: amount, function: sum, window: lifetime}
      - aggregate: {input: amount, function: count, window: 24h}
`

// delNotes are the keys of by_note that the fixtures have.
func delNotes() []string {
	var out []string
	for i := range 7 {
		out = append(out, fmt.Sprintf("n%d", i))
	}
	for i := range 5 {
		out = append(out, fmt.Sprintf("MARKER-KEEP-%d", i), fmt.Sprintf("MARKER-DEL-u003-%d", i), fmt.Sprintf("MARKER-DEL-u007-%d", i))
	}
	return append(out, "kept-after-request")
}

// delOptions opens dir for the campaigns: small log segments (the log
// rewrite replaces several), no background maintainer, no hot tier or
// state cache, one backfill worker, so that operations come in the same
// order every run.
func delOptions(dir string, fs vfs.FS, noSync bool) Options {
	return Options{Dir: dir, FS: fs, NoSync: noSync, Now: func() time.Time { return bfNow }, BackfillWorkers: 1,
		DisableAutoFlush: true, HotTierBytes: -1, StateCacheBytes: -1, SegmentSize: delSegmentSize,
		Logger: slog.New(slog.DiscardHandler)}
}

// delSegmentSize is the log's segment size in the campaigns: the log of
// a fixture spans a few segments.
const delSegmentSize = 8 << 10

// delPrepare writes root/h.csv and builds root/data with opts: the repo applied
// (the batch rows backfilled), f.pre pushed with two flushes and a merge
// in between, the last part left in the memtable. It returns the open DB.
func delPrepare(t *testing.T, f delFixture, root string, opts Options) *DB {
	t.Helper()
	writeBatch(t, filepath.Join(root, "h.csv"), f.pre[:delBatchN])
	opts.Dir = filepath.Join(root, "data")
	db, err := Open(opts)
	require.NoError(t, err)
	_, err = db.ApplyWait(context.Background(), filepath.Join(root, "bf.yaml"), delRepo(root))
	require.NoError(t, err)
	pushed := f.pre[delBatchN:]
	n := len(pushed)
	bfIngest(t, db, pushed[:n*4/10])
	require.NoError(t, db.Flush())
	bfIngest(t, db, pushed[n*4/10:n*7/10])
	require.NoError(t, db.Flush())
	require.NoError(t, db.CompactAll())
	bfIngest(t, db, pushed[n*7/10:])
	return db
}

// delReference is a DB holding what a deletion must leave: f.pre without
// the deleted users' records, then post.
func delReference(t *testing.T, f delFixture, post []bfEvent) *DB {
	t.Helper()
	root := t.TempDir()
	writeBatch(t, filepath.Join(root, "h.csv"), without(f.pre[:delBatchN], isDeleted))
	db := bfOpen(t, filepath.Join(root, "data"), 0)
	t.Cleanup(func() { db.Close() })
	_, err := db.ApplyWait(context.Background(), filepath.Join(root, "bf.yaml"), delRepo(root))
	require.NoError(t, err)
	bfIngest(t, db, without(f.pre[delBatchN:], isDeleted))
	bfIngest(t, db, post)
	return db
}

// delReads is every read the campaigns compare: online and as_of reads,
// and historical reads from the stored state and from the source, each
// line naming its user.
func delReads(t *testing.T, db *DB) []string {
	t.Helper()
	out := bfRead(t, db, delUsers)
	out = append(out, bfHistorical(t, db, delUsers, false)...)
	out = append(out, bfHistorical(t, db, delUsers, true)...)
	notes := delNotes()
	keys := make([]map[string]any, len(notes))
	for i, n := range notes {
		keys[i] = map[string]any{"note": n}
	}
	for _, at := range []time.Time{bfNow, bfNow.Add(-30 * time.Hour)} {
		vecs, err := db.GetFeaturesBatch("bf", "notes", keys, at)
		require.NoError(t, err)
		for i, v := range vecs {
			out = append(out, fmt.Sprintf("note %s@%s: %v", notes[i], at.Format(time.RFC3339), v.Features))
		}
	}
	return out
}

// delKeptOnly leaves out the lines of deleted users.
func delKeptOnly(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.Contains(l, "u003") && !strings.Contains(l, "u007") {
			out = append(out, l)
		}
	}
	return out
}

// delCheckReads compares db's reads with ref's: with all, every user's
// (the deletion is done), otherwise the kept users' only.
func delCheckReads(t *testing.T, ref, db *DB, all bool, msg string) {
	t.Helper()
	want, got := delReads(t, ref), delReads(t, db)
	if !all {
		want, got = delKeptOnly(want), delKeptOnly(got)
	}
	require.Equal(t, want, got, "%s: reads differ from the reference", msg)
}

// delRowID names a logged or sent event.
func delRowID(user, note string, ts time.Time, amount int64) string {
	return fmt.Sprintf("%s|%s|%d|%s", user, ts.UTC().Format(time.RFC3339Nano), amount, note)
}

func (e bfEvent) id() string { return delRowID(e.user, e.note, e.ts, e.amount) }

// delLogRows counts the events in the log of the closed data directory
// dir (opening the log repairs a torn tail, as the engine's open would).
func delLogRows(t *testing.T, dir, msg string) map[string]int {
	return LogRowCounts(t, dir, msg, func(cols []schema.Column, row []schema.Value) string {
		col := map[string]int{}
		for i, c := range cols {
			col[c.Name] = i
		}
		return delRowID(row[col["user_id"]].S, row[col["note"]].S, time.Unix(0, row[col["ts"]].I), row[col["amount"]].I)
	})
}

// delCheckLog checks that the log of dir holds each of kept once.
func delCheckLog(t *testing.T, dir string, kept []bfEvent, msg string) {
	t.Helper()
	counts := delLogRows(t, dir, msg)
	lost := 0
	for _, e := range kept {
		if counts[e.id()] != 1 {
			lost++
			if lost <= 5 {
				t.Errorf("%s: acknowledged record %s is in the log %d times", msg, e.id(), counts[e.id()])
			}
		}
	}
	require.Zero(t, lost, "%s: acknowledged records of kept keys lost or doubled", msg)
}

// delMarkers checks the on-disk scan of a finished deletion: no deleted
// marker, a kept one found.
func delMarkers(t *testing.T, dataDir, msg string) {
	t.Helper()
	n, where := diskOccurrences(t, dataDir, "MARKER-DEL")
	require.Zero(t, n, "%s: deleted markers on disk: %v", msg, where)
	n, _ = diskOccurrences(t, dataDir, "MARKER-KEEP")
	require.Positive(t, n, "%s: the scan finds a kept key's marker", msg)
}

// delScratch is where the runs' directories go: tmpfs when there is one.
func delScratch(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "featurelog-del-")
		require.NoError(t, err)
		t.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return t.TempDir()
}

// delDeleteAndWait requests the deletion and waits for its job.
func delDeleteAndWait(t *testing.T, db *DB, msg string) Job {
	t.Helper()
	j, err := db.DeleteKeys("bf", "latest", delRequest(true, true))
	require.NoError(t, err, msg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j, err = db.WaitJob(ctx, "bf", j.ID)
	require.NoError(t, err, msg)
	return j
}

// delFaultRun is the outcome of one run with a fault injected.
type delFaultRun struct {
	job        Job
	injected   []string
	logFailed  bool // the log failed: the node refuses writes
	postAcked  bool // the records sent after the job were acknowledged
	postLogged bool // they are in the log (acknowledged, or failed after the write)
	successNow int  // deleted markers on disk right after a SUCCESS
}

func TestDeletionFaults(t *testing.T) {
	f := newDelFixture(91, 1000, 0)
	post := without(delEvents(92, 60), isDeleted) // sent after the job: other users only
	scratch := delScratch(t)
	tmplRoot := filepath.Join(scratch, "template")
	require.NoError(t, os.MkdirAll(tmplRoot, 0o755))
	db := delPrepare(t, f, tmplRoot, delOptions("", vfs.Default, true))
	require.NoError(t, db.Close())
	template := filepath.Join(tmplRoot, "data")
	refPre := delReference(t, f, nil)
	refPost := delReference(t, f, post)
	kept := without(f.pre[delBatchN:], isDeleted)

	// One run: a copy of the template, opened through an Injector that
	// fails the k-th operation after the open (0: none), the deletion,
	// then records sent after it.
	run := func(name string, k int64, sticky bool) (string, *delFaultRun, int64) {
		dir := filepath.Join(scratch, name)
		require.NoError(t, os.CopyFS(dir, os.DirFS(template)))
		in := errorfs.NewInjector(vfs.Default)
		db, err := Open(delOptions(dir, in, false))
		require.NoError(t, err, name)
		base := in.Count()
		if k > 0 {
			in.FailAt(base+k, sticky)
		}
		r := &delFaultRun{}
		r.job = delDeleteAndWait(t, db, name)
		ops := in.Count() - base
		r.injected = in.Injected()
		if r.job.State == JobSuccess {
			r.successNow, _ = diskOccurrences(t, dir, "MARKER-DEL")
		}
		_, err = db.Ingest(&IngestRequest{Workspace: "bf", IdempotencyKey: "post-1",
			Records: map[string][]map[string]any{"events": delRecords(post)}})
		r.postAcked = err == nil
		r.logFailed = db.log.Err() != nil
		if r.logFailed {
			require.Error(t, err, "%s: the log failed (%v), yet the node acknowledged a write", name, db.log.Err())
		}
		db.Close() // may fail: the fault may be sticky
		// A write that failed may have reached the log or not.
		r.postLogged = delLogRows(t, dir, name)[post[0].id()] == 1
		if r.postAcked {
			require.True(t, r.postLogged, "%s: acknowledged records missing from the log", name)
		}
		return dir, r, ops
	}

	// A clean run counts the job's operations.
	_, clean, ops := run("clean", 0, false)
	require.Equal(t, JobSuccess, clean.job.State, "error: %v", clean.job.Error)
	require.True(t, clean.postAcked)
	_, clean2, ops2 := run("clean2", 0, false)
	require.Equal(t, JobSuccess, clean2.job.State)
	require.Equal(t, ops, ops2, "a deletion job makes the same operations every run")
	t.Logf("a deletion job makes %d file operations through Options.FS (log seal and rewrite, segment rewrites, manifest switches, flush)", ops)

	type modeStats struct {
		runs, failed, logFailed, reRequested int
		harmless                             []string
		byOp                                 map[string]int
	}
	var all []string
	modes := []bool{false, true} // once, then from then on (a dead disk)
	if testing.Short() {
		modes = modes[:1]
	}
	for _, sticky := range modes {
		stats := modeStats{byOp: map[string]int{}}
		for k := int64(1); k <= ops; k++ {
			name := fmt.Sprintf("op%d-sticky%v", k, sticky)
			dir, r, _ := run(name, k, sticky)
			if len(r.injected) == 0 {
				require.NoError(t, os.RemoveAll(dir))
				continue
			}
			stats.runs++
			msg := fmt.Sprintf("fault at %s (sticky %v)", r.injected[0], sticky)
			switch r.job.State {
			case JobSuccess:
				// The fault did not matter to the job (a read-only file's
				// close, say): then it must have erased everything.
				require.Zero(t, r.successNow, "%s: the job reported SUCCESS with deleted markers on disk", msg)
				stats.harmless = append(stats.harmless, strings.Join(strings.Fields(r.injected[0])[1:2], ""))
			case JobFailed:
				require.NotNil(t, r.job.Error, msg)
				require.Contains(t, *r.job.Error, "injected fault", "%s: the job's error names the fault", msg)
				stats.failed++
				stats.byOp[strings.Fields(r.injected[0])[1]]++
			default:
				t.Fatalf("%s: the job ended %s", msg, r.job.State)
			}
			if r.logFailed {
				stats.logFailed++
			}

			// Reopen without faults: nothing of the kept keys is lost.
			db, err := Open(delOptions(dir, vfs.Default, false))
			require.NoError(t, err, "%s: reopen", msg)
			all, err := db.Jobs("bf", JobFilter{})
			require.NoError(t, err)
			require.NoError(t, db.WaitJobs(context.Background(), pendingOnly(all)))
			ref := refPre
			if r.postLogged {
				ref = refPost
			}
			delCheckReads(t, ref, db, r.job.State == JobSuccess, msg+", reopened")
			// Requested again, the deletion succeeds and erases everything.
			j := delDeleteAndWait(t, db, msg)
			require.Equal(t, JobSuccess, j.State, "%s: the deletion requested again: %v", msg, j.Error)
			stats.reRequested++
			delCheckReads(t, ref, db, true, msg+", requested again")
			require.NoError(t, db.Close())
			delMarkers(t, dir, msg+", requested again")
			logged := kept
			if r.postLogged {
				logged = append(append([]bfEvent(nil), kept...), post...)
			}
			delCheckLog(t, dir, logged, msg)
			require.NoError(t, os.RemoveAll(dir))
		}
		mode := "once"
		if sticky {
			mode = "from then on"
		}
		all = append(all, fmt.Sprintf("failing each operation %s: %d runs, %d FAILED jobs (by failed operation: %v), %d of them with the log failed and writes refused, "+
			"%d SUCCESS with the fault harmless (%v: retried, or after the data was durable) and nothing left on disk; "+
			"after each, 0 acknowledged records of kept keys lost, and the deletion requested again erased everything (%d times)",
			mode, stats.runs, stats.failed, stats.byOp, stats.logFailed, len(stats.harmless), stats.harmless, stats.reRequested))
		assert.Positive(t, stats.failed)
	}
	t.Logf("a deletion job's %d file operations through Options.FS:\n%s", ops, strings.Join(all, "\n"))
}

// delRecords is evs as ingest records.
func delRecords(evs []bfEvent) []map[string]any {
	out := make([]map[string]any, len(evs))
	for i, e := range evs {
		out[i] = e.record()
	}
	return out
}
