package engine_test

// The workload of the generated-repo differential tests: seeded random
// requests over a genRepo's sources, out of order, skewed and late. Keys
// follow Zipf popularity; event times are drawn relative to the clock and
// to what the repo makes interesting: ties with earlier events, late (up
// to two days) and very late ones (older than some view's TTL: accepted
// only while another view of the source still serves them), tile and
// interval boundaries ±1ns, around feature_start_time, ahead of the clock
// within the skew, around 1970; exact duplicates within and across
// requests; null and absent columns; and now and then an invalid record
// (a join key or timestamp left out, a time beyond the skew) that must
// fail its whole request.

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// genSkew is the engine's default clock skew, which the tests keep.
const genSkew = int64(5 * time.Minute)

// genWorkload is what every writer of one run shares.
type genWorkload struct {
	repo    *genRepo
	infos   map[*genSource]genSourceInfo // per source of repo
	keyVals map[string][]int64           // per join-key name, the values keys take
}

func newGenWorkload(repo *genRepo, keys int) *genWorkload {
	w := &genWorkload{keyVals: map[string][]int64{}}
	w.setRepo(repo)
	for _, k := range genKeyNames {
		n := keys
		if k == "shop" {
			n = max(8, keys/20)
		}
		for i := 0; i < n; i++ {
			switch k {
			case "account_id":
				w.keyVals[k] = append(w.keyVals[k], int64(i*7919-50000)) // negative ids too
			default:
				w.keyVals[k] = append(w.keyVals[k], int64(i))
			}
		}
	}
	for _, s := range repo.sources { // hand-built repos may name other keys
		for _, k := range s.keys {
			if w.keyVals[k] == nil {
				for i := 0; i < keys; i++ {
					w.keyVals[k] = append(w.keyVals[k], int64(i))
				}
			}
		}
	}
	return w
}

// genGenStats count what a generator sent.
type genGenStats struct {
	requests, events, rejected, dryRuns, dups, veryLate, ancient, boundary, future, nulls int
}

func (s *genGenStats) add(o genGenStats) {
	s.requests += o.requests
	s.events += o.events
	s.rejected += o.rejected
	s.dryRuns += o.dryRuns
	s.dups += o.dups
	s.veryLate += o.veryLate
	s.ancient += o.ancient
	s.boundary += o.boundary
	s.future += o.future
	s.nulls += o.nulls
}

// genGen draws requests. Each writer has its own, over the key indexes it
// owns, so that writers running at once never share an entity key of any
// view.
type genGen struct {
	w      *genWorkload
	r      *rand.Rand
	owned  map[string][]int // per join-key name, the indexes into keyVals it draws from
	zipf   map[string]*rand.Zipf
	cats   *rand.Zipf
	usedTs []int64
	recent map[*genSource][]*genEvent // accepted events, for duplicates
	stats  genGenStats
	// expired is set by drawTime when it drew a time older than a TTL on
	// purpose.
	expired bool
}

// newGenGen returns a generator over the key indexes i with i%of == part.
func newGenGen(w *genWorkload, seed int64, part, of int) *genGen {
	r := rand.New(rand.NewSource(seed))
	g := &genGen{w: w, r: r, owned: map[string][]int{}, zipf: map[string]*rand.Zipf{}, recent: map[*genSource][]*genEvent{},
		cats: rand.NewZipf(r, 1.3, 1, 59)}
	names := make([]string, 0, len(w.keyVals))
	for k := range w.keyVals {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for i := range w.keyVals[k] {
			if i%of == part {
				g.owned[k] = append(g.owned[k], i)
			}
		}
		g.zipf[k] = rand.NewZipf(r, 1.1, 1, uint64(len(g.owned[k])-1))
	}
	return g
}

// owns reports whether every join key of e is one of g's.
func (g *genGen) owns(e *genEvent, of, part int) bool {
	for _, k := range e.src.keys {
		v, ok := e.cols[k]
		if !ok || v.IsNull() {
			continue
		}
		i := genKeyIndex(g.w, k, v)
		if i < 0 || i%of != part {
			return false
		}
	}
	return true
}

