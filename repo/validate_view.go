package repo

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/featurelog/featurelog/schema"
)

var (
	viewKeys = []string{
		"name", "description", "owner", "tags", "source", "entities", "timestamp_field",
		"online", "offline", "feature_start_time", "batch_schedule", "ttl",
		"transform", "aggregation_interval", "features", "output_stream",
	}
	outputStreamKeys = []string{"include_features", "kafka"}
	kafkaSinkKeys    = []string{"brokers", "topic", "exactly_once", "max_lag"}
)

// viewState is a parsed view plus whether services can rely on its list
// of features.
type viewState struct {
	view     *FeatureView
	complete bool // every declared feature parsed and named
}

// featureView parses one feature view.
func (p *parser) featureView(n *yaml.Node, w where) {
	f, ok := p.mapping(n, w, "a feature view (name, source, entities, features, ...)", viewKeys...)
	if !ok {
		return
	}
	name, named := p.objectName(f, &w, "feature view")
	v := &FeatureView{Name: name, Line: n.Line}
	st := p.viewSource(f, w, v)
	if st != nil {
		v.src = st.src
	}
	sc := sourceScope(st)
	p.viewEntities(f, w, v, sc)
	p.viewTimestamp(f, w, v, sc)
	p.viewMetadata(f, w, v)
	v.Transform = p.transform(f, w, sc)
	interval, intervalOK := p.aggregationInterval(f, w)
	v.AggregationInterval = interval
	complete := p.features(f, w, v, sc, intervalOK) && intervalOK
	p.checkAttributeView(f, w, v)
	v.OutputStream = p.outputStream(f, w, v)
	if named {
		p.views[name] = &viewState{view: v, complete: complete}
		p.repo.FeatureViews = append(p.repo.FeatureViews, v)
	}
}

// viewSource resolves the view's source; nil when it is unknown.
func (p *parser) viewSource(f fields, w where, v *FeatureView) *sourceState {
	n := p.required(f, w, "source")
	if n == nil {
		return nil
	}
	name, ok := p.str(n, w.in("source"))
	if !ok {
		return nil
	}
	v.Source = name
	st := p.sources[name]
	if st == nil {
		p.add(n.Line, w, "unknown source %q%s", name, didYouMean(name, mapKeys(p.sources)))
	}
	return st
}

// viewEntities resolves the entities and types their join keys from the
// source.
func (p *parser) viewEntities(f fields, w where, v *FeatureView, sc *scope) {
	n := p.required(f, w, "entities")
	if n == nil {
		return
	}
	names := p.names(n, w.in("entities"), "entity names")
	if len(names) == 0 && n.Kind == yaml.SequenceNode {
		p.add(n.Line, w.in("entities"), "a feature view needs at least one entity")
	}
	for i, name := range names {
		if slices.Contains(names[:i], name) {
			p.add(n.Line, w.in("entities"), "entity %q is listed twice", name)
			continue
		}
		v.Entities = append(v.Entities, name)
		p.viewEntity(n, w, v, sc, name)
	}
}

// viewEntity adds the join keys of one entity of a view.
func (p *parser) viewEntity(n *yaml.Node, w where, v *FeatureView, sc *scope, name string) {
	e := p.entities[name]
	if e == nil {
		p.add(n.Line, w.in("entities"), "unknown entity %q%s", name, didYouMean(name, mapKeys(p.entities)))
		return
	}
	ew := w.in(fmt.Sprintf("entity %q", name))
	for _, k := range e.JoinKeys {
		t, ok := p.column(sc, n, ew, "join key", k)
		switch {
		case !ok:
		case t.Kind != schema.String && t.Kind != schema.Int64 && t.Kind != schema.Int32:
			p.add(n.Line, ew, "join key %q is %s; join keys must be String, Int64 or Int32", k, t)
		case slices.ContainsFunc(v.JoinKeys, func(c schema.Column) bool { return c.Name == k }):
			p.add(n.Line, ew, "join key %q is also a join key of another entity of the view", k)
		default:
			v.JoinKeys = append(v.JoinKeys, schema.Column{Name: k, Type: t})
		}
	}
}

