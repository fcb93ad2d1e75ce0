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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/featurelog/featurelog/schema"
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
	stream    int      // output_stream: genStreamNone, genStreamKeys or genStreamFeatures (gen_stream_test.go)
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
	if v.stream != genStreamNone {
		fmt.Fprintf(b, "    output_stream: {include_features: %v}\n", v.stream == genStreamFeatures)
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
