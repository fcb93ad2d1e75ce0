package repo

import (
	"slices"
)

// Action is what applying a repo does to one object.
type Action uint8

// The actions.
const (
	Unchanged     Action = iota
	Create               // a new object
	UpdateInPlace        // metadata only; for a view, what it computes is unchanged
	NewVersion           // feature views only: what the view computes changed; the new version is rebuilt from the offline log
	Delete               // the object is gone from the file
)

// ObjectKind is the kind of object a Change concerns.
type ObjectKind uint8

// The object kinds, in dependency order.
const (
	EntityObject ObjectKind = iota + 1
	SourceObject
	FeatureViewObject
	FeatureServiceObject
)

// String returns the kind as messages and plans spell it.
func (k ObjectKind) String() string {
	switch k {
	case EntityObject:
		return "entity"
	case SourceObject:
		return "source"
	case FeatureViewObject:
		return "feature view"
	case FeatureServiceObject:
		return "feature service"
	}
	return "object"
}

// Change is what applying a repo does to one object.
type Change struct {
	Kind    ObjectKind
	Name    string
	Action  Action
	Details []string // one human-readable line each: what is created, or what changes
}

// Plan is the difference between the applied definitions of a workspace
// and a repo file: one Change per object of either. Changes come in
// dependency order: creations and updates of entities, sources, views and
// then services, in file order; then deletions in the reverse order
// (services first), so that nothing is deleted while something uses it.
type Plan struct {
	Workspace string
	Changes   []*Change
}

// Diff returns what applying next over old changes. old is the workspace's
// current definitions, nil when it has none. Diff of a repo with itself (or
// with a fresh Parse of the same file) is Empty.
func Diff(old, next *Repo) *Plan {
	if old == nil {
		old = &Repo{}
	}
	p := &Plan{Workspace: next.Workspace}
	var deletes []*Change
	add := func(changes, dels []*Change) {
		p.Changes = append(p.Changes, changes...)
		deletes = append(dels, deletes...)
	}
	add(diffObjects(EntityObject, old.Entities, next.Entities, entityDesc))
	add(diffObjects(SourceObject, old.Sources, next.Sources, sourceDesc))
	add(diffObjects(FeatureViewObject, old.FeatureViews, next.FeatureViews, viewDesc))
	add(diffObjects(FeatureServiceObject, old.FeatureServices, next.FeatureServices, serviceDesc))
	p.Changes = append(p.Changes, deletes...)
	return p
}

// desc is an object's name and parts, split into those that decide what it
// computes (views only) and those that apply in place.
type desc struct {
	name          string
	compute, meta []part
}

func entityDesc(e *Entity) desc          { return desc{name: e.Name, meta: e.parts()} }
func sourceDesc(s *Source) desc          { return desc{name: s.Name, meta: s.parts()} }
func serviceDesc(s *FeatureService) desc { return desc{name: s.Name, meta: s.parts()} }
func viewDesc(v *FeatureView) desc {
	return desc{name: v.Name, compute: v.computeParts(), meta: v.metaParts()}
}

// diffObjects compares the objects of one kind by name. It returns the
// changes of next's objects in order, and the deletions.
func diffObjects[T any](kind ObjectKind, old, next []*T, describe func(*T) desc) (changes, deletes []*Change) {
	olds := map[string]desc{}
	for _, o := range old {
		d := describe(o)
		olds[d.name] = d
	}
	for _, n := range next {
		d := describe(n)
		o, exists := olds[d.name]
		if !exists {
			changes = append(changes, &Change{Kind: kind, Name: d.name, Action: Create, Details: listParts(d)})
			continue
		}
		delete(olds, d.name)
		changes = append(changes, compare(kind, o, d))
	}
	for _, o := range old {
		if d := describe(o); hasKey(olds, d.name) {
			deletes = append(deletes, &Change{Kind: kind, Name: d.name, Action: Delete})
		}
	}
	return changes, deletes
}

// compare classifies the change of one object present on both sides.
func compare(kind ObjectKind, old, next desc) *Change {
	c := &Change{Kind: kind, Name: next.name, Action: Unchanged}
	computed := diffParts(old.compute, next.compute)
	c.Details = append(computed, diffParts(old.meta, next.meta)...)
	switch {
	case len(computed) > 0:
		c.Action = NewVersion
	case len(c.Details) > 0:
		c.Action = UpdateInPlace
	}
	return c
}

// listParts lists every part of a new object.
func listParts(d desc) []string {
	var out []string
	for _, p := range append(slices.Clone(d.compute), d.meta...) {
		out = append(out, p.text())
	}
	return out
}

// text prints a part as "label: value", or the label alone.
func (p part) text() string {
	if p.value == "" {
		return p.label
	}
	return p.label + ": " + p.value
}

// diffParts lists the differences between two part lists: "~ label: old →
// new", "+ label: value", "- label: value", and "~ order changed" when the
// parts both have are in a different order.
func diffParts(old, next []part) []string {
	var out []string
	oldVal := map[string]string{}
	for _, p := range old {
		oldVal[p.label] = p.value
	}
	nextVal := map[string]bool{}
	var oldOrder, nextOrder []string
	for _, p := range next {
		nextVal[p.label] = true
		v, ok := oldVal[p.label]
		switch {
		case !ok:
			out = append(out, "+ "+p.text())
		case v != p.value:
			out = append(out, "~ "+p.label+": "+orNone(v)+" → "+orNone(p.value))
			nextOrder = append(nextOrder, p.label)
		default:
			nextOrder = append(nextOrder, p.label)
		}
	}
	for _, p := range old {
		if !nextVal[p.label] {
			out = append(out, "- "+p.text())
		} else {
			oldOrder = append(oldOrder, p.label)
		}
	}
	if !slices.Equal(oldOrder, nextOrder) {
		out = append(out, "~ order changed")
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Empty reports whether applying the repo changes nothing.
func (p *Plan) Empty() bool {
	for _, c := range p.Changes {
		if c.Action != Unchanged {
			return false
		}
	}
	return true
}

// Change returns the change of the object of kind called name, or nil.
func (p *Plan) Change(kind ObjectKind, name string) *Change {
	for _, c := range p.Changes {
		if c.Kind == kind && c.Name == name {
			return c
		}
	}
	return nil
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

// String names the action as plans and logs spell it.
func (a Action) String() string {
	switch a {
	case Unchanged:
		return "unchanged"
	case Create:
		return "create"
	case UpdateInPlace:
		return "update in place"
	case NewVersion:
		return "new version"
	case Delete:
		return "delete"
	}
	return "unknown action"
}
