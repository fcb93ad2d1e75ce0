package engine_test

// The naive model of a generated repo (gen_repo_test.go): it keeps every
// accepted record and answers a read by scanning a key's records, with
// the function semantics of agg_model_test.go (aggCompute, aggCheck). What
// it implements, per view:
//
//   - a record's contribution (genProject): its entity key from the view's
//     join keys (a record missing one is rejected), its event time from the
//     view's timestamp_field (each view may read another column), nothing
//     before feature_start_time, transform columns computed with null in,
//     null out, and the filter (a filter that reads a null drops it);
//   - ingest (genModel.verdict): a record is rejected when a subscribed
//     view rejects it (missing join key or timestamp), when its time lies
//     beyond the clock skew for a view, or when it is older than the TTL
//     of every subscribed view; metrics count the records a view sees
//     within its TTL (offline only with offline: true);
//   - aggregates as of T: the window [E − W, E) with E = T − O, or A − O
//     for interval views (A = T aligned down to the interval); records
//     outside a view's TTL at ingest are applied all the same;
//   - attributes as of T: the latest record with event time in
//     [T − ttl, T) (ties: the later-ingested record), whose columns are
//     served as they are (null ones null); none: MISSING_DATA.

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/featurelog/featurelog/schema"
)

// genEvent is one record as sent to a source.
type genEvent struct {
	src  *genSource
	req  int   // request number: log order, within one writer
	idx  int   // index in its source's list of the request: log order within it
	now  int64 // the server clock when the request was sent
	cols map[string]schema.Value
}

// before reports whether a comes before b in log order.
func (a *genEvent) before(b *genEvent) bool {
	return a.req < b.req || a.req == b.req && a.idx < b.idx
}

func (a *genEvent) String() string {
	var cols []string
	for _, c := range a.src.cols {
		v, ok := a.cols[c.name]
		if !ok {
			cols = append(cols, c.name+"=absent")
		} else {
			cols = append(cols, c.name+"="+aggFmt(v))
		}
	}
	return fmt.Sprintf("req#%d[%d] %s", a.req, a.idx, strings.Join(cols, " "))
}

// genKeyPart renders one join-key value as a view of type k keys it: a
// String key is the text, an integer key the number.
func genKeyPart(k schema.Kind, v schema.Value) string {
	if k == schema.String {
		return "s:" + v.S
	}
	return "i:" + strconv.FormatInt(v.I, 10)
}

// genViewKey is the model's entity key of a record for v, and false when
// a join key is missing or null.
func genViewKey(v *genView, cols map[string]schema.Value) (string, bool) {
	var parts []string
	for _, k := range v.joinKeys() {
		val, ok := cols[k.name]
		if !ok || val.IsNull() {
			return "", false
		}
		parts = append(parts, genKeyPart(k.t.Kind, val))
	}
	return strings.Join(parts, "\x00"), true
}

// genIdentity names an entity by join-key name, as a caller spells it:
// decimal text for integer keys, which a String key reads as is.
type genIdentity map[string]string

// key returns the model key v reads for id.
func (id genIdentity) key(v *genView) string {
	var parts []string
	for _, k := range v.joinKeys() {
		s := id[k.name]
		if k.t.Kind == schema.String {
			parts = append(parts, "s:"+s)
			continue
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			panic("gen: identity " + s + " is not an integer")
		}
		parts = append(parts, "i:"+strconv.FormatInt(i, 10))
	}
	return strings.Join(parts, "\x00")
}

func (id genIdentity) String() string {
	var ks []string
	for k := range id {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, k+"="+strconv.Quote(id[k]))
	}
	return strings.Join(parts, " ")
}

// genOutcome is what a record does to a view.
type genOutcome int

const (
	genApplied  genOutcome = iota // the view aggregates or serves it
	genSkipped                    // before feature_start_time, or dropped by the filter
	genRejected                   // a join key or the timestamp is missing: the request fails
)

// genProjected is a record's contribution to a view.
type genProjected struct {
	outcome genOutcome
	key     string
	ts      int64
	row     map[string]schema.Value // source and transform columns
	why     string                  // genRejected: what is missing
}

