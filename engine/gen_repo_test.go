package engine_test

// A seeded generator of feature repos for the differential tests (issue
// 10): the engine once merged the states of aggregates that differed only
// in their input column, and no test saw it, because every test used one
// of a few repos written by hand in which no two same-typed columns shared
// a function. A genRepo is a repo file and everything the naive model
// (gen_model_test.go) needs to compute what the engine must serve from it:
// sources with several columns of each type, transforms (new columns
// derived from others, filters) with Go evaluators, views of every
// function, the same function over different columns, the same column
// under different functions, duplicate features under different names,
// continuous and interval views, offsets, lifetime windows, TTLs,
// feature_start_time, several views per source with different entity
// keys (and one key name typed String in one source and Int64 in
// another), and services that mix views.
//
// A genRepo is a value: clone copies it, so the shrinker
// (gen_shrink_test.go) can remove parts and render the rest as a smaller
// repo file.

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/featurelog/featurelog/internal/schema"
)

// genCol is a column: of a source, or a transform's.
type genCol struct {
	name string
	t    schema.Type
}

// genSource is a push source.
type genSource struct {
	name  string
	cols  []genCol // the schema, in order
	keys  []string // the columns views may use as join keys
	times []string // the Timestamp columns views may use as timestamp_field
}

func (s *genSource) col(name string) (genCol, bool) {
	for _, c := range s.cols {
		if c.name == name {
			return c, true
		}
	}
	return genCol{}, false
}

// genEntity is an entity: its join-key column names.
type genEntity struct {
	name string
	keys []string
}

// genExpr is a transform expression and its evaluator. eval is called only
// when every input is non-null (SPEC §2: null in, null out), with the
// record's source and earlier transform columns.
type genExpr struct {
	text   string
	inputs []string
	eval   func(row map[string]schema.Value) schema.Value
}

// genTxCol is a transform column.
type genTxCol struct {
	genCol
	e *genExpr
}

// genView is a feature view. Exactly one of aggs and attrs is non-empty.
type genView struct {
	name      string
	src       *genSource
	entities  []*genEntity
	ts        string        // timestamp_field
	tsImplied bool          // leave timestamp_field out (the source has one Timestamp column)
	interval  time.Duration // aggregation_interval; 0: continuous
	start     int64         // feature_start_time, Unix ns; MinInt64: none
	ttl       time.Duration // declared ttl; 0: none
	offline   bool          // offline: true (the default)
	txCols    []genTxCol
	filter    *genExpr
	aggs      []aggFeature
	attrs     []string // attribute views: the served columns
	desc      string   // description: metadata, whose change rebuilds nothing
}

// genEntry is one entry of a service: a view, whole or a subset.
type genEntry struct {
	view     *genView
	features []string // nil: every feature of the view
}

// genService is a feature service.
type genService struct {
	name    string
	entries []genEntry
}

// genRepo is a generated (or hand-built) feature repo.
type genRepo struct {
	name     string // how it was made: "seed N", or a fixed repo's name
	ws       string
	entities []*genEntity
	sources  []*genSource
	views    []*genView
	services []*genService
}

// ---------------------------------------------------------------------
// What the model needs of a repo.

func (v *genView) aggregate() bool { return len(v.aggs) > 0 }

// joinKeys returns the view's join-key columns: its entities' keys, in
// order, typed by the source.
func (v *genView) joinKeys() []genCol {
	var out []genCol
	for _, e := range v.entities {
		for _, k := range e.keys {
			c, ok := v.src.col(k)
			if !ok {
				panic("gen: join key " + k + " not in source " + v.src.name)
			}
			out = append(out, c)
		}
	}
	return out
}

// colType returns the type of a source or transform column.
func (v *genView) colType(name string) schema.Type {
	if c, ok := v.src.col(name); ok {
		return c.t
	}
	for _, c := range v.txCols {
		if c.name == name {
			return c.t
		}
	}
	panic("gen: view " + v.name + " has no column " + name)
}