// genKeyIndex finds the index of a join-key value in the workload's
// values (String values are decimal, maybe zero-padded), or -1.
func genKeyIndex(w *genWorkload, k string, v schema.Value) int {
	n := v.I
	if v.Kind == schema.String {
		var err error
		if n, err = strconv.ParseInt(v.S, 10, 64); err != nil {
			return -1
		}
	}
	return slices.Index(w.keyVals[k], n)
}

// keyValue draws a value of join key k, typed t: Zipf-popular among the
// generator's indexes; String keys spell the number in decimal, one in
// eight zero-padded (another String key, the same integer key).
func (g *genGen) keyValue(k string, t schema.Kind) schema.Value {
	idx := g.owned[k][g.zipf[k].Uint64()]
	n := g.w.keyVals[k][idx]
	switch t {
	case schema.String:
		s := strconv.FormatInt(n, 10)
		if n >= 0 && g.r.Intn(8) == 0 {
			s = "0" + s
		}
		return schema.Str(s)
	case schema.Int32:
		return schema.Int32Val(int32(n))
	}
	return schema.Int(n)
}

// value draws a payload value of type t; null or absent (missing from
// cols) now and then.
func (g *genGen) value(t schema.Type, now int64) (schema.Value, bool) {
	r := g.r
	switch k := r.Intn(20); {
	case k == 0:
		return schema.Value{}, false // absent
	case k == 1:
		return schema.Value{}, true // null
	}
	switch t.Kind {
	case schema.Int64:
		if r.Intn(7) == 0 {
			return schema.Int(int64(r.Intn(2000))), true
		}
		return schema.Int(int64(r.Intn(26) - 5)), true
	case schema.Int32:
		return schema.Int32Val(int32(r.Intn(2001) - 1000)), true
	case schema.Float64:
		switch k := r.Intn(20); {
		case k < 12:
			// +0 turns a -0 into 0: whether -0 and 0 are distinct values is
			// not this test's question.
			return schema.Float(math.Round((50+30*r.NormFloat64())*100)/100 + 0), true
		case k < 17:
			return schema.Float(float64(r.Intn(101))), true
		}
		return schema.Float(1e6 + math.Round(r.Float64()*1000)/1000), true // variance small next to the mean
	case schema.Float32:
		return schema.Float32Val(float32(math.Round(r.Float64()*1000)/100 + 0)), true
	case schema.String:
		if r.Intn(6) == 0 {
			return schema.Str(fmt.Sprintf("x%d", r.Intn(5000))), true
		}
		return schema.Str(fmt.Sprintf("c%d", g.cats.Uint64())), true
	case schema.Bool:
		return schema.BoolVal(r.Intn(2) == 0), true
	case schema.Timestamp:
		return schema.TimeNanos(now - r.Int63n(int64(3*aggD))), true
	case schema.Array:
		n := r.Intn(4)
		out := make([]schema.Value, n)
		for i := range out {
			if t.Elem == schema.String {
				out[i] = schema.Str(fmt.Sprintf("l%d", r.Intn(6)))
			} else {
				out[i] = schema.Int(int64(r.Intn(9)))
			}
		}
		return schema.ArrayVal(out), true
	}
	panic(fmt.Sprintf("gen: no values of %v", t))
}

// setRepo makes the workload draw for repo's sources.
func (w *genWorkload) setRepo(repo *genRepo) {
	w.repo, w.infos = repo, map[*genSource]genSourceInfo{}
	for _, s := range repo.sources {
		w.infos[s] = w.sourceInfo(s)
	}
}

// genSourceInfo is what the time generator needs of a source's views.
type genSourceInfo struct {
	grids    []int64 // tile levels and intervals, ns
	minTTL   int64   // the smallest positive serving TTL; 0: none
	maxTTL   int64   // the largest serving TTL; 0 when some view never expires
	anyNoTTL bool    // some view never expires: very old records are accepted
	starts   []int64 // feature_start_times
}

func (w *genWorkload) sourceInfo(s *genSource) genSourceInfo {
	in := genSourceInfo{grids: []int64{int64(aggM), int64(10 * aggM), int64(aggH), int64(aggD)}}
	for _, v := range w.repo.viewsOf(s) {
		if v.interval > 0 && !slices.Contains(in.grids, int64(v.interval)) {
			in.grids = append(in.grids, int64(v.interval))
		}
		ttl := int64(v.servingTTL())
		switch {
		case ttl == 0:
			in.anyNoTTL = true
		case in.minTTL == 0 || ttl < in.minTTL:
			in.minTTL = ttl
		}
		in.maxTTL = max(in.maxTTL, ttl)
		if v.start != math.MinInt64 {
			in.starts = append(in.starts, v.start)
		}
	}
	if in.anyNoTTL {
		in.maxTTL = 0
	}
	return in
}

