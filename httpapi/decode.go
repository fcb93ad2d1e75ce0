package httpapi

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/internal/jsondec"
	"github.com/featurelog/featurelog/schema"
)

// Decoding the server's encodings back into engine values, for readers of
// its answers that want them typed (the CLI's --server mode writes typed
// Parquet from a historical answer). The transport is package client's;
// the types are the engine's, which client does not import.

// ParseDataType returns the type a DataType of the API names ("int64",
// "array" with elem "string", ...). int64 and float64 stand for the
// 32-bit kinds too.
func ParseDataType(typ, elem string) (schema.Type, error) {
	k, ok := kindOfDataType(typ)
	if !ok {
		return schema.Type{}, fmt.Errorf("unknown data type %q", typ)
	}
	if k != schema.Array {
		return schema.ScalarType(k), nil
	}
	e, ok := kindOfDataType(elem)
	if !ok || e == schema.Array {
		return schema.Type{}, fmt.Errorf("array of unknown element type %q", elem)
	}
	return schema.ArrayOf(e), nil
}

// kindOfDataType inverts schema.Kind.DataType.
func kindOfDataType(s string) (schema.Kind, bool) {
	for _, k := range []schema.Kind{schema.Int64, schema.Float64, schema.String, schema.Bool, schema.Timestamp, schema.Array} {
		if k.DataType() == s {
			return k, true
		}
	}
	return schema.Null, false
}

// DecodeValue decodes a served value with the encodings of SPEC §4 (the
// inverse of the server's encoding): int64 from a string (or a number),
// floats from numbers or "NaN"/"Infinity"/"-Infinity", timestamps from
// RFC 3339 strings, arrays from JSON arrays, null.
func DecodeValue(raw jsontext.Value, t schema.Type) (schema.Value, error) {
	if raw.Kind() == 'n' {
		return schema.Value{}, nil
	}
	if t.Kind == schema.Array {
		return decodeArray(raw, t.Elem)
	}
	var s string
	if raw.Kind() == '"' {
		b, err := jsontext.AppendUnquote(nil, raw)
		if err != nil {
			return schema.Value{}, err
		}
		s = string(b)
	}
	switch t.Kind {
	case schema.String:
		if raw.Kind() == '"' {
			return schema.Str(s), nil
		}
	case schema.Int64, schema.Int32:
		if raw.Kind() == '0' {
			s = string(raw)
		}
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return schema.Value{Kind: t.Kind, I: i}, nil
		}
	case schema.Float64, schema.Float32:
		return decodeFloat(raw, s, t.Kind)
	case schema.Bool:
		if k := raw.Kind(); k == 't' || k == 'f' {
			return schema.BoolVal(k == 't'), nil
		}
	case schema.Timestamp:
		if ts, err := schema.ParseTimestamp(s); err == nil && raw.Kind() == '"' {
			return schema.Time(ts), nil
		}
	}
	return schema.Value{}, fmt.Errorf("%s is not a %s value", raw, t)
}

func decodeFloat(raw jsontext.Value, s string, k schema.Kind) (schema.Value, error) {
	switch {
	case raw.Kind() == '0':
		s = string(raw)
	case s == "NaN", s == "Infinity", s == "-Infinity": // strconv.ParseFloat reads these
	default:
		return schema.Value{}, fmt.Errorf("%s is not a number", raw)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return schema.Value{}, err
	}
	return schema.Value{Kind: k, F: f}, nil
}

func decodeArray(raw jsontext.Value, elem schema.Kind) (schema.Value, error) {
	d := jsondec.Get(raw)
	defer jsondec.Put(d)
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '[' {
		return schema.Value{}, fmt.Errorf("%s is not an array", raw)
	}
	out := []schema.Value{}
	for d.PeekKind() != ']' {
		v, err := d.ReadValue()
		if err != nil {
			return schema.Value{}, err
		}
		e, err := DecodeValue(v, schema.ScalarType(elem))
		if err != nil {
			return schema.Value{}, err
		}
		if e.IsNull() {
			return schema.Value{}, errors.New("an array element is null")
		}
		out = append(out, e)
	}
	return schema.ArrayVal(out), nil
}
