// Package schema holds featurelog's column types and values: the types a
// feature repo declares for source columns (SPEC §1), the values records
// carry through the engine, and the data-type names get-features reports
// (SPEC §4).
//
// A Value is a small tagged union. The zero Value is null.
//
//	v := schema.Int(3)
//	t, _ := schema.ParseType("Array(String)")
//	fmt.Println(v.Kind, t) // Int64 Array(String)
package schema

import (
	"fmt"
	"strings"
)

// Kind is a scalar type, or Array. The numeric values are part of the
// on-disk format of log entries (docs/format/record.md); do not change.
type Kind uint8

// The kinds. Null is the kind of a null Value, never of a declared type.
const (
	Null      Kind = 0
	String    Kind = 1
	Int64     Kind = 2
	Int32     Kind = 3
	Float64   Kind = 4
	Float32   Kind = 5
	Bool      Kind = 6
	Timestamp Kind = 7
	Array     Kind = 8
)

var kindNames = [...]string{
	Null: "Null", String: "String", Int64: "Int64", Int32: "Int32", Float64: "Float64",
	Float32: "Float32", Bool: "Bool", Timestamp: "Timestamp", Array: "Array",
}

// String returns the repo-file spelling of the kind.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Scalar reports whether k is a declarable scalar kind.
func (k Kind) Scalar() bool { return k >= String && k <= Timestamp }

// Numeric reports whether k is an integer or floating-point kind.
func (k Kind) Numeric() bool { return k == Int64 || k == Int32 || k == Float64 || k == Float32 }

// Integral reports whether k is an integer kind.
func (k Kind) Integral() bool { return k == Int64 || k == Int32 }

// Type is a declared column type: a scalar, or Array(Elem).
type Type struct {
	Kind Kind // the kind; Array for arrays
	Elem Kind // the element kind when Kind is Array, else Null
}

// ScalarType returns the Type of a scalar kind.
func ScalarType(k Kind) Type { return Type{Kind: k} }

// ArrayOf returns Array(elem).
func ArrayOf(elem Kind) Type { return Type{Kind: Array, Elem: elem} }

// String returns the repo-file spelling: "Int64", "Array(String)".
func (t Type) String() string {
	if t.Kind == Array {
		return "Array(" + t.Elem.String() + ")"
	}
	return t.Kind.String()
}

// Valid reports whether t is a type a repo may declare.
func (t Type) Valid() bool {
	if t.Kind == Array {
		return t.Elem.Scalar()
	}
	return t.Kind.Scalar() && t.Elem == Null
}

// ScalarTypeNames lists the scalar spellings, for did-you-mean suggestions.
var ScalarTypeNames = []string{"String", "Int64", "Int32", "Float64", "Float32", "Bool", "Timestamp"}

// ParseType parses a repo-file type: a scalar name or Array(T).
func ParseType(s string) (Type, error) {
	s = strings.TrimSpace(s)
	if inner, ok := strings.CutPrefix(s, "Array("); ok {
		inner, ok = strings.CutSuffix(inner, ")")
		if !ok {
			return Type{}, fmt.Errorf("unknown type %q (want Array(T) with T a scalar type)", s)
		}
		k, ok := parseScalar(strings.TrimSpace(inner))
		if !ok {
			return Type{}, fmt.Errorf("unknown array element type %q (want one of %s)", inner, strings.Join(ScalarTypeNames, ", "))
		}
		return ArrayOf(k), nil
	}
	k, ok := parseScalar(s)
	if !ok {
		return Type{}, fmt.Errorf("unknown type %q (want one of %s, or Array(T))", s, strings.Join(ScalarTypeNames, ", "))
	}
	return ScalarType(k), nil
}

func parseScalar(s string) (Kind, bool) {
	for k := String; k <= Timestamp; k++ {
		if kindNames[k] == s {
			return k, true
		}
	}
	return Null, false
}

// DataType is the get-features metadata type name (SPEC §4): int64, float64,
// string, boolean, timestamp or array. Int32 serves as int64 and Float32 as
// float64.
func (k Kind) DataType() string {
	switch k {
	case Int64, Int32:
		return "int64"
	case Float64, Float32:
		return "float64"
	case String:
		return "string"
	case Bool:
		return "boolean"
	case Timestamp:
		return "timestamp"
	case Array:
		return "array"
	}
	return "unknown"
}

// Column is one named, typed column of a source schema or a view's output.
type Column struct {
	Name string
	Type Type
}
