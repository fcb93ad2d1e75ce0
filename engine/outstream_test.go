package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// osRepo has an attribute view and a continuous aggregate view with
// output streams, and a view without one.
const osRepo = `workspace: os
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: events
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Float64}
      - {name: note, type: String}
feature_views:
  - name: latest
    source: events
    entities: [user]
    timestamp_field: ts
    output_stream: {include_features: true}
    features:
      - attribute: {name: amount}
      - attribute: {name: note}
  - name: sums
    source: events
    entities: [user]
    timestamp_field: ts
    output_stream: {include_features: true}
    transform:
      filter: amount >= 0
    features:
      - aggregate: {input: amount, function: sum, window: 1h}
      - aggregate: {input: amount, function: count, window: 24h}
      - aggregate: {input: amount, function: max, window: 6h, name: amount_max}
      - aggregate: {input: note, function: last_distinct_n, n: 3, window: 24h}
      - aggregate: {input: amount, function: sum, window: lifetime, name: total}
  - name: quiet
    source: events
    entities: [user]
    timestamp_field: ts
    features:
      - attribute: {name: amount}
feature_services:
  - name: all
    features:
      - latest
      - sums
`

var osNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func osOpen(t *testing.T, dir string, now func() time.Time) *DB {
	t.Helper()
	if now == nil {
		now = func() time.Time { return osNow }
	}
	db, err := Open(Options{Dir: dir, NoSync: true, Now: now, DisableAutoFlush: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	return db
}

type osEvent struct {
	user   string
	ts     time.Time
	amount float64
	note   string
}

// osEvents returns n events over users keys, skewed to a few hot keys,
// with timestamps over the two days before osNow in random order, some
// negative amounts (filtered out by sums) and fractional amounts (float
// sums depend on the order of addition).
func osEvents(seed uint64, n, users int) []osEvent {
	rng := rand.New(rand.NewPCG(seed, 13))
	out := make([]osEvent, n)
	for i := range out {
		u := int(float64(users) * rng.Float64() * rng.Float64())
		out[i] = osEvent{user: fmt.Sprintf("u%03d", u), ts: osNow.Add(-time.Duration(rng.Int64N(int64(48 * time.Hour)))).Truncate(time.Microsecond),
			amount: float64(rng.IntN(2000)-100) / 7, note: fmt.Sprintf("n%d", rng.IntN(5))}
	}
	return out
}

func osIngest(t *testing.T, db *DB, evs []osEvent, per int) {
	t.Helper()
	for len(evs) > 0 {
		n := min(len(evs), per)
		recs := make([]map[string]any, n)
		for i := range recs {
			recs[i] = map[string]any{"user_id": evs[i].user, "ts": evs[i].ts, "amount": evs[i].amount, "note": evs[i].note}
		}
		_, err := db.Ingest(&IngestRequest{Workspace: "os", Records: map[string][]map[string]any{"events": recs}})
		require.NoError(t, err)
		evs = evs[n:]
	}
}

// osRead reads a stream until it has no record for a moment.
func osRead(t *testing.T, db *DB, view string, start StreamStart) []string {
	t.Helper()
	s, err := db.OpenOutputStream("os", view, start)
	require.NoError(t, err)
	defer s.Close()
	var out []string
	var buf []OutputRecord
	for {
		buf, err = s.Next(context.Background(), buf, 100, 50*time.Millisecond)
		require.NoError(t, err)
		if len(buf) == 0 {
			return out
		}
		for i := range buf {
			out = append(out, string(buf[i].AppendJSON(nil)))
		}
	}
}

// TestOutputStreamModel checks both views' streams against a model that
// scans the events in log order, with the events spread over two segments
// and the memtable: one record per applied event, offsets
// strictly increasing, attribute values as sent, and aggregate values
// over exactly the events logged up to the record.
func TestOutputStreamModel(t *testing.T) {
	db := osOpen(t, t.TempDir(), nil)
	defer db.Close()
	_, err := db.ApplyWait(context.Background(), "os.yaml", []byte(osRepo))
	require.NoError(t, err)
	evs := osEvents(1, 3000, 40)
	osIngest(t, db, evs[:1000], 37)
	require.NoError(t, db.Flush()) // keys' events in a segment and the memtable: the merge path
	osIngest(t, db, evs[1000:2000], 37)
	require.NoError(t, db.Flush())
	osIngest(t, db, evs[2000:], 37)

	latest := osRead(t, db, "latest", StreamStart{Kind: StartEarliest})
	require.Len(t, latest, len(evs))
	var prev string
	for i, line := range latest {
		var r map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &r))
		off := r["offset"].(string)
		require.Greater(t, off, prev, "offsets increase")
		prev = off
		assert.Equal(t, evs[i].user, r["entity_keys"].(map[string]any)["user_id"])
		assert.Equal(t, evs[i].ts.Format(time.RFC3339Nano), r["feature_timestamp"])
		fv := r["feature_values"].(map[string]any)
		assert.Equal(t, fmt.Sprint(evs[i].amount), fv["amount"])
		assert.Equal(t, evs[i].note, fv["note"])
		assert.Equal(t, "os/latest@1", r["feature_view_id"])
	}

	sums := osRead(t, db, "sums", StreamStart{Kind: StartEarliest})
	var kept []int
	for i, e := range evs {
		if e.amount >= 0 {
			kept = append(kept, i)
		}
	}
	require.Len(t, sums, len(kept))
	for j, i := range kept {
		var r struct {
			FeatureValues map[string]*string `json:"feature_values"`
		}
		require.NoError(t, json.Unmarshal([]byte(sums[j]), &r))
		want := osModel(evs[:i+1], evs[i].user, evs[i].ts.Add(time.Nanosecond))
		for k, v := range want {
			got := r.FeatureValues[k]
			require.NotNil(t, got, "record %d: %s in %s", j, k, sums[j])
			require.Equal(t, v, *got, "record %d (event %d), feature %s", j, i, k)
		}
	}

	// Every start gives a suffix of the same records.
	for _, j := range []int{0, 1, len(sums) / 2, len(sums) - 1} {
		var r struct{ Offset string }
		require.NoError(t, json.Unmarshal([]byte(sums[j]), &r))
		off, err := ParseStreamOffset(r.Offset)
		require.NoError(t, err)
		assert.Equal(t, sums[j:], osRead(t, db, "sums", StreamStart{Kind: StartAt, Offset: off}))
		assert.Equal(t, slices.Clip(sums[j+1:]), append([]string{}, osRead(t, db, "sums", StreamStart{Kind: StartAfter, Offset: off})...))
	}
	assert.Empty(t, osRead(t, db, "sums", StreamStart{Kind: StartLatest}))
}