// eventTime draws a record's time at now. Late records stay within the
// longest TTL of the source's views (older ones fail their request), but
// for a few drawn to be older than the shortest TTL, or than every TTL.
func (g *genGen) eventTime(in genSourceInfo, now int64) int64 {
	r := g.r
	t := g.drawTime(in, now)
	if in.maxTTL > 0 && t < now-in.maxTTL && !g.expired {
		t = now - r.Int63n(in.maxTTL)
	}
	g.expired = false
	return t
}

func (g *genGen) drawTime(in genSourceInfo, now int64) int64 {
	r := g.r
	switch k := r.Intn(200); {
	case k < 30 && len(g.usedTs) > 0: // a time seen before: ties
		return g.usedTs[len(g.usedTs)-1-r.Intn(min(len(g.usedTs), 60))]
	case k < 50: // late, up to a day
		return now - r.Int63n(int64(aggD))
	case k < 56: // late, up to two days
		return now - r.Int63n(int64(2*aggD))
	case k < 59 && in.minTTL > 0 && in.minTTL != in.maxTTL: // very late: older than the shortest TTL, not the longest
		g.stats.veryLate++
		g.expired = true
		span := int64(12 * aggH)
		if in.maxTTL > 0 {
			span = min(span, in.maxTTL-in.minTTL)
		}
		return now - in.minTTL - 1 - r.Int63n(max(span, 1))
	case k < 60 && in.maxTTL > 0: // older than every TTL: the request fails
		g.expired = true
		return now - in.maxTTL - 1 - r.Int63n(int64(aggH))
	case k < 76: // on a tile or interval boundary, or 1ns off
		t := in.grids[r.Intn(len(in.grids))]
		b := now - r.Int63n(int64(3*aggH))
		g.stats.boundary++
		return b - ((b%t)+t)%t + []int64{0, 0, 1, -1}[r.Intn(4)]
	case k < 84: // ahead of the clock, within the skew
		g.stats.future++
		if r.Intn(4) == 0 {
			return now + genSkew
		}
		return now + r.Int63n(genSkew+1)
	case k < 88 && len(in.starts) > 0: // around a feature_start_time
		t := in.starts[r.Intn(len(in.starts))] + []int64{-1, 0, 1, -int64(aggM), int64(aggM)}[r.Intn(5)]
		return min(t, now)
	case k < 89 && in.anyNoTTL: // around the Unix epoch: tiles of negative times
		t := in.grids[r.Intn(len(in.grids))]
		g.stats.ancient++
		return (r.Int63n(5)-3)*t + []int64{0, 1, -1, r.Int63n(t)}[r.Intn(4)]
	}
	t := now - r.Int63n(int64(20*aggM)) // recent, at nanosecond or second resolution
	if r.Intn(2) == 0 {
		t -= t % int64(time.Second)
	}
	return t
}

