package record

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/featurelog/featurelog/schema"
)

// Decode parses buf into e, reusing e's slices. Strings are copied out of
// buf, so e stays valid after buf is reused.
func Decode(buf []byte, e *Entry) error {
	return decode(decoder{buf: buf}, e)
}

// DecodeShared is Decode with every string of e sharing buf's memory
// instead of a copy: nothing is allocated for them, and e is valid only
// while buf is neither modified nor reused. For passes that look at
// every entry of the log and keep nothing (a deletion's rewrite).
func DecodeShared(buf []byte, e *Entry) error {
	return decode(decoder{buf: buf, shared: true}, e)
}

func decode(d decoder, e *Entry) error {
	if err := d.entry(e); err != nil {
		return fmt.Errorf("%w: %v (at byte %d of %d)", ErrCorrupt, err, d.off, len(d.buf))
	}
	if d.off != len(d.buf) {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.buf)-d.off)
	}
	return nil
}

// DecodeHeader parses everything before the sections into e: workspace,
// ingest time, the key and the response (kinds 2 and 4) and the
// positions (kinds 3 and 4). It leaves e.Sections empty and does not look at the sections'
// bytes, so it is cheap, and does not detect damage there; Decode does.
func DecodeHeader(buf []byte, e *Entry) error {
	d := decoder{buf: buf}
	e.Sections = e.Sections[:0]
	if err := d.header(e); err != nil {
		return fmt.Errorf("%w: %v (at byte %d of %d)", ErrCorrupt, err, d.off, len(buf))
	}
	return nil
}

type decoder struct {
	buf []byte
	off int
	// shared makes strings point into buf (DecodeShared).
	shared bool
}

type decodeError string

func (e decodeError) Error() string { return string(e) }

const errShort = decodeError("truncated")

func (d *decoder) entry(e *Entry) error {
	if err := d.header(e); err != nil {
		return err
	}
	n, err := d.count()
	if err != nil {
		return err
	}
	if n > (len(d.buf)-d.off)/3 { // a section takes at least 3 bytes
		return decodeError("section count exceeds entry size")
	}
	e.Sections = resize(e.Sections, n)
	for i := range e.Sections {
		if err := d.section(&e.Sections[i]); err != nil {
			return err
		}
	}
	return nil
}

// header decodes the fields before nsections.
func (d *decoder) header(e *Entry) error {
	if len(d.buf) < 2 {
		return errShort
	}
	kind := d.buf[1]
	if d.buf[0] != Version || kind < KindIngest || kind > KindIngestIdempotentPositioned {
		return fmt.Errorf("unknown version %d or kind %d", d.buf[0], kind)
	}
	d.off = 2
	var err error
	if e.IngestTime, err = d.varint(); err != nil {
		return err
	}
	if e.Workspace, err = d.str(); err != nil {
		return err
	}
	e.IdempotencyKey, e.Response = "", e.Response[:0]
	e.Position, e.Positioned = Position{}, false
	e.ResponsePositions = e.ResponsePositions[:0]
	switch kind {
	case KindIngestIdempotent:
		return d.idem(e)
	case KindIngestPositioned:
		return d.position(e)
	case KindIngestIdempotentPositioned:
		if err := d.idem(e); err != nil {
			return err
		}
		if err := d.position(e); err != nil {
			return err
		}
		var err error
		e.ResponsePositions, err = d.positions(e.ResponsePositions)
		return err
	}
	return nil
}

// DecodePositions reads what AppendPositions wrote, and nothing else.
func DecodePositions(buf []byte) ([]Position, error) {
	d := decoder{buf: buf}
	ps, err := d.positions(nil)
	if err == nil && d.off != len(buf) {
		err = fmt.Errorf("%d trailing bytes", len(buf)-d.off)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: positions: %v", ErrCorrupt, err)
	}
	return ps, nil
}

// positions decodes a list of positions into ps.
func (d *decoder) positions(ps []Position) ([]Position, error) {
	n, err := d.count()
	if err != nil {
		return nil, err
	}
	if n > (len(d.buf)-d.off)/2 { // a position takes at least 2 bytes
		return nil, decodeError("position count exceeds entry size")
	}
	ps = resize(ps, n)
	for i := range ps {
		var e Entry
		if err := d.position(&e); err != nil {
			return nil, err
		}
		ps[i] = e.Position
	}
	return ps, nil
}

// position decodes the Kafka position of a KindIngestPositioned entry.
func (d *decoder) position(e *Entry) error {
	p, err := d.nonNegative()
	if err != nil {
		return err
	}
	if p > math.MaxInt32 {
		return fmt.Errorf("partition %d too large", p)
	}
	off, err := d.nonNegative()
	if err != nil {
		return err
	}
	e.Position, e.Positioned = Position{Partition: int32(p), Offset: off}, true
	return nil
}

// idem decodes the key and response of a KindIngestIdempotent entry.
func (d *decoder) idem(e *Entry) error {
	var err error
	if e.IdempotencyKey, err = d.str(); err != nil {
		return err
	}
	if e.IdempotencyKey == "" {
		return decodeError("empty idempotency key") // such an entry is encoded as KindIngest
	}
	n, err := d.count()
	if err != nil {
		return err
	}
	if n > len(d.buf)-d.off {
		return decodeError("view count exceeds entry size")
	}
	e.Response = resize(e.Response, n)
	for i := range e.Response {
		m := &e.Response[i]
		if m.View, err = d.str(); err != nil {
			return err
		}
		if m.Online, err = d.nonNegative(); err != nil {
			return err
		}
		if m.Offline, err = d.nonNegative(); err != nil {
			return err
		}
	}
	return nil
}

