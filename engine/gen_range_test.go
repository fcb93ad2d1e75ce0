package engine_test

// Range mode in the historical differential test over generated repos
// (gen_hist_test.go).

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// ranges runs range queries of svc: with entity lists (keys with data,
// random ones, one never seen, out of order), and without one (every key
// with data, or an error when the views are keyed differently); each from
// the tiles and from source.
func (h *genHist) ranges(svc *genService) {
	now := h.now.Load()
	span := int64(h.size.span)
	for i := 0; i < h.hsize.ranges; i++ {
		start := now - int64(4*aggH) - h.rnd.Int63n(span-int64(4*aggH))
		if i%2 == 1 {
			start -= start % int64(aggH) // on a tile boundary
		}
		end := min(now, start+int64(aggH)+h.rnd.Int63n(int64(5*aggH)))
		if i == 0 {
			end = now
		}
		ids := h.activeIdentities(svc, start-int64(aggD), end, 3) // entities whose vectors change in the range
		for j := 0; j < 2; j++ {
			ids = append(ids, h.pick(svc).id)
		}
		ids = append(ids, h.unseenIdentity())
		h.rnd.Shuffle(len(ids), func(a, b int) { ids[a], ids[b] = ids[b], ids[a] })
		seen := map[string]bool{} // one entity once: range mode reports an entity listed twice twice
		ids = slices.DeleteFunc(ids, func(id genIdentity) bool {
			c := genCanonical(svc, id).String()
			dup := seen[c]
			seen[c] = true
			return dup
		})
		for _, fromSource := range []bool{false, true} {
			h.rangeRun(fmt.Sprintf("%s range %d (from_source %v)", svc.name, i+1, fromSource), svc, start, end, ids, fromSource)
		}
	}
	start := now - int64(aggH) - h.rnd.Int63n(span-int64(aggH))
	for _, fromSource := range []bool{false, true} {
		h.rangeRun(fmt.Sprintf("%s range, every key (from_source %v)", svc.name, fromSource), svc, start, start+int64(20*aggM), nil, fromSource)
	}
}

// activeIdentities draws up to n identities of records of svc's views
// with event times in [lo, hi).
func (h *genHist) activeIdentities(svc *genService, lo, hi int64, n int) []genIdentity {
	var cands []*genEvent
	for _, e := range h.snapshotLog() {
		for _, v := range svc.views() {
			if p := genProject(v, e); v.src == e.src && p.outcome == genApplied && p.ts >= lo && p.ts < hi {
				cands = append(cands, e)
				break
			}
		}
	}
	var out []genIdentity
	for i := 0; i < n && len(cands) > 0; i++ {
		out = append(out, h.identityOf(cands[h.rnd.Intn(len(cands))], h.rnd))
	}
	return out
}

// genRangeRow is a range row: its entity (model keys per view), interval
// and values.
type genRangeRow struct {
	id       genIdentity
	lead     []schema.Value
	from, to int64
	vals     []schema.Value
}

