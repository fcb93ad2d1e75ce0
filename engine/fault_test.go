package engine_test

// File-system fault injection (issue #5): an ingest + flush + merge + read
// workload runs over a errorfs.Injector that fails its i-th file operation,
// for every i the clean run makes. Each run must surface the error (as an
// API error or a logged one), acknowledge nothing after the log failed,
// and leave a directory that a plain reopen recovers with every
// acknowledged record, once, and nothing that was never sent.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/vfs"
	"github.com/featurelog/featurelog/vfs/errorfs"
)

const faultRepo = `workspace: fault
entities:
  - name: event
    join_keys: [event_id]
  - name: group
    join_keys: [grp]
sources:
  - name: fault_events
    schema:
      - {name: event_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: grp, type: String}
      - {name: n, type: Int64}
feature_views:
  - name: fault_latest
    source: fault_events
    entities: [event]
    timestamp_field: ts
    features:
      - attribute: {name: n}
  - name: fault_totals
    source: fault_events
    entities: [group]
    timestamp_field: ts
    features:
      - aggregate: {input: n, function: count, window: lifetime, name: n_count}
      - aggregate: {input: n, function: sum, window: lifetime, name: n_sum}
feature_services:
  - name: fault_totals_fs
    features: [fault_totals]
`

// The workload: faultRequests requests of faultRows records each, over
// faultGroups groups; a flush every faultFlushEvery requests, one merge
// of everything at faultCompactAt, a read every faultReadEvery.
const (
	faultRequests   = 24
	faultRows       = 3
	faultGroups     = 2
	faultFlushEvery = 5
	faultCompactAt  = 16
	faultReadEvery  = 7
	// faultMaxRequests bounds the request numbers of any test's workload.
	faultMaxRequests = 3 * faultRequests
)

var faultBase = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// faultOptions opens dir for the workload: small log segments so that the
// log cycles, no background maintainer so that operations happen in the
// same order every run.
func faultOptions(dir string, fs vfs.FS, logger *slog.Logger) engine.Options {
	return engine.Options{Dir: dir, FS: fs, Logger: logger, SegmentSize: 1024, DisableAutoFlush: true,
		CompactionFanIn: 2, HotTierBytes: -1, StateCacheBytes: -1,
		Now: func() time.Time { return faultBase.Add(time.Hour) }}
}

// faultScratch is where the runs' directories go: tmpfs when there is
// one, since fsync on a real disk would make the thousand runs slow
// without testing anything more (the operations are counted either way).
func faultScratch(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "featurelog-fault-")
		require.NoError(t, err)
		t.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return t.TempDir()
}

