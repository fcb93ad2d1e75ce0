package engine

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/vfs"
	"github.com/featurelog/featurelog/vfs/errorfs"
)

// idemT0 is the test clock's start.
var idemT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// idemNode is an engine on a test clock with the ads example applied twice:
// as workspace "ads" and as "ads2".
type idemNode struct {
	t       *testing.T
	dir     string
	now     atomic.Int64
	segSize int
	db      *DB
}

func newIdemNode(t *testing.T, segSize int) *idemNode {
	n := &idemNode{t: t, dir: t.TempDir(), segSize: segSize}
	n.set(idemT0)
	n.open()
	t.Cleanup(func() { n.db.Close() })
	src, err := os.ReadFile("../examples/ads/features.yaml")
	require.NoError(t, err)
	_, err = n.db.ApplyWait(context.Background(), "ads.yaml", src)
	require.NoError(t, err)
	_, err = n.db.ApplyWait(context.Background(), "ads2.yaml", bytes.Replace(src, []byte("workspace: ads\n"), []byte("workspace: ads2\n"), 1))
	require.NoError(t, err)
	return n
}

func (n *idemNode) clock() time.Time { return time.Unix(0, n.now.Load()).UTC() }
func (n *idemNode) set(t time.Time)  { n.now.Store(t.UnixNano()) }