// rangeRun runs one range query and checks it: each entity's rows are
// contiguous, in time order, and cover [start, end) exactly; consecutive
// rows differ; an entity without data has one row; and for up to perKey
// rows of each entity, online reads (not after the clock) and the model at
// its start (bit for bit online), its end − 1ns and a time inside hold its
// values (from source: loose features within the model's tolerance only).
// Without ids, the entities are every key with data; when the
// service's views are keyed differently that is an error.
func (h *genHist) rangeRun(stage string, svc *genService, start, end int64, ids []genIdentity, fromSource bool) {
	t0 := time.Now()
	req := engine.HistoricalRequest{Workspace: h.repo.ws, Service: svc.name, Start: time.Unix(0, start), End: time.Unix(0, end), FromSource: fromSource}
	for _, id := range ids {
		req.Entities = append(req.Entities, h.joinKeys(svc, id, h.rnd))
	}
	var rows []histRow
	sink := histCollector(&rows)
	err := h.db.GetFeaturesForRange(context.Background(), &req, sink)
	if ids == nil && !svc.sameKeys() {
		require.Error(h.t, err, "%s %s: range mode without entities over views keyed differently (%s) must be refused", h.c.name, stage, genKeysOf(svc))
		require.Equal(h.t, engine.CodeInvalidArgument, engine.CodeOf(err), "%s: %v", stage, err)
		return
	}
	require.NoError(h.t, err, "%s %s", h.c.name, stage)
	keys := svc.joinKeys()
	require.Equal(h.t, 1, sink.begins, stage)
	require.Len(h.t, sink.cols, len(keys)+2+len(svc.features()), stage)
	for i, k := range keys {
		require.Equal(h.t, k, sink.cols[i].Name, "%s: lead column %d", stage, i)
	}
	require.Equal(h.t, []engine.HistoricalColumn{{Name: "_valid_from", Type: schema.ScalarType(schema.Timestamp)},
		{Name: "_valid_to", Type: schema.ScalarType(schema.Timestamp)}}, sink.cols[len(keys):len(keys)+2], stage)
	groups := h.rangeGroups(stage, svc, rows)
	var got []string
	for _, g := range groups {
		got = append(got, g[0].id.String())
	}
	if ids != nil {
		var want []string
		for _, id := range ids {
			want = append(want, genCanonical(svc, id).String())
		}
		require.Equal(h.t, want, got, "%s %s: the entities answered, in order", h.c.name, stage)
		for i, g := range groups { // the model reads each view's key as the entity was spelled
			for j := range g {
				g[j].id = ids[i]
			}
		}
	} else {
		require.ElementsMatch(h.t, h.keysWithData(svc), got, "%s %s: every key with data", h.c.name, stage)
	}
	now := h.now.Load()
	sfs := svc.features()
	for _, g := range groups {
		prev := start
		for j, row := range g {
			require.Equal(h.t, aggTime(prev), aggTime(row.from), "%s: %s row %d: a gap or an overlap", stage, row.id, j)
			require.Less(h.t, row.from, row.to, "%s: %s row %d: an empty interval", stage, row.id, j)
			if j > 0 {
				require.False(h.t, slices.EqualFunc(row.vals, g[j-1].vals, schema.Value.Equal), "%s: %s rows %d and %d hold the same vector", stage, row.id, j-1, j)
			}
			prev = row.to
		}
		require.Equal(h.t, aggTime(end), aggTime(prev), "%s: %s: the rows end before end_time", stage, g[0].id)
		if !h.hasData(svc, g[0].id) {
			require.Len(h.t, g, 1, "%s: %s has no data: one row of empty-window values", stage, g[0].id)
		}
		idx := make([]int, len(g))
		for j := range idx {
			idx[j] = j
		}
		if len(idx) > h.hsize.perKey {
			h.rnd.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
			idx = append(idx[:h.hsize.perKey-2], 0, len(g)-1)
		}
		for _, j := range idx {
			row := g[j]
			for _, at := range []int64{row.from, row.to - 1, row.from + h.rnd.Int63n(row.to-row.from)} {
				where := fmt.Sprintf("%s, %s row %d [%s, %s) read at %s", stage, row.id, j, aggTime(row.from), aggTime(row.to), aggTime(at))
				q := genQuery{id: row.id, t: at}
				h.check(where, svc, q, row.vals)
				if at != row.from || at > now {
					continue
				}
				vec, err := h.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: h.repo.ws, Service: svc.name,
					JoinKeys: h.joinKeys(svc, row.id, h.rnd), AsOf: time.Unix(0, at)})
				require.NoError(h.t, err, where)
				for fi := range vec.Features {
					if fromSource && genLoose(sfs[fi]) { // summed in another order (genLoose): the model check above bounds it
						continue
					}
					if !histSame(vec.Features[fi].Value, row.vals[fi]) {
						h.problem(where, svc, q, fi, row.vals[fi], aggFmt(vec.Features[fi].Value)+" (online as_of _valid_from)",
							"the range row and the online read differ")
					}
				}
			}
		}
	}
	h.rep.flush(stage)
	h.t.Logf("%s [%s, %s): %d entities, %d rows in %v (%d features)", stage, aggTime(start), aggTime(end), len(groups), len(rows),
		time.Since(t0).Round(time.Millisecond), len(sfs))
}

