//go:build linux

package httpapi_test

// TestDiskFull (SPEC §2, §9): a node whose writes fail because the disk is
// full stops acknowledging instead of losing records, and recovers on
// restart once space returns.
//
// The node runs in a child process (this test binary re-executed as
// TestDiskFullChild) that lowers its own RLIMIT_FSIZE and ignores SIGXFSZ,
// so that a write past the limit fails with EFBIG, as a write to a full
// disk fails with ENOSPC. The limit applies per file, so each subtest
// sizes the log's segments and the checkpoints to make one kind of file
// hit it:
//
//   - log_write_fails: log segments larger than the limit. Once the log's
//     file reaches it, ingest answers 503 Unavailable, and so does every
//     later ingest; reads still work; /readyz says unavailable. The node
//     is stopped and restarted without the limit: every acknowledged
//     record is served, a failed request is served whole or not at all,
//     nothing else is, and new ingest works.
//   - segment_write_fails/merge_fails and .../flush_fails: small log
//     segments; a merged segment, or a flushed memtable, grows past the
//     limit and its write fails (segments are derived data: the log
//     keeps every record). Ingest keeps working, the node stays ready; it
//     is SIGKILLed and restarted without the limit: every acknowledged
//     record is served and the per-writer totals are exact.
//
//	go test ./httpapi -run TestDiskFull -v

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dfRecord is what was sent for one event id.
type dfRecord struct{ writer, n int64 }

// dfRequest is one ingest request and its fate.
type dfRequest struct {
	recs   map[string]dfRecord
	status int
	body   []byte
}

// dfLedger is what the parent knows: every request sent and its answer.
type dfLedger struct {
	mu   sync.Mutex
	reqs []*dfRequest
	seq  int // ids: df-<seq>-<i>
}

// ingest sends one request of k records for writer w and records it.
func (l *dfLedger) ingest(t *testing.T, n *dfNode, w, k int) *dfRequest {
	l.mu.Lock()
	seq := l.seq
	l.seq++
	l.mu.Unlock()
	req := &dfRequest{recs: map[string]dfRecord{}}
	var rows []string
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i := 0; i < k; i++ {
		id := fmt.Sprintf("df-%d-%d", seq, i)
		rec := dfRecord{writer: int64(w), n: int64(seq*100 + i)}
		req.recs[id] = rec
		rows = append(rows, fmt.Sprintf(`{"record":{"event_id":%q,"ts":%q,"writer":%d,"n":%d}}`, id, now, w, rec.n))
	}
	body := `{"workspace_name":"df","dry_run":false,"records":{"df_events":[` + strings.Join(rows, ",") + `]}}`
	req.status, req.body = n.post(t, "/ingest", body)
	l.mu.Lock()
	l.reqs = append(l.reqs, req)
	l.mu.Unlock()
	return req
}

// acked returns the acknowledged records, and the requests that failed.
func (l *dfLedger) acked() (map[string]dfRecord, []*dfRequest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]dfRecord{}
	var failed []*dfRequest
	for _, r := range l.reqs {
		if r.status != http.StatusOK {
			failed = append(failed, r)
			continue
		}
		for id, rec := range r.recs {
			out[id] = rec
		}
	}
	return out, failed
}