// osModel computes the sums view's features for user as of t over evs
// (the events logged so far), in the order the engine adds them: event
// time, then log position.
func osModel(evs []osEvent, user string, t time.Time) map[string]string {
	type ev struct {
		osEvent
		pos int
	}
	var mine []ev
	for i, e := range evs {
		if e.user == user && e.amount >= 0 {
			mine = append(mine, ev{e, i})
		}
	}
	slices.SortStableFunc(mine, func(a, b ev) int { return a.ts.Compare(b.ts) })
	in := func(e ev, w time.Duration) bool { return !e.ts.Before(t.Add(-w)) && e.ts.Before(t) }
	var sum1h, c1h, total, ct float64 // compensated sums, as the engine's (Neumaier)
	add := func(s, c, x float64) (float64, float64) {
		t := s + x
		if math.Abs(s) >= math.Abs(x) {
			return t, c + ((s - t) + x)
		}
		return t, c + ((x - t) + s)
	}
	var n24 int64
	maxv := ""
	var notes []string
	for _, e := range mine {
		if in(e, time.Hour) {
			sum1h, c1h = add(sum1h, c1h, e.amount)
		}
		if in(e, 24*time.Hour) {
			n24++
			notes = append(slices.DeleteFunc(notes, func(s string) bool { return s == e.note }), e.note)
		}
		if in(e, 6*time.Hour) && (maxv == "" || e.amount > mustFloat(maxv)) {
			maxv = fmt.Sprint(e.amount)
		}
		if e.ts.Before(t) {
			total, ct = add(total, ct, e.amount)
		}
	}
	out := map[string]string{"amount_sum_1h_continuous": fmt.Sprint(sum1h + c1h), "amount_count_1d_continuous": fmt.Sprint(n24), "total": fmt.Sprint(total + ct)}
	if maxv != "" {
		out["amount_max"] = maxv
	}
	if len(notes) > 3 { // oldest first, the 3 latest (SPEC §3)
		notes = notes[len(notes)-3:]
	}
	b, _ := json.Marshal(notes)
	out["note_last_distinct_3_1d_continuous"] = string(b)
	return out
}

