package engine

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/featurelog/featurelog/internal/clicks"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// posNode is an engine on a shared test clock with the ads example.
type posNode struct {
	t   *testing.T
	dir string
	now *atomic.Int64
	db  *DB
}

func newPosNode(t *testing.T, now *atomic.Int64, repoYAML []byte) *posNode {
	n := &posNode{t: t, dir: t.TempDir(), now: now}
	n.open()
	t.Cleanup(func() { n.db.Close() })
	_, err := n.db.ApplyWait(context.Background(), "repo.yaml", repoYAML)
	require.NoError(t, err)
	return n
}

func (n *posNode) open() {
	db, err := Open(Options{Dir: n.dir, NoSync: true, DisableAutoFlush: true, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.Unix(0, n.now.Load()).UTC() }})
	require.NoError(n.t, err)
	n.db = db
}

func (n *posNode) reopen() {
	require.NoError(n.t, n.db.Close())
	n.open()
}

func adsRepo(t *testing.T) []byte {
	src, err := os.ReadFile("../examples/ads/features.yaml")
	require.NoError(t, err)
	return src
}

// fnvPartition is a partitioner for tests (cluster mode uses Kafka's
// murmur2; the engine takes any).
func fnvPartition(key []byte, n int) int {
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(n))
}

// TestPrepareAndApplyEqualDirectIngest: requests split by PrepareIngest
// and applied by partition owners serve what one node that ingested them
// serves, and applying any entry again changes nothing, also after the
// owner restarts.
func TestPrepareAndApplyEqualDirectIngest(t *testing.T) {
	const parts, users = 4, 40
	var now atomic.Int64
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now.Store(t0.UnixNano())
	repoYAML := adsRepo(t)
	producer, direct := newPosNode(t, &now, repoYAML), newPosNode(t, &now, repoYAML)
	owners := make([]*posNode, parts)
	for p := range owners {
		owners[p] = newPosNode(t, &now, repoYAML)
	}
	type produced struct {
		payload []byte
		pos     Position
	}
	var log []produced
	next := make([]int64, parts)
	r := rand.New(rand.NewPCG(7, 8))
	for range 30 {
		now.Add(int64(time.Minute))
		body := clicks.Body(r, time.Unix(0, now.Load()), 1+r.IntN(60), users)
		resp, entries, err := producer.db.PrepareIngest(body, nil, parts, fnvPartition)
		require.NoError(t, err)
		want, err := direct.db.IngestJSON(body, nil)
		require.NoError(t, err)
		require.Equal(t, want, resp, "the prepared response is the one a node that ingests gives")
		records := 0
		for _, e := range entries {
			pos := Position{Partition: e.Partition, Offset: next[e.Partition]}
			next[e.Partition] += 1 + r.Int64N(3) // Kafka offsets need not be dense (transaction markers)
			_, err := owners[e.Partition].db.ApplyEntry(e.Payload, pos)
			require.NoError(t, err)
			log = append(log, produced{e.Payload, pos})
			records += e.Records
		}
		require.Equal(t, strings.Count(string(body), `"record"`), records, "every record goes to one partition")
	}
	serve := func() map[string]string {
		out := map[string]string{}
		for u := range users {
			user := fmt.Sprintf("u%d", u)
			key, err := producer.db.ServiceKey("ads", "ad_ctr_feature_service_v2", map[string]any{"user_id": user})
			require.NoError(t, err)
			p := fnvPartition(key, parts)
			got, err := owners[p].db.GetFeatures(&GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2", JoinKeys: map[string]any{"user_id": user}})
			require.NoError(t, err)
			want, err := direct.db.GetFeatures(&GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2", JoinKeys: map[string]any{"user_id": user}})
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint(want), fmt.Sprint(got), "user %s (partition %d)", user, p)
			out[user] = fmt.Sprint(got)
		}
		return out
	}
	before := serve()
	for _, p := range owners {
		p.reopen()
	}
	for _, e := range log { // Kafka redelivers: every entry again, after a restart
		resp, err := owners[e.pos.Partition].db.ApplyEntry(e.payload, e.pos)
		require.NoError(t, err)
		require.Nil(t, resp, "partition %d offset %d was applied already", e.pos.Partition, e.pos.Offset)
	}
	assert.Equal(t, before, serve())
	for p, o := range owners {
		pos, ok, err := o.db.AppliedPosition()
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, int32(p), pos.Partition)
		assert.Less(t, pos.Offset, next[p])
	}
	_, err := owners[0].db.ApplyEntry(log[0].payload, Position{Partition: 1, Offset: 1 << 40})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "applies partition 0, not partition 1")
	_, err = owners[0].db.ApplyEntry([]byte("not an entry"), Position{Partition: 0, Offset: 1 << 40})
	require.Error(t, err)
	assert.Equal(t, CodeInvalidArgument, CodeOf(err))
	assert.Contains(t, err.Error(), "partition 0 offset 1099511627776 is not a featurelog entry")
}