// servingTTL is the TTL ingest and attribute reads use (DESIGN.md, "TTL
// defaults"): the declared one; for aggregate views without one, the
// largest window plus its offset, or none with a lifetime window.
func (v *genView) servingTTL() time.Duration {
	if v.ttl > 0 || !v.aggregate() {
		return v.ttl
	}
	var ttl time.Duration
	for _, f := range v.aggs {
		if f.window.lifetime {
			return 0
		}
		ttl = max(ttl, f.window.size+f.window.offset)
	}
	return ttl
}

// featureNames returns the served names within the view, in order.
func (v *genView) featureNames() []string {
	if !v.aggregate() {
		return slices.Clone(v.attrs)
	}
	out := make([]string, len(v.aggs))
	for i, f := range v.aggs {
		out[i] = f.name
		if out[i] == "" {
			out[i] = aggDefaultName(f, v.interval)
		}
	}
	return out
}

// featureType is the type SPEC §3 gives feature i.
func (v *genView) featureType(i int) schema.Type {
	if !v.aggregate() {
		return v.colType(v.attrs[i])
	}
	f := v.aggs[i]
	in := v.colType(f.input)
	switch f.fn {
	case "count", "approx_count_distinct":
		return schema.ScalarType(schema.Int64)
	case "mean", "var_samp", "stddev_samp", "var_pop", "stddev_pop", "approx_percentile":
		return schema.ScalarType(schema.Float64)
	case "last_n", "first_n", "last_distinct_n", "first_distinct_n":
		return schema.ArrayOf(in.Kind)
	}
	return in
}

// genServed is one feature a service serves.
type genServed struct {
	view *genView
	idx  int    // index in the view's features
	name string // <view>.<feature>
}

// features lists what the service serves, in order.
func (s *genService) features() []genServed {
	var out []genServed
	for _, e := range s.entries {
		names := e.view.featureNames()
		want := e.features
		if want == nil {
			want = names
		}
		for _, n := range want {
			i := slices.Index(names, n)
			if i < 0 {
				panic("gen: service " + s.name + " lists " + e.view.name + "." + n)
			}
			out = append(out, genServed{e.view, i, e.view.name + "." + n})
		}
	}
	return out
}

// views lists the service's distinct views, in order.
func (s *genService) views() []*genView {
	var out []*genView
	for _, e := range s.entries {
		if !slices.Contains(out, e.view) {
			out = append(out, e.view)
		}
	}
	return out
}

// joinKeys is the union of the views' join-key names, in first-seen
// order (the join_key_map a read needs).
func (s *genService) joinKeys() []string {
	var out []string
	for _, v := range s.views() {
		for _, k := range v.joinKeys() {
			if !slices.Contains(out, k.name) {
				out = append(out, k.name)
			}
		}
	}
	return out
}

// sameKeys reports whether every view of the service has the same join
// keys, names and types in order (range mode without entities needs it).
func (s *genService) sameKeys() bool {
	vs := s.views()
	for _, v := range vs[1:] {
		if !slices.Equal(v.joinKeys(), vs[0].joinKeys()) {
			return false
		}
	}
	return true
}

// viewsOf lists the views of a source, in file order.
func (r *genRepo) viewsOf(src *genSource) []*genView {
	var out []*genView
	for _, v := range r.views {
		if v.src == src {
			out = append(out, v)
		}
	}
	return out
}

func (r *genRepo) service(name string) *genService {
	for _, s := range r.services {
		if s.name == name {
			return s
		}
	}
	return nil
}

// keyType is the type of join-key column name in the views that use it,
// or String when they disagree (then only decimal strings name a key in
// all of them).
func (r *genRepo) keyType(name string) schema.Kind {
	var k schema.Kind
	for _, v := range r.views {
		for _, c := range v.joinKeys() {
			if c.name == name {
				if k != 0 && k != c.t.Kind {
					return schema.String
				}
				k = c.t.Kind
			}
		}
	}
	return k
}

