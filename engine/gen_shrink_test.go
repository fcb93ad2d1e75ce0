package engine_test

// The shrinker of the generated-repo differential tests: given a feature
// whose served value differs from the model's, it looks for a smaller repo
// (other views, features, transform columns, the filter, TTLs, start
// times, unused columns, sources and entities removed) and a smaller set
// of the accepted records that still make the engine differ from the
// model on a fresh DB, and prints them as a repo file, the requests (each
// at its clock) and the read: a reproduction to paste into a test.

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// genReproMode is how a reproduction replays the records.
type genReproMode int

const (
	genPlain       genReproMode = iota // ingest, then read
	genReopen                          // ingest, close and reopen, then read
	genFlushed                         // flush after every request, merge at the end, then read
	genInterleaved                     // read as of t after every request once the clock allows, then read
)

func (m genReproMode) String() string {
	return [...]string{"ingest then read", "ingest, close and reopen, then read",
		"flush after every request, CompactAll, then read", "ingest with a read as of t after every request"}[m]
}

// genShrinkHow is how the mismatch was read: online (GetFeatures), or as
// a one-row spine (GetFeaturesForEvents), from the tiles or from source.
type genShrinkHow struct {
	historical, fromSource bool
}

func (h genShrinkHow) String() string {
	switch {
	case h.fromSource:
		return "GetFeaturesForEvents(from_source)"
	case h.historical:
		return "GetFeaturesForEvents"
	}
	return "GetFeatures"
}

// genShrinker is one shrinking session.
type genShrinker struct {
	t       *testing.T
	how     genShrinkHow
	view    string // the failing view
	feature string // its feature's name within the view
	id      genIdentity
	at, now int64
	mode    genReproMode
	runs    int
}

// genShrinkBudget bounds the reproductions a shrink tries.
const genShrinkBudget = 800

// genShrink shrinks a mismatch of served (view.feature) for id as of at,
// read as how says, with the clock at now, and returns the reproduction
// it found.
func genShrink(t *testing.T, how genShrinkHow, repo *genRepo, log []*genEvent, view, served string, id genIdentity, at, now int64) string {
	s := &genShrinker{t: t, how: how, view: view, feature: strings.TrimPrefix(served, view+"."), id: id, at: at, now: now}
	rp := s.reproRepo(repo)
	evs := genRebind(log, rp)
	for !s.fails(rp, evs) {
		if s.mode == genInterleaved {
			return fmt.Sprintf("SHRINK %s as of %s: the workload's %d records on a fresh DB do not reproduce it in any mode; it needs the DB's history (concurrency, or the timing of flushes)",
				served, aggTime(at), len(evs))
		}
		s.mode++
	}
	// Records of other keys of the view, and of other sources, rarely
	// matter: try without them first, then remove records one chunk at a
	// time, then parts of the repo (cheap to try once few records are
	// left), and again until nothing more can go.
	v := genFindView(rp, s.view)
	var mine []*genEvent
	for _, e := range evs {
		if p := genProject(v, e); e.src == v.src && p.outcome != genRejected && p.key == id.key(v) {
			mine = append(mine, e)
		}
	}
	if len(mine) > 0 && len(mine) < len(evs) && s.fails(rp, mine) {
		evs = mine
	}
	for changed := true; changed && s.runs < genShrinkBudget; {
		n := len(evs)
		evs = s.shrinkEvents(rp, evs)
		changed = len(evs) < n
		for smaller := true; smaller && s.runs < genShrinkBudget; { // each candidate is an edit of rp: start again after taking one
			smaller = false
			for _, cand := range s.repoCandidates(rp) {
				if s.runs >= genShrinkBudget {
					break
				}
				if cevs := genRebind(evs, cand); s.fails(cand, cevs) {
					rp, evs, changed, smaller = cand, cevs, true, true
					break
				}
			}
		}
	}
	evs = s.accepted(rp, evs)
	_, detail := s.try(rp, evs)
	var b strings.Builder
	fmt.Fprintf(&b, "SHRINK %s: a reproduction with %d records (%d attempts; %s), on a fresh DB:\n--- repo file\n%s--- requests\n",
		served, len(evs), s.runs, s.mode, rp.render())
	lastReq := -1
	for _, e := range evs {
		if e.req != lastReq {
			fmt.Fprintf(&b, "  clock %s, ingest request %d:\n", aggTime(e.now), e.req)
			lastReq = e.req
		}
		fmt.Fprintf(&b, "    %s: %s\n", e.src.name, genRecordJSON(e))
	}
	if s.mode == genReopen {
		b.WriteString("  close and reopen the DB\n")
	}
	shown := genIdentity{}
	for _, k := range rp.services[0].joinKeys() {
		shown[k] = id[k]
	}
	fmt.Fprintf(&b, "--- read\n  clock %s, %s(repro_fs, %s, as of %s):\n%s", aggTime(now), how, shown, aggTime(at), detail)
	return b.String()
}

