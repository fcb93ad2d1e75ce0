package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/internal/batchsrc"
	"github.com/featurelog/featurelog/internal/jsondec"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tiles"
)

// runFeed passes a run's input rows to its level: those the view keeps
// (transform, filter, feature_start_time) with event time in [start, end).
type runFeed struct {
	lv         runLevel
	sink       HistoricalSink
	start, end int64 // Unix ns
	// owns, when set, keeps the rows of the keys it owns only (cluster
	// mode: the DB of one partition, whose batch files are every
	// partition's).
	owns func(key string) bool
}

// row feeds one source row at o (o.TS is set here). A row the view
// rejects is returned as an error only when strict.
func (f *runFeed) row(row []schema.Value, o tiles.Order, strict bool) error {
	p, err := f.lv.project(row)
	if err != nil {
		if strict {
			return &projectError{err}
		}
		return nil // replay's rule: the view's rules changed since the record was accepted
	}
	if p.skip || p.ts < f.start || p.ts >= f.end || (f.owns != nil && !f.owns(p.key)) {
		return nil
	}
	o.TS = p.ts
	return f.lv.add(&p, row, o, f.sink)
}

// mocks feeds the mock rows as one log entry would hold them: seq 1 (the
// first entry of a fresh log), in list order.
func (f *runFeed) mocks(rows [][]schema.Value) error {
	for i, row := range rows {
		if err := f.row(row, tiles.Order{Seq: 1, Idx: uint32(i)}, true); err != nil {
			return err
		}
	}
	return nil
}

// runSource feeds the view's source rows: the log's, then the batch
// files' that no logged record equals.
func (db *DB) runSource(ctx context.Context, ws *workspace, v *viewRT, f *runFeed) error {
	var hashes *rowHashes
	if v.src.def.Batch != nil {
		hashes = &rowHashes{}
	}
	if err := db.runLog(ctx, ws, v, f, hashes); err != nil {
		return err
	}
	if hashes == nil {
		return nil
	}
	slices.Sort(hashes.sums)
	return runBatch(ctx, ws, v, f, hashes, db.erasures.eraserFor(ws.name, v, false))
}

// runLog replays the whole log, feeding the rows of v's source and
// collecting their hashes into hashes when not nil.
func (db *DB) runLog(ctx context.Context, ws *workspace, v *viewRT, f *runFeed, hashes *rowHashes) error {
	er := db.erasures.eraserFor(ws.name, v, false) // the offline log's: deleted keys' records
	return db.eachLoggedRow(ctx, ws, v.src, 0, func(seq uint64, idx int, row []schema.Value) error {
		if hashes != nil {
			hashes.sums = append(hashes.sums, hashRow(row))
		}
		if er.erased(row, seq) {
			return nil
		}
		return f.row(row, tiles.Order{Seq: seq, Idx: uint32(idx)}, false)
	})
}

// runBatch feeds the rows of the source's batch files that no logged
// record equals and no deletion erased, as seq 0 in file order (as
// backfills load them).
func runBatch(ctx context.Context, ws *workspace, v *viewRT, f *runFeed, logged *rowHashes, er *rowEraser) error {
	bs, err := batchsrc.Open(v.src.def, filepath.Dir(ws.meta.File))
	if err != nil {
		return errorf(CodeUnavailable, "run reads the batch files of source %q: %v", v.src.def.Name, err)
	}
	idx := uint32(0)
	err = bs.Scan(ctx, func(row *batchsrc.Row) error {
		if logged.contains(hashRow(row.Values)) || er.erased(row.Values, 0) {
			return nil
		}
		idx++
		if err := f.row(row.Values, tiles.Order{Idx: idx - 1}, true); err != nil {
			return batchRowError(v, row, err)
		}
		return nil
	})
	var re *batchsrc.RowError
	if errors.As(err, &re) {
		return errorf(CodeUnavailable, "run reads the batch files of source %q: %v", v.src.def.Name, err)
	}
	return err
}

// batchRowError names the file and row of a batch row the view rejects;
// errors of the sink pass through.
func batchRowError(v *viewRT, row *batchsrc.Row, err error) error {
	var pe *projectError
	if !errors.As(err, &pe) {
		return err
	}
	return &batchsrc.RowError{File: row.File, Pos: row.Pos, Err: fmt.Errorf("feature view %q: %v", v.def.Name, pe.err)}
}

// projectError is a row the view rejects (a join key or the timestamp
// missing, a failing transform), told apart from the sink's errors.
type projectError struct{ err error }

func (e *projectError) Error() string { return e.err.Error() }
func (e *projectError) Unwrap() error { return e.err }

// mockValue converts one mock value to type t: as the Go ingest API does,
// and also strings of any type as CSV cells (mock files may be CSV) and
// raw JSON values as the JSON ingest API does.
func mockValue(x any, t schema.Type) (schema.Value, error) {
	switch val := x.(type) {
	case jsontext.Value:
		return mockJSON(val, t)
	case string:
		if t.Kind != schema.String && t.Kind != schema.Timestamp {
			return batchsrc.ParseText(val, t)
		}
	}
	return schema.FromAny(x, t)
}

func mockJSON(raw jsontext.Value, t schema.Type) (schema.Value, error) {
	if raw.Kind() == '"' && t.Kind != schema.String && t.Kind != schema.Timestamp {
		s, err := jsontext.AppendUnquote(nil, raw)
		if err != nil {
			return schema.Value{}, err
		}
		return batchsrc.ParseText(string(s), t)
	}
	d := jsondec.Get(raw)
	defer jsondec.Put(d)
	v, msg, err := decodeValue(d.Decoder, t)
	switch {
	case err != nil:
		return schema.Value{}, syntaxError(err)
	case msg != "":
		return schema.Value{}, errors.New(msg)
	}
	return v, nil
}
