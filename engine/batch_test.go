package engine

// Batch sources (SPEC §6): events split between batch files and /ingest
// give the features all of them pushed give; a bad batch file is refused
// at plan with its file named, a bad row fails the backfill naming file
// and row, and nothing is applied; materializations load ranges, refuse
// overlaps and overwrite without counting rows twice.

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/featurelog/featurelog/schema"
	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type bfParquetRow struct {
	User   string    `parquet:"user_id"`
	TS     time.Time `parquet:"ts,timestamp(microsecond)"`
	Amount int64     `parquet:"amount"`
	Note   string    `parquet:"note"`
}

// writeBatch writes evs to path in the format its extension names.
func writeBatch(t *testing.T, path string, evs []bfEvent) {
	t.Helper()
	var buf bytes.Buffer
	switch filepath.Ext(path) {
	case ".csv":
		w := csv.NewWriter(&buf)
		require.NoError(t, w.Write([]string{"note", "ts", "user_id", "amount", "extra"})) // any order; extra columns are ignored
		for _, e := range evs {
			require.NoError(t, w.Write([]string{e.note, e.ts.Format(time.RFC3339Nano), e.user, strconv.FormatInt(e.amount, 10), "x"}))
		}
		w.Flush()
	case ".jsonl":
		for _, e := range evs {
			line, err := json.Marshal(map[string]any{"user_id": e.user, "ts": e.ts.Format(time.RFC3339Nano), "amount": e.amount, "note": e.note})
			require.NoError(t, err)
			buf.Write(append(line, '\n'))
		}
	case ".parquet":
		w := parquet.NewGenericWriter[bfParquetRow](&buf)
		rows := make([]bfParquetRow, len(evs))
		for i, e := range evs {
			rows[i] = bfParquetRow{User: e.user, TS: e.ts, Amount: e.amount, Note: e.note}
		}
		_, err := w.Write(rows)
		require.NoError(t, err)
		require.NoError(t, w.Close())
	default:
		t.Fatalf("no format for %s", path)
	}
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

func batchBlock(uri, format string) string {
	return fmt.Sprintf("    batch:\n      uri: %q\n      format: %s\n      timestamp_field: ts\n", uri, format)
}

// TestBatchPlusPush: events split at random between batch files and
// /ingest, in every format and both orders (batch files before the view,
// or pushed records before it), equal all of them pushed. With the
// records pushed first, some are in the batch files too: the same event,
// which the backfill counts once.
func TestBatchPlusPush(t *testing.T) {
	users := 40
	for _, format := range []string{"csv", "jsonl", "parquet"} {
		for _, pushFirst := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/push_first=%v", format, pushFirst), func(t *testing.T) {
				evs := bfEvents(11, 3000, users)
				rng := rand.New(rand.NewPCG(3, 4))
				var batch, pushed []bfEvent
				dups := 0
				for _, e := range evs {
					switch r := rng.IntN(10); {
					case r < 5:
						batch = append(batch, e)
					case r < 9 || !pushFirst: // records pushed after the backfill are not compared with batch rows
						pushed = append(pushed, e)
					default:
						batch, pushed = append(batch, e), append(pushed, e)
						dups++
					}
				}
				want := bfReference(t, evs)
				var err error

				dir := t.TempDir()
				files := filepath.Join(dir, "history")
				require.NoError(t, os.MkdirAll(files, 0o755))
				writeBatch(t, filepath.Join(files, "a."+format), batch[:len(batch)/2])
				writeBatch(t, filepath.Join(files, "b."+format), batch[len(batch)/2:])
				repoFile := filepath.Join(dir, "bf.yaml")
				text := bfRepoText(bfSums, "      - sums", batchBlock("history/*."+format, format)) // relative to the repo file
				db := bfOpen(t, filepath.Join(dir, "data"), 500)
				defer db.Close()
				if pushFirst {
					_, err = db.ApplyWait(context.Background(), repoFile, bfRepoText("", "", ""))
					require.NoError(t, err)
					bfIngest(t, db, pushed)
				}
				res, err := db.ApplyWait(context.Background(), repoFile, text)
				require.NoError(t, err)
				if !pushFirst {
					bfIngest(t, db, pushed)
				} else { // the view that existed loads the batch files with a materialization
					j, err := db.Materialize("bf", "latest", MaterializeRequest{Start: bfNow.Add(-72 * time.Hour), End: bfNow, Online: true, Offline: true})
					require.NoError(t, err)
					require.NoError(t, db.WaitJobs(context.Background(), []Job{j}))
					j, err = db.Job("bf", j.ID)
					require.NoError(t, err)
					res.Jobs = append(res.Jobs, j)
				}
				assert.Equal(t, bfRead(t, want, users), bfRead(t, db, users))
				stored, recomputed := bfHistorical(t, db, users, false), bfHistorical(t, db, users, true)
				assert.Equal(t, stored, recomputed, "from_source recomputes from the log and the batch rows the view holds")
				assert.Equal(t, bfHistorical(t, want, users, false), stored)
				for _, j := range res.Jobs {
					if pushFirst {
						assert.Equal(t, int64(dups), j.Result.BatchDuplicates, "%s: batch rows also pushed are skipped", j.FeatureView)
						assert.Equal(t, int64(len(batch)-dups), j.Result.BatchRows, j.FeatureView)
					} else {
						assert.Equal(t, int64(len(batch)), j.Result.BatchRows, j.FeatureView)
					}
				}
			})
		}
	}
}