// getBatch reads rows (join-key maps as JSON) of service with
// get-features-batch and returns each row's features, nil for null.
func (n *dfNode) getBatch(t *testing.T, service string, rows []string) [][]*string {
	t.Helper()
	status, data := n.post(t, "/api/v1/feature-service/get-features-batch",
		`{"params":{"workspace_name":"df","feature_service_name":"`+service+`","request_data":[`+strings.Join(rows, ",")+`]}}`)
	require.Equal(t, http.StatusOK, status, "%s", data)
	var out struct {
		Result []struct {
			Features []*string `json:"features"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(data, &out))
	require.Len(t, out.Result, len(rows))
	res := make([][]*string, len(rows))
	for i, r := range out.Result {
		res[i] = r.Features
	}
	return res
}

// served reads the records of ids; absent ones are missing from the map.
func (n *dfNode) served(t *testing.T, ids []string) map[string]dfRecord {
	t.Helper()
	out := map[string]dfRecord{}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 1000)]
		ids = ids[len(chunk):]
		var rows []string
		for _, id := range chunk {
			rows = append(rows, fmt.Sprintf(`{"join_key_map":{"event_id":%q}}`, id))
		}
		for i, f := range n.getBatch(t, "df_fs", rows) {
			require.Len(t, f, 2)
			if f[0] == nil {
				continue
			}
			require.NotNil(t, f[1], "record %s: writer without n", chunk[i])
			w, err1 := strconv.ParseInt(*f[0], 10, 64)
			v, err2 := strconv.ParseInt(*f[1], 10, 64)
			require.NoError(t, err1)
			require.NoError(t, err2)
			out[chunk[i]] = dfRecord{writer: w, n: v}
		}
	}
	return out
}

// dfTotals is, per writer, the count and sum of n of a set of records.
type dfTotals [dfWriters]struct{ Count, Sum int64 }

func totalsOf(recs map[string]dfRecord) dfTotals {
	var t dfTotals
	for _, r := range recs {
		t[r.writer].Count++
		t[r.writer].Sum += r.n
	}
	return t
}

// writerTotals reads the per-writer count and sum the node serves.
func (n *dfNode) writerTotals(t *testing.T) dfTotals {
	t.Helper()
	var rows []string
	for w := 0; w < dfWriters; w++ {
		rows = append(rows, fmt.Sprintf(`{"join_key_map":{"writer":%d}}`, w))
	}
	var got dfTotals
	for w, f := range n.getBatch(t, "df_writers_fs", rows) {
		for i, dst := range []*int64{&got[w].Count, &got[w].Sum} {
			if f[i] != nil {
				v, err := strconv.ParseInt(*f[i], 10, 64)
				require.NoError(t, err)
				*dst = v
			}
		}
	}
	return got
}

// verifyRecovered checks a node restarted on what the ledger sent: every
// acknowledged record is served as sent; each failed request is served
// whole or not at all; nothing else is; the per-writer totals are those of
// the records served. It returns how many failed requests survived.
func verifyRecovered(t *testing.T, n *dfNode, l *dfLedger) int {
	t.Helper()
	acked, failed := l.acked()
	var ids []string
	sent := map[string]dfRecord{}
	for id, rec := range acked {
		ids, sent[id] = append(ids, id), rec
	}
	for _, r := range failed {
		for id, rec := range r.recs {
			ids, sent[id] = append(ids, id), rec
		}
	}
	got := n.served(t, ids)
	for id, rec := range acked {
		g, ok := got[id]
		require.True(t, ok, "acknowledged record %s is lost", id)
		require.Equal(t, rec, g, "acknowledged record %s", id)
	}
	survived := 0
	for _, r := range failed {
		present := 0
		for id, rec := range r.recs {
			if g, ok := got[id]; ok {
				present++
				require.Equal(t, rec, g, "record %s of a failed request", id)
			}
		}
		require.Contains(t, []int{0, len(r.recs)}, present,
			"a failed request of %d records is served in part (%d): a request is atomic", len(r.recs), present)
		if present > 0 {
			survived++
			// The client was told the request failed: it must not have been
			// told that nothing was written, or its retry would double it.
			assert.NotContains(t, string(r.body), "nothing was written",
				"a failed request that survived the restart was answered %s", r.body)
		}
	}
	require.Equal(t, totalsOf(got), n.writerTotals(t),
		"per writer, the count and sum of n served (actual) are not those of the records served (expected): a record lost or counted twice")
	return survived
}

// verifyIngestWorks ingests one request into a recovered node and reads it
// back.
func verifyIngestWorks(t *testing.T, n *dfNode, l *dfLedger) {
	t.Helper()
	req := l.ingest(t, n, 0, 3)
	require.Equal(t, http.StatusOK, req.status, "ingest after the restart: %s", req.body)
	ids := make([]string, 0, len(req.recs))
	for id := range req.recs {
		ids = append(ids, id)
	}
	require.Equal(t, req.recs, n.served(t, ids), "records ingested after the restart")
}

// dfFailure is a failed ingest's answer.
type dfFailure struct {
	RequestError struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	} `json:"requestError"`
}

func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Run("log_write_fails", testDiskFullLog)
	t.Run("segment_write_fails/merge_fails", func(t *testing.T) { testDiskFullSegments(t, true) })
	t.Run("segment_write_fails/flush_fails", func(t *testing.T) { testDiskFullSegments(t, false) })
}

// testDiskFullLog: the log's file hits the limit.
func testDiskFullLog(t *testing.T) {
	const limit = 128 << 10
	dir := filepath.Join(t.TempDir(), "data")
	// One log segment (64 MiB) holds everything: the log's one file hits
	// the limit; checkpoints never run.
	n := startDFNode(t, dir, dfFsizeEnv+"="+strconv.Itoa(limit), dfSegmentEnv+"=67108864", dfFlushEnv+"=100000000")
	l := &dfLedger{}
	var wg sync.WaitGroup
	for w := 0; w < dfWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100_000; i++ { // stops at the first failure: the log is full long before
				if r := l.ingest(t, n, w, 1+(i*37)%150); r.status != http.StatusOK {
					return
				}
			}
		}()
	}
	wg.Wait()
	acked, failed := l.acked()
	require.NotEmpty(t, acked, "nothing was acknowledged before the log filled")
	require.NotEmpty(t, failed)
	logSize := walBytes(t, dir)
	t.Logf("%d records acknowledged, %d requests failed; the log holds %d bytes (limit %d)", len(acked), len(failed), logSize, limit)
	assert.LessOrEqual(t, logSize, int64(limit), "the log grew past the file-size limit")

	// Every failure, and every later ingest, is 503 Unavailable with a
	// message that says why.
	for i := 0; i < 5; i++ {
		r := l.ingest(t, n, i%dfWriters, 2)
		failed = append(failed, r)
	}
	for _, r := range failed {
		require.Equal(t, http.StatusServiceUnavailable, r.status, "%s", r.body)
		var f dfFailure
		require.NoError(t, json.Unmarshal(r.body, &f), "%s", r.body)
		assert.Equal(t, "Unavailable", f.RequestError.ErrorType, "%s", r.body)
		msg := f.RequestError.ErrorMessage
		assert.Contains(t, msg, "cannot guarantee durability")
		assert.Contains(t, msg, "restart the node")
		assert.Contains(t, msg, "file too large", "the message does not name the cause: %s", msg)
	}
	diskFull := 0
	for _, r := range failed {
		if strings.Contains(string(r.body), "the disk is full or a file-size limit was reached") {
			diskFull++
		}
	}
	assert.Positive(t, diskFull, "no 503 says the disk is full; the first: %s", failed[0].body)
	t.Logf("the 503s' messages (%d of %d say the disk is full); the first: %s", diskFull, len(failed), failed[0].body)

	// Reads still work; the node is not ready; it is alive.
	some := map[string]dfRecord{}
	for id, rec := range acked {
		if some[id] = rec; len(some) == 100 {
			break
		}
	}
	ids := make([]string, 0, len(some))
	for id := range some {
		ids = append(ids, id)
	}
	assert.Equal(t, some, n.served(t, ids), "reads after the log failed")
	status, body := n.get(t, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, status, "/readyz: %s", body)
	assert.Contains(t, string(body), "unavailable")
	assert.Contains(t, string(body), "the disk is full or a file-size limit was reached")
	t.Logf("/readyz: %d %s", status, body)
	status, body = n.get(t, "/healthz")
	assert.Equal(t, http.StatusOK, status, "/healthz: %s", body)

	n.stop(t)
	assert.Contains(t, n.stderr.String(), "file too large", "the node's log does not name the cause")

	// Space returns: restart without the limit.
	n = startDFNode(t, dir)
	survived := verifyRecovered(t, n, l)
	t.Logf("after the restart: %d acknowledged records served; %d of %d failed requests survived", len(acked), survived, len(failed))
	verifyIngestWorks(t, n, l)
	status, body = n.get(t, "/readyz")
	assert.Equal(t, http.StatusOK, status, "/readyz after the restart: %s", body)
	n.stop(t)
}

// testDiskFullSegments: a checkpoint's segment hits the limit; the log's
// small segments never do. With flushes and merges every 5ms of 250
// records, a merged segment hits it (merge_fails); with no flush before
// 15,000 records, the first flush does (flush_fails), and every later
// one, which retries the same memtable first.
func testDiskFullSegments(t *testing.T, merge bool) {
	const limit = 192 << 10 // about 10,000 records of a segment of df_fv
	dir := filepath.Join(t.TempDir(), "data")
	env := []string{dfFsizeEnv + "=" + strconv.Itoa(limit), dfSegmentEnv + "=32768", dfFlushEnv + "=15000"}
	failure := "background flush or merge failed" // the engine's maintainer
	if merge {
		env = []string{env[0], env[1], dfFlushEnv + "=250", dfMaintainEnv + "=5ms"}
		failure = dfMaintFailed + " merge"
	}
	n := startDFNode(t, dir, env...)
	l := &dfLedger{}
	failed := func() bool { return strings.Contains(n.stderr.String(), failure) }
	more := 0 // requests per writer after the first failed flush or merge
	var wg sync.WaitGroup
	for w := 0; w < dfWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			after := 0
			for i := 0; i < 5000 && after < 30; i++ {
				r := l.ingest(t, n, w, 1+(i*37)%100)
				if !assert.Equal(t, http.StatusOK, r.status, "ingest while segment writes fail: %s", r.body) {
					return
				}
				if failed() {
					after++
				}
			}
			if w == 0 {
				more = after
			}
		}()
	}
	wg.Wait()
	acked, failedReqs := l.acked()
	require.Empty(t, failedReqs)
	log := n.stderr.String()
	require.True(t, failed(), "no %q: the limit was never hit (%d records acknowledged); the node's log:\n%s",
		failure, len(acked), tailOf(log))
	i := strings.Index(log, failure)
	first := log[i : i+strings.IndexByte(log[i:], '\n')]
	assert.Contains(t, first, "file too large", "the failed flush or merge does not name the cause")
	flushes := strings.Count(log, "flushed memtables")
	t.Logf("%d records acknowledged, %d requests per writer after the first failure; %d flushes; %d failures, the first: %s",
		len(acked), more, flushes, strings.Count(log, failure), first)
	if merge {
		assert.Positive(t, flushes, "no flush succeeded before the limit was hit")
	}
	status, body := n.get(t, "/readyz")
	assert.Equal(t, http.StatusOK, status, "/readyz while checkpoints fail: %s", body)
	require.Equal(t, totalsOf(acked), n.writerTotals(t), "per writer, the totals served before the kill")

	n.kill()
	n.checkLog(t)
	n = startDFNode(t, dir)
	require.Zero(t, verifyRecovered(t, n, l))
	require.Equal(t, totalsOf(acked), n.writerTotals(t), "per writer, the totals served after the restart")
	tmps, err := filepath.Glob(filepath.Join(dir, "segments", "*.tmp"))
	require.NoError(t, err)
	assert.Empty(t, tmps, "temporary segment files outlived the restart")
	verifyIngestWorks(t, n, l)
	n.stop(t)
}

// walBytes is the size of the largest of the log's files in data
// directory dir.
func walBytes(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "wal"))
	require.NoError(t, err)
	var size int64
	for _, e := range entries {
		fi, err := e.Info()
		require.NoError(t, err)
		size = max(size, fi.Size())
	}
	return size
}

func tailOf(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}
