package repo

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

var (
	serviceKeys      = []string{"name", "description", "online_serving_enabled", "features"}
	serviceEntryKeys = []string{"feature_view", "features"}
)

// featureService parses one feature service.
func (p *parser) featureService(n *yaml.Node, w where) {
	f, ok := p.mapping(n, w, "a feature service (name, features, ...)", serviceKeys...)
	if !ok {
		return
	}
	name, named := p.objectName(f, &w, "feature service")
	s := &FeatureService{Name: name, Line: n.Line}
	s.Description = p.optString(f, w, "description")
	s.OnlineServingEnabled = p.boolean(f.get("online_serving_enabled"), w.in("online_serving_enabled"), true)
	p.serviceFeatures(f, w, s)
	if named {
		p.repo.FeatureServices = append(p.repo.FeatureServices, s)
	}
}

// serviceFeatures expands the service's entries, in order, into features.
func (p *parser) serviceFeatures(f fields, w where, s *FeatureService) {
	n := p.required(f, w, "features")
	if n == nil {
		return
	}
	w = w.in("features")
	items, ok := p.list(n, w, "feature views")
	if ok && len(items) == 0 {
		p.add(n.Line, w, "a feature service needs at least one feature")
	}
	lines := map[ServiceFeature]int{}
	for _, item := range items {
		for _, sf := range p.serviceEntry(item, w, s) {
			if first, dup := lines[sf]; dup {
				p.add(item.Line, w, "feature %s.%s is listed twice (first at line %d)", sf.View, sf.Feature, first)
				continue
			}
			lines[sf] = item.Line
			s.Features = append(s.Features, sf)
		}
	}
}

// serviceEntry expands `view` or `{feature_view: view, features: [...]}`.
func (p *parser) serviceEntry(n *yaml.Node, w where, s *FeatureService) []ServiceFeature {
	viewNode, subset := n, (*yaml.Node)(nil)
	if n.Kind == yaml.MappingNode {
		f, _ := p.mapping(n, w, "", serviceEntryKeys...)
		viewNode, subset = p.required(f, w, "feature_view"), f.get("features")
	}
	if viewNode == nil {
		return nil
	}
	vs := p.serviceView(viewNode, w, s)
	if vs == nil {
		return nil
	}
	if subset == nil {
		return wholeView(vs.view)
	}
	return p.subset(subset, w, vs)
}

// serviceView resolves a view a service lists.
func (p *parser) serviceView(n *yaml.Node, w where, s *FeatureService) *viewState {
	name, ok := p.str(n, w)
	if !ok {
		return nil
	}
	vs := p.views[name]
	switch {
	case vs == nil:
		p.add(n.Line, w, "unknown feature view %q%s", name, didYouMean(name, mapKeys(p.views)))
	case s.OnlineServingEnabled && !vs.view.Online:
		p.add(n.Line, w, "feature view %q has online: false, so the service cannot serve it; set online: true on the view, or online_serving_enabled: false here", name)
	}
	return vs
}

// wholeView lists every feature of v, in order.
func wholeView(v *FeatureView) []ServiceFeature {
	out := make([]ServiceFeature, len(v.Features))
	for i, ft := range v.Features {
		out[i] = ServiceFeature{View: v.Name, Feature: ft.Name}
	}
	return out
}

// subset resolves the listed features of one view.
func (p *parser) subset(n *yaml.Node, w where, vs *viewState) []ServiceFeature {
	w = w.in(fmt.Sprintf("feature view %q", vs.view.Name))
	items, ok := p.list(n, w.in("features"), "feature names")
	if ok && len(items) == 0 {
		p.add(n.Line, w, "lists no features; leave features out to serve the whole view")
	}
	var out []ServiceFeature
	for _, item := range items {
		name, ok := p.str(item, w)
		if !ok {
			continue
		}
		if vs.view.Feature(name) == nil {
			if vs.complete { // otherwise the view's own problems explain it
				p.add(item.Line, w, "no feature %q in the view%s", name, didYouMean(name, featureNames(vs.view)))
			}
			continue
		}
		out = append(out, ServiceFeature{View: vs.view.Name, Feature: name})
	}
	return out
}

func featureNames(v *FeatureView) []string {
	names := make([]string, len(v.Features))
	for i, ft := range v.Features {
		names[i] = ft.Name
	}
	return names
}
