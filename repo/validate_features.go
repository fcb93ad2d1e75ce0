package repo

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/featurelog/featurelog/schema"
)

var (
	featureKinds  = []string{"aggregate", "attribute"}
	aggregateKeys = []string{"input", "function", "window", "name", "n", "percentile", "precision"}
	attributeKeys = []string{"name"}
	windowKeys    = []string{"size", "offset"}
)

// features parses a view's features. It reports whether every feature
// parsed, so that services can check their names against the view.
func (p *parser) features(f fields, w where, v *FeatureView, sc *scope, intervalOK bool) bool {
	n := p.required(f, w, "features")
	if n == nil {
		return false
	}
	items, ok := p.list(n, w.in("features"), "features")
	if ok && len(items) == 0 {
		p.add(n.Line, w.in("features"), "a feature view needs at least one feature")
	}
	complete := ok && len(items) > 0
	names := map[string]int{}
	for i, item := range items {
		ft := p.feature(item, w, i, v, sc, intervalOK)
		if ft == nil || !p.addFeature(ft, w.in(featureLabel(ft, i)), v, names) {
			complete = false
		}
	}
	return complete
}

// featureLabel names a feature by kind and position: "aggregate 2".
func featureLabel(ft *Feature, i int) string {
	if ft != nil && ft.Kind == AttributeFeature {
		return fmt.Sprintf("attribute %d", i+1)
	}
	return fmt.Sprintf("aggregate %d", i+1)
}

// addFeature appends ft to v unless it mixes kinds or repeats a name.
func (p *parser) addFeature(ft *Feature, w where, v *FeatureView, names map[string]int) bool {
	if len(v.Features) > 0 && ft.Kind != v.Features[0].Kind {
		p.add(ft.Line, w, "%s among %s: a view's features are all aggregates or all attributes; move it to a view of its own",
			kindName(ft.Kind, false), kindName(v.Features[0].Kind, true))
		return false
	}
	if ft.Name == "" { // the interval is invalid, so the default name is unknown
		return false
	}
	if first, dup := names[ft.Name]; dup {
		p.add(ft.Line, w, "another feature (line %d) is also named %q; set name: on one of them", first, ft.Name)
		return false
	}
	names[ft.Name] = ft.Line
	v.Features = append(v.Features, ft)
	return true
}

// kindName spells a feature kind: "an attribute", or "attributes".
func kindName(k FeatureKind, plural bool) string {
	switch {
	case k == AttributeFeature && plural:
		return "attributes"
	case k == AttributeFeature:
		return "an attribute"
	case plural:
		return "aggregates"
	}
	return "an aggregate"
}

// feature parses one `- aggregate: {...}` or `- attribute: {...}` item.
func (p *parser) feature(n *yaml.Node, w where, i int, v *FeatureView, sc *scope, intervalOK bool) *Feature {
	fw := w.in(fmt.Sprintf("feature %d", i+1))
	f, ok := p.mapping(n, fw, "aggregate: {...} or attribute: {...}", featureKinds...)
	if !ok {
		return nil
	}
	agg, attr := f.get("aggregate"), f.get("attribute")
	switch {
	case agg != nil && attr != nil:
		p.add(n.Line, fw, "is both an aggregate and an attribute; split it in two")
	case agg != nil:
		return p.aggregate(agg, w.in(fmt.Sprintf("aggregate %d", i+1)), n.Line, v, sc, intervalOK)
	case attr != nil:
		return p.attribute(attr, w.in(fmt.Sprintf("attribute %d", i+1)), n.Line, v, sc)
	case !f.misspelt["aggregate"] && !f.misspelt["attribute"]:
		p.add(n.Line, fw, "expected aggregate: {...} or attribute: {...}")
	}
	return nil
}

// attribute parses `attribute: {name: column}`.
func (p *parser) attribute(n *yaml.Node, w where, line int, v *FeatureView, sc *scope) *Feature {
	f, ok := p.mapping(n, w, "a mapping {name: column}", attributeKeys...)
	if !ok {
		return nil
	}
	nn := p.required(f, w, "name")
	if nn == nil {
		return nil
	}
	name, ok := p.str(nn, w.in("name"))
	if !ok {
		return nil
	}
	for _, k := range v.JoinKeys {
		if k.Name == name {
			p.add(nn.Line, w, "column %q is a join key, which every request already carries; serve another column", name)
			return nil
		}
	}
	t, ok := p.column(sc, nn, w, "column", name)
	if !ok {
		return nil
	}
	return &Feature{Name: name, Kind: AttributeFeature, Input: name, InputType: t, Type: t, Line: line}
}

