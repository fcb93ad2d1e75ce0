package engine_test

// run (SPEC §6) on a hand-written repo with a transform, a filter, a
// continuous, an interval and an attribute view, and a batch source:
// mock rows give what ingesting them into a fresh DB gives (in every
// spelling: Go values, CSV text, raw JSON); batch files and the log count
// an event once; nothing is written at any level; bad requests fail with
// the right code and a message naming the problem.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

const runRepo = `workspace: shop
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: orders
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Int64}
      - {name: price, type: Float64}
      - {name: note, type: String}
{{BATCH}}
  - name: visits
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
feature_views:
  - name: spend
    source: orders
    entities: [user]
    timestamp_field: ts
    transform:
      columns:
        total: "amount * price"
      filter: "amount > 0"
    features:
      - aggregate: {input: amount, function: count, window: 1h}
      - aggregate: {input: amount, function: sum, window: 6h}
      - aggregate: {input: total, function: mean, window: 6h}
      - aggregate: {input: note, function: last_n, window: 1d, n: 3}
      - aggregate: {input: amount, function: max, window: lifetime}
  - name: spend_hourly
    source: orders
    entities: [user]
    timestamp_field: ts
    aggregation_interval: 1h
    features:
      - aggregate: {input: amount, function: sum, window: 3h}
      - aggregate: {input: note, function: last, window: 2h}
  - name: last_order
    source: orders
    entities: [user]
    timestamp_field: ts
    ttl: 3h
    features:
      - attribute: {name: amount}
      - attribute: {name: note}
  - name: visit_count
    source: visits
    entities: [user]
    timestamp_field: ts
    features:
      - aggregate: {input: ts, function: count, window: 1d}
feature_services:
  - name: shop_fs
    features: [spend, spend_hourly, last_order]
`

var runNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// runOpen opens a DB at dir whose clock is runNow, with repoText applied
// from repoFile.
func runOpen(t *testing.T, dir, repoFile, repoText string) *engine.DB {
	t.Helper()
	db, err := engine.Open(engine.Options{Dir: dir, Now: func() time.Time { return runNow }, NoSync: true,
		Logger: slog.New(slog.DiscardHandler), DisableAutoFlush: true})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	_, err = db.ApplyWait(context.Background(), repoFile, []byte(repoText))
	require.NoError(t, err)
	return db
}

func runRepoText(batch string) string { return strings.Replace(runRepo, "{{BATCH}}", batch, 1) }

// runOrders returns n orders of the day before runNow, in random order
// (late and out of order), some with null or non-positive amounts (the
// filter drops them), some with equal times.
func runOrders(seed uint64, n int) []map[string]any {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]map[string]any, n)
	for i := range out {
		ts := runNow.Add(-time.Duration(rng.Int64N(int64(24 * time.Hour)))).Truncate(time.Millisecond)
		if i > 0 && rng.IntN(10) == 0 {
			ts = out[i-1]["ts"].(time.Time) // a tie
		}
		rec := map[string]any{"user_id": fmt.Sprintf("u%d", rng.IntN(12)), "ts": ts,
			"amount": rng.Int64N(50) - 5, "price": float64(rng.IntN(1000)) / 8, "note": fmt.Sprintf("n%d", rng.IntN(20))}
		if rng.IntN(15) == 0 {
			delete(rec, "amount")
		}
		out[i] = rec
	}
	return out
}

func runIngest(t *testing.T, db *engine.DB, src string, recs []map[string]any) {
	t.Helper()
	for len(recs) > 0 {
		n := min(len(recs), 50)
		_, err := db.Ingest(&engine.IngestRequest{Workspace: "shop", Records: map[string][]map[string]any{src: recs[:n]}})
		require.NoError(t, err)
		recs = recs[n:]
	}
}

// runAll runs every view of the repo at every level over [start, end);
// with anyOrder, disabled rows are sorted (their order is the input's).
func runAll(t *testing.T, db *engine.DB, start, end time.Time, mocks map[string][]map[string]any, anyOrder bool) map[string]string {
	out := map[string]string{}
	for _, view := range []string{"spend", "spend_hourly", "last_order"} {
		for _, lv := range runLevels {
			rows := runView(t, db, "shop", view, engine.RunRequest{Start: start, End: end, Level: lv, MockSources: mocks})
			text := rows.text()
			if anyOrder && lv == engine.RunDisabled {
				lines := strings.Split(text, "\n")
				slices.Sort(lines[1:])
				text = strings.Join(lines, "\n")
			}
			out[view+" "+string(lv)] = text
		}
	}
	return out
}

