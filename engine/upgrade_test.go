package engine_test

// Aggregators over different columns (issue 10). Builds before the fix
// deduplicated a view's aggregators by (function, parameters, input type)
// and forgot the input column, so sum(amount) and sum(fee) (both Float64)
// shared one state: both features served the first column's sum, online,
// historically and after rebuilds. These tests pin the fix, and check
// what happens to a data directory such a build wrote (DESIGN.md,
// "Data directories written before the shared-aggregator fix").
//
// testdata/upgrade-shared-aggs is such a directory: written by
// TestWriteUpgradeFixture at commit 50d7ac9 (the last commit with the
// bug), with
//
//	go test ./engine -run TestWriteUpgradeFixture -write-upgrade-fixture=DIR
//
// Run at a later commit, the writer produces a directory of the fixed
// layout, which TestUpgradeRebuildsSharedAggregators reports as not
// being the old layout: the fixture is not meant to be rewritten.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

var writeUpgradeFixture = flag.String("write-upgrade-fixture", "", "write the data directory of testdata/upgrade-shared-aggs to this (new) directory")

// upgradeRepo has two views with aggregators that differ only in their
// input column (cont_sums, tiles_sums), one without (plain), and an
// attribute view.
const upgradeRepo = `workspace: upgrade
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: tx
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Float64}
      - {name: fee, type: Float64}
      - {name: qty, type: Int64}
      - {name: units, type: Int64}
feature_views:
  - name: cont_sums
    source: tx
    entities: [user]
    timestamp_field: ts
    transform:
      columns:
        amount2: "amount * 2.0"
    features:
      - aggregate: {input: amount, function: sum, window: 1h}
      - aggregate: {input: amount2, function: sum, window: 1h}
      - aggregate: {input: qty, function: last, window: 1d}
      - aggregate: {input: units, function: last, window: 1d}
      - aggregate: {input: fee, function: count, window: lifetime}
  - name: tiles_sums
    source: tx
    entities: [user]
    timestamp_field: ts
    aggregation_interval: 10m
    features:
      - aggregate: {input: amount, function: sum, window: 1h}
      - aggregate: {input: fee, function: sum, window: 1h}
      - aggregate: {input: qty, function: max, window: 1d}
      - aggregate: {input: units, function: max, window: 1d}
  - name: plain
    source: tx
    entities: [user]
    timestamp_field: ts
    features:
      - aggregate: {input: amount, function: count, window: 1h}
      - aggregate: {input: qty, function: sum, window: 1d}
  - name: latest
    source: tx
    entities: [user]
    timestamp_field: ts
    features:
      - attribute: {name: amount}
      - attribute: {name: fee}
feature_services:
  - name: all
    features: [cont_sums, tiles_sums, plain, latest]
`

// upgradeNow is the fixture's clock: every event lies in the 6 hours
// before it.
var upgradeNow = time.Date(2024, 4, 1, 12, 0, 0, 0, time.UTC)

// upgradeRequests are the fixture's requests, in order: 40 requests of 5
// records over users u0..u4, in random time order; fee and units are
// never equal to amount and qty.
func upgradeRequests() []map[string][]map[string]any {
	r := rand.New(rand.NewSource(10))
	var out []map[string][]map[string]any
	for i := 0; i < 40; i++ {
		var recs []map[string]any
		for j := 0; j < 5; j++ {
			amount := float64(r.Intn(1000)) / 4
			qty := int64(r.Intn(50))
			recs = append(recs, map[string]any{"user_id": fmt.Sprintf("u%d", r.Intn(5)),
				"ts":     upgradeNow.Add(-time.Duration(r.Int63n(int64(6 * time.Hour)))),
				"amount": amount, "fee": amount/10 + 1, "qty": qty, "units": qty + 100})
		}
		out = append(out, map[string][]map[string]any{"tx": recs})
	}
	return out
}

// upgradeFlushAt is the request after which the fixture was flushed and
// compacted: the requests after it are only in the log.
const upgradeFlushAt = 30

func upgradeOpen(t *testing.T, dir string, logger *slog.Logger) *engine.DB {
	t.Helper()
	db, err := engine.Open(engine.Options{Dir: dir, Now: func() time.Time { return upgradeNow }, NoSync: true,
		DisableAutoFlush: true, Logger: logger, SegmentSize: 4 << 10})
	require.NoError(t, err)
	return db
}