func (n *idemNode) open() {
	db, err := Open(Options{Dir: n.dir, Now: n.clock, NoSync: true, DisableAutoFlush: true, SegmentSize: n.segSize,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(n.t, err)
	n.db = db
}

func (n *idemNode) reopen() {
	require.NoError(n.t, n.db.Close())
	n.open()
}

// body is an ingest request of k clicks by user in ws, a minute before now.
func (n *idemNode) body(ws, user string, k int) []byte {
	recs := make([]string, k)
	ts := n.clock().Add(-time.Minute).Format(time.RFC3339Nano)
	for i := range recs {
		recs[i] = fmt.Sprintf(`{"record":{"user_id":%q,"timestamp":%q,"clicked":1}}`, user, ts)
	}
	return []byte(fmt.Sprintf(`{"workspace_name":%q,"dry_run":false,"records":{"impressions_event_source":[%s]}}`, ws, strings.Join(recs, ",")))
}

// clicks1h reads user's clicked_count_1h in ws.
func (n *idemNode) clicks1h(ws, user string) int64 {
	vec, err := n.db.GetFeatures(&GetFeaturesRequest{Workspace: ws, Service: "ad_ctr_feature_service_v2", JoinKeys: map[string]any{"user_id": user}})
	require.NoError(n.t, err)
	require.Equal(n.t, "user_click_counts.clicked_count_1h_continuous", vec.Features[1].Name)
	return vec.Features[1].Value.I
}

func (n *idemNode) lastSeq() uint64 { return n.db.log.LastSeq() }

func (n *idemNode) onlineRecords(ws string) int64 {
	s, err := n.db.FeatureViewSummary(ws, "user_click_counts")
	require.NoError(n.t, err)
	return s.OnlineRecords
}

// ingest sends body with key and requires success.
func (n *idemNode) ingest(body []byte, key string) *IngestResponse {
	n.t.Helper()
	resp, err := n.db.IngestJSONWithKey(body, key, nil)
	require.NoError(n.t, err)
	return resp
}

// withoutReplayed returns resp with Replayed cleared, to compare bodies.
func withoutReplayed(resp *IngestResponse) IngestResponse {
	c := *resp
	c.Replayed = false
	return c
}

// TestIdempotentRepeat: a repeated key is answered with the first response
// and writes nothing, whatever the repeat's body; without a key the same
// body writes twice.
func TestIdempotentRepeat(t *testing.T) {
	n := newIdemNode(t, 0)
	first := n.ingest(n.body("ads", "u1", 3), "k-1")
	assert.False(t, first.Replayed)
	require.Equal(t, int64(3), first.Metrics[0].Online)
	seq, online := n.lastSeq(), n.onlineRecords("ads")

	again := n.ingest(n.body("ads", "u1", 3), "k-1")
	assert.True(t, again.Replayed)
	assert.Equal(t, *first, withoutReplayed(again))
	other := n.ingest(n.body("ads", "u1", 7), "k-1") // a different body: SPEC §2 answers with the first response
	assert.Equal(t, *first, withoutReplayed(other))
	assert.Equal(t, seq, n.lastSeq(), "a repeat appends nothing")
	assert.Equal(t, online, n.onlineRecords("ads"), "a repeat changes no metrics")
	assert.Equal(t, int64(3), n.clicks1h("ads", "u1"), "the records count once")

	// The response given to a caller is its own: changing it does not
	// change what repeats get.
	again.Metrics[0].Online = 99
	assert.Equal(t, *first, withoutReplayed(n.ingest(n.body("ads", "u1", 3), "k-1")))

	// Control: without a key, the same body writes again.
	n.ingest(n.body("ads", "u1", 3), "")
	assert.Equal(t, seq+1, n.lastSeq())
	assert.Equal(t, int64(6), n.clicks1h("ads", "u1"))
}

// TestIdempotentAcrossRestart: after Close and Open, a repeat is answered
// with the first response and writes nothing, also when a checkpoint
// covers the entry (so view replay does not read it).
func TestIdempotentAcrossRestart(t *testing.T) {
	for _, flush := range []bool{false, true} {
		t.Run(fmt.Sprintf("flush=%v", flush), func(t *testing.T) {
			n := newIdemNode(t, 0)
			first := n.ingest(n.body("ads", "u1", 2), "restart-key")
			n.ingest(n.body("ads", "u2", 1), "") // an entry without a key in between
			if flush {
				require.NoError(t, n.db.Flush())
			}
			n.set(idemT0.Add(time.Minute))
			n.reopen()
			seq := n.lastSeq()
			again := n.ingest(n.body("ads", "u1", 2), "restart-key")
			assert.True(t, again.Replayed)
			assert.Equal(t, *first, withoutReplayed(again))
			assert.Equal(t, seq, n.lastSeq())
			assert.Equal(t, int64(2), n.clicks1h("ads", "u1"))
			assert.Equal(t, int64(0), n.onlineRecords("ads"), "no record applied since the node opened")
		})
	}
}

// TestIdempotencyWindow: a key is remembered for 24h after its first
// request, in memory and across restarts, and then forgotten.
func TestIdempotencyWindow(t *testing.T) {
	n := newIdemNode(t, 0)
	first := n.ingest(n.body("ads", "u1", 1), "w")
	seq := n.lastSeq()

	n.set(idemT0.Add(DefaultIdempotencyWindow - time.Second))
	assert.True(t, n.ingest(n.body("ads", "u1", 1), "w").Replayed)
	n.reopen()
	resp := n.ingest(n.body("ads", "u1", 1), "w")
	assert.True(t, resp.Replayed, "remembered across a restart inside the window")
	assert.Equal(t, *first, withoutReplayed(resp))
	assert.Equal(t, seq, n.lastSeq())

	n.set(idemT0.Add(DefaultIdempotencyWindow + time.Second))
	resp = n.ingest(n.body("ads", "u1", 1), "w")
	assert.False(t, resp.Replayed, "forgotten after the window")
	assert.Equal(t, seq+1, n.lastSeq())
	assert.Equal(t, int64(1), n.clicks1h("ads", "u1"), "the new request's record (the first's is over an hour old)")

	// The second use is remembered from its own time, across a restart;
	// the first entry, now out of the window, is not loaded.
	n.set(idemT0.Add(2*DefaultIdempotencyWindow - time.Minute))
	n.reopen()
	require.NoError(t, n.db.waitIdempotency()) // rebuilt in the background
	assert.Equal(t, 1, n.db.idem.size())
	assert.True(t, n.ingest(n.body("ads", "u1", 1), "w").Replayed)
	n.set(idemT0.Add(3 * DefaultIdempotencyWindow))
	n.reopen()
	require.NoError(t, n.db.waitIdempotency())
	assert.Equal(t, 0, n.db.idem.size(), "nothing in the last 24h")
	assert.False(t, n.ingest(n.body("ads", "u1", 1), "w").Replayed)
}

// TestIdempotentConcurrent: concurrent requests with one key write once;
// every one gets the same response. The key is first held by a claim in
// flight until all the requests wait for it, then released as by a failed
// request, so that they all race for it at once.
func TestIdempotentConcurrent(t *testing.T) {
	n := newIdemNode(t, 0)
	seq := n.lastSeq()
	const workers = 16
	_, held := n.db.idem.begin(idemScope{"ads", "same"}, n.clock())
	require.NotNil(t, held)
	resps := make([]*IngestResponse, workers)
	var wg sync.WaitGroup
	for i := range resps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := n.db.IngestJSONWithKey(n.body("ads", "u1", 4), "same", nil)
			assert.NoError(t, err)
			resps[i] = r
		}()
	}
	require.Eventually(t, func() bool { return n.db.idem.waiting() == workers }, 10*time.Second, time.Millisecond,
		"every request waits for the claim in flight")
	assert.Equal(t, seq, n.lastSeq(), "nothing written while the key is claimed")
	n.db.idem.release(held)
	wg.Wait()
	replayedN := 0
	for _, r := range resps {
		require.NotNil(t, r)
		assert.Equal(t, withoutReplayed(resps[0]), withoutReplayed(r))
		if r.Replayed {
			replayedN++
		}
	}
	assert.Equal(t, workers-1, replayedN, "exactly one request executed")
	assert.Equal(t, seq+1, n.lastSeq(), "exactly one write")
	assert.Equal(t, int64(4), n.clicks1h("ads", "u1"))
	assert.Equal(t, 0, n.db.idem.waiting())
}