// runSame reports the first line where two answers differ.
func runSame(t *testing.T, want, got, what string) {
	t.Helper()
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		wl, gl := "(none)", "(none)"
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			t.Errorf("%s: line %d of %d differs:\n want %s\n got  %s", what, i+1, len(w), wl, gl)
			return
		}
	}
}

// TestRunMockRows: mock rows give what the same rows ingested into a fresh
// DB and read from its log give, at every level, whatever the DB running
// them holds; rows outside [start, end) are ignored; the rows may be Go
// values, CSV text or raw JSON.
func TestRunMockRows(t *testing.T) {
	orders := runOrders(1, 400)
	start, end := runNow.Add(-20*time.Hour), runNow.Add(-2*time.Hour)

	fresh := runOpen(t, t.TempDir(), "shop.yaml", runRepoText(""))
	runIngest(t, fresh, "orders", orders)
	want := runAll(t, fresh, start, end, nil, false)

	busy := runOpen(t, t.TempDir(), "shop.yaml", runRepoText(""))
	runIngest(t, busy, "orders", runOrders(2, 300)) // the log holds other orders: mocks replace them
	require.NoError(t, busy.Flush())
	runIngest(t, busy, "orders", runOrders(3, 100))
	spellings := map[string][]map[string]any{"go": orders, "csv": runAsText(orders), "json": runAsJSON(t, orders)}
	for name, rows := range spellings {
		got := runAll(t, busy, start, end, map[string][]map[string]any{"orders": rows}, false)
		for k := range want {
			runSame(t, want[k], got[k], fmt.Sprintf("%s, mock rows as %s", k, name))
		}
	}
	for k, text := range want {
		assert.Greater(t, strings.Count(text, "\n"), 2, "%s answered no rows: the test would prove nothing", k)
	}
	runFullIsOnline(t, fresh, start, end)
}

// runFullIsOnline: for a start before every row, full equals the online
// read as_of end.
func runFullIsOnline(t *testing.T, db *engine.DB, start, end time.Time) {
	full := runView(t, db, "shop", "spend", engine.RunRequest{Start: schema.MinTimestamp, End: end, Level: engine.RunFull})
	require.NotEmpty(t, full.rows)
	for i := range full.rows {
		row := full.named(i)
		vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "shop", Service: "shop_fs",
			JoinKeys: map[string]any{"user_id": row["user_id"].S}, AsOf: end})
		require.NoError(t, err)
		for _, f := range vec.Features {
			name, ok := strings.CutPrefix(f.Name, "spend.")
			if ok {
				assert.Equal(t, runFmt(f.Value), runFmt(row[name]), "user %s, %s", row["user_id"].S, f.Name)
			}
		}
	}
}

// runAsText spells every value as CSV text.
func runAsText(recs []map[string]any) []map[string]any {
	out := make([]map[string]any, len(recs))
	for i, rec := range recs {
		out[i] = map[string]any{}
		for k, v := range rec {
			switch x := v.(type) {
			case time.Time:
				out[i][k] = x.Format(time.RFC3339Nano)
			case int64:
				out[i][k] = strconv.FormatInt(x, 10)
			case float64:
				out[i][k] = strconv.FormatFloat(x, 'g', -1, 64)
			default:
				out[i][k] = v
			}
		}
	}
	return out
}

// runAsJSON spells every value as raw JSON, as the HTTP API passes them.
func runAsJSON(t *testing.T, recs []map[string]any) []map[string]any {
	out := make([]map[string]any, len(recs))
	for i, rec := range recs {
		out[i] = map[string]any{}
		for k, v := range rec {
			b, err := json.Marshal(v)
			require.NoError(t, err)
			out[i][k] = jsontext.Value(b)
		}
	}
	return out
}

