package kafkasink

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// closeBound is how long Close may take: the batches in flight get
// closeGrace, then the cursor is saved and the clients closed.
const closeBound = 2 * time.Second

// TestSinkCloseBacklog: two sinks (latest at least once, sums exactly
// once) start over a large backlog, ingested before the Manager starts,
// so the stream always has records to give; the Manager is closed while
// they publish it, and Close returns within closeBound (each sink stops
// producing at once and saves the cursor for what was acknowledged). A
// new Manager then publishes the rest: each topic holds every record of
// its stream, no gap, each key in log order; exactly once for sums.
func TestSinkCloseBacklog(t *testing.T) {
	testCloseBounded(t, false)
}

// TestSinkCloseSlowBroker: as TestSinkCloseBacklog, but once the sinks
// have published a little, the broker holds every produce request for
// 10s: Close still returns within closeBound, giving up on the records
// in flight (and aborting the open transaction); the next Manager
// publishes them again.
func TestSinkCloseSlowBroker(t *testing.T) {
	testCloseBounded(t, true)
}

func testCloseBounded(t *testing.T, slow bool) {
	b := newBroker(t, false)
	if slow {
		b.fake(t)
	}
	db := openDB(t, t.TempDir(), nil, nil)
	defer db.Close()
	latest, sums := uniqueTopic("close-latest"), uniqueTopic("close-sums")
	apply(t, db, testRepo(sinkSpec{brokers: b.addrs, topic: latest}, sinkSpec{brokers: b.addrs, topic: sums, exactlyOnce: true}, true))
	n := 200_000
	if raceEnabled {
		n = 50_000
	}
	rng := rand.New(rand.NewPCG(21, 22))
	ingest(t, rng, db, events(rng, 1, n, 5000, time.Now()), 1000)
	ids := []string{sinkID("latest", latest), sinkID("sums", sums)}

	o := testOptions(time.Now)
	o.BatchRecords = 0 // the default
	var release chan struct{}
	var held atomic.Int64
	if slow {
		release = make(chan struct{})
		defer func() {
			select {
			case <-release:
			default:
				close(release)
			}
		}()
	}
	m := startManager(t, db, o)
	require.Eventually(t, func() bool {
		for _, id := range ids {
			if mustStatus(t, m, id).Published >= 2000 {
				return true
			}
		}
		return false
	}, time.Minute, time.Millisecond, "the sinks never published")
	if slow {
		c := b.c
		c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			select {
			case <-release:
				c.DropControl()
				return nil, nil, false
			default:
			}
			c.KeepControl()
			held.Add(1)
			c.SleepControl(func() {
				select {
				case <-release:
				case <-time.After(10 * time.Second):
				}
			})
			return nil, nil, false
		})
		require.Eventually(t, func() bool { return held.Load() > 0 }, 10*time.Second, time.Millisecond, "no produce request was held")
	}
	before := map[string]SinkStatus{}
	for _, id := range ids {
		before[id] = mustStatus(t, m, id)
	}
	began := time.Now()
	require.NoError(t, m.Close())
	took := time.Since(began)
	assert.Less(t, took, closeBound, "Close took too long")
	for _, id := range ids {
		cur, err := db.SinkCursor(id)
		require.NoError(t, err)
		t.Logf("%s: closed with %d records published, cursor %s", id, before[id].Published, cur)
	}
	backlog := false
	for i, view := range []string{"latest", "sums"} {
		_, end := readStream(t, db, view)
		cur, err := db.SinkCursor(ids[i])
		require.NoError(t, err)
		backlog = backlog || cur.Less(end)
	}
	require.True(t, backlog, "the backlog was published before Close: the test tested nothing")
	if slow {
		close(release)
	}

	m = startManager(t, db, o)
	defer m.Close()
	for _, view := range []string{"latest", "sums"} {
		_, end := readStream(t, db, view)
		waitCursor(t, db, sinkID(view, map[string]string{"latest": latest, "sums": sums}[view]), end, 2*time.Minute)
	}
	require.NoError(t, m.Close())
	stream, _ := readStream(t, db, "latest")
	repeats := checkTopic(t, stream, consumeAll(t, b.addrs, latest, false), false)
	eos, _ := readStream(t, db, "sums")
	checkTopic(t, eos, consumeAll(t, b.addrs, sums, true), true)
	t.Logf("Close took %s with a backlog of %d records (slow broker %v, %d produce requests held); then %d records published to %s (%d again), %d exactly once to %s",
		took.Round(time.Millisecond), n, slow, held.Load(), len(stream), latest, repeats, len(eos), sums)
}
