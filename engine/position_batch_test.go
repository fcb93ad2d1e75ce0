//go:build unix

package engine

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/clicks"
	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/vfs"
	"github.com/featurelog/featurelog/vfs/errorfs"
)

const batchUsers = 30

// producedRun prepares n requests on a producer with one partition and
// returns the partition's entries at increasing, not dense, offsets (as
// Kafka's, with transaction markers between).
func producedRun(t *testing.T, now *atomic.Int64, n int, seed uint64) []PositionedPayload {
	producer := newPosNode(t, now, adsRepo(t))
	r := rand.New(rand.NewPCG(seed, seed+1))
	var out []PositionedPayload
	off := int64(0)
	for range n {
		now.Add(int64(time.Minute))
		body := clicks.Body(r, time.Unix(0, now.Load()), 1+r.IntN(30), batchUsers)
		_, entries, err := producer.db.PrepareIngest(body, nil, 1, fnvPartition)
		require.NoError(t, err)
		require.Len(t, entries, 1)
		out = append(out, PositionedPayload{Payload: entries[0].Payload, Pos: Position{Partition: 0, Offset: off}})
		off += 1 + r.Int64N(3)
	}
	return out
}

// servedByUser reads every user's features from db.
func servedByUser(t *testing.T, db *DB) map[string]string {
	out := map[string]string{}
	for u := range batchUsers {
		user := fmt.Sprintf("u%d", u)
		got, err := db.GetFeatures(&GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2", JoinKeys: map[string]any{"user_id": user}})
		require.NoError(t, err)
		out[user] = fmt.Sprint(got)
	}
	return out
}

// loggedPositions lists the positions of the log's entries, in log order.
func loggedPositions(t *testing.T, db *DB) []int64 {
	var out []int64
	var e record.Entry
	require.NoError(t, db.log.Replay(db.log.FirstSeq(), func(seq uint64, payload []byte) error {
		if err := record.DecodeHeader(payload, &e); err != nil {
			return err
		}
		if e.Positioned {
			out = append(out, e.Position.Offset)
		}
		return nil
	}))
	return out
}

func offsets(es []PositionedPayload) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Pos.Offset
	}
	return out
}

