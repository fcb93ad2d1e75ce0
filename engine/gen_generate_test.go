package engine_test

// The random half of gen_repo_test.go: genRandomRepo draws a repo from a
// seed, so that the cases issue 10 names appear often.

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"time"

	"github.com/featurelog/featurelog/schema"
)

// genBase is the start of every generated workload's time line: windows,
// start times and the clock are placed relative to it.
var genBase = time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)

// genKeyNames are the join-key columns sources draw from; a source types
// each itself, so one name can be String in one source and Int64 in
// another.
var genKeyNames = []string{"user_id", "account_id", "shop"}

// genKeyTypes are the types each join-key name may take.
var genKeyTypes = map[string][]schema.Kind{
	"user_id":    {schema.String, schema.Int64},
	"account_id": {schema.Int64, schema.Int32, schema.String},
	"shop":       {schema.Int32, schema.String},
}

// genPayload are the payload column names by type: every source has at
// least two Int64, Float64 and String columns, and some of the others.
var genPayload = []struct {
	t     schema.Type
	names []string
	min   int // at least this many per source
}{
	{schema.ScalarType(schema.Int64), []string{"qty", "units", "clicks"}, 2},
	{schema.ScalarType(schema.Float64), []string{"amount", "fee", "price"}, 2},
	{schema.ScalarType(schema.String), []string{"category", "channel", "country"}, 2},
	{schema.ScalarType(schema.Int32), []string{"small", "rank"}, 0},
	{schema.ScalarType(schema.Float32), []string{"ratio", "weight"}, 0},
	{schema.ScalarType(schema.Bool), []string{"flag", "premium"}, 0},
	{schema.ScalarType(schema.Timestamp), []string{"seen_at"}, 0},
	{schema.ArrayOf(schema.Int64), []string{"items"}, 0},
	{schema.ArrayOf(schema.String), []string{"labels"}, 0},
}

// genFunctions are SPEC §3's functions.
var genFunctions = []string{"count", "sum", "min", "max", "mean", "last", "last_n", "first_n", "last_distinct_n",
	"first_distinct_n", "var_samp", "stddev_samp", "var_pop", "stddev_pop", "approx_count_distinct", "approx_percentile"}

// genAccepts reports whether fn takes an input of type t (SPEC §3).
func genAccepts(fn string, t schema.Type) bool {
	switch fn {
	case "count", "last":
		return true
	case "last_n", "first_n", "last_distinct_n", "first_distinct_n", "approx_count_distinct":
		return t.Kind != schema.Array
	}
	return t.Kind.Numeric()
}

// genRandomRepo draws a repo from seed.
func genRandomRepo(seed int64) *genRepo {
	r := rand.New(rand.NewSource(seed))
	g := &genRepo{name: fmt.Sprintf("generated repo, seed %d", seed), ws: "gen"}
	nsrc := 1 + r.Intn(3)
	for i := 0; i < nsrc; i++ {
		g.sources = append(g.sources, genRandomSource(r, fmt.Sprintf("src%d", i+1)))
	}
	g.entities = genEntities(g.sources)
	for _, s := range g.sources {
		for i, n := 0, 1+r.Intn(3); i < n; i++ {
			if v := genRandomView(r, g, s, fmt.Sprintf("%s_v%d", s.name, i+1)); v != nil {
				g.views = append(g.views, v)
			}
		}
	}
	r.Shuffle(len(g.views), func(i, j int) { g.views[i], g.views[j] = g.views[j], g.views[i] })
	genOutputStreams(seed, g)
	genServices(r, g)
	return g
}

