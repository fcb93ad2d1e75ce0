package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/featurelog/featurelog/schema"
)

// rangeChunk is how many entities a range query answers at a time.
const rangeChunk = 1 << 16

// GetFeaturesForRange answers a range-mode historical query: for every
// key, the intervals within [Start, End) over which its feature vector
// holds, as rows of join keys, _valid_from, _valid_to and the features.
// Consecutive intervals always differ in some feature. Each interval's
// vector is the one an online read as of any time in it returns: the
// instants where a feature can change are derived from the key's event
// times and the windows, and the vector is read at each of them.
func (db *DB) GetFeaturesForRange(ctx context.Context, req *HistoricalRequest, sink HistoricalSink) error {
	svc, cat, err := db.historicalService(req)
	if err != nil {
		return err
	}
	if err := checkRange(req.Start, req.End); err != nil {
		return err
	}
	for _, k := range svc.joinKeys {
		if k == "_valid_from" || k == "_valid_to" {
			return errorf(CodeInvalidArgument, "range mode adds the columns _valid_from and _valid_to, but %q is a join key of feature service %q; use spine mode, or rename the column", k, svc.def.Name)
		}
	}
	j, err := db.newJoin(svc, cat, req)
	if err != nil {
		return err
	}
	defer j.close()
	ents, err := j.entities(req.Entities)
	if err != nil {
		return err
	}
	lead := append(append([]string(nil), svc.joinKeys...), "_valid_from", "_valid_to")
	cols := j.columns(lead, false)
	for i, name := range svc.joinKeys {
		cols[i].Type = j.joinKeyType(name)
	}
	cols[len(svc.joinKeys)].Type = schema.Type{Kind: schema.Timestamp}
	cols[len(svc.joinKeys)+1].Type = schema.Type{Kind: schema.Timestamp}
	if err := sink.Begin(cols); err != nil {
		return err
	}
	rr := rangeRun{j: j, sink: sink, start: req.Start.UnixNano(), end: req.End.UnixNano(), progress: req.Progress}
	for lo := 0; lo < len(ents.values); lo += rangeChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := rr.chunk(ents, lo, min(lo+rangeChunk, len(ents.values))); err != nil {
			return err
		}
	}
	return nil
}