// ---------------------------------------------------------------------
// Rendering.

// render returns the repo file.
func (r *genRepo) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\nworkspace: %s\nentities:\n", r.name, r.ws)
	for _, e := range r.entities {
		fmt.Fprintf(&b, "  - name: %s\n    join_keys: [%s]\n", e.name, strings.Join(e.keys, ", "))
	}
	b.WriteString("sources:\n")
	for _, s := range r.sources {
		fmt.Fprintf(&b, "  - name: %s\n    schema:\n", s.name)
		for _, c := range s.cols {
			fmt.Fprintf(&b, "      - {name: %s, type: %s}\n", c.name, c.t)
		}
	}
	b.WriteString("feature_views:\n")
	for _, v := range r.views {
		r.renderView(&b, v)
	}
	b.WriteString("feature_services:\n")
	for _, s := range r.services {
		fmt.Fprintf(&b, "  - name: %s\n    features:\n", s.name)
		for _, e := range s.entries {
			if e.features == nil {
				fmt.Fprintf(&b, "      - %s\n", e.view.name)
			} else {
				fmt.Fprintf(&b, "      - {feature_view: %s, features: [%s]}\n", e.view.name, strings.Join(e.features, ", "))
			}
		}
	}
	return b.String()
}

func (r *genRepo) renderView(b *strings.Builder, v *genView) {
	var ents []string
	for _, e := range v.entities {
		ents = append(ents, e.name)
	}
	fmt.Fprintf(b, "  - name: %s\n    source: %s\n    entities: [%s]\n", v.name, v.src.name, strings.Join(ents, ", "))
	if v.desc != "" {
		fmt.Fprintf(b, "    description: %s\n", strconv.Quote(v.desc))
	}
	if !v.tsImplied {
		fmt.Fprintf(b, "    timestamp_field: %s\n", v.ts)
	}
	if v.interval > 0 {
		fmt.Fprintf(b, "    aggregation_interval: %s\n", aggDur(v.interval))
	}
	if v.start != math.MinInt64 {
		fmt.Fprintf(b, "    feature_start_time: %s\n", aggTime(v.start))
	}
	if v.ttl > 0 {
		fmt.Fprintf(b, "    ttl: %s\n", aggDur(v.ttl))
	}
	if !v.offline {
		b.WriteString("    offline: false\n")
	}
	if len(v.txCols) > 0 || v.filter != nil {
		b.WriteString("    transform:\n")
		if len(v.txCols) > 0 {
			b.WriteString("      columns:\n")
			for _, c := range v.txCols {
				fmt.Fprintf(b, "        %s: %s\n", c.name, strconv.Quote(c.e.text))
			}
		}
		if v.filter != nil {
			fmt.Fprintf(b, "      filter: %s\n", strconv.Quote(v.filter.text))
		}
	}
	b.WriteString("    features:\n")
	for _, a := range v.attrs {
		fmt.Fprintf(b, "      - attribute: {name: %s}\n", a)
	}
	for _, f := range v.aggs {
		fmt.Fprintf(b, "      - aggregate: {input: %s, function: %s, window: %s", f.input, f.fn, aggWindowText(f.window))
		if f.n > 0 {
			fmt.Fprintf(b, ", n: %d", f.n)
		}
		if f.fn == "approx_percentile" {
			fmt.Fprintf(b, ", percentile: %v", f.q)
		}
		if f.prec > 0 {
			fmt.Fprintf(b, ", precision: %d", f.prec)
		}
		if f.name != "" {
			fmt.Fprintf(b, ", name: %s", f.name)
		}
		b.WriteString("}\n")
	}
}

func aggWindowText(w aggWindow) string {
	switch {
	case w.lifetime:
		return "lifetime"
	case w.offset > 0:
		return fmt.Sprintf("{size: %s, offset: %s}", aggDur(w.size), aggDur(w.offset))
	}
	return aggDur(w.size)
}