// genRandomSource draws a source: one to three join-key columns, one or
// two Timestamp columns views may use, and the payload columns, in a
// random order.
func genRandomSource(r *rand.Rand, name string) *genSource {
	s := &genSource{name: name}
	keys := slices.Clone(genKeyNames)
	r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	keys = keys[:1+r.Intn(len(keys))]
	for _, k := range keys {
		types := genKeyTypes[k]
		s.cols = append(s.cols, genCol{k, schema.ScalarType(types[r.Intn(len(types))])})
		s.keys = append(s.keys, k)
	}
	s.times = []string{"ts"}
	if r.Intn(3) == 0 {
		s.times = append(s.times, "event_time")
	}
	for _, t := range s.times {
		s.cols = append(s.cols, genCol{t, schema.ScalarType(schema.Timestamp)})
	}
	for _, p := range genPayload {
		names := slices.Clone(p.names)
		r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		n := p.min
		if p.min > 0 {
			n += r.Intn(len(names) - p.min + 1)
		} else if r.Intn(2) == 0 {
			n = 1 + r.Intn(len(names))
		}
		for _, c := range names[:n] {
			s.cols = append(s.cols, genCol{c, p.t})
		}
	}
	r.Shuffle(len(s.cols), func(i, j int) { s.cols[i], s.cols[j] = s.cols[j], s.cols[i] })
	return s
}

// genEntities defines one entity per join-key name and one composite
// entity per pair of names some source has together, in both orders.
func genEntities(srcs []*genSource) []*genEntity {
	var out []*genEntity
	have := func(keys ...string) bool {
		for _, s := range srcs {
			ok := true
			for _, k := range keys {
				ok = ok && slices.Contains(s.keys, k)
			}
			if ok {
				return true
			}
		}
		return false
	}
	short := map[string]string{"user_id": "user", "account_id": "account", "shop": "shop"}
	for _, k := range genKeyNames {
		if have(k) {
			out = append(out, &genEntity{name: short[k], keys: []string{k}})
		}
	}
	for _, a := range genKeyNames {
		for _, b := range genKeyNames {
			if a != b && have(a, b) {
				out = append(out, &genEntity{name: short[a] + "_" + short[b], keys: []string{a, b}})
			}
		}
	}
	return out
}

// genRandomView draws a view over s, or nil when s offers no entity.
func genRandomView(r *rand.Rand, g *genRepo, s *genSource, name string) *genView {
	var usable []*genEntity
	for _, e := range g.entities {
		ok := true
		for _, k := range e.keys {
			ok = ok && slices.Contains(s.keys, k)
		}
		if ok {
			usable = append(usable, e)
		}
	}
	if len(usable) == 0 {
		return nil
	}
	v := &genView{name: name, src: s, start: math.MinInt64, offline: r.Intn(8) > 0}
	r.Shuffle(len(usable), func(i, j int) { usable[i], usable[j] = usable[j], usable[i] })
	v.entities = []*genEntity{usable[0]}
	for _, e := range usable[1:] {
		if r.Intn(4) == 0 && !slices.ContainsFunc(e.keys, func(k string) bool {
			return slices.ContainsFunc(v.joinKeys(), func(c genCol) bool { return c.name == k })
		}) {
			v.entities = append(v.entities, e)
		}
	}
	v.ts = s.times[r.Intn(len(s.times))]
	v.tsImplied = genTimestampColumns(s) == 1 && r.Intn(2) == 0
	if r.Intn(3) == 0 { // feature_start_time, off every grid, with nanoseconds
		v.start = genBase.Add(time.Duration(4+r.Intn(20))*time.Hour + time.Duration(r.Int63n(int64(time.Hour)))).UnixNano()
	}
	if r.Intn(3) > 0 {
		genTransform(r, v)
	}
	if r.Intn(3) == 0 {
		genAttributes(r, v)
	} else {
		genAggregates(r, v)
	}
	return v
}

// genTimestampColumns counts the source's Timestamp columns (payload ones
// too): timestamp_field may be left out only when there is one.
func genTimestampColumns(s *genSource) int {
	n := 0
	for _, c := range s.cols {
		if c.t.Kind == schema.Timestamp {
			n++
		}
	}
	return n
}

// genScope lists the columns a view's features may read: the source's
// payload (not its join keys), then the transform columns.
func genScope(v *genView) []genCol {
	var out []genCol
	for _, c := range v.src.cols {
		if !slices.Contains(v.src.keys, c.name) {
			out = append(out, c)
		}
	}
	for _, c := range v.txCols {
		out = append(out, c.genCol)
	}
	return out
}

