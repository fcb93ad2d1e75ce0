package repo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse parses and validates a repo file. filename is used in messages
// only. On success the *Repo is fully resolved: defaults applied, feature
// names derived, join keys and feature types taken from the sources,
// transforms compiled, service features expanded. Otherwise the error is
// an *Errors listing every problem found, ordered by line.
func Parse(filename string, data []byte) (*Repo, error) {
	p := &parser{
		problems: problems{file: filename},
		repo:     &Repo{File: filename},
		seen:     map[string]int{},
		entities: map[string]*Entity{},
		sources:  map[string]*sourceState{},
		views:    map[string]*viewState{},
	}
	if root := p.document(data); root != nil {
		p.root(root)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return p.repo, nil
}

// parser holds the state of one Parse. Objects are parsed in dependency
// order (entities, sources, views, services) whatever their order in the
// file, so references can be resolved as they are met.
type parser struct {
	problems
	repo     *Repo
	seen     map[string]int // line of each declared `kind name`, for duplicates
	entities map[string]*Entity
	sources  map[string]*sourceState
	views    map[string]*viewState
}

// syntaxErrorRE splits yaml.v3's "yaml: line N: message".
var syntaxErrorRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// document decodes the single YAML document of the file and returns its
// root node, or nil after reporting why there is none.
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		p.yamlError(err, data)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p.add(extra.Line, where{}, "a repo file holds one YAML document; remove the second \"---\" or move the rest to another file")
	case !errors.Is(err, io.EOF):
		p.yamlError(err, data)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

// yamlError reports a YAML decoding error at its line.
func (p *parser) yamlError(err error, data []byte) {
	if errors.Is(err, io.EOF) {
		p.add(0, where{}, "the file is empty; it needs at least a workspace: line")
		return
	}
	m := syntaxErrorRE.FindStringSubmatch(err.Error())
	if m == nil {
		p.add(0, where{}, "invalid YAML: %v", err)
		return
	}
	line, _ := strconv.Atoi(m[1])
	p.add(yamlErrorLine(line, m[2], data), where{}, "invalid YAML: %s", m[2])
}

// yamlErrorLine corrects the line yaml.v3 gives for a syntax error. For
// parser errors ("did not find expected ...") and tab errors it reports the
// 0-based line of the construct in error, one less than the editor's line;
// for an unknown anchor it gives no line, so find the alias.
func yamlErrorLine(line int, msg string, data []byte) int {
	switch {
	case strings.HasPrefix(msg, "did not find expected"), strings.HasPrefix(msg, "found a tab character"):
		return line + 1
	case strings.HasPrefix(msg, "unknown anchor '"):
		name := strings.TrimSuffix(strings.TrimPrefix(msg, "unknown anchor '"), "' referenced")
		if i := bytes.Index(data, []byte("*"+name)); i >= 0 {
			return bytes.Count(data[:i], []byte("\n")) + 1
		}
	}
	return line
}

// topKeys are the keys of the file's root mapping.
var topKeys = []string{"workspace", "entities", "sources", "feature_views", "feature_services"}

// root parses the file's root mapping.
func (p *parser) root(n *yaml.Node) {
	f, ok := p.mapping(n, where{}, "a mapping with the keys "+strings.Join(topKeys, ", "), topKeys...)
	if !ok {
		if isNull(n) {
			p.add(n.Line, where{}, "the file is empty; it needs at least a workspace: line")
		}
		return
	}
	p.workspace(f)
	p.eachObject(f, "entities", "entity", p.entity)
	p.eachObject(f, "sources", "source", p.source)
	p.eachObject(f, "feature_views", "feature view", p.featureView)
	p.eachObject(f, "feature_services", "feature service", p.featureService)
}

// workspace parses the workspace name.
func (p *parser) workspace(f fields) {
	w := where{object: "workspace"}
	n := p.required(f, w, "workspace")
	if n == nil {
		return
	}
	s, ok := p.str(n, w)
	if ok && !ValidWorkspaceName(s) {
		p.add(n.Line, w, "%q is not a valid workspace name: use letters, digits, '_' and '-', starting with a letter, at most %d characters", s, MaxNameLen)
		return
	}
	p.repo.Workspace = s
}

// eachObject calls parse for every item of the list under key, naming the
// item by its name when it has a valid one and by its position otherwise
// ("entity 2"), so that even problems met before the name is read say
// which object they concern.
func (p *parser) eachObject(f fields, key, kind string, parse func(n *yaml.Node, w where)) {
	items, _ := p.list(f.get(key), where{}.in(key), kind+" definitions")
	for i, n := range items {
		w := where{object: fmt.Sprintf("%s %d", kind, i+1)}
		if name := peekName(n); ValidName(name) {
			w.object = fmt.Sprintf("%s %q", kind, name)
		}
		parse(n, w)
	}
}

// peekName returns the value of a mapping's name key, or "".
func peekName(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], resolve(n.Content[i+1]); k.Value == "name" && v.Kind == yaml.ScalarNode {
			return v.Value
		}
	}
	return ""
}

// objectName reads an object's required name, declares it, and on success
// renames w's object from its position ("entity 2") to its name.
func (p *parser) objectName(f fields, w *where, kind string) (string, bool) {
	n := p.required(f, *w, "name")
	if n == nil {
		return "", false
	}
	name, ok := p.name(n, w.in("name"))
	if !ok {
		return "", false
	}
	w.object = fmt.Sprintf("%s %q", kind, name)
	key := kind + " " + name
	if first, dup := p.seen[key]; dup {
		p.add(n.Line, *w, "duplicate %s name (first defined at line %d); rename one", kind, first)
		return "", false
	}
	p.seen[key] = n.Line
	return name, true
}

// optString reads an optional free-text value such as a description.
func (p *parser) optString(f fields, w where, key string) string {
	n := f.get(key)
	if n == nil {
		return ""
	}
	s, _ := p.str(n, w.in(key))
	return s
}
