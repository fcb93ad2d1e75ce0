package engine_test

// Historical retrieval's error cases and streaming (SPEC §5), and the
// spines, sinks and comparisons the differential test of historical
// retrieval over generated repos (gen_hist_test.go) shares with them.
//
//   - TestHistoricalErrors: malformed spines and requests (SpineError with
//     the 1-based row, error codes), and the sink's and context's errors.
//   - TestHistoricalStreaming: a 200k-row spine is answered while it is
//     still being read (bounded memory), and spines of exactly the
//     engine's chunk size ±1 come back whole and in order.
//
//	go test ./engine -run 'TestHistorical(Errors|Streaming)'
//	go test ./engine -run TestHistoricalErrors -long   # the bad-row case past a 1M-row chunk too

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// ---------------------------------------------------------------------
// Spines, sinks and comparisons.

// histSpine is a Spine over rows held in memory. pos counts the rows read.
type histSpine struct {
	cols []string
	rows [][]any
	pos  int
	// failAt, when positive, makes Next return failErr instead of the
	// row with that 1-based number.
	failAt  int
	failErr error
}

func (s *histSpine) Columns() []string { return s.cols }

func (s *histSpine) Next() ([]any, error) {
	if s.failAt > 0 && s.pos+1 == s.failAt {
		return nil, s.failErr
	}
	if s.pos >= len(s.rows) {
		return nil, io.EOF
	}
	s.pos++
	return s.rows[s.pos-1], nil
}

// histSink is a HistoricalSink that hands each row, with its 0-based
// index, to a callback.
type histSink struct {
	cols   []engine.HistoricalColumn
	begins int
	rows   int
	row    func(i int, lead []any, vals []schema.Value) error
	// beginErr, when set, is returned by Begin.
	beginErr error
}

func (s *histSink) Begin(cols []engine.HistoricalColumn) error {
	s.cols = slices.Clone(cols)
	s.begins++
	return s.beginErr
}

func (s *histSink) Row(lead []any, vals []schema.Value) error {
	i := s.rows
	s.rows++
	if s.begins != 1 {
		return fmt.Errorf("row %d delivered after %d calls of Begin", i+1, s.begins)
	}
	if s.row != nil {
		return s.row(i, lead, vals)
	}
	return nil
}

// histRow is a copy of a delivered row.
type histRow struct {
	lead []any
	vals []schema.Value
}

// histCollector returns a sink that appends a deep copy of every row to
// out (the engine may reuse the slices it passes once Row returns).
func histCollector(out *[]histRow) *histSink {
	return &histSink{row: func(_ int, lead []any, vals []schema.Value) error {
		*out = append(*out, histRow{slices.Clone(lead), histClone(vals)})
		return nil
	}}
}

func histClone(vals []schema.Value) []schema.Value {
	out := make([]schema.Value, len(vals))
	for i, v := range vals {
		out[i] = v
		if v.A != nil {
			out[i].A = histClone(v.A)
		}
	}
	return out
}

// histSame reports whether a and b are the same value bit for bit: same
// kind, same float bits (so 0 and -0 differ, NaNs are compared by bits),
// same elements.
func histSame(a, b schema.Value) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case schema.Null:
		return true
	case schema.Float64, schema.Float32:
		return math.Float64bits(a.F) == math.Float64bits(b.F)
	case schema.String:
		return a.S == b.S
	case schema.Array:
		if len(a.A) != len(b.A) {
			return false
		}
		for i := range a.A {
			if !histSame(a.A[i], b.A[i]) {
				return false
			}
		}
		return true
	}
	return a.I == b.I
}

