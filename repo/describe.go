package repo

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// part is one aspect of an object as a label and a canonical text, e.g.
// {"ttl", "7d"} or {"feature clicked_count_1h_continuous", "Int64 = count(clicked: Int64) over 1h"}.
// Diff compares objects part by part, and a view's fingerprint hashes its
// compute parts, so what Diff calls a change of computation and what
// changes the fingerprint cannot disagree. Parts that are unset are left
// out.
type part struct {
	label, value string
}

// computeParts are the aspects of a view that decide what it computes.
// Their text is hashed by ComputeFingerprint: changing how any of them is
// spelt re-versions every view, so treat it as part of the on-disk format.
func (v *FeatureView) computeParts() []part { return v.parts(false) }

// computePartsV1 are the compute parts that builds before issue 10 hashed.
// They leave out the types of the source columns that only expressions
// read, so a view whose filter read a column that became Float64 kept its
// version and its state (LegacyFingerprint).
func (v *FeatureView) computePartsV1() []part { return v.parts(true) }

func (v *FeatureView) parts(v1 bool) []part {
	parts := []part{
		{"source", v.Source},
		{"entities", entitiesText(v)},
		{"timestamp field", v.TimestampField},
	}
	if !v.FeatureStartTime.IsZero() {
		parts = append(parts, part{"feature start time", v.FeatureStartTime.Format(time.RFC3339Nano)})
	}
	if t := v.Transform; t != nil {
		for _, c := range t.Columns {
			parts = append(parts, part{"transform column " + c.Name, c.Type.String() + " = " + c.Expr.Source})
		}
		if t.Filter != nil {
			parts = append(parts, part{"filter", t.Filter.Source})
		}
		if ins := v.transformInputs(); ins != "" && !v1 {
			parts = append(parts, part{"transform inputs", ins})
		}
	}
	if v.Aggregate() {
		parts = append(parts, part{"aggregation interval", intervalLabel(v.AggregationInterval)})
	}
	for _, f := range v.Features {
		parts = append(parts, part{"feature " + f.Name, f.describe()})
	}
	return parts
}

// transformInputs spells the typed source columns the transform's
// expressions and filter read, by name: "amount Float64, qty Int64"; ""
// without a transform. Transform columns' types are parts of their own.
func (v *FeatureView) transformInputs() string {
	t := v.Transform
	if t == nil || v.src == nil {
		return ""
	}
	var names []string
	add := func(e *Expr) {
		if e != nil {
			names = append(names, e.Inputs...)
		}
	}
	for _, c := range t.Columns {
		add(c.Expr)
	}
	add(t.Filter)
	slices.Sort(names)
	var typed []string
	for _, n := range slices.Compact(names) {
		if c, ok := v.src.Column(n); ok { // earlier transform columns are typed in their own parts
			typed = append(typed, n+" "+c.Type.String())
		}
	}
	return strings.Join(typed, ", ")
}

// entitiesText spells the entities with their typed join keys:
// "user (user_id String)".
func entitiesText(v *FeatureView) string {
	keys := make([]string, len(v.JoinKeys))
	for i, k := range v.JoinKeys {
		keys[i] = k.Name + " " + k.Type.String()
	}
	return strings.Join(v.Entities, ", ") + " (" + strings.Join(keys, ", ") + ")"
}

// describe spells what a feature serves: "Int64 = clicked" or
// "Array(Int64) = last_distinct_n(clicked: Int64, n: 10) over 1h offset 1h".
func (f *Feature) describe() string {
	if f.Kind == AttributeFeature {
		return f.Type.String() + " = " + f.Input
	}
	args := []string{f.Input + ": " + f.InputType.String()}
	if f.N > 0 {
		args = append(args, "n: "+strconv.Itoa(f.N))
	}
	if f.Function == "approx_percentile" {
		args = append(args, "percentile: "+strconv.FormatFloat(f.Percentile, 'g', -1, 64))
	}
	if f.Precision > 0 {
		args = append(args, "precision: "+strconv.Itoa(f.Precision))
	}
	window := "lifetime"
	if !f.Window.Lifetime {
		window = FormatDuration(f.Window.Size)
	}
	if f.Window.Offset > 0 {
		window += " offset " + FormatDuration(f.Window.Offset)
	}
	return fmt.Sprintf("%s = %s(%s) over %s", f.Type, f.Function, strings.Join(args, ", "), window)
}

// metaParts are the aspects of a view that apply in place.
func (v *FeatureView) metaParts() []part {
	parts := []part{
		{"online", strconv.FormatBool(v.Online)},
		{"offline", strconv.FormatBool(v.Offline)},
	}
	parts = appendSet(parts, "ttl", durationText(v.TTL))
	parts = appendSet(parts, "batch schedule", durationText(v.BatchSchedule))
	parts = appendSet(parts, "description", v.Description)
	parts = appendSet(parts, "owner", v.Owner)
	for _, k := range slices.Sorted(maps.Keys(v.Tags)) {
		parts = append(parts, part{"tag " + k, v.Tags[k]})
	}
	if v.OutputStream != nil {
		parts = append(parts, part{"output stream", "include_features: " + strconv.FormatBool(v.OutputStream.IncludeFeatures)})
		if k := v.OutputStream.Kafka; k != nil {
			parts = append(parts, part{"kafka sink", fmt.Sprintf("topic %s, brokers [%s], exactly_once: %t, max_lag: %s",
				k.Topic, strings.Join(k.Brokers, ", "), k.ExactlyOnce, durationText(k.MaxLag))})
		}
	}
	return parts
}

func (e *Entity) parts() []part {
	parts := []part{{"join keys", strings.Join(e.JoinKeys, ", ")}}
	return appendSet(parts, "description", e.Description)
}

func (s *Source) parts() []part {
	var parts []part
	for _, c := range s.Schema {
		parts = append(parts, part{"column " + c.Name, c.Type.String()})
	}
	parts = append(parts, part{"log offline", strconv.FormatBool(s.LogOffline)})
	if b := s.Batch; b != nil {
		parts = append(parts, part{"batch", fmt.Sprintf("%s (format %s, timestamp field %s)", b.URI, b.Format, b.TimestampField)})
	}
	return appendSet(parts, "description", s.Description)
}

func (s *FeatureService) parts() []part {
	parts := []part{{"online serving enabled", strconv.FormatBool(s.OnlineServingEnabled)}}
	parts = appendSet(parts, "description", s.Description)
	for _, f := range s.Features {
		parts = append(parts, part{"feature " + f.View + "." + f.Feature, ""})
	}
	return parts
}

// appendSet appends {label, value} unless value is empty (unset).
func appendSet(parts []part, label, value string) []part {
	if value == "" {
		return parts
	}
	return append(parts, part{label, value})
}

// durationText prints a duration, "" when unset.
func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return FormatDuration(d)
}
