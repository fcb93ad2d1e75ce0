package engine

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/record"
)

// lastEntry decodes the last entry of db's log.
func lastEntry(t *testing.T, db *DB) record.Entry {
	t.Helper()
	var e record.Entry
	require.NoError(t, db.log.Replay(db.log.LastSeq(), func(_ uint64, payload []byte) error {
		return record.Decode(payload, &e)
	}))
	return e
}

func keyEntry(db *DB, key string, resp *IngestResponse) []byte {
	b, _ := db.KeyEntry(key, resp)
	return b
}

// TestPositionedIdempotentApplyRecordsKey: applying a key entry from
// Kafka logs one kind 4 entry and records the key, so that a claim of it
// is answered with the first response (positions included) and writes
// nothing; reopening the DB restores the key from the log; the same
// position applied again is skipped; the key expires after the window.
func TestPositionedIdempotentApplyRecordsKey(t *testing.T) {
	n := newIdemNode(t, 0)
	producer := newIdemNode(t, 0)
	resp, entries, err := producer.db.PrepareIngest(n.body("ads", "u1", 3), nil, 1, fnvPartition)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	_, err = n.db.ApplyEntry(entries[0].Payload, Position{Partition: 0, Offset: 10})
	require.NoError(t, err)
	first := *resp
	first.Positions = []Position{{Partition: 0, Offset: 10}}
	key, at := n.db.KeyEntry("k1", &first)
	require.Equal(t, n.clock(), at)
	require.Equal(t, byte(record.KindIngestIdempotent), key[1], "key entries travel as kind 2")

	seq := n.lastSeq()
	got, err := n.db.ApplyKeyEntry(key, Position{Partition: 0, Offset: 11}, first.Positions)
	require.NoError(t, err)
	assert.Equal(t, first, *got)
	require.Equal(t, seq+1, n.lastSeq(), "a key entry without records is logged")
	e := lastEntry(t, n.db)
	assert.Equal(t, byte(record.KindIngestIdempotentPositioned), e.Kind())
	assert.Equal(t, "k1", e.IdempotencyKey)
	assert.Equal(t, Position{Partition: 0, Offset: 11}, e.Position)
	assert.Equal(t, first.Positions, e.ResponsePositions)
	assert.Equal(t, at.UnixNano(), e.IngestTime)

	check := func(what string) {
		t.Helper()
		replay, claim, err := n.db.ClaimIdempotencyKey("ads", "k1")
		require.NoError(t, err, what)
		require.Nil(t, claim, "%s: the key is recorded", what)
		require.True(t, replay.Replayed, what)
		assert.Equal(t, first, withoutReplayed(replay), what)
		// A standalone ingest with the key also sees it.
		before := n.clicks1h("ads", "u1")
		assert.Equal(t, first.Metrics, n.ingest(n.body("ads", "u1", 5), "k1").Metrics, what)
		assert.Equal(t, before, n.clicks1h("ads", "u1"), "%s: a repeat writes nothing", what)
		// Keys are per workspace.
		_, claim, err = n.db.ClaimIdempotencyKey("ads2", "k1")
		require.NoError(t, err)
		require.NotNil(t, claim, what)
		claim.Release()
	}
	check("applied")
	assert.Equal(t, int64(3), n.clicks1h("ads", "u1"))

	n.reopen()
	check("reopened")
	got, err = n.db.ApplyKeyEntry(key, Position{Partition: 0, Offset: 11}, first.Positions)
	require.NoError(t, err)
	assert.Nil(t, got, "position 11 was applied already")
	pos, ok, err := n.db.AppliedPosition()
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, Position{Partition: 0, Offset: 11}, pos, "the key entry's position is the applied position")
	seq = n.lastSeq()
	_, err = n.db.ApplyEntry(entries[0].Payload, Position{Partition: 0, Offset: 10})
	require.NoError(t, err)
	assert.Equal(t, seq, n.lastSeq(), "nothing is applied twice")

	n.set(at.Add(DefaultIdempotencyWindow + time.Minute))
	_, claim, err := n.db.ClaimIdempotencyKey("ads", "k1")
	require.NoError(t, err)
	require.NotNil(t, claim, "the key expired after the window")
	claim.Release()
	n.reopen()
	_, claim, err = n.db.ClaimIdempotencyKey("ads", "k1")
	require.NoError(t, err)
	require.NotNil(t, claim, "and is not read back from the log")
	claim.Release()
}

