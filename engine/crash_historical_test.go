package engine_test

// TestCrashKillHistorical: SIGKILL at random moments of flushes, merges and
// historical (point-in-time) reads under ingest; after every restart
// historical reads agree with what was acknowledged.
//
// The child node flushes every 100 records and merges two segments at a
// time (as in TestCrashKillCompaction), and besides crashMaintain runs
// crashHistorical: a loop of reads of the per-writer count and sum, each
// read chained after the previous one (online, GetFeaturesForEvents at
// several times, GetFeatures as_of, online again), every one of which
// must see at least what the one before it saw. A failed read or a broken
// chain is announced on stderr and fails the test. Meanwhile the parent
// reads the totals over HTTP (get-features-for-events) beside its
// writers: each answer must lie between the acknowledged totals before
// the request and the sent totals after it. Most kills are aimed: 0–1ms
// after the child announces a flush, merge or historical read starting.
//
// After every restart, besides the harness's checks (crash_test.go):
// get-features-for-events at a time after every acknowledged record
// returns, per writer, exactly the count and sum of the records in the
// log (the acknowledged ones and the in-flight ones that made it: c.want),
// and nothing at a time before any record; a sample of acknowledged
// records is served by a spine join of their ids. verifyInProcess checks
// the same totals with GetFeaturesForEvents in process.
//
//	go test ./engine -run TestCrashKillHistorical -crash.cycles=1000 -timeout 2h

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// crashEpoch is a time before every record of the crash tests.
var crashEpoch = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

// crashHistorical reads historically until the process dies, pausing up to
// pause between reads, announcing each on stderr (crashMaintPrefix, op
// "historical") and any failure as an error.
func crashHistorical(db *engine.DB, pause time.Duration) {
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	for {
		time.Sleep(time.Duration(r.Int63n(int64(pause))))
		fmt.Fprintf(os.Stderr, "%sbegin historical\n", crashMaintPrefix)
		err := historicalChain(db, r)
		if errors.Is(err, engine.ErrClosed) {
			return
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%serror historical: %v\n", crashMaintPrefix, err)
		}
		fmt.Fprintf(os.Stderr, "%send historical\n", crashMaintPrefix)
	}
}

// historicalChain reads the writers' totals several ways, one after the
// other: online; GetFeaturesForEvents at 32 past times and now;
// GetFeatures as_of now; online again. Lifetime counts and sums (n ≥ 0)
// never decrease, neither with the read time T nor as more is applied, so
// each read must see at least what the one before it saw: an online read
// only sees records applied before it, whose times lie before it.
func historicalChain(db *engine.DB, r *rand.Rand) error {
	first, err := onlineWriters(db, time.Time{})
	if err != nil {
		return fmt.Errorf("online read: %w", err)
	}
	now := time.Now()
	times := []time.Time{crashEpoch}
	for range 30 { // in the last second: the join's work, and the window for a kill, grow with the spine
		times = append(times, now.Add(-time.Millisecond-time.Duration(r.Int63n(int64(time.Second)))))
	}
	slices.SortFunc(times, time.Time.Compare)
	times = append(times, now.Add(-time.Millisecond), now)
	hist, err := historicalWriters(db, times)
	if err != nil {
		return fmt.Errorf("get-features-for-events: %w", err)
	}
	if hist[0] != (writerTotals{}) {
		return fmt.Errorf("get-features-for-events at %s, before any record: %v", crashEpoch, hist[0])
	}
	for i := 2; i < len(hist); i++ {
		if err := notLess(hist[i], hist[i-1], fmt.Sprintf("get-features-for-events at %s", times[i].Format(time.RFC3339Nano)),
			fmt.Sprintf("the same at the earlier %s", times[i-1].Format(time.RFC3339Nano))); err != nil {
			return err
		}
	}
	if err := notLess(hist[len(hist)-1], first, "get-features-for-events at now", "the online read before"); err != nil {
		return err
	}
	asOf, err := onlineWriters(db, time.Now())
	if err != nil {
		return fmt.Errorf("as_of read: %w", err)
	}
	if err := notLess(asOf, hist[len(hist)-1], "the as_of read", "get-features-for-events at now"); err != nil {
		return err
	}
	last, err := onlineWriters(db, time.Time{})
	if err != nil {
		return fmt.Errorf("online read: %w", err)
	}
	if err := notLess(last, asOf, "the online read after", "the as_of read"); err != nil {
		return err
	}
	return nil
}

// notLess reports an error unless every writer's count and sum in got are
// at least those in before.
func notLess(got, before writerTotals, gotName, beforeName string) error {
	for w := range got {
		if got[w].Count < before[w].Count || got[w].Sum < before[w].Sum {
			return fmt.Errorf("writer %d: %s saw %+v, less than %s: %+v", w, gotName, got[w], beforeName, before[w])
		}
	}
	return nil
}