// TestBatchErrors: bad batch files are refused by plan and apply with
// the repo file, line and data file named, and nothing applied; a bad
// row past the first fails the backfill job naming file and row, and the
// apply is undone.
func TestBatchErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
		return name
	}
	good := "user_id,ts,amount,note\nu1,2026-11-30T10:00:00Z,5,a\n"
	write("good.csv", good)
	write("missing.csv", "user_id,ts,note\nu1,2026-11-30T10:00:00Z,a\n")
	write("wrongtype.csv", "user_id,ts,amount,note\nu1,2026-11-30T10:00:00Z,five,a\n")
	write("badts.csv", "user_id,ts,amount,note\nu1,yesterday,5,a\n")
	write("badrow.csv", good+"u2,2026-11-30T11:00:00Z,6,b\nu3,2026-11-30T12:00:00Z,7.5,c\n")
	write("nullkey.jsonl", `{"user_id":"u1","ts":"2026-11-30T10:00:00Z","amount":1,"note":"a"}`+"\n"+`{"ts":"2026-11-30T10:00:00Z","amount":2}`+"\n")
	write("nots.jsonl", `{"user_id":"u1","amount":1}`+"\n")
	write("broken.parquet", "PAR1 this is not parquet")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "unreadable.csv"), []byte(good), 0o000))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "emptydir"), 0o755))

	planCases := []struct {
		uri, format, want string
	}{
		{"nope.csv", "csv", "batch file " + filepath.Join(dir, "nope.csv") + " does not exist"},
		{"missing.csv", "csv", `missing column(s) "amount" of source "events"`},
		{"wrongtype.csv", "csv", `line 2: column "amount": "five" is not an integer`},
		{"badts.csv", "csv", `line 2: column "ts"`},
		{"nots.jsonl", "jsonl", `line 1: the timestamp field "ts" is absent`},
		{"broken.parquet", "parquet", "not a readable Parquet file"},
		{"none-*.csv", "csv", "batch glob " + filepath.Join(dir, "none-*.csv") + " matches no file"},
		{"emptydir", "csv", "holds no csv file"},
	}
	if os.Geteuid() != 0 { // root reads files whatever their mode
		planCases = append(planCases, struct{ uri, format, want string }{"unreadable.csv", "csv", "permission denied"})
	}
	db := bfOpen(t, filepath.Join(dir, "data"), 0)
	defer db.Close()
	repoFile := filepath.Join(dir, "bf.yaml")
	for _, c := range planCases {
		text := bfRepoText(bfSums, "      - sums", batchBlock(c.uri, c.format))
		_, err := db.Plan(repoFile, text)
		require.Error(t, err, c.uri)
		assert.Contains(t, err.Error(), c.want, c.uri)
		assert.Contains(t, err.Error(), repoFile+`:6: source "events": batch:`, c.uri)
		_, err = db.Apply(repoFile, text)
		require.Error(t, err, c.uri)
		assert.Equal(t, CodeInvalidArgument, CodeOf(err))
		_, err = db.Job("bf", "x")
		assert.Equal(t, CodeNotFound, CodeOf(err), "nothing applied")
	}

	for _, c := range []struct{ uri, format, want string }{
		{"badrow.csv", "csv", `batch file ` + filepath.Join(dir, "badrow.csv") + `: line 4: column "amount": "7.5" is not an integer`},
		{"nullkey.jsonl", "jsonl", `batch file ` + filepath.Join(dir, "nullkey.jsonl") + `: line 2: feature view "latest": join key "user_id" is missing or null`},
	} {
		res, err := db.Apply(repoFile, bfRepoText(bfSums, "      - sums", batchBlock(c.uri, c.format)))
		require.NoError(t, err, "plan reads the first row only")
		err = db.WaitJobs(context.Background(), res.Jobs)
		require.Error(t, err, c.uri)
		var failed *Job
		var others []Job
		for _, j := range res.Jobs {
			// WaitJobs returns at the first failed job; the others of the
			// apply end once they see it.
			got, err := db.WaitJob(context.Background(), "bf", j.ID)
			require.NoError(t, err)
			require.Equal(t, JobFailed, got.State, "the apply fails as a whole")
			require.NotNil(t, got.Error)
			if strings.HasPrefix(*got.Error, "batch file") {
				failed = &got
			} else {
				others = append(others, got)
			}
		}
		require.NotNil(t, failed, c.uri)
		assert.Contains(t, *failed.Error, c.want)
		for _, o := range others {
			assert.Contains(t, *o.Error, "job "+failed.ID+" of the same apply failed", "the other jobs of the apply name the one that failed")
		}
		_, err = db.Plan(repoFile, bfRepoText(bfSums, "      - sums", ""))
		require.NoError(t, err)
		_, err = db.FeatureViewSummary("bf", "sums")
		assert.Equal(t, CodeNotFound, CodeOf(err), "%s: nothing of the apply was applied", c.uri)
	}
}

