package engine

import (
	"maps"
	"slices"
	"time"

	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tiles"
)

// runLevel computes one aggregation level of Run from the rows runFeed
// passes it. Its state is private and in memory: a view version built
// with newViewRT and a hot tier of its own (disabled), which no read,
// flush or checkpoint ever sees.
type runLevel interface {
	// columns are the output columns, for the sink's Begin.
	columns() []HistoricalColumn
	// project computes a source row's contribution to the view.
	project(row []schema.Value) (projected, error)
	// add takes a row the view keeps, with event time in [start, end);
	// disabled writes it to sink at once.
	add(p *projected, row []schema.Value, o tiles.Order, sink HistoricalSink) error
	// finish writes what the level aggregated.
	finish(sink HistoricalSink) error
}

func newRunLevel(v *viewRT, req *RunRequest) (runLevel, error) {
	tmp, err := newViewRT(v.def, v.src, &hotTier{})
	if err != nil {
		return nil, err
	}
	st := runState{v: tmp, pj: projector{chunk: replayChunk}, keys: map[string][]schema.Value{}}
	switch {
	case req.Level == RunDisabled:
		return newRunDisabled(tmp), nil
	case req.Level == RunPartial && tmp.data.spec != nil:
		return &runTiles{runState: st, tiles: map[string]map[int64][]tiles.State{}}, nil
	case req.Level == RunPartial:
		return &runVersions{runState: st, end: req.End.UnixNano()}, nil
	}
	return &runFull{runState: st, end: req.End}, nil
}

// Output column names of partial rows.
const (
	RunTileStart = "_tile_start"
	RunTileEnd   = "_tile_end"
)

// runDisabled streams the transformed rows.
type runDisabled struct {
	v  *viewRT // a copy of the view whose served values are all its columns
	pj projector
}

func newRunDisabled(v *viewRT) *runDisabled {
	all := *v
	all.servedIdx = make([]int, len(v.columns))
	for i := range all.servedIdx {
		all.servedIdx[i] = i
	}
	return &runDisabled{v: &all, pj: projector{chunk: replayChunk}}
}

func (r *runDisabled) columns() []HistoricalColumn {
	out := make([]HistoricalColumn, len(r.v.columns))
	for i, c := range r.v.columns {
		out[i] = HistoricalColumn{Name: c.Name, Type: c.Type}
	}
	return out
}

func (r *runDisabled) project(row []schema.Value) (projected, error) { return r.v.project(row, &r.pj) }

func (r *runDisabled) add(p *projected, _ []schema.Value, _ tiles.Order, sink HistoricalSink) error {
	return sink.Row(nil, p.vals)
}

func (r *runDisabled) finish(HistoricalSink) error { return nil }

// runState is what the keyed levels share: the private view version and
// each key's join-key values, for the output.
type runState struct {
	v    *viewRT
	pj   projector
	keys map[string][]schema.Value // entity key → its join-key values
}

func (s *runState) project(row []schema.Value) (projected, error) { return s.v.project(row, &s.pj) }

// remember notes the join-key values of p's key from its row.
func (s *runState) remember(p *projected, row []schema.Value) {
	if _, ok := s.keys[p.key]; ok {
		return
	}
	jk := make([]schema.Value, len(s.v.keyIdx))
	for i, c := range s.v.keyIdx {
		jk[i] = row[c]
	}
	s.keys[p.key] = jk
}

// apply adds p to the private state, as ingest and replay do.
func (s *runState) apply(p *projected, row []schema.Value, o tiles.Order) {
	s.remember(p, row)
	s.v.applyProjected(p, o.Seq, int(o.Idx))
}

func (s *runState) joinKeyColumns() []HistoricalColumn {
	var out []HistoricalColumn
	for _, jk := range s.v.def.JoinKeys {
		out = append(out, HistoricalColumn{Name: jk.Name, Type: jk.Type})
	}
	return out
}

func (s *runState) featureColumns() []HistoricalColumn {
	var out []HistoricalColumn
	for _, f := range s.v.def.Features {
		out = append(out, HistoricalColumn{Name: f.Name, Type: f.Type})
	}
	return out
}

func tileColumns() []HistoricalColumn {
	ts := schema.ScalarType(schema.Timestamp)
	return []HistoricalColumn{{Name: RunTileStart, Type: ts}, {Name: RunTileEnd, Type: ts}}
}

// runFull reports each key's features as of end.
type runFull struct {
	runState
	end time.Time
}

func (r *runFull) columns() []HistoricalColumn {
	return append(r.joinKeyColumns(), r.featureColumns()...)
}

