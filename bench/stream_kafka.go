package bench

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// newKafkaCluster starts a one-broker kfake cluster in this process, with
// a topic of partitions partitions for each view's sink. The stream
// benchmark's node publishes to it and its consumer reads from it: the
// broker's cost falls on this process, as the consumers' does.
func newKafkaCluster(views []string, partitions int) (*kfake.Cluster, error) {
	topics := make([]string, len(views))
	for i, v := range views {
		topics[i] = streamTopic(v)
	}
	return kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), topics...))
}

// followKafka consumes each follower's view's topic from its start until
// stopped, counting records (a message's key is the JSON object of the
// record's entity keys).
func (s *followerSet) followKafka(brokers []string) error {
	byTopic := map[string]*follower{}
	topics := make([]string, 0, len(s.fs))
	for _, f := range s.fs {
		byTopic[streamTopic(f.view)] = f
		topics = append(topics, streamTopic(f.view))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithLogger(nil))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			fetches := cl.PollRecords(ctx, 10_000)
			if fetches.IsClientClosed() || ctx.Err() != nil {
				return
			}
			fetches.EachError(func(topic string, p int32, err error) {
				if f := byTopic[topic]; f != nil {
					f.fail(fmt.Errorf("bench: consuming %s partition %d: %w", topic, p, err))
				}
			})
			fetches.EachRecord(func(r *kgo.Record) {
				if f := byTopic[r.Topic]; f != nil {
					f.received(kafkaKey(r.Key, f))
				}
			})
		}
	}()
	s.stop = func() { cancel(); wg.Wait(); cl.Close() }
	return nil
}

// kafkaKey returns the user_id of a message key {"user_id":"..."} when a
// probe is listening, else nil.
func kafkaKey(key []byte, f *follower) []byte {
	const prefix = `{"user_id":"`
	if f.probe.Load() == nil || len(key) < len(prefix)+2 || string(key[:len(prefix)]) != prefix {
		return nil
	}
	return key[len(prefix) : len(key)-2]
}
