package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/featurelog/featurelog/schema"
)

// RunLevel is how far Run aggregates a view's rows (SPEC §6, "run").
type RunLevel string

// The levels of Run.
const (
	// RunDisabled reports the transformed rows: one per input row that
	// passes the view's transform and filter.
	RunDisabled RunLevel = "disabled"
	// RunPartial reports the partial aggregates: one row per key and tile.
	RunPartial RunLevel = "partial"
	// RunFull reports the feature values as of End: one row per key.
	RunFull RunLevel = "full"
)

// RunRequest asks Run for a view's computation over [Start, End).
type RunRequest struct {
	Start, End time.Time
	Level      RunLevel
	// MockSources, when it holds the view's source, replaces the source's
	// data by these rows: the log and the batch files are not read. Rows
	// map column names to values as IngestRequest.Records does; also
	// accepted are strings for any column type, parsed as the cells of a
	// CSV batch file are, and jsontext.Value, decoded as the ingest API
	// decodes a JSON value. A name other than the view's source is an
	// error; an empty map reads the source's data.
	MockSources map[string][]map[string]any
}

// Run computes feature view view of workspace over the rows of its source
// with event time in [req.Start, req.End) — the offline log and the
// source's batch files, or req.MockSources — and streams the result to
// sink: Begin with the columns, then Row(nil, values) per row. It writes
// nothing: no log entry, no file of the data directory, no serving state;
// the aggregates are built in memory, as from_source builds them.
//
// Levels (columns in order):
//
//   - disabled: the view's columns (the source's, then the transform's)
//     of every input row that passes the transform and the filter (and
//     is not before feature_start_time), in input order — log order, then
//     the batch files', or the mock rows' — streamed as they are read.
//   - partial, aggregate views: _tile_start, _tile_end, the join keys,
//     then per feature the feature's function over the key's events in
//     the tile (a count, sum, mean, last-n list, ...), by key then tile.
//     A tile is the view's aggregation_interval; for continuous views it
//     is the 10-second tile of the tile store's finest level (tiles.TileOf),
//     the unit from which every continuous window is assembled. The first
//     and last tiles may reach past [Start, End); they hold only events
//     inside it.
//   - partial, attribute views (which keep versions, not aggregates): one
//     row per key and record, _tile_start being the record's event time
//     and _tile_end the next record's (or End): the interval over which
//     the record is the key's latest; then the join keys and features.
//   - full: the join keys, then the features as of End, exactly as an
//     online read with as_of End over the same rows answers them: one row
//     per key with at least one row, by key.
//
// Log rows that the view's rules reject now (they were accepted under
// earlier rules) are skipped, as replay skips them; a batch row or mock
// row that the view rejects is an error. Batch rows equal in every column
// to a logged record are the same event and count once, as in backfills.
// Errors: an unknown workspace or view is CodeNotFound; a bad level,
// times, mock source or mock row is CodeInvalidArgument.
func (db *DB) Run(ctx context.Context, workspace, view string, req *RunRequest, sink HistoricalSink) error {
	ws, v, err := db.runView(workspace, view)
	if err != nil {
		return err
	}
	if err := req.check(); err != nil {
		return err
	}
	lv, err := newRunLevel(v, req)
	if err != nil {
		return err
	}
	mock, err := req.mockRows(v, lv)
	if err != nil {
		return err
	}
	if mock == nil {
		if err := db.checkWholeLog(); err != nil {
			return err
		}
	}
	if err := sink.Begin(lv.columns()); err != nil {
		return err
	}
	f := &runFeed{lv: lv, sink: sink, start: req.Start.UnixNano(), end: req.End.UnixNano()}
	if mock == nil {
		// Cluster mode: a partition's DB runs on its own keys' rows only
		// (the batch files hold every partition's).
		f.owns = db.opts.OwnsKey
	}
	if mock != nil {
		err = f.mocks(mock)
	} else {
		err = db.runSource(ctx, ws, v, f)
	}
	if err != nil {
		return err
	}
	return lv.finish(sink)
}

// RunPlan is what a run request asks for, checked without reading any
// data: what cluster mode needs to gather a run from the partitions.
type RunPlan struct {
	// Columns are the columns Run begins with.
	Columns []HistoricalColumn
	// Mock says the request's mock rows replace the source's data: Run
	// reads nothing but the request, so any DB with the catalog answers.
	Mock bool
	// KeyColumns, for the keyed levels (partial and full), are the
	// positions in Columns of the join keys: their rows come by entity
	// key (EntityKey), a key's rows together. Nil for disabled, whose
	// rows come in input order.
	KeyColumns []int
	v          *viewRT
}

// EntityKey returns the entity key of a row's join-key values, by name;
// keyed levels order their rows by it (byte order).
func (p *RunPlan) EntityKey(joinKeys map[string]any) (string, error) {
	k, _, err := p.v.keyFromMap(joinKeys, nil)
	return k, err
}