// TestIdempotentFailedFirst: a key whose first request failed, wrote
// nothing or was a dry run is not remembered: the retry executes.
func TestIdempotentFailedFirst(t *testing.T) {
	n := newIdemNode(t, 0)
	seq := n.lastSeq()
	bad := []byte(`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[{"record":{"user_id":"u1","clicked":1}}]}}`)
	_, err := n.db.IngestJSONWithKey(bad, "f", nil)
	var re *RecordErrors
	require.ErrorAs(t, err, &re, "missing timestamp")
	_, err = n.db.IngestJSONWithKey([]byte(`{"workspace_name":"nope","dry_run":false,"records":{}}`), "f", nil)
	assert.Equal(t, CodeNotFound, CodeOf(err))
	empty := n.ingest([]byte(`{"workspace_name":"ads","dry_run":false,"records":{}}`), "f")
	assert.False(t, empty.Replayed)
	dry := n.ingest(bytes.Replace(n.body("ads", "u1", 5), []byte(`"dry_run":false`), []byte(`"dry_run":true`), 1), "f")
	assert.False(t, dry.Replayed)
	assert.Equal(t, int64(5), dry.Metrics[0].Online, "the dry run's would-be counts")
	assert.Equal(t, seq, n.lastSeq(), "nothing written so far")
	assert.Equal(t, 0, n.db.idem.size(), "no key remembered or left claimed")

	resp := n.ingest(n.body("ads", "u1", 2), "f")
	assert.False(t, resp.Replayed, "the retry executes")
	assert.Equal(t, int64(2), resp.Metrics[0].Online)
	assert.Equal(t, seq+1, n.lastSeq())
	assert.Equal(t, int64(2), n.clicks1h("ads", "u1"))

	// A denied request does not claim the key either.
	deny := func(string) error { return errorf(CodePermissionDenied, "no") }
	_, err = n.db.IngestJSONWithKey(n.body("ads", "u1", 1), "g", deny)
	assert.Equal(t, CodePermissionDenied, CodeOf(err))
	assert.False(t, n.ingest(n.body("ads", "u1", 1), "g").Replayed)
}