// viewTimestamp reads timestamp_field, which may be left out when the
// source has exactly one Timestamp column (as in Tecton).
func (p *parser) viewTimestamp(f fields, w where, v *FeatureView, sc *scope) {
	if n := f.get("timestamp_field"); n != nil {
		v.TimestampField, _ = p.timestampField(n, w, sc)
		return
	}
	if sc.opaque {
		return
	}
	var ts []string
	for _, c := range sc.cols {
		if c.Type.Kind == schema.Timestamp {
			ts = append(ts, c.Name)
		}
	}
	switch len(ts) {
	case 1:
		v.TimestampField = ts[0]
	case 0:
		p.add(f.line, w, "%s has no Timestamp column to serve as the view's timestamp_field; add one to its schema", sc.desc)
	default:
		p.add(f.line, w, "missing timestamp_field: %s has several Timestamp columns (%s); say which one holds the event time", sc.desc, strings.Join(ts, ", "))
	}
}

// viewMetadata reads the fields that do not change what the view computes.
func (p *parser) viewMetadata(f fields, w where, v *FeatureView) {
	v.Online = p.boolean(f.get("online"), w.in("online"), true)
	v.Offline = p.boolean(f.get("offline"), w.in("offline"), true)
	v.FeatureStartTime = p.timestamp(f.get("feature_start_time"), w.in("feature_start_time"))
	v.BatchSchedule = p.duration(f.get("batch_schedule"), w.in("batch_schedule"))
	v.TTL = p.duration(f.get("ttl"), w.in("ttl"))
	v.Description = p.optString(f, w, "description")
	v.Owner = p.optString(f, w, "owner")
	v.Tags = p.tags(f.get("tags"), w.in("tags"))
}

// timestamp reads an optional RFC 3339 timestamp. A bare date means
// midnight UTC, as Tecton's datetime(2022, 1, 1) does.
func (p *parser) timestamp(n *yaml.Node, w where) time.Time {
	if n == nil {
		return time.Time{}
	}
	s, ok := p.str(n, w)
	if !ok {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t
	}
	p.add(n.Line, w, "%q is not an RFC 3339 timestamp; write it like 2022-10-10T00:00:00Z", s)
	return time.Time{}
}

// duration reads an optional positive duration.
func (p *parser) duration(n *yaml.Node, w where) time.Duration {
	if n == nil {
		return 0
	}
	s, ok := p.str(n, w)
	if !ok {
		return 0
	}
	d, err := ParseDuration(s)
	if err != nil {
		p.add(n.Line, w, "%s", durationProblem(s, err, ""))
		return 0
	}
	return d
}

// durationProblem explains why s is not a duration. word is a keyword
// accepted instead of a duration ("lifetime", "continuous"), or "".
func durationProblem(s string, err error, word string) string {
	switch {
	case strings.HasPrefix(s, "-"):
		return fmt.Sprintf("%q is negative; write a positive duration", s)
	case word != "" && didYouMean(s, []string{word}) != "":
		return fmt.Sprintf("%q is not a duration (did you mean %q?)", s, word)
	case errors.Is(err, errDurationSyntax) && word != "":
		return fmt.Sprintf("%q is neither a duration nor %s: %v", s, word, errDurationSyntax)
	}
	var de *durationError
	if !errors.As(err, &de) { // parseDurationTerms' bare errors
		de = &durationError{s: s, err: err}
	}
	return de.Error()
}

// tags reads a mapping of string keys to string values.
func (p *parser) tags(n *yaml.Node, w where) map[string]string {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, w, "expected a mapping of names to values, got %s", describe(n))
		return nil
	}
	tags := map[string]string{}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), resolve(n.Content[i+1])
		key, kok := p.str(k, w)
		value, vok := p.str(val, w.in(fmt.Sprintf("tag %q", key)))
		switch {
		case !kok || !vok:
		case key == "":
			p.add(k.Line, w, "a tag needs a non-empty name")
		case lines[key] != 0:
			p.add(k.Line, w, "duplicate tag %q (first set at line %d)", key, lines[key])
		default:
			lines[key], tags[key] = k.Line, value
		}
	}
	return tags
}