// TestApplyEntriesEqualsOneAtATime: a partition's entries applied in runs
// of random lengths, runs overlapping what was applied (Kafka redelivers),
// give the responses, reads, AppliedPosition and log entries that
// ApplyEntry one at a time gives, also after a restart; and a run again
// changes nothing.
func TestApplyEntriesEqualsOneAtATime(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	entries := producedRun(t, &now, 60, 11)
	one, many := newPosNode(t, &now, adsRepo(t)), newPosNode(t, &now, adsRepo(t))
	var want []*IngestResponse
	for _, e := range entries {
		resp, err := one.db.ApplyEntry(e.Payload, e.Pos)
		require.NoError(t, err)
		require.NotNil(t, resp)
		want = append(want, resp)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(entries); {
		from := max(0, i-r.IntN(3)) // some applied already
		to := min(len(entries), i+1+r.IntN(8))
		resps, err := many.db.ApplyEntries(entries[from:to])
		require.NoError(t, err)
		require.Len(t, resps, to-from)
		for k, resp := range resps {
			if from+k < i {
				assert.Nil(t, resp, "offset %d was applied already", entries[from+k].Pos.Offset)
			} else {
				assert.Equal(t, want[from+k], resp, "offset %d", entries[from+k].Pos.Offset)
			}
		}
		i = to
	}
	check := func(stage string) {
		assert.Equal(t, servedByUser(t, one.db), servedByUser(t, many.db), stage)
		p1, ok1, err := one.db.AppliedPosition()
		require.NoError(t, err)
		p2, ok2, err := many.db.AppliedPosition()
		require.NoError(t, err)
		assert.Equal(t, []any{p1, ok1}, []any{p2, ok2}, stage)
		assert.Equal(t, offsets(entries), loggedPositions(t, many.db), "%s: one log entry per Kafka record, each once", stage)
		assert.Equal(t, one.db.LastSeq(), many.db.LastSeq(), stage)
	}
	check("applied")
	many.reopen()
	check("after a restart")
	resps, err := many.db.ApplyEntries(entries)
	require.NoError(t, err)
	assert.Equal(t, make([]*IngestResponse, len(entries)), resps, "every entry was applied already")
	check("applied again")
}

// TestApplyEntriesStopsAtAFailingEntry: a run with an entry that does not
// apply logs and applies the entries before it, reports it, and writes
// nothing of it or after it, so that the caller retries from it; and runs
// that are not increasing offsets of the log's partition are refused.
func TestApplyEntriesStopsAtAFailingEntry(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	entries := producedRun(t, &now, 10, 12)
	n := newPosNode(t, &now, adsRepo(t))
	run := append([]PositionedPayload(nil), entries...)
	run[4].Payload = []byte("not an entry")
	resps, err := n.db.ApplyEntries(run)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("partition 0 offset %d is not a featurelog entry", run[4].Pos.Offset))
	assert.Len(t, resps, 4)
	pos, ok, err := n.db.AppliedPosition()
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, entries[3].Pos, pos)
	assert.Equal(t, offsets(entries[:4]), loggedPositions(t, n.db))

	// A record of a workspace this node does not have no longer validates.
	bad := append([]PositionedPayload(nil), entries[4:]...)
	var e record.Entry
	require.NoError(t, record.Decode(bad[2].Payload, &e))
	e.Workspace = "elsewhere"
	bad[2].Payload = record.AppendEntry(nil, &e)
	resps, err = n.db.ApplyEntries(bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("applying partition 0 offset %d", bad[2].Pos.Offset))
	assert.Len(t, resps, 2)
	assert.Equal(t, offsets(entries[:6]), loggedPositions(t, n.db))

	_, err = n.db.ApplyEntries([]PositionedPayload{entries[9], entries[8]})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "increasing offsets")
	_, err = n.db.ApplyEntries([]PositionedPayload{{Payload: entries[9].Payload, Pos: Position{Partition: 1, Offset: 1 << 40}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "applies partition 0, not partition 1")
	assert.Equal(t, offsets(entries[:6]), loggedPositions(t, n.db), "nothing written by refused runs")

	resps, err = n.db.ApplyEntries(entries) // the retry from the failing entry, with the records redelivered
	require.NoError(t, err)
	assert.Len(t, resps, len(entries))
	assert.Equal(t, offsets(entries), loggedPositions(t, n.db))
}

// TestApplyEntriesCrashImages: a power loss while a run of entries is
// being logged (images of the data directory at the run's fsync: the
// durable state, and the log's tail cut at many bytes and with its
// unsynced blocks zero-filled) leaves a prefix of the run, each entry
// whole with its position; reopened, AppliedPosition is the last one, and
// applying the run again applies every record exactly once: the reads
// equal a node that applied each entry once.
func TestApplyEntriesCrashImages(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	entries := producedRun(t, &now, 30, 13)
	const before = 5 // applied and durable before the run
	ref := newPosNode(t, &now, adsRepo(t))
	for _, e := range entries {
		_, err := ref.db.ApplyEntry(e.Payload, e.Pos)
		require.NoError(t, err)
	}
	want := servedByUser(t, ref.db)

	scratch := t.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		scratch, err = os.MkdirTemp("/dev/shm", "featurelog-applybatch-")
		require.NoError(t, err)
		t.Cleanup(func() { os.RemoveAll(scratch) })
	}
	nowFn := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	opts := func(dir string, fs vfs.FS) Options {
		return Options{Dir: dir, FS: fs, DisableAutoFlush: true, Logger: slog.New(slog.DiscardHandler), Now: nowFn}
	}
	dir := filepath.Join(scratch, "run")
	db, err := Open(opts(dir, nil))
	require.NoError(t, err)
	_, err = db.ApplyWait(t.Context(), "repo.yaml", adsRepo(t))
	require.NoError(t, err)
	_, err = db.ApplyEntries(entries[:before])
	require.NoError(t, err)
	require.NoError(t, db.Close())

	graveyard := filepath.Join(scratch, "graveyard")
	require.NoError(t, os.Mkdir(graveyard, 0o755))
	rec, err := errorfs.NewRecorder(vfs.Default, dir, graveyard, "wal", "segments")
	require.NoError(t, err)
	type image struct{ dir, desc string }
	var images []image
	take := func(desc string, content func(errorfs.FileState, []byte) []byte) {
		img := image{dir: filepath.Join(scratch, fmt.Sprintf("img%d", len(images))), desc: desc}
		require.NoError(t, rec.Image(img.dir, content))
		images = append(images, img)
	}
	var armed atomic.Bool
	rec.BeforeSync = func(path string) {
		if !armed.Load() {
			return
		}
		at := "before fsync of " + filepath.Base(path)
		take(at+": durable state", nil)
		for _, f := range rec.Files() {
			if f.Size > f.Durable && strings.Contains(f.Path, string(filepath.Separator)+"wal"+string(filepath.Separator)) {
				TornImages(take, at, f, 41)
			}
		}
	}
	db, err = Open(opts(dir, rec))
	require.NoError(t, err)
	syncs := db.LogStats().Batches
	armed.Store(true)
	_, err = db.ApplyEntries(entries[before:])
	armed.Store(false)
	require.NoError(t, err)
	assert.Equal(t, syncs+1, db.LogStats().Batches, "the run is one group commit")
	require.NoError(t, db.Close())
	require.NotEmpty(t, images)

	kept := map[int]int{} // entries of the run kept → images
	for _, img := range images {
		db, err := Open(opts(img.dir, nil))
		// Every image opens, a block of the run lost while a later one
		// reached the disk included: the run is one write, marked where it
		// ends, so recovery cuts its damage like a torn tail
		// (docs/format/wal.md, "Recovery").
		require.NoError(t, err, img.desc)
		got := loggedPositions(t, db)
		k := len(got)
		require.GreaterOrEqual(t, k, before, img.desc)
		require.Equal(t, offsets(entries[:k]), got, "%s: a prefix of the entries, each once", img.desc)
		pos, ok, err := db.AppliedPosition()
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, entries[k-1].Pos, pos, img.desc)
		kept[k-before]++
		resps, err := db.ApplyEntries(entries) // Kafka redelivers from the start
		require.NoError(t, err, img.desc)
		require.Len(t, resps, len(entries))
		for i, r := range resps {
			require.Equal(t, i >= k, r != nil, "%s: entry %d applied iff not kept", img.desc, i)
		}
		require.Equal(t, offsets(entries), loggedPositions(t, db), img.desc)
		require.Equal(t, want, servedByUser(t, db), "%s: every record once", img.desc)
		require.NoError(t, db.Close())
		require.NoError(t, os.RemoveAll(img.dir))
	}
	mid := 0
	for k, n := range kept {
		if k > 0 && k < len(entries)-before {
			mid += n
		}
	}
	t.Logf("%d images: entries of the run kept → images %v", len(images), kept)
	assert.Positive(t, mid, "some images keep part of the run")
}