// rangeGroups splits range rows by entity, checking each entity's rows
// are contiguous.
func (h *genHist) rangeGroups(stage string, svc *genService, rows []histRow) [][]genRangeRow {
	keys := svc.joinKeys()
	var groups [][]genRangeRow
	seen := map[string]bool{}
	for i, r := range rows {
		require.Len(h.t, r.lead, len(keys)+2, "%s: row %d", stage, i+1)
		id := genIdentity{}
		var lead []schema.Value
		for k, name := range keys {
			v, ok := r.lead[k].(schema.Value)
			require.True(h.t, ok, "%s: row %d: join key %s is %#v", stage, i+1, name, r.lead[k])
			lead = append(lead, v)
			if v.Kind == schema.String {
				id[name] = v.S
			} else {
				id[name] = strconv.FormatInt(v.I, 10)
			}
		}
		from, ok1 := r.lead[len(keys)].(time.Time)
		to, ok2 := r.lead[len(keys)+1].(time.Time)
		require.True(h.t, ok1 && ok2, "%s: row %d: _valid_from/_valid_to are %T, %T", stage, i+1, r.lead[len(keys)], r.lead[len(keys)+1])
		row := genRangeRow{id: id, lead: lead, from: from.UnixNano(), to: to.UnixNano(), vals: r.vals}
		name := id.String()
		if len(groups) == 0 || groups[len(groups)-1][0].id.String() != name {
			require.False(h.t, seen[name], "%s: the rows of %s are not contiguous (row %d)", stage, name, i+1)
			seen[name] = true
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], row)
	}
	return groups
}

// genCanonical spells id as range mode reports it: each join key in the
// type of the first of the service's views that has it (a key spelled
// "007" comes back as 7 when that view keys it as an integer).
func genCanonical(svc *genService, id genIdentity) genIdentity {
	out := genIdentity{}
	for _, k := range svc.joinKeys() {
		out[k] = id[k]
		for _, v := range svc.views() {
			i := slices.IndexFunc(v.joinKeys(), func(c genCol) bool { return c.name == k })
			if i < 0 {
				continue
			}
			if v.joinKeys()[i].t.Kind != schema.String {
				n, _ := strconv.ParseInt(id[k], 10, 64)
				out[k] = strconv.FormatInt(n, 10)
			}
			break
		}
	}
	return out
}

// keysWithData lists, as identities, the keys with records in any view of
// the service (whose views share their join keys).
func (h *genHist) keysWithData(svc *genService) []string {
	set := map[string]bool{}
	for _, v := range svc.views() {
		for _, k := range h.model.keys(v) {
			id := genIdentity{}
			for i, part := range strings.Split(k, "\x00") {
				id[v.joinKeys()[i].name] = part[2:]
			}
			set[id.String()] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// hasData reports whether any view of svc has records of id.
func (h *genHist) hasData(svc *genService, id genIdentity) bool {
	for _, v := range svc.views() {
		if len(h.model.keyRows(v, id.key(v))) > 0 {
			return true
		}
	}
	return false
}

// genKeysOf describes the views' join keys, for messages.
func genKeysOf(svc *genService) string {
	var parts []string
	for _, v := range svc.views() {
		var ks []string
		for _, c := range v.joinKeys() {
			ks = append(ks, c.name+" "+c.t.String())
		}
		parts = append(parts, v.name+": "+strings.Join(ks, ", "))
	}
	return strings.Join(parts, "; ")
}