// histHash fingerprints v with the fields histSame compares. Each step
// (xor a word, multiply by an odd constant) is a bijection of the state,
// so two values that differ in one word never collide.
func histHash(h uint64, v schema.Value) uint64 {
	mix := func(h, x uint64) uint64 { return (h ^ x) * 1099511628211 }
	h = mix(h, uint64(v.Kind))
	switch v.Kind {
	case schema.Null:
	case schema.Float64, schema.Float32:
		h = mix(h, math.Float64bits(v.F))
	case schema.String:
		h = mix(h, uint64(len(v.S)))
		for i := 0; i < len(v.S); i++ {
			h = mix(h, uint64(v.S[i]))
		}
	case schema.Array:
		h = mix(h, uint64(len(v.A)))
		for _, e := range v.A {
			h = histHash(h, e)
		}
	default:
		h = mix(h, uint64(v.I))
	}
	return h
}

// histCell is what a run keeps of one feature value to compare a later
// run with: its fingerprint, and its kind and float for the features
// compared within a tolerance.
type histCell struct {
	h    uint64
	kind schema.Kind
	f    float64
}

func histCellOf(v schema.Value) histCell {
	return histCell{h: histHash(14695981039346656037, v), kind: v.Kind, f: v.F}
}

// histTsValue renders a spine time in one of the forms the engine reads:
// time.Time in UTC or another zone, RFC 3339 with Z or an offset.
func histTsValue(t int64, r *rand.Rand) any {
	tt := time.Unix(0, t)
	switch r.Intn(4) {
	case 0:
		return tt.UTC()
	case 1:
		return tt.In(time.FixedZone("IST", 5*3600+1800))
	case 2:
		return tt.UTC().Format(time.RFC3339Nano)
	}
	return tt.In(time.FixedZone("", -7*3600)).Format(time.RFC3339Nano)
}

// histExtra is a pass-through value of any JSON-like kind.
func histExtra(i int, r *rand.Rand) any {
	switch r.Intn(6) {
	case 0:
		return nil
	case 1:
		return int64(i)
	case 2:
		return float64(i) / 4
	case 3:
		return i%2 == 0
	case 4:
		return map[string]any{"i": i, "tag": "x"}
	}
	return []any{"a", i, nil}
}

// histLead checks that the i-th row delivered is the i-th spine row, as
// given.
func histLead(i int, lead []any, pristine [][]any) error {
	if i >= len(pristine) {
		return fmt.Errorf("row %d delivered; the spine has %d rows", i+1, len(pristine))
	}
	if !reflect.DeepEqual(lead, pristine[i]) {
		return fmt.Errorf("row %d: the spine columns come back as %v, want the spine row %v as given, in spine order", i+1, lead, pristine[i])
	}
	return nil
}

// histPristine copies a spine's rows (the slices, not the values) before
// the engine sees them.
func histPristine(rows [][]any) [][]any {
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = slices.Clone(r)
	}
	return out
}

// histRepo has a source kept in the offline log and one that is not
// (log_offline: false), and a service without online serving.
const histRepo = `workspace: hist
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: clicks
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: x, type: Int64}
  - name: nolog
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: x, type: Int64}
    push:
      log_offline: false
feature_views:
  - name: clicks_agg
    source: clicks
    entities: [user]
    timestamp_field: ts
    features:
      - aggregate: {input: x, function: count, window: 1h}
      - aggregate: {input: x, function: sum, window: 1d}
  - name: nolog_last
    source: nolog
    entities: [user]
    timestamp_field: ts
    features:
      - attribute: {name: x}
feature_services:
  - name: clicks_fs
    features: [clicks_agg]
  - name: training_fs
    online_serving_enabled: false
    features: [clicks_agg]
  - name: nolog_fs
    features: [nolog_last]
  - name: mixed_fs
    features: [clicks_agg, nolog_last]
`

// histSmallDB opens a DB with histRepo and a few hundred events of users
// u0..u9 over the 10 hours before now.
func histSmallDB(t *testing.T) (*engine.DB, time.Time) {
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Now: func() time.Time { return now }, NoSync: true,
		DisableAutoFlush: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	_, err = db.ApplyWait(context.Background(), "hist.yaml", []byte(histRepo))
	require.NoError(t, err)
	r := rand.New(rand.NewSource(7))
	for i := 0; i < 300; i++ {
		rec := map[string]any{"user_id": fmt.Sprintf("u%d", r.Intn(10)), "ts": now.Add(-time.Duration(r.Int63n(int64(10 * time.Hour)))), "x": r.Intn(100)}
		_, err := db.Ingest(&engine.IngestRequest{Workspace: "hist", Records: map[string][]map[string]any{"clicks": {rec}, "nolog": {rec}}})
		require.NoError(t, err)
		if i == 150 {
			require.NoError(t, db.Flush())
		}
	}
	return db, now
}

