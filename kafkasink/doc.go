// Package kafkasink publishes views' output streams to Kafka (SPEC §7):
// one sink per output_stream.kafka a repo file declares, each a loop that
// reads the view's stream from its durable cursor (engine.DB.SinkCursor),
// produces it with github.com/twmb/franz-go, and advances the cursor once
// the broker has acknowledged.
//
// # Basics
//
//	db, _ := engine.Open(engine.Options{Dir: "featurelog-data"})
//	m, err := kafkasink.Start(db, kafkasink.Options{
//		Brokers: []string{"kafka-1:9092"}, // optional: replaces every sink's brokers
//	})
//	if err != nil { ... }
//	defer db.Close()
//	defer m.Close() // before db.Close
//	...
//	for _, s := range m.Status() { fmt.Println(s.ID, s.State, s.Lag, s.LastError) }
//
// featurelog serve starts a Manager with the node (--kafka-brokers sets
// Options.Brokers) and hands it to httpapi as Options.Sinks: the
// Manager is a prometheus.Collector (featurelog_sink_lag_seconds,
// _records_published_total, _errors_total, _lagging, _failing, each
// labelled sink) and NotReady makes /readyz answer 503.
//
// Sinks follow applies: the Manager re-reads engine.DB.Sinks every
// Options.Reconcile, starts the new ones and stops the removed ones. A
// sink's ID is workspace/view/kafka:topic; its cursor starts at the apply
// that declared it, at the first record appended after it.
//
// # Messages
//
// Each output record is one message: its value the record's JSON object
// (engine.OutputRecord.AppendJSON, the NDJSON line of the HTTP stream,
// offset included), its key the JSON object of its entity keys
// (AppendKeyJSON), partitioned by franz-go's default partitioner (a hash
// of the key), produced with acks=all.
//
// The sink creates its topic when missing (kadm, with the broker's
// default partitions and replication factor); if the broker refuses (no
// CREATE permission, or a broker before Kafka 2.4), it logs a warning and
// relies on a topic created beforehand or on the broker's
// auto.create.topics.enable.
//
// # Guarantees
//
// At least once, no gaps, per-key order. A sink reads the stream in
// batches (whatever the stream holds, up to BatchRecords records, without
// waiting to fill one) and produces them with an idempotent producer,
// pipelined: the following batches are produced while earlier ones await
// their acknowledgements (about 2×BatchRecords records in flight at
// most). The cursor only ever moves to the end of the longest prefix of
// batches every record of which is acknowledged, and is saved (an atomic
// file write with fsyncs) every CursorInterval (200ms) while batches are
// in flight, 20ms after the last save once none is, and when the session
// ends: the durable cursor trails the acknowledged records by at most
// the records acknowledged within the last CursorInterval and one save.
// A record that
// fails stops the session's producing at once (so no later record of its
// partition is appended before it is); so does a batch still
// unacknowledged RetryBudget after the batch before it was; the sink then
// closes its client and, after a backoff, starts again from its durable
// cursor: records acknowledged but not yet covered by the cursor are
// published again (a crash of the process does the same: at most the
// records in flight and those acknowledged within the last CursorInterval),
// none is skipped. A key's messages are in one partition in log order,
// once repeats of a record already delivered are dropped (each message's
// "offset" names its record). The engine keeps the log from the smallest
// cursor on, so a sink that cannot publish holds the log rather than lose
// records (with push.log_offline: false the log then grows).
//
// Exactly once, with exactly_once: true and read_committed consumers.
// The sink produces the stream in Kafka transactions (transactional ID
// featurelog-sink-<sanitized sink ID>-<hash>): a transaction gathers the
// records of successive reads, produced as they come, until it holds
// BatchRecords records, is TxnMaxAge (100ms) old, or the stream has
// nothing more within a few milliseconds; it then writes a progress record
// to <topic>.featurelog-progress (one partition, compacted; key the sink
// ID, value {"next":"<offset of the next record>"}) and commits. Larger
// transactions amortize the commits; a read_committed consumer sees a
// record only once its transaction commits, so at most about TxnMaxAge
// after the sink read it. The local cursor follows the commits, saved at
// most every CursorInterval. A session starts by fencing the
// transactional ID (InitProducerID aborts whatever an earlier process
// left open) and reading the progress topic with read_committed up to
// its high watermark (so also past transactions other sinks of the same
// topic have open); it resumes at the later of the last progress record
// and the local cursor. A transaction
// that aborts, or whose commit's outcome is unknown, is settled by that
// read: its records are published again only if it did not commit.
// Consumers reading read_uncommitted may see the records of aborted
// transactions.
//
// Closing (Manager.Close, or an apply that removes a sink) stops reading
// and producing at once, even with a backlog, gives the records in flight
// (with exactly_once, the open transaction's acknowledgements and commit)
// one second, saves the cursor for what was acknowledged and closes the
// client: Close returns within about a second whatever the broker does.
// What was not acknowledged by then (an open transaction: aborted, or
// left to the next session's fencing) is published again by the next
// Start.
//
// # Failure behaviour
//
// A sink is "starting" until it has published a batch or found nothing
// to publish, then "running"; "lagging" when the oldest record not yet
// acknowledged was logged more than max_lag ago (SinkStatus.Cursor, the
// durable cursor, may trail the acknowledged records by CursorInterval); "failing" from a failed
// attempt until a batch is acknowledged again or, reconnected, it finds
// nothing to publish. A failing sink also lagging past max_lag reports
// "failing" (and featurelog_sink_lagging 1). While Kafka is down a sink
// fails each attempt (the topic check at its start is also its
// connectivity check), backs off from 100ms doubling to MaxBackoff, and
// its lag grows; LastError says why (the client's "connection refused",
// say). A sink whose repo names no broker, with no Options.Brokers,
// stays failing with an error saying to set output_stream.kafka.brokers
// or featurelog serve --kafka-brokers. A record the broker refuses for
// good (larger than message.max.bytes, say) keeps its sink failing, with
// the broker's error, until the topic's limits change: the sink never
// skips a record.
//
// # Caveats
//
//   - Progress records are keyed by sink ID only: two deployments with
//     the same workspace, view and topic writing to one cluster fence
//     each other's transactions and share progress. A data directory
//     recreated from scratch under an exactly_once sink whose progress
//     topic remains resumes at that progress; delete the progress record
//     (or the topic) first.
//   - Options.ClientOpts reach every client: TLS and SASL go there.
package kafkasink
