package record

import (
	"fmt"

	"github.com/featurelog/featurelog/schema"
)

// AppendValue appends v in the record format's value encoding (a presence
// tag, then the scalar or array), for other formats that store values the
// way the log does (the engine's attribute segments).
func AppendValue(dst []byte, v schema.Value) []byte {
	if v.Kind == schema.Null {
		return append(dst, tagNull)
	}
	return appendScalar(append(dst, tagPresent), v)
}

// DecodeValue decodes one value of type t, as AppendValue wrote it, from
// the start of buf, and returns it with the number of bytes it took.
// Strings are copied out of buf.
func DecodeValue(buf []byte, t schema.Type) (schema.Value, int, error) {
	d := decoder{buf: buf}
	var v schema.Value
	if err := d.value(&v, t); err != nil {
		return schema.Value{}, 0, fmt.Errorf("%w: %v (at byte %d of %d)", ErrCorrupt, err, d.off, len(buf))
	}
	return v, d.off, nil
}