// TestApplyEntryValidatesAsOfIngestTime: an owner that applies an entry
// long after it was produced (a replay from Kafka) accepts it and counts
// it as the producer did, though by its own clock the records are past
// the views' TTL and the producer's clock is far behind.
func TestApplyEntryValidatesAsOfIngestTime(t *testing.T) {
	var now atomic.Int64
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now.Store(t0.UnixNano())
	producer, owner := newPosNode(t, &now, adsRepo(t)), newPosNode(t, &now, adsRepo(t))
	body := []byte(`{"workspace_name": "ads", "dry_run": false, "records": {"impressions_event_source": [
		{"record": {"user_id": "u1", "timestamp": "2026-03-01T11:00:00Z", "clicked": 1}}]}}`)
	resp, entries, err := producer.db.PrepareIngest(body, nil, 1, fnvPartition)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	now.Store(t0.Add(30 * 24 * time.Hour).UnixNano())
	got, err := owner.db.ApplyEntry(entries[0].Payload, Position{Partition: 0, Offset: 0})
	require.NoError(t, err)
	assert.Equal(t, resp, got)
	// A fresh request with the same record is refused now: it is past
	// every view's TTL by the clock.
	_, _, err = producer.db.PrepareIngest(body, nil, 1, fnvPartition)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "outside of the serving TTL")
}

// TestPrepareIngestBadInputs: bad requests are refused with the errors
// IngestJSON gives, and produce nothing.
func TestPrepareIngestBadInputs(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	n := newPosNode(t, &now, adsRepo(t))
	good := `{"record": {"user_id": "u1", "timestamp": "2026-03-01T11:00:00Z", "clicked": 1}}`
	for name, c := range map[string]struct {
		body, want string
		parts      int
	}{
		"bad_record":    {`{"workspace_name": "ads", "dry_run": false, "records": {"impressions_event_source": [` + good + `, {"record": {"user_id": "u2", "clicked": "x"}}]}}`, "clicked", 2},
		"unknown_ws":    {`{"workspace_name": "nope", "dry_run": false, "records": {}}`, "nope", 2},
		"not_json":      {`{"workspace_name": `, "", 2},
		"no_partitions": {`{"workspace_name": "ads", "dry_run": false, "records": {"impressions_event_source": [` + good + `]}}`, "positive partition count", 0},
	} {
		t.Run(name, func(t *testing.T) {
			resp, entries, err := n.db.PrepareIngest([]byte(c.body), nil, c.parts, fnvPartition)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.Nil(t, resp)
			assert.Empty(t, entries)
		})
	}
	resp, entries, err := n.db.PrepareIngest([]byte(`{"workspace_name": "ads", "dry_run": true, "records": {"impressions_event_source": [`+good+`]}}`), nil, 2, fnvPartition)
	require.NoError(t, err)
	assert.NotNil(t, resp)
	assert.Empty(t, entries, "a dry run produces nothing")
	_, err = n.db.ApplyEntry(nil, Position{Partition: -1})
	assert.Equal(t, CodeInvalidArgument, CodeOf(err))
}

