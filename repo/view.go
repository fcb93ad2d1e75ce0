package repo

import (
	"time"

	"github.com/featurelog/featurelog/schema"
)

// Entity returns the entity called name, or nil.
func (r *Repo) Entity(name string) *Entity { return find(r.Entities, name, (*Entity).name) }

// Source returns the source called name, or nil.
func (r *Repo) Source(name string) *Source { return find(r.Sources, name, (*Source).name) }

// FeatureView returns the feature view called name, or nil.
func (r *Repo) FeatureView(name string) *FeatureView {
	return find(r.FeatureViews, name, (*FeatureView).name)
}

// FeatureService returns the feature service called name, or nil.
func (r *Repo) FeatureService(name string) *FeatureService {
	return find(r.FeatureServices, name, (*FeatureService).name)
}

func (e *Entity) name() string         { return e.Name }
func (s *Source) name() string         { return s.Name }
func (v *FeatureView) name() string    { return v.Name }
func (s *FeatureService) name() string { return s.Name }

// find returns the element of list whose name is name, or nil. Repos hold
// tens of objects; a scan is cheaper than keeping maps in sync.
func find[T any](list []*T, name string, nameOf func(*T) string) *T {
	for _, x := range list {
		if nameOf(x) == name {
			return x
		}
	}
	return nil
}

// Feature returns the view's feature called name, or nil.
func (v *FeatureView) Feature(name string) *Feature {
	return find(v.Features, name, func(f *Feature) string { return f.Name })
}

// Columns returns the columns the view's features can read: the source
// schema followed by the transform columns, in order. It needs a view
// returned by Parse, which links the view to its source.
func (v *FeatureView) Columns() []schema.Column {
	if v.src == nil {
		panic("BUG: repo: Columns of a FeatureView not built by Parse")
	}
	cols := make([]schema.Column, 0, len(v.src.Schema)+v.transformLen())
	cols = append(cols, v.src.Schema...)
	if v.Transform != nil {
		for _, c := range v.Transform.Columns {
			cols = append(cols, schema.Column{Name: c.Name, Type: c.Type})
		}
	}
	return cols
}

func (v *FeatureView) transformLen() int {
	if v.Transform == nil {
		return 0
	}
	return len(v.Transform.Columns)
}

// ServingTTL returns how old an event may be and still matter to the view,
// 0 meaning forever. It is TTL when set; otherwise, for aggregate views,
// the largest window end-to-start (size + offset), and 0 when any window
// is a lifetime window; for attribute views without TTL, 0.
func (v *FeatureView) ServingTTL() time.Duration {
	if v.TTL > 0 || !v.Aggregate() {
		return v.TTL
	}
	var ttl time.Duration
	for _, f := range v.Features {
		if f.Window.Lifetime {
			return 0
		}
		ttl = max(ttl, f.Window.Size+f.Window.Offset)
	}
	return ttl
}