// TestRunBatch: a source's batch rows and pushed records together, an
// event in both counted once, give what all of them as mock rows give.
func TestRunBatch(t *testing.T) {
	orders := runOrders(4, 300)
	var batch, pushed []map[string]any
	for i, o := range orders {
		switch i % 5 {
		case 0, 1:
			batch = append(batch, o)
		case 2:
			batch, pushed = append(batch, o), append(pushed, o) // the same event in both
		default:
			pushed = append(pushed, o)
		}
	}
	dir := t.TempDir()
	runWriteJSONL(t, filepath.Join(dir, "orders.jsonl"), batch)
	text := runRepoText("    batch:\n      uri: orders.jsonl\n      format: jsonl\n      timestamp_field: ts\n")
	db := runOpen(t, filepath.Join(dir, "data"), filepath.Join(dir, "shop.yaml"), text)
	runIngest(t, db, "orders", pushed)
	start, end := runNow.Add(-30*time.Hour), runNow
	got := runAll(t, db, start, end, nil, true)
	want := runAll(t, db, start, end, map[string][]map[string]any{"orders": orders}, true)
	for k := range want {
		runSame(t, want[k], got[k], k+": log plus batch files vs all the rows as mock rows")
	}
	disabled := runView(t, db, "shop", "spend", engine.RunRequest{Start: start, End: end, Level: engine.RunDisabled})
	kept := 0
	for _, o := range orders {
		if a, ok := o["amount"].(int64); ok && a > 0 {
			kept++
		}
	}
	assert.Len(t, disabled.rows, kept, "disabled: one row per order the filter keeps")
}

func runWriteJSONL(t *testing.T, path string, recs []map[string]any) {
	var b strings.Builder
	for _, r := range recs {
		line, err := json.Marshal(r)
		require.NoError(t, err)
		b.Write(append(line, '\n'))
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
}

// runListing lists every file under dir: name, size, mode, mtime and a
// hash of its bytes.
func runListing(t *testing.T, dir string) string {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		sum := ""
		if !d.IsDir() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			h := sha256.Sum256(data)
			sum = hex.EncodeToString(h[:])
		}
		fmt.Fprintf(&b, "%s %d %v %d %s\n", path, info.Size(), info.Mode(), info.ModTime().UnixNano(), sum)
		return nil
	})
	require.NoError(t, err)
	return b.String()
}

// TestRunWritesNothing: at every level, with and without mock rows, the
// log's last entry, its append counters and every file of the data
// directory (names, sizes, modes, mtimes, bytes) are as before the run.
func TestRunWritesNothing(t *testing.T) {
	dir := t.TempDir()
	runWriteJSONL(t, filepath.Join(dir, "orders.jsonl"), runOrders(5, 100))
	text := runRepoText("    batch:\n      uri: orders.jsonl\n      format: jsonl\n      timestamp_field: ts\n")
	data := filepath.Join(dir, "data")
	db := runOpen(t, data, filepath.Join(dir, "shop.yaml"), text)
	runIngest(t, db, "orders", runOrders(6, 200))
	require.NoError(t, db.Flush()) // segments and a manifest too
	runIngest(t, db, "orders", runOrders(7, 50))
	time.Sleep(10 * time.Millisecond) // an mtime a write would move is then distinguishable
	seq, stats, listing := db.LastSeq(), db.LogStats(), runListing(t, data)
	require.Positive(t, seq)
	mocks := map[string][]map[string]any{"orders": runOrders(8, 50)}
	for _, m := range []map[string][]map[string]any{nil, mocks} {
		for _, view := range []string{"spend", "spend_hourly", "last_order"} {
			for _, lv := range runLevels {
				req := engine.RunRequest{Start: runNow.Add(-48 * time.Hour), End: runNow, Level: lv, MockSources: m}
				rows := runView(t, db, "shop", view, req)
				require.NotEmpty(t, rows.rows, "%s %s answered nothing", view, lv)
				where := fmt.Sprintf("%s %s, mock rows: %v", view, lv, m != nil)
				require.Equal(t, seq, db.LastSeq(), "%s: the log's last entry moved", where)
				require.Equal(t, stats, db.LogStats(), "%s: the log's counters moved", where)
				require.Equal(t, listing, runListing(t, data), "%s: the data directory changed", where)
			}
		}
	}
}

