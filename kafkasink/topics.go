package kafkasink

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ensureTopics creates the sink's topic, with the broker's default
// partitions and replication, and with exactly_once its progress topic
// (one partition, compacted), when they are missing. A broker that
// refuses the creation (no CREATE permission, a broker before Kafka 2.4
// that needs explicit counts) only gets a warning: the sink then relies
// on an existing topic or on the broker's auto-creation, and says so in
// its errors if neither is there. A request that cannot reach the
// cluster at all fails the session: it is the sink's connectivity check.
func (p *producer) ensureTopics(ctx context.Context, adm *kadm.Client) error {
	if err := p.ensureTopic(ctx, adm, p.s.cfg.Topic, -1, nil); err != nil {
		return err
	}
	if !p.txn {
		return nil
	}
	return p.ensureTopic(ctx, adm, progressTopic(p.s.cfg.Topic), 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")})
}

func (p *producer) ensureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) error {
	resp, err := adm.CreateTopic(ctx, partitions, -1, configs, topic)
	switch {
	case err == nil:
		p.s.log.Info("created topic", "topic", topic, "partitions", resp.NumPartitions, "replication_factor", resp.ReplicationFactor)
	case errors.Is(err, kerr.TopicAlreadyExists):
	case resp.Topic == "": // the request itself failed
		return fmt.Errorf("reaching Kafka at %v to check topic %s: %w", p.s.cfg.Brokers, topic, err)
	default:
		p.s.log.Warn("cannot create the topic; relying on an existing topic or the broker's auto-creation", "topic", topic, "err", err)
	}
	return nil
}
