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

// SkipValue returns the number of bytes the value of type t at the start
// of buf takes, as AppendValue wrote it, checking its encoding as
// DecodeValue does but materializing nothing.
func SkipValue(buf []byte, t schema.Type) (int, error) {
	d := decoder{buf: buf}
	if err := d.skip(t); err != nil {
		return 0, fmt.Errorf("%w: %v (at byte %d of %d)", ErrCorrupt, err, d.off, len(buf))
	}
	return d.off, nil
}

func (d *decoder) skip(t schema.Type) error {
	present, err := d.tag()
	if err != nil || !present {
		return err
	}
	return d.skipScalar(t.Kind, t.Elem)
}

func (d *decoder) skipScalar(k, elem schema.Kind) error {
	switch k {
	case schema.String:
		n, err := d.count()
		if err != nil {
			return err
		}
		if d.off+n > len(d.buf) {
			return errShort
		}
		d.off += n
	case schema.Int64, schema.Int32, schema.Timestamp:
		_, err := d.varint()
		return err
	case schema.Float64, schema.Float32:
		w := 8
		if k == schema.Float32 {
			w = 4
		}
		if d.off+w > len(d.buf) {
			return errShort
		}
		d.off += w
	case schema.Bool:
		if d.off >= len(d.buf) {
			return errShort
		}
		if d.buf[d.off] > 1 {
			return fmt.Errorf("bad bool byte %d", d.buf[d.off])
		}
		d.off++
	case schema.Array:
		n, err := d.count()
		if err != nil {
			return err
		}
		if n > len(d.buf)-d.off {
			return decodeError("array length exceeds entry size")
		}
		for range n {
			if err := d.skipScalar(elem, schema.Null); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("bad kind %d", k)
	}
	return nil
}
