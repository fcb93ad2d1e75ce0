package main

// delete-keys as a user runs it: keys from CSV, JSON Lines or parquet,
// on a data directory or through a node; a bad keys file is refused
// naming the file and the line.

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

func TestDeleteKeysCommand(t *testing.T) {
	data := historicalData(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}

	bad := write("bad.csv", "user_id\nu1\n\"unterminated\n")
	_, err := run(t, "delete-keys", "--data", data, "--view", "user_click_counts", "--keys", bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad.csv")
	wrong := write("wrong.csv", "user_id,extra\nu1,x\n")
	_, err = run(t, "delete-keys", "--data", data, "--view", "user_click_counts", "--keys", wrong)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `wrong.csv, line 2: "extra" is not a join key of feature view "user_click_counts"`)
	_, err = run(t, "delete-keys", "--data", data, "--view", "nope", "--keys", write("k.csv", "user_id\nu1\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `feature view "nope" not found`)
	_, err = run(t, "delete-keys", "--data", data, "--view", "user_click_counts", "--keys", write("empty.csv", "user_id\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "holds no keys")

	out, err := run(t, "delete-keys", "--data", data, "--view", "user_click_counts", "--keys", write("keys.csv", "user_id\nu1\nnobody\n"), "-q")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Started deletion job job_")
	assert.Contains(t, out, "deletion user_click_counts: SUCCESS")
	out, err = run(t, "jobs", "list", "--data", data, "--type", "deletion", "--output", "json")
	require.NoError(t, err, out)
	var listed struct{ Jobs []engine.Job }
	require.NoError(t, json.Unmarshal([]byte(out), &listed))
	require.Len(t, listed.Jobs, 1)
	require.NotNil(t, listed.Jobs[0].Result)
	assert.Equal(t, 1, listed.Jobs[0].Result.KeysFound)
	assert.Equal(t, []int{1}, listed.Jobs[0].Result.KeysNotFound)

	// Parquet keys: u2 and someone unknown.
	type keyRow struct {
		UserID string `parquet:"user_id"`
	}
	var pq bytes.Buffer
	w := parquet.NewGenericWriter[keyRow](&pq)
	_, err = w.Write([]keyRow{{"u2"}, {"ghost"}})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	out, err = run(t, "delete-keys", "--data", data, "--view", "user_click_counts", "--keys", write("keys.parquet", pq.String()), "--offline=false", "-q")
	require.NoError(t, err, out)
	assert.Contains(t, out, "deletion user_click_counts: SUCCESS")

	// Through a node, keys from JSON Lines, online only.
	db, err := engine.Open(engine.Options{Dir: data, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	key, acct, err := db.Accounts().CreateAccount("owner", "")
	require.NoError(t, err)
	require.NoError(t, db.Accounts().AssignRole(acct.ID, "ads", auth.Owner))
	srv, err := httpapi.New(db, httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	out, err = run(t, "delete-keys", "--server", ts.URL, "--api-key", key, "--workspace", "ads", "--view", "user_click_counts",
		"--keys", write("keys.jsonl", `{"user_id": "u2"}`+"\n"), "--offline=false", "--wait", "-q")
	require.NoError(t, err, out)
	assert.Contains(t, out, "deletion user_click_counts: SUCCESS")
	vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service", JoinKeys: map[string]any{"user_id": "u2"}, AsOf: ht0})
	require.NoError(t, err)
	for _, f := range vec.Features {
		if f.Status == engine.Present {
			assert.NotContains(t, f.Name, "user_click_counts", "u2's serving state is gone: %+v", f)
		}
	}
	_, err = run(t, "delete-keys", "--server", ts.URL, "--api-key", key, "--workspace", "ads", "--view", "user_click_counts",
		"--keys", write("keys2.jsonl", `{"user_id": "u2"}`+"\n"+`{"user_id": null}`+"\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `keys2.jsonl, line 2: join key "user_id": is null`)
	_, err = run(t, "delete-keys", "--server", ts.URL, "--api-key", key, "--workspace", "ads", "--view", "user_click_counts",
		"--keys", write("keys3.jsonl", `{"user_id": "u2"}`+"\n"+`{"userid": "u3"}`+"\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `keys3.jsonl: line 2: member "userid" is not a column of the first row`)
}
