package repo

import (
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/featurelog/featurelog/schema"
)

// scope is the set of columns a part of a view can read: the source
// schema, then the transform columns defined so far.
type scope struct {
	desc   string          // for messages: `source "s"`, `source "s" or its transform`
	cols   []schema.Column // in order
	broken map[string]bool // declared with an error already reported: references stay silent
	opaque bool            // the source is unknown or invalid: columns cannot be checked
}

// sourceScope returns the scope of a view reading st (nil when the source
// is unknown).
func sourceScope(st *sourceState) *scope {
	if st == nil {
		return &scope{opaque: true, broken: map[string]bool{}}
	}
	broken := make(map[string]bool, len(st.broken))
	for k := range st.broken {
		broken[k] = true
	}
	return &scope{
		desc:   fmt.Sprintf("source %q", st.src.Name),
		cols:   slices.Clone(st.src.Schema),
		broken: broken,
	}
}

// lookup returns the type of the column called name.
func (s *scope) lookup(name string) (schema.Type, bool) {
	for _, c := range s.cols {
		if c.Name == name {
			return c.Type, true
		}
	}
	return schema.Type{}, false
}

// names lists the columns, for suggestions.
func (s *scope) names() []string {
	out := make([]string, len(s.cols))
	for i, c := range s.cols {
		out[i] = c.Name
	}
	return out
}

// silent reports whether a missing column must not be reported, because
// its real cause was reported already.
func (s *scope) silent(name string) bool { return s.opaque || s.broken[name] }

// column resolves a reference to a column. It reports an unknown column
// (what is "input", "join key", ...) unless the cause is reported already.
func (p *parser) column(s *scope, n *yaml.Node, w where, what, name string) (schema.Type, bool) {
	if t, ok := s.lookup(name); ok {
		return t, true
	}
	if !s.silent(name) {
		p.add(n.Line, w, "%s %q is not a column of %s%s", what, name, s.desc, didYouMean(name, s.names()))
	}
	return schema.Type{}, false
}