// genTransform adds transform columns (each may read the source and the
// columns before it) and, now and then, a filter.
func genTransform(r *rand.Rand, v *genView) {
	for i, n := 0, r.Intn(4); i < n; i++ {
		want := []schema.Kind{schema.Int64, schema.Float64, schema.Float64, schema.String, schema.Bool}[r.Intn(5)]
		if e := genExprOf(r, genScope(v), want); e != nil {
			v.txCols = append(v.txCols, genTxCol{genCol{fmt.Sprintf("d%d", i+1), schema.ScalarType(want)}, e})
		}
	}
	if r.Intn(2) == 0 {
		v.filter = genBoolExpr(r, genScope(v))
	}
}

// genAttributes makes v an attribute view of one to five distinct
// columns, with a TTL or not.
func genAttributes(r *rand.Rand, v *genView) {
	scope := genScope(v)
	r.Shuffle(len(scope), func(i, j int) { scope[i], scope[j] = scope[j], scope[i] })
	for _, c := range scope[:1+r.Intn(min(5, len(scope)))] {
		v.attrs = append(v.attrs, c.name)
	}
	v.ttl = []time.Duration{0, time.Hour, 3 * time.Hour, aggD}[r.Intn(4)]
}

// genIntervals are the aggregation intervals a view may have (0:
// continuous).
var genIntervals = []time.Duration{0, 0, aggM, 10 * aggM, aggH}

// genRandomWindow draws a window for a view with the given interval.
func genRandomWindow(r *rand.Rand, interval time.Duration) aggWindow {
	if r.Intn(10) == 0 {
		return aggWindow{lifetime: true}
	}
	var w aggWindow
	if interval == 0 {
		w.size = []time.Duration{7 * aggM, 30 * aggM, aggH, 90 * aggM, 2 * aggH, aggD, 3 * aggD}[r.Intn(7)]
		if r.Intn(4) == 0 {
			w.offset = []time.Duration{aggM, 30 * aggM, aggH}[r.Intn(3)]
		}
		return w
	}
	mult := []int64{1, 2, 3, 6, 12, 24, 36}
	w.size = max(interval*time.Duration(mult[r.Intn(len(mult))]), interval)
	for w.size > 3*aggD {
		w.size -= interval
	}
	if r.Intn(4) == 0 {
		w.offset = interval * time.Duration(1+r.Intn(3))
	}
	return w
}

// genAggregates makes v an aggregate view: an interval, features drawn
// so that the cases issue 10 names appear often (the same function and
// window over two columns of one type, one column under several
// functions, a feature repeated under another name), and a TTL now and
// then.
func genAggregates(r *rand.Rand, v *genView) {
	v.interval = genIntervals[r.Intn(len(genIntervals))]
	scope := genScope(v)
	for len(v.aggs) < 4 || (len(v.aggs) < 14 && r.Intn(5) > 0) {
		switch k := r.Intn(10); {
		case k < 3: // one function and window over two columns of one type
			genSameFunction(r, v, scope)
		case k < 5: // one column under several functions
			c := scope[r.Intn(len(scope))]
			for i := 0; i < 2+r.Intn(2); i++ {
				if f, ok := genFeature(r, v, c, ""); ok {
					genAddFeature(r, v, f)
				}
			}
		case k < 6 && len(v.aggs) > 0: // a feature again, under another name
			f := v.aggs[r.Intn(len(v.aggs))]
			f.name = fmt.Sprintf("dup%d_%s", len(v.aggs), f.input)
			genAddFeature(r, v, f)
		default:
			if f, ok := genFeature(r, v, scope[r.Intn(len(scope))], ""); ok {
				genAddFeature(r, v, f)
			}
		}
	}
	if r.Intn(5) == 0 {
		v.ttl = []time.Duration{3 * aggH, aggD, 3 * aggD}[r.Intn(3)]
	}
}