// faultRequest is the body of request k (1-based).
func faultRequest(k int) []byte {
	var b strings.Builder
	b.WriteString(`{"workspace_name":"fault","dry_run":false,"records":{"fault_events":[`)
	for j := range faultRows {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"record":{"event_id":"r%d-%d","ts":"%s","grp":"g%d","n":%d}}`,
			k, j, faultBase.Add(time.Duration(k)*time.Second).Format(time.RFC3339), j%faultGroups, k*10+j)
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

// faultOutcome is what one run of the workload saw.
type faultOutcome struct {
	opened bool
	acked  map[int]bool // requests answered with success
	failed map[int]bool // requests answered with an error
	// ackedAfterFailure lists requests acknowledged after an earlier one
	// failed: the log must refuse everything once it has failed.
	ackedAfterFailure []int
	errs              []error
}

func (o *faultOutcome) note(err error) {
	if err != nil {
		o.errs = append(o.errs, err)
	}
}

// runFaultWorkload runs the workload on dir through fs.
func runFaultWorkload(dir string, fs vfs.FS, logger *slog.Logger) *faultOutcome {
	o := &faultOutcome{acked: map[int]bool{}, failed: map[int]bool{}}
	db, err := engine.Open(faultOptions(dir, fs, logger))
	if err != nil {
		o.note(err)
		return o
	}
	o.opened = true
	for k := 1; k <= faultRequests; k++ {
		_, err := db.IngestJSON(faultRequest(k), nil)
		switch {
		case err != nil:
			o.failed[k] = true
			o.note(err)
		case len(o.failed) > 0:
			o.ackedAfterFailure = append(o.ackedAfterFailure, k)
			fallthrough
		default:
			o.acked[k] = true
		}
		if k%faultFlushEvery == 0 {
			o.note(db.Flush())
		}
		if k == faultCompactAt {
			o.note(db.CompactAll())
		}
		if k%faultReadEvery == 0 {
			_, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "fault", Service: "fault_totals_fs",
				JoinKeys: map[string]any{"grp": "g0"}})
			o.note(err)
		}
	}
	o.note(db.Close())
	return o
}

// lockedBuffer collects a run's log lines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// faultTemplate makes a data directory with the repo applied, to copy for
// each run.
func faultTemplate(t *testing.T, scratch string) string {
	dir := filepath.Join(scratch, "template")
	db, err := engine.Open(engine.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	_, err = db.ApplyWait(context.Background(), "fault.yaml", []byte(faultRepo))
	require.NoError(t, err)
	require.NoError(t, db.Close())
	return dir
}

func TestFaultInjection(t *testing.T) {
	scratch := faultScratch(t)
	template := faultTemplate(t, scratch)
	quiet := slog.New(slog.DiscardHandler)

	clean := filepath.Join(scratch, "clean")
	require.NoError(t, os.CopyFS(clean, os.DirFS(template)))
	in := errorfs.NewInjector(vfs.Default)
	o := runFaultWorkload(clean, in, quiet)
	require.Empty(t, o.errs, "the workload must run clean without faults")
	require.Len(t, o.acked, faultRequests)
	ops := in.Count()
	checkRecovered(t, clean, o, "clean run")
	t.Logf("the clean workload makes %d file operations", ops)

	// Fail only op i (a transient error), then op i and all after it (a
	// dead disk).
	modes := []bool{false, true}
	runs, lostTotal, ackedTotal := 0, 0, 0
	for _, sticky := range modes {
		for i := int64(1); i <= ops; i++ {
			name := fmt.Sprintf("op%d", i)
			if sticky {
				name += "-sticky"
			}
			dir := filepath.Join(scratch, name)
			require.NoError(t, os.CopyFS(dir, os.DirFS(template)))
			in := errorfs.NewInjector(vfs.Default)
			in.FailAt(i, sticky)
			var logs lockedBuffer
			o := runFaultWorkload(dir, in, slog.New(slog.NewTextHandler(&logs, nil)))
			injected := in.Injected()
			if len(injected) == 0 {
				// The failure changed nothing before op i (a merge of one
				// fewer segment, say) and the run ended sooner.
				require.NoError(t, os.RemoveAll(dir))
				continue
			}
			runs++
			ackedTotal += len(o.acked)
			ctx := fmt.Sprintf("fault at op %s (sticky=%v)", injected[0], sticky)
			require.Empty(t, o.ackedAfterFailure, "%s: requests acknowledged after an earlier one failed", ctx)
			require.True(t, surfaced(o, logs.String()), "%s: the injected error surfaced nowhere: errors %v, logs:\n%s", ctx, o.errs, logs.String())
			lostTotal += checkRecovered(t, dir, o, ctx)
			require.NoError(t, os.RemoveAll(dir))
		}
	}
	t.Logf("%d runs with a fault injected (of %d operations), %d acknowledged requests across them, %d lost",
		runs, ops, ackedTotal, lostTotal)
}

// surfaced reports whether the injected error reached the caller: as an
// error of the API, or in the engine's logs (a background failure, or a
// cleanup after the first error).
func surfaced(o *faultOutcome, logs string) bool {
	for _, err := range o.errs {
		if strings.Contains(err.Error(), "injected fault") {
			return true
		}
	}
	return strings.Contains(logs, "injected fault")
}

// checkRecovered reopens dir without faults and checks that the log holds
// every acknowledged record once, nothing unsent, and nothing of a request
// neither acknowledged nor failed; and that the served totals agree with
// the log. It returns the number of acknowledged records lost (always 0
// when it returns).
func checkRecovered(t *testing.T, dir string, o *faultOutcome, ctx string) int {
	t.Helper()
	db, err := engine.Open(faultOptions(dir, vfs.Default, slog.New(slog.DiscardHandler)))
	require.NoError(t, err, "%s: reopen without faults", ctx)
	served := map[string][2]int64{}
	for g := range faultGroups {
		grp := fmt.Sprintf("g%d", g)
		v, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "fault", Service: "fault_totals_fs",
			JoinKeys: map[string]any{"grp": grp}})
		require.NoError(t, err, "%s: read after reopen", ctx)
		var tot [2]int64
		for i, f := range v.Features {
			if f.Value.Kind != schema.Null {
				tot[i] = f.Value.I
			}
		}
		served[grp] = tot
	}
	require.NoError(t, db.Close())

	logged := faultLogged(t, dir, ctx)
	want := map[string][2]int64{}
	lost := 0
	for k := 1; k <= faultMaxRequests; k++ {
		for j := range faultRows {
			id := fmt.Sprintf("r%d-%d", k, j)
			n := logged[id]
			switch {
			case o.acked[k] && n != 1:
				lost++
				t.Fatalf("%s: acknowledged record %s is in the log %d times", ctx, id, n)
			case !o.acked[k] && !o.failed[k] && n != 0:
				t.Fatalf("%s: record %s of request %d, never sent, is in the log", ctx, id, k)
			case n > 1:
				t.Fatalf("%s: record %s is in the log %d times", ctx, id, n)
			}
			if n == 1 {
				grp := fmt.Sprintf("g%d", j%faultGroups)
				w := want[grp]
				want[grp] = [2]int64{w[0] + 1, w[1] + int64(k*10+j)}
			}
			delete(logged, id)
		}
	}
	require.Empty(t, logged, "%s: the log holds records that were never sent", ctx)
	for g := range faultGroups {
		grp := fmt.Sprintf("g%d", g)
		require.Equal(t, want[grp], served[grp], "%s: served count and sum of %s after reopen vs the log", ctx, grp)
	}
	return lost
}

// faultLogged counts the records of each event id in dir's log.
func faultLogged(t *testing.T, dir, ctx string) map[string]int {
	return engine.LogRowCounts(t, dir, ctx, func(_ []schema.Column, row []schema.Value) string { return row[0].S })
}

// TestMaintenanceErrReportsFailingCheckpoints: while the background
// maintainer's flushes fail, MaintenanceErr says why; once one succeeds it
// clears. Ingest is unaffected throughout: the log keeps every record.
func TestMaintenanceErrReportsFailingCheckpoints(t *testing.T) {
	scratch := faultScratch(t)
	dir := filepath.Join(scratch, "run")
	require.NoError(t, os.CopyFS(dir, os.DirFS(faultTemplate(t, scratch))))
	in := errorfs.NewInjector(vfs.Default)
	opts := faultOptions(dir, in, slog.New(slog.DiscardHandler))
	opts.DisableAutoFlush, opts.FlushRecords = false, 1
	db, err := engine.Open(opts)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.MaintenanceErr())

	in.FailOps(errorfs.OpCreate) // segment files cannot be created
	k := 0
	require.Eventually(t, func() bool {
		k++
		_, err := db.IngestJSON(faultRequest(k), nil)
		require.NoError(t, err, "ingest must not depend on checkpoints")
		return db.MaintenanceErr() != nil
	}, 10*time.Second, 20*time.Millisecond)
	require.ErrorIs(t, db.MaintenanceErr(), errorfs.ErrInjected)

	in.FailOps()
	require.Eventually(t, func() bool {
		k++
		_, err := db.IngestJSON(faultRequest(k), nil)
		require.NoError(t, err)
		return db.MaintenanceErr() == nil
	}, 10*time.Second, 20*time.Millisecond, "a successful checkpoint clears the error")
}