func checkRange(start, end time.Time) error {
	if start.IsZero() || end.IsZero() {
		return errorf(CodeInvalidArgument, "range mode needs start_time and end_time")
	}
	for _, t := range []time.Time{start, end} {
		if err := schema.CheckTimestamp(t); err != nil {
			return errorf(CodeInvalidArgument, "range: %v", err)
		}
	}
	if !end.After(start) {
		return errorf(CodeInvalidArgument, "end_time %s must be after start_time %s",
			end.UTC().Format(time.RFC3339Nano), start.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// entitySet is the keys a range query reports: per entity its join-key
// values (service order) and per view its entity key.
type entitySet struct {
	values [][]schema.Value
	keys   [][]string // [view][entity]
}

func (j *join) joinKeyType(name string) schema.Type {
	for _, vj := range j.views {
		for _, jk := range vj.v.def.JoinKeys {
			if jk.Name == name {
				return jk.Type
			}
		}
	}
	return schema.Type{}
}

// entities resolves the given entities, or lists every key with data in
// any of the service's views (which must then share their join keys).
func (j *join) entities(given []map[string]any) (*entitySet, error) {
	es := &entitySet{keys: make([][]string, len(j.views))}
	if given != nil {
		for i, m := range given {
			if err := j.svc.checkJoinKeys(m); err != nil {
				return nil, errorf(CodeInvalidArgument, "entities[%d]: %v", i, err)
			}
			vals := make([]schema.Value, len(j.svc.joinKeys))
			for k, name := range j.svc.joinKeys {
				v, err := joinKeyValue(m[name], j.joinKeyType(name))
				if err != nil {
					return nil, errorf(CodeInvalidArgument, "entities[%d]: join key %q: %v", i, name, err)
				}
				vals[k] = v
			}
			es.values = append(es.values, vals)
			for vi, vj := range j.views {
				key, _, err := vj.v.keyFromMap(m, nil)
				if err != nil {
					return nil, errorf(CodeInvalidArgument, "entities[%d]: %v", i, err)
				}
				es.keys[vi] = append(es.keys[vi], key)
			}
		}
		return es, nil
	}
	for _, vj := range j.views {
		if !sameJoinKeys(vj.v, j.views[0].v, j.svc.joinKeys) {
			return nil, errorf(CodeInvalidArgument, "feature service %q joins views on different join keys (%s); range mode needs an entities list",
				j.svc.def.Name, describeJoinKeys(j.views))
		}
	}
	keys, err := j.allKeys()
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		vals, err := decodeEntityKey(key, j.views[0].v.def.JoinKeys)
		if err != nil {
			return nil, &Error{Code: CodeInternal, Msg: "entity key", Err: err}
		}
		es.values = append(es.values, vals)
		for vi := range j.views {
			es.keys[vi] = append(es.keys[vi], key)
		}
	}
	return es, nil
}

// sameJoinKeys reports whether v has the join keys names, in that order,
// of the types first gives them: only then are their entity keys the same
// byte strings (a user_id of 7 is keyed apart as a String, an Int32 and
// an Int64; engine/key.go).
func sameJoinKeys(v, first *viewRT, names []string) bool {
	if len(v.def.JoinKeys) != len(names) {
		return false
	}
	for i, jk := range v.def.JoinKeys {
		if jk.Name != names[i] || jk.Type != first.def.JoinKeys[i].Type {
			return false
		}
	}
	return true
}

// describeJoinKeys lists each view's typed join keys, for errors.
func describeJoinKeys(views []*viewJoin) string {
	var parts []string
	for _, vj := range views {
		var ks []string
		for _, jk := range vj.v.def.JoinKeys {
			ks = append(ks, jk.Name+" "+jk.Type.String())
		}
		parts = append(parts, vj.v.def.Name+": "+strings.Join(ks, ", "))
	}
	return strings.Join(parts, "; ")
}

// allKeys returns every entity key with data in any view, sorted.
func (j *join) allKeys() ([]string, error) {
	seen := map[string]struct{}{}
	add := func(ks []string) {
		for _, k := range ks {
			seen[k] = struct{}{}
		}
	}
	for _, vj := range j.views {
		src := vj.src
		if vj.fromSource { // from_source lists the keys of the online state too: its memtables and segments
			src = vj.v.data.snapshot(true)
			defer src.release()
		}
		if src.tiles != nil {
			add(src.tiles.Keys())
		} else {
			add(src.attrs.sortedKeys())
		}
		for _, m := range src.frozen {
			if m.tiles != nil {
				add(m.tiles.Keys())
			} else {
				add(m.attrs.sortedKeys())
			}
		}
		for _, sg := range src.segs {
			it := sg.h.Reader().NewIterator()
			for it.Next() {
				seen[string(it.Key())] = struct{}{}
			}
			if err := it.Err(); err != nil {
				return nil, &Error{Code: CodeInternal, Msg: "segment " + sg.file, Err: err}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// decodeEntityKey inverts entityKey for the given join keys.
func decodeEntityKey(key string, jks []schema.Column) ([]schema.Value, error) {
	if len(jks) == 1 && jks[0].Type.Kind == schema.String {
		return []schema.Value{{Kind: schema.String, S: key}}, nil
	}
	b := []byte(key)
	out := make([]schema.Value, 0, len(jks))
	for range jks {
		if len(b) == 0 {
			return nil, errors.New("entity key too short")
		}
		v := schema.Value{Kind: schema.Kind(b[0])}
		b = b[1:]
		switch v.Kind {
		case schema.String:
			n, k := binary.Uvarint(b)
			if k <= 0 || uint64(len(b)-k) < n {
				return nil, errors.New("bad string in entity key")
			}
			v.S, b = string(b[k:k+int(n)]), b[k+int(n):]
		default:
			if len(b) < 8 {
				return nil, errors.New("entity key too short")
			}
			x := binary.BigEndian.Uint64(b)
			if v.Kind == schema.Float64 || v.Kind == schema.Float32 {
				v.F = math.Float64frombits(x)
			} else {
				v.I = int64(x)
			}
			b = b[8:]
		}
		out = append(out, v)
	}
	return out, nil
}

// rangeRun answers the entities of a range query.
type rangeRun struct {
	j          *join
	sink       HistoricalSink
	start, end int64
	progress   func(int)
	rows       int
}

func (rr *rangeRun) chunk(es *entitySet, lo, hi int) error {
	j := rr.j
	cursors := make([]*keyCursor, len(j.views))
	for vi, vj := range j.views {
		if err := vj.prepare(j, es.keys[vi][lo:hi]); err != nil {
			return err
		}
		cursors[vi] = newKeyCursor(vj)
	}
	nf := len(j.svc.features)
	cur, next := make([]schema.Value, nf), make([]schema.Value, nf)
	var times []int64
	for e := lo; e < hi; e++ {
		times = times[:0]
		for vi, kc := range cursors {
			if err := kc.seek(es.keys[vi][e]); err != nil {
				return err
			}
			times = kc.changeInstants(times, rr.start, rr.end)
		}
		sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
		if err := rr.vector(cursors, rr.start, cur); err != nil {
			return err
		}
		from := rr.start
		for i, t := range times {
			if i > 0 && t == times[i-1] {
				continue
			}
			if err := rr.vector(cursors, t, next); err != nil {
				return err
			}
			if equalVectors(cur, next) {
				continue
			}
			if err := rr.emit(es.values[e], from, t, cur); err != nil {
				return err
			}
			from, cur, next = t, next, cur
		}
		if err := rr.emit(es.values[e], from, rr.end, cur); err != nil {
			return err
		}
	}
	return nil
}

// vector reads the service's features as of t into out.
func (rr *rangeRun) vector(cursors []*keyCursor, t int64, out []schema.Value) error {
	var buf [16]schema.Value
	for vi, kc := range cursors {
		vj := rr.j.views[vi]
		var vals []schema.Value
		if n := len(vj.v.def.Features); n > len(buf) {
			vals = make([]schema.Value, n)
		} else {
			vals = buf[:n]
		}
		if err := kc.read(t, vals); err != nil {
			return err
		}
		for _, o := range vj.outs {
			out[o[1]] = vals[o[0]]
		}
	}
	return nil
}

func (rr *rangeRun) emit(keyVals []schema.Value, from, to int64, vals []schema.Value) error {
	lead := make([]any, 0, len(keyVals)+2)
	for _, v := range keyVals {
		lead = append(lead, v)
	}
	lead = append(lead, time.Unix(0, from).UTC(), time.Unix(0, to).UTC())
	if err := rr.sink.Row(lead, vals); err != nil {
		return err
	}
	rr.rows++
	if rr.progress != nil && rr.rows%4096 == 0 {
		rr.progress(rr.rows)
	}
	return nil
}

func equalVectors(a, b []schema.Value) bool {
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