// aggregate parses `aggregate: {input, function, window, ...}`.
func (p *parser) aggregate(n *yaml.Node, w where, line int, v *FeatureView, sc *scope, intervalOK bool) *Feature {
	f, ok := p.mapping(n, w, "a mapping {input, function, window}", aggregateKeys...)
	if !ok {
		return nil
	}
	ft := &Feature{Kind: AggregateFeature, Line: line}
	inOK := p.aggregateInput(f, w, ft, sc)
	fn := p.aggregateFunction(f, w, ft, inOK)
	winOK := p.window(f, w, ft, v.AggregationInterval)
	nameOK := p.featureName(f, w, ft)
	if !inOK || fn == nil || !winOK || !nameOK {
		return nil
	}
	ft.Type = fn.result(ft.InputType)
	if ft.Name == "" && intervalOK {
		ft.Name = defaultFeatureName(ft, intervalLabel(v.AggregationInterval))
	}
	return ft
}

// aggregateInput resolves the input column.
func (p *parser) aggregateInput(f fields, w where, ft *Feature, sc *scope) bool {
	n := p.required(f, w, "input")
	if n == nil {
		return false
	}
	name, ok := p.str(n, w.in("input"))
	if !ok {
		return false
	}
	ft.Input = name
	ft.InputType, ok = p.column(sc, n, w, "input", name)
	return ok
}

// aggregateFunction resolves the function, checks it accepts the input
// and reads its parameters.
func (p *parser) aggregateFunction(f fields, w where, ft *Feature, inOK bool) *function {
	n := p.required(f, w, "function")
	if n == nil {
		return nil
	}
	name, ok := p.str(n, w.in("function"))
	if !ok {
		return nil
	}
	fn := lookupFunction(name)
	if fn == nil {
		p.add(n.Line, w, "unknown function %q%s", name, functionHint(name))
		return nil
	}
	ft.Function = name
	typeOK := !inOK || p.checkInput(n, w, fn, ft)
	paramsOK := p.functionParams(f, w, fn, ft)
	if !typeOK || !paramsOK {
		return nil
	}
	return fn
}

// functionHint suggests the intended function or lists them all.
func functionHint(name string) string {
	if s, ok := functionSynonyms[strings.ToLower(name)]; ok {
		return fmt.Sprintf(" (did you mean %s?)", s)
	}
	if hint := didYouMean(name, functionNames); hint != "" {
		return hint
	}
	return " (functions: " + strings.Join(functionNames, ", ") + ")"
}

// checkInput checks the input column's type suits the function.
func (p *parser) checkInput(n *yaml.Node, w where, fn *function, ft *Feature) bool {
	t := ft.InputType
	switch {
	case !fn.anyInput && !t.Kind.Numeric():
		p.add(n.Line, w, "function %s needs a numeric input (Int64, Int32, Float64 or Float32), but %q is %s", fn.name, ft.Input, t)
	case fn.scalarOnly && t.Kind == schema.Array:
		p.add(n.Line, w, "function %s cannot aggregate arrays, but %q is %s", fn.name, ft.Input, t)
	default:
		return true
	}
	return false
}

// functionParams reads n, percentile and precision, each required by the
// functions that take it and rejected by the others.
func (p *parser) functionParams(f fields, w where, fn *function, ft *Feature) bool {
	before := p.count()
	if n := p.param(f, w, fn, "n", fn.n, "how many values to keep, 1 to 1000"); n != nil {
		ft.N, _ = p.intInRange(n, w.in("n"), 1, maxN)
	}
	if n := p.param(f, w, fn, "percentile", fn.percentile, "a quantile between 0 and 1, e.g. 0.95"); n != nil {
		ft.Percentile = p.quantile(n, w.in("percentile"))
	}
	ft.Precision = fn.defPrec
	if n := p.param(f, w, fn, "precision", fn.precision, ""); n != nil {
		ft.Precision, _ = p.intInRange(n, w.in("precision"), fn.minPrec, fn.maxPrec)
	}
	return p.count() == before
}

