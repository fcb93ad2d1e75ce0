package main

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// TestOutputStreamCommand prints the example view's stream from a data
// directory and from a node, from earliest, from an offset and with a
// limit, and names what is wrong with bad input.
func TestOutputStreamCommand(t *testing.T) {
	data := t.TempDir()
	_, err := run(t, "apply", "-f", example, "--data", data)
	require.NoError(t, err)
	db, err := engine.Open(engine.Options{Dir: data, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 5 {
		_, err := db.Ingest(&engine.IngestRequest{Workspace: "ads", Records: map[string][]map[string]any{"impressions_event_source": {
			{"user_id": "u1", "timestamp": now.Add(-time.Duration(5-i) * time.Minute), "clicked": int64(i)}}}})
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())

	out, err := run(t, "output-stream", "--data", data, "--view", "user_click_counts")
	require.NoError(t, err, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 5)
	var last struct {
		Offset        string
		FeatureValues map[string]string `json:"feature_values"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[4]), &last))
	assert.Equal(t, "5", last.FeatureValues["clicked_count_1h_continuous"])
	var third struct{ Offset string }
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &third))
	out, err = run(t, "output-stream", "--data", data, "--view", "user_click_counts", "--from", third.Offset, "--limit", "2")
	require.NoError(t, err, out)
	assert.Equal(t, strings.Join(lines[2:4], "\n")+"\n", out)

	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--view", "user_click_counts", "--from", "yesterday"}, `--from: offset "yesterday" is not valid`},
		{[]string{"--view", "click_events_fv"}, `feature view "click_events_fv" in workspace "ads" has no output stream`},
		{[]string{"--view", "nope"}, `feature view "nope" not found`},
		{nil, "--view is required"},
	} {
		_, err := run(t, append([]string{"output-stream", "--data", data}, c.args...)...)
		require.Error(t, err, c.msg)
		assert.Contains(t, err.Error(), c.msg)
	}

	// Through a node: follows until idle.
	db, err = engine.Open(engine.Options{Dir: data, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	key, acct, err := db.Accounts().CreateAccount("viewer", "")
	require.NoError(t, err)
	require.NoError(t, db.Accounts().AssignRole(acct.ID, "ads", auth.Viewer))
	srv, err := httpapi.New(db, httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	out, err = run(t, "output-stream", "--server", ts.URL, "--api-key", key, "--workspace", "ads", "--view", "user_click_counts",
		"--from", "earliest", "--idle", "500ms")
	require.NoError(t, err, out)
	assert.Equal(t, strings.Join(lines, "\n")+"\n", out)
	_, err = run(t, "output-stream", "--server", ts.URL, "--api-key", key, "--workspace", "ads", "--view", "nope", "--idle", "500ms")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `feature view "nope" not found`)
}
