package kafkasink

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
)

// TestReadProgressWaitsForOpenTransactions: two sinks share a progress
// topic when they publish to one topic. A progress record of ours
// committed while the other sink's transaction is open lies past the last
// stable offset: the read waits for that transaction to end rather than
// miss it (and publish the batch again).
func TestReadProgressWaitsForOpenTransactions(t *testing.T) {
	b := newBroker(t, false)
	topic := progressTopic(uniqueTopic("shared"))
	ctx := context.Background()
	adm, err := kgo.NewClient(kgo.SeedBrokers(b.addrs...))
	require.NoError(t, err)
	defer adm.Close()
	_, err = kadm.NewClient(adm).CreateTopic(ctx, 1, -1, nil, topic)
	require.NoError(t, err)
	txn := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.addrs...), kgo.TransactionalID(id))
		require.NoError(t, err)
		require.NoError(t, cl.BeginTransaction())
		return cl
	}
	other := txn(uniqueTopic("other"))
	defer other.Close()
	require.NoError(t, other.ProduceSync(ctx, progressRecord("other-sink", strings.TrimSuffix(topic, progressSuffix), engine.StreamOffset{Seq: 9})).FirstErr())
	mine := txn(uniqueTopic("mine"))
	defer mine.Close()
	want := engine.StreamOffset{Seq: 42, Idx: 3}
	require.NoError(t, mine.ProduceSync(ctx, progressRecord("my-sink", strings.TrimSuffix(topic, progressSuffix), want)).FirstErr())
	require.NoError(t, mine.EndTransaction(ctx, kgo.TryCommit))

	type result struct {
		next  engine.StreamOffset
		found bool
		err   error
	}
	done := make(chan result, 1)
	go func() {
		next, found, err := readProgress(ctx, []kgo.Opt{kgo.SeedBrokers(b.addrs...)}, topic, "my-sink")
		done <- result{next, found, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("the read ended while a transaction before our progress was open: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, other.EndTransaction(ctx, kgo.TryAbort))
	r := <-done
	require.NoError(t, r.err)
	assert.True(t, r.found)
	assert.Equal(t, want, r.next)
}
