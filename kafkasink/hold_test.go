package kafkasink

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
)

// firstLogSeq returns the first entry the log's oldest segment holds (its
// file name).
func firstLogSeq(t *testing.T, dir string) uint64 {
	t.Helper()
	segs, err := os.ReadDir(filepath.Join(dir, "wal"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	seq, err := strconv.ParseUint(segs[0].Name(), 10, 64)
	require.NoError(t, err, segs[0].Name())
	return seq
}

// TestSinkHoldsLog: with push.log_offline: false the log is truncated
// once every view has checkpointed it, but not past a sink's cursor. A
// sink with no brokers at all says how to configure them; one whose
// broker is down keeps the log whole through flushes; once the broker is
// reachable and the sink has caught up, the next flush truncates the log.
func TestSinkHoldsLog(t *testing.T) {
	b := newBroker(t, false)
	clock := newClock()
	dir := t.TempDir()
	db := openDB(t, dir, clock.Now, func(o *engine.Options) {
		o.SegmentSize = 16 << 10
		o.IdempotencyWindow = time.Minute
	})
	defer db.Close()
	topic := uniqueTopic("hold")
	id := sinkID("latest", topic)
	apply(t, db, testRepo(sinkSpec{topic: topic, maxLag: "5s"}, sinkSpec{}, false)) // no brokers in the file
	start, err := db.SinkCursor(id)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(10, 11))
	ingest(t, rng, db, events(rng, 1, 2000, 30, clock.Now()), 20)
	stream, end := readStream(t, db, "latest")
	require.Len(t, stream, 2000)

	// No brokers anywhere: failing, saying where to set them, and lagging.
	o := testOptions(clock.Now)
	o.RetryBudget = time.Second
	m := startManager(t, db, o)
	var st SinkStatus
	require.Eventually(t, func() bool { st = mustStatus(t, m, id); return st.State == StateFailing }, 10*time.Second, time.Millisecond)
	assert.Contains(t, st.LastError, "set output_stream.kafka.brokers")
	assert.Contains(t, st.LastError, "featurelog serve --kafka-brokers")
	clock.Add(10 * time.Second)
	assert.Equal(t, 10*time.Second, mustStatus(t, m, id).Lag, "the lag of the first record waiting")
	require.NoError(t, m.Close())

	// A broker that is down: flushes keep the log from the cursor on.
	o.Brokers = []string{deadAddr(t)}
	m = startManager(t, db, o)
	require.Eventually(t, func() bool { st = mustStatus(t, m, id); return st.State == StateFailing && st.Errors >= 2 }, 10*time.Second, time.Millisecond)
	assert.Contains(t, st.LastError, "connection refused")
	clock.Add(2 * time.Hour) // past the idempotency window, which also holds the log
	require.NoError(t, db.Flush())
	require.NoError(t, db.Flush())
	assert.LessOrEqual(t, firstLogSeq(t, dir), start.Seq, "the log was truncated past the cursor of a sink that has not published")
	cur, err := db.SinkCursor(id)
	require.NoError(t, err)
	require.Equal(t, start, cur)
	held, _ := readStream(t, db, "latest")
	require.Equal(t, stream, held, "the stream is whole")
	require.NoError(t, m.Close())

	// The broker is reachable: the sink catches up and the log is cut.
	o.Brokers = b.addrs
	m = startManager(t, db, o)
	defer m.Close()
	waitCursor(t, db, id, end, time.Minute)
	require.NoError(t, db.Flush())
	first := firstLogSeq(t, dir)
	assert.Greater(t, first, start.Seq, "the log was not truncated once the sink had caught up")
	_, err = db.OpenOutputStream("ks", "latest", engine.StreamStart{Kind: engine.StartAt, Offset: start})
	assert.Equal(t, engine.CodeGone, engine.CodeOf(err), "%v", err)
	require.NoError(t, m.Close())
	checkTopic(t, stream, consumeAll(t, b.addrs, topic, false), false)
	t.Logf("log held from entry %d while the broker was down; after the sink caught up (cursor %s) it starts at entry %d", start.Seq, end, first)
}