// onlineWriters reads the writers' totals with GetFeaturesBatch, as of
// asOf (zero: now).
func onlineWriters(db *engine.DB, asOf time.Time) (writerTotals, error) {
	var got writerTotals
	jks := make([]map[string]any, crashWriters)
	for w := range jks {
		jks[w] = map[string]any{"writer": int64(w)}
	}
	vecs, err := db.GetFeaturesBatch("crash", "crash_writers_fs", jks, asOf)
	if err != nil {
		return got, err
	}
	for w, v := range vecs {
		if f := v.Features; f[0].Status == engine.Present {
			got[w].Count, got[w].Sum = f[0].Value.I, f[1].Value.I
		}
	}
	return got, nil
}

// historicalWriters reads the writers' totals at each of times with one
// GetFeaturesForEvents spine (times in reverse order, writers
// interleaved).
func historicalWriters(db *engine.DB, times []time.Time) ([]writerTotals, error) {
	sp := &histSpine{cols: []string{"writer", "ts"}}
	for i := len(times) - 1; i >= 0; i-- {
		for w := 0; w < crashWriters; w++ {
			sp.rows = append(sp.rows, []any{int64(w), times[i]})
		}
	}
	out := make([]writerTotals, len(times))
	sink := &histSink{row: func(i int, lead []any, vals []schema.Value) error {
		ti, w := len(times)-1-i/crashWriters, i%crashWriters
		if lead[0] != int64(w) {
			return fmt.Errorf("spine row %d: writer %v, want %d", i, lead[0], w)
		}
		for f, dst := range []*int64{&out[ti][w].Count, &out[ti][w].Sum} {
			switch vals[f].Kind {
			case schema.Null:
			case schema.Int64:
				*dst = vals[f].I
			default:
				return fmt.Errorf("spine row %d: feature %d is %v", i, f, vals[f])
			}
		}
		return nil
	}}
	req := &engine.HistoricalRequest{Workspace: "crash", Service: "crash_writers_fs", TimestampKey: "ts"}
	if err := db.GetFeaturesForEvents(context.Background(), req, sp, sink); err != nil {
		return nil, err
	}
	if sink.rows != len(sp.rows) {
		return nil, fmt.Errorf("%d rows answered for a spine of %d", sink.rows, len(sp.rows))
	}
	return out, nil
}

// httpHistorical posts a JSON spine (rows are JSON objects) to the child's
// get-features-for-events and returns the answer's rows. An error wrapping
// io.ErrUnexpectedEOF or a transport error means the node went away; any
// other error is a wrong answer.
func httpHistorical(client *http.Client, ch *child, service string, rows []string) ([]map[string]json.RawMessage, error) {
	body := `{"params":{"workspace_name":"crash","feature_service_name":"` + service +
		`","timestamp_key":"ts","spine":[` + strings.Join(rows, ",") + `]}}`
	resp, err := client.Post(ch.url+"/api/v1/feature-service/get-features-for-events", "application/json", strings.NewReader(body))
	if err != nil {
		return nil, &nodeGoneError{err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, &nodeGoneError{err}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("answer line %d: %w: %s", len(out)+1, err, sc.Bytes())
		}
		if _, ok := m["error"]; ok {
			return nil, fmt.Errorf("answer line %d: %s", len(out)+1, sc.Bytes())
		}
		out = append(out, m)
	}
	if len(out) != len(rows) {
		return nil, fmt.Errorf("%d rows answered for a spine of %d", len(out), len(rows))
	}
	return out, nil
}

// nodeGoneError is a request that failed because the node went away.
type nodeGoneError struct{ err error }

func (e *nodeGoneError) Error() string { return "the node went away: " + e.err.Error() }
func (e *nodeGoneError) Unwrap() error { return e.err }

// int64Feature decodes a feature of a historical answer: an int64 as a
// JSON string, or null (0).
func int64Feature(raw json.RawMessage) (int64, error) {
	if raw == nil || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("feature %s is not an int64 string", raw)
	}
	return strconv.ParseInt(s, 10, 64)
}

// httpHistoricalWriters reads the writers' totals at at over HTTP.
func httpHistoricalWriters(client *http.Client, ch *child, at time.Time) (writerTotals, error) {
	var got writerTotals
	var rows []string
	for w := 0; w < crashWriters; w++ {
		rows = append(rows, fmt.Sprintf(`{"writer":%d,"ts":%q}`, w, at.UTC().Format(time.RFC3339Nano)))
	}
	out, err := httpHistorical(client, ch, "crash_writers_fs", rows)
	if err != nil {
		return got, err
	}
	for w, m := range out {
		for f, dst := range map[string]*int64{"crash_writers.n_count": &got[w].Count, "crash_writers.n_sum": &got[w].Sum} {
			if *dst, err = int64Feature(m[f]); err != nil {
				return got, fmt.Errorf("writer %d: %s: %w", w, f, err)
			}
		}
	}
	return got, nil
}

