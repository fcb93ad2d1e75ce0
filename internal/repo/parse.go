package repo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
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
		p.yamlError(err)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p.add(extra.Line, where{}, "a repo file holds one YAML document; remove the second \"---\" or move the rest to another file")
	case !errors.Is(err, io.EOF):
		p.yamlError(err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

// yamlError reports a YAML decoding error at its line.
func (p *parser) yamlError(err error) {
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
	p.add(line, where{}, "invalid YAML: %s", m[2])
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

// eachObject calls parse for every item of the list under key.
func (p *parser) eachObject(f fields, key, kind string, parse func(n *yaml.Node, w where)) {
	items, _ := p.list(f.get(key), where{}.in(key), kind+" definitions")
	for i, n := range items {
		parse(n, where{object: fmt.Sprintf("%s %d", kind, i+1)})
	}
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
