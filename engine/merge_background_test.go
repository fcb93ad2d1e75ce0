package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// bgMergeNode is a DB whose maintainer flushes every 40 records and
// merges every two segments, and whose first background merge stops after
// its first key until release is closed.
type bgMergeNode struct {
	t       *testing.T
	dir     string
	now     *atomic.Int64
	db      *DB
	paused  chan struct{} // closed when the first merge waits
	release chan struct{}
	next    int // records ingested so far
}

func newBGMergeNode(t *testing.T, now *atomic.Int64) *bgMergeNode {
	n := &bgMergeNode{t: t, dir: t.TempDir(), now: now, paused: make(chan struct{}), release: make(chan struct{})}
	var once sync.Once
	n.open(func(string) {
		once.Do(func() {
			close(n.paused)
			<-n.release
		})
	})
	t.Cleanup(func() {
		select {
		case <-n.release:
		default:
			close(n.release)
		}
		n.db.Close()
	})
	_, err := n.db.ApplyWait(context.Background(), "repo.yaml", adsRepo(t))
	require.NoError(t, err)
	return n
}

func (n *bgMergeNode) open(hook func(view string)) {
	db, err := Open(Options{Dir: n.dir, NoSync: true, FlushRecords: 40, CompactionFanIn: 2, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.Unix(0, n.now.Load()).UTC() }, mergeHook: hook})
	require.NoError(n.t, err)
	n.db = db
}

// ingest sends k records of users u0..u29, the same records to every db.
func (n *bgMergeNode) ingest(k int, dbs ...*DB) {
	var recs []map[string]any
	for range k {
		i := n.next
		n.next++
		recs = append(recs, map[string]any{"user_id": fmt.Sprintf("u%d", i%batchUsers),
			"timestamp": time.Unix(0, n.now.Load()).Add(-time.Duration(i%997) * time.Second), "clicked": int64(i % 3 % 2)})
	}
	for _, db := range append([]*DB{n.db}, dbs...) {
		_, err := db.Ingest(&IngestRequest{Workspace: "ads", Records: map[string][]map[string]any{"impressions_event_source": recs}})
		require.NoError(n.t, err)
	}
}

// untilPaused ingests until the first background merge waits.
func (n *bgMergeNode) untilPaused(ref *DB) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-n.paused:
			return
		default:
		}
		require.True(n.t, time.Now().Before(deadline), "no background merge started")
		n.ingest(20, ref)
		time.Sleep(50 * time.Millisecond)
	}
}

// pausedBGMerge returns a node whose first background merge is held
// after its first key, and a node that ingested the same records and
// never merges.
func pausedBGMerge(t *testing.T) (*posNode, *bgMergeNode) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	ref := newPosNode(t, &now, adsRepo(t))
	n := newBGMergeNode(t, &now)
	n.untilPaused(ref.db)
	return ref, n
}

// storage returns the view's segment count and active memtable records.
func (n *bgMergeNode) storage(view string) (int, int64) {
	v, err := n.db.jobView("ads", view)
	require.NoError(n.t, err)
	st := v.storage()
	return st.Segments, st.MemtableRecords
}

// mergeDue reports whether a live view of db has segments to merge.
func mergeDue(db *DB) bool {
	for _, d := range liveViews(db.cat.Load()) {
		if len(db.mergeCandidates(d, false)) >= 2 {
			return true
		}
	}
	return false
}