// verifyHistoricalServed checks a restarted node's historical answers:
// at a time after every record, the totals of the log (c.want); before
// any record, nothing; and a sample of acknowledged records, by id.
func verifyHistoricalServed(c *crashRun, ch *child, stage string) {
	t := c.t
	t.Helper()
	client := &http.Client{Timeout: 60 * time.Second}
	got, err := httpHistoricalWriters(client, ch, time.Now())
	require.NoError(t, err, stage)
	require.Equal(t, c.want, got,
		"%s: per writer, the count and sum of n of get-features-for-events at now (actual) are not those of the records in the log (expected)", stage)
	got, err = httpHistoricalWriters(client, ch, crashEpoch)
	require.NoError(t, err, stage)
	require.Equal(t, writerTotals{}, got, "%s: get-features-for-events before any record", stage)

	acked := c.st.ackedCopy()
	ids := sortedIDs(acked)
	c.r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	ids = ids[:min(len(ids), 300)]
	if len(ids) == 0 {
		return
	}
	at := time.Now().UTC().Format(time.RFC3339Nano)
	var rows []string
	for i, id := range ids {
		ts := at
		if i%4 == 3 {
			ts = crashEpoch.Format(time.RFC3339Nano) // before the record: not served
		}
		rows = append(rows, fmt.Sprintf(`{"event_id":%q,"ts":%q}`, id, ts))
	}
	out, err := httpHistorical(client, ch, "crash_fs", rows)
	require.NoError(t, err, stage)
	for i, id := range ids {
		w, werr := int64Feature(out[i]["crash_fv.writer"])
		n, nerr := int64Feature(out[i]["crash_fv.n"])
		require.NoError(t, errors.Join(werr, nerr), "%s: record %s", stage, id)
		if i%4 == 3 {
			assert.Equal(t, "null", string(out[i]["crash_fv.n"]), "%s: record %s served before its time", stage, id)
			continue
		}
		require.NotEqual(t, "null", string(out[i]["crash_fv.n"]), "%s: acknowledged record %s is not served by get-features-for-events", stage, id)
		assert.Equal(t, acked[id], crashRecord{writer: w, n: n}, "%s: record %s", stage, id)
	}
}

// historicalReader reads the writers' totals over HTTP until the node goes
// away: each answer must lie between the totals acknowledged before the
// request and those sent after the answer.
func historicalReader(c *crashRun, ch *child, cycle int, checked *atomic.Int64) {
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	for {
		lo, _ := c.st.totals()
		got, err := httpHistoricalWriters(client, ch, time.Now())
		var gone *nodeGoneError
		if errors.As(err, &gone) {
			return
		}
		if !assert.NoError(c.t, err, "cycle %d: get-features-for-events while ingesting", cycle) {
			return
		}
		_, hi := c.st.totals()
		if err := notLess(got, lo, "get-features-for-events at now", "the totals acknowledged before it"); err != nil {
			c.t.Errorf("cycle %d: a record acknowledged before the read is missing from it: %v", cycle, err)
			return
		}
		if err := notLess(hi, got, "the totals sent", "get-features-for-events at now"); err != nil {
			c.t.Errorf("cycle %d: the read counts records never sent: %v", cycle, err)
			return
		}
		checked.Add(1)
	}
}

func TestCrashKillHistorical(t *testing.T) {
	var checked atomic.Int64 // reads the parent checked while ingesting
	run := runCrash(t, crashConfig{
		cycles: 30, maxTarget: 40,
		env: []string{crashFlushRecordsEnv + "=100", crashFanInEnv + "=2",
			crashMaintainEnv + "=10ms", crashHistoricalEnv + "=5ms"},
		aimAtMaint: 0.8, aimDelay: time.Millisecond,
		aimOps:     []string{"flush", "merge", "merge-all", "historical", "historical", "historical"},
		afterStart: verifyHistoricalServed,
		reader: func(c *crashRun, ch *child, cycle int) {
			historicalReader(c, ch, cycle, &checked)
		},
	})

	log, err := os.ReadFile(run.logFile.Name())
	require.NoError(t, err)
	flushes := strings.Count(string(log), "flushed memtables")
	reads := strings.Count(string(log), crashMaintPrefix+"end historical")
	inRead, inMaint := 0, 0
	for ops, n := range run.killsIn {
		if strings.Contains(ops, "historical") {
			inRead += n
		}
		if strings.Contains(ops, "flush") || strings.Contains(ops, "merge") {
			inMaint += n
		}
	}
	t.Logf("%d kills (%d aimed): %d during a historical read, %d during a flush or merge; by operations running: %v; "+
		"%d flushes, %d historical read chains in the child, %d historical reads checked by the parent while ingesting",
		run.cycles, run.aimed, inRead, inMaint, run.killsIn, flushes, reads, checked.Load())

	// The test tested what it claims: kills interrupted historical reads
	// and flushes or merges, and both sides read.
	if run.cycles < 20 {
		return // too few kills for the counts below to be certain
	}
	assert.Positive(t, inRead, "no kill interrupted a historical read")
	assert.Positive(t, inMaint, "no kill interrupted a flush or merge")
	assert.GreaterOrEqual(t, reads, run.cycles, "fewer historical read chains in the child than cycles")
	assert.Positive(t, checked.Load(), "the parent checked no historical read while ingesting")
}
