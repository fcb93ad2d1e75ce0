package repo

import (
	"slices"

	"go.yaml.in/yaml/v3"
)

var entityKeys = []string{"name", "description", "join_keys"}

// entity parses one entity.
func (p *parser) entity(n *yaml.Node, w where) {
	f, ok := p.mapping(n, w, "an entity (name, join_keys)", entityKeys...)
	if !ok {
		return
	}
	name, named := p.objectName(f, &w, "entity")
	e := &Entity{Name: name, Description: p.optString(f, w, "description"), Line: n.Line}
	e.JoinKeys = p.joinKeys(f, w)
	if named {
		p.entities[name] = e
		p.repo.Entities = append(p.repo.Entities, e)
	}
}

// joinKeys reads an entity's non-empty list of distinct join key names.
func (p *parser) joinKeys(f fields, w where) []string {
	n := p.required(f, w, "join_keys")
	if n == nil {
		return nil
	}
	w = w.in("join_keys")
	keys := p.names(n, w, "column names")
	if len(keys) == 0 && n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		p.add(n.Line, w, "an entity needs at least one join key")
	}
	for i, k := range keys {
		if slices.Contains(keys[:i], k) {
			p.add(n.Line, w, "join key %q is listed twice", k)
		}
	}
	return keys
}