// PlanRun checks a run request as Run does, in the same order and with
// the same errors, up to the point where Run reads data: the view, the
// level and times, the mock rows.
func (db *DB) PlanRun(workspace, view string, req *RunRequest) (*RunPlan, error) {
	_, v, err := db.runView(workspace, view)
	if err != nil {
		return nil, err
	}
	if err := req.check(); err != nil {
		return nil, err
	}
	lv, err := newRunLevel(v, req)
	if err != nil {
		return nil, err
	}
	mock, err := req.mockRows(v, lv)
	if err != nil {
		return nil, err
	}
	p := &RunPlan{Columns: lv.columns(), Mock: mock != nil, v: v}
	first := 0 // full: the join keys come first
	if req.Level == RunPartial {
		first = 2 // after _tile_start, _tile_end
	}
	if req.Level != RunDisabled {
		for i := range v.def.JoinKeys {
			p.KeyColumns = append(p.KeyColumns, first+i)
		}
	}
	return p, nil
}

// runView finds the view in the current catalog. A view being backfilled
// runs with its new definition.
func (db *DB) runView(workspace, view string) (*workspace, *viewRT, error) {
	if db.closed.Load() {
		return nil, nil, ErrClosed
	}
	ws, err := db.cat.Load().workspace(workspace)
	if err != nil {
		return nil, nil, err
	}
	v := ws.views[view]
	if v == nil {
		return nil, nil, errorf(CodeNotFound, "feature view %q not found in workspace %q", view, workspace)
	}
	return ws, v, nil
}

// check validates the level and the time range.
func (req *RunRequest) check() error {
	switch req.Level {
	case RunDisabled, RunPartial, RunFull:
	default:
		return errorf(CodeInvalidArgument, "aggregation_level %q is unknown: use disabled, partial or full", req.Level)
	}
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"start_time", req.Start}, {"end_time", req.End}} {
		if t.t.IsZero() {
			return errorf(CodeInvalidArgument, "%s is required (RFC 3339, like 2024-05-01T00:00:00Z)", t.name)
		}
		if err := schema.CheckTimestamp(t.t); err != nil {
			return errorf(CodeInvalidArgument, "%s: %v", t.name, err)
		}
	}
	if !req.End.After(req.Start) {
		return errorf(CodeInvalidArgument, "end_time %s must be after start_time %s",
			req.End.UTC().Format(time.RFC3339Nano), req.Start.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// checkWholeLog refuses to run from a log whose first entries were
// removed: the result would silently miss their records.
func (db *DB) checkWholeLog() error {
	if first := db.log.FirstSeq(); first > 1 {
		return errorf(CodeInvalidArgument, "run reads the whole offline log, but it begins at entry %d: "+
			"the pushed records before it were removed once every view had checkpointed them (log_offline: false); "+
			"give the rows to run on as mock_sources", first)
	}
	return nil
}

// maxMockErrors bounds the bad mock rows one error lists.
const maxMockErrors = 10

// mockRows returns the mock rows of the view's source converted to its
// schema and checked against the view, or nil when there are none.
func (req *RunRequest) mockRows(v *viewRT, lv runLevel) ([][]schema.Value, error) {
	src := v.src.def.Name
	for name := range req.MockSources {
		if name != src {
			return nil, errorf(CodeInvalidArgument, "mock_sources names %q, which is not the source of feature view %q: its source is %q",
				name, v.def.Name, src)
		}
	}
	recs, ok := req.MockSources[src]
	if !ok {
		return nil, nil
	}
	rows := make([][]schema.Value, len(recs))
	var bad []string
	for i, rec := range recs {
		row, err := mockRow(v, lv, rec)
		if err != nil && len(bad) < maxMockErrors {
			bad = append(bad, fmt.Sprintf("row %d: %v", i, err))
		}
		rows[i] = row
	}
	if len(bad) > 0 {
		return nil, errorf(CodeInvalidArgument, "mock_sources %q: %s", src, strings.Join(bad, "; "))
	}
	return rows, nil
}

// mockRow converts one mock row to the source's schema, as ingest does,
// and projects it onto the view.
func mockRow(v *viewRT, lv runLevel, rec map[string]any) ([]schema.Value, error) {
	row := make([]schema.Value, len(v.src.def.Schema))
	for name, x := range rec {
		i, ok := v.src.colIndex[name]
		if !ok {
			return nil, fmt.Errorf("unknown column %q%s", name, didYouMean(name, v.src))
		}
		c := v.src.def.Schema[i]
		val, err := mockValue(x, c.Type)
		if err != nil {
			return nil, fmt.Errorf("column %q: %v", c.Name, err)
		}
		row[i] = val
	}
	if _, err := lv.project(row); err != nil {
		return nil, fmt.Errorf("feature view %q: %v", v.def.Name, err)
	}
	return row, nil
}