// TestPrepareRefusesUnpartitionableSource: a source whose views have
// different join keys has no one key per record; cluster mode refuses it,
// naming the views.
func TestPrepareRefusesUnpartitionableSource(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	repoYAML := []byte(`workspace: shop
entities:
  - {name: user, join_keys: [user_id]}
  - {name: item, join_keys: [item_id]}
sources:
  - name: orders
    schema:
      - {name: user_id, type: String}
      - {name: item_id, type: String}
      - {name: ts, type: Timestamp}
feature_views:
  - {name: by_user, source: orders, entities: [user], timestamp_field: ts, features: [{attribute: {name: item_id}}]}
  - {name: by_item, source: orders, entities: [item], timestamp_field: ts, features: [{attribute: {name: user_id}}]}
`)
	n := newPosNode(t, &now, repoYAML)
	err := n.db.CheckPartitionable()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `source "orders" has "by_user" keyed by (user_id) and "by_item" keyed by (item_id)`)
	_, _, err = n.db.PrepareIngest([]byte(`{"workspace_name": "shop", "dry_run": false, "records": {"orders": [{"record": {"user_id": "a", "item_id": "b", "ts": "2026-03-01T11:00:00Z"}}]}}`), nil, 2, fnvPartition)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "same join keys")
	ads := newPosNode(t, &now, adsRepo(t))
	assert.NoError(t, ads.db.CheckPartitionable())
	_, err = ads.db.ServiceKey("ads", "ad_ctr_feature_service_v2", map[string]any{"user": "x"})
	require.Error(t, err, "a wrong join key is refused as get-features refuses it")
	assert.Contains(t, err.Error(), "user_id")
}

// TestCheckPartitionableServices: a service over views keyed differently
// would need reads from several partitions; cluster mode refuses it.
func TestCheckPartitionableServices(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	n := newPosNode(t, &now, []byte(`workspace: shop
entities:
  - {name: user, join_keys: [user_id]}
  - {name: item, join_keys: [item_id]}
sources:
  - {name: orders, schema: [{name: user_id, type: String}, {name: ts, type: Timestamp}, {name: amount, type: Float64}]}
  - {name: items, schema: [{name: item_id, type: String}, {name: ts, type: Timestamp}, {name: price, type: Float64}]}
feature_views:
  - {name: user_amount, source: orders, entities: [user], timestamp_field: ts, features: [{attribute: {name: amount}}]}
  - {name: item_price, source: items, entities: [item], timestamp_field: ts, features: [{attribute: {name: price}}]}
feature_services:
  - {name: both, features: [user_amount, item_price]}
`))
	err := n.db.CheckPartitionable()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `service "both" has "user_amount" keyed by (user_id) and "item_price" keyed by (item_id)`)
}

