package schema

import (
	"fmt"
	"math"
	"time"
)

// FromAny converts a plain Go value (as the Go API and expression results
// carry them) to a Value of type t. nil becomes null. Integers must be
// integral and in range; timestamps may be time.Time or RFC 3339 strings.
func FromAny(x any, t Type) (Value, error) {
	if x == nil {
		return Value{}, nil
	}
	if t.Kind == Array {
		return arrayFromAny(x, t.Elem)
	}
	return scalarFromAny(x, t.Kind)
}

func arrayFromAny(x any, elem Kind) (Value, error) {
	var items []any
	switch xs := x.(type) {
	case []any:
		items = xs
	case []string:
		items = make([]any, len(xs))
		for i, s := range xs {
			items[i] = s
		}
	case []int64:
		items = make([]any, len(xs))
		for i, s := range xs {
			items[i] = s
		}
	case []float64:
		items = make([]any, len(xs))
		for i, s := range xs {
			items[i] = s
		}
	default:
		return Value{}, fmt.Errorf("expected an array of %v, got %T", elem, x)
	}
	out := make([]Value, len(items))
	for i, it := range items {
		if it == nil {
			return Value{}, fmt.Errorf("array element %d is null; arrays may not hold nulls", i)
		}
		v, err := scalarFromAny(it, elem)
		if err != nil {
			return Value{}, fmt.Errorf("array element %d: %w", i, err)
		}
		out[i] = v
	}
	return ArrayVal(out), nil
}

func scalarFromAny(x any, k Kind) (Value, error) {
	switch k {
	case String:
		if s, ok := x.(string); ok {
			return Str(s), nil
		}
	case Int64, Int32:
		return intFromAny(x, k)
	case Float64, Float32:
		return floatFromAny(x, k)
	case Bool:
		if b, ok := x.(bool); ok {
			return BoolVal(b), nil
		}
	case Timestamp:
		switch ts := x.(type) {
		case time.Time:
			if err := CheckTimestamp(ts); err != nil {
				return Value{}, err
			}
			return Time(ts), nil
		case string:
			t, err := ParseTimestamp(ts)
			if err != nil {
				return Value{}, err
			}
			return Time(t), nil
		}
	}
	return Value{}, fmt.Errorf("expected %v, got %s", k, describe(x))
}

func intFromAny(x any, k Kind) (Value, error) {
	var i int64
	switch n := x.(type) {
	case int:
		i = int64(n)
	case int64:
		i = n
	case int32:
		i = int64(n)
	case int16:
		i = int64(n)
	case int8:
		i = int64(n)
	case uint8:
		i = int64(n)
	case uint16:
		i = int64(n)
	case uint32:
		i = int64(n)
	case uint64:
		if n > math.MaxInt64 {
			return Value{}, fmt.Errorf("%d is out of range for %v", n, k)
		}
		i = int64(n)
	case float64:
		if n != math.Trunc(n) || math.IsInf(n, 0) || n < -(1<<63) || n >= 1<<63 {
			return Value{}, fmt.Errorf("%v is not an integer; %v needs a whole number", n, k)
		}
		i = int64(n)
	default:
		return Value{}, fmt.Errorf("expected %v, got %s", k, describe(x))
	}
	return IntOfKind(i, k)
}

// IntOfKind returns i as a value of integer kind k, checking Int32's range.
func IntOfKind(i int64, k Kind) (Value, error) {
	if k == Int32 && (i < math.MinInt32 || i > math.MaxInt32) {
		return Value{}, fmt.Errorf("%d is out of range for Int32", i)
	}
	return Value{Kind: k, I: i}, nil
}

func floatFromAny(x any, k Kind) (Value, error) {
	var f float64
	switch n := x.(type) {
	case float64:
		f = n
	case float32:
		f = float64(n)
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	case int32:
		f = float64(n)
	default:
		return Value{}, fmt.Errorf("expected %v, got %s", k, describe(x))
	}
	return FloatOfKind(f, k)
}

// FloatOfKind returns f as a value of float kind k, checking Float32's range.
func FloatOfKind(f float64, k Kind) (Value, error) {
	if k == Float32 {
		if !math.IsInf(f, 0) && math.Abs(f) > math.MaxFloat32 {
			return Value{}, fmt.Errorf("%v is out of range for Float32", f)
		}
		return Value{Kind: Float32, F: float64(float32(f))}, nil
	}
	return Value{Kind: Float64, F: f}, nil
}

// ParseTimestamp parses an RFC 3339 timestamp (fractional seconds allowed)
// and returns it in UTC. Times that CheckTimestamp refuses are errors.
func ParseTimestamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 timestamp (like 2023-01-02T00:25:06Z)", s)
	}
	return t.UTC(), CheckTimestamp(t)
}

// Timestamps are stored as Unix nanoseconds in an int64, which spans
// 1677-09-21 to 2262-04-11. time.Time.UnixNano wraps silently outside that
// span (a year-2608 time would become one in 2024), so such times are
// refused wherever a time enters the system.
var (
	MinTimestamp = time.Unix(0, math.MinInt64).UTC()
	MaxTimestamp = time.Unix(0, math.MaxInt64).UTC()
)

// CheckTimestamp reports whether t can be stored.
func CheckTimestamp(t time.Time) error {
	if t.Before(MinTimestamp) || t.After(MaxTimestamp) {
		return fmt.Errorf("%s is outside the range of timestamps featurelog can store (%s to %s)",
			t.UTC().Format(time.RFC3339Nano), MinTimestamp.Format(time.RFC3339Nano), MaxTimestamp.Format(time.RFC3339Nano))
	}
	return nil
}

func describe(x any) string {
	switch x.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, float32, int, int64, int32:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", x)
}
