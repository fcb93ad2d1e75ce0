package engine

import (
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/featurelog/featurelog/repo"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tiles"
)

// viewRT is the runtime of one version of a feature view: its definition
// resolved against its source, and its online state.
type viewRT struct {
	def       *repo.FeatureView
	version   int       // bumped when what the view computes changes
	createdAt time.Time // when this version was applied
	src       *sourceRT
	keyIdx    []int           // join-key positions in the source schema
	tsIdx     int             // timestamp_field position in the source schema
	columns   []schema.Column // source schema, then transform columns
	servedIdx []int           // positions in columns of the values a record contributes: attribute views' features, aggregate views' distinct inputs
	envIdx    []int           // source columns the transform reads
	startNs   int64           // feature_start_time, Unix ns (MinInt64 if unset)
	ttl       time.Duration   // serving TTL; 0 means records never expire
	data      *viewData       // the online state: memtables and segments
	stats     *viewStats      // shared by versions that compute the same thing
	// pending is the job building this version's state (a backfill of a
	// new version, or a materialization); while set, ingest applies
	// records to data but nothing reads it, flushes skip it, and prior,
	// if any, serves instead (backfill.go).
	pending string
	prior   *viewRT
}

// serving returns the version whose state reads and checkpoints use in
// v's place: v, or while v is pending its prior (nil if none).
func (v *viewRT) serving() *viewRT {
	if v.pending == "" {
		return v
	}
	return v.prior
}

// viewStats are a view's counters for the summary endpoint and metrics.
type viewStats struct {
	online  atomic.Int64 // records applied to the online state since open
	offline atomic.Int64 // records kept in the offline log for the view since open
	newest  atomic.Int64 // newest event time applied, Unix ns (0: none)
	// lag is the last ingest request's ingest time minus its newest event
	// time for the view, in ns, plus 1 so that 0 means none yet
	// (featurelog_view_ingest_lag_seconds). Set once per request.
	lag atomic.Int64
	// rate counts the records live ingest applies online per minute
	// (ingest_rate.go). Unlike the counters above it is shared by every
	// version of the view, not only those that compute the same thing:
	// the pointer is set before the catalog is published, never after.
	rate *rateRing
}

// noteIngest records the lag of a request ingested at now whose newest
// record for the view has event time newest.
func (s *viewStats) noteIngest(now time.Time, newest int64) {
	s.lag.Store(now.UnixNano() - newest + 1)
}

// ingestLag returns the lag noteIngest recorded last, if any.
func (s *viewStats) ingestLag() (time.Duration, bool) {
	n := s.lag.Load()
	return time.Duration(n - 1), n != 0
}

func (s *viewStats) observe(ts int64) {
	for {
		cur := s.newest.Load()
		if ts <= cur || s.newest.CompareAndSwap(cur, ts) {
			return
		}
	}
}

func newViewRT(def *repo.FeatureView, src *sourceRT, hot *hotTier) (*viewRT, error) {
	v := &viewRT{def: def, src: src, startNs: math.MinInt64, ttl: def.ServingTTL()}
	if !def.FeatureStartTime.IsZero() {
		v.startNs = def.FeatureStartTime.UnixNano()
	}
	for _, jk := range def.JoinKeys {
		i, ok := src.colIndex[jk.Name]
		if !ok {
			return nil, fmt.Errorf("BUG: join key %q not in source %q", jk.Name, src.def.Name)
		}
		v.keyIdx = append(v.keyIdx, i)
	}
	i, ok := src.colIndex[def.TimestampField]
	if !ok {
		return nil, fmt.Errorf("BUG: timestamp field %q not in source %q", def.TimestampField, src.def.Name)
	}
	v.tsIdx = i
	v.columns = append(v.columns, src.def.Schema...)
	if def.Transform != nil {
		for _, c := range def.Transform.Columns {
			v.columns = append(v.columns, schema.Column{Name: c.Name, Type: c.Type})
		}
		v.envIdx = transformInputs(def.Transform, src)
	}
	v.stats = &viewStats{rate: &rateRing{}}
	v.data = &viewData{hot: hot}
	if def.Aggregate() {
		return v, v.buildTiles(hot)
	}
	v.data.attrs = newAttrStore()
	for _, f := range def.Features {
		v.servedIdx = append(v.servedIdx, v.columnIndex(f.Input))
		v.data.types = append(v.data.types, f.Type)
	}
	v.data.layout, v.data.legacy = attrLayout(v.data.types), true
	return v, nil
}

// attrLayout identifies the encoding of an attribute view's histories:
// its features' types, in order.
func attrLayout(types []schema.Type) string {
	var b strings.Builder
	b.WriteString("attributes 1")
	for _, t := range types {
		b.WriteString("|" + t.String())
	}
	return b.String()
}