// ---------------------------------------------------------------------
// Copying.

// clone returns a deep copy: the shrinker edits it.
func (r *genRepo) clone() *genRepo {
	n := &genRepo{name: r.name, ws: r.ws}
	ents := map[*genEntity]*genEntity{}
	for _, e := range r.entities {
		c := &genEntity{name: e.name, keys: slices.Clone(e.keys)}
		ents[e] = c
		n.entities = append(n.entities, c)
	}
	srcs := map[*genSource]*genSource{}
	for _, s := range r.sources {
		c := &genSource{name: s.name, cols: slices.Clone(s.cols), keys: slices.Clone(s.keys), times: slices.Clone(s.times)}
		srcs[s] = c
		n.sources = append(n.sources, c)
	}
	views := map[*genView]*genView{}
	for _, v := range r.views {
		c := *v
		c.src = srcs[v.src]
		c.entities = nil
		for _, e := range v.entities {
			c.entities = append(c.entities, ents[e])
		}
		c.txCols = slices.Clone(v.txCols)
		c.aggs = slices.Clone(v.aggs)
		c.attrs = slices.Clone(v.attrs)
		views[v] = &c
		n.views = append(n.views, &c)
	}
	for _, s := range r.services {
		c := &genService{name: s.name}
		for _, e := range s.entries {
			c.entries = append(c.entries, genEntry{view: views[e.view], features: slices.Clone(e.features)})
		}
		n.services = append(n.services, c)
	}
	return n
}

// ---------------------------------------------------------------------
// Generation.

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
		v.filter = genFilter(r, genScope(v))
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

// ---------------------------------------------------------------------
// Expressions. Each has an evaluator that mirrors expr-lang's semantics:
// integer arithmetic wraps, / divides as floats, % truncates, len counts
// runes, string() prints integers in decimal.

// genCols filters cols to those of the kinds.
func genCols(cols []genCol, kinds ...schema.Kind) []genCol {
	var out []genCol
	for _, c := range cols {
		if c.t.Kind != schema.Array && slices.Contains(kinds, c.t.Kind) {
			out = append(out, c)
		}
	}
	return out
}

// genNum is a numeric value as expressions see it: Int64 and Int32 as
// int64, floats as float64.
func genNum(v schema.Value) float64 { return aggNum(v) }