// TestHistoricalErrors: malformed spines and requests.
func TestHistoricalErrors(t *testing.T) {
	db, now := histSmallDB(t)
	ctx := context.Background()
	ts := now.Add(-time.Hour)
	ok := []any{"u1", ts}
	errIO := errors.New("disk on fire")
	big := func(n int, bad []any) [][]any { // n good rows, then bad
		rows := make([][]any, n, n+1)
		for i := range rows {
			rows[i] = []any{fmt.Sprintf("u%d", i%10), now.Add(-time.Duration(i) * time.Second)}
		}
		return append(rows, bad)
	}
	type histErrCase struct {
		name     string
		cols     []string
		rows     [][]any
		req      engine.HistoricalRequest // Workspace hist, Service clicks_fs unless set
		failAt   int                      // the spine's Next fails at this row
		failErr  error
		code     engine.Code
		row      int    // the SpineError's row (0: not a SpineError)
		written  int    // rows delivered before the error (-1: whole chunks before the bad row's)
		contains string // the message names this
	}
	cases := []histErrCase{
		{name: "missing join-key column", cols: []string{"uid", "ts"}, rows: [][]any{ok},
			code: engine.CodeInvalidArgument, contains: "user_id"},
		{name: "timestamp_key names no column", cols: []string{"user_id", "ts"}, rows: [][]any{ok},
			req: engine.HistoricalRequest{TimestampKey: "event_time"}, code: engine.CodeInvalidArgument, contains: "event_time"},
		{name: "unparsable timestamp", cols: []string{"user_id", "ts"}, rows: [][]any{ok, ok, {"u2", "yesterday"}},
			req: engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 3},
		{name: "null timestamp", cols: []string{"user_id", "ts"}, rows: [][]any{ok, {"u2", nil}},
			req: engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 2},
		{name: "number as timestamp", cols: []string{"user_id", "ts"}, rows: [][]any{{"u2", 1717243200}},
			req: engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 1},
		{name: "timestamp after 2262", cols: []string{"user_id", "ts"},
			rows: [][]any{ok, ok, ok, {"u2", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}},
			req:  engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 4},
		{name: "RFC 3339 timestamp before 1677", cols: []string{"user_id", "ts"}, rows: [][]any{ok, {"u2", "1600-01-01T00:00:00Z"}},
			req: engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 2},
		{name: "bad timestamp in the second chunk", cols: []string{"user_id", "ts"}, rows: big(1<<16+6, []any{"u1", "soon"}),
			req: engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 1<<16 + 7, written: -1},
		{name: "null join key", cols: []string{"user_id", "ts"}, rows: [][]any{ok, {nil, ts}},
			code: engine.CodeInvalidArgument, row: 2},
		{name: "array join key", cols: []string{"user_id", "ts"}, rows: [][]any{ok, ok, {[]any{"u1"}, ts}},
			code: engine.CodeInvalidArgument, row: 3},
		{name: "number for a String join key", cols: []string{"user_id", "ts"}, rows: [][]any{{7, ts}},
			code: engine.CodeInvalidArgument, row: 1},
		{name: "short row", cols: []string{"user_id", "ts", "label"}, rows: [][]any{{"u1", ts, 1}, {"u1", ts}},
			req: engine.HistoricalRequest{TimestampKey: "ts"}, code: engine.CodeInvalidArgument, row: 2},
		{name: "spine read error", cols: []string{"user_id", "ts"}, rows: [][]any{ok, ok, ok, ok, ok, ok},
			failAt: 5, failErr: errIO, code: engine.CodeInvalidArgument, row: 5},
		{name: "spine's own SpineError", cols: []string{"user_id", "ts"}, rows: [][]any{ok, ok},
			failAt: 2, failErr: &engine.SpineError{Row: 9, Err: errIO}, code: engine.CodeInvalidArgument, row: 9},
		{name: "two timestamp columns, no timestamp_key", cols: []string{"user_id", "ts", "ts2"},
			rows: [][]any{{"u1", ts, ts.Format(time.RFC3339)}}, code: engine.CodeInvalidArgument, contains: "ts2"},
		{name: "no timestamp column", cols: []string{"user_id", "label"}, rows: [][]any{{"u1", "x"}},
			code: engine.CodeInvalidArgument, contains: "timestamp_key"},
		{name: "inferred timestamp column with a bad value", cols: []string{"user_id", "ts"}, rows: [][]any{ok, {"u1", "later"}},
			code: engine.CodeInvalidArgument, contains: "timestamp_key"},
		{name: "unknown service", cols: []string{"user_id", "ts"}, rows: [][]any{ok},
			req: engine.HistoricalRequest{Service: "nope"}, code: engine.CodeNotFound, contains: "nope"},
		{name: "unknown workspace", cols: []string{"user_id", "ts"}, rows: [][]any{ok},
			req: engine.HistoricalRequest{Workspace: "nope"}, code: engine.CodeNotFound, contains: "nope"},
		{name: "from_source without the offline log", cols: []string{"user_id", "ts"}, rows: [][]any{ok},
			req: engine.HistoricalRequest{Service: "nolog_fs", FromSource: true}, code: engine.CodeInvalidArgument, contains: "log_offline"},
		{name: "from_source with one view without the offline log", cols: []string{"user_id", "ts"}, rows: [][]any{ok},
			req: engine.HistoricalRequest{Service: "mixed_fs", FromSource: true}, code: engine.CodeInvalidArgument, contains: "nolog"},
	}
	if *diffLong { // past a chunk of 1<<20 rows too
		c := cases[slices.IndexFunc(cases, func(c histErrCase) bool { return c.name == "bad timestamp in the second chunk" })]
		c.name, c.rows, c.row = c.name+" (1M rows)", big(1<<20+6, []any{"u1", "soon"}), 1<<20+7
		cases = append(cases, c)
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			req := c.req
			req.Workspace = cmp.Or(req.Workspace, "hist")
			req.Service = cmp.Or(req.Service, "clicks_fs")
			sp := &histSpine{cols: c.cols, rows: c.rows, failAt: c.failAt, failErr: c.failErr}
			sink := &histSink{row: func(i int, lead []any, _ []schema.Value) error { return histLead(i, lead, c.rows) }}
			err := db.GetFeaturesForEvents(ctx, &req, sp, sink)
			require.Error(t, err)
			t.Logf("%v", err)
			require.Equal(t, c.code, engine.CodeOf(err), "code of %v", err)
			var se *engine.SpineError
			if c.row > 0 {
				require.True(t, errors.As(err, &se), "want a *engine.SpineError, got %T %v", err, err)
				require.Equal(t, c.row, se.Row, "the row of %v", err)
				require.Contains(t, err.Error(), fmt.Sprintf("row %d", c.row))
			} else {
				require.False(t, errors.As(err, &se), "a *engine.SpineError for a request error: %v", err)
			}
			if c.failErr != nil {
				require.ErrorIs(t, err, errIO)
			}
			if c.contains != "" {
				require.Contains(t, err.Error(), c.contains)
			}
			if c.written >= 0 {
				require.Equal(t, c.written, sink.rows, "rows delivered before the error")
			} else {
				// Rows of chunks before the bad row's chunk may have been
				// delivered; those of its own chunk not.
				require.Less(t, sink.rows, c.row, "rows delivered before the error")
			}
		})
	}

	t.Run("range", func(t *testing.T) {
		from, to := now.Add(-2*time.Hour), now
		for _, c := range []struct {
			name     string
			req      engine.HistoricalRequest
			code     engine.Code
			contains string
		}{
			{"end equals start", engine.HistoricalRequest{Start: to, End: to}, engine.CodeInvalidArgument, "end_time"},
			{"end before start", engine.HistoricalRequest{Start: to, End: from}, engine.CodeInvalidArgument, "end_time"},
			{"no start", engine.HistoricalRequest{End: to}, engine.CodeInvalidArgument, "start_time"},
			{"unknown service", engine.HistoricalRequest{Service: "nope", Start: from, End: to}, engine.CodeNotFound, "nope"},
			{"from_source without the offline log", engine.HistoricalRequest{Service: "nolog_fs", FromSource: true, Start: from, End: to},
				engine.CodeInvalidArgument, "log_offline"},
			{"entity without the join key", engine.HistoricalRequest{Start: from, End: to, Entities: []map[string]any{{"user_id": "u1"}, {"uid": "u1"}}},
				engine.CodeInvalidArgument, "entities[1]"},
			{"entity with an extra key", engine.HistoricalRequest{Start: from, End: to, Entities: []map[string]any{{"user_id": "u1", "x": 1}}},
				engine.CodeInvalidArgument, "entities[0]"},
			{"entity with a null key", engine.HistoricalRequest{Start: from, End: to, Entities: []map[string]any{{"user_id": nil}}},
				engine.CodeInvalidArgument, "entities[0]"},
		} {
			req := c.req
			req.Workspace = "hist"
			req.Service = cmp.Or(req.Service, "clicks_fs")
			sink := &histSink{}
			err := db.GetFeaturesForRange(ctx, &req, sink)
			require.Error(t, err, c.name)
			require.Equal(t, c.code, engine.CodeOf(err), "%s: %v", c.name, err)
			require.Contains(t, err.Error(), c.contains, c.name)
			require.Zero(t, sink.rows, c.name)
		}
	})

	t.Run("sink_and_context_errors", func(t *testing.T) {
		errSink := errors.New("sink full")
		spine := func() *histSpine { return &histSpine{cols: []string{"user_id", "ts"}, rows: [][]any{ok, ok, ok}} }
		rng := engine.HistoricalRequest{Workspace: "hist", Service: "clicks_fs", Start: now.Add(-time.Hour), End: now}
		evReq := engine.HistoricalRequest{Workspace: "hist", Service: "clicks_fs"}
		err := db.GetFeaturesForEvents(ctx, &evReq, spine(), &histSink{beginErr: errSink})
		require.ErrorIs(t, err, errSink)
		err = db.GetFeaturesForRange(ctx, &rng, &histSink{beginErr: errSink})
		require.ErrorIs(t, err, errSink)
		failRow := &histSink{row: func(i int, _ []any, _ []schema.Value) error {
			if i == 1 {
				return errSink
			}
			return nil
		}}
		require.ErrorIs(t, db.GetFeaturesForEvents(ctx, &evReq, spine(), failRow), errSink)
		require.Equal(t, 2, failRow.rows, "rows delivered after the sink failed")
		failRow = &histSink{row: failRow.row}
		rng.Entities = []map[string]any{{"user_id": "u1"}, {"user_id": "u2"}}
		require.ErrorIs(t, db.GetFeaturesForRange(ctx, &rng, failRow), errSink)
		require.Equal(t, 2, failRow.rows, "rows delivered after the sink failed")
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		require.ErrorIs(t, db.GetFeaturesForEvents(cctx, &evReq, spine(), &histSink{}), context.Canceled)
		require.ErrorIs(t, db.GetFeaturesForRange(cctx, &rng, &histSink{}), context.Canceled)
	})

	t.Run("accepted", func(t *testing.T) {
		// An empty spine: the columns, no rows, with or without timestamp_key.
		for _, key := range []string{"", "ts"} {
			sink := &histSink{}
			err := db.GetFeaturesForEvents(ctx, &engine.HistoricalRequest{Workspace: "hist", Service: "clicks_fs", TimestampKey: key},
				&histSpine{cols: []string{"user_id", "ts"}}, sink)
			require.NoError(t, err)
			require.Equal(t, 1, sink.begins)
			require.Zero(t, sink.rows)
			require.Len(t, sink.cols, 4)
		}
		// Two timestamp columns, one named; a service without online
		// serving; both answered as an online read as of the named column.
		_, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "hist", Service: "training_fs", JoinKeys: map[string]any{"user_id": "u1"}})
		require.Error(t, err, "training_fs has online_serving_enabled: false")
		sp := &histSpine{cols: []string{"user_id", "ts", "ts2"}}
		for i := 0; i < 20; i++ {
			sp.rows = append(sp.rows, []any{fmt.Sprintf("u%d", i%12), now.Add(-time.Duration(i) * time.Hour),
				now.Add(-time.Duration(i) * 17 * time.Minute).Format(time.RFC3339Nano)})
		}
		for _, svc := range []string{"clicks_fs", "training_fs"} {
			var rows []histRow
			sp.pos = 0
			err := db.GetFeaturesForEvents(ctx, &engine.HistoricalRequest{Workspace: "hist", Service: svc, TimestampKey: "ts2"}, sp, histCollector(&rows))
			require.NoError(t, err, svc)
			require.Len(t, rows, len(sp.rows))
			for i, row := range rows {
				at, err := time.Parse(time.RFC3339Nano, sp.rows[i][2].(string))
				require.NoError(t, err)
				vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "hist", Service: "clicks_fs",
					JoinKeys: map[string]any{"user_id": sp.rows[i][0]}, AsOf: at})
				require.NoError(t, err)
				for fi, f := range vec.Features {
					require.True(t, histSame(f.Value, row.vals[fi]), "%s row %d %s: %s, online %s", svc, i+1, f.Name, aggFmt(row.vals[fi]), aggFmt(f.Value))
				}
			}
		}
	})
}

