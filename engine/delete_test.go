package engine

// Deletion jobs (SPEC §6 delete_keys): after the job, reads answer as if
// the deleted keys' records acknowledged before the request never
// existed, and no byte of them is left in any file of the data directory.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/featurelog/featurelog/compaction"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// diskOccurrences counts marker in every file under dir: in the raw bytes,
// in the output of every zstd frame found anywhere in a file (the log and
// zstd segments compress), and in the entries of every segment (S2 blocks
// have no magic to look for), so compressed copies are found too.
func diskOccurrences(t *testing.T, dir, marker string) (n int, where []string) {
	t.Helper()
	dec, err := zstd.NewReader(nil)
	require.NoError(t, err)
	defer dec.Close()
	magic := []byte{0x28, 0xb5, 0x2f, 0xfd}
	err = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		k := bytes.Count(data, []byte(marker))
		for off := 0; ; off++ {
			i := bytes.Index(data[off:], magic)
			if i < 0 {
				break
			}
			off += i
			if err := dec.Reset(bytes.NewReader(data[off:])); err != nil {
				continue
			}
			plain, _ := io.ReadAll(dec) // up to the end of the frame's data, or an error
			k += bytes.Count(plain, []byte(marker))
		}
		if filepath.Ext(path) == ".seg" {
			k += segmentOccurrences(t, path, marker)
		}
		if k > 0 {
			n += k
			where = append(where, fmt.Sprintf("%s (%d)", path, k))
		}
		return nil
	})
	require.NoError(t, err)
	return n, where
}

// segmentOccurrences counts marker in the keys and values of the segment
// at path.
func segmentOccurrences(t *testing.T, path, marker string) (n int) {
	r, err := compaction.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0 // removed since the directory was listed
	}
	require.NoError(t, err)
	defer r.Close()
	it := r.NewIterator()
	for it.Next() {
		n += bytes.Count(it.Key(), []byte(marker)) + bytes.Count(it.Value(), []byte(marker))
	}
	require.NoError(t, it.Err())
	return n
}

// delEvents are events of 20 users in which the notes of u003 and u007
// carry a marker to delete and those of u005 one to keep.
func delEvents(seed uint64, n int) []bfEvent {
	evs := bfEvents(seed, n, 20)
	for i := range evs {
		switch evs[i].user {
		case "u003", "u007":
			evs[i].note = fmt.Sprintf("MARKER-DEL-%s-%d", evs[i].user, i%5)
		case "u005":
			evs[i].note = fmt.Sprintf("MARKER-KEEP-%d", i%5)
		}
	}
	return evs
}

func isDeleted(e bfEvent) bool { return e.user == "u003" || e.user == "u007" }

func without(evs []bfEvent, drop func(bfEvent) bool) []bfEvent {
	var out []bfEvent
	for _, e := range evs {
		if !drop(e) {
			out = append(out, e)
		}
	}
	return out
}

// bfRange answers service all in range mode for every user over the
// last two days, from the stored state or recomputed from the source.
func bfRange(t *testing.T, db *DB, fromSource bool) []string {
	t.Helper()
	var ents []map[string]any
	for u := range 20 {
		ents = append(ents, map[string]any{"user_id": fmt.Sprintf("u%03d", u)})
	}
	var c bfSink
	require.NoError(t, db.GetFeaturesForRange(context.Background(), &HistoricalRequest{Workspace: "bf", Service: "all", FromSource: fromSource,
		Start: bfNow.Add(-48 * time.Hour), End: bfNow, Entities: ents}, &c))
	require.NotEmpty(t, c.rows)
	return c.rows
}

// delRequest deletes u003, u007 and u999 (which has no data) from view
// latest.
func delRequest(online, offline bool) DeleteKeysRequest {
	return DeleteKeysRequest{Keys: []map[string]any{{"user_id": "u003"}, {"user_id": "u007"}, {"user_id": "u999"}},
		Online: online, Offline: offline}
}

