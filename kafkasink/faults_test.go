package kafkasink

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceFaults injects three kinds of produce failure into a kfake
// cluster, each on a random share of the produce requests, and fails a
// few batches for good:
//   - refused: NOT_ENOUGH_REPLICAS, retriable, before the broker appends;
//   - timedOut: REQUEST_TIMED_OUT after the broker appended (kfake's
//     afterApply), so the client sends again what the log already holds;
//   - delayed: the request is held past the client's read deadline, then
//     appended while the client, which gave up on the connection, has
//     already sent it again on a new one;
//   - fatal: INVALID_RECORD, not retriable, on a few requests: the batch
//     fails, and the sink restarts from its durable cursor, publishing
//     again the records of the batch other partitions had taken.
type produceFaults struct {
	refused, timedOut, fatal *kfake.FaultHandle
	delayed                  atomic.Int64
	gaveUp                   atomic.Int64 // produce responses the client stopped waiting for
	stop                     chan struct{}
}

const delayFor = time.Second

// clientOpts make the client give up on a produce response after 300ms +
// 300ms, well inside delayFor, and count when it does. Record batches of
// at most 4 KiB (about 10 records) keep the produce requests many, as
// the sink keeps producing while earlier requests are in flight: each
// fault has plenty of requests to hit.
func (f *produceFaults) clientOpts() []kgo.Opt {
	return []kgo.Opt{kgo.ProduceRequestTimeout(300 * time.Millisecond), kgo.RequestTimeoutOverhead(300 * time.Millisecond), kgo.WithHooks(gaveUpHook{f}),
		kgo.ProducerBatchMaxBytes(4 << 10)}
}

type gaveUpHook struct{ f *produceFaults }

func (h gaveUpHook) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key == int16(kmsg.Produce) && e2e.ReadErr != nil {
		h.f.gaveUp.Add(1)
	}
}

func injectProduceFaults(c *kfake.Cluster, seed uint64, refused, timedOut, delayed float64, fatal int) *produceFaults {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, 7))
	draw := func(p float64) func(kmsg.Request) bool {
		return func(kmsg.Request) bool {
			mu.Lock()
			defer mu.Unlock()
			return rng.Float64() < p
		}
	}
	f := &produceFaults{
		stop:     make(chan struct{}),
		refused:  c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1, When: draw(refused)}),
		timedOut: c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.RequestTimedOut, Count: -1, When: draw(timedOut)}),
		fatal:    c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.InvalidRecord, Count: fatal, When: draw(0.1)}),
	}
	delay := draw(delayed)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if delay(req) {
			f.delayed.Add(1)
			c.SleepControl(func() {
				t := time.NewTimer(delayFor)
				defer t.Stop()
				select {
				case <-t.C:
				case <-f.stop:
				}
			})
		}
		return nil, nil, false // the broker handles it, late if slept
	})
	return f
}

// remove stops the faults and wakes the requests held.
func (f *produceFaults) remove() {
	f.refused.Remove()
	f.timedOut.Remove()
	f.fatal.Remove()
	close(f.stop)
}

func (f *produceFaults) check(t *testing.T) {
	t.Helper()
	require.Positive(t, f.refused.Hits(), "no produce request was refused: the test tested nothing")
	require.Positive(t, f.timedOut.Hits(), "no produce request timed out after its append")
	require.Positive(t, f.delayed.Load(), "no produce request was held")
	require.Positive(t, f.gaveUp.Load(), "the client never gave up on a held produce request")
	require.Positive(t, f.fatal.Hits(), "no batch failed for good")
	t.Logf("produce requests refused %d, timed out after the append %d, held past the client's deadline %d (the client gave up on %d responses), failed for good %d",
		f.refused.Hits(), f.timedOut.Hits(), f.delayed.Load(), f.gaveUp.Load(), f.fatal.Hits())
}

// TestSinkProduceFaults: while produce requests are refused, answered
// REQUEST_TIMED_OUT after their append, or held past the client's
// deadline and appended late, the topic still gets every record of the
// stream (no gap), nothing invented, each key's records in log order once
// repeats are dropped.
func TestSinkProduceFaults(t *testing.T) {
	b := newBroker(t, false)
	c := b.fake(t)
	clock := newClock()
	db := openDB(t, t.TempDir(), clock.Now, nil)
	defer db.Close()
	topic := uniqueTopic("faults")
	apply(t, db, testRepo(sinkSpec{brokers: b.addrs, topic: topic}, sinkSpec{}, true))
	f := injectProduceFaults(c, 3, 0.15, 0.15, 0.03, 4)
	defer f.remove()
	o := testOptions(clock.Now)
	o.BatchRecords = 50
	o.ClientOpts = append(o.ClientOpts, f.clientOpts()...)
	m := startManager(t, db, o)
	defer m.Close()

	rng := rand.New(rand.NewPCG(3, 4))
	ingest(t, rng, db, events(rng, 1, 3000, 50, clock.Now()), 30)
	stream, end := readStream(t, db, "latest")
	waitCursor(t, db, sinkID("latest", topic), end, 2*time.Minute)
	st, _ := statusOf(m, sinkID("latest", topic))
	require.NoError(t, m.Close())
	f.check(t)
	require.Positive(t, st.Errors, "the batches failed for good were not counted")
	require.Contains(t, st.LastError, "INVALID_RECORD")
	repeats := checkTopic(t, stream, consumeAll(t, b.addrs, topic, false), false)
	t.Logf("%d records, %d published again after the sink restarted from its cursor %d times", len(stream), repeats, st.Errors)
}