// TestIdempotencyKeyValidation: keys must be 1-255 bytes of printable ASCII.
func TestIdempotencyKeyValidation(t *testing.T) {
	n := newIdemNode(t, 0)
	seq := n.lastSeq()
	for _, key := range []string{strings.Repeat("k", MaxIdempotencyKeyLen+1), "a\x00b", "tab\t", "del\x7f", "é", "new\nline"} {
		_, err := n.db.IngestJSONWithKey(n.body("ads", "u1", 1), key, nil)
		assert.Equal(t, CodeInvalidArgument, CodeOf(err), "key %q", key)
		assert.Contains(t, err.Error(), "Idempotency-Key")
	}
	assert.Equal(t, seq, n.lastSeq())
	for _, key := range []string{strings.Repeat("k", MaxIdempotencyKeyLen), " ", "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", "550e8400-e29b-41d4-a716-446655440000"} {
		assert.False(t, n.ingest(n.body("ads", "u1", 1), key).Replayed, "key %q", key)
		assert.True(t, n.ingest(n.body("ads", "u1", 1), key).Replayed, "key %q", key)
	}
	assert.Equal(t, seq+4, n.lastSeq())
}

// TestIdempotencyPerWorkspace: one key in two workspaces is two keys.
func TestIdempotencyPerWorkspace(t *testing.T) {
	n := newIdemNode(t, 0)
	a := n.ingest(n.body("ads", "u1", 1), "shared")
	b := n.ingest(n.body("ads2", "u1", 2), "shared")
	assert.False(t, b.Replayed)
	assert.Equal(t, "ads2", b.Workspace)
	assert.Equal(t, int64(1), n.clicks1h("ads", "u1"))
	assert.Equal(t, int64(2), n.clicks1h("ads2", "u1"))
	n.reopen()
	assert.Equal(t, *a, withoutReplayed(n.ingest(n.body("ads", "u1", 9), "shared")))
	assert.Equal(t, *b, withoutReplayed(n.ingest(n.body("ads2", "u1", 9), "shared")))
}

// TestIdempotencyTableBounds: past maxKeys the oldest keys are forgotten;
// expired keys are dropped as time passes; a key expired early on lookup
// and recorded again survives the pop of its old record.
func TestIdempotencyTableBounds(t *testing.T) {
	var tb idempotency
	tb.init(time.Hour, 3, slog.New(slog.DiscardHandler))
	now := idemT0
	claim := func(key string) *idemTicket {
		resp, tk := tb.begin(idemScope{"ws", key}, now)
		require.Nil(t, resp, "key %s", key)
		return tk
	}
	for i := range 5 {
		tk := claim(fmt.Sprint(i))
		tb.record(tk, &IngestResponse{Workspace: "ws"}, now.UnixNano())
		tb.release(tk)
		now = now.Add(time.Minute)
	}
	assert.Equal(t, 3, tb.size())
	for i, want := range []bool{false, false, true, true, true} {
		resp, tk := tb.begin(idemScope{"ws", fmt.Sprint(i)}, now)
		assert.Equal(t, want, resp != nil, "key %d", i)
		if tk != nil {
			tb.release(tk)
		}
	}
	assert.Equal(t, 3, tb.size(), "released claims are dropped")

	// Out-of-order times: "late" is recorded after "a" and "b" but is
	// older than both.
	tb.init(time.Hour, 100, slog.New(slog.DiscardHandler))
	put := func(key string, at time.Time) {
		tk := claim(key)
		tb.record(tk, &IngestResponse{}, at.UnixNano())
		tb.release(tk)
	}
	now = idemT0
	put("a", idemT0)
	put("b", idemT0.Add(10*time.Minute))
	put("late", idemT0.Add(-10*time.Minute))
	now = idemT0.Add(55 * time.Minute) // "late" has expired, "a" and "b" (before it in order) not yet
	put("late", now)                   // found expired on lookup, claimed and recorded again...
	now = idemT0.Add(75 * time.Minute) // ...and the pop of its old record must not drop the new one
	resp, _ := tb.begin(idemScope{"ws", "late"}, now)
	assert.NotNil(t, resp)
	assert.Equal(t, 1, tb.size(), "a and b expired")
}

