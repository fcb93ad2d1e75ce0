package main

// featurelog run, as a user runs it: on a data directory and against a
// node the output is the same NDJSON, at every level, and equals the
// engine's Run in the encodings of SPEC §4; a mock file (CSV, JSON Lines)
// replaces the log; the data directory is unchanged; bad flags and bad
// requests say what is wrong.

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// runLines splits NDJSON output into decoded objects.
func runLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "line %q", line)
		rows = append(rows, m)
	}
	return rows
}

// runEngine returns the engine's rows of a run on a copy-free open of
// data, as the CLI must print them.
type runCollect struct {
	cols []engine.HistoricalColumn
	rows [][]schema.Value
}

func (r *runCollect) Begin(cols []engine.HistoricalColumn) error { r.cols = cols; return nil }
func (r *runCollect) Row(_ []any, vals []schema.Value) error {
	r.rows = append(r.rows, append([]schema.Value(nil), vals...))
	return nil
}

func runEngine(t *testing.T, data string, req engine.RunRequest) *runCollect {
	db, err := engine.Open(engine.Options{Dir: data, Now: func() time.Time { return ht0 }, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	out := &runCollect{}
	require.NoError(t, db.Run(context.Background(), "ads", "user_click_counts", &req, out))
	return out
}

func TestRunCommand(t *testing.T) {
	data := historicalData(t)
	before := dirDigest(t, data)
	start, end := "2024-05-01T09:00:00Z", "2024-05-01T12:00:00Z"
	mockCSV := filepath.Join(t.TempDir(), "clicks.csv")
	require.NoError(t, os.WriteFile(mockCSV, []byte("user_id,timestamp,clicked\nm1,2024-05-01T10:00:00Z,1\nm1,2024-05-01T10:30:00Z,\nm2,2024-05-01T11:59:59.5Z,3\nm2,2024-05-01T13:00:00Z,3\n"), 0o644))
	mockJSONL := filepath.Join(t.TempDir(), "clicks.jsonl")
	require.NoError(t, os.WriteFile(mockJSONL, []byte(`{"user_id":"m1","timestamp":"2024-05-01T10:00:00Z","clicked":1}
{"user_id":"m1","timestamp":"2024-05-01T10:30:00Z","clicked":null}
{"user_id":"m2","timestamp":"2024-05-01T11:59:59.5Z","clicked":3}
{"user_id":"m2","timestamp":"2024-05-01T13:00:00Z","clicked":3}
`), 0o644))
	url, key := "", ""
	for _, level := range []string{"disabled", "partial", "full"} {
		for _, mock := range []string{"", mockCSV, mockJSONL} {
			args := []string{"run", "--view", "user_click_counts", "--start", start, "--end", end, "--level", level}
			if mock != "" {
				args = append(args, "--mock", mock)
			}
			local, err := run(t, append(args, "--data", data)...)
			require.NoError(t, err, local)
			runCheckOutput(t, data, level, mock, start, end, local)
			if url == "" { // a node on a copy, so that the data directory stays free for the local runs
				cp := filepath.Join(t.TempDir(), "copy")
				require.NoError(t, os.CopyFS(cp, os.DirFS(data)))
				url, key = historicalServer(t, cp)
			}
			remote, err := run(t, append(args, "--server", url, "--api-key", key, "--workspace", "ads")...)
			require.NoError(t, err, remote)
			assert.Equal(t, local, remote, "level %s, mock %q: local and remote output differ", level, mock)
		}
	}
	assert.Equal(t, withoutLock(before), withoutLock(dirDigest(t, data)), "run changed the data directory")
}

// withoutLock drops the LOCK file from a dirDigest: every local command
// takes the directory's lock, which records its holder (dirlock); run
// writes nothing else.
func withoutLock(digest string) string {
	var keep []string
	for _, line := range strings.Split(digest, "\n") {
		if !strings.Contains(line, string(filepath.Separator)+"LOCK ") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// runCheckOutput compares the CLI's NDJSON with the engine's rows.
func runCheckOutput(t *testing.T, data, level, mock, start, end, out string) {
	s, _ := schema.ParseTimestamp(start)
	e, _ := schema.ParseTimestamp(end)
	req := engine.RunRequest{Start: s, End: e, Level: engine.RunLevel(level)}
	if mock != "" {
		rows, err := readMockRows(mock)
		require.NoError(t, err)
		req.MockSources = map[string][]map[string]any{"impressions_event_source": rows}
	}
	want := runEngine(t, data, req)
	got := runLines(t, out)
	require.NotEmpty(t, got, "level %s, mock %q: no rows", level, mock)
	require.Len(t, got, len(want.rows), "level %s, mock %q:\n%s", level, mock, out)
	for i, row := range got {
		require.Len(t, row, len(want.cols))
		for j, c := range want.cols {
			v := want.rows[i][j]
			switch v.Kind {
			case schema.Int64:
				assert.Equal(t, v.Any(), runInt(t, row[c.Name]), "row %d, %s: int64 is a JSON string", i, c.Name)
			case schema.Timestamp:
				assert.Equal(t, v.Time().Format(time.RFC3339Nano), row[c.Name], "row %d, %s", i, c.Name)
			case schema.Null:
				assert.Nil(t, row[c.Name], "row %d, %s", i, c.Name)
			default:
				assert.Equal(t, v.Any(), row[c.Name], "row %d, %s", i, c.Name)
			}
		}
	}
	if mock != "" {
		assert.NotContains(t, out, `"u1"`, "mock rows replace the log")
		assert.NotContains(t, out, "13:00:00", "mock rows after --end are ignored")
	}
}

// runInt reads an int64 encoded as a JSON string.
func runInt(t *testing.T, x any) any {
	s, ok := x.(string)
	require.True(t, ok, "%v is not a JSON string", x)
	var i int64
	require.NoError(t, json.Unmarshal([]byte(s), &i))
	return i
}

func TestRunCommandErrors(t *testing.T) {
	data := historicalData(t)
	base := []string{"run", "--view", "user_click_counts", "--start", "2024-05-01T09:00:00Z", "--end", "2024-05-01T12:00:00Z", "--data", data}
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"run", "--start", "2024-05-01T09:00:00Z", "--end", "2024-05-01T12:00:00Z", "--level", "full", "--data", data}, "--view V is required"},
		{append(base, "--level", "tiles"), `--level "tiles": use disabled, partial or full`},
		{append(base[:5], "--end", "2024-05-01T09:00:00Z", "--level", "full", "--data", data), "--end 2024-05-01T09:00:00Z must be after --start 2024-05-01T09:00:00Z"},
		{append(base[:5], "--end", "noon", "--level", "full", "--data", data), "--end: "},
		{append(base, "--level", "full", "--mock", "rows.txt"), "--mock"},
		{[]string{"run", "--view", "nope", "--start", "2024-05-01T09:00:00Z", "--end", "2024-05-01T12:00:00Z", "--level", "full", "--data", data}, `feature view "nope" not found in workspace "ads"`},
	}
	for _, c := range cases {
		out, err := run(t, c.args...)
		require.Error(t, err, "%v: %s", c.args, out)
		assert.Contains(t, err.Error(), c.msg, "%v", c.args)
	}
	bad := filepath.Join(t.TempDir(), "bad.csv")
	require.NoError(t, os.WriteFile(bad, []byte("user_id,timestamp,clicked\nm1,2024-05-01T10:00:00Z,1\nm1,2024-05-01T10:30:00Z,lots\n"), 0o644))
	_, err := run(t, append(base, "--level", "full", "--mock", bad)...)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `mock_sources "impressions_event_source": row 1: column "clicked": "lots" is not an integer`)
}