// settle waits until no merge is due or running.
func (n *bgMergeNode) settle() {
	require.Eventually(n.t, func() bool {
		if mergeDue(n.db) {
			return false
		}
		n.db.maint.Lock() // a merge installing holds it
		n.db.maint.Unlock()
		return !mergeDue(n.db)
	}, 30*time.Second, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // a merge that found nothing to do has returned
}

// TestFlushesDuringBackgroundMerge: while a merge is under way (held
// after its first key), flushes still run, so the memtable does not grow
// past FlushRecords (with the merge under db.maint, as before, no flush
// ran until it ended); once it ends, reads equal a node that never
// merged, before and after a restart.
func TestFlushesDuringBackgroundMerge(t *testing.T) {
	ref, n := pausedBGMerge(t)

	segs, _ := n.storage("user_click_counts")
	n.ingest(200, ref.db)
	require.Eventually(t, func() bool {
		s, mem := n.storage("user_click_counts")
		return s > segs && mem < 40
	}, 20*time.Second, 20*time.Millisecond, "no flush ran while the merge was under way")

	close(n.release)
	n.ingest(100, ref.db)
	n.settle()
	want := servedByUser(t, ref.db)
	require.Equal(t, want, servedByUser(t, n.db))
	require.NoError(t, n.db.Close())
	n.open(nil)
	require.Equal(t, want, servedByUser(t, n.db), "after a restart")
}

// TestDeletionDuringBackgroundMerge: a deletion rewrites the segments a
// merge is reading while the merge is under way; the merge's output,
// which holds the deleted key's old state, is then dropped rather than
// installed: the key stays deleted, before and after a restart, and every
// other key reads as on a node that never merged. (The deletion's job
// ends only once the merge lets go of the old files: they hold the
// erased records.)
func TestDeletionDuringBackgroundMerge(t *testing.T) {
	ref, n := pausedBGMerge(t)
	files := func() map[string]bool {
		v, err := n.db.jobView("ads", "user_click_counts")
		require.NoError(t, err)
		v.data.mu.RLock()
		defer v.data.mu.RUnlock()
		out := map[string]bool{}
		for _, s := range v.data.segs {
			out[s.file] = true
		}
		return out
	}
	before := files()

	req := DeleteKeysRequest{Keys: []map[string]any{{"user_id": "u3"}}, Online: true, Offline: true}
	var jobs []Job
	for _, db := range []*DB{n.db, ref.db} {
		j, err := db.DeleteKeys("ads", "user_click_counts", req)
		require.NoError(t, err)
		jobs = append(jobs, j)
	}
	require.Eventually(t, func() bool {
		after := files()
		for f := range before {
			if !after[f] {
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "the deletion rewrote no segment while the merge was under way")

	close(n.release)
	for i, db := range []*DB{n.db, ref.db} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		j, err := db.WaitJob(ctx, "ads", jobs[i].ID)
		cancel()
		require.NoError(t, err)
		require.Equal(t, JobSuccess, j.State, "error: %v", j.Error)
	}
	n.settle()
	want := servedByUser(t, ref.db)
	require.Equal(t, fmt.Sprint(deletedReading(t, ref.db)), want["u3"], "u3 reads as deleted")
	require.Equal(t, want, servedByUser(t, n.db))
	require.NoError(t, n.db.Close())
	n.open(nil)
	require.Equal(t, want, servedByUser(t, n.db), "after a restart")
}

// deletedReading is what servedByUser reads for a key with no data.
func deletedReading(t *testing.T, db *DB) *FeatureVector {
	got, err := db.GetFeatures(&GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2", JoinKeys: map[string]any{"user_id": "nobody"}})
	require.NoError(t, err)
	return got
}

// TestMergesDueTakesViewsInTurn: with fewer merge slots than views due,
// the maintainer's picks alternate between the views instead of serving
// the first view only, and a view whose merges are under way is skipped.
func TestMergesDueTakesViewsInTurn(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	db, err := Open(Options{Dir: t.TempDir(), NoSync: true, DisableAutoFlush: true, CompactionFanIn: 2, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.Unix(0, now.Load()).UTC() }})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ApplyWait(context.Background(), "repo.yaml", adsRepo(t))
	require.NoError(t, err)
	n := &bgMergeNode{t: t, now: &now, db: db}
	for range 4 {
		n.ingest(10)
		require.NoError(t, db.Flush())
	}
	var got []string
	for range 4 {
		due := db.mergesDue(nil, 1)
		require.Len(t, due, 1)
		got = append(got, due[0].id)
	}
	require.NotEqual(t, got[0], got[1], "the second pick is the other view: %v", got)
	require.Equal(t, got[0], got[2], "%v", got)
	require.NotEqual(t, got[2], got[3], "%v", got)

	all := db.mergesDue(nil, 10)
	require.Len(t, all, 2, "both views are due")
	busy := map[*viewData]bool{all[0]: true}
	rest := db.mergesDue(busy, 10)
	require.Len(t, rest, 1)
	require.Equal(t, all[1].id, rest[0].id, "a view whose merges are under way is not picked again")
}

// TestViewsMergeSideBySide: two views' background merges run at the
// same time. Each merge is held after its first key; both views reach
// that point together. With one merge at a time, as before, the second
// view's merge never started while the first was held (and in a 20M-event
// load the first view's merge took the whole load, leaving the second
// view eight level-0 segments for the first join after it).
func TestViewsMergeSideBySide(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	release := make(chan struct{})
	var mu sync.Mutex
	held := map[string]bool{}
	n := &bgMergeNode{t: t, dir: t.TempDir(), now: &now}
	n.open(func(view string) {
		mu.Lock()
		held[view] = true
		mu.Unlock()
		<-release
	})
	defer func() {
		close(release)
		require.NoError(t, n.db.Close())
	}()
	_, err := n.db.ApplyWait(context.Background(), "repo.yaml", adsRepo(t))
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		both := len(held) >= 2
		mu.Unlock()
		if both {
			break
		}
		require.True(t, time.Now().Before(deadline), "only %v merged while held: views' merges do not run side by side", held)
		n.ingest(20)
		time.Sleep(50 * time.Millisecond)
	}
}