// genExprOf draws an expression of kind want over cols, or nil when cols
// offer none.
func genExprOf(r *rand.Rand, cols []genCol, want schema.Kind) *genExpr {
	ints := genCols(cols, schema.Int64, schema.Int32)
	floats := genCols(cols, schema.Float64, schema.Float32)
	nums := genCols(cols, schema.Int64, schema.Int32, schema.Float64, schema.Float32)
	strs := genCols(cols, schema.String)
	pick := func(cs []genCol) genCol { return cs[r.Intn(len(cs))] }
	var opts []func() *genExpr
	switch want {
	case schema.Int64:
		if len(ints) > 0 {
			opts = append(opts,
				func() *genExpr {
					a, b := pick(ints), pick(ints)
					return genBin(a.name+" + "+b.name, []string{a.name, b.name}, func(x, y schema.Value) schema.Value { return schema.Int(x.I + y.I) })
				},
				func() *genExpr {
					a, k := pick(ints), int64(2+r.Intn(4))
					return genUn(fmt.Sprintf("%s * %d", a.name, k), a.name, func(x schema.Value) schema.Value { return schema.Int(x.I * k) })
				},
				func() *genExpr {
					a, k := pick(ints), int64(2+r.Intn(6))
					return genUn(fmt.Sprintf("%s %% %d", a.name, k), a.name, func(x schema.Value) schema.Value { return schema.Int(x.I % k) })
				},
				func() *genExpr {
					a, k := pick(ints), int64(r.Intn(10))
					return genUn(fmt.Sprintf("%s - %d", a.name, k), a.name, func(x schema.Value) schema.Value { return schema.Int(x.I - k) })
				})
		}
		if len(strs) > 0 {
			opts = append(opts, func() *genExpr {
				s := pick(strs)
				return genUn("len("+s.name+")", s.name, func(x schema.Value) schema.Value { return schema.Int(int64(utf8.RuneCountInString(x.S))) })
			})
		}
		if len(floats) > 0 {
			opts = append(opts, func() *genExpr {
				x, c := pick(floats), float64(r.Intn(80))
				return genUn(fmt.Sprintf("%s > %.1f ? 1 : 0", x.name, c), x.name, func(v schema.Value) schema.Value {
					if v.F > c {
						return schema.Int(1)
					}
					return schema.Int(0)
				})
			}, func() *genExpr {
				x := pick(floats)
				return genUn("int("+x.name+")", x.name, func(v schema.Value) schema.Value { return schema.Int(int64(v.F)) })
			})
		}
	case schema.Float64:
		if len(floats) > 0 {
			opts = append(opts,
				func() *genExpr {
					x, c := pick(floats), []float64{2.5, 0.5, -1.5, 2}[r.Intn(4)]
					return genUn(fmt.Sprintf("%s * %s", x.name, strconv.FormatFloat(c, 'f', -1, 64)+genDot(c)), x.name, func(v schema.Value) schema.Value { return schema.Float(v.F * c) })
				},
				func() *genExpr {
					x, c := pick(floats), 1.25
					return genUn(x.name+" - 1.25", x.name, func(v schema.Value) schema.Value { return schema.Float(v.F - c) })
				},
				func() *genExpr {
					x := pick(floats)
					return genUn(x.name+" ** 2", x.name, func(v schema.Value) schema.Value { return schema.Float(math.Pow(v.F, 2)) })
				},
				func() *genExpr {
					x := pick(floats)
					return genUn("abs("+x.name+")", x.name, func(v schema.Value) schema.Value { return schema.Float(math.Abs(v.F)) })
				})
		}
		if len(nums) > 0 {
			opts = append(opts,
				func() *genExpr {
					a, b := pick(nums), pick(nums)
					return genBin(a.name+" + "+b.name+" * 1.0", []string{a.name, b.name}, func(x, y schema.Value) schema.Value { return schema.Float(genNum(x) + genNum(y)*1.0) })
				})
		}
		if len(ints) > 0 {
			opts = append(opts,
				func() *genExpr {
					a, k := pick(ints), int64(2+r.Intn(3))
					return genUn(fmt.Sprintf("%s / %d", a.name, k), a.name, func(x schema.Value) schema.Value { return schema.Float(float64(x.I) / float64(k)) })
				},
				func() *genExpr {
					a := pick(ints)
					return genUn("float("+a.name+")", a.name, func(x schema.Value) schema.Value { return schema.Float(float64(x.I)) })
				})
		}
	case schema.String:
		if len(strs) > 0 {
			opts = append(opts,
				func() *genExpr {
					s, lit := pick(strs), []string{"_x", "-", "!"}[r.Intn(3)]
					return genUn(s.name+" + "+strconv.Quote(lit), s.name, func(v schema.Value) schema.Value { return schema.Str(v.S + lit) })
				},
				func() *genExpr {
					s := pick(strs)
					return genUn("upper("+s.name+")", s.name, func(v schema.Value) schema.Value { return schema.Str(strings.ToUpper(v.S)) })
				},
				func() *genExpr {
					a, b := pick(strs), pick(strs)
					return genBin(a.name+" + "+b.name, []string{a.name, b.name}, func(x, y schema.Value) schema.Value { return schema.Str(x.S + y.S) })
				})
		}
		if len(ints) > 0 {
			opts = append(opts,
				func() *genExpr {
					a, k := pick(ints), int64(r.Intn(10))
					return genUn(fmt.Sprintf("%s > %d ? \"hi\" : \"lo\"", a.name, k), a.name, func(v schema.Value) schema.Value {
						if v.I > k {
							return schema.Str("hi")
						}
						return schema.Str("lo")
					})
				},
				func() *genExpr {
					a := pick(ints)
					return genUn("string("+a.name+")", a.name, func(v schema.Value) schema.Value { return schema.Str(strconv.FormatInt(v.I, 10)) })
				})
		}
	case schema.Bool:
		return genBoolExpr(r, cols)
	}
	if len(opts) == 0 {
		return nil
	}
	return opts[r.Intn(len(opts))]()
}

