package engine_test

// Reads of the differential test over generated repos (gen_diff_test.go):
// identities (a value per join-key name, as callers spell them), read
// plans, the comparison with the model, and the report of mismatches.

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// identityOf names the entity of e's join keys, and random (popular)
// values for the other join-key names of the repo.
func (d *genRun) identityOf(e *genEvent, r *rand.Rand) genIdentity {
	id := d.randomIdentity(r)
	for _, k := range e.src.keys {
		if v, ok := e.cols[k]; ok && !v.IsNull() {
			if v.Kind == schema.String {
				id[k] = v.S
			} else {
				id[k] = strconv.FormatInt(v.I, 10)
			}
		}
	}
	return id
}

// randomIdentity draws a value for every join-key name.
func (d *genRun) randomIdentity(r *rand.Rand) genIdentity {
	id := genIdentity{}
	for k, vals := range d.w.keyVals {
		n := vals[min(len(vals)-1, int(r.ExpFloat64()*float64(len(vals))/8))]
		id[k] = strconv.FormatInt(n, 10)
		if n >= 0 && d.repo.keyType(k) == schema.String && r.Intn(8) == 0 {
			id[k] = "0" + id[k]
		}
	}
	return id
}

// unseenIdentity names keys no record has.
func (d *genRun) unseenIdentity() genIdentity {
	id := genIdentity{}
	for k := range d.w.keyVals {
		id[k] = "987654321"
	}
	return id
}

// joinKeys renders id as a join_key_map for svc: a key typed String in
// any of the service's views as text; an integer key as int64, float64,
// a JSON number or decimal text.
func (d *genRun) joinKeys(svc *genService, id genIdentity, r *rand.Rand) map[string]any {
	out := map[string]any{}
	for _, k := range svc.joinKeys() {
		s := id[k]
		if genServiceKeyKind(svc, k) == schema.String {
			out[k] = s
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			panic(err)
		}
		out[k] = []any{n, float64(n), engine.Number(s), s}[r.Intn(4)]
	}
	return out
}

// genServiceKeyKind is String when any view of svc keys k as a String,
// else the integer kind.
func genServiceKeyKind(svc *genService, k string) schema.Kind {
	var kind schema.Kind
	for _, v := range svc.views() {
		for _, c := range v.joinKeys() {
			if c.name == k {
				if c.t.Kind == schema.String {
					return schema.String
				}
				kind = c.t.Kind
			}
		}
	}
	return kind
}

// read reads one vector and compares it with the model; now and then it
// reads another service with the same identity too.
func (d *genRun) read(stage string, rd genRead) {
	d.readOne(stage, rd)
	if d.r.Intn(6) == 0 {
		rd.svc = d.repo.services[d.r.Intn(len(d.repo.services))]
		d.readOne(stage, rd)
	}
}

func (d *genRun) readOne(stage string, rd genRead) {
	req := &engine.GetFeaturesRequest{Workspace: d.repo.ws, Service: rd.svc.name, JoinKeys: d.joinKeys(rd.svc, rd.id, d.r)}
	if !rd.now {
		req.AsOf = time.Unix(0, rd.t).UTC()
	}
	vec, err := d.db.GetFeatures(req)
	require.NoError(d.t, err, "%s %s: %s %s as of %s", d.c.name, stage, rd.svc.name, rd.id, aggTime(rd.t))
	d.stats.reads++
	d.match(stage, rd, vec.Features)
}

