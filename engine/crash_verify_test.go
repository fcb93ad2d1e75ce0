package engine_test

// The crash tests' checks: what the log holds after a kill, and what a
// restarted node serves.

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/schema"
)

// verifyServed reads every acknowledged id from a running node with
// get-features-batch.
func verifyServed(t *testing.T, ch *child, acked map[string]crashRecord, stage string) {
	t.Helper()
	ids := sortedIDs(acked)
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 1000)]
		ids = ids[len(chunk):]
		var rows []string
		for _, id := range chunk {
			rows = append(rows, fmt.Sprintf(`{"join_key_map":{"event_id":%q}}`, id))
		}
		out := getFeaturesBatch(t, ch, "crash_fs", rows, stage)
		for i, id := range chunk {
			want := acked[id]
			f := out[i]
			require.Len(t, f, 2, stage)
			require.NotNil(t, f[0], "%s: acknowledged record %s is not served", stage, id)
			require.NotNil(t, f[1], "%s: acknowledged record %s is not served", stage, id)
			assert.Equal(t, fmt.Sprint(want.writer), *f[0], "%s: record %s", stage, id)
			assert.Equal(t, fmt.Sprint(want.n), *f[1], "%s: record %s", stage, id)
		}
	}
}

// verifyWritersServed reads the per-writer count and sum from a running
// node: they must be those of the records in the log.
func (c *crashRun) verifyWritersServed(ch *child, stage string) {
	t := c.t
	t.Helper()
	var rows []string
	for w := 0; w < crashWriters; w++ {
		rows = append(rows, fmt.Sprintf(`{"join_key_map":{"writer":%d}}`, w))
	}
	out := getFeaturesBatch(t, ch, "crash_writers_fs", rows, stage)
	var got writerTotals
	for w, f := range out {
		require.Len(t, f, 2, stage)
		for i, dst := range []*int64{&got[w].Count, &got[w].Sum} {
			if f[i] == nil {
				continue // nothing yet: 0
			}
			v, err := strconv.ParseInt(*f[i], 10, 64)
			require.NoError(t, err, "%s: writer %d", stage, w)
			*dst = v
		}
	}
	c.requireWriters(got, stage)
}

// requireWriters compares served per-writer totals with the log's.
func (c *crashRun) requireWriters(got writerTotals, stage string) {
	c.t.Helper()
	require.Equal(c.t, c.want, got,
		"%s: per writer, the count and sum of n served (actual) are not those of the records in the log (expected): a record lost or counted twice", stage)
}