// reproRepo returns a copy of repo with one service, repro_fs, serving
// only the failing feature.
func (s *genShrinker) reproRepo(repo *genRepo) *genRepo {
	rp := repo.clone()
	rp.name = "shrunk from " + repo.name
	v := genFindView(rp, s.view)
	rp.services = []*genService{{name: "repro_fs", entries: []genEntry{{view: v, features: []string{s.feature}}}}}
	return rp
}

func genFindView(rp *genRepo, name string) *genView {
	for _, v := range rp.views {
		if v.name == name {
			return v
		}
	}
	panic("gen: no view " + name)
}

// genRebind copies evs onto rp's sources: records of sources rp lacks are
// dropped, columns it lacks removed.
func genRebind(evs []*genEvent, rp *genRepo) []*genEvent {
	var out []*genEvent
	for _, e := range evs {
		i := slices.IndexFunc(rp.sources, func(s *genSource) bool { return s.name == e.src.name })
		if i < 0 {
			continue
		}
		src := rp.sources[i]
		c := *e
		c.src = src
		c.cols = map[string]schema.Value{}
		for k, v := range e.cols {
			if _, ok := src.col(k); ok {
				c.cols[k] = v
			}
		}
		out = append(out, &c)
	}
	return out
}

// fails reports whether the mismatch reproduces.
func (s *genShrinker) fails(rp *genRepo, evs []*genEvent) bool {
	bad, _ := s.try(rp, evs)
	return bad
}

// try replays evs on a fresh DB with rp and reads the feature; it reports
// whether the engine differs from the model, and how.
func (s *genShrinker) try(rp *genRepo, evs []*genEvent) (bool, string) {
	s.runs++
	var clock atomic.Int64
	clock.Store(s.now)
	opts := engine.Options{Dir: s.t.TempDir(), Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }, NoSync: true,
		DisableAutoFlush: true, Logger: slog.New(slog.DiscardHandler)}
	db, err := engine.Open(opts)
	if err != nil {
		s.t.Fatalf("shrink: %v", err)
	}
	defer func() { db.Close() }()
	if _, err := db.ApplyWait(context.Background(), "repro.yaml", []byte(rp.render())); err != nil {
		return false, "" // the candidate repo is invalid
	}
	m := newGenModel(rp)
	v := genFindView(rp, s.view)
	svc := rp.services[0]
	read := func() (*engine.FeatureVector, error) {
		jk := map[string]any{}
		sp := &histSpine{cols: append(svc.joinKeys(), "ts"), rows: [][]any{nil}}
		for _, k := range svc.joinKeys() {
			jk[k] = s.id[k]
			sp.rows[0] = append(sp.rows[0], s.id[k])
		}
		if !s.how.historical {
			return db.GetFeatures(&engine.GetFeaturesRequest{Workspace: rp.ws, Service: svc.name, JoinKeys: jk, AsOf: time.Unix(0, s.at).UTC()})
		}
		sp.rows[0] = append(sp.rows[0], time.Unix(0, s.at).UTC())
		var rows []histRow
		err := db.GetFeaturesForEvents(context.Background(), &engine.HistoricalRequest{Workspace: rp.ws, Service: svc.name,
			TimestampKey: "ts", FromSource: s.how.fromSource}, sp, histCollector(&rows))
		if err != nil {
			return nil, err
		}
		return &engine.FeatureVector{Features: []engine.FeatureValue{{Value: rows[0].vals[0]}}}, nil
	}
	for i := 0; i < len(evs); {
		j := i
		for j < len(evs) && evs[j].req == evs[i].req {
			j++
		}
		req := evs[i:j]
		i = j
		clock.Store(req[0].now)
		if len(m.verdict(req, req[0].now, genSkew).rejected) > 0 {
			continue // without the removed parts, the request fails: leave it out
		}
		if _, err := genSend(db, rp.ws, req, false, false); err != nil {
			s.t.Fatalf("shrink: the model accepts request %d, the engine refuses it: %v", req[0].req, err)
		}
		m.add(req...)
		switch {
		case s.mode == genFlushed:
			if err := db.Flush(); err != nil {
				s.t.Fatalf("shrink: %v", err)
			}
		case s.mode == genInterleaved && clock.Load() >= s.at:
			if _, err := read(); err != nil {
				s.t.Fatalf("shrink: %v", err)
			}
		}
	}
	clock.Store(s.now)
	switch s.mode {
	case genFlushed:
		if err := db.CompactAll(); err != nil {
			s.t.Fatalf("shrink: %v", err)
		}
	case genReopen:
		if err := db.Close(); err != nil {
			s.t.Fatalf("shrink: %v", err)
		}
		if db, err = engine.Open(opts); err != nil {
			s.t.Fatalf("shrink: %v", err)
		}
	}
	vec, err := read()
	if err != nil {
		s.t.Fatalf("shrink: %v", err)
	}
	idx := slices.Index(v.featureNames(), s.feature)
	w := m.want(v, idx, s.id.key(v), s.at)
	fv := vec.Features[0]
	ok, why := w.check(v, idx, fv.Value)
	if s.how.historical { // a historical row has values only
		return !ok, fmt.Sprintf("    got %s, want %s: %s\n", aggFmt(fv.Value), aggFmt(w.val), why)
	}
	if w.present != (fv.Status == engine.Present) {
		ok, why = false, why+" status "+string(fv.Status)
	}
	if w.present && fv.EffectiveTime.UnixNano() != w.effective {
		ok, why = false, why+fmt.Sprintf(" effective time %s, want %s", aggTime(fv.EffectiveTime.UnixNano()), aggTime(w.effective))
	}
	return !ok, fmt.Sprintf("    got %s, want %s: %s\n", aggFmt(fv.Value), aggFmt(w.val), why)
}

