package repo

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/featurelog/featurelog/schema"
)

var transformKeys = []string{"columns", "filter"}

// transform parses and compiles a view's transform, adding its columns to
// sc in order so that later columns, the filter and the features can read
// them.
func (p *parser) transform(f fields, w where, sc *scope) *Transform {
	tf, ok := p.mapping(f.get("transform"), w.in("transform"), "a mapping {columns, filter}", transformKeys...)
	if !ok {
		return nil
	}
	if tf.get("columns") == nil && tf.get("filter") == nil {
		p.add(tf.line, w.in("transform"), "has neither columns nor a filter; remove it or add one")
		return nil
	}
	t := &Transform{}
	p.transformColumns(tf.get("columns"), w, sc, t)
	if n := tf.get("filter"); n != nil {
		t.Filter = p.filter(n, w.in("transform filter"), sc)
	}
	if len(t.Columns) > 0 {
		sc.desc += " or its transform"
	}
	return t
}

// transformColumns parses the ordered mapping of column names to
// expressions.
func (p *parser) transformColumns(n *yaml.Node, w where, sc *scope, t *Transform) {
	if n == nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, w.in("transform").in("columns"), "expected a mapping of column names to expressions, got %s", describe(n))
		return
	}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if c := p.transformColumn(k, v, w, sc, lines); c != nil {
			t.Columns = append(t.Columns, c)
		}
	}
}

// transformColumn compiles one column and adds it to sc. On failure the
// name is marked broken in sc, so reading it is not reported again.
func (p *parser) transformColumn(k, v *yaml.Node, w where, sc *scope, lines map[string]int) *TransformColumn {
	name, ok := p.columnName(k, w.in("transform").in("columns"))
	if !ok {
		return nil
	}
	w = w.in(fmt.Sprintf("transform column %q", name))
	if line, dup := lines[name]; dup {
		p.add(k.Line, w, "is defined twice (first at line %d); rename or remove one", line)
		return nil
	}
	lines[name] = k.Line
	if _, exists := sc.lookup(name); exists || sc.broken[name] {
		p.add(k.Line, w, "%s already has a column %q; choose another name", sc.desc, name)
		return nil
	}
	e, t, ok := p.compile(v, w, sc)
	if !ok {
		sc.broken[name] = true
		return nil
	}
	ct, err := columnType(t)
	if err != nil {
		p.add(v.Line, w, "%q: %v", e.Source, err)
		sc.broken[name] = true
		return nil
	}
	sc.cols = append(sc.cols, schema.Column{Name: name, Type: ct})
	return &TransformColumn{Name: name, Expr: e, Type: ct}
}

// filter compiles the filter, which must be boolean.
func (p *parser) filter(n *yaml.Node, w where, sc *scope) *Expr {
	e, t, ok := p.compile(n, w, sc)
	if !ok {
		return nil
	}
	if ct, err := columnType(t); err != nil || ct != schema.ScalarType(schema.Bool) {
		what := "of unknown type"
		if err == nil {
			what = "of type " + ct.String()
		}
		p.add(n.Line, w, "must be a boolean expression, but %q is %s; compare it, e.g. %s > 0", e.Source, what, e.Source)
		return nil
	}
	return e
}

// compile compiles the expression in n against sc. It stays silent when
// the expression reads a column whose problem was reported already.
func (p *parser) compile(n *yaml.Node, w where, sc *scope) (*Expr, reflect.Type, bool) {
	src, ok := p.str(n, w)
	if !ok || sc.opaque {
		return nil, nil, false
	}
	src = strings.TrimSpace(src) // block scalars end in a newline
	if src == "" {
		p.add(n.Line, w, "the expression is empty")
		return nil, nil, false
	}
	e, t, cerr := compileExpr(src, exprEnv(sc.cols))
	if cerr == nil {
		return e, t, true
	}
	if cerr.unknown != "" && sc.broken[cerr.unknown] {
		return nil, nil, false
	}
	p.add(exprLine(n, cerr.line), w, "%s", cerr.message(src))
	return nil, nil, false
}

// exprLine maps a line of an expression to a line of the file: a block
// scalar (| or >) starts on the line after its key.
func exprLine(n *yaml.Node, line int) int {
	if line < 1 {
		return n.Line
	}
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return n.Line + line
	}
	return n.Line + line - 1
}