// TestDeletionAppliedAtPosition: a deletion split by partition and
// applied at Kafka positions (cluster mode's delete_keys) erases from
// each owner exactly what one node's deletion erases; applying its
// request again, before or after a restart, or after the job ended,
// starts nothing; records applied after it stay; bad requests are
// refused before any partition sees them.
func TestDeletionAppliedAtPosition(t *testing.T) {
	const parts, users = 3, 30
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	repoYAML := adsRepo(t)
	producer, direct := newPosNode(t, &now, repoYAML), newPosNode(t, &now, repoYAML)
	owners := make([]*posNode, parts)
	for p := range owners {
		owners[p] = newPosNode(t, &now, repoYAML)
	}
	next := make([]int64, parts)
	r := rand.New(rand.NewPCG(17, 18))
	ingest := func(k int) {
		for range k {
			now.Add(int64(time.Minute))
			body := clicks.Body(r, time.Unix(0, now.Load()), 1+r.IntN(40), users)
			_, entries, err := producer.db.PrepareIngest(body, nil, parts, fnvPartition)
			require.NoError(t, err)
			_, err = direct.db.IngestJSON(body, nil)
			require.NoError(t, err)
			for _, e := range entries {
				_, err := owners[e.Partition].db.ApplyEntry(e.Payload, Position{Partition: e.Partition, Offset: next[e.Partition]})
				require.NoError(t, err)
				next[e.Partition]++
			}
		}
	}
	ingest(20)

	var keys []map[string]any
	for _, u := range []int{1, 4, 7, 8, 20, 29, 999} { // u999 has no records
		keys = append(keys, map[string]any{"user_id": fmt.Sprintf("u%d", u)})
	}
	req := DeleteKeysRequest{Keys: keys, Online: true, Offline: true}
	_, _, err := producer.db.SplitDeleteKeys("ads", "click_events_fv", DeleteKeysRequest{Keys: []map[string]any{{"user": "u1"}}, Online: true}, parts, fnvPartition)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `keys[0]: join key "user_id"`)
	_, _, err = producer.db.SplitDeleteKeys("ads", "nope", req, parts, fnvPartition)
	assert.Equal(t, CodeNotFound, CodeOf(err))
	split, canonical, err := producer.db.SplitDeleteKeys("ads", "click_events_fv", req, parts, fnvPartition)
	require.NoError(t, err)
	require.Len(t, canonical, len(keys))
	id := NewJobID(time.Unix(0, now.Load()))
	var partitions []int32
	for p := range split {
		partitions = append(partitions, p)
	}
	jobPos := map[int32]Position{}
	start := func(p int32) (bool, error) {
		share := DeleteKeysRequest{Online: true, Offline: true, JobID: id, Partitions: partitions, KeyIndexes: split[p]}
		for _, i := range split[p] {
			share.Keys = append(share.Keys, canonical[i])
		}
		return owners[p].db.ApplyAt(jobPos[p], "ads", func() error {
			_, err := owners[p].db.DeleteKeys("ads", "click_events_fv", share)
			return err
		})
	}
	for p := range split {
		jobPos[p] = Position{Partition: p, Offset: next[p]}
		next[p]++
		ok, err := start(p)
		require.NoError(t, err)
		require.True(t, ok)
	}
	want, err := direct.db.DeleteKeys("ads", "click_events_fv", req)
	require.NoError(t, err)
	want, err = direct.db.WaitJob(context.Background(), "ads", want.ID)
	require.NoError(t, err)
	require.Equal(t, JobSuccess, want.State)
	found := 0
	var notFound []int
	for p := range split {
		ok, err := start(p) // the request consumed again: the position was logged
		require.NoError(t, err)
		require.False(t, ok)
		j, err := owners[p].db.WaitJob(context.Background(), "ads", id)
		require.NoError(t, err)
		require.Equal(t, JobSuccess, j.State, "partition %d", p)
		assert.Equal(t, partitions, j.Params.Partitions)
		found += j.Result.KeysFound
		for _, i := range j.Result.KeysNotFound {
			notFound = append(notFound, j.Params.KeyIndexes[i])
		}
	}
	assert.Equal(t, want.Result.KeysFound, found)
	assert.ElementsMatch(t, want.Result.KeysNotFound, notFound)
	ingest(5) // records after the deletion stay

	check := func() {
		for u := range users {
			user := fmt.Sprintf("u%d", u)
			key, err := producer.db.ServiceKey("ads", "ad_ctr_feature_service_v2", map[string]any{"user_id": user})
			require.NoError(t, err)
			p := fnvPartition(key, parts)
			rq := &GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2", JoinKeys: map[string]any{"user_id": user}}
			got, err := owners[p].db.GetFeatures(rq)
			require.NoError(t, err)
			want, err := direct.db.GetFeatures(rq)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint(want), fmt.Sprint(got), "user %s (partition %d)", user, p)
		}
	}
	check()
	for p := range split {
		owners[p].reopen()
		ok, err := start(p)
		require.NoError(t, err)
		require.False(t, ok, "partition %d: the deletion's position is in the log", p)
		jobs, err := owners[p].db.Jobs("ads", JobFilter{Type: JobDeletion})
		require.NoError(t, err)
		require.Len(t, jobs, 1, "partition %d: one deletion job", p)
	}
	check()

	// A crash after the job started and before its position was logged:
	// the request consumed again finds its job and starts no other.
	p := partitions[0]
	id2 := NewJobID(time.Unix(0, now.Load()))
	share := DeleteKeysRequest{Online: true, Keys: []map[string]any{keys[split[p][0]]}, JobID: id2}
	_, err = owners[p].db.DeleteKeys("ads", "click_events_fv", share)
	require.NoError(t, err)
	ok, err := owners[p].db.ApplyAt(Position{Partition: p, Offset: next[p]}, "ads", func() error {
		_, err := owners[p].db.DeleteKeys("ads", "click_events_fv", share)
		return err
	})
	require.NoError(t, err)
	require.True(t, ok)
	jobs, err := owners[p].db.Jobs("ads", JobFilter{Type: JobDeletion})
	require.NoError(t, err)
	assert.Len(t, jobs, 2)
}