// match compares one served vector with the model.
func (d *genRun) match(stage string, rd genRead, got []engine.FeatureValue) {
	sfs := rd.svc.features()
	if len(got) != len(sfs) {
		d.t.Fatalf("%s %s: %s serves %d features, want %d", d.c.name, stage, rd.svc.name, len(got), len(sfs))
	}
	for i, sf := range sfs {
		fv := got[i]
		if fv.Name != sf.name {
			d.t.Fatalf("%s %s: %s feature %d is %q, want %q", d.c.name, stage, rd.svc.name, i, fv.Name, sf.name)
		}
		key := rd.id.key(sf.view)
		w := d.model.want(sf.view, sf.idx, key, rd.t)
		d.stats.values++
		var why []string
		wantStatus := engine.MissingData
		if w.present {
			wantStatus = engine.Present
		}
		switch {
		case sf.view.aggregate() && len(w.pts) == 0:
			d.stats.empty++
		case !sf.view.aggregate() && w.present:
			d.stats.present++
		case !sf.view.aggregate():
			d.stats.missing++
		}
		if sf.view.aggregate() && sf.view.aggs[sf.idx].fn == "last" && aggCrossTie(w.pts) {
			d.stats.crossTies++
		}
		if fv.Status != wantStatus {
			why = append(why, fmt.Sprintf("status %s, want %s", fv.Status, wantStatus))
		}
		var eff int64
		if !fv.EffectiveTime.IsZero() {
			eff = fv.EffectiveTime.UnixNano()
		}
		if w.present && eff != w.effective || !w.present && !fv.EffectiveTime.IsZero() {
			why = append(why, fmt.Sprintf("effective time %s, want %s", aggTime(eff), aggTime(w.effective)))
		}
		if ok, reason := w.check(sf.view, sf.idx, fv.Value); !ok {
			why = append(why, reason)
		}
		if len(why) > 0 {
			d.mismatch(stage, rd, sf, key, fv, w, strings.Join(why, "; "))
		}
	}
}

// checkpoint reads a few recent identities while the workload runs: at
// now, just before, at the current tile boundaries and at recent event
// times; and reads the previous checkpoint's reads again.
func (d *genRun) checkpoint() {
	now := d.now.Load()
	all := d.repo.services[0]
	var reads []genRead
	d.mu.Lock()
	recent := d.log[max(0, len(d.log)-50):]
	d.mu.Unlock()
	for i := 0; i < 3 && len(recent) > 0; i++ {
		e := recent[d.r.Intn(len(recent))]
		id := d.identityOf(e, d.r)
		reads = append(reads, genRead{svc: all, id: id, t: now, now: true}, genRead{svc: all, id: id, t: now - 1})
		for _, g := range []int64{int64(aggM), int64(10 * aggM), int64(aggH)} {
			b := now - now%g
			reads = append(reads, genRead{svc: all, id: id, t: b}, genRead{svc: all, id: id, t: b - 1})
		}
		for _, v := range d.repo.viewsOf(e.src) {
			if p := genProject(v, e); p.outcome == genApplied && p.ts+1 <= now {
				reads = append(reads, genRead{svc: all, id: id, t: p.ts}, genRead{svc: all, id: id, t: p.ts + 1})
			}
		}
	}
	for _, rd := range reads {
		d.read(d.stage+" checkpoint", rd)
	}
	for _, rd := range d.lastCheckpoint {
		rd.now = false
		d.read(d.stage+" checkpoint, re-read", rd)
	}
	d.lastCheckpoint = reads
}

// edges returns the distances after an event time at which a feature of
// v can change (window ends and starts, the TTL), and v's grid.
func genEdges(v *genView) []int64 {
	var out []int64
	for _, f := range v.aggs {
		out = append(out, int64(f.window.offset))
		if !f.window.lifetime {
			out = append(out, int64(f.window.offset+f.window.size))
		}
	}
	if ttl := v.servingTTL(); ttl > 0 && !v.aggregate() {
		out = append(out, int64(ttl))
	}
	return slices.Compact(out)
}