// genSameFunction adds one function and window over two (or three)
// columns of one type.
func genSameFunction(r *rand.Rand, v *genView, scope []genCol) {
	byType := map[schema.Type][]genCol{}
	for _, c := range scope {
		byType[c.t] = append(byType[c.t], c)
	}
	var types []schema.Type
	for t, cs := range byType {
		if len(cs) >= 2 {
			types = append(types, t)
		}
	}
	if len(types) == 0 {
		return
	}
	slices.SortFunc(types, func(a, b schema.Type) int { return strings.Compare(a.String(), b.String()) })
	cs := byType[types[r.Intn(len(types))]]
	r.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	f, ok := genFeature(r, v, cs[0], "")
	if !ok {
		return
	}
	for _, c := range cs[:2+r.Intn(len(cs)-1)] {
		f.input = c.name
		genAddFeature(r, v, f)
	}
}

// genFeature draws a function of SPEC §3 that accepts c (fn, when set),
// its parameters and a window.
func genFeature(r *rand.Rand, v *genView, c genCol, fn string) (aggFeature, bool) {
	if fn == "" {
		var ok []string
		for _, f := range genFunctions {
			if genAccepts(f, c.t) {
				ok = append(ok, f)
			}
		}
		fn = ok[r.Intn(len(ok))]
	}
	f := aggFeature{input: c.name, fn: fn, window: genRandomWindow(r, v.interval)}
	switch fn {
	case "last_n", "first_n", "last_distinct_n", "first_distinct_n":
		f.n = []int{1, 2, 3, 5}[r.Intn(4)]
	case "approx_percentile":
		f.q = []float64{0, 0.25, 0.5, 0.9, 0.99, 1}[r.Intn(6)]
	case "approx_count_distinct":
		f.prec = []int{0, 6, 12, 16}[r.Intn(4)] // below 6, no useful error bound holds (aggCheck)
	}
	return f, true
}

// genAddFeature adds f unless its served name is taken; a taken default
// name gets a name: of its own half the time.
func genAddFeature(r *rand.Rand, v *genView, f aggFeature) {
	names := v.featureNames()
	name := f.name
	if name == "" {
		name = aggDefaultName(f, v.interval)
	}
	if slices.Contains(names, name) {
		if r.Intn(2) == 0 {
			return
		}
		f.name = fmt.Sprintf("f%d_%s", len(v.aggs), f.fn)
		if slices.Contains(names, f.name) {
			return
		}
	}
	v.aggs = append(v.aggs, f)
}

// genServices adds a service of every view (whole), one of each view
// alone, and one or two that take subsets of random views, a view's
// features out of order or split in two entries.
func genServices(r *rand.Rand, g *genRepo) {
	all := &genService{name: "all_fs"}
	for _, v := range g.views {
		all.entries = append(all.entries, genEntry{view: v})
	}
	g.services = append(g.services, all)
	for _, v := range g.views {
		g.services = append(g.services, &genService{name: v.name + "_fs", entries: []genEntry{{view: v}}})
	}
	// Views with the same join-key names (maybe typed differently in
	// their sources) in one service: range mode may list every key only
	// when the types agree too.
	byKeys := map[string][]*genView{}
	var names []string
	for _, v := range g.views {
		var ks []string
		for _, c := range v.joinKeys() {
			ks = append(ks, c.name)
		}
		n := strings.Join(ks, "_")
		if byKeys[n] == nil {
			names = append(names, n)
		}
		byKeys[n] = append(byKeys[n], v)
	}
	for _, n := range names {
		if vs := byKeys[n]; len(vs) > 1 {
			s := &genService{name: "by_" + n + "_fs"}
			for _, v := range vs {
				s.entries = append(s.entries, genEntry{view: v})
			}
			g.services = append(g.services, s)
		}
	}
	for i := 0; i < 1+r.Intn(2); i++ {
		s := &genService{name: fmt.Sprintf("mix%d_fs", i+1)}
		listed := map[string]bool{}
		for j := 0; j < 1+r.Intn(3); j++ {
			v := g.views[r.Intn(len(g.views))]
			names := v.featureNames()
			r.Shuffle(len(names), func(a, b int) { names[a], names[b] = names[b], names[a] })
			var pick []string
			for _, n := range names[:1+r.Intn(len(names))] {
				if !listed[v.name+"."+n] {
					listed[v.name+"."+n] = true
					pick = append(pick, n)
				}
			}
			if len(pick) > 0 {
				s.entries = append(s.entries, genEntry{view: v, features: pick})
			}
		}
		g.services = append(g.services, s)
	}
}