// TestDeleteKeysErasesEverywhere: records of the deleted keys in the
// batch file, in merged and flushed segments, in the memtable and in the
// log are gone from every read and every file; records acknowledged
// after the request are kept; other keys are untouched; the job says
// which keys it found.
func TestDeleteKeysErasesEverywhere(t *testing.T) {
	evs := delEvents(71, 3000)
	dir := t.TempDir()
	writeBatch(t, filepath.Join(dir, "h.csv"), evs[:600])
	text := bfRepoText(bfSums, "      - sums", batchBlock("h.csv", "csv"))
	db := bfOpen(t, filepath.Join(dir, "data"), 0)
	defer db.Close()
	_, err := db.ApplyWait(context.Background(), filepath.Join(dir, "bf.yaml"), text)
	require.NoError(t, err)
	bfIngest(t, db, evs[600:1400])
	require.NoError(t, db.Flush())
	bfIngest(t, db, evs[1400:2000])
	require.NoError(t, db.Flush())
	require.NoError(t, db.CompactAll())
	bfIngest(t, db, evs[2000:2600]) // in the memtable
	bfRead(t, db, 20)               // fills the hot tier and the decoded-state cache with the keys' states
	bfRead(t, db, 20)

	j, err := db.DeleteKeys("bf", "latest", delRequest(true, true))
	require.NoError(t, err)
	assert.Equal(t, JobDeletion, j.Type)
	after := evs[2600:] // acknowledged after the request: kept, deleted users' too
	for i := range after {
		if isDeleted(after[i]) {
			after[i].note = "kept-after-request"
		}
	}
	bfIngest(t, db, after)
	j, err = db.WaitJob(context.Background(), "bf", j.ID)
	require.NoError(t, err)
	require.Equal(t, JobSuccess, j.State, "error: %v", j.Error)
	require.NotNil(t, j.Result)
	assert.Equal(t, 2, j.Result.KeysFound)
	assert.Equal(t, []int{2}, j.Result.KeysNotFound, "u999 had no data")
	assert.ElementsMatch(t, []string{"latest", "sums"}, j.Result.FeatureViews)
	assert.Positive(t, j.Result.RecordsErased)
	assert.Nil(t, j.Params.Keys, "the keys leave the job file with the records")
	assert.Equal(t, 3, j.Params.KeyCount)

	refDir := t.TempDir()
	writeBatch(t, filepath.Join(refDir, "h.csv"), without(evs[:600], isDeleted))
	ref := bfOpen(t, filepath.Join(refDir, "data"), 0)
	defer ref.Close()
	_, err = ref.ApplyWait(context.Background(), filepath.Join(refDir, "bf.yaml"), text)
	require.NoError(t, err)
	bfIngest(t, ref, without(evs[600:2600], isDeleted))
	bfIngest(t, ref, after)

	check := func(db *DB, when string) {
		assert.Equal(t, bfRead(t, ref, 20), bfRead(t, db, 20), "online and as_of reads, %s", when)
		assert.Equal(t, bfHistorical(t, ref, 20, false), bfHistorical(t, db, 20, false), "historical, %s", when)
		assert.Equal(t, bfHistorical(t, ref, 20, true), bfHistorical(t, db, 20, true), "from_source, %s", when)
		assert.Equal(t, bfRange(t, ref, false), bfRange(t, db, false), "range mode, %s", when)
	}
	check(db, "after the job")
	for _, view := range []string{"latest", "sums"} { // run reads the log and the batch file: nothing of the keys
		var rows bfSink
		require.NoError(t, db.Run(context.Background(), "bf", view, &RunRequest{Start: bfNow.Add(-72 * time.Hour), End: bfNow.Add(time.Hour), Level: RunDisabled}, &rows))
		require.NotEmpty(t, rows.rows)
		assert.NotContains(t, strings.Join(rows.rows, "\n"), "MARKER-DEL", "run of %s", view)
	}
	n, where := diskOccurrences(t, filepath.Join(dir, "data"), "MARKER-DEL")
	assert.Zero(t, n, "deleted markers on disk: %v", where)
	n, _ = diskOccurrences(t, filepath.Join(dir, "data"), "MARKER-KEEP")
	assert.Positive(t, n, "the scan finds a kept key's marker")
	n, _ = diskOccurrences(t, filepath.Join(dir, "data"), "kept-after-request")
	assert.Positive(t, n, "records acknowledged after the request stay")

	require.NoError(t, db.Close())
	db = bfOpen(t, filepath.Join(dir, "data"), 0)
	defer db.Close()
	check(db, "after a restart")
	// A new version's backfill reads the batch file again: the erasure holds.
	_, err = db.ApplyWait(context.Background(), filepath.Join(dir, "bf.yaml"), []byte(strings.Replace(string(text), "window: 6h", "window: 7h", 1)))
	require.NoError(t, err)
	_, err = ref.ApplyWait(context.Background(), filepath.Join(refDir, "bf.yaml"), []byte(strings.Replace(string(text), "window: 6h", "window: 7h", 1)))
	require.NoError(t, err)
	check(db, "after a backfill of a new version")
	n, where = diskOccurrences(t, filepath.Join(dir, "data"), "MARKER-DEL")
	assert.Zero(t, n, "deleted markers on disk after the backfill: %v", where)
}

