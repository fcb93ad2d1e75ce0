package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tabread"
)

// ht0 is the time the data directory's events were ingested at.
var ht0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

const svcV2 = "ad_ctr_feature_service_v2" // click_events_fv.clicked and user_click_counts' aggregates

// historicalData returns a data directory with the ads example applied
// and clicks of u1 and u2 over the two hours before ht0.
func historicalData(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	db, err := engine.Open(engine.Options{Dir: dir, Now: func() time.Time { return ht0 }, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	repo, err := os.ReadFile(example)
	require.NoError(t, err)
	_, err = db.ApplyWait(context.Background(), "features.yaml", repo)
	require.NoError(t, err)
	var recs []string
	for i := range 12 {
		user := []string{"u1", "u2"}[i%2]
		at := ht0.Add(-time.Duration(10*i+3) * time.Minute)
		recs = append(recs, fmt.Sprintf(`{"record": {"user_id": %q, "timestamp": %q, "clicked": %d}}`, user, at.Format(time.RFC3339Nano), i%3))
	}
	_, err = db.IngestJSON([]byte(`{"workspace_name": "ads", "dry_run": false, "records": {"impressions_event_source": [`+strings.Join(recs, ",")+`]}}`), nil)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	return dir
}

// spineRow is one training example of the test spine.
type spineRow struct {
	User  string
	TS    time.Time
	Label int64
}

func testSpine() []spineRow {
	var rows []spineRow
	for i := range 10 {
		user := []string{"u1", "u2", "nobody"}[i%3]
		rows = append(rows, spineRow{User: user, TS: ht0.Add(-time.Duration(13*i) * time.Minute), Label: int64(i % 2)})
	}
	rows = append(rows, rows[0]) // the same key and time twice
	return rows
}

// writeSpine writes the test spine as path's format.
func writeSpine(t *testing.T, path string, rows []spineRow) {
	t.Helper()
	var buf bytes.Buffer
	switch filepath.Ext(path) {
	case ".csv":
		buf.WriteString("user_id,ts,label\n")
		for _, r := range rows {
			fmt.Fprintf(&buf, "%s,%s,%d\n", r.User, r.TS.Format(time.RFC3339Nano), r.Label)
		}
	case ".jsonl":
		for _, r := range rows {
			fmt.Fprintf(&buf, "{\"user_id\": %q, \"ts\": %q, \"label\": %d}\n\n", r.User, r.TS.Format(time.RFC3339Nano), r.Label)
		}
	case ".parquet":
		type rec struct {
			User  string    `parquet:"user_id"`
			TS    time.Time `parquet:"ts,timestamp(nanosecond)"`
			Label int64     `parquet:"label"`
		}
		w := parquet.NewGenericWriter[rec](&buf)
		for _, r := range rows {
			_, err := w.Write([]rec{{r.User, r.TS, r.Label}})
			require.NoError(t, err)
		}
		require.NoError(t, w.Close())
	}
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

// readOut reads an output file back as rows of Go values.
func readOut(t *testing.T, path string) ([]string, [][]any) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	s, err := tabread.OpenSpine(path, f)
	require.NoError(t, err)
	var rows [][]any
	for {
		row, err := s.Next()
		if err != nil {
			break
		}
		rows = append(rows, row)
	}
	return s.Columns(), rows
}

// expectValue is how an engine value reads back from an output format.
func expectValue(format string, v schema.Value) any {
	if v.IsNull() {
		return nil
	}
	switch format {
	case ".csv":
		if v.Kind == schema.Float64 {
			return strconv.FormatFloat(v.F, 'g', -1, 64)
		}
		return fmt.Sprint(v.Any())
	case ".jsonl":
		if v.Kind == schema.Int64 {
			return strconv.FormatInt(v.I, 10) // int64 travels as a string (SPEC §4)
		}
		if v.Kind == schema.Float64 && v.F == float64(int64(v.F)) {
			return int64(v.F) // written as 6, read back as an integer
		}
	}
	return v.Any()
}

// checkAgainstEngine asserts every output row's features equal an online
// read of the engine with as_of the row's time.
func checkAgainstEngine(t *testing.T, data, out string, spine []spineRow) {
	t.Helper()
	cols, rows := readOut(t, out)
	db, err := engine.Open(engine.Options{Dir: data, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	names, err := db.ServiceFeatures("ads", svcV2)
	require.NoError(t, err)
	want := []string{"user_id", "ts", "label"}
	for _, f := range names {
		want = append(want, f.Name)
	}
	require.Equal(t, want, cols)
	require.Len(t, rows, len(spine))
	ext := filepath.Ext(out)
	for i, r := range spine {
		assert.Equal(t, r.User, rows[i][0], "row %d: spine order", i)
		vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: svcV2, JoinKeys: map[string]any{"user_id": r.User}, AsOf: r.TS})
		require.NoError(t, err)
		for j, f := range vec.Features {
			assert.Equal(t, expectValue(ext, f.Value), rows[i][3+j], "row %d (%s at %s): %s", i, r.User, r.TS, f.Name)
		}
	}
}

func TestHistoricalCommand(t *testing.T) {
	data := historicalData(t)
	dir := t.TempDir()
	spine := testSpine()
	outs := map[string][]byte{}
	for _, in := range []string{".csv", ".jsonl", ".parquet"} {
		spinePath := filepath.Join(dir, "spine"+in)
		writeSpine(t, spinePath, spine)
		for _, ext := range []string{".csv", ".jsonl", ".parquet"} {
			t.Run(in+"→"+ext, func(t *testing.T) {
				out := filepath.Join(dir, "out-"+in[1:]+ext)
				stdout, err := run(t, "historical", "--data", data, "--workspace", "ads", "--service", svcV2,
					"--spine", spinePath, "--out", out, "--timestamp-key", "ts")
				require.NoError(t, err)
				assert.Equal(t, fmt.Sprintf("wrote %d rows to %s\n", len(spine), out), stdout, "no progress bar when stderr is not a terminal")
				checkAgainstEngine(t, data, out, spine)
				_, err = os.Stat(out + ".tmp")
				assert.True(t, os.IsNotExist(err), "the temp file was renamed")
				outs[in+ext], err = os.ReadFile(out)
				require.NoError(t, err)
			})
		}
	}

	// The same through a running node: byte for byte the same files.
	url, key := historicalServer(t, data)
	for _, in := range []string{".csv", ".parquet"} {
		for _, ext := range []string{".csv", ".jsonl", ".parquet"} {
			t.Run("server "+in+"→"+ext, func(t *testing.T) {
				out := filepath.Join(dir, "remote-"+in[1:]+ext)
				stdout, err := run(t, "historical", "--server", url, "--api-key", key, "--workspace", "ads", "--service", svcV2,
					"--spine", filepath.Join(dir, "spine"+in), "--out", out, "--quiet")
				require.NoError(t, err)
				assert.Equal(t, fmt.Sprintf("wrote %d rows to %s\n", len(spine), out), stdout)
				got, err := os.ReadFile(out)
				require.NoError(t, err)
				assert.Equal(t, string(outs[in+ext]), string(got), "a node writes the same file as the data directory")
			})
		}
	}
}

// historicalServer serves the data directory on a node with a fake clock
// and returns its URL and a viewer's API key.
func historicalServer(t *testing.T, data string) (string, string) {
	t.Helper()
	db, err := engine.Open(engine.Options{Dir: data, Now: func() time.Time { return ht0 }, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	key, acct, err := db.Accounts().CreateAccount("reader", "")
	require.NoError(t, err)
	require.NoError(t, db.Accounts().AssignRole(acct.ID, "ads", auth.Viewer))
	srv, err := httpapi.New(db, httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		db.Close()
	})
	return ts.URL, key
}

func TestHistoricalCommandRange(t *testing.T) {
	data := historicalData(t)
	dir := t.TempDir()
	entities := filepath.Join(dir, "entities.csv")
	require.NoError(t, os.WriteFile(entities, []byte("user_id\nu1\n"), 0o644))
	start, end := ht0.Add(-2*time.Hour), ht0
	out := filepath.Join(dir, "range.jsonl")
	stdout, err := run(t, "historical", "--data", data, "--workspace", "ads", "--service", "ad_ctr_feature_service",
		"--start", start.Format(time.RFC3339), "--end", end.Format(time.RFC3339), "--entities", entities, "--out", out)
	require.NoError(t, err)
	cols, rows := readOut(t, out)
	assert.Equal(t, []string{"user_id", "_valid_from", "_valid_to", "click_events_fv.clicked"}, cols)
	require.NotEmpty(t, rows)
	assert.Equal(t, fmt.Sprintf("wrote %d rows to %s\n", len(rows), out), stdout)

	db, err := engine.Open(engine.Options{Dir: data, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	prev := start
	for i, r := range rows {
		assert.Equal(t, "u1", r[0], "only the entities asked for")
		from, err := time.Parse(time.RFC3339Nano, r[1].(string))
		require.NoError(t, err)
		to, err := time.Parse(time.RFC3339Nano, r[2].(string))
		require.NoError(t, err)
		require.True(t, !from.Before(prev) && to.After(from) && !to.After(end), "row %d: [%s, %s) ordered and within the range", i, from, to)
		prev = to
		vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service",
			JoinKeys: map[string]any{"user_id": "u1"}, AsOf: from.Add(to.Sub(from) / 2)})
		require.NoError(t, err)
		assert.Equal(t, expectValue(".jsonl", vec.Features[0].Value), r[3], "row %d: the value holds over [%s, %s)", i, from, to)
	}
}

func TestHistoricalCommandErrors(t *testing.T) {
	data := historicalData(t)
	dir := t.TempDir()
	spine := filepath.Join(dir, "spine.csv")
	writeSpine(t, spine, testSpine())
	bad := filepath.Join(dir, "bad.csv")
	require.NoError(t, os.WriteFile(bad, []byte("user_id,ts\nu1,2024-05-01T11:00:00Z\nu2,2024-05-01T11:00:00Z\nu1,yesterday\n"), 0o644))
	ragged := filepath.Join(dir, "ragged.csv")
	require.NoError(t, os.WriteFile(ragged, []byte("user_id,ts\nu1,2024-05-01T11:00:00Z\nu2\n"), 0o644))
	out := filepath.Join(dir, "out.parquet")
	base := []string{"historical", "--data", data, "--workspace", "ads", "--service", svcV2}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no spine nor range", append(base, "--out", out), "give --spine FILE (a row per training example) or --start T and --end T"},
		{"no service", []string{"historical", "--data", data, "--workspace", "ads", "--spine", spine, "--out", out}, "--service S is required"},
		{"no workspace", []string{"historical", "--data", data, "--service", svcV2, "--spine", spine, "--out", out}, "--workspace W is required"},
		{"no out", append(base, "--spine", spine), "--out FILE is required"},
		{"unknown out extension", append(base, "--spine", spine, "--out", filepath.Join(dir, "out.xlsx")), `extension ".xlsx"; use .parquet, .csv, .jsonl or .ndjson`},
		{"unknown spine extension", append(base, "--spine", filepath.Join(dir, "spine.txt"), "--out", out), `extension ".txt"; use .parquet, .csv, .jsonl or .ndjson`},
		{"spine and range", append(base, "--spine", spine, "--start", "2024-05-01T00:00:00Z", "--end", "2024-05-02T00:00:00Z", "--out", out), "exclusive"},
		{"entities without range", append(base, "--spine", spine, "--entities", spine, "--out", out), "--entities is for range mode"},
		{"start without end", append(base, "--start", "2024-05-01T00:00:00Z", "--out", out), "--end T is required in range mode"},
		{"end before start", append(base, "--start", "2024-05-02T00:00:00Z", "--end", "2024-05-01T00:00:00Z", "--out", out), "must be after --start"},
		{"bad start", append(base, "--start", "monday", "--end", "2024-05-01T00:00:00Z", "--out", out), "--start:"},
		{"missing spine file", append(base, "--spine", filepath.Join(dir, "nope.csv"), "--out", out), "--spine: open"},
		{"ragged spine", append(base, "--spine", ragged, "--out", out), "ragged.csv: line 3: the row has a different number of fields"},
		{"bad spine row", append(base, "--spine", bad, "--out", out, "--timestamp-key", "ts"), "bad.csv: line 4: "},
		{"unknown service", []string{"historical", "--data", data, "--workspace", "ads", "--service", "nope", "--spine", spine, "--out", out}, `"nope" not found`},
	}
	check := func(t *testing.T, args []string, want string) {
		t.Helper()
		_, err := run(t, args...)
		require.Error(t, err)
		assert.Contains(t, err.Error(), want)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			assert.False(t, strings.HasPrefix(e.Name(), "out"), "no output file after an error: %s", e.Name())
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { check(t, tc.args, tc.want) })
	}

	// Through a node, errors name the spine file's lines too.
	url, key := historicalServer(t, data)
	remote := []string{"historical", "--server", url, "--api-key", key, "--workspace", "ads", "--service", svcV2, "--out", out}
	t.Run("server: ragged spine", func(t *testing.T) {
		check(t, append(remote, "--spine", ragged), "ragged.csv: line 3: the row has a different number of fields")
	})
	t.Run("server: bad spine row", func(t *testing.T) {
		check(t, append(remote, "--spine", bad, "--timestamp-key", "ts"), "bad.csv: line 4: ")
	})
	t.Run("server: unknown service", func(t *testing.T) {
		check(t, []string{"historical", "--server", url, "--api-key", key, "--workspace", "ads", "--service", "nope", "--spine", spine, "--out", out},
			`"nope" not found`)
	})
	t.Run("server: no key", func(t *testing.T) {
		check(t, []string{"historical", "--server", url, "--workspace", "ads", "--service", svcV2, "--spine", spine, "--out", out}, "HTTP 401")
	})
}