// TestIdempotencyLoadDifferential: on seeded random logs whose ingest
// times wander out of order (less than idemClockSlack) over several days
// and many small log segments, the table rebuilt on open holds exactly the
// keyed entries of the last 24h (a naive scan of the whole log), and the
// scan starts well after the log's first entry.
func TestIdempotencyLoadDifferential(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			n := newIdemNode(t, 16<<10)
			now := idemT0
			for i := range 500 {
				now = now.Add(time.Duration(r.IntN(12)) * time.Minute)
				n.set(now.Add(-time.Duration(r.IntN(40)) * time.Minute)) // jitter: out of seq order
				key := ""
				if r.IntN(3) > 0 {
					key = fmt.Sprintf("k%d", r.IntN(200))
				}
				ws := []string{"ads", "ads2"}[r.IntN(2)]
				_, err := n.db.IngestJSONWithKey(n.body(ws, fmt.Sprint("u", i%5), 1+r.IntN(3)), key, nil)
				require.NoError(t, err)
			}
			n.set(now)
			n.reopen()
			want := naiveKeys(t, n.db, now.Add(-DefaultIdempotencyWindow).UnixNano())
			require.NoError(t, n.db.waitIdempotency()) // rebuilt in the background
			got := map[idemScope]int64{}
			n.db.idem.mu.Lock()
			for s, e := range n.db.idem.mu.keys {
				got[s] = e.at
			}
			n.db.idem.mu.Unlock()
			require.NotEmpty(t, want)
			assert.Equal(t, want, got)

			from, err := n.db.idemScanStart(now.Add(-DefaultIdempotencyWindow - idemClockSlack).UnixNano())
			require.NoError(t, err)
			assert.Greater(t, from, n.db.log.FirstSeq()+100, "the scan skips the old part of the log")
		})
	}
}

// naiveKeys scans the whole log: for every keyed entry ingested at or
// after cutoff, the ingest time of its last use.
func naiveKeys(t *testing.T, db *DB, cutoff int64) map[idemScope]int64 {
	want := map[idemScope]int64{}
	var e record.Entry
	require.NoError(t, db.log.Replay(0, func(seq uint64, payload []byte) error {
		require.NoError(t, record.Decode(payload, &e))
		if e.IdempotencyKey != "" && e.IngestTime >= cutoff {
			want[idemScope{e.Workspace, e.IdempotencyKey}] = e.IngestTime
		}
		return nil
	}))
	return want
}

// TestIdempotencyTornTail: a crash that tears the last entry loses its key
// with its records (one append): after repair, the retry of that key
// executes and counts once, while the intact entry's key is still
// answered from the log.
func TestIdempotencyTornTail(t *testing.T) {
	n := newIdemNode(t, 0)
	first := n.ingest(n.body("ads", "u1", 2), "kept")
	n.ingest(n.body("ads", "u2", 3), "torn")
	require.NoError(t, n.db.Close())
	segs, err := filepath.Glob(filepath.Join(n.dir, "wal", strings.Repeat("[0-9]", 20)))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	last := segs[len(segs)-1] // names are zero-padded seqs: lexical order is seq order
	fi, err := os.Stat(last)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(last, fi.Size()-1))
	n.open()
	require.NotNil(t, n.db.log.Repair(), "the torn entry was cut off")
	assert.Equal(t, int64(0), n.clicks1h("ads", "u2"), "the torn entry's records are gone")

	resp := n.ingest(n.body("ads", "u2", 3), "torn")
	assert.False(t, resp.Replayed, "the torn entry's key went with it: the retry executes")
	assert.Equal(t, int64(3), n.clicks1h("ads", "u2"), "and counts once")
	again := n.ingest(n.body("ads", "u1", 2), "kept")
	assert.True(t, again.Replayed)
	assert.Equal(t, *first, withoutReplayed(again))
	assert.Equal(t, int64(2), n.clicks1h("ads", "u1"))
}