// TestDeleteKeysOnlineOnly: online: true, offline: false removes the
// view's serving state (online and as_of reads), survives a restart and a
// rebuild, and leaves historical reads and the other views as they were.
func TestDeleteKeysOnlineOnly(t *testing.T) {
	evs := delEvents(72, 1500)
	dir := t.TempDir()
	text := bfRepoText(bfSums, "      - sums", "")
	db := bfOpen(t, dir, 0)
	defer db.Close()
	_, err := db.ApplyWait(context.Background(), "bf.yaml", text)
	require.NoError(t, err)
	bfIngest(t, db, evs[:800])
	require.NoError(t, db.Flush())
	bfIngest(t, db, evs[800:])
	histBefore, rangeBefore := bfHistorical(t, db, 20, false), bfRange(t, db, false)

	j, err := db.DeleteKeys("bf", "latest", delRequest(true, false))
	require.NoError(t, err)
	j, err = db.WaitJob(context.Background(), "bf", j.ID)
	require.NoError(t, err)
	require.Equal(t, JobSuccess, j.State, "error: %v", j.Error)
	assert.Equal(t, []string{"latest"}, j.Result.FeatureViews)

	ref := bfOpen(t, t.TempDir(), 0)
	defer ref.Close()
	_, err = ref.ApplyWait(context.Background(), "bf.yaml", text)
	require.NoError(t, err)
	bfIngest(t, ref, evs)
	check := func(db *DB, when string) {
		for u := range 20 {
			user := fmt.Sprintf("u%03d", u)
			for _, at := range []time.Time{bfNow, bfNow.Add(-30 * time.Hour)} {
				got, err := db.GetFeatures(&GetFeaturesRequest{Workspace: "bf", Service: "all", JoinKeys: map[string]any{"user_id": user}, AsOf: at})
				require.NoError(t, err)
				want, err := ref.GetFeatures(&GetFeaturesRequest{Workspace: "bf", Service: "all", JoinKeys: map[string]any{"user_id": user}, AsOf: at})
				require.NoError(t, err)
				for i, f := range got.Features {
					if strings.HasPrefix(f.Name, "latest.") && (user == "u003" || user == "u007") {
						assert.Equal(t, MissingData, f.Status, "%s: %s %s reads as never seen", when, user, f.Name)
					} else {
						assert.Equal(t, want.Features[i], f, "%s: %s %s untouched", when, user, f.Name)
					}
				}
			}
		}
		assert.Equal(t, histBefore, bfHistorical(t, db, 20, false), "%s: historical reads still see the records", when)
		assert.Equal(t, rangeBefore, bfRange(t, db, false), "%s: range mode too", when)
	}
	check(db, "after the job")
	require.NoError(t, db.Close())
	db = bfOpen(t, dir, 0) // the memtable's records are replayed from the log: the erasure holds
	defer db.Close()
	check(db, "after a restart")
	// A new version of the view is rebuilt from the log: the erasure holds.
	rebuilt := []byte(strings.Replace(string(text), "timestamp_field: ts\n    features:\n      - attribute: {name: amount}",
		"timestamp_field: ts\n    ttl: 3650d\n    features:\n      - attribute: {name: amount}", 1))
	require.NotEqual(t, text, rebuilt)
	_, err = db.ApplyWait(context.Background(), "bf.yaml", rebuilt)
	require.NoError(t, err)
	_, err = ref.ApplyWait(context.Background(), "bf.yaml", rebuilt)
	require.NoError(t, err)
	check(db, "after a rebuild")
}