// accepted returns the records of evs whose requests rp accepts.
func (s *genShrinker) accepted(rp *genRepo, evs []*genEvent) []*genEvent {
	m := newGenModel(rp)
	var out []*genEvent
	for i := 0; i < len(evs); {
		j := i
		for j < len(evs) && evs[j].req == evs[i].req {
			j++
		}
		if len(m.verdict(evs[i:j], evs[i].now, genSkew).rejected) == 0 {
			out = append(out, evs[i:j]...)
		}
		i = j
	}
	return out
}

// shrinkEvents removes chunks of records (ddmin) while the mismatch
// persists.
func (s *genShrinker) shrinkEvents(rp *genRepo, evs []*genEvent) []*genEvent {
	for chunk := len(evs) / 2; chunk >= 1 && s.runs < genShrinkBudget; {
		removed := false
		for i := 0; i+chunk <= len(evs) && s.runs < genShrinkBudget; {
			cand := append(slices.Clone(evs[:i]), evs[i+chunk:]...)
			if len(cand) > 0 && s.fails(rp, cand) {
				evs, removed = cand, true
				continue
			}
			i += chunk
		}
		if !removed {
			chunk /= 2
		}
	}
	return evs
}

// repoCandidates lists smaller repos: first ones that remove much at
// once (every other view, every other feature, every column nothing
// reads), then each removing one part of rp.
func (s *genShrinker) repoCandidates(rp *genRepo) []*genRepo {
	var out []*genRepo
	edit := func(f func(c *genRepo) bool) {
		c := rp.clone()
		if f(c) {
			out = append(out, c)
		}
	}
	edit(func(c *genRepo) bool {
		n := len(c.views)
		c.views = slices.DeleteFunc(c.views, func(v *genView) bool { return v.name != s.view })
		return len(c.views) < n
	})
	edit(func(c *genRepo) bool {
		v := genFindView(c, s.view)
		n := len(v.aggs) + len(v.attrs)
		v.aggs = slices.DeleteFunc(v.aggs, func(f aggFeature) bool { return genFeatureName(v, f) != s.feature })
		v.attrs = slices.DeleteFunc(v.attrs, func(a string) bool { return a != s.feature })
		return len(v.aggs)+len(v.attrs) < n
	})
	edit(func(c *genRepo) bool { return genDropUnused(c) })
	for i := range rp.views {
		if rp.views[i].name != s.view {
			edit(func(c *genRepo) bool { c.views = slices.Delete(c.views, i, i+1); return true })
		}
	}
	v := genFindView(rp, s.view)
	for i, name := range v.featureNames() {
		if name == s.feature {
			continue
		}
		edit(func(c *genRepo) bool {
			cv := genFindView(c, s.view)
			if cv.aggregate() {
				cv.aggs = slices.Delete(cv.aggs, i, i+1)
			} else {
				cv.attrs = slices.Delete(cv.attrs, i, i+1)
			}
			return true
		})
	}
	for _, cv := range rp.views {
		name := cv.name
		for i := range cv.txCols {
			edit(func(c *genRepo) bool {
				x := genFindView(c, name)
				col := x.txCols[i].name
				x.txCols = slices.Delete(x.txCols, i, i+1)
				return !genReads(x, col)
			})
		}
		if cv.filter != nil {
			edit(func(c *genRepo) bool { genFindView(c, name).filter = nil; return true })
		}
		if cv.start != math.MinInt64 {
			edit(func(c *genRepo) bool { genFindView(c, name).start = math.MinInt64; return true })
		}
		if cv.ttl > 0 {
			edit(func(c *genRepo) bool { genFindView(c, name).ttl = 0; return true })
		}
	}
	for si, src := range rp.sources {
		if len(rp.viewsOf(src)) == 0 {
			edit(func(c *genRepo) bool { c.sources = slices.Delete(c.sources, si, si+1); return true })
			continue
		}
		for ci, col := range src.cols {
			if slices.Contains(src.keys, col.name) || slices.Contains(src.times, col.name) {
				continue
			}
			edit(func(c *genRepo) bool {
				cs := c.sources[si]
				cs.cols = slices.Delete(cs.cols, ci, ci+1)
				for _, x := range c.viewsOf(cs) {
					if genReads(x, col.name) {
						return false
					}
				}
				return true
			})
		}
	}
	for ei, e := range rp.entities {
		used := slices.ContainsFunc(rp.views, func(v *genView) bool { return slices.Contains(v.entities, e) })
		if !used {
			edit(func(c *genRepo) bool { c.entities = slices.Delete(c.entities, ei, ei+1); return true })
		}
	}
	return out
}