// aggregator identifies one aggregator of a view: function and
// parameters (with the input's type), and the input column. Two features
// share an aggregator, and so one state, only when all of these are
// equal: they then differ only in their window. (Builds before issue 10
// keyed by tiles.Agg alone, which names the input's type but not its
// column, so sum(amount) and sum(fee) shared the first one's state.)
type aggregator struct {
	agg tiles.Agg
	in  int // position of the input in the projected values
}

// buildTiles sets up an aggregate view's tile store: one aggregator per
// distinct (function, parameters, input column), fed by the distinct
// input columns.
func (v *viewRT) buildTiles(hot *hotTier) error {
	spec := tiles.Spec{Interval: int64(v.def.AggregationInterval), Start: v.startNs}
	inputs := map[int]int{} // column → position in the projected values
	aggs := map[aggregator]int{}
	legacy := map[tiles.Agg]int{} // what builds before the fix keyed by: the first input of each
	v.data.legacy = true
	for _, f := range v.def.Features {
		col := v.columnIndex(f.Input)
		in, ok := inputs[col]
		if !ok {
			in = len(v.servedIdx)
			inputs[col] = in
			v.servedIdx = append(v.servedIdx, col)
		}
		a := tiles.Agg{Function: f.Function, N: f.N, Percentile: f.Percentile, Precision: f.Precision, Input: f.InputType}
		if first, ok := legacy[a]; !ok {
			legacy[a] = in
		} else if first != in {
			v.data.legacy = false
		}
		ai, ok := aggs[aggregator{a, in}]
		if !ok {
			ai = len(spec.Aggs)
			aggs[aggregator{a, in}] = ai
			spec.Aggs = append(spec.Aggs, a)
			spec.AggInput = append(spec.AggInput, in)
		}
		spec.Features = append(spec.Features, tiles.Feature{Agg: ai, Window: tiles.Window{
			Size: int64(f.Window.Size), Offset: int64(f.Window.Offset), Lifetime: f.Window.Lifetime}})
	}
	var err error
	v.data.spec, v.data.layout = &spec, spec.Fingerprint()
	v.data.tiles, err = tiles.NewStore(spec, hot.forStore())
	return err
}

// transformInputs returns the positions of the source columns that the
// transform's expressions read; only those enter the expression
// environment.
func transformInputs(t *repo.Transform, src *sourceRT) []int {
	seen := map[int]bool{}
	var out []int
	add := func(e *repo.Expr) {
		for _, name := range e.Inputs {
			if i, ok := src.colIndex[name]; ok && !seen[i] {
				seen[i] = true
				out = append(out, i)
			}
		}
	}
	for _, c := range t.Columns {
		add(c.Expr)
	}
	if t.Filter != nil {
		add(t.Filter)
	}
	return out
}

func (v *viewRT) columnIndex(name string) int {
	for i, c := range v.columns {
		if c.Name == name {
			return i
		}
	}
	panic(fmt.Sprintf("BUG: view %q has no column %q", v.def.Name, name))
}

// projected is what one record contributes to one view.
type projected struct {
	key  string
	ts   int64
	vals []schema.Value // served values (attribute views)
	skip bool           // before feature_start_time, or dropped by the filter
	// size is recordBytes' estimate, computed as the values are cut,
	// while they are in the cache: applying reads no value.
	size uint32
}

// projector holds scratch space reused across the records one goroutine
// projects, so projecting allocates nothing per record but the served
// values, which are cut from a slab.
type projector struct {
	key  []byte         // entity key scratch for non-string keys
	env  map[string]any // transform environment, cleared per record
	slab []schema.Value // served values are cut from here
	// chunk is how many values a new slab holds. Stored versions keep
	// their slab alive, so it must fit what will be cut from it: ingest
	// sizes it to the request, replay uses replayChunk.
	chunk int
}

// replayChunk is the slab size during replay, where every slab fills up.
const replayChunk = 4096

// take returns n values cut from the slab.
func (pj *projector) take(n int) []schema.Value {
	if n == 0 {
		return nil
	}
	if len(pj.slab) < n {
		pj.slab = make([]schema.Value, max(n, pj.chunk))
	}
	out := pj.slab[:n:n]
	pj.slab = pj.slab[n:]
	return out
}