// TestDeleteKeysErrors: the limits and bad requests of SPEC §6, each
// refused with a message naming the problem, and nothing started.
func TestDeleteKeysErrors(t *testing.T) {
	db := bfOpen(t, t.TempDir(), 0)
	defer db.Close()
	_, err := db.ApplyWait(context.Background(), "bf.yaml", bfRepoText(bfSums, "      - sums", ""))
	require.NoError(t, err)
	many := make([]map[string]any, MaxDeleteKeys+1)
	for i := range many {
		many[i] = map[string]any{"user_id": fmt.Sprint(i)}
	}
	for _, c := range []struct {
		name, view string
		req        DeleteKeysRequest
		code       Code
		msg        string
	}{
		{"too many keys", "latest", DeleteKeysRequest{Keys: many, Online: true}, CodeInvalidArgument, "at most 10000"},
		{"missing join key", "latest", DeleteKeysRequest{Keys: []map[string]any{{"user_id": "a"}, {"user": "b"}}, Online: true}, CodeInvalidArgument, `keys[1]: join key "user_id" of feature view "latest" is missing`},
		{"extra member", "latest", DeleteKeysRequest{Keys: []map[string]any{{"user_id": "a", "x": 1}}, Online: true}, CodeInvalidArgument, `keys[0]: "x" is not a join key`},
		{"null key", "latest", DeleteKeysRequest{Keys: []map[string]any{{"user_id": nil}}, Online: true}, CodeInvalidArgument, `keys[0]: join key "user_id"`},
		{"offline without online", "latest", DeleteKeysRequest{Keys: []map[string]any{{"user_id": "a"}}, Offline: true}, CodeInvalidArgument, "offline: true with online: false"},
		{"nothing", "latest", DeleteKeysRequest{Keys: []map[string]any{{"user_id": "a"}}}, CodeInvalidArgument, "both false"},
		{"no keys", "latest", DeleteKeysRequest{Online: true}, CodeInvalidArgument, "keys is empty"},
		{"unknown view", "nope", DeleteKeysRequest{Keys: []map[string]any{{"user_id": "a"}}, Online: true}, CodeNotFound, `feature view "nope" not found`},
	} {
		_, err := db.DeleteKeys("bf", c.view, c.req)
		var e *Error
		require.True(t, errors.As(err, &e), "%s: %v", c.name, err)
		assert.Equal(t, c.code, e.Code, c.name)
		assert.Contains(t, err.Error(), c.msg, c.name)
	}
	_, err = db.DeleteKeys("nows", "latest", delRequest(true, true))
	var e *Error
	require.True(t, errors.As(err, &e))
	assert.Equal(t, CodeNotFound, e.Code)
	jobs, err := db.Jobs("bf", JobFilter{Type: JobDeletion})
	require.NoError(t, err)
	assert.Empty(t, jobs, "no job started")
}

// TestDeleteKeysIdempotentRetry: a retry of a request whose records were
// deleted returns the first response and writes nothing (SPEC §6).
func TestDeleteKeysIdempotentRetry(t *testing.T) {
	dir := t.TempDir()
	db := bfOpen(t, dir, 0)
	defer db.Close()
	_, err := db.ApplyWait(context.Background(), "bf.yaml", bfRepoText(bfSums, "      - sums", ""))
	require.NoError(t, err)
	req := func() *IngestRequest {
		return &IngestRequest{Workspace: "bf", IdempotencyKey: "retry-1", Records: map[string][]map[string]any{"events": {
			bfEvent{user: "u003", ts: bfNow.Add(-time.Hour), amount: 5, note: "MARKER-DEL-retry"}.record(),
			bfEvent{user: "u004", ts: bfNow.Add(-time.Hour), amount: 6, note: "kept"}.record(),
		}}}
	}
	first, err := db.Ingest(req())
	require.NoError(t, err)
	j, err := db.DeleteKeys("bf", "latest", delRequest(true, true))
	require.NoError(t, err)
	j, err = db.WaitJob(context.Background(), "bf", j.ID)
	require.NoError(t, err)
	require.Equal(t, JobSuccess, j.State, "%v", j.Error)
	before := db.LastSeq()
	again, err := db.Ingest(req())
	require.NoError(t, err)
	assert.True(t, again.Replayed, "the retry is answered from the table")
	assert.Equal(t, first.Metrics, again.Metrics, "the first response, erased records counted as they were")
	assert.Equal(t, before, db.LastSeq(), "nothing written")
	vec, err := db.GetFeatures(&GetFeaturesRequest{Workspace: "bf", Service: "all", JoinKeys: map[string]any{"user_id": "u003"}})
	require.NoError(t, err)
	assert.Equal(t, MissingData, vec.Features[0].Status, "the retry brought nothing back")
	require.NoError(t, db.Close())
	db = bfOpen(t, dir, 0) // the key table is rebuilt from the rewritten log
	defer db.Close()
	again, err = db.Ingest(req())
	require.NoError(t, err)
	assert.True(t, again.Replayed, "after a restart too")
	n, where := diskOccurrences(t, dir, "MARKER-DEL")
	assert.Zero(t, n, "%v", where)
}
