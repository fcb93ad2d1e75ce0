package repo

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/featurelog/featurelog/internal/suggest"
	"github.com/featurelog/featurelog/schema"
)

var (
	sourceKeys   = []string{"name", "description", "schema", "push", "batch"}
	columnKeys   = []string{"name", "type"}
	pushKeys     = []string{"log_offline"}
	batchKeys    = []string{"uri", "format", "timestamp_field"}
	batchFormats = []string{"parquet", "csv", "jsonl"}
)

// sourceState is a parsed source plus what views need to know about the
// columns that failed to parse.
type sourceState struct {
	src    *Source
	broken map[string]bool // columns declared with an invalid type
}

// source parses one source.
func (p *parser) source(n *yaml.Node, w where) {
	f, ok := p.mapping(n, w, "a source (name, schema, ...)", sourceKeys...)
	if !ok {
		return
	}
	name, named := p.objectName(f, &w, "source")
	st := &sourceState{src: &Source{Name: name, Line: n.Line}, broken: map[string]bool{}}
	st.src.Description = p.optString(f, w, "description")
	p.schema(f, w, st)
	st.src.LogOffline = p.push(f, w)
	st.src.Batch = p.batch(f, w, st)
	if named {
		p.sources[name] = st
		p.repo.Sources = append(p.repo.Sources, st.src)
	}
}

// schema parses a source's non-empty list of columns.
func (p *parser) schema(f fields, w where, st *sourceState) {
	n := p.required(f, w, "schema")
	if n == nil {
		return
	}
	items, ok := p.list(n, w.in("schema"), "columns")
	if ok && len(items) == 0 {
		p.add(n.Line, w.in("schema"), "a source needs at least one column")
	}
	lines := map[string]int{}
	for i, item := range items {
		p.schemaColumn(item, w.in(fmt.Sprintf("schema column %d", i+1)), st, lines)
	}
}

// schemaColumn parses one {name, type} column.
func (p *parser) schemaColumn(n *yaml.Node, w where, st *sourceState, lines map[string]int) {
	f, ok := p.mapping(n, w, "a column {name: ..., type: ...}", columnKeys...)
	if !ok {
		return
	}
	nameNode := p.required(f, w, "name")
	typeNode := p.required(f, w, "type")
	if nameNode == nil {
		return
	}
	name, ok := p.columnName(nameNode, w)
	if !ok {
		return
	}
	w = where{object: w.object}.in(fmt.Sprintf("column %q", name))
	if first, dup := lines[name]; dup {
		p.add(nameNode.Line, w, "duplicate column (first declared at line %d); rename or remove one", first)
		return
	}
	lines[name] = nameNode.Line
	t, ok := p.columnType(typeNode, w)
	if !ok {
		st.broken[name] = true
		return
	}
	st.src.Schema = append(st.src.Schema, schema.Column{Name: name, Type: t})
}

// columnName reads a column name: a valid name that transforms can read.
func (p *parser) columnName(n *yaml.Node, w where) (string, bool) {
	name, ok := p.name(n, w)
	if ok && reservedColumn(name) {
		p.add(n.Line, w, "column name %q is a reserved word of transform expressions; rename it", name)
		return "", false
	}
	return name, ok
}

// columnType parses a declared type, suggesting the intended spelling.
func (p *parser) columnType(n *yaml.Node, w where) (schema.Type, bool) {
	if n == nil {
		return schema.Type{}, false
	}
	s, ok := p.str(n, w.in("type"))
	if !ok {
		return schema.Type{}, false
	}
	t, err := schema.ParseType(s)
	if err != nil {
		if fix := suggestType(s); fix != "" {
			p.add(n.Line, w, "unknown type %q (did you mean %q?)", s, fix)
		} else {
			p.add(n.Line, w, "%v", err)
		}
		return schema.Type{}, false
	}
	return t, true
}

// typeSynonyms maps type names of other systems to ours.
var typeSynonyms = map[string]string{
	"int": "Int64", "integer": "Int64", "long": "Int64", "bigint": "Int64",
	"float": "Float64", "double": "Float64", "bool": "Bool", "boolean": "Bool",
	"str": "String", "string": "String", "text": "String", "varchar": "String",
	"datetime": "Timestamp", "time": "Timestamp",
}

// suggestType proposes a valid spelling of a misspelt type, or "".
func suggestType(s string) string {
	if len(s) > len("Array()") && strings.EqualFold(s[:6], "Array(") && s[len(s)-1] == ')' {
		inner := strings.TrimSpace(s[6 : len(s)-1])
		if fix := suggestScalarType(inner); fix != "" {
			return "Array(" + fix + ")"
		}
		return ""
	}
	return suggestScalarType(s)
}

// suggestScalarType proposes a scalar type for s, or "".
func suggestScalarType(s string) string {
	if t, err := schema.ParseType(s); err == nil && t.Kind.Scalar() {
		return s
	}
	if fix, ok := typeSynonyms[strings.ToLower(s)]; ok {
		return fix
	}
	fix, _ := suggest.Closest(s, schema.ScalarTypeNames)
	return fix
}

// push parses push.log_offline (default true).
func (p *parser) push(f fields, w where) bool {
	w = w.in("push")
	pf, ok := p.mapping(f.get("push"), w, "a mapping {log_offline: true|false}", pushKeys...)
	if !ok {
		return true
	}
	return p.boolean(pf.get("log_offline"), w.in("log_offline"), true)
}

// batch parses the optional self-managed offline log.
func (p *parser) batch(f fields, w where, st *sourceState) *BatchConfig {
	w = w.in("batch")
	bf, ok := p.mapping(f.get("batch"), w, "a mapping {uri, format, timestamp_field}", batchKeys...)
	if !ok {
		return nil
	}
	b := &BatchConfig{}
	if n := p.required(bf, w, "uri"); n != nil {
		b.URI, _ = p.str(n, w.in("uri"))
		if b.URI == "" && n.Kind == yaml.ScalarNode {
			p.add(n.Line, w.in("uri"), "must name a file, a directory or a glob")
		}
	}
	b.Format = p.batchFormat(bf, w, b.URI)
	if n := p.required(bf, w, "timestamp_field"); n != nil {
		b.TimestampField, _ = p.timestampField(n, w, sourceScope(st))
	}
	return b
}

// batchFormat reads the format, inferring it from the uri's extension
// (data/*.parquet is parquet) when it is not given.
func (p *parser) batchFormat(f fields, w where, uri string) string {
	n := f.get("format")
	if n == nil {
		ext := strings.TrimPrefix(path.Ext(uri), ".")
		if slices.Contains(batchFormats, ext) {
			return ext
		}
		p.add(f.line, w, "missing format: the uri %q does not end in .parquet, .csv or .jsonl, so say which it holds (format: parquet, csv or jsonl)", uri)
		return ""
	}
	s, ok := p.str(n, w.in("format"))
	if ok && !slices.Contains(batchFormats, s) {
		p.add(n.Line, w.in("format"), "unknown format %q%s; use parquet, csv or jsonl", s, didYouMean(s, batchFormats))
		return ""
	}
	return s
}

// timestampField reads the name of a Timestamp column of s.
func (p *parser) timestampField(n *yaml.Node, w where, s *scope) (string, bool) {
	w = w.in("timestamp_field")
	name, ok := p.str(n, w)
	if !ok {
		return "", false
	}
	t, ok := p.column(s, n, w, "column", name)
	if ok && t.Kind != schema.Timestamp {
		p.add(n.Line, w, "column %q is %s, not Timestamp", name, t)
		return "", false
	}
	return name, ok
}
