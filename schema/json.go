package schema

import (
	"math"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// AppendJSON appends v as JSON with the encodings of the HTTP API (SPEC
// §4), which historical results written as JSON Lines share: integers as
// strings (exact beyond 2^53), floats as numbers (non-finite ones as the
// strings "NaN", "Infinity", "-Infinity"), timestamps as RFC 3339 strings
// with nanoseconds in UTC, arrays as JSON arrays, null as null. Invalid
// UTF-8 in a string is replaced, so the output is always valid JSON.
func AppendJSON(dst []byte, v Value) []byte {
	switch v.Kind {
	case String:
		out, _ := jsontext.AppendQuote(dst, v.S) // invalid UTF-8 is replaced, still valid JSON
		return out
	case Int64, Int32:
		dst = append(dst, '"')
		dst = strconv.AppendInt(dst, v.I, 10)
		return append(dst, '"')
	case Float64, Float32:
		switch {
		case math.IsNaN(v.F):
			return append(dst, `"NaN"`...)
		case math.IsInf(v.F, 1):
			return append(dst, `"Infinity"`...)
		case math.IsInf(v.F, -1):
			return append(dst, `"-Infinity"`...)
		}
		bits := 64
		if v.Kind == Float32 {
			bits = 32
		}
		return jsontext.AppendFloat(dst, v.F, bits)
	case Bool:
		return strconv.AppendBool(dst, v.I != 0)
	case Timestamp:
		dst = append(dst, '"')
		dst = v.Time().UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	case Array:
		dst = append(dst, '[')
		for i, e := range v.A {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSON(dst, e)
		}
		return append(dst, ']')
	}
	return append(dst, "null"...)
}
