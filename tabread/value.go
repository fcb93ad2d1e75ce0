package tabread

import (
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// DecodeJSONValue converts one raw JSON value of a JSON Lines file to the
// Go value the engine receives: strings, int64 (integers that fit) or
// float64, bool, nil; objects and arrays stay raw (copied).
func DecodeJSONValue(raw jsontext.Value) (any, error) {
	switch raw.Kind() {
	case 'n':
		return nil, nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case '"':
		s, err := jsontext.AppendUnquote(nil, raw)
		return string(s), err
	case '0':
		if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return i, nil
		}
		return strconv.ParseFloat(string(raw), 64)
	}
	return raw.Clone(), nil
}
