package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/v1"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
)

// The progress topic of an exactly_once sink (the pattern of
// Materialize's Kafka sink): every transaction that publishes a batch also
// writes one progress record, so the records and the position after them
// commit together. A restart fences the transactional ID, reads the
// progress topic to its end with read_committed, and resumes at the later
// of the last progress record and the local cursor.
//
//	topic:  <topic>.featurelog-progress   (one partition, compacted)
//	key:    the sink ID, workspace/view/kafka:topic
//	value:  {"next":"<wire offset of the next record to publish>"}
//
// The names and the value are part of the wire format; do not change.

// progressSuffix ends the name of a progress topic.
const progressSuffix = ".featurelog-progress"

// maxTopicLen is Kafka's limit on topic names.
const maxTopicLen = 249

// progressTopic names the progress topic of a sink's topic. A topic name
// too long for the suffix is cut and told apart by a hash.
func progressTopic(topic string) string {
	if len(topic)+len(progressSuffix) <= maxTopicLen {
		return topic + progressSuffix
	}
	h := fnv.New32a()
	h.Write([]byte(topic))
	return fmt.Sprintf("%s-%08x%s", topic[:maxTopicLen-len(progressSuffix)-9], h.Sum32(), progressSuffix)
}

// transactionalID is the transactional ID of a sink: derived from its ID,
// so every process that runs the sink fences the previous one.
func transactionalID(sinkID string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, sinkID)
	h := fnv.New32a()
	h.Write([]byte(sinkID))
	return fmt.Sprintf("featurelog-sink-%s-%08x", clean, h.Sum32())
}

// progressValue is the value of a progress record.
type progressValue struct {
	Next string `json:"next"`
}

func progressRecord(sinkID, topic string, next engine.StreamOffset) *kgo.Record {
	v, _ := json.Marshal(progressValue{Next: next.String()})
	return &kgo.Record{Topic: progressTopic(topic), Key: []byte(sinkID), Value: v}
}

// readProgress reads topic with read_committed, from its start to its
// end as of now (waiting for the transactions open there to end), and
// returns the last progress of sinkID. Control records are kept, so the
// end is seen even when a transaction marker is the last thing before it.
func readProgress(ctx context.Context, opts []kgo.Opt, topic, sinkID string) (next engine.StreamOffset, found bool, err error) {
	opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(), kgo.FetchMaxWait(200*time.Millisecond))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return next, false, err
	}
	defer cl.Close()
	from, ends, err := progressRange(ctx, kadm.NewClient(cl), topic)
	if err != nil || len(ends) == 0 {
		return next, false, err
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: from})
	for len(ends) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return next, false, fmt.Errorf("reading progress topic %s: %w", topic, err)
		}
		for _, fe := range fs.Errors() {
			return next, false, fmt.Errorf("reading progress topic %s: %w", topic, fe.Err)
		}
		var perr error
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() && string(r.Key) == sinkID {
				off, err := parseProgress(r.Value)
				if err != nil {
					perr = fmt.Errorf("%w: topic %s partition %d offset %d: %q: %w", ErrBadProgress, topic, r.Partition, r.Offset, r.Value, err)
				}
				next, found = off, true
			}
			if end, ok := ends[r.Partition]; ok && r.Offset+1 >= end {
				delete(ends, r.Partition)
			}
		})
		if perr != nil {
			return next, false, perr
		}
	}
	return next, found, nil
}

func parseProgress(value []byte) (engine.StreamOffset, error) {
	var v progressValue
	if err := json.Unmarshal(value, &v); err != nil {
		return engine.StreamOffset{}, err
	}
	return engine.ParseStreamOffset(v.Next)
}

// progressRange returns where each non-empty partition of topic starts
// and its end: the high watermark now, not the last stable offset.
// Another sink that publishes to the same topic shares its progress
// topic, and a progress record of ours committed after that sink's
// transaction began lies past the last stable offset until that
// transaction ends: reading to the high watermark with read_committed
// waits for it.
func progressRange(ctx context.Context, adm *kadm.Client, topic string) (map[int32]kgo.Offset, map[int32]int64, error) {
	starts, err := listOffsets(ctx, adm.ListStartOffsets, topic)
	if err != nil {
		return nil, nil, err
	}
	ends, err := listOffsets(ctx, adm.ListEndOffsets, topic)
	if err != nil {
		return nil, nil, err
	}
	from, last := map[int32]kgo.Offset{}, map[int32]int64{}
	for p, e := range ends {
		if s := starts[p]; e > s {
			from[p], last[p] = kgo.NewOffset().At(s), e
		}
	}
	return from, last, nil
}

// listOffsets lists one kind of offset of every partition of topic;
// nothing for a missing topic.
func listOffsets(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error), topic string) (map[int32]int64, error) {
	listed, err := list(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing the offsets of progress topic %s: %w", topic, err)
	}
	out := map[int32]int64{}
	for p, o := range listed[topic] {
		if errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
			continue
		}
		if o.Err != nil {
			return nil, fmt.Errorf("listing the offsets of progress topic %s partition %d: %w", topic, p, o.Err)
		}
		out[p] = o.Offset
	}
	return out, nil
}