// aggregationInterval reads `continuous` (0, the default) or a duration.
func (p *parser) aggregationInterval(f fields, w where) (time.Duration, bool) {
	n := f.get("aggregation_interval")
	if n == nil {
		return 0, true
	}
	w = w.in("aggregation_interval")
	s, ok := p.str(n, w)
	if !ok {
		return 0, false
	}
	if s == "continuous" {
		return 0, true
	}
	d, err := ParseDuration(s)
	if err != nil {
		p.add(n.Line, w, "%s", durationProblem(s, err, "continuous"))
		return 0, false
	}
	return d, true
}

// checkAttributeView rejects settings that only aggregates use.
func (p *parser) checkAttributeView(f fields, w where, v *FeatureView) {
	if len(v.Features) == 0 || v.Aggregate() {
		return
	}
	if n := f.get("aggregation_interval"); n != nil {
		p.add(n.Line, w.in("aggregation_interval"), "applies only to views of aggregate features; remove it")
	}
}

// outputStream reads output_stream; it publishes online updates, so the
// view must be online.
func (p *parser) outputStream(f fields, w where, v *FeatureView) *OutputStream {
	w = w.in("output_stream")
	of, ok := p.mapping(f.get("output_stream"), w, "a mapping {include_features: true|false}", outputStreamKeys...)
	if !ok {
		return nil
	}
	if !v.Online {
		p.add(of.line, w, "needs online: true, because the stream publishes the view's online updates")
	}
	if v.Aggregate() && v.AggregationInterval > 0 {
		p.add(of.line, w, "an output stream needs a continuous view, but this view has aggregation_interval: %s; "+
			"remove aggregation_interval (continuous windows are exact to the record) or remove output_stream",
			FormatDuration(v.AggregationInterval))
	}
	return &OutputStream{IncludeFeatures: p.boolean(of.get("include_features"), w.in("include_features"), false),
		Kafka: p.kafkaSink(of, w)}
}

// DefaultMaxLag is a Kafka sink's max_lag when the file sets none.
const DefaultMaxLag = time.Minute

// kafkaSink reads output_stream.kafka; nil when absent.
func (p *parser) kafkaSink(of fields, w where) *KafkaSink {
	w = w.in("kafka")
	kf, ok := p.mapping(of.get("kafka"), w, `a mapping {brokers: ["host:port", ...], topic: name}`, kafkaSinkKeys...)
	if !ok {
		return nil
	}
	k := &KafkaSink{Line: kf.line, MaxLag: DefaultMaxLag}
	if n := p.required(kf, w, "topic"); n != nil {
		if t, ok := p.str(n, w.in("topic")); ok {
			if msg := kafkaTopicProblem(t); msg != "" {
				p.add(n.Line, w.in("topic"), "%s", msg)
			}
			k.Topic = t
		}
	}
	if n := kf.get("brokers"); n != nil {
		items, _ := p.list(n, w.in("brokers"), `broker addresses ("host:port")`)
		for _, item := range items {
			if b, ok := p.str(item, w.in("brokers")); ok {
				if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
					p.add(item.Line, w.in("brokers"), "broker address %q is not host:port", b)
				}
				k.Brokers = append(k.Brokers, b)
			}
		}
	}
	k.ExactlyOnce = p.boolean(kf.get("exactly_once"), w.in("exactly_once"), false)
	if n := kf.get("max_lag"); n != nil {
		if d := p.duration(n, w.in("max_lag")); d > 0 {
			k.MaxLag = d
		} else if d < 0 {
			p.add(n.Line, w.in("max_lag"), "must be positive, got %s", FormatDuration(d))
		}
	}
	return k
}

// kafkaTopicProblem says what is wrong with a Kafka topic name (Kafka's
// own rule: 1 to 249 of [a-zA-Z0-9._-], not "." or ".."), or "".
func kafkaTopicProblem(t string) string {
	if t == "" || t == "." || t == ".." || len(t) > 249 {
		return fmt.Sprintf("topic %q is not a valid Kafka topic name: use 1 to 249 letters, digits, '.', '_' or '-' (not \".\" or \"..\")", t)
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("topic %q is not a valid Kafka topic name: %q is not allowed (use letters, digits, '.', '_' or '-')", t, c)
		}
	}
	return ""
}

// mapKeys returns the keys of m, sorted, for suggestions.
func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
