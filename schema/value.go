package schema

import (
	"math"
	"time"
)

// Value is one column value. The zero Value is null.
//
// Invariant: exactly the field that Kind selects is meaningful:
// I for Int64, Int32, Bool (0 or 1) and Timestamp (Unix nanoseconds, UTC);
// F for Float64 and Float32; S for String; A for Array (elements are never
// null, and all of the array type's element kind).
type Value struct {
	Kind Kind
	I    int64
	F    float64
	S    string
	A    []Value
}

// Int returns an Int64 value.
func Int(i int64) Value { return Value{Kind: Int64, I: i} }

// Int32Val returns an Int32 value.
func Int32Val(i int32) Value { return Value{Kind: Int32, I: int64(i)} }

// Float returns a Float64 value.
func Float(f float64) Value { return Value{Kind: Float64, F: f} }

// Float32Val returns a Float32 value.
func Float32Val(f float32) Value { return Value{Kind: Float32, F: float64(f)} }

// Str returns a String value.
func Str(s string) Value { return Value{Kind: String, S: s} }

// BoolVal returns a Bool value.
func BoolVal(b bool) Value {
	if b {
		return Value{Kind: Bool, I: 1}
	}
	return Value{Kind: Bool}
}

// Time returns a Timestamp value.
func Time(t time.Time) Value { return Value{Kind: Timestamp, I: t.UnixNano()} }

// TimeNanos returns a Timestamp value from Unix nanoseconds.
func TimeNanos(ns int64) Value { return Value{Kind: Timestamp, I: ns} }

// ArrayVal returns an Array value.
func ArrayVal(elems []Value) Value { return Value{Kind: Array, A: elems} }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.Kind == Null }

// Time returns a Timestamp value as a time.Time in UTC.
func (v Value) Time() time.Time { return time.Unix(0, v.I).UTC() }

// Bool returns a Bool value's truth.
func (v Value) Bool() bool { return v.I != 0 }

// Equal reports whether a and b are the same value (NaN equals NaN).
func (v Value) Equal(o Value) bool {
	if v.Kind != o.Kind {
		return false
	}
	switch v.Kind {
	case Float64, Float32:
		return v.F == o.F || (math.IsNaN(v.F) && math.IsNaN(o.F))
	case String:
		return v.S == o.S
	case Array:
		if len(v.A) != len(o.A) {
			return false
		}
		for i := range v.A {
			if !v.A[i].Equal(o.A[i]) {
				return false
			}
		}
		return true
	case Null:
		return true
	}
	return v.I == o.I
}

// Any converts v to a plain Go value for expression evaluation and the Go
// API: nil, string, int64, float64, bool, time.Time or []any.
func (v Value) Any() any {
	switch v.Kind {
	case Null:
		return nil
	case String:
		return v.S
	case Int64, Int32:
		return v.I
	case Float64, Float32:
		return v.F
	case Bool:
		return v.I != 0
	case Timestamp:
		return v.Time()
	case Array:
		out := make([]any, len(v.A))
		for i, e := range v.A {
			out[i] = e.Any()
		}
		return out
	}
	return nil
}

// Number is a JSON number literal kept as its text, as a caller passes a
// value it has not interpreted yet (a join key or spine value from JSON):
// its column's type decides whether it is an integer or a float.
type Number string