// TestRunErrors: each bad request fails with its code and a message
// naming the problem, before anything is streamed.
func TestRunErrors(t *testing.T) {
	db := runOpen(t, t.TempDir(), "shop.yaml", runRepoText(""))
	runIngest(t, db, "orders", runOrders(9, 20))
	start, end := runNow.Add(-time.Hour), runNow
	mock := func(rows ...map[string]any) map[string][]map[string]any {
		return map[string][]map[string]any{"orders": rows}
	}
	good := map[string]any{"user_id": "u1", "ts": runNow.Add(-time.Minute), "amount": int64(3)}
	cases := []struct {
		name, ws, view string
		req            engine.RunRequest
		code           engine.Code
		msg            []string
	}{
		{"unknown level", "shop", "spend", engine.RunRequest{Start: start, End: end, Level: "tiles"}, engine.CodeInvalidArgument,
			[]string{`aggregation_level "tiles"`, "disabled, partial or full"}},
		{"no level", "shop", "spend", engine.RunRequest{Start: start, End: end}, engine.CodeInvalidArgument, []string{`aggregation_level ""`}},
		{"end equals start", "shop", "spend", engine.RunRequest{Start: start, End: start, Level: engine.RunFull}, engine.CodeInvalidArgument,
			[]string{"end_time", "must be after start_time"}},
		{"end before start", "shop", "spend", engine.RunRequest{Start: end, End: start, Level: engine.RunFull}, engine.CodeInvalidArgument,
			[]string{"end_time", "must be after start_time"}},
		{"no start", "shop", "spend", engine.RunRequest{End: end, Level: engine.RunFull}, engine.CodeInvalidArgument, []string{"start_time is required"}},
		{"unknown workspace", "nope", "spend", engine.RunRequest{Start: start, End: end, Level: engine.RunFull}, engine.CodeNotFound, []string{`"nope"`}},
		{"unknown view", "shop", "nope", engine.RunRequest{Start: start, End: end, Level: engine.RunFull}, engine.CodeNotFound,
			[]string{`feature view "nope" not found`}},
		{"mock of another source", "shop", "spend", engine.RunRequest{Start: start, End: end, Level: engine.RunFull,
			MockSources: map[string][]map[string]any{"visits": {good}}}, engine.CodeInvalidArgument,
			[]string{`mock_sources names "visits"`, `its source is "orders"`}},
		{"mock of no source", "shop", "spend", engine.RunRequest{Start: start, End: end, Level: engine.RunFull,
			MockSources: map[string][]map[string]any{"ordres": {good}}}, engine.CodeInvalidArgument, []string{`"ordres"`}},
		{"mock row of the wrong type", "shop", "spend", engine.RunRequest{Start: start, End: end, Level: engine.RunFull,
			MockSources: mock(good, map[string]any{"user_id": "u1", "ts": runNow.Add(-time.Minute), "amount": "many"})},
			engine.CodeInvalidArgument, []string{"row 1", `column "amount"`, `"many" is not an integer`}},
		{"mock row with an unknown column", "shop", "spend", engine.RunRequest{Start: start, End: end, Level: engine.RunDisabled,
			MockSources: mock(map[string]any{"user_id": "u1", "ts": runNow, "amout": 1}, good)},
			engine.CodeInvalidArgument, []string{"row 0", `unknown column "amout"`, `did you mean "amount"`}},
		{"mock row without its join key", "shop", "spend", engine.RunRequest{Start: start, End: end, Level: engine.RunPartial,
			MockSources: mock(good, good, map[string]any{"ts": runNow, "amount": 1})},
			engine.CodeInvalidArgument, []string{"row 2", `join key "user_id" is missing`}},
		{"mock row with a bad timestamp", "shop", "spend", engine.RunRequest{Start: start, End: end, Level: engine.RunFull,
			MockSources: mock(map[string]any{"user_id": "u1", "ts": "yesterday"})},
			engine.CodeInvalidArgument, []string{"row 0", `column "ts"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := &runRows{}
			err := db.Run(context.Background(), c.ws, c.view, &c.req, out)
			require.Error(t, err)
			assert.Equal(t, c.code, engine.CodeOf(err), "code of %v", err)
			for _, m := range c.msg {
				assert.Contains(t, err.Error(), m)
			}
			assert.Nil(t, out.cols, "Begin was called before the error")
		})
	}
}

// TestRunEmptyMock: mock rows all outside the range, or none, answer no
// rows but the columns; an empty mock_sources map reads the log.
func TestRunEmptyMock(t *testing.T) {
	db := runOpen(t, t.TempDir(), "shop.yaml", runRepoText(""))
	runIngest(t, db, "orders", runOrders(10, 30))
	start, end := runNow.Add(-48*time.Hour), runNow
	outside := map[string]any{"user_id": "u1", "ts": end, "amount": int64(3)} // end is excluded
	for _, m := range []map[string][]map[string]any{{"orders": nil}, {"orders": {outside}}} {
		for _, lv := range runLevels {
			rows := runView(t, db, "shop", "spend", engine.RunRequest{Start: start, End: end, Level: lv, MockSources: m})
			assert.NotEmpty(t, rows.cols)
			assert.Empty(t, rows.rows, "%s with mock rows %v", lv, m)
		}
	}
	rows := runView(t, db, "shop", "spend", engine.RunRequest{Start: start, End: end, Level: engine.RunFull,
		MockSources: map[string][]map[string]any{}})
	assert.NotEmpty(t, rows.rows, "an empty mock_sources reads the log")
	assert.True(t, slices.Contains(rows.names(), "amount_count_1h_continuous"), "columns %v", rows.names())
}

// TestRunOwnsKey: a DB with OwnsKey (cluster mode: one partition's) runs
// on the rows of its own keys only — its log's, and the batch files'
// whose key it owns, though the files hold every partition's rows — so
// that the partitions' answers, put together, are the answer of one DB
// holding every row: at every level the same rows (in key order for
// partial and full), each partition's rows of its keys only.
func TestRunOwnsKey(t *testing.T) {
	orders := runOrders(7, 300)
	var batch, pushed []map[string]any
	for i, o := range orders {
		if i%3 == 0 {
			batch = append(batch, o)
		} else {
			pushed = append(pushed, o)
		}
	}
	dir := t.TempDir()
	runWriteJSONL(t, filepath.Join(dir, "orders.jsonl"), batch)
	text := runRepoText("    batch:\n      uri: orders.jsonl\n      format: jsonl\n      timestamp_field: ts\n")
	repoFile := filepath.Join(dir, "shop.yaml")
	whole := runOpen(t, filepath.Join(dir, "whole"), repoFile, text)
	runIngest(t, whole, "orders", pushed)
	const parts = 3
	partOf := func(user string) int { n, _ := strconv.Atoi(strings.TrimPrefix(user, "u")); return n % parts }
	var dbs []*engine.DB
	for p := range parts {
		db, err := engine.Open(engine.Options{Dir: filepath.Join(dir, fmt.Sprint("part", p)), Now: func() time.Time { return runNow }, NoSync: true,
			Logger: slog.New(slog.DiscardHandler), DisableAutoFlush: true,
			OwnsKey: func(key string) bool { return partOf(key) == p }})
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		_, err = db.ApplyWait(context.Background(), repoFile, []byte(text))
		require.NoError(t, err)
		var mine []map[string]any
		for _, o := range pushed {
			if partOf(o["user_id"].(string)) == p {
				mine = append(mine, o)
			}
		}
		runIngest(t, db, "orders", mine)
		dbs = append(dbs, db)
	}
	start, end := runNow.Add(-30*time.Hour), runNow
	for _, view := range []string{"spend", "spend_hourly", "last_order"} {
		for _, lv := range runLevels {
			req := engine.RunRequest{Start: start, End: end, Level: lv}
			want := runLines(runView(t, whole, "shop", view, req))
			got := want[:1] // the columns
			for p, db := range dbs {
				rows := runView(t, db, "shop", view, req)
				lines := runLines(rows)
				require.Equal(t, want[0], lines[0])
				col := slices.Index(rows.names(), "user_id")
				require.GreaterOrEqual(t, col, 0)
				for i, l := range lines[1:] {
					user := strings.Trim(strings.TrimPrefix(runFmt(rows.rows[i][col]), "String:"), `"`)
					require.Equal(t, p, partOf(user), "%s %s: partition %d answers a row of %s: %s", view, lv, p, user, l)
				}
				got = append(got, lines[1:]...)
			}
			require.Greater(t, len(want), 10)
			slices.Sort(want[1:])
			slices.Sort(got[1:])
			runSame(t, strings.Join(want, "\n"), strings.Join(got, "\n"), fmt.Sprintf("%s %s: the partitions' rows", view, lv))
		}
	}
}

// runLines returns the columns, then the rows, one line each.
func runLines(r *runRows) []string {
	return strings.Split(strings.TrimSuffix(r.text(), "\n"), "\n")
}