// readPlan chooses the reads of a full comparison: per view, a few keys
// with records (and one never seen), each at times around a few of its
// records: the event time ±1ns, the window and TTL edges after it ±1ns
// (aligned up to the view's interval too), tile boundaries; the first
// event ±1ns, long before everything, and now with and without as_of.
func (d *genRun) readPlan() []genRead {
	now := d.now.Load()
	all := d.repo.services[0]
	grids := []int64{int64(aggM), int64(10 * aggM), int64(aggH), int64(aggD)}
	var out []genRead
	plan := func(id genIdentity, v *genView, rows []genRow) {
		set := map[int64]bool{genBase.UnixNano() - int64(10*aggD): true}
		var cands []int64
		add := func(t int64) {
			if t <= now {
				cands = append(cands, t)
			}
		}
		for i := 0; i < 4 && len(rows) > 0; i++ {
			ts := rows[d.r.Intn(len(rows))].ts
			for _, dt := range []int64{0, 1, -1} {
				add(ts + dt)
				for _, e := range genEdges(v) {
					add(ts + e + dt)
					if v.interval > 0 {
						add(ceilTo(ts+e, int64(v.interval)) + dt)
					}
				}
				for _, g := range grids {
					add(ceilTo(ts, g) + dt)
				}
			}
		}
		if len(rows) > 0 {
			for _, dt := range []int64{-1, 0, 1} {
				set[rows[0].ts+dt] = true
			}
		}
		if v.start != math.MinInt64 {
			for _, dt := range []int64{-1, 0, 1} {
				add(v.start + dt)
			}
		}
		for len(set) < d.size.reads && len(cands) > 0 {
			i := d.r.Intn(len(cands))
			set[cands[i]] = true
			cands[i] = cands[len(cands)-1]
			cands = cands[:len(cands)-1]
		}
		var ts []int64
		for t := range set {
			if t <= now {
				ts = append(ts, t)
			}
		}
		slices.Sort(ts)
		for _, t := range ts {
			out = append(out, genRead{svc: all, id: id, t: t})
		}
		out = append(out, genRead{svc: all, id: id, t: now, now: true}, genRead{svc: all, id: id, t: now})
	}
	for _, v := range d.repo.views {
		keys := d.model.keys(v)
		d.r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		for _, k := range keys[:min(len(keys), d.size.idents)] {
			rows := d.model.keyRows(v, k)
			plan(d.identityOf(rows[d.r.Intn(len(rows))].ev, d.r), v, rows)
		}
	}
	plan(d.unseenIdentity(), d.repo.views[0], nil)
	return out
}

// ceilTo is the smallest multiple of g at or after t (negative t too).
func ceilTo(t, g int64) int64 {
	f := t - ((t%g)+g)%g
	if f == t {
		return t
	}
	return f + g
}

// compareAll runs a read plan, then batch reads of many identities at one
// time.
func (d *genRun) compareAll(stage string, reads []genRead) {
	start := time.Now()
	for _, rd := range reads {
		d.read(stage, rd)
	}
	now := d.now.Load()
	t := genBase.UnixNano() + d.r.Int63n(now-genBase.UnixNano())
	all := d.repo.services[0]
	var ids []genIdentity
	var jks []map[string]any
	for i := 0; i < 64; i++ {
		id := d.randomIdentity(d.r)
		ids = append(ids, id)
		jks = append(jks, d.joinKeys(all, id, d.r))
	}
	vecs, err := d.db.GetFeaturesBatch(d.repo.ws, all.name, jks, time.Unix(0, t))
	require.NoError(d.t, err)
	require.Len(d.t, vecs, len(jks))
	for i, id := range ids {
		d.match(stage+" (batch)", genRead{svc: all, id: id, t: t}, vecs[i].Features)
	}
	d.t.Logf("%s: %d reads in %v", stage, len(reads)+len(ids), time.Since(start).Round(time.Millisecond))
}

// ---------------------------------------------------------------------
// Mismatches.

// genMaxDetailed bounds the mismatches printed in full.
const genMaxDetailed = 12

