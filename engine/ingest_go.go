package engine

import (
	"fmt"
	"sort"

	"github.com/featurelog/featurelog/internal/suggest"
	"github.com/featurelog/featurelog/schema"
)

// IngestRequest is the Go form of a Stream Ingest API request.
type IngestRequest struct {
	Workspace string
	DryRun    bool
	// Records maps push source names to records. A record maps column
	// names to values: nil, string, bool, int/int64/int32, float64,
	// time.Time (or an RFC 3339 string) for Timestamp columns, and slices
	// for arrays. Sources are processed in name order.
	Records map[string][]map[string]any
	// IdempotencyKey, if set, makes a retry safe, as the Idempotency-Key
	// header does (see IngestJSONWithKey).
	IdempotencyKey string
}

// Ingest validates, logs (fsynced) and applies one request atomically:
// when any record is invalid it returns *RecordErrors and writes nothing.
// When it returns nil, every record is durable and visible to reads.
func (db *DB) Ingest(req *IngestRequest) (*IngestResponse, error) {
	if req.Workspace == "" {
		return nil, badRequest("Required field `workspace_name` is missing in the request")
	}
	if req.IdempotencyKey != "" {
		if err := checkIdempotencyKey(req.IdempotencyKey); err != nil {
			return nil, err
		}
	}
	return db.ingestOnce(req.Workspace, req.IdempotencyKey, req.DryRun, func(tk *idemTicket) (*IngestResponse, error) {
		return db.ingestGo(req, tk)
	})
}

// ingestGo converts the records of req and commits them.
func (db *DB) ingestGo(req *IngestRequest, tk *idemTicket) (*IngestResponse, error) {
	db.ingestMu.RLock()
	defer db.ingestMu.RUnlock()
	if db.closed.Load() {
		return nil, ErrClosed
	}
	ws, err := db.cat.Load().workspace(req.Workspace)
	if err != nil {
		return nil, err
	}
	b := &batch{ws: ws, dryRun: req.DryRun, idem: tk}
	names := make([]string, 0, len(req.Records))
	for name := range req.Records {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		src, err := lookupSource(ws, name)
		if err != nil {
			return nil, err
		}
		b.sections = append(b.sections, convertRecords(src, req.Records[name], b))
	}
	return db.commit(b)
}

func convertRecords(src *sourceRT, recs []map[string]any, b *batch) batchSection {
	w := len(src.def.Schema)
	s := batchSection{src: src, n: len(recs), rows: make([]schema.Value, w*len(recs)), bad: make([]bool, len(recs))}
	for i, rec := range recs {
		row := s.row(i)
		for name, x := range rec {
			col, ok := src.colIndex[name]
			if !ok {
				b.recordError("", src.def.Name, i, "unknown column %q%s", name, didYouMean(name, src))
				s.bad[i] = true
				continue
			}
			c := src.def.Schema[col]
			v, err := schema.FromAny(x, c.Type)
			if err != nil {
				b.recordError("", src.def.Name, i, "column %q: %v", c.Name, err)
				s.bad[i] = true
				continue
			}
			row[col] = v
		}
	}
	return s
}

func didYouMean(name string, src *sourceRT) string {
	cols := make([]string, len(src.def.Schema))
	for i, c := range src.def.Schema {
		cols[i] = c.Name
	}
	if s, ok := suggest.Closest(name, cols); ok {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return fmt.Sprintf(" (the schema of %q has: %v)", src.def.Name, cols)
}