// genFeatureName is f's served name within v.
func genFeatureName(v *genView, f aggFeature) string {
	if f.name != "" {
		return f.name
	}
	return aggDefaultName(f, v.interval)
}

// genDropUnused removes the transform columns, source columns, sources
// and entities nothing reads, and reports whether it removed anything.
func genDropUnused(c *genRepo) bool {
	removed := false
	for _, v := range c.views {
		for i := len(v.txCols) - 1; i >= 0; i-- {
			col := v.txCols[i].name
			x := slices.Clone(v.txCols)
			v.txCols = slices.Delete(v.txCols, i, i+1)
			if genReads(v, col) {
				v.txCols = x
			} else {
				removed = true
			}
		}
	}
	c.sources = slices.DeleteFunc(c.sources, func(src *genSource) bool {
		gone := len(c.viewsOf(src)) == 0
		removed = removed || gone
		return gone
	})
	for _, src := range c.sources {
		keyed := func(k string) bool {
			return slices.ContainsFunc(c.viewsOf(src), func(v *genView) bool {
				return slices.ContainsFunc(v.joinKeys(), func(jk genCol) bool { return jk.name == k })
			})
		}
		timed := func(ts string) bool {
			return slices.ContainsFunc(c.viewsOf(src), func(v *genView) bool { return v.ts == ts })
		}
		src.cols = slices.DeleteFunc(src.cols, func(col genCol) bool {
			switch {
			case slices.Contains(src.keys, col.name) && keyed(col.name), slices.Contains(src.times, col.name) && timed(col.name):
				return false
			case slices.Contains(src.keys, col.name) || slices.Contains(src.times, col.name):
				removed = true
				src.keys = slices.DeleteFunc(src.keys, func(k string) bool { return k == col.name })
				src.times = slices.DeleteFunc(src.times, func(k string) bool { return k == col.name })
				return true
			}
			for _, v := range c.viewsOf(src) {
				if genReads(v, col.name) {
					return false
				}
			}
			removed = true
			return true
		})
	}
	c.entities = slices.DeleteFunc(c.entities, func(e *genEntity) bool {
		gone := !slices.ContainsFunc(c.views, func(v *genView) bool { return slices.Contains(v.entities, e) })
		removed = removed || gone
		return gone
	})
	return removed
}

// genReads reports whether anything of v reads column col: a feature,
// a transform column or the filter.
func genReads(v *genView, col string) bool {
	if slices.Contains(v.attrs, col) || slices.ContainsFunc(v.aggs, func(f aggFeature) bool { return f.input == col }) {
		return true
	}
	for _, c := range v.txCols {
		if slices.Contains(c.e.inputs, col) {
			return true
		}
	}
	return v.filter != nil && slices.Contains(v.filter.inputs, col)
}