func (d *genRun) mismatch(stage string, rd genRead, sf genServed, key string, fv engine.FeatureValue, w genWant, why string) {
	m := genMismatch{stage: stage, service: rd.svc.name, feature: sf.name, id: rd.id, t: rd.t}
	var b strings.Builder
	fmt.Fprintf(&b, "MISMATCH %s, %s: %s via %s, %s, as of %s (%d ns)\n", d.c.name, stage, sf.name, rd.svc.name, rd.id, aggTime(rd.t), rd.t)
	fmt.Fprintf(&b, "  got:  %s (%v), effective %s, status %s\n", aggFmt(fv.Value), fv.Value.Kind, aggTime(fv.EffectiveTime.UnixNano()), fv.Status)
	fmt.Fprintf(&b, "  want: %s (%v), effective %s, present %v\n", aggFmt(w.val), w.val.Kind, aggTime(w.effective), w.present)
	fmt.Fprintf(&b, "  why:  %s\n", why)
	b.WriteString(d.explain(sf, key, rd.t, w))
	m.detail = b.String()
	d.mismatches = append(d.mismatches, m)
	if len(d.mismatches) == 1 {
		d.t.Logf("the repo (%s):\n%s", d.repo.name, genNumbered(d.repo.render()))
	}
	if len(d.mismatches) <= genMaxDetailed {
		d.t.Log(m.detail)
	}
	if !d.shrunk[sf.name] && len(d.shrunk) < 3 {
		d.shrunk[sf.name] = true
		d.t.Log(genShrink(d.t, genShrinkHow{}, d.repo, d.snapshotLog(), sf.view.name, sf.name, rd.id, rd.t, d.now.Load()))
	}
}

func (d *genRun) snapshotLog() []*genEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.log)
}

// explain lists what the model saw: an aggregate's window values, or an
// attribute's record and its neighbours.
func (d *genRun) explain(sf genServed, key string, t int64, w genWant) string {
	var b strings.Builder
	v := sf.view
	if v.aggregate() {
		f := v.aggs[sf.idx]
		lo, hi := genWindow(v, f, t)
		fmt.Fprintf(&b, "  window [%s, %s) of %s(%s); %d non-null input values in it, in latest order:\n", aggTime(lo), aggTime(hi), f.fn, f.input, len(w.pts))
		for i, p := range w.pts {
			if len(w.pts) > 20 && i >= 15 && i < len(w.pts)-5 {
				if i == 15 {
					fmt.Fprintf(&b, "    ... %d more ...\n", len(w.pts)-20)
				}
				continue
			}
			fmt.Fprintf(&b, "    %s = %s at %s (req %d)\n", f.input, aggFmt(p.val), aggTime(p.ts), p.req)
		}
		return b.String()
	}
	rows := d.model.keyRows(v, key)
	fmt.Fprintf(&b, "  the key's records (ttl %v), latest last:\n", v.servingTTL())
	for _, r := range rows[max(0, len(rows)-8):] {
		fmt.Fprintf(&b, "    %s %s = %s  [%s]\n", aggTime(r.ts), v.attrs[sf.idx], aggFmt(r.row[v.attrs[sf.idx]]), r.ev)
	}
	return b.String()
}

// report fails the test with a summary of the mismatches per feature.
func (d *genRun) report() {
	if len(d.mismatches) == 0 {
		return
	}
	type agg struct {
		n      int
		stages map[string]int
		first  genMismatch
	}
	by := map[string]*agg{}
	var names []string
	for _, m := range d.mismatches {
		a := by[m.feature]
		if a == nil {
			a = &agg{stages: map[string]int{}, first: m}
			by[m.feature] = a
			names = append(names, m.feature)
		}
		a.n++
		a.stages[m.stage]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d mismatched feature values in %d features (first %d printed in full above, with the repo):\n",
		d.c.name, len(d.mismatches), len(names), genMaxDetailed)
	for _, n := range names {
		a := by[n]
		fmt.Fprintf(&b, "  %-60s %5d  first: %s as of %s; by stage %v\n", n, a.n, a.first.id, aggTime(a.first.t), a.stages)
	}
	d.t.Error(b.String())
}
