package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/schema"
)

// Responses are built by appending bytes: the shapes are small and fixed,
// and this keeps the hot paths free of reflection.

func appendString(dst []byte, s string) []byte {
	out, err := jsontext.AppendQuote(dst, s)
	if err != nil { // invalid UTF-8: AppendQuote still wrote a valid, replaced string
		return out
	}
	return out
}

// appendObject appends {"k1":"v1","k2":"v2",...} for string pairs.
func appendObject(dst []byte, kv ...string) []byte {
	dst = append(dst, '{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, kv[i])
		dst = append(dst, ':')
		dst = appendString(dst, kv[i+1])
	}
	return append(dst, '}')
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// appendDataType appends {"type": "int64"} or, for arrays,
// {"type": "array", "elementType": {"type": "string"}}.
func appendDataType(dst []byte, t schema.Type) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, t.Kind.DataType())
	if t.Kind == schema.Array {
		dst = append(dst, `,"elementType":{"type":`...)
		dst = appendString(dst, t.Elem.DataType())
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func writeJSONBytes(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