// getFeaturesBatch posts one get-features-batch request for rows (request
// data items) to the child and returns each row's features. A child that
// does not answer within 60s fails the test with its goroutines.
func getFeaturesBatch(t *testing.T, ch *child, service string, rows []string, stage string) [][]*string {
	t.Helper()
	body := `{"params":{"workspace_name":"crash","feature_service_name":"` + service + `","request_data":[` + strings.Join(rows, ",") + `]}}`
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Post(ch.url+"/api/v1/feature-service/get-features-batch", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s: get-features-batch of %s: %v; the child's log since it started:\n%s", stage, service, err, ch.dump())
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", stage, data)
	var out struct {
		Result []struct {
			Features []*string `json:"features"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(data, &out), stage)
	require.Len(t, out.Result, len(rows), stage)
	res := make([][]*string, len(rows))
	for i, r := range out.Result {
		res[i] = r.Features
	}
	return res
}

// verifyInProcess opens the killed node's directory in this process:
// every acknowledged record is served, and so are the per-writer totals of
// the log, online and by GetFeaturesForEvents; after Close the log still
// holds what it held.
func (c *crashRun) verifyInProcess(stage string) {
	t := c.t
	t.Helper()
	acked := c.st.ackedCopy()
	db, err := engine.Open(engine.Options{Dir: c.dir, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err, stage)
	ids := sortedIDs(acked)
	jks := make([]map[string]any, len(ids))
	for i, id := range ids {
		jks[i] = map[string]any{"event_id": id}
	}
	vecs, err := db.GetFeaturesBatch("crash", "crash_fs", jks, time.Time{})
	require.NoError(t, err, stage)
	for i, id := range ids {
		f := vecs[i].Features
		require.Equal(t, engine.Present, f[0].Status, "%s: acknowledged record %s is not served", stage, id)
		assert.Equal(t, acked[id].writer, f[0].Value.I, "%s: record %s", stage, id)
		assert.Equal(t, acked[id].n, f[1].Value.I, "%s: record %s", stage, id)
	}
	jks = jks[:0]
	for w := 0; w < crashWriters; w++ {
		jks = append(jks, map[string]any{"writer": int64(w)})
	}
	vecs, err = db.GetFeaturesBatch("crash", "crash_writers_fs", jks, time.Time{})
	require.NoError(t, err, stage)
	var got writerTotals
	for w, v := range vecs {
		if f := v.Features; f[0].Status == engine.Present {
			got[w].Count, got[w].Sum = f[0].Value.I, f[1].Value.I
		}
	}
	c.requireWriters(got, stage+", in process")
	hist, err := historicalWriters(db, []time.Time{crashEpoch, time.Now()})
	require.NoError(t, err, stage)
	require.Equal(t, writerTotals{}, hist[0], "%s: GetFeaturesForEvents before any record", stage)
	c.requireWriters(hist[1], stage+", GetFeaturesForEvents at now, in process")
	require.NoError(t, db.Close(), stage)
	require.Equal(t, c.want, c.checkLog(stage+", after an in-process open"), "%s: opening changed the log", stage)
	t.Logf("%s: %d acknowledged records and the writers' totals verified in process", stage, len(ids))
}

// checkLog reads a copy of the log (so that the node, not this check,
// repairs a torn tail of the real one): it must hold every acknowledged
// record exactly once, and at most once records that were sent but not
// acknowledged, and nothing else. It returns the per-writer totals of the
// records it holds: what the node must serve.
func (c *crashRun) checkLog(stage string) writerTotals {
	t := c.t
	t.Helper()
	counts := logCounts(t, copyLog(t, c.dir, c.scratch), "crash_events", "event_id")
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	for id := range c.st.acked {
		require.Equal(t, 1, counts[id], "%s: acknowledged record %s is in the log %d times", stage, id, counts[id])
	}
	var totals writerTotals
	unacked := 0
	for id, n := range counts {
		rec, sent := c.st.sent[id]
		require.True(t, sent, "%s: the log holds record %s, which was never sent", stage, id)
		require.Equal(t, 1, n, "%s: record %s is in the log %d times", stage, id, n)
		totals[rec.writer].Count++
		totals[rec.writer].Sum += rec.n
		if _, ok := c.st.acked[id]; !ok {
			unacked++
		}
	}
	t.Logf("%s: the log holds the %d acknowledged records once each, and %d that were in flight at a kill", stage, len(c.st.acked), unacked)
	return totals
}

// copyLog copies the log of data directory dir into scratch, replacing
// any earlier copy, and returns the data directory of the copy.
func copyLog(t *testing.T, dir, scratch string) string {
	t.Helper()
	dst := filepath.Join(scratch, "wal")
	require.NoError(t, os.RemoveAll(dst))
	require.NoError(t, os.CopyFS(dst, os.DirFS(filepath.Join(dir, "wal"))))
	return scratch
}

// logCounts reads the log in dir directly and counts, per value of the
// String column col of source, the logged records.
func logCounts(t *testing.T, dir, source, col string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	engine.EachLoggedRow(t, dir, "log counts", func(seq uint64, sec *record.Section, row []schema.Value) error {
		if sec.Source != source {
			return nil
		}
		ci := slices.IndexFunc(sec.Columns, func(c schema.Column) bool { return c.Name == col })
		if ci < 0 {
			return fmt.Errorf("log entry %d: source %s has no column %s", seq, source, col)
		}
		counts[row[ci].S]++
		return nil
	})
	return counts
}

func sortedIDs(m map[string]crashRecord) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
