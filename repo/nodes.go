package repo

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/featurelog/featurelog/internal/suggest"
)

// fields is one YAML mapping read by parser.mapping: its values by key,
// merge keys (<<) applied, unknown and duplicate keys already reported.
type fields struct {
	line     int                   // line of the mapping, for missing keys
	values   map[string]*yaml.Node // never null nodes: a null value counts as absent
	misspelt map[string]bool       // known keys an unknown key was taken for: not reported missing again
}

// get returns the value of key, or nil when it is absent or null.
func (f fields) get(key string) *yaml.Node { return f.values[key] }

// maxMergeDepth bounds nested merge keys, so a merge of an anchor into
// itself cannot loop.
const maxMergeDepth = 8

// resolve follows an alias to its anchor.
func resolve(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// isNull reports whether n is absent or an explicit null (`key:`, `~`).
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node holds, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		return fmt.Sprintf("%q", v)
	}
	return "an unsupported YAML node"
}

// mapping reads n as a mapping with the given keys. It returns false when n
// is absent (silently), or an empty list item or not a mapping (reported as
// "expected what").
func (p *parser) mapping(n *yaml.Node, w where, what string, keys ...string) (fields, bool) {
	n = resolve(n)
	if n == nil {
		return fields{}, false
	}
	if isNull(n) { // an empty list item; an empty value counts as absent and never gets here
		p.add(n.Line, w, "expected %s, got nothing", what)
		return fields{}, false
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, w, "expected %s, got %s", what, describe(n))
		return fields{}, false
	}
	f := fields{line: n.Line, values: map[string]*yaml.Node{}, misspelt: map[string]bool{}}
	p.collect(n, w, keys, f, 0)
	return f, true
}

// collect adds n's keys to f: explicit keys first, then keys of merged
// mappings that n does not set itself (YAML merge-key semantics).
func (p *parser) collect(n *yaml.Node, w where, keys []string, f fields, depth int) {
	lines := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode:
			p.add(k.Line, w, "a key must be a plain word, got %s", describe(k))
		case k.ShortTag() == "!!merge":
			merges = append(merges, v)
		case lines[k.Value] != 0:
			p.add(k.Line, w, "duplicate key %q (first set at line %d; remove one)", k.Value, lines[k.Value])
		default:
			lines[k.Value] = k.Line
			p.setKey(k, v, w, keys, f)
		}
	}
	for _, m := range merges {
		p.merge(m, w, keys, f, depth+1)
	}
}

// setKey stores one key of a mapping after checking it is known.
func (p *parser) setKey(k, v *yaml.Node, w where, keys []string, f fields) {
	switch {
	case !slices.Contains(keys, k.Value):
		p.add(k.Line, w, "unknown key %q%s", k.Value, knownKeysHint(k.Value, keys, f))
	case isNull(resolve(v)):
		// A null value counts as absent; required keys report it as missing.
	default:
		if _, set := f.values[k.Value]; !set {
			f.values[k.Value] = resolve(v)
		}
	}
}

// merge applies the value of a merge key: a mapping or a list of mappings.
func (p *parser) merge(v *yaml.Node, w where, keys []string, f fields, depth int) {
	v = resolve(v)
	if depth > maxMergeDepth {
		p.add(v.Line, w, "merge keys (<<) nest too deeply")
		return
	}
	srcs := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		srcs = v.Content
	}
	for _, s := range srcs {
		s = resolve(s)
		if s.Kind != yaml.MappingNode {
			p.add(s.Line, w, "a merge key (<<) needs a mapping or a list of mappings, got %s", describe(s))
			continue
		}
		p.collect(s, w, keys, f, depth)
	}
}

// knownKeysHint suggests the intended key, or lists the known ones.
func knownKeysHint(key string, keys []string, f fields) string {
	if s, ok := suggest.Closest(key, keys); ok {
		f.misspelt[s] = true
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return " (known keys: " + strings.Join(keys, ", ") + ")"
}

// required returns the value of a key that must be set, reporting it
// missing otherwise.
func (p *parser) required(f fields, w where, key string) *yaml.Node {
	v := f.get(key)
	if v == nil && !f.misspelt[key] {
		p.add(f.line, w, "missing required key %q", key)
	}
	return v
}

// str reads a scalar as a string. Any scalar qualifies (a tag value may be
// written 2 for "2"), but lists and mappings do not.
func (p *parser) str(n *yaml.Node, w where) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.add(n.Line, w, "expected a single value, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

// boolean reads an optional true/false value, def when absent.
func (p *parser) boolean(n *yaml.Node, w where, def bool) bool {
	if n == nil {
		return def
	}
	var b bool
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" && n.Decode(&b) == nil {
		return b
	}
	if n.Kind == yaml.ScalarNode && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		p.add(n.Line, w, "expected true or false, got the string %s; remove the quotes", describe(n))
	} else {
		p.add(n.Line, w, "expected true or false, got %s", describe(n))
	}
	return def
}

// integer reads a whole number.
func (p *parser) integer(n *yaml.Node, w where) (int, bool) {
	var i int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		p.add(n.Line, w, "expected a whole number, got %s", describe(n))
		return 0, false
	}
	return i, true
}

// number reads a finite number.
func (p *parser) number(n *yaml.Node, w where) (float64, bool) {
	var f float64
	tag := n.ShortTag()
	if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil ||
		math.IsNaN(f) || math.IsInf(f, 0) {
		p.add(n.Line, w, "expected a number, got %s", describe(n))
		return 0, false
	}
	return f, true
}

// list reads a sequence. A null value is an empty list.
func (p *parser) list(n *yaml.Node, w where, what string) ([]*yaml.Node, bool) {
	if n == nil {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, w, "expected a list of %s, got %s", what, describe(n))
		return nil, false
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = resolve(c)
	}
	return out, true
}

// name reads a name that must satisfy ValidName.
func (p *parser) name(n *yaml.Node, w where) (string, bool) {
	s, ok := p.str(n, w)
	if !ok {
		return "", false
	}
	if !ValidName(s) {
		p.add(n.Line, w, "%s", invalidName(s))
		return "", false
	}
	return s, true
}

// invalidName explains the naming rule, proposing a fix when it can.
func invalidName(s string) string {
	msg := fmt.Sprintf("%q is not a valid name: use letters, digits and underscores, not starting with a digit, at most %d characters", s, MaxNameLen)
	if fix := fixName(s); fix != "" {
		msg += fmt.Sprintf(" (try %q)", fix)
	}
	return msg
}

// names reads a list of names.
func (p *parser) names(n *yaml.Node, w where, what string) []string {
	items, _ := p.list(n, w, what)
	var out []string
	for _, item := range items {
		if s, ok := p.name(item, w); ok {
			out = append(out, s)
		}
	}
	return out
}
