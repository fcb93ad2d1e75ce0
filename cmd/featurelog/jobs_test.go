package main

// The jobs commands and replay, as a user runs them: apply on a data
// directory waits for its backfill and says how it went; jobs list, get,
// wait and cancel, locally and with --server; materialize refuses a view
// without batch files; replay builds from a copied log a directory that
// serves what the original serves, and leaves the input untouched.

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// changedExample is the example repo with a window changed: a new version
// of user_click_counts.
func changedExample(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(example)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "features.yaml")
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(src), "function: count, window: 1h}", "function: count, window: 2h}", 1)), 0o644))
	return path
}

func TestJobsCommands(t *testing.T) {
	data := historicalData(t)
	repo := changedExample(t)
	out, err := run(t, "apply", "-f", repo, "--data", data)
	require.NoError(t, err, out)
	assert.Contains(t, out, "Started backfill job job_")
	assert.Regexp(t, `job_\w+ backfill user_click_counts: SUCCESS \(12 log records, 0 batch rows, 0 duplicates skipped, 1 segments\)`, out)

	out, err = run(t, "jobs", "list", "--workspace", "ads", "--data", data, "--output", "json")
	require.NoError(t, err, out)
	var listed struct{ Jobs []engine.Job }
	require.NoError(t, json.Unmarshal([]byte(out), &listed))
	require.Len(t, listed.Jobs, 3, "the first apply's two backfills and this one's")
	latest := listed.Jobs[0]
	assert.Equal(t, "user_click_counts", latest.FeatureView)
	assert.Equal(t, 2, latest.Version)

	out, err = run(t, "jobs", "list", "--workspace", "ads", "--data", data, "--feature-view", "user_click_counts", "--state", "SUCCESS")
	require.NoError(t, err, out)
	assert.Contains(t, out, "ID  ")
	assert.Contains(t, out, latest.ID)
	assert.Equal(t, 3, strings.Count(out, "\n"), "a header and the view's two jobs:\n%s", out)

	out, err = run(t, "jobs", "get", "--data", data, latest.ID) // SPEC §6 names no --workspace: the only one is used
	require.NoError(t, err, out)
	assert.Contains(t, out, `"state": "SUCCESS"`)
	out, err = run(t, "jobs", "wait", "--workspace", "ads", "--data", data, latest.ID)
	require.NoError(t, err, out)
	assert.Contains(t, out, latest.ID+" backfill user_click_counts: SUCCESS")
	_, err = run(t, "jobs", "cancel", "--workspace", "ads", "--data", data, latest.ID)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already ended SUCCESS; cancelling it changes nothing")
	_, err = run(t, "jobs", "get", "--workspace", "ads", "--data", data, "job_nope")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `job "job_nope" not found in workspace "ads"`)
	_, err = run(t, "jobs", "list", "--workspace", "ads", "--data", data, "--output", "yaml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `--output "yaml": use table or json`)

	_, err = run(t, "materialize", "--view", "click_events_fv", "--data", data,
		"--start", "2024-04-01T00:00:00Z", "--end", "2024-05-01T00:00:00Z")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `reads source "impressions_event_source", which has no batch files`)
	_, err = run(t, "materialize", "--workspace", "ads", "--view", "click_events_fv", "--data", data,
		"--start", "April", "--end", "2024-05-01T00:00:00Z")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `--start "April" is not an RFC 3339 time`)

	src, err := os.ReadFile(example)
	require.NoError(t, err)
	second := filepath.Join(t.TempDir(), "second.yaml")
	require.NoError(t, os.WriteFile(second, []byte(strings.Replace(string(src), "workspace: ads\n", "workspace: ads2\n", 1)), 0o644))
	out, err = run(t, "apply", "-f", second, "--data", data)
	require.NoError(t, err, out)
	_, err = run(t, "jobs", "list", "--data", data)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--workspace is required: the data directory "+data+" holds 2 workspaces (ads, ads2)")

	// The same through a node.
	db, err := engine.Open(engine.Options{Dir: data, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	key, acct, err := db.Accounts().CreateAccount("owner", "")
	require.NoError(t, err)
	require.NoError(t, db.Accounts().AssignRole(acct.ID, "ads", auth.Owner))
	srv, err := httpapi.New(db, httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	out, err = run(t, "jobs", "list", "--workspace", "ads", "--server", ts.URL, "--api-key", key)
	require.NoError(t, err, out)
	assert.Contains(t, out, latest.ID)
	out, err = run(t, "jobs", "wait", "--workspace", "ads", "--server", ts.URL, "--api-key", key, latest.ID)
	require.NoError(t, err, out)
	assert.Contains(t, out, "SUCCESS")
	_, err = run(t, "jobs", "list", "--server", ts.URL, "--api-key", key)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--workspace is required with --server")
	ts.Close()
	require.NoError(t, db.Close())
}

// TestReplay: replay builds a data directory from a copy of a node's log
// that serves what the node serves, without writing to the copy; it
// refuses a directory that is not new and a log that has no segment.
func TestReplay(t *testing.T) {
	data := historicalData(t)
	logCopy := filepath.Join(t.TempDir(), "wal-copy")
	require.NoError(t, os.CopyFS(logCopy, os.DirFS(filepath.Join(data, "wal"))))
	before := dirDigest(t, logCopy)

	fresh := filepath.Join(t.TempDir(), "replayed")
	out, err := run(t, "replay", "--log", logCopy, "--data", fresh, "--repo", example)
	require.NoError(t, err, out)
	assert.Contains(t, out, "Copied 1 log segment(s)")
	assert.Contains(t, out, "backfill user_click_counts: SUCCESS (12 log records")
	assert.Contains(t, out, "Built "+fresh)
	assert.Equal(t, before, dirDigest(t, logCopy), "replay never writes to its input")

	read := func(dir string) []engine.FeatureVector {
		db, err := engine.Open(engine.Options{Dir: dir, Now: func() time.Time { return ht0 }, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		defer db.Close()
		vecs, err := db.GetFeaturesBatch("ads", "ad_ctr_feature_service_v2", []map[string]any{{"user_id": "u1"}, {"user_id": "u2"}}, time.Time{})
		require.NoError(t, err)
		return vecs
	}
	assert.Equal(t, read(data), read(fresh), "the replayed directory serves what the node serves")

	_, err = run(t, "replay", "--log", logCopy, "--data", fresh, "--repo", example)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is not empty: replay builds a new data directory")
	_, err = run(t, "replay", "--log", t.TempDir(), "--data", filepath.Join(t.TempDir(), "x"), "--repo", example)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "holds no log segment")

	// A torn tail in the input (a copy taken while the node wrote) is
	// repaired in the new directory, never in the input.
	segs, err := os.ReadDir(logCopy)
	require.NoError(t, err)
	last := filepath.Join(logCopy, segs[len(segs)-1].Name())
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte("half a frame"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	torn := dirDigest(t, logCopy)
	repaired := filepath.Join(t.TempDir(), "repaired")
	out, err = run(t, "replay", "--log", logCopy, "--data", repaired, "--repo", example)
	require.NoError(t, err, out)
	assert.Contains(t, out, "Repaired a torn tail in the copy")
	assert.Contains(t, out, "backfill user_click_counts: SUCCESS (12 log records")
	assert.Equal(t, torn, dirDigest(t, logCopy), "the torn input is left as it was")
	assert.Equal(t, read(data), read(repaired))

	// A data directory as --log: its wal/ is used.
	out, err = run(t, "replay", "--log", data, "--data", filepath.Join(t.TempDir(), "again"), "--repo", example, "--run-records", "5")
	require.NoError(t, err, out)
	assert.Contains(t, out, "backfill user_click_counts: SUCCESS (12 log records", "with --run-records")
}

// dirDigest lists a directory's files with their sizes and modification
// times.
func dirDigest(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	require.NoError(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b.WriteString(path + " " + info.ModTime().String() + " " + strconv.FormatInt(info.Size(), 10) + "\n")
		return nil
	}))
	return b.String()
}