func mustFloat(s string) float64 {
	var f float64
	fmt.Sscan(s, &f)
	return f
}

// TestOutputStreamLive: a consumer following the stream while several
// clients ingest concurrently sees the records of the log in log order,
// each once, with the values a replay computes afterwards.
func TestOutputStreamLive(t *testing.T) {
	db := osOpen(t, t.TempDir(), nil)
	defer db.Close()
	_, err := db.ApplyWait(context.Background(), "os.yaml", []byte(osRepo))
	require.NoError(t, err)
	s, err := db.OpenOutputStream("os", "sums", StreamStart{Kind: StartLatest})
	require.NoError(t, err)
	defer s.Close()
	evs := osEvents(2, 4000, 30)
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			osIngest(t, db, evs[c*1000:(c+1)*1000], 1+c*7)
		}()
	}
	var live []string
	var buf []OutputRecord
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	idle := 0
	for idle < 3 {
		buf, err = s.Next(context.Background(), buf, 64, 100*time.Millisecond)
		require.NoError(t, err)
		for i := range buf {
			live = append(live, string(buf[i].AppendJSON(nil)))
		}
		select {
		case <-done:
			if len(buf) == 0 {
				idle++
			}
		default:
		}
	}
	replay := osRead(t, db, "sums", StreamStart{Kind: StartEarliest})
	require.Equal(t, len(replay), len(live))
	for i := range live {
		require.Equal(t, replay[i], live[i], "record %d", i)
	}
}

// TestOutputStreamErrors: unknown workspace or view, a view without an
// output stream, a malformed offset.
func TestOutputStreamErrors(t *testing.T) {
	db := osOpen(t, t.TempDir(), nil)
	defer db.Close()
	_, err := db.ApplyWait(context.Background(), "os.yaml", []byte(osRepo))
	require.NoError(t, err)
	for _, c := range []struct {
		ws, view string
		code     Code
		msg      string
	}{
		{"nope", "sums", CodeNotFound, `workspace "nope" not found`},
		{"os", "nope", CodeNotFound, `feature view "nope" not found`},
		{"os", "quiet", CodeNotFound, "has no output stream"},
	} {
		_, err := db.OpenOutputStream(c.ws, c.view, StreamStart{})
		var e *Error
		require.True(t, errors.As(err, &e), "%v", err)
		assert.Equal(t, c.code, e.Code)
		assert.Contains(t, err.Error(), c.msg)
	}
	for _, bad := range []string{"", "12", "0000000000000000000000000", "00000000000000000000000G", "000000000000000000000000", "ABCDEF0000000001000000000"[:24]} {
		_, err := ParseStreamOffset(bad)
		require.Error(t, err, bad)
		assert.Equal(t, CodeInvalidArgument, CodeOf(err), bad)
		assert.True(t, strings.Contains(err.Error(), "not valid"), err.Error())
	}
	off, err := ParseStreamOffset("00000000000000070000000a")
	require.NoError(t, err)
	assert.Equal(t, StreamOffset{Seq: 7, Idx: 10}, off)
	assert.Equal(t, "00000000000000070000000a", off.String())
}

// TestOutputStreamStableAcrossFlushesAndReopen: the stream from earliest
// is the same, byte for byte, while the records live in the memtable,
// after flushes spread them over segments, after a full compaction, and
// after the node is closed and opened again: an aggregate record's values
// depend only on the log, never on where its events are stored.
func TestOutputStreamStableAcrossFlushesAndReopen(t *testing.T) {
	dir := t.TempDir()
	db := osOpen(t, dir, nil)
	_, err := db.ApplyWait(context.Background(), "os.yaml", []byte(osRepo))
	require.NoError(t, err)
	evs := osEvents(3, 3000, 25)
	osIngest(t, db, evs[:1000], 50)
	require.NoError(t, db.Flush())
	osIngest(t, db, evs[1000:2000], 3)
	require.NoError(t, db.Flush())
	osIngest(t, db, evs[2000:], 200)
	want := map[string][]string{}
	for _, v := range []string{"latest", "sums"} {
		want[v] = osRead(t, db, v, StreamStart{Kind: StartEarliest})
		require.NotEmpty(t, want[v])
	}
	check := func(stage string) {
		for v, w := range want {
			got := osRead(t, db, v, StreamStart{Kind: StartEarliest})
			require.Equal(t, len(w), len(got), "%s: %s", stage, v)
			for i := range w {
				require.Equal(t, w[i], got[i], "%s: %s record %d", stage, v, i)
			}
		}
	}
	require.NoError(t, db.Flush())
	check("after a flush")
	require.NoError(t, db.CompactAll())
	check("after compaction")
	require.NoError(t, db.Close())
	db = osOpen(t, dir, nil)
	defer db.Close()
	check("after reopening")
}