// event draws one record of s at now.
func (g *genGen) event(s *genSource, now int64) *genEvent {
	r := g.r
	if rec := g.recent[s]; len(rec) > 0 && r.Intn(25) == 0 { // an exact duplicate of an accepted record
		src := rec[len(rec)-1-r.Intn(min(len(rec), 200))]
		g.stats.dups++
		return &genEvent{src: s, cols: src.cols}
	}
	e := &genEvent{src: s, cols: map[string]schema.Value{}}
	in := g.w.infos[s]
	ts := g.eventTime(in, now)
	g.usedTs = append(g.usedTs, ts)
	if in.maxTTL > 0 && ts >= now-in.maxTTL { // other time columns stay within the TTL when this one does
		defer func() {
			for _, c := range s.times[1:] {
				if v, ok := e.cols[c]; ok && v.I < now-in.maxTTL {
					e.cols[c] = schema.TimeNanos(now - r.Int63n(in.maxTTL))
				}
			}
		}()
	}
	for _, c := range s.cols {
		switch {
		case slices.Contains(s.keys, c.name):
			e.cols[c.name] = g.keyValue(c.name, c.t.Kind)
		case c.name == s.times[0]:
			e.cols[c.name] = schema.TimeNanos(ts)
		case slices.Contains(s.times, c.name): // another timestamp_field: earlier, equal or a little later
			switch k := r.Intn(10); {
			case k < 4:
				e.cols[c.name] = schema.TimeNanos(ts - r.Int63n(min(int64(2*aggH), max(in.minTTL/2, 1))))
			case k < 9:
				e.cols[c.name] = schema.TimeNanos(ts)
			default:
				e.cols[c.name] = schema.TimeNanos(min(ts, now) + r.Int63n(genSkew/2))
			}
		default:
			if v, ok := g.value(c.t, now); ok {
				e.cols[c.name] = v
				if v.IsNull() {
					g.stats.nulls++
				}
			} else {
				g.stats.nulls++
			}
		}
	}
	switch r.Intn(300) { // an invalid record: its request must fail
	case 0:
		delete(e.cols, s.keys[r.Intn(len(s.keys))])
	case 1:
		delete(e.cols, s.times[r.Intn(len(s.times))])
	case 2:
		e.cols[s.times[0]] = schema.TimeNanos(now + genSkew + 1 + r.Int63n(int64(aggH)))
	}
	return e
}

// request draws one request at now: one to twelve records over one or two
// sources, and now and then a duplicate within the request.
func (g *genGen) request(now int64) []*genEvent {
	r := g.r
	srcs := g.w.repo.sources
	var use []*genSource
	use = append(use, srcs[r.Intn(len(srcs))])
	if len(srcs) > 1 && r.Intn(4) == 0 {
		if o := srcs[r.Intn(len(srcs))]; o != use[0] {
			use = append(use, o)
		}
	}
	n := 1 + r.Intn(12)
	var evs []*genEvent
	idx := map[*genSource]int{}
	for i := 0; i < n; i++ {
		s := use[r.Intn(len(use))]
		var e *genEvent
		if i > 0 && r.Intn(30) == 0 && evs[i-1].src == s { // a duplicate within the request
			e = &genEvent{src: s, cols: evs[i-1].cols}
			g.stats.dups++
		} else {
			e = g.event(s, now)
		}
		e.idx, e.now = idx[s], now
		idx[s]++
		evs = append(evs, e)
	}
	return evs
}

// genSend sends evs as one request, through Ingest or IngestJSON.
func genSend(db *engine.DB, ws string, evs []*genEvent, dryRun, useJSON bool) (*engine.IngestResponse, error) {
	if useJSON {
		return db.IngestJSON(genBody(ws, evs, dryRun), nil)
	}
	req := &engine.IngestRequest{Workspace: ws, DryRun: dryRun, Records: map[string][]map[string]any{}}
	for _, e := range evs {
		rec := map[string]any{}
		for c, v := range e.cols {
			rec[c] = v.Any()
		}
		req.Records[e.src.name] = append(req.Records[e.src.name], rec)
	}
	return db.Ingest(req)
}

// genBody renders evs as an ingest body: times as RFC 3339, absent
// columns left out, nulls as null.
func genBody(ws string, evs []*genEvent, dryRun bool) []byte {
	recs := map[string][]any{}
	for _, e := range evs {
		rec := map[string]any{}
		for c, v := range e.cols {
			rec[c] = genJSONValue(v)
		}
		recs[e.src.name] = append(recs[e.src.name], map[string]any{"record": rec})
	}
	body, err := json.Marshal(map[string]any{"workspace_name": ws, "dry_run": dryRun, "records": recs})
	if err != nil {
		panic(err)
	}
	return body
}

func genJSONValue(v schema.Value) any {
	switch v.Kind {
	case schema.Timestamp:
		return aggTime(v.I)
	case schema.Array:
		out := make([]any, len(v.A))
		for i, e := range v.A {
			out[i] = genJSONValue(e)
		}
		return out
	}
	return v.Any()
}

// genRecordJSON renders one record for a reproduction.
func genRecordJSON(e *genEvent) string {
	rec := map[string]any{}
	for c, v := range e.cols {
		rec[c] = genJSONValue(v)
	}
	data, err := json.Marshal(rec)
	if err != nil {
		panic(err)
	}
	return string(data)
}
