package engine

import (
	"context"
	"io"

	"github.com/featurelog/featurelog/schema"
)

// A historical join in cluster mode (SPEC §10) is split by partition:
// the node that receives it validates the spine or the entities on its
// catalog (a DB holding the repo and no records) exactly as
// GetFeaturesForEvents and GetFeaturesForRange would, so that a bad row
// is reported as a single node reports it, and learns each row's
// partition key; the partitions' DBs answer their rows, and the answers
// are gathered back in spine order. SpineSplitter and RangePlan are the
// validating halves of those two functions.

// SpineSplitter reads a spine in the chunks GetFeaturesForEvents reads
// it in, and validates each chunk as it would, returning each row's
// partition key (the entity key of the service's first view, the key
// its records are partitioned by, as ServiceKey).
type SpineSplitter struct {
	req       *HistoricalRequest
	spine     Spine
	sp        spineParser
	j         *join
	chunkRows int
	chunk     int
	read      int
	done      bool
}

// SplitSpine starts a split of spine for req, failing as
// GetFeaturesForEvents fails before it reads the spine (an unknown
// service, a join key the spine lacks).
func (db *DB) SplitSpine(req *HistoricalRequest, spine Spine) (*SpineSplitter, error) {
	svc, cat, err := db.historicalService(req)
	if err != nil {
		return nil, err
	}
	j := &join{db: db, svc: svc, cat: cat} // for its columns: no snapshot
	for _, v := range svc.views() {
		j.views = append(j.views, &viewJoin{v: v})
	}
	s := &SpineSplitter{req: req, spine: spine, j: j, sp: spineParser{svc: svc, cols: spine.Columns(), tsCol: -1}}
	if err := s.sp.bindKeys(); err != nil {
		return nil, err
	}
	s.chunkRows = req.ChunkRows
	if s.chunkRows <= 0 {
		s.chunkRows = min(spineChunk, max(1024, chunkValues/max(1, len(svc.features))))
	}
	return s, nil
}

// ChunkRows is how many rows Next returns at most.
func (s *SpineSplitter) ChunkRows() int { return s.chunkRows }

// Next reads, validates and returns the next chunk of rows, as
// GetFeaturesForEvents does, with each row's partition key; io.EOF after
// the last chunk. The first chunk may have no rows (an empty spine).
// Errors name rows by their number in the whole spine.
func (s *SpineSplitter) Next(ctx context.Context) ([][]any, []string, error) {
	if s.done {
		return nil, nil, io.EOF
	}
	rows, err := readChunk(s.spine, s.read, s.chunkRows)
	if err != nil {
		return nil, nil, err
	}
	if len(rows) == 0 && s.chunk > 0 {
		s.done = true
		return nil, nil, io.EOF
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if s.chunk == 0 {
		if err := s.sp.bindTime(s.req.TimestampKey, rows); err != nil {
			return nil, nil, err
		}
	}
	c, err := s.sp.parse(rows, s.read)
	if err != nil {
		return nil, nil, err
	}
	s.chunk++
	s.read += len(rows)
	if len(rows) < s.chunkRows {
		s.done = true
	}
	keys := make([]string, len(rows))
	if len(c.keys) > 0 {
		keys = c.keys[0]
	}
	return rows, keys, nil
}

// TimestampKey names the spine's time column, once Next bound it: the
// request's, or the one found in the first chunk. Empty for an empty
// spine.
func (s *SpineSplitter) TimestampKey() string {
	if s.sp.tsCol < 0 {
		return ""
	}
	return s.sp.cols[s.sp.tsCol]
}

// JoinKeys names the service's join keys, in order.
func (s *SpineSplitter) JoinKeys() []string { return s.sp.svc.joinKeys }

// Columns are the columns of the answer, as the sink's Begin gets them:
// the spine's, then the features.
func (s *SpineSplitter) Columns() []HistoricalColumn { return s.j.columns(s.sp.cols, true) }

// RangePlan is a validated range-mode request (GetFeaturesForRange).
type RangePlan struct {
	// Columns are the answer's columns: the join keys, _valid_from,
	// _valid_to, then the features.
	Columns []HistoricalColumn
	// Keys holds, per entity of the request, its partition key; nil
	// when the request lists no entities (every key with data).
	Keys []string
	svc  *serviceRT
}

// PlanRange validates a range-mode request as GetFeaturesForRange does
// before it answers any entity, with the same errors.
func (db *DB) PlanRange(req *HistoricalRequest) (*RangePlan, error) {
	svc, cat, err := db.historicalService(req)
	if err != nil {
		return nil, err
	}
	if err := checkRange(req.Start, req.End); err != nil {
		return nil, err
	}
	for _, k := range svc.joinKeys {
		if k == "_valid_from" || k == "_valid_to" {
			return nil, errorf(CodeInvalidArgument, "range mode adds the columns _valid_from and _valid_to, but %q is a join key of feature service %q; use spine mode, or rename the column", k, svc.def.Name)
		}
	}
	j, err := db.newJoin(svc, cat, &HistoricalRequest{}) // the catalog's views: no records
	if err != nil {
		return nil, err
	}
	defer j.close()
	ents, err := j.entities(req.Entities)
	if err != nil {
		return nil, err
	}
	lead := append(append([]string(nil), svc.joinKeys...), "_valid_from", "_valid_to")
	p := &RangePlan{Columns: j.columns(lead, false), svc: svc}
	for i, name := range svc.joinKeys {
		p.Columns[i].Type = j.joinKeyType(name)
	}
	p.Columns[len(svc.joinKeys)].Type = schema.Type{Kind: schema.Timestamp}
	p.Columns[len(svc.joinKeys)+1].Type = schema.Type{Kind: schema.Timestamp}
	if req.Entities != nil {
		p.Keys = make([]string, len(req.Entities))
		if len(ents.keys) > 0 {
			copy(p.Keys, ents.keys[0])
		}
	}
	return p, nil
}

// EntityKey returns the entity key of joinKeys (as the join keys of an
// answer's row give them): range mode without entities answers the keys
// in the order of their entity keys.
func (p *RangePlan) EntityKey(joinKeys map[string]any) (string, error) {
	if len(p.svc.features) == 0 {
		return "", nil
	}
	k, _, err := p.svc.features[0].view.keyFromMap(joinKeys, nil)
	return k, err
}