// genDot makes a whole float literal a float in expr ("2" is an int).
func genDot(c float64) string {
	if c == math.Trunc(c) {
		return ".0"
	}
	return ""
}

// genBoolExpr draws a comparison, a conjunction, or a Bool column.
func genBoolExpr(r *rand.Rand, cols []genCol) *genExpr {
	ints := genCols(cols, schema.Int64, schema.Int32)
	floats := genCols(cols, schema.Float64, schema.Float32)
	strs := genCols(cols, schema.String)
	bools := genCols(cols, schema.Bool)
	pick := func(cs []genCol) genCol { return cs[r.Intn(len(cs))] }
	var opts []func() *genExpr
	if len(ints) > 0 {
		opts = append(opts, func() *genExpr {
			a, k := pick(ints), int64(r.Intn(8)-3)
			return genUn(fmt.Sprintf("%s >= %d", a.name, k), a.name, func(v schema.Value) schema.Value { return schema.BoolVal(v.I >= k) })
		})
	}
	if len(floats) > 0 {
		opts = append(opts, func() *genExpr {
			x, c := pick(floats), float64(20+r.Intn(70))
			return genUn(fmt.Sprintf("%s < %.1f", x.name, c), x.name, func(v schema.Value) schema.Value { return schema.BoolVal(v.F < c) })
		})
	}
	if len(strs) > 0 {
		opts = append(opts, func() *genExpr {
			s, lit := pick(strs), fmt.Sprintf("c%d", r.Intn(3))
			return genUn(fmt.Sprintf("%s != %q", s.name, lit), s.name, func(v schema.Value) schema.Value { return schema.BoolVal(v.S != lit) })
		})
	}
	if len(ints) > 0 && len(floats) > 0 {
		opts = append(opts, func() *genExpr {
			a, x := pick(ints), pick(floats)
			return genBin(fmt.Sprintf("%s > 0 || %s > 40.0", a.name, x.name), []string{a.name, x.name}, func(p, q schema.Value) schema.Value {
				return schema.BoolVal(p.I > 0 || q.F > 40)
			})
		})
	}
	if len(bools) > 0 {
		opts = append(opts, func() *genExpr {
			b := pick(bools)
			return genUn("!"+b.name, b.name, func(v schema.Value) schema.Value { return schema.BoolVal(!v.Bool()) })
		}, func() *genExpr {
			b := pick(bools)
			return genUn(b.name, b.name, func(v schema.Value) schema.Value { return v })
		})
	}
	if len(opts) == 0 {
		return nil
	}
	return opts[r.Intn(len(opts))]()
}

// genFilter draws a filter that keeps most records.
func genFilter(r *rand.Rand, cols []genCol) *genExpr { return genBoolExpr(r, cols) }

func genUn(text, in string, f func(schema.Value) schema.Value) *genExpr {
	return &genExpr{text: text, inputs: []string{in}, eval: func(row map[string]schema.Value) schema.Value { return f(row[in]) }}
}

func genBin(text string, in []string, f func(a, b schema.Value) schema.Value) *genExpr {
	return &genExpr{text: text, inputs: slices.Compact(slices.Clone(in)), eval: func(row map[string]schema.Value) schema.Value {
		return f(row[in[0]], row[in[1]])
	}}
}
