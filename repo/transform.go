package repo

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"

	"github.com/featurelog/featurelog/schema"
)

// Transform expressions are compiled against an environment whose values
// have the Go types schema.Value.Any produces at run time, so that the type
// checker and the VM agree: Int64 and Int32 are int64, Float64 and Float32
// are float64, Timestamp is time.Time. Arrays are typed slices ([]int64)
// for the checker, so that arr[0] + 1 type-checks; at run time they arrive
// as []any, which every expr operation accepts.

// exprEnv returns the compile-time environment of cols.
func exprEnv(cols []schema.Column) map[string]any {
	env := make(map[string]any, len(cols))
	for _, c := range cols {
		env[c.Name] = zeroValue(c.Type)
	}
	return env
}

// zeroValue returns a value of the Go type that represents t in expressions.
func zeroValue(t schema.Type) any {
	if t.Kind == schema.Array {
		return reflect.MakeSlice(reflect.SliceOf(scalarGoType(t.Elem)), 0, 0).Interface()
	}
	return reflect.Zero(scalarGoType(t.Kind)).Interface()
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
)

// scalarGoType is the Go type of a scalar kind in expressions.
func scalarGoType(k schema.Kind) reflect.Type {
	switch k {
	case schema.Int64, schema.Int32:
		return reflect.TypeFor[int64]()
	case schema.Float64, schema.Float32:
		return reflect.TypeFor[float64]()
	case schema.Bool:
		return reflect.TypeFor[bool]()
	case schema.Timestamp:
		return timeType
	}
	return reflect.TypeFor[string]()
}

// columnType maps the inferred Go type of an expression to a column type.
// Integers of every size become Int64 and floats Float64, because that is
// what expr's arithmetic produces (1 + clicked is an int).
func columnType(t reflect.Type) (schema.Type, error) {
	if t.Kind() == reflect.Slice {
		elem, err := scalarKind(t.Elem())
		if err != nil {
			return schema.Type{}, fmt.Errorf("it yields an array whose element type cannot be inferred (%s); map() and filter() return untyped arrays", t)
		}
		return schema.ArrayOf(elem), nil
	}
	k, err := scalarKind(t)
	if err != nil {
		return schema.Type{}, err
	}
	return schema.ScalarType(k), nil
}

// scalarKind maps a Go type to a scalar kind.
func scalarKind(t reflect.Type) (schema.Kind, error) {
	switch {
	case t == timeType:
		return schema.Timestamp, nil
	case t == durationType:
		return 0, errors.New("it yields a duration, which is not a column type; use .Seconds() or .Hours() for a Float64")
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return schema.Int64, nil
	case reflect.Float32, reflect.Float64:
		return schema.Float64, nil
	case reflect.String:
		return schema.String, nil
	case reflect.Bool:
		return schema.Bool, nil
	case reflect.Interface:
		return 0, errors.New("its type cannot be inferred (the branches of ?: differ, or it uses nil, ?? or an untyped function); convert it with int(), float() or string()")
	}
	return 0, fmt.Errorf("it yields %s, which is not a column type", t)
}

// compileError is a compile failure of an expression, positioned inside it.
type compileError struct {
	line, column int    // 1-based position in the expression text; 0 when unknown
	msg          string // one line, without expr's source snippet
	unknown      string // the unknown column the expression reads, if that is the problem
}

// message describes the failure of the expression src.
func (e *compileError) message(src string) string {
	msg := fmt.Sprintf("cannot compile %q: %s", src, e.msg)
	if e.column > 0 && e.unknown == "" {
		msg += fmt.Sprintf(" (at column %d of the expression)", e.column)
	}
	return msg
}

// compileExpr compiles and type-checks src against env and returns the
// expression with its inputs and its inferred Go type.
func compileExpr(src string, env map[string]any) (e *Expr, t reflect.Type, cerr *compileError) {
	defer func() {
		// expr-lang is third-party code fed user input: a panic in it must
		// become a problem in the file, never crash apply.
		if r := recover(); r != nil {
			e, t, cerr = nil, nil, &compileError{msg: fmt.Sprintf("the expression cannot be compiled (%v)", r)}
		}
	}()
	program, err := expr.Compile(src, expr.Env(env), expr.DisableBuiltin("now"), expr.Timezone("UTC"))
	if err != nil {
		return nil, nil, newCompileError(err, env)
	}
	e = &Expr{Source: src, Program: program, Inputs: inputs(program.Node(), env)}
	if slices.Contains(e.Inputs, "$env") {
		return nil, nil, &compileError{msg: "$env is not supported; read columns by name"}
	}
	return e, program.Node().Type(), nil
}

// newCompileError turns expr's error into a one-line message with a
// position, adding a did-you-mean for unknown names.
func newCompileError(err error, env map[string]any) *compileError {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return &compileError{msg: err.Error()}
	}
	ce := &compileError{line: fe.Line, column: fe.Column + 1, msg: fe.Message}
	if name, ok := strings.CutPrefix(fe.Message, "unknown name "); ok {
		if name == "now" {
			ce.unknown = name
			ce.msg = "now() is not allowed: a transform must give the same result when the log is replayed; use the record's timestamp column"
		} else {
			ce.unknown = name
			ce.msg = fmt.Sprintf("unknown column %q%s", name, didYouMean(name, envNames(env)))
		}
	}
	return ce
}

func envNames(env map[string]any) []string {
	names := make([]string, 0, len(env))
	for n := range env {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// inputs lists the environment columns an expression reads, in order of
// first appearance; "$env" is listed when the expression reads the whole
// environment.
func inputs(root ast.Node, env map[string]any) []string {
	v := &identVisitor{env: env}
	ast.Walk(&root, v)
	return v.names
}

// identVisitor collects identifiers that name environment columns.
type identVisitor struct {
	env   map[string]any
	names []string
}

func (v *identVisitor) Visit(n *ast.Node) {
	id, ok := (*n).(*ast.IdentifierNode)
	if !ok || slices.Contains(v.names, id.Value) {
		return
	}
	if _, col := v.env[id.Value]; col || id.Value == "$env" {
		v.names = append(v.names, id.Value)
	}
}
