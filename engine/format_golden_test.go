package engine

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/docgolden"
	"github.com/featurelog/featurelog/vfs"
)

// The golden tests of the engine's JSON files (docs/format/manifest.md,
// catalog.md, jobs.md, erasures.md, sinks.md). Each page's example is the
// golden data: the test writes the example's value through the engine's
// own writer and compares the file with the page byte for byte, reads the
// page's example back through the engine's own reader, and checks that the
// page documents every JSON field of the type. A failure means the format
// changed: a field was added, renamed or reordered, or the indentation
// changed. Fix the page (and the version, if readers of today cannot read
// it) rather than the test.

var printGolden = flag.Bool("print-golden", false, "print what the engine writes for each page's example")

// requireSameFile compares a file the engine wrote with the page's example.
func requireSameFile(t *testing.T, page, example, path string) {
	t.Helper()
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	if *printGolden {
		fmt.Printf("<!-- golden: %s --> (%s)\n```json\n%s\n```\n", example, page, strings.TrimSuffix(string(got), "\n"))
	}
	want := docgolden.Block(t, page, example)
	if !strings.HasSuffix(string(got), "\n") { // the block's lines end in newlines, the file's last may not
		got = append(got, '\n')
	}
	require.Equal(t, want, string(got), "the file differs from the example of docs/format/%s", page)
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func atp(s string) *time.Time { t := at(s); return &t }

func TestManifestFormatGolden(t *testing.T) {
	m := &manifest{Format: 1, NextSegment: 13, Views: map[string]*manifestView{
		"ads/click_events_fv@1": {Fingerprint: "8887aa4de12a8c3dab161d31c3584a04", Layout: "attributes 1|Int64", Covered: 31,
			Segments: []manifestSegment{{ID: 12, File: "0000000000000012.seg", Level: 0, MinSeq: 26, MaxSeq: 31, Bytes: 408}}},
		"ads/user_click_counts@2": {Fingerprint: "1733151d681afca66480045dd830ea27", Layout: "dc8d9eb9f5f849d9f5ee0c60776bb54d", Covered: 31,
			Segments: []manifestSegment{
				{ID: 0, File: "0000000000000009.seg", Level: 1, MinSeq: 0, MaxSeq: 25, Bytes: 2723},
				{ID: 11, File: "0000000000000011.seg", Level: 0, MinSeq: 26, MaxSeq: 31, Bytes: 413}}},
	}}
	m.Views["ads/user_click_counts@2"].Segments[0].ID = 9
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(segmentsDir(dir), 0o755))
	require.NoError(t, m.save(vfs.Default, dir))
	requireSameFile(t, "manifest.md", "manifest", manifestPath(dir))

	require.NoError(t, os.WriteFile(manifestPath(dir), []byte(docgolden.Block(t, "manifest.md", "manifest")), 0o644))
	got, err := loadManifest(vfs.Default, dir)
	require.NoError(t, err)
	assert.Equal(t, m, got)
	docgolden.Fields(t, "manifest.md", reflect.TypeFor[manifest]())
}

// goldenSource is the repo file of the catalog example.
const goldenSource = `workspace: ads
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - name: clicks
    schema:
      - {name: user_id, type: String}
      - {name: timestamp, type: Timestamp}
      - {name: clicked, type: Int64}
feature_views:
  - name: last_click
    source: clicks
    entities: [user]
    timestamp_field: timestamp
    features:
      - attribute: {name: clicked}
`

