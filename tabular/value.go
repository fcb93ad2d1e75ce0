package tabular

import (
	"fmt"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/schema"
)

// Values cross this package as `any`: spine values as the readers return
// them (nil, string, int64, float64, bool, time.Time, jsontext.Value, and
// schema.Number from other spines), and engine values as schema.Value.

// AppendJSON appends v as JSON with the encodings of the HTTP API
// (SPEC §4): a schema.Value of kind Int64 as a string, floats as numbers
// (non-finite ones as "NaN", "Infinity", "-Infinity"), timestamps as
// RFC 3339 strings. Plain Go values keep their JSON type: an int64 spine
// value is a JSON number, as it was given.
func AppendJSON(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case string:
		return appendQuoted(dst, x)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case float64:
		return schema.AppendJSON(dst, schema.Float(x))
	case bool:
		return strconv.AppendBool(dst, x)
	case time.Time:
		return appendQuotedTime(dst, x)
	case schema.Number:
		return append(dst, x...)
	case jsontext.Value:
		return append(dst, x...)
	case schema.Value:
		return schema.AppendJSON(dst, x)
	}
	return appendQuoted(dst, fmt.Sprint(v))
}

func appendQuoted(dst []byte, s string) []byte {
	out, _ := jsontext.AppendQuote(dst, s) // invalid UTF-8 is replaced, still valid JSON
	return out
}

func appendQuotedTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// appendText appends v as CSV cell text: integers in decimal, floats with
// strconv 'g' -1, timestamps RFC 3339 with nanoseconds, arrays as JSON
// (integers as JSON numbers there: a CSV reader parses them with
// json.loads, not a JavaScript engine), null as nothing.
func appendText(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return dst
	case string:
		return append(dst, x...)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case float64:
		return strconv.AppendFloat(dst, x, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(dst, x)
	case time.Time:
		return x.UTC().AppendFormat(dst, time.RFC3339Nano)
	case schema.Number:
		return append(dst, x...)
	case jsontext.Value:
		return append(dst, x...)
	case schema.Value:
		return appendValueText(dst, x)
	}
	return fmt.Append(dst, v)
}

func appendValueText(dst []byte, v schema.Value) []byte {
	switch v.Kind {
	case schema.Null:
		return dst
	case schema.String:
		return append(dst, v.S...)
	case schema.Int64, schema.Int32:
		return strconv.AppendInt(dst, v.I, 10)
	case schema.Float64:
		return strconv.AppendFloat(dst, v.F, 'g', -1, 64)
	case schema.Float32:
		return strconv.AppendFloat(dst, v.F, 'g', -1, 32)
	case schema.Bool:
		return strconv.AppendBool(dst, v.I != 0)
	case schema.Timestamp:
		return v.Time().AppendFormat(dst, time.RFC3339Nano)
	case schema.Array:
		return appendArrayJSON(dst, v)
	}
	return dst
}

// appendArrayJSON appends an array as plain JSON: integers as numbers,
// non-finite floats as the strings "NaN", "Infinity", "-Infinity".
func appendArrayJSON(dst []byte, v schema.Value) []byte {
	dst = append(dst, '[')
	for i, e := range v.A {
		if i > 0 {
			dst = append(dst, ',')
		}
		if e.Kind == schema.Int64 || e.Kind == schema.Int32 {
			dst = strconv.AppendInt(dst, e.I, 10)
		} else {
			dst = schema.AppendJSON(dst, e)
		}
	}
	return append(dst, ']')
}