// genProject computes what e contributes to v, as the engine's
// viewRT.project does.
func genProject(v *genView, e *genEvent) genProjected {
	key, ok := genViewKey(v, e.cols)
	if !ok {
		return genProjected{outcome: genRejected, why: "a join key is missing"}
	}
	tsv, ok := e.cols[v.ts]
	if !ok || tsv.IsNull() {
		return genProjected{outcome: genRejected, why: "timestamp " + v.ts + " is missing"}
	}
	p := genProjected{key: key, ts: tsv.I}
	if p.ts < v.start {
		p.outcome = genSkipped
		return p
	}
	if len(v.txCols) == 0 && v.filter == nil {
		p.row = e.cols
		return p
	}
	row := make(map[string]schema.Value, len(e.cols)+len(v.txCols))
	for k, val := range e.cols {
		row[k] = val
	}
	for _, c := range v.txCols {
		row[c.name] = genEval(c.e, row)
	}
	if v.filter != nil {
		if keep := genEval(v.filter, row); keep.IsNull() || !keep.Bool() {
			p.outcome = genSkipped
			return p
		}
	}
	p.row = row
	return p
}

// genEval evaluates e on row: null when an input is null.
func genEval(e *genExpr, row map[string]schema.Value) schema.Value {
	for _, in := range e.inputs {
		if row[in].IsNull() {
			return schema.Value{}
		}
	}
	return e.eval(row)
}

// genRow is one record applied to a view.
type genRow struct {
	ev  *genEvent
	ts  int64
	row map[string]schema.Value
}

// genRows are a view key's rows, sorted by (event time, log order) when
// sorted is set.
type genRows struct {
	rows   []genRow
	sorted bool
}

// genModel holds every accepted record, per view and key. It is safe for
// concurrent use.
type genModel struct {
	repo *genRepo
	mu   sync.Mutex
	rows map[*genView]map[string]*genRows
	n    int // records accepted
	minT int64
	// skip names, per view name, the records an online-only deletion
	// removed from the view's state (genEventID): rebuilds of the view
	// leave them out too.
	skip map[string]map[string]bool
}

// genEventID identifies a record across rebinds, which copy events.
func genEventID(e *genEvent) string { return fmt.Sprintf("%s/%d/%d", e.src.name, e.req, e.idx) }

func newGenModel(r *genRepo) *genModel {
	m := &genModel{repo: r, rows: map[*genView]map[string]*genRows{}, minT: math.MaxInt64}
	for _, v := range r.views {
		m.rows[v] = map[string]*genRows{}
	}
	return m
}

// genVerdict is the model's answer to one request: the records that must
// be rejected (by source and index), or the metrics.
type genVerdict struct {
	rejected []string // "source[index]: why", in request order
	metrics  []string // "view online=N offline=N", views in file order
}

// verdict says what ingest must answer for evs at now (SPEC §2).
func (m *genModel) verdict(evs []*genEvent, now, skew int64) genVerdict {
	var vd genVerdict
	for _, e := range evs {
		if why := m.rejection(e, now, skew); why != "" {
			vd.rejected = append(vd.rejected, fmt.Sprintf("%s[%d]: %s", e.src.name, e.idx, why))
		}
	}
	for _, v := range m.repo.views {
		seen := false
		var n int
		for _, e := range evs {
			if e.src != v.src {
				continue
			}
			seen = true
			if p := genProject(v, e); p.outcome == genApplied && genOnline(v, p.ts, now) {
				n++
			}
		}
		if seen {
			off := 0
			if v.offline {
				off = n
			}
			vd.metrics = append(vd.metrics, fmt.Sprintf("%s online=%d offline=%d", v.name, n, off))
		}
	}
	return vd
}

// rejection says why ingest must reject e, or "".
func (m *genModel) rejection(e *genEvent, now, skew int64) string {
	views := m.repo.viewsOf(e.src)
	expired := len(views) > 0
	for _, v := range views {
		p := genProject(v, e)
		switch {
		case p.outcome == genRejected:
			return fmt.Sprintf("view %s: %s", v.name, p.why)
		case p.ts > now+skew:
			return fmt.Sprintf("view %s: %s lies beyond the clock skew", v.name, v.ts)
		}
		expired = expired && !genOnline(v, p.ts, now)
	}
	if expired {
		return "older than the TTL of every view of the source"
	}
	return ""
}

// genOnline reports whether a record at ts is within v's TTL at now.
func genOnline(v *genView, ts, now int64) bool {
	ttl := v.servingTTL()
	return ttl <= 0 || ts >= now-int64(ttl)
}