// upgradeLoad applies the repo and ingests the requests into db, flushing
// twice and compacting after upgradeFlushAt of them.
func upgradeLoad(t *testing.T, db *engine.DB) {
	t.Helper()
	_, err := db.ApplyWait(context.Background(), "features.yaml", []byte(upgradeRepo))
	require.NoError(t, err)
	for i, recs := range upgradeRequests() {
		_, err := db.Ingest(&engine.IngestRequest{Workspace: "upgrade", Records: recs})
		require.NoError(t, err)
		if i == upgradeFlushAt/2 || i == upgradeFlushAt {
			require.NoError(t, db.Flush())
		}
		if i == upgradeFlushAt {
			require.NoError(t, db.CompactAll())
		}
	}
}

// TestWriteUpgradeFixture writes the fixture's data directory (see the
// file comment); it does nothing without -write-upgrade-fixture.
func TestWriteUpgradeFixture(t *testing.T) {
	if *writeUpgradeFixture == "" {
		t.Skip("-write-upgrade-fixture not set")
	}
	dir := *writeUpgradeFixture
	db := upgradeOpen(t, dir, slog.New(slog.DiscardHandler))
	upgradeLoad(t, db)
	require.NoError(t, db.Close())
	require.NoError(t, os.Remove(filepath.Join(dir, "LOCK")))
}

// TestSharedAggregatorsKeepTheirColumns: two features with the same
// function, parameters and input type over different columns serve their
// own columns' values, live, after a reopen and from segments.
func TestSharedAggregatorsKeepTheirColumns(t *testing.T) {
	dir := t.TempDir()
	db := upgradeOpen(t, dir, slog.New(slog.DiscardHandler))
	defer func() { db.Close() }()
	upgradeLoad(t, db)
	upgradeColumnsApart(t, db)
	require.NoError(t, db.Close())
	db = upgradeOpen(t, dir, slog.New(slog.DiscardHandler))
	upgradeColumnsApart(t, db)
}

// upgradeColumnsApart checks relations between the features of
// upgradeRepo that hold whatever the events: a feature over a column
// derived from another is that column's feature, transformed.
func upgradeColumnsApart(t *testing.T, db *engine.DB) {
	t.Helper()
	for _, u := range []string{"u0", "u1", "u2", "u3", "u4"} {
		vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "upgrade", Service: "all",
			JoinKeys: map[string]any{"user_id": u}})
		require.NoError(t, err)
		f := map[string]float64{}
		for _, fv := range vec.Features {
			f[fv.Name] = fv.Value.F + float64(fv.Value.I)
		}
		require.Equal(t, 2*f["cont_sums.amount_sum_1h_continuous"], f["cont_sums.amount2_sum_1h_continuous"], "user %s: sum(amount2) is twice sum(amount)", u)
		require.Equal(t, f["cont_sums.qty_last_1d_continuous"]+100, f["cont_sums.units_last_1d_continuous"], "user %s: last(units) is last(qty)+100", u)
		require.Equal(t, f["tiles_sums.qty_max_1d_10m"]+100, f["tiles_sums.units_max_1d_10m"], "user %s: max(units) is max(qty)+100", u)
		if f["tiles_sums.amount_sum_1h_10m"] != 0 {
			require.NotEqual(t, f["tiles_sums.amount_sum_1h_10m"], f["tiles_sums.fee_sum_1h_10m"], "user %s: sum(fee) is sum(amount)", u)
		}
	}
}

// upgradeFixture copies testdata/upgrade-shared-aggs to a new directory.
func upgradeFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "upgrade-shared-aggs"))))
	return dir
}

// upgradeLogs collects an engine's log records as JSON lines.
type upgradeLogs struct{ lockedBuffer }

// find returns the records whose message starts with msg.
func (l *upgradeLogs) find(t *testing.T, msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		if m, _ := rec["msg"].(string); strings.HasPrefix(m, msg) {
			out = append(out, rec)
		}
	}
	return out
}

func (l *upgradeLogs) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