// project computes the record's contribution to the view: entity key,
// event time, transform and filter, served values. It is the one code path
// used by ingest, replay and rebuilds, so all three agree. row is in source
// schema order and is not retained.
func (v *viewRT) project(row []schema.Value, pj *projector) (projected, error) {
	var p projected
	for _, i := range v.keyIdx {
		if row[i].IsNull() {
			return p, fmt.Errorf("join key %q is missing or null", v.src.def.Schema[i].Name)
		}
	}
	if row[v.tsIdx].IsNull() {
		return p, fmt.Errorf("timestamp field %q is missing or null", v.def.TimestampField)
	}
	p.ts = row[v.tsIdx].I
	if p.ts < v.startNs {
		p.skip = true
		return p, nil
	}
	p.key, pj.key = entityKey(row, v.keyIdx, pj.key)
	if v.def.Transform == nil {
		p.vals = v.served(row, nil, pj)
		p.size = recordSize(p.key, p.vals)
		return p, nil
	}
	return v.projectTransformed(row, p, pj)
}

func (v *viewRT) projectTransformed(row []schema.Value, p projected, pj *projector) (projected, error) {
	if pj.env == nil {
		pj.env = make(map[string]any, len(v.columns))
	}
	env := pj.env
	clear(env)
	for _, i := range v.envIdx {
		env[v.src.def.Schema[i].Name] = row[i].Any()
	}
	keep, err := v.def.Transform.Apply(env)
	if err != nil {
		return p, fmt.Errorf("transform failed: %w", err)
	}
	if !keep {
		p.skip = true
		return p, nil
	}
	var extra [8]schema.Value
	ext := extra[:0]
	for _, c := range v.def.Transform.Columns {
		val, err := schema.FromAny(env[c.Name], c.Type)
		if err != nil {
			return p, fmt.Errorf("transform column %q: %w", c.Name, err)
		}
		ext = append(ext, val)
	}
	p.vals = v.served(row, ext, pj)
	p.size = recordSize(p.key, p.vals)
	return p, nil
}

// served copies the served columns out of row (source columns) and extra
// (transform columns).
func (v *viewRT) served(row, extra []schema.Value, pj *projector) []schema.Value {
	out := pj.take(len(v.servedIdx))
	for j, i := range v.servedIdx {
		if i < len(row) {
			out[j] = row[i]
		} else {
			out[j] = extra[i-len(row)]
		}
	}
	return out
}

// applyProjected makes a projected record visible to reads.
func (v *viewRT) applyProjected(p *projected, seq uint64, idx int) {
	if p.skip {
		return
	}
	v.applyRef(p, nil, seq, idx)
	v.stats.observe(p.ts)
	v.data.records.Add(1)
	v.data.bytes.Add(recordBytes(p))
}

// applyRef adds a projected record that is not skipped to the view's
// memtable, without counting it (applyProjected counts each record;
// ingest counts a request's at once: applyCount). ref, when not nil, is
// the record's key as looked up in the KeyGroup of the memtable, with
// its lock held (ingest looks it up once for the group's views:
// refs.go).
func (v *viewRT) applyRef(p *projected, ref *tiles.KeyRef, seq uint64, idx int) {
	d := v.data
	o := tiles.Order{TS: p.ts, Seq: seq, Idx: uint32(idx)}
	switch {
	case d.attrs != nil:
		d.attrs.insert(p.key, version{ts: p.ts, seq: seq, idx: uint32(idx), vals: p.vals})
	case ref != nil:
		d.tiles.AddLocked(ref, o, p.vals)
	default:
		d.tiles.Add(p.key, o, p.vals)
	}
}

// recordBytes estimates what a record adds to a memtable: a version (or
// raw event), its key and its values, strings included. It is a gauge's
// estimate, not an accounting: keys are counted per record, and an
// aggregate view's tiles may fold records into less.
func recordBytes(p *projected) int64 { return int64(p.size) }

// recordSize computes recordBytes of a record with key and vals.
func recordSize(key string, vals []schema.Value) uint32 {
	n := versionBytes + len(key) + valueBytes*len(vals)
	for i := range vals {
		n += len(vals[i].S)
	}
	return uint32(min(n, math.MaxUint32))
}

// The in-memory sizes recordBytes counts.
const (
	versionBytes = int(unsafe.Sizeof(version{}))
	valueBytes   = int(unsafe.Sizeof(schema.Value{}))
)

// onlineAt reports whether a record with event time ts is still within
// the view's serving TTL at now.
func (v *viewRT) onlineAt(ts int64, now time.Time) bool {
	return ts >= v.onlineFrom(now)
}

// onlineFrom returns the oldest event time (Unix ns) within the view's
// serving TTL at now, math.MinInt64 without a TTL: for callers that test
// many records at one now (onlineAt computes it per record).
func (v *viewRT) onlineFrom(now time.Time) int64 {
	if v.ttl <= 0 {
		return math.MinInt64
	}
	return now.Add(-v.ttl).UnixNano()
}
