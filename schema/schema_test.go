package schema

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseType(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Type
	}{
		{"String", ScalarType(String)}, {"Int64", ScalarType(Int64)}, {"Int32", ScalarType(Int32)},
		{"Float64", ScalarType(Float64)}, {"Float32", ScalarType(Float32)}, {"Bool", ScalarType(Bool)},
		{"Timestamp", ScalarType(Timestamp)}, {"Array(String)", ArrayOf(String)}, {" Array( Int64 ) ", ArrayOf(Int64)},
	} {
		got, err := ParseType(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
		assert.True(t, got.Valid())
		again, err := ParseType(got.String())
		require.NoError(t, err)
		assert.Equal(t, got, again, "String() must parse back")
	}
	for _, bad := range []string{"", "string", "Int", "Array(Array(Int64))", "Array(Int64", "Array()", "Map(String)"} {
		_, err := ParseType(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestDataType(t *testing.T) {
	want := map[Kind]string{Int64: "int64", Int32: "int64", Float64: "float64", Float32: "float64",
		String: "string", Bool: "boolean", Timestamp: "timestamp", Array: "array"}
	for k, dt := range want {
		assert.Equal(t, dt, k.DataType(), k.String())
	}
}

func TestFromAny(t *testing.T) {
	ts := time.Date(2023, 1, 2, 0, 25, 6, 5, time.UTC)
	for _, tc := range []struct {
		x    any
		t    Type
		want Value
	}{
		{nil, ScalarType(Int64), Value{}},
		{"a", ScalarType(String), Str("a")},
		{int(3), ScalarType(Int64), Int(3)},
		{float64(3), ScalarType(Int64), Int(3)},
		{int64(-7), ScalarType(Int32), Int32Val(-7)},
		{2.5, ScalarType(Float64), Float(2.5)},
		{int64(2), ScalarType(Float64), Float(2)},
		{true, ScalarType(Bool), BoolVal(true)},
		{ts, ScalarType(Timestamp), Time(ts)},
		{"2023-01-02T00:25:06.000000005Z", ScalarType(Timestamp), Time(ts)},
		{"2023-01-02T01:25:06.000000005+01:00", ScalarType(Timestamp), Time(ts)},
		{[]any{"x", "y"}, ArrayOf(String), ArrayVal([]Value{Str("x"), Str("y")})},
		{[]int64{1}, ArrayOf(Int64), ArrayVal([]Value{Int(1)})},
	} {
		got, err := FromAny(tc.x, tc.t)
		require.NoError(t, err, "%v as %v", tc.x, tc.t)
		assert.True(t, tc.want.Equal(got), "%v as %v: got %+v want %+v", tc.x, tc.t, got, tc.want)
	}
	for _, tc := range []struct {
		x   any
		t   Type
		msg string
	}{
		{1.5, ScalarType(Int64), "not an integer"},
		{math.Inf(1), ScalarType(Int64), "not an integer"},
		{int64(1) << 40, ScalarType(Int32), "out of range"},
		{1e300, ScalarType(Float32), "out of range"},
		{"1", ScalarType(Int64), "expected Int64, got a string"},
		{1, ScalarType(String), "expected String, got a number"},
		{"yesterday", ScalarType(Timestamp), "not an RFC 3339 timestamp"},
		{"2023-01-02", ScalarType(Timestamp), "not an RFC 3339 timestamp"},
		{[]any{"x", nil}, ArrayOf(String), "element 1 is null"},
		{[]any{1}, ArrayOf(String), "element 0"},
		{"x", ArrayOf(String), "expected an array"},
		{map[string]any{}, ScalarType(Bool), "expected Bool, got an object"},
	} {
		_, err := FromAny(tc.x, tc.t)
		require.Error(t, err, "%v as %v", tc.x, tc.t)
		assert.Contains(t, err.Error(), tc.msg)
	}
}

func TestValueEqualAndAny(t *testing.T) {
	assert.True(t, Float(math.NaN()).Equal(Float(math.NaN())))
	assert.False(t, Int(1).Equal(Int32Val(1)), "kinds differ")
	assert.False(t, ArrayVal([]Value{Int(1)}).Equal(ArrayVal([]Value{Int(2)})))
	assert.True(t, Value{}.Equal(Value{}))
	assert.Nil(t, Value{}.Any())
	assert.Equal(t, []any{int64(1), "a"}, ArrayVal([]Value{Int(1), Str("a")}).Any())
	ts := time.Unix(0, 42).UTC()
	assert.Equal(t, ts, TimeNanos(42).Any())
}

func TestTimestampRange(t *testing.T) {
	for _, s := range []string{"2608-11-20T11:33:33.709551616Z", "0001-01-01T00:00:00Z", "1677-09-21T00:12:43.145224191Z"} {
		_, err := ParseTimestamp(s)
		assert.ErrorContains(t, err, "outside the range of timestamps", s)
		_, err = FromAny(s, ScalarType(Timestamp))
		assert.ErrorContains(t, err, "outside the range", s)
	}
	_, err := FromAny(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), ScalarType(Timestamp))
	assert.ErrorContains(t, err, "outside the range")
	for _, s := range []string{"2262-04-11T23:47:16.854775807Z", "1677-09-21T00:12:43.145224192Z", "1970-01-01T00:00:00Z"} {
		ts, err := ParseTimestamp(s)
		require.NoError(t, err, s)
		assert.Equal(t, s, Time(ts).Time().Format(time.RFC3339Nano), "must round-trip through Unix ns")
	}
}