// histGenSpine makes n rows on demand and holds none: row i is user
// u<i mod 13> at t0 − i seconds (time.Time or RFC 3339 alternately),
// label i. pos counts the rows read.
type histGenSpine struct {
	n, pos int
	t0     time.Time
}

func (s *histGenSpine) Columns() []string { return []string{"user_id", "ts", "label"} }

func (s *histGenSpine) Next() ([]any, error) {
	if s.pos >= s.n {
		return nil, io.EOF
	}
	s.pos++
	return s.row(s.pos - 1), nil
}

func (s *histGenSpine) row(i int) []any {
	var ts any = s.t0.Add(-time.Duration(i) * time.Second)
	if i%2 == 1 {
		ts = ts.(time.Time).Format(time.RFC3339Nano)
	}
	return []any{fmt.Sprintf("u%d", i%13), ts, i}
}

// TestHistoricalStreaming: a 200k-row spine is answered chunk by chunk:
// the sink receives rows while the spine is still being read, and the
// engine never reads more than half the spine ahead of what it wrote.
// The join holds a chunk's rows and their feature vectors (64 bytes per
// value), so the chunk bounds its memory: with chunks of 1<<16 rows it
// reads one chunk ahead. Spines of 1<<16 rows ±1 come back whole and in
// order.
func TestHistoricalStreaming(t *testing.T) {
	db, now := histSmallDB(t)
	const total = 200_000
	sp := &histGenSpine{n: total, t0: now}
	firstAt, maxAhead := -1, 0
	kept := map[int][]schema.Value{}
	sink := &histSink{row: func(i int, lead []any, vals []schema.Value) error {
		if firstAt < 0 {
			firstAt = sp.pos
		}
		maxAhead = max(maxAhead, sp.pos-i)
		if !reflect.DeepEqual(lead, sp.row(i)) {
			return fmt.Errorf("row %d: %v, want %v", i+1, lead, sp.row(i))
		}
		if i%9973 == 0 {
			kept[i] = histClone(vals)
		}
		return nil
	}}
	var progress []int
	start := time.Now()
	err := db.GetFeaturesForEvents(context.Background(), &engine.HistoricalRequest{Workspace: "hist", Service: "clicks_fs",
		TimestampKey: "ts", ChunkRows: 1 << 16, Progress: func(n int) { progress = append(progress, n) }}, sp, sink)
	require.NoError(t, err)
	t.Logf("%d rows in %v; first row delivered after %d spine rows were read; at most %d rows read ahead; progress %v",
		total, time.Since(start).Round(time.Millisecond), firstAt, maxAhead, progress)
	require.Equal(t, total, sink.rows)
	require.Equal(t, total, sp.pos)
	require.Less(t, firstAt, total, "the sink received nothing before the whole spine was read")
	require.LessOrEqual(t, maxAhead, total/2, "the engine read too far ahead of what it wrote")
	require.True(t, slices.IsSorted(progress) && progress[len(progress)-1] == total, "progress %v", progress)
	for i, vals := range kept {
		row := sp.row(i)
		var at time.Time
		switch ts := row[1].(type) {
		case time.Time:
			at = ts
		case string:
			at, err = time.Parse(time.RFC3339Nano, ts)
			require.NoError(t, err)
		}
		vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "hist", Service: "clicks_fs",
			JoinKeys: map[string]any{"user_id": row[0]}, AsOf: at})
		require.NoError(t, err)
		for fi, f := range vec.Features {
			require.True(t, histSame(f.Value, vals[fi]), "row %d %s: %s, online %s", i+1, f.Name, aggFmt(vals[fi]), aggFmt(f.Value))
		}
	}

	for _, n := range []int{1<<16 - 1, 1 << 16, 1<<16 + 1} {
		sp := &histGenSpine{n: n, t0: now}
		sink := &histSink{row: func(i int, lead []any, _ []schema.Value) error {
			if lead[2] != i {
				return fmt.Errorf("row %d has label %v", i+1, lead[2])
			}
			return nil
		}}
		require.NoError(t, db.GetFeaturesForEvents(context.Background(), &engine.HistoricalRequest{Workspace: "hist",
			Service: "clicks_fs"}, sp, sink), "%d rows", n)
		require.Equal(t, n, sink.rows, "a spine of %d rows", n)
		require.Equal(t, 1, sink.begins)
	}
}