// nonNegative reads a uvarint that must fit an int64.
func (d *decoder) nonNegative() (int64, error) {
	x, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		return 0, decodeError("bad uvarint")
	}
	if x > math.MaxInt64 {
		return 0, fmt.Errorf("count %d too large", x)
	}
	d.off += n
	return int64(x), nil
}

func (d *decoder) section(s *Section) error {
	var err error
	if s.Source, err = d.str(); err != nil {
		return err
	}
	ncols, err := d.count()
	if err != nil {
		return err
	}
	if ncols > (len(d.buf)-d.off)/3 { // a column takes at least 3 bytes
		return decodeError("column count exceeds entry size")
	}
	s.Columns = resize(s.Columns, ncols)
	for i := range s.Columns {
		if err := d.column(&s.Columns[i]); err != nil {
			return err
		}
	}
	nrows, err := d.count()
	if err != nil {
		return err
	}
	if ncols == 0 && nrows > 0 {
		return decodeError("rows without columns")
	}
	if nrows*ncols > maxCount || nrows*ncols > len(d.buf)-d.off {
		return decodeError("row count exceeds entry size")
	}
	s.Rows = resize(s.Rows, nrows*ncols)
	for r := 0; r < nrows; r++ {
		row := s.Rows[r*ncols : (r+1)*ncols]
		for c := range row {
			if err := d.value(&row[c], s.Columns[c].Type); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *decoder) column(c *schema.Column) error {
	var err error
	if c.Name, err = d.str(); err != nil {
		return err
	}
	if d.off+2 > len(d.buf) {
		return errShort
	}
	c.Type = schema.Type{Kind: schema.Kind(d.buf[d.off]), Elem: schema.Kind(d.buf[d.off+1])}
	d.off += 2
	if !c.Type.Valid() {
		return fmt.Errorf("column %q has invalid type %v", c.Name, c.Type)
	}
	return nil
}

func (d *decoder) value(v *schema.Value, t schema.Type) error {
	present, err := d.tag()
	if err != nil || !present {
		*v = schema.Value{}
		return err
	}
	return d.scalar(v, t.Kind, t.Elem)
}

// tag reads a value's tag: whether a value follows or it is null.
func (d *decoder) tag() (present bool, err error) {
	if d.off >= len(d.buf) {
		return false, errShort
	}
	tag := d.buf[d.off]
	d.off++
	switch tag {
	case tagNull:
		return false, nil
	case tagPresent:
		return true, nil
	}
	return false, fmt.Errorf("bad value tag %d", tag)
}

func (d *decoder) scalar(v *schema.Value, k, elem schema.Kind) error {
	*v = schema.Value{Kind: k}
	var err error
	switch k {
	case schema.String:
		v.S, err = d.str()
	case schema.Int64, schema.Int32, schema.Timestamp:
		v.I, err = d.varint()
	case schema.Float64:
		if d.off+8 > len(d.buf) {
			return errShort
		}
		v.F = math.Float64frombits(binary.LittleEndian.Uint64(d.buf[d.off:]))
		d.off += 8
	case schema.Float32:
		if d.off+4 > len(d.buf) {
			return errShort
		}
		v.F = float64(math.Float32frombits(binary.LittleEndian.Uint32(d.buf[d.off:])))
		d.off += 4
	case schema.Bool:
		if d.off >= len(d.buf) {
			return errShort
		}
		if d.buf[d.off] > 1 {
			return fmt.Errorf("bad bool byte %d", d.buf[d.off])
		}
		v.I = int64(d.buf[d.off])
		d.off++
	case schema.Array:
		return d.array(v, elem)
	default:
		return fmt.Errorf("bad kind %d", k)
	}
	return err
}

func (d *decoder) array(v *schema.Value, elem schema.Kind) error {
	n, err := d.count()
	if err != nil {
		return err
	}
	if n > len(d.buf)-d.off {
		return decodeError("array length exceeds entry size")
	}
	v.A = make([]schema.Value, n)
	for i := range v.A {
		if err := d.scalar(&v.A[i], elem, schema.Null); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) varint() (int64, error) {
	x, n := binary.Varint(d.buf[d.off:])
	if n <= 0 {
		return 0, decodeError("bad varint")
	}
	d.off += n
	return x, nil
}

func (d *decoder) count() (int, error) {
	x, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		return 0, decodeError("bad uvarint")
	}
	if x > maxCount {
		return 0, decodeError(fmt.Sprintf("count %d too large", x))
	}
	d.off += n
	return int(x), nil
}

func (d *decoder) str() (string, error) {
	n, err := d.count()
	if err != nil {
		return "", err
	}
	if d.off+n > len(d.buf) {
		return "", errShort
	}
	b := d.buf[d.off : d.off+n]
	d.off += n
	if d.shared && n > 0 {
		return unsafe.String(&b[0], n), nil
	}
	return string(b), nil
}

func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}
