package kafkasink

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSinkBasic: two views publish 5000 records ingested in many requests
// (event times in random order, skewed keys) while the sinks run; each
// topic then holds every record of its view's stream once, byte for
// byte, each key in one partition in log order, and each durable cursor
// is at its stream's end.
func TestSinkBasic(t *testing.T) {
	b := newBroker(t, false)
	clock := newClock()
	db := openDB(t, t.TempDir(), clock.Now, nil)
	defer db.Close()
	latest, sums := uniqueTopic("latest"), uniqueTopic("sums")
	apply(t, db, testRepo(sinkSpec{brokers: b.addrs, topic: latest}, sinkSpec{brokers: b.addrs, topic: sums}, true))
	m := startManager(t, db, testOptions(clock.Now))
	defer m.Close()

	rng := rand.New(rand.NewPCG(1, 2))
	ingest(t, rng, db, events(rng, 1, 5000, 60, clock.Now()), 40)

	for _, c := range []struct{ view, topic string }{{"latest", latest}, {"sums", sums}} {
		stream, end := readStream(t, db, c.view)
		require.NotEmpty(t, stream)
		waitCursor(t, db, sinkID(c.view, c.topic), end, time.Minute)
		repeats := checkTopic(t, stream, consumeAll(t, b.addrs, c.topic, false), false)
		assert.Zero(t, repeats, "%s: no fault, so the idempotent producer publishes each record once", c.view)
		st, ok := statusOf(m, sinkID(c.view, c.topic))
		require.True(t, ok)
		assert.Equal(t, StateRunning, st.State)
		assert.Equal(t, end.String(), st.Cursor)
		assert.Equal(t, int64(len(stream)), st.Published)
		assert.Zero(t, st.Lag)
		t.Logf("%s: %d records published to %s, cursor %s", c.view, len(stream), c.topic, st.Cursor)
	}
	require.NoError(t, m.Close())
}