// upgradeSame requires db to serve what want serves, for every user and
// several read times, online and historically: the same values, floats
// within 1e-9 (the two merged their partial sums in different orders).
func upgradeSame(t *testing.T, stage string, db, want *engine.DB) {
	t.Helper()
	var sp histSpine
	sp.cols = []string{"user_id", "ts"}
	var wantRows [][]engine.FeatureValue
	for _, u := range []string{"u0", "u1", "u2", "u3", "u4", "nobody"} {
		for _, back := range []time.Duration{0, 1, 30 * time.Minute, time.Hour + 1, 3 * time.Hour, 5*time.Hour + 17*time.Minute, 7 * time.Hour} {
			req := &engine.GetFeaturesRequest{Workspace: "upgrade", Service: "all", JoinKeys: map[string]any{"user_id": u},
				AsOf: upgradeNow.Add(-back)}
			got, err := db.GetFeatures(req)
			require.NoError(t, err)
			exp, err := want.GetFeatures(req)
			require.NoError(t, err)
			require.Len(t, got.Features, len(exp.Features))
			for i, f := range got.Features {
				w := exp.Features[i]
				where := fmt.Sprintf("%s: %s of %s as of now-%v", stage, f.Name, u, back)
				require.Equal(t, w.Name, f.Name, where)
				require.Equal(t, w.Status, f.Status, where)
				require.True(t, upgradeClose(w.Value, f.Value), "%s: %s, want %s", where, aggFmt(f.Value), aggFmt(w.Value))
			}
			sp.rows = append(sp.rows, []any{u, upgradeNow.Add(-back)})
			wantRows = append(wantRows, exp.Features)
		}
	}
	var rows []histRow
	require.NoError(t, db.GetFeaturesForEvents(context.Background(), &engine.HistoricalRequest{Workspace: "upgrade",
		Service: "all", TimestampKey: "ts"}, &sp, histCollector(&rows)))
	require.Len(t, rows, len(wantRows))
	for r, row := range rows {
		for i, v := range row.vals {
			w := wantRows[r][i]
			require.True(t, upgradeClose(w.Value, v), "%s: spine row %d (%v): %s = %s, want %s", stage, r+1, sp.rows[r], w.Name, aggFmt(v), aggFmt(w.Value))
		}
	}
}

func upgradeClose(want, got schema.Value) bool {
	if want.Kind == schema.Float64 && got.Kind == schema.Float64 {
		return math.Abs(want.F-got.F) <= 1e-9*math.Abs(want.F)
	}
	return want.Equal(got)
}