// add records accepted events; events of one key must come in log order.
func (m *genModel) add(evs ...*genEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range evs {
		m.n++
		for _, v := range m.repo.viewsOf(e.src) {
			p := genProject(v, e)
			if p.outcome != genApplied || m.skip[v.name][genEventID(e)] {
				continue
			}
			m.minT = min(m.minT, p.ts)
			rs := m.rows[v][p.key]
			if rs == nil {
				rs = &genRows{}
				m.rows[v][p.key] = rs
			}
			rs.rows = append(rs.rows, genRow{e, p.ts, p.row})
			rs.sorted = false
		}
	}
}

// keyRows returns the rows of v's key, sorted. The caller must not modify
// them.
func (m *genModel) keyRows(v *genView, key string) []genRow {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.rows[v][key]
	if rs == nil {
		return nil
	}
	if !rs.sorted {
		sort.SliceStable(rs.rows, func(i, j int) bool {
			a, b := rs.rows[i], rs.rows[j]
			if a.ts != b.ts {
				return a.ts < b.ts
			}
			return a.ev.before(b.ev)
		})
		rs.sorted = true
	}
	return rs.rows
}

// keys returns the model keys of v that hold rows, sorted.
func (m *genModel) keys(v *genView) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.rows[v]))
	for k := range m.rows[v] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// windowEnd is f's window end (exclusive) for a read as of t: also the
// served value's effective time.
func genWindowEnd(v *genView, f aggFeature, t int64) int64 {
	a := t
	if v.interval > 0 {
		i := int64(v.interval)
		a = t - ((t%i)+i)%i // floor to the tile grid, negative times too
	}
	return a - int64(f.window.offset)
}

// genWindow returns f's window [lo, hi) as of t; lo is MinInt64 for a
// lifetime window.
func genWindow(v *genView, f aggFeature, t int64) (lo, hi int64) {
	hi = genWindowEnd(v, f, t)
	if f.window.lifetime {
		return math.MinInt64, hi
	}
	return hi - int64(f.window.size), hi
}

// points returns the non-null input values of the key's rows in f's
// window as of t, in latest order (oldest first).
func (m *genModel) points(v *genView, f aggFeature, key string, t int64) []aggPoint {
	if t <= m.minT { // nothing before every event (and no window arithmetic near the earliest time)
		return nil
	}
	rows := m.keyRows(v, key)
	lo, hi := genWindow(v, f, t)
	i := sort.Search(len(rows), func(i int) bool { return rows[i].ts >= lo })
	var pts []aggPoint
	for ; i < len(rows) && rows[i].ts < hi; i++ {
		if val := rows[i].row[f.input]; !val.IsNull() {
			pts = append(pts, aggPoint{ts: rows[i].ts, req: rows[i].ev.req, val: val})
		}
	}
	return pts
}

// latest returns the row an attribute view serves for key as of t, or
// nil (MISSING_DATA).
func (m *genModel) latest(v *genView, key string, t int64) *genRow {
	rows := m.keyRows(v, key)
	i := sort.Search(len(rows), func(i int) bool { return rows[i].ts >= t }) - 1
	if i < 0 {
		return nil
	}
	if ttl := v.servingTTL(); ttl > 0 && rows[i].ts < t-int64(ttl) {
		return nil
	}
	return &rows[i]
}

// genWant is the model's value of one served feature.
type genWant struct {
	val       schema.Value
	present   bool
	effective int64      // Unix ns; for attributes, the record's event time
	pts       []aggPoint // aggregates: the window's points, for aggCheck
	row       *genRow    // attributes: the record served
}

// want computes feature idx of v for key as of t.
func (m *genModel) want(v *genView, idx int, key string, t int64) genWant {
	if v.aggregate() {
		f := v.aggs[idx]
		pts := m.points(v, f, key, t)
		return genWant{val: aggCompute(f, v.colType(f.input).Kind, pts), present: true, effective: genWindowEnd(v, f, t), pts: pts}
	}
	row := m.latest(v, key, t)
	if row == nil {
		return genWant{}
	}
	return genWant{val: row.row[v.attrs[idx]], present: true, effective: row.ts, row: row}
}

// check compares a served value with the model's: exact for attributes
// (bit for bit), within aggCheck's tolerances for aggregates.
func (w genWant) check(v *genView, idx int, got schema.Value) (bool, string) {
	if !v.aggregate() {
		if !histSame(got, w.val) {
			return false, "values differ"
		}
		return true, ""
	}
	return aggCheck(v.aggs[idx], got, w.val, w.pts)
}