// param returns the value of parameter key. It reports the parameter
// missing when the function needs it (help says what to give; "" means it
// is optional), and present when the function does not take it.
func (p *parser) param(f fields, w where, fn *function, key string, takes bool, help string) *yaml.Node {
	n := f.get(key)
	switch {
	case takes && n == nil && help != "":
		p.add(f.line, w, "function %s needs %s (%s)", fn.name, key, help)
	case !takes && n != nil:
		p.add(n.Line, w, "%s applies only to %s; remove it", key, takers(key))
		return nil
	}
	return n
}

// takers lists the functions that take a parameter.
func takers(key string) string {
	var names []string
	for _, fn := range functions {
		if key == "n" && fn.n || key == "percentile" && fn.percentile || key == "precision" && fn.precision {
			names = append(names, fn.name)
		}
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// intInRange reads a whole number in [lo, hi] (hi 0: no upper bound).
func (p *parser) intInRange(n *yaml.Node, w where, lo, hi int) (int, bool) {
	i, ok := p.integer(n, w)
	switch {
	case !ok:
	case hi > 0 && (i < lo || i > hi):
		p.add(n.Line, w, "must be between %d and %d, got %d", lo, hi, i)
	case i < lo:
		p.add(n.Line, w, "must be at least %d, got %d", lo, i)
	default:
		return i, true
	}
	return 0, false
}

// quantile reads a number in [0, 1].
func (p *parser) quantile(n *yaml.Node, w where) float64 {
	q, ok := p.number(n, w)
	switch {
	case !ok:
	case q > 1 && q <= 100:
		p.add(n.Line, w, "must be between 0 and 1, got %v (a percentage? write %v%% as %v)", q, q, q/100)
	case q < 0 || q > 1:
		p.add(n.Line, w, "must be between 0 and 1, got %v", q)
	}
	return q
}

// window reads `window: 1h`, `window: lifetime` or
// `window: {size: 1h, offset: 1h}`.
func (p *parser) window(f fields, w where, ft *Feature, interval time.Duration) bool {
	n := p.required(f, w, "window")
	if n == nil {
		return false
	}
	w = w.in("window")
	before := p.count()
	size, offset := n, (*yaml.Node)(nil)
	if n.Kind == yaml.MappingNode {
		wf, _ := p.mapping(n, w, "", windowKeys...)
		size, offset = p.required(wf, w, "size"), wf.get("offset")
	}
	if size != nil {
		ft.Window.Size, ft.Window.Lifetime = p.windowSize(size, w)
	}
	if offset != nil {
		ft.Window.Offset = p.windowOffset(offset, w.in("offset"))
	}
	if p.count() == before {
		p.checkMultiple(n, w, "size", ft.Window.Size, interval)
		p.checkMultiple(n, w, "offset", ft.Window.Offset, interval)
	}
	return p.count() == before
}

// windowSize reads a duration or `lifetime`.
func (p *parser) windowSize(n *yaml.Node, w where) (time.Duration, bool) {
	s, ok := p.str(n, w)
	if !ok {
		return 0, false
	}
	if s == "lifetime" {
		return 0, true
	}
	d, err := ParseDuration(s)
	if err != nil {
		p.add(n.Line, w, "%s", durationProblem(s, err, "lifetime"))
	}
	return d, false
}

// windowOffset reads a duration that may be zero.
func (p *parser) windowOffset(n *yaml.Node, w where) time.Duration {
	s, ok := p.str(n, w)
	if !ok || s == "0" {
		return 0
	}
	d, err := parseDurationTerms(s)
	if err != nil {
		p.add(n.Line, w, "%s", durationProblem(s, err, ""))
	}
	return d
}

// checkMultiple checks a window bound is a whole number of tiles: with an
// aggregation interval, windows are made of whole tiles (SPEC §3).
func (p *parser) checkMultiple(n *yaml.Node, w where, what string, d, interval time.Duration) {
	if interval == 0 || d%interval == 0 {
		return
	}
	lower := d / interval * interval
	fix := FormatDuration(lower + interval)
	if lower > 0 {
		fix = FormatDuration(lower) + " or " + fix
	}
	p.add(n.Line, w, "%s %s is not a multiple of the aggregation interval %s; use %s",
		what, FormatDuration(d), FormatDuration(interval), fix)
}

// featureName reads an optional `name:` that overrides the default name.
func (p *parser) featureName(f fields, w where, ft *Feature) bool {
	n := f.get("name")
	if n == nil {
		return true
	}
	ft.Name, _ = p.name(n, w.in("name"))
	return ft.Name != ""
}
