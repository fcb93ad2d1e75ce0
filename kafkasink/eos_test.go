package kafkasink

import (
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnFaults fail commits in three ways:
//   - refused: some EndTxn requests are answered COORDINATOR_NOT_AVAILABLE
//     before anything happens (the client retries);
//   - held: some are held past the client's read deadline and handled
//     late, after the client sent them again (the broker answers the
//     repeat of a finished commit with success);
//   - doubt: a few commits are held past the client's deadline and then
//     applied, while every EndTxn in a window longer than the client's
//     retry timeout is refused: the commit happened but the client gives
//     up on it. The sink aborts (too late), and its next session fences
//     the transactional ID and reads the progress topic to learn that the
//     batch is published.
type txnFaults struct {
	refused *kfake.FaultHandle
	held    atomic.Int64
	doubts  atomic.Int64
	stop    chan struct{}
}

func injectTxnFaults(c *kfake.Cluster, seed uint64, refused, held float64, doubts int, window time.Duration) *txnFaults {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, 11))
	draw := func(p float64) bool {
		mu.Lock()
		defer mu.Unlock()
		return rng.Float64() < p
	}
	var doubtUntil atomic.Int64
	f := &txnFaults{stop: make(chan struct{})}
	f.refused = c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.CoordinatorNotAvailable, Count: -1,
		When: func(kmsg.Request) bool { return draw(refused) }})
	hold := func(d time.Duration) {
		c.SleepControl(func() {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-f.stop:
			}
		})
	}
	c.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		now := time.Now()
		if now.UnixNano() < doubtUntil.Load() {
			resp := req.ResponseKind().(*kmsg.EndTxnResponse)
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return resp, nil, true
		}
		if req.(*kmsg.EndTxnRequest).Commit && f.doubts.Load() < int64(doubts) && draw(0.1) {
			f.doubts.Add(1)
			doubtUntil.Store(now.Add(window).UnixNano())
			hold(time.Second) // past the client's read deadline; then applied
			return nil, nil, false
		}
		if draw(held) {
			f.held.Add(1)
			hold(delayFor)
		}
		return nil, nil, false
	})
	return f
}

func (f *txnFaults) remove() {
	f.refused.Remove()
	close(f.stop)
}

// TestSinkExactlyOnce: an exactly_once sink publishes while produce
// requests fail in every way of TestSinkProduceFaults (the fatal ones
// abort the batch's transaction), commits are refused or left in doubt,
// and the Manager is closed mid-stream and started again. A
// read_committed consumer then sees every record of the stream exactly
// once, each partition in log order; the progress topic's last record
// for the sink is the durable cursor.
func TestSinkExactlyOnce(t *testing.T) {
	b := newBroker(t, false)
	clock := newClock()
	db := openDB(t, t.TempDir(), clock.Now, nil)
	defer db.Close()
	topic := uniqueTopic("eos")
	id := sinkID("latest", topic)
	apply(t, db, testRepo(sinkSpec{brokers: b.addrs, topic: topic, exactlyOnce: true}, sinkSpec{}, true))
	o := testOptions(clock.Now)
	logs := newLogCounter()
	o.Logger = slog.New(logs)
	o.BatchRecords = 50
	faults := b.c != nil // against a real cluster: the restart only
	var pf *produceFaults
	var tf *txnFaults
	if faults {
		pf = injectProduceFaults(b.c, 8, 0.1, 0.1, 0.03, 4)
		defer pf.remove()
		tf = injectTxnFaults(b.c, 9, 0.1, 0.1, 2, o.RetryBudget+time.Second)
		defer tf.remove()
		o.ClientOpts = append(o.ClientOpts, pf.clientOpts()...)
	}
	m := startManager(t, db, o)
	defer func() { m.Close() }()

	rng := rand.New(rand.NewPCG(8, 9))
	evs := events(rng, 1, 3000, 50, clock.Now())
	ingest(t, rng, db, evs[:1500], 30)
	// Restart the sink mid-stream: close the manager as soon as it has
	// published something, while it still has records to publish.
	require.Eventually(t, func() bool { return mustStatus(t, m, id).Published > 300 }, time.Minute, time.Millisecond)
	st1 := mustStatus(t, m, id)
	require.NoError(t, m.Close())
	ingest(t, rng, db, evs[1500:], 30)
	m = startManager(t, db, o)
	stream, end := readStream(t, db, "latest")
	waitCursor(t, db, id, end, 2*time.Minute)
	st2 := mustStatus(t, m, id)
	require.NoError(t, m.Close())
	if faults {
		pf.check(t)
		require.Positive(t, tf.refused.Hits(), "no commit was refused")
		require.Positive(t, tf.held.Load(), "no commit was held")
		// At most 2 are put in doubt; how many commits a loaded machine
		// makes before the end decides whether the second comes.
		require.Positive(t, tf.doubts.Load(), "no commit was left in doubt")
	}

	got := consumeAll(t, b.addrs, topic, true)
	checkTopic(t, stream, got, true)
	if faults {
		require.Positive(t, logs.count(msgResumeProgress), "no session learned from the progress topic that a commit in doubt had happened")
	}
	last := map[int32]string{}
	for _, g := range got {
		var v struct{ Offset string }
		require.NoError(t, json.Unmarshal([]byte(g.value), &v))
		require.Greater(t, v.Offset, last[g.partition], "partition %d: out of log order", g.partition)
		last[g.partition] = v.Offset
	}
	progress := consumeAll(t, b.addrs, progressTopic(topic), true)
	require.NotEmpty(t, progress)
	var v progressValue
	require.NoError(t, json.Unmarshal([]byte(progress[len(progress)-1].value), &v))
	assert.Equal(t, id, progress[len(progress)-1].key)
	assert.Equal(t, end.String(), v.Next, "the last committed progress is the cursor")
	t.Logf("%d records exactly once through a restart after %d records (failed attempts %d before the restart, %d after)",
		len(stream), st1.Published, st1.Errors, st2.Errors)
	if faults {
		t.Logf("commits refused %d, held %d, in doubt %d", tf.refused.Hits(), tf.held.Load(), tf.doubts.Load())
	}
}
