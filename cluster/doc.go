// Package cluster runs featurelog nodes that share the work through Kafka
// partitions (SPEC §10): Kafka is the replicated log, and featurelog adds
// no consensus of its own.
//
// A Node validates ingest requests against its repo and produces each
// request's records, split by partition of their entity key (Kafka's
// murmur2 of the key, modulo the partition count: PartitionOf), in a
// Kafka transaction, which requests arriving together share (a group
// commit): a request is visible to owners whole or not at all, and it is
// acknowledged only once Kafka has committed it with acks=all.
//
// The nodes form one consumer group with the cooperative-sticky balancer.
// A node keeps, for each partition it owns, an engine.DB of its own under
// <Dir>/partitions/<p>: the same log, tiles and segments a single node
// keeps. Each consumed record is applied with engine.DB.ApplyEntry, which
// stores the record's offset in the same fsynced log append as its
// records; on assignment the node seeks each partition to the offset
// after the one its own log stored, so every record is applied exactly
// once across restarts and reassignments. Committed group offsets are
// written for monitoring only and never read.
//
// A partition serves only once caught up: on assignment the node
// produces a barrier record (a header, no entry) to the partition and
// serves it once it has consumed its own barrier, which Kafka orders
// after every record committed before. On revoke it stops serving the
// partition at once and closes its DB; its files stay for a later
// assignment, which resumes from their stored offset. Close stops
// applying, leaves the group, and only then flushes the memtables of
// every partition the node held (close.go), so that a restart on the
// same directory replays none of their logs, and the partitions' next
// owners do not wait for the flushes.
//
//	n, err := cluster.Open(ctx, cluster.Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "featurelog",
//		Partitions: 12, NodeID: "node-1", Dir: "/var/lib/featurelog", Repo: yaml, RepoName: "features.yaml"})
//	resp, positions, err := n.Ingest(ctx, body, nil)
//	db, err := n.Owner(cluster.PartitionOf(key, 12)) // the partition's DB, if this node serves it
//
// A request with an Idempotency-Key is served by the node serving the
// key's partition (KeyPartition, IngestWithKey, idempotency.go): it claims
// the key in that partition's DB, and writes the key and the response in
// the same transaction as the request's records, to the key's partition,
// whose owners record it as they apply it: a repeat through any node, also
// after the partition moved, is answered with the first response.
//
// RouteOf says which node serves a partition (members.go); package
// httpapi forwards reads, and requests with an Idempotency-Key, there,
// splits historical joins by partition over the owners, and gathers the
// jobs API from every node; plan/apply (repo.go) and jobs (jobs.go) go
// through Kafka. Caveats: DESIGN.md, "Cluster mode".
package cluster