// TestOutputStreamAfterDeletion: a deletion publishes nothing; afterwards
// the stream holds no record of the deleted keys, and every other
// record is as before, values included (a key's values depend only on
// its own records).
func TestOutputStreamAfterDeletion(t *testing.T) {
	db := osOpen(t, t.TempDir(), nil)
	defer db.Close()
	_, err := db.ApplyWait(context.Background(), "os.yaml", []byte(osRepo))
	require.NoError(t, err)
	evs := osEvents(4, 2000, 20)
	osIngest(t, db, evs, 40)
	require.NoError(t, db.Flush())
	before := osRead(t, db, "sums", StreamStart{Kind: StartEarliest})
	live, err := db.OpenOutputStream("os", "sums", StreamStart{Kind: StartLatest})
	require.NoError(t, err)
	defer live.Close()
	for _, online := range []bool{false, true} { // online-only first (the log keeps the rows), then everywhere
		j, err := db.DeleteKeys("os", "sums", DeleteKeysRequest{Keys: []map[string]any{{"user_id": "u001"}, {"user_id": "u002"}}, Online: true, Offline: online})
		require.NoError(t, err)
		j, err = db.WaitJob(context.Background(), "os", j.ID)
		require.NoError(t, err)
		require.Equal(t, JobSuccess, j.State, "%v", j.Error)
		after := osRead(t, db, "sums", StreamStart{Kind: StartEarliest})
		var kept []string
		for _, r := range before {
			if !strings.Contains(r, `"user_id":"u001"`) && !strings.Contains(r, `"user_id":"u002"`) {
				kept = append(kept, r)
			}
		}
		require.Less(t, len(kept), len(before), "the keys had records")
		require.Equal(t, kept, after, "offline: %v", online)
	}
	recs, err := live.Next(context.Background(), nil, 10, 100*time.Millisecond)
	require.NoError(t, err)
	assert.Empty(t, recs, "a deletion publishes nothing")
}

// TestOutputStreamAcrossNewVersion: an apply that gives the streaming
// view a new version (built by a backfill while ingest goes on) loses no
// record of a live stream, and the records after it come from the new
// version.
func TestOutputStreamAcrossNewVersion(t *testing.T) {
	db := osOpen(t, t.TempDir(), nil)
	defer db.Close()
	_, err := db.ApplyWait(context.Background(), "os.yaml", []byte(osRepo))
	require.NoError(t, err)
	s, err := db.OpenOutputStream("os", "sums", StreamStart{Kind: StartEarliest})
	require.NoError(t, err)
	defer s.Close()
	evs := osEvents(5, 3000, 30)
	osIngest(t, db, evs[:1000], 50)
	res, err := db.Apply("os.yaml", []byte(strings.Replace(osRepo, "function: max, window: 6h", "function: max, window: 7h", 1)))
	require.NoError(t, err)
	require.NotEmpty(t, res.Jobs, "a new version, built by a backfill")
	osIngest(t, db, evs[1000:2000], 50) // while it may still run
	require.NoError(t, db.WaitJobs(context.Background(), res.Jobs))
	osIngest(t, db, evs[2000:], 50)
	want := 0
	for _, e := range evs {
		if e.amount >= 0 {
			want++
		}
	}
	var got []OutputRecord
	var buf []OutputRecord
	for {
		buf, err = s.Next(context.Background(), buf, 500, 100*time.Millisecond)
		require.NoError(t, err)
		if len(buf) == 0 {
			break
		}
		got = append(got, buf...)
	}
	require.Len(t, got, want)
	for i := 1; i < len(got); i++ {
		require.True(t, got[i-1].Offset.Less(got[i].Offset), "record %d", i)
	}
	last := got[len(got)-1]
	assert.Equal(t, "os/sums@2", last.FeatureViewID)
}