// TestMaterialization: a range's batch rows are loaded once; an
// overlapping range is refused (409) naming the earlier job unless
// overwrite, which replaces the range's rows instead of adding them.
func TestMaterialization(t *testing.T) {
	users := 30
	evs := bfEvents(21, 3000, users)
	// The view's version is created at bfNow: batch rows before it are
	// its history, loaded by its backfill. Later rows (a daily export of
	// the future, here shifted forward) are loaded by materializations.
	var history, later []bfEvent
	for i, e := range evs {
		if i%2 == 0 {
			history = append(history, e)
		} else {
			e.ts = e.ts.Add(48 * time.Hour)
			later = append(later, e)
		}
	}
	dir := t.TempDir()
	writeBatch(t, filepath.Join(dir, "h.parquet"), history)
	repoFile := filepath.Join(dir, "bf.yaml")
	text := bfRepoText(bfSums, "      - sums\n  - name: sums_fs\n    features: [sums]", batchBlock("*.parquet", "parquet"))
	now := bfNow
	db, err := Open(Options{Dir: filepath.Join(dir, "data"), NoSync: true, Now: func() time.Time { return now }, DisableAutoFlush: true,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ApplyWait(context.Background(), repoFile, text)
	require.NoError(t, err)
	writeBatch(t, filepath.Join(dir, "l.parquet"), later) // the export lands after the apply
	now = bfNow.Add(48 * time.Hour)

	ref := func(evs []bfEvent, at time.Time) []string {
		want, err := Open(Options{Dir: t.TempDir(), NoSync: true, Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		defer want.Close()
		_, err = want.ApplyWait(context.Background(), "bf.yaml", bfRepoText(bfSums, "      - sums\n  - name: sums_fs\n    features: [sums]", ""))
		require.NoError(t, err)
		bfIngest(t, want, evs)
		return bfReadAt(t, want, "sums_fs", users, at)
	}
	assert.Equal(t, ref(history, now), bfReadAt(t, db, "sums_fs", users, now), "the backfill loaded the history only")

	mid := bfNow.Add(24 * time.Hour)
	j1, err := db.Materialize("bf", "sums", MaterializeRequest{Start: bfNow, End: mid, Online: true, Offline: true})
	require.NoError(t, err)
	require.NoError(t, db.WaitJobs(context.Background(), []Job{j1}))
	var inFirst []bfEvent
	for _, e := range later {
		if e.ts.Before(mid) {
			inFirst = append(inFirst, e)
		}
	}
	assert.Equal(t, ref(append(history, inFirst...), mid), bfReadAt(t, db, "sums_fs", users, mid), "[now, mid) loaded")

	_, err = db.Materialize("bf", "sums", MaterializeRequest{Start: mid.Add(-time.Hour), End: now, Online: true, Offline: true})
	var jc *JobConflict
	require.ErrorAs(t, err, &jc)
	assert.Equal(t, j1.ID, jc.Job.ID)
	assert.Contains(t, err.Error(), "overlaps materialization job "+j1.ID)

	j2, err := db.Materialize("bf", "sums", MaterializeRequest{Start: mid.Add(-time.Hour), End: now.Add(time.Hour), Online: true, Overwrite: true})
	require.NoError(t, err)
	require.NoError(t, db.WaitJobs(context.Background(), []Job{j2}))
	got, err := db.Job("bf", j2.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(len(evs)), got.Result.BatchRows, "every batch row once: the overlap is not loaded twice")
	assert.Equal(t, ref(append(history, later...), now), bfReadAt(t, db, "sums_fs", users, now), "overwrite: each row once")

	for _, c := range []struct {
		req  MaterializeRequest
		view string
		want string
	}{
		{MaterializeRequest{Start: now, End: bfNow, Online: true}, "sums", "must be before end_time"},
		{MaterializeRequest{End: bfNow, Online: true}, "sums", "start_time and end_time are required"},
		{MaterializeRequest{Start: bfNow, End: now}, "sums", "online and offline are both false"},
		{MaterializeRequest{Start: bfNow, End: now, Online: true}, "nope", `feature view "nope" not found`},
	} {
		_, err := db.Materialize("bf", c.view, c.req)
		require.Error(t, err)
		assert.Contains(t, err.Error(), c.want)
	}
}

// bfSpine is a spine of every user at a few times.
type bfSpine struct {
	rows [][]any
	i    int
}

func (s *bfSpine) Columns() []string { return []string{"user_id", "ts"} }
func (s *bfSpine) Next() ([]any, error) {
	if s.i == len(s.rows) {
		return nil, io.EOF
	}
	s.i++
	return s.rows[s.i-1], nil
}

// bfSink collects a historical result as text.
type bfSink struct{ rows []string }

func (c *bfSink) Begin([]HistoricalColumn) error { return nil }
func (c *bfSink) Row(lead []any, f []schema.Value) error {
	c.rows = append(c.rows, fmt.Sprintf("%v %v", lead, f))
	return nil
}

// bfHistorical joins service all to a spine of every user at three
// times, from the stored state or recomputed from the source.
func bfHistorical(t *testing.T, db *DB, users int, fromSource bool) []string {
	t.Helper()
	sp := &bfSpine{}
	for u := range users {
		for _, at := range []time.Time{bfNow, bfNow.Add(-90 * time.Minute), bfNow.Add(-30 * time.Hour)} {
			sp.rows = append(sp.rows, []any{fmt.Sprintf("u%03d", u), at.Format(time.RFC3339Nano)})
		}
	}
	var c bfSink
	require.NoError(t, db.GetFeaturesForEvents(context.Background(), &HistoricalRequest{Workspace: "bf", Service: "all", FromSource: fromSource}, sp, &c))
	return c.rows
}

// bfReadAt reads a service for every user at one time.
func bfReadAt(t *testing.T, db *DB, service string, users int, at time.Time) []string {
	t.Helper()
	keys := make([]map[string]any, users)
	for u := range keys {
		keys[u] = map[string]any{"user_id": fmt.Sprintf("u%03d", u)}
	}
	vecs, err := db.GetFeaturesBatch("bf", service, keys, at)
	require.NoError(t, err)
	out := make([]string, users)
	for u, v := range vecs {
		out[u] = fmt.Sprintf("%s: %v", keys[u]["user_id"], v.Features)
	}
	return out
}

// TestLogOfflineFalse: with push.log_offline: false the log is truncated
// once the views have checkpointed it (and the idempotency window has
// passed); reads go on from the checkpoints; from_source reads the log and
// the batch files while the log is whole, and refuses, saying why, once it
// was truncated.
func TestLogOfflineFalse(t *testing.T) {
	users := 20
	evs := bfEvents(41, 3000, users)
	dir := t.TempDir()
	writeBatch(t, filepath.Join(dir, "h.csv"), evs[:1000])
	text := bfRepoText(bfSums, "      - sums", "    push:\n      log_offline: false\n"+batchBlock("h.csv", "csv"))
	var clock atomic.Int64
	clock.Store(bfNow.UnixNano())
	db, err := Open(Options{Dir: filepath.Join(dir, "data"), NoSync: true, Now: func() time.Time { return time.Unix(0, clock.Load()) },
		SegmentSize: 4096, DisableAutoFlush: true, IdempotencyWindow: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ApplyWait(context.Background(), filepath.Join(dir, "bf.yaml"), text)
	require.NoError(t, err)
	bfIngest(t, db, evs[1000:])
	before := bfRead(t, db, users)
	require.Equal(t, before, bfReadFromSource(t, db, users), "from_source: the log and the batch rows, while the log is whole")

	require.NoError(t, db.Flush())
	assert.Equal(t, uint64(1), db.log.FirstSeq(), "not within the idempotency window")
	clock.Add(int64(3 * time.Hour))
	require.NoError(t, db.Flush())
	assert.Greater(t, db.log.FirstSeq(), uint64(1), "truncated once checkpointed and past the idempotency window")
	clock.Add(-int64(3 * time.Hour))
	assert.Equal(t, before, bfRead(t, db, users), "served from the checkpoints")
	var c bfSink
	err = db.GetFeaturesForEvents(context.Background(), &HistoricalRequest{Workspace: "bf", Service: "all", FromSource: true},
		&bfSpine{rows: [][]any{{"u001", bfNow.Format(time.RFC3339Nano)}}}, &c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "from_source needs the whole offline log, but it begins at entry")
	assert.Contains(t, err.Error(), "log_offline: false")
}

func bfReadFromSource(t *testing.T, db *DB, users int) []string {
	t.Helper()
	stored, recomputed := bfHistorical(t, db, users, false), bfHistorical(t, db, users, true)
	require.Equal(t, stored, recomputed)
	return bfRead(t, db, users)
}