func TestCatalogFormatGolden(t *testing.T) {
	settled := wsMeta{File: "features.yaml", Source: goldenSource, AppliedAt: at("2026-03-01T12:00:00Z"),
		Views:   map[string]viewMeta{"last_click": {Version: 2, Fingerprint: "5e0c8b7a3f1d2e4c6b8a9d0f1e2c3b4a", CreatedAt: at("2026-03-01T12:00:00Z")}},
		Retired: map[string]int{"old_view": 3}}
	staged := wsMeta{File: "features.yaml", Source: "workspace: ads\n# the new repo file\n", AppliedAt: at("2026-03-02T09:30:00Z"),
		Views: map[string]viewMeta{"last_click": {Version: 3, Fingerprint: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", CreatedAt: at("2026-03-02T09:30:00Z")}},
		Staged: &stagedMeta{Apply: "apply_01M8RQKQG03YB7XJ0B7YKRET24", Jobs: map[string]string{"last_click": "job_01M8RQKQG0HEVJF0M6KEYZGBRF"},
			Prev: &wsMeta{File: "features.yaml", Source: "workspace: ads\n# the repo file before the apply\n", AppliedAt: at("2026-03-01T12:00:00Z"),
				Views: map[string]viewMeta{"last_click": {Version: 2, Fingerprint: "5e0c8b7a3f1d2e4c6b8a9d0f1e2c3b4a", CreatedAt: at("2026-03-01T12:00:00Z")}}}}}
	for _, c := range []struct {
		example string
		meta    wsMeta
	}{{"catalog", settled}, {"catalog-staged", staged}} {
		t.Run(c.example, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, saveWorkspaceMeta(dir, c.meta, "ads"))
			path := filepath.Join(catalogDir(dir), "ads.json")
			requireSameFile(t, "catalog.md", c.example, path)

			var got wsMeta
			require.NoError(t, json.Unmarshal([]byte(docgolden.Block(t, "catalog.md", c.example)), &got))
			if c.meta.Retired == nil {
				got.Retired = nil
			}
			assert.Equal(t, c.meta, got)
		})
	}
	// The settled example loads as a workspace: its source is a repo file.
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(catalogDir(dir), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(catalogDir(dir), "ads.json"), []byte(docgolden.Block(t, "catalog.md", "catalog")), 0o644))
	cat, err := loadCatalog(dir, newHotTier(-1))
	require.NoError(t, err)
	ws, err := cat.workspace("ads")
	require.NoError(t, err)
	assert.Equal(t, 2, ws.views["last_click"].version)
	docgolden.Fields(t, "catalog.md", reflect.TypeFor[wsMeta]())
}

func TestJobFormatGolden(t *testing.T) {
	seq := uint64(812399)
	yes := true
	str := func(s string) *string { return &s }
	jobs := map[string]*Job{
		"backfill": {ID: "job_01M8RQKQG0HEVJF0M6KEYZGBRF", Type: JobBackfill, Workspace: "ads", FeatureView: "user_click_counts", Version: 2,
			State: JobSuccess, CreatedAt: at("2026-12-07T03:00:00Z"), StartedAt: atp("2026-12-07T03:00:00.012Z"), FinishedAt: atp("2026-12-07T03:00:21.5Z"),
			Progress: JobProgress{Done: 812345678, Total: 812345678, Unit: "bytes"},
			Params:   JobParams{Apply: "apply_01M8RQKQG03YB7XJ0B7YKRET24", BatchEnd: atp("2026-12-07T03:00:00Z")},
			Result:   &JobResult{LogRecords: 20000000, Segments: 20}, Runs: 1},
		"materialization": {ID: "job_01M8RQP3Z6J3W8C1QXW5D2K9TB", Type: JobMaterialization, Workspace: "ads", FeatureView: "user_click_counts", Version: 2,
			State: JobFailed, CreatedAt: at("2026-12-07T04:00:00Z"), StartedAt: atp("2026-12-07T04:00:00.01Z"), FinishedAt: atp("2026-12-07T04:00:02Z"),
			Progress: JobProgress{Done: 1024, Total: 4096, Unit: "bytes"},
			Params: JobParams{StartTime: atp("2026-11-01T00:00:00Z"), EndTime: atp("2026-12-01T00:00:00Z"), Online: &yes, Offline: &yes,
				Overwrite: new(bool)},
			Error: str("batch file data/clicks-2026-11.parquet, row 17: column clicked: \"x\" is not an Int64"), Runs: 2},
		"deletion": {ID: "job_01M8RQM0A1ZQ2Y6R8D4K3N5P7S", Type: JobDeletion, Workspace: "ads", FeatureView: "click_events_fv", Version: 1,
			State: JobRunning, CreatedAt: at("2026-12-07T05:00:00Z"), StartedAt: atp("2026-12-07T05:00:00.003Z"),
			Progress: JobProgress{Unit: "bytes"}, // as the job's start wrote it: progress is kept in memory
			Params:   JobParams{Online: &yes, Offline: &yes, Keys: []map[string]any{{"user_id": "u1"}, {"user_id": "u9"}}, KeyCount: 2, LogSeq: &seq},
			Runs:     1},
		"deletion-done": {ID: "job_01M8RQM0A1ZQ2Y6R8D4K3N5P7S", Type: JobDeletion, Workspace: "ads", FeatureView: "click_events_fv", Version: 1,
			State: JobSuccess, CreatedAt: at("2026-12-07T05:00:00Z"), StartedAt: atp("2026-12-07T05:00:00.003Z"), FinishedAt: atp("2026-12-07T05:00:03Z"),
			Progress: JobProgress{Done: 31000, Total: 31000, Unit: "log entries"},
			Params:   JobParams{Online: &yes, Offline: &yes, KeyCount: 2, LogSeq: &seq},
			Result: &JobResult{KeysFound: 1, KeysNotFound: []int{1}, FeatureViews: []string{"user_click_counts", "click_events_fv"},
				RecordsErased: 14, LogSegmentsRewritten: 3, SegmentsRewritten: 2},
			Runs: 1},
	}
	for example, j := range jobs {
		t.Run(example, func(t *testing.T) {
			dir := t.TempDir()
			jt := &jobTable{dir: dir, jobs: map[string]*Job{}}
			require.NoError(t, jt.saveLocked(j))
			requireSameFile(t, "jobs.md", "job-"+example, filepath.Join(dir, j.ID+".json"))

			data := t.TempDir()
			require.NoError(t, os.MkdirAll(jobsDir(data), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(jobsDir(data), j.ID+".json"), []byte(docgolden.Block(t, "jobs.md", "job-"+example)), 0o644))
			loaded, err := loadJobs(data)
			require.NoError(t, err)
			got := loaded.jobs[j.ID]
			require.NotNil(t, got)
			got.done = nil
			want := *j
			if want.Params.Keys != nil { // JSON numbers and strings decode as any: compare through JSON
				w, _ := json.Marshal(want.Params.Keys)
				g, _ := json.Marshal(got.Params.Keys)
				assert.JSONEq(t, string(w), string(g))
				want.Params.Keys, got.Params.Keys = nil, nil
			}
			assert.Equal(t, want, *got)
		})
	}
	docgolden.Fields(t, "jobs.md", reflect.TypeFor[Job]())
}