func (r *runFull) add(p *projected, row []schema.Value, o tiles.Order, _ HistoricalSink) error {
	r.apply(p, row, o)
	return nil
}

func (r *runFull) finish(sink HistoricalSink) error {
	nk := len(r.v.keyIdx)
	vals := make([]schema.Value, nk+len(r.v.def.Features))
	for _, key := range slices.Sorted(maps.Keys(r.keys)) {
		copy(vals, r.keys[key])
		r.read(key, vals[nk:])
		if err := sink.Row(nil, vals); err != nil {
			return err
		}
	}
	return nil
}

// read computes key's features as of end with the online read's code:
// tiles.Store.Read for aggregates, the latest version within the TTL for
// attributes (serviceRT.read).
func (r *runFull) read(key string, out []schema.Value) {
	d, t := r.v.data, r.end.UnixNano()
	if d.tiles != nil {
		d.tiles.Read(key, t, out)
		return
	}
	ver, ok := d.attrs.latestBefore(key, t)
	ok = ok && r.v.onlineAt(ver.ts, r.end)
	for i := range out {
		out[i] = schema.Value{}
		if ok {
			out[i] = ver.vals[i]
		}
	}
}

// runVersions reports an attribute view's records per key, each with the
// interval over which it is the key's latest.
type runVersions struct {
	runState
	end int64 // Unix ns
}

func (r *runVersions) columns() []HistoricalColumn {
	return append(append(tileColumns(), r.joinKeyColumns()...), r.featureColumns()...)
}

func (r *runVersions) add(p *projected, row []schema.Value, o tiles.Order, _ HistoricalSink) error {
	r.apply(p, row, o)
	return nil
}

func (r *runVersions) finish(sink HistoricalSink) error {
	nk := len(r.v.keyIdx)
	vals := make([]schema.Value, 2+nk+len(r.v.def.Features))
	for _, key := range slices.Sorted(maps.Keys(r.keys)) {
		h, _ := r.v.data.attrs.history(key)
		copy(vals[2:], r.keys[key])
		for i, ver := range h {
			to := r.end
			if i+1 < len(h) {
				to = h[i+1].ts
			}
			vals[0], vals[1] = schema.TimeNanos(ver.ts), schema.TimeNanos(to)
			copy(vals[2+nk:], ver.vals)
			if err := sink.Row(nil, vals); err != nil {
				return err
			}
		}
	}
	return nil
}

// runTiles reports an aggregate view's partial aggregates: per key and
// tile, one state per aggregator of the view's tile spec.
type runTiles struct {
	runState
	tiles map[string]map[int64][]tiles.State // entity key → tile start → states
}

func (r *runTiles) columns() []HistoricalColumn {
	return append(append(tileColumns(), r.joinKeyColumns()...), r.featureColumns()...)
}

func (r *runTiles) add(p *projected, row []schema.Value, o tiles.Order, _ HistoricalSink) error {
	r.remember(p, row)
	spec := r.v.data.spec
	start, _ := tiles.TileOf(p.ts, spec.Interval)
	st := r.tile(p.key, start)
	for ai, in := range spec.AggInput {
		if x := p.vals[in]; !x.IsNull() {
			st[ai].Add(x, o)
		}
	}
	return nil
}

// tile returns the states of key's tile at start, creating them.
func (r *runTiles) tile(key string, start int64) []tiles.State {
	byStart := r.tiles[key]
	if byStart == nil {
		byStart = map[int64][]tiles.State{}
		r.tiles[key] = byStart
	}
	st := byStart[start]
	if st == nil {
		for _, a := range r.v.data.spec.Aggs {
			st = append(st, a.New())
		}
		byStart[start] = st
	}
	return st
}

func (r *runTiles) finish(sink HistoricalSink) error {
	spec := r.v.data.spec
	nk := len(r.v.keyIdx)
	vals := make([]schema.Value, 2+nk+len(spec.Features))
	for _, key := range slices.Sorted(maps.Keys(r.tiles)) {
		copy(vals[2:], r.keys[key])
		byStart := r.tiles[key]
		for _, start := range slices.Sorted(maps.Keys(byStart)) {
			t0, t1 := tiles.TileOf(start, spec.Interval)
			vals[0], vals[1] = schema.TimeNanos(t0), schema.TimeNanos(t1)
			for fi, f := range spec.Features {
				vals[2+nk+fi] = byStart[start][f.Agg].Result()
			}
			if err := sink.Row(nil, vals); err != nil {
				return err
			}
		}
	}
	return nil
}