// TestIdempotencyKeyEntryFillsClaim: a key entry applied while a request of
// this node holds the key's claim records the key in that claim: the
// requests waiting for it are answered with the applied response, and
// the holder's own Record and Release change nothing.
func TestIdempotencyKeyEntryFillsClaim(t *testing.T) {
	n := newIdemNode(t, 0)
	replay, claim, err := n.db.ClaimIdempotencyKey("ads", "k")
	require.NoError(t, err)
	require.Nil(t, replay)
	var wg sync.WaitGroup
	waiters := make([]*IngestResponse, 8)
	for i := range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, c, err := n.db.ClaimIdempotencyKey("ads", "k")
			assert.NoError(t, err)
			assert.Nil(t, c, "waiter %d got a claim: the key was not recorded", i)
			waiters[i] = r
		}()
	}
	require.Eventually(t, func() bool { return n.db.idem.waiting() == len(waiters) }, 5*time.Second, time.Millisecond)
	first := &IngestResponse{Workspace: "ads", Metrics: []ViewIngestMetrics{{FeatureView: "user_click_counts", Online: 2, Offline: 2}},
		Positions: []Position{{Partition: 3, Offset: 7}}}
	_, err = n.db.ApplyKeyEntry(keyEntry(n.db, "k", first), Position{Partition: 0, Offset: 0}, first.Positions)
	require.NoError(t, err)
	wg.Wait()
	for _, r := range waiters {
		require.NotNil(t, r)
		assert.Equal(t, *first, withoutReplayed(r))
	}
	other := &IngestResponse{Workspace: "ads", Metrics: []ViewIngestMetrics{{FeatureView: "user_click_counts", Online: 9}}}
	claim.Record(other, n.clock())
	claim.Release()
	r, c, err := n.db.ClaimIdempotencyKey("ads", "k")
	require.NoError(t, err)
	require.Nil(t, c)
	assert.Equal(t, *first, withoutReplayed(r), "the applied response stays the first")
}

// TestIdempotencyClaimRecordRelease: a claim recorded answers later claims with
// its response; a claim released without Record lets the next claim in;
// bad keys get standalone ingest's errors; key entries go only to
// ApplyKeyEntry and request entries only to ApplyEntry.
func TestIdempotencyClaimRecordRelease(t *testing.T) {
	n := newIdemNode(t, 0)
	_, c, err := n.db.ClaimIdempotencyKey("ads", "a")
	require.NoError(t, err)
	c.Release()
	_, c, err = n.db.ClaimIdempotencyKey("ads", "a")
	require.NoError(t, err)
	require.NotNil(t, c, "a released key is free")
	resp := &IngestResponse{Workspace: "ads", Positions: []Position{{Partition: 1, Offset: 2}}}
	c.Record(resp, n.clock())
	c.Release()
	r, c, err := n.db.ClaimIdempotencyKey("ads", "a")
	require.NoError(t, err)
	require.Nil(t, c)
	assert.Equal(t, *resp, withoutReplayed(r))

	for _, key := range []string{"", string(make([]byte, MaxIdempotencyKeyLen+1)), "tab\there"} {
		_, _, err := n.db.ClaimIdempotencyKey("ads", key)
		require.Error(t, err)
		_, standalone := n.db.IngestJSONWithKey(n.body("ads", "u", 1), key, nil)
		if key == "" {
			standalone = checkIdempotencyKey(key)
		}
		assert.Equal(t, standalone.Error(), err.Error(), "key %q", key)
		assert.Equal(t, CodeInvalidArgument, CodeOf(err))
	}
	_, entries, err := n.db.PrepareIngest(n.body("ads", "u", 1), nil, 1, fnvPartition)
	require.NoError(t, err)
	_, err = n.db.ApplyKeyEntry(entries[0].Payload, Position{}, nil)
	assert.ErrorContains(t, err, "key entries are kind 2")
	_, err = n.db.ApplyEntry(keyEntry(n.db, "k", resp), Position{})
	assert.ErrorContains(t, err, "ApplyKeyEntry")
	ws, dry, err := IngestEnvelope([]byte(`{"workspace_name":"ads","dry_run":true,"records":{}}`))
	require.NoError(t, err)
	assert.Equal(t, "ads", ws)
	assert.True(t, dry)
	_, _, err = IngestEnvelope([]byte(`{"workspace_name":"ads"}`))
	assert.Error(t, err)
}