// TestUpgradeRebuildsSharedAggregators opens the directory a build with
// the shared-aggregator bug wrote: the two affected views (cont_sums,
// tiles_sums) are rebuilt from the log and checkpointed, their old
// segments deleted; the others keep their segments. Every value then
// equals a fresh directory's, and a second open rebuilds nothing.
func TestUpgradeRebuildsSharedAggregators(t *testing.T) {
	dir := upgradeFixture(t)
	oldManifest, err := os.ReadFile(filepath.Join(dir, "segments", "MANIFEST"))
	require.NoError(t, err)
	require.NotContains(t, string(oldManifest), `"layout"`, "the fixture is not a directory of a build before the fix (see upgrade_test.go)")

	var logs upgradeLogs
	db := upgradeOpen(t, dir, logs.logger())
	defer func() { db.Close() }()
	rebuilt := logs.find(t, "rebuilding view versions from the log")
	require.Len(t, rebuilt, 1, "the rebuild is announced once")
	require.Equal(t, []any{"upgrade/cont_sums@1", "upgrade/tiles_sums@1"}, rebuilt[0]["views"])
	require.Contains(t, fmt.Sprint(rebuilt[0]["why"]), "issue 10")
	opened := logs.find(t, "opened data directory")
	require.Len(t, opened, 1)
	require.Equal(t, float64(len(upgradeRequests())*5), opened[0]["records_replayed"], "the rebuild reads the whole log")

	// The old segments of the rebuilt views are gone, the others kept;
	// the manifest records every view's layout.
	_, err = os.Stat(filepath.Join(dir, "segments", "0000000000000009.seg"))
	require.ErrorIs(t, err, os.ErrNotExist, "cont_sums' old segment")
	_, err = os.Stat(filepath.Join(dir, "segments", "0000000000000010.seg"))
	require.ErrorIs(t, err, os.ErrNotExist, "tiles_sums' old segment")
	for _, f := range []string{"0000000000000011.seg", "0000000000000012.seg"} {
		_, err = os.Stat(filepath.Join(dir, "segments", f))
		require.NoError(t, err, "an unaffected view's segment")
	}
	var man struct {
		Views map[string]struct {
			Layout   string `json:"layout"`
			Covered  uint64 `json:"covered_seq"`
			Segments []struct {
				File string `json:"file"`
			} `json:"segments"`
		} `json:"views"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "segments", "MANIFEST"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &man))
	require.Len(t, man.Views, 4)
	for id, mv := range man.Views {
		require.NotEmpty(t, mv.Layout, "%s: layout not recorded", id)
		require.Equal(t, uint64(len(upgradeRequests())), mv.Covered, "%s: checkpointed through the last entry", id)
	}

	fresh := upgradeOpen(t, t.TempDir(), slog.New(slog.DiscardHandler))
	defer fresh.Close()
	upgradeLoad(t, fresh)
	upgradeSame(t, "after the upgrade", db, fresh)
	upgradeColumnsApart(t, db)

	// The catalog holds the fingerprints the old build computed (which
	// leave out the types of the columns only transforms read): applying
	// the repo with a metadata change keeps every version.
	res, err := db.ApplyWait(context.Background(), "features.yaml", []byte(strings.Replace(upgradeRepo, "  - name: cont_sums\n", "  - name: cont_sums\n    description: upgraded\n", 1)))
	require.NoError(t, err)
	require.False(t, res.Plan.Empty())
	require.Empty(t, res.Rebuilt, "a description rebuilt views of a catalog written before the fix")

	// A second open reads the new checkpoint: nothing is rebuilt or
	// replayed.
	require.NoError(t, db.Close())
	logs = upgradeLogs{}
	db = upgradeOpen(t, dir, logs.logger())
	require.Empty(t, logs.find(t, "rebuilding view versions"))
	opened = logs.find(t, "opened data directory")
	require.Len(t, opened, 1)
	require.Equal(t, float64(0), opened[0]["records_replayed"])
	upgradeSame(t, "after a second open", db, fresh)
}

// TestUpgradeRefusesWithoutHistory: when a view must be rebuilt but the
// log no longer starts at its first entry, Open fails, naming the views
// and the log, and changes nothing.
func TestUpgradeRefusesWithoutHistory(t *testing.T) {
	dir := upgradeFixture(t)
	require.NoError(t, os.Remove(filepath.Join(dir, "wal", "00000000000000000001")))
	before, err := os.ReadFile(filepath.Join(dir, "segments", "MANIFEST"))
	require.NoError(t, err)
	_, err = engine.Open(engine.Options{Dir: dir, Now: func() time.Time { return upgradeNow }, NoSync: true,
		DisableAutoFlush: true, Logger: slog.New(slog.DiscardHandler)})
	require.Error(t, err)
	t.Log(err)
	for _, want := range []string{"upgrade/cont_sums@1", "upgrade/tiles_sums@1", "issue 10", "begins at entry 16", filepath.Join(dir, "wal")} {
		require.Contains(t, err.Error(), want)
	}
	require.NotContains(t, err.Error(), "plain")
	after, err := os.ReadFile(filepath.Join(dir, "segments", "MANIFEST"))
	require.NoError(t, err)
	require.Equal(t, string(before), string(after))
	for _, f := range []string{"9", "10", "11", "12"} {
		_, err = os.Stat(filepath.Join(dir, "segments", fmt.Sprintf("%016s.seg", f)))
		require.NoError(t, err)
	}
}

// TestOpenRefusesSegmentOfAnotherFingerprint: a checkpoint that lists a
// segment written for another definition of the view (its metadata's
// fingerprint differs) fails Open, naming both, instead of serving it.
func TestOpenRefusesSegmentOfAnotherFingerprint(t *testing.T) {
	dir := upgradeFixture(t)
	const other = "0123456789abcdef0123456789abcdef"
	edit := func(path string, f func(map[string]any)) {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(data, &m))
		f(m)
		data, err = json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, data, 0o644))
	}
	edit(filepath.Join(dir, "catalog", "upgrade.json"), func(m map[string]any) {
		m["views"].(map[string]any)["plain"].(map[string]any)["fingerprint"] = other
	})
	edit(filepath.Join(dir, "segments", "MANIFEST"), func(m map[string]any) {
		m["views"].(map[string]any)["upgrade/plain@1"].(map[string]any)["fingerprint"] = other
	})
	_, err := engine.Open(engine.Options{Dir: dir, Now: func() time.Time { return upgradeNow }, NoSync: true,
		DisableAutoFlush: true, Logger: slog.New(slog.DiscardHandler)})
	require.Error(t, err)
	for _, want := range []string{"0000000000000011.seg", "upgrade/plain@1", other, "6c8e28a9f7f6eaecc3e3846e50e093e2"} {
		require.Contains(t, err.Error(), want)
	}
}