// TestRangeRefusesColumnNameClash: range mode adds _valid_from and
// _valid_to after the join keys; a join key of that name is refused there
// (spine mode, which adds no columns of its own, still answers).
func TestRangeRefusesColumnNameClash(t *testing.T) {
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Now: func() time.Time { return now }, NoSync: true,
		DisableAutoFlush: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ApplyWait(context.Background(), "clash.yaml", []byte(`workspace: clash
entities:
  - name: period
    join_keys: [_valid_from]
sources:
  - name: s
    schema:
      - {name: _valid_from, type: String}
      - {name: ts, type: Timestamp}
      - {name: x, type: Int64}
feature_views:
  - name: v
    source: s
    entities: [period]
    features:
      - aggregate: {input: x, function: count, window: 1d}
feature_services:
  - name: fs
    features: [v]
`))
	require.NoError(t, err)
	_, err = db.Ingest(&engine.IngestRequest{Workspace: "clash", Records: map[string][]map[string]any{
		"s": {{"_valid_from": "p1", "ts": now.Add(-time.Hour), "x": 1}}}})
	require.NoError(t, err)
	err = db.GetFeaturesForRange(context.Background(), &engine.HistoricalRequest{Workspace: "clash", Service: "fs",
		Start: now.Add(-2 * time.Hour), End: now}, &histSink{})
	require.Error(t, err)
	require.Equal(t, engine.CodeInvalidArgument, engine.CodeOf(err))
	require.Contains(t, err.Error(), `"_valid_from" is a join key`)
	var rows []histRow
	require.NoError(t, db.GetFeaturesForEvents(context.Background(), &engine.HistoricalRequest{Workspace: "clash", Service: "fs"},
		&histSpine{cols: []string{"_valid_from", "ts"}, rows: [][]any{{"p1", now}}}, histCollector(&rows)))
	require.Len(t, rows, 1)
	require.Equal(t, int64(1), rows[0].vals[0].I)
}