// TestFlushKeepsAppliedPosition: a partition's DB whose last apply filled
// a log segment (tidwall then starts an empty one), whose source does not
// keep its log (log_offline: false, so a flush truncates it), and which
// applies nothing for longer than the idempotency window, is flushed (as
// a cluster node's Close does) and reopened: AppliedPosition is still the
// last offset applied, so the node resumes after it and applies nothing a
// second time. A truncation down to the empty segment lost it, and the
// node would have applied the whole partition again from offset 0.
func TestFlushKeepsAppliedPosition(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	repoYAML := []byte(strings.Replace(string(adsRepo(t)), "log_offline: true", "log_offline: false", 1))
	producer := newPosNode(t, &now, repoYAML)
	dir := t.TempDir()
	open := func() *DB {
		db, err := Open(Options{Dir: dir, NoSync: true, DisableAutoFlush: true, SegmentSize: 4096, IdempotencyWindow: time.Minute,
			Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return time.Unix(0, now.Load()).UTC() }})
		require.NoError(t, err)
		return db
	}
	owner := open()
	_, err := owner.ApplyWait(context.Background(), "repo.yaml", repoYAML)
	require.NoError(t, err)
	// emptyTail reports whether the log's newest segment file holds no
	// entry: it is named after the seq of its first entry (wal).
	emptyTail := func() bool {
		names, err := os.ReadDir(filepath.Join(dir, "wal"))
		require.NoError(t, err)
		var segs []uint64
		for _, e := range names {
			if seq, err := strconv.ParseUint(e.Name(), 10, 64); err == nil {
				segs = append(segs, seq)
			}
		}
		return len(segs) > 2 && slices.Max(segs) == owner.log.LastSeq()+1
	}
	r := rand.New(rand.NewPCG(9, 10))
	var last Position
	var payload []byte
	for offset := int64(0); !emptyTail(); offset++ {
		require.Less(t, offset, int64(5000), "no apply left the log's last segment empty")
		_, entries, err := producer.db.PrepareIngest(clicks.Body(r, time.Unix(0, now.Load()), 1, 5), nil, 1, fnvPartition)
		require.NoError(t, err)
		last, payload = Position{Partition: 0, Offset: offset}, entries[0].Payload
		_, err = owner.ApplyEntry(payload, last)
		require.NoError(t, err)
	}
	now.Add(int64(3 * time.Hour)) // past the idempotency window and its slack
	require.NoError(t, owner.Flush())
	require.NoError(t, owner.Close())

	owner = open()
	defer owner.Close()
	pos, ok, err := owner.AppliedPosition()
	require.NoError(t, err)
	require.True(t, ok, "the applied position was lost with the log")
	assert.Equal(t, last, pos)
	resp, err := owner.ApplyEntry(payload, last) // Kafka redelivers the last one
	require.NoError(t, err)
	assert.Nil(t, resp, "offset %d was applied already", last.Offset)
}