// TestIdempotentGoIngest: the Go-library path takes a key too, shared with
// the JSON path of the same workspace.
func TestIdempotentGoIngest(t *testing.T) {
	n := newIdemNode(t, 0)
	req := &IngestRequest{Workspace: "ads", IdempotencyKey: "go-1", Records: map[string][]map[string]any{
		"impressions_event_source": {{"user_id": "u", "timestamp": n.clock().Add(-time.Minute), "clicked": 1}}}}
	first, err := n.db.Ingest(req)
	require.NoError(t, err)
	seq := n.lastSeq()
	again, err := n.db.Ingest(req)
	require.NoError(t, err)
	assert.True(t, again.Replayed)
	assert.Equal(t, withoutReplayed(first), withoutReplayed(again))
	assert.Equal(t, seq, n.lastSeq(), "the repeat wrote nothing")
	assert.Equal(t, int64(1), n.clicks1h("ads", "u"))
	n.reopen()
	again, err = n.db.IngestJSONWithKey(n.body("ads", "u", 3), "go-1", nil)
	require.NoError(t, err)
	assert.True(t, again.Replayed, "the JSON path sees the Go path's key, after a restart")
	assert.Equal(t, int64(1), n.clicks1h("ads", "u"))
	_, err = n.db.Ingest(&IngestRequest{Workspace: "ads", IdempotencyKey: "bad\x01key"})
	assert.ErrorContains(t, err, "Idempotency-Key")
}

// TestIdempotencyLoadFailure: the keys are read back in the background
// from the first ingest on. If that scan fails (here, every read of the log fails while
// it runs), Open has still succeeded: reads and unkeyed ingest go on, and
// a request with a key fails with an error that says why, writing
// nothing.
func TestIdempotencyLoadFailure(t *testing.T) {
	n := newIdemNode(t, 0)
	for i := range 10 {
		n.ingest(n.body("ads", fmt.Sprint("u", i%3), 2), fmt.Sprint("k", i))
	}
	require.NoError(t, n.db.Close())
	in := errorfs.NewInjector(vfs.Default)
	testHookIdemScan = func(*DB) { in.FailOps(errorfs.OpRead, errorfs.OpOpen) }
	t.Cleanup(func() { testHookIdemScan = nil })
	db, err := Open(Options{Dir: n.dir, Now: n.clock, NoSync: true, DisableAutoFlush: true, FS: in, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	n.db = db
	require.Error(t, n.db.waitIdempotency())
	in.FailOps() // the disk is back
	require.NotEmpty(t, in.Injected())
	assert.Equal(t, int64(4*2), n.clicks1h("ads", "u0"), "reads serve (u0: requests 0, 3, 6, 9)")
	seq := n.lastSeq()
	_, err = n.db.IngestJSONWithKey(n.body("ads", "u9", 1), "k1", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Idempotency-Key")
	assert.Contains(t, err.Error(), "could not be read back from the log")
	assert.Equal(t, seq, n.lastSeq(), "the keyed request wrote nothing")
	n.ingest(n.body("ads", "u9", 1), "") // without a key it is served
	assert.Equal(t, seq+1, n.lastSeq())
}