func TestErasuresFormatGolden(t *testing.T) {
	f := erasureFile{Salt: "9f3c0e5d1a7b24c86e0f1d2a3b4c5d6e", Sets: []*erasureSet{
		{Job: "job_01M8RQKQG0HEVJF0M6KEYZGBRF", Workspace: "ads", Source: "impressions_event_source", Columns: []string{"user_id"},
			LogSeq: 812345, Found: []int{0}, LogErased: true},
		{Job: "job_01M8RQM0A1ZQ2Y6R8D4K3N5P7S", Workspace: "ads", Source: "impressions_event_source", View: "click_events_fv",
			Columns: []string{"user_id"}, LogSeq: 812399, Found: []int{1}},
	}}
	dir := t.TempDir()
	e, err := loadErasures(dir)
	require.NoError(t, err)
	e.f.Salt = f.Salt
	e.salt = []byte{0x9f, 0x3c, 0x0e, 0x5d, 0x1a, 0x7b, 0x24, 0xc8, 0x6e, 0x0f, 0x1d, 0x2a, 0x3b, 0x4c, 0x5d, 0x6e}
	// The digests of the keys u1 and u2, and u7 and u9, under the example's salt.
	for i, keys := range [][]string{{"u1", "u2"}, {"u7", "u9"}} {
		for _, k := range keys {
			d := e.digest(k)
			f.Sets[i].Keys = append(f.Sets[i].Keys, hex.EncodeToString(d[:]))
		}
	}
	for _, s := range f.Sets {
		s2 := *s
		require.NoError(t, e.add(&s2))
	}
	requireSameFile(t, "erasures.md", "erasures", filepath.Join(dir, erasuresFileName))

	data := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(data, erasuresFileName), []byte(docgolden.Block(t, "erasures.md", "erasures")), 0o644))
	got, err := loadErasures(data)
	require.NoError(t, err)
	assert.Equal(t, e.salt, got.salt)
	require.Len(t, got.f.Sets, 2)
	for i, s := range got.f.Sets {
		s.set = nil
		assert.Equal(t, f.Sets[i], s)
	}
	d := got.digest("u1")
	assert.Equal(t, f.Sets[0].Keys[0], hex.EncodeToString(d[:]), "the digest of u1 is the first set's first key")
	docgolden.Fields(t, "erasures.md", reflect.TypeFor[erasureFile]())
}

func TestSinksFormatGolden(t *testing.T) {
	dir := t.TempDir()
	c, err := loadSinkCursors(dir)
	require.NoError(t, err)
	c.next["ads/user_click_counts/kafka:feature-updates"] = StreamOffset{Seq: 0x12c4a, Idx: 3}
	c.next["ads/click_events_fv/kafka:clicks-latest"] = StreamOffset{Seq: 0x12c40, Idx: 0}
	require.NoError(t, c.saveLocked())
	requireSameFile(t, "sinks.md", "sinks", filepath.Join(dir, sinksFileName))

	data := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(data, sinksFileName), []byte(docgolden.Block(t, "sinks.md", "sinks")), 0o644))
	got, err := loadSinkCursors(data)
	require.NoError(t, err)
	assert.Equal(t, c.next, got.next)
	docgolden.Fields(t, "sinks.md", reflect.TypeFor[sinksFile]())
}
