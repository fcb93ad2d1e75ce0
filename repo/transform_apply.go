package repo

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync"
	"time"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/featurelog/featurelog/schema"
)

// EvalError is a transform's failure on one record: the expression of a
// column (or the filter) failed at run time.
type EvalError struct {
	Column string // the transform column, or "filter"
	Expr   string // the expression text
	Err    error  // expr's error (a *file.Error), or a type mismatch
}

// Error names the column and the expression.
func (e *EvalError) Error() string {
	what := fmt.Sprintf("transform column %q", e.Column)
	if e.Column == "filter" {
		what = "transform filter"
	}
	msg := e.Err.Error()
	var fe *file.Error
	if errors.As(e.Err, &fe) {
		msg = fe.Message // without the multi-line snippet
	}
	return fmt.Sprintf("%s (%s): %s", what, e.Expr, msg)
}

// Unwrap returns the underlying error.
func (e *EvalError) Unwrap() error { return e.Err }

// vms recycles expression VMs: a VM's stack and scopes are reusable across
// programs, and Apply runs on the ingest hot path.
var vms = sync.Pool{New: func() any { return new(vm.VM) }}

// Apply runs the transform on one record, in place. env holds the record's
// columns as schema.Value.Any represents them (nil for null, int64, float64,
// string, bool, time.Time, []any). Apply sets each transform column in
// order, in the same representation, then evaluates the filter.
//
// Nulls propagate as in SQL: a column any of whose inputs is null is null,
// without running its expression; a filter that reads a null or yields null
// drops the record (keep is false). A nil *Transform keeps every record.
func (t *Transform) Apply(env map[string]any) (keep bool, err error) {
	if t == nil {
		return true, nil
	}
	m := vms.Get().(*vm.VM)
	defer vms.Put(m)
	for _, c := range t.Columns {
		v, err := run(m, c.Expr, env)
		if err == nil && v != nil {
			v, err = coerce(v, c.Type)
		}
		if err != nil {
			return false, &EvalError{Column: c.Name, Expr: c.Expr.Source, Err: err}
		}
		env[c.Name] = v
	}
	return t.keep(m, env)
}

// keep evaluates the filter.
func (t *Transform) keep(m *vm.VM, env map[string]any) (bool, error) {
	if t.Filter == nil {
		return true, nil
	}
	v, err := run(m, t.Filter, env)
	if err != nil {
		return false, &EvalError{Column: "filter", Expr: t.Filter.Source, Err: err}
	}
	b, _ := v.(bool) // nil (null) drops the record
	return b, nil
}

// run evaluates e, or returns nil when one of its inputs is null.
func run(m *vm.VM, e *Expr, env map[string]any) (any, error) {
	for _, in := range e.Inputs {
		if env[in] == nil {
			return nil, nil
		}
	}
	return m.Run(e.Program, env)
}

// coerce converts a program's result to the representation of t: expr
// computes integers as int and may return typed or untyped slices.
func coerce(v any, t schema.Type) (any, error) {
	if t.Kind == schema.Array {
		return coerceArray(v, t.Elem)
	}
	return coerceScalar(v, t.Kind)
}

func coerceArray(v any, elem schema.Kind) (any, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return nil, fmt.Errorf("got %T, want Array(%s)", v, elem)
	}
	out := make([]any, rv.Len())
	for i := range out {
		e := rv.Index(i).Interface()
		if e == nil {
			return nil, fmt.Errorf("element %d is null; array elements cannot be null", i)
		}
		var err error
		if out[i], err = coerceScalar(e, elem); err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
	}
	return out, nil
}

func coerceScalar(v any, k schema.Kind) (any, error) {
	switch k {
	case schema.Int64, schema.Int32:
		if i, ok := toInt64(v); ok {
			return i, nil
		}
	case schema.Float64, schema.Float32:
		if f, ok := toFloat64(v); ok {
			return f, nil
		}
	case schema.String:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case schema.Bool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case schema.Timestamp:
		if ts, ok := v.(time.Time); ok {
			return ts.UTC(), nil
		}
	}
	return nil, fmt.Errorf("got %T, want %s", v, k)
}

func toInt64(v any) (int64, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		return int64(u), u <= math.MaxInt64
	}
	return 0, false
}

func toFloat64(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	if i, ok := toInt64(v); ok {
		return float64(i), true
	}
	return 0, false
}
