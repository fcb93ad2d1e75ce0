package tabread

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"
)

// parquetSpine reads a flat Parquet file row group by row group.
type parquetSpine struct {
	path   string
	file   *parquet.File
	cols   []string
	conv   []func(parquet.Value) any // per column: parquet value to Go value
	groups []parquet.RowGroup        // row groups not started yet
	rows   parquet.Rows              // the current row group's rows; nil between groups
	buf    []parquet.Row             // rows read ahead from rows
	next   int                       // index of the next row in buf
	row    int                       // rows returned so far
}

func openParquet(path string, r io.Reader) (_ *parquetSpine, err error) {
	ra, size, err := readerAt(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer recoverCorrupt(path, &err)
	if err := checkFooter(ra, size); err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file: %w", path, err)
	}
	f, err := parquet.OpenFile(ra, size)
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file: %w", path, err)
	}
	s := &parquetSpine{path: path, file: f, groups: f.RowGroups(), buf: make([]parquet.Row, 0, 256)}
	for _, c := range f.Root().Columns() {
		conv, err := ParquetConverter(c)
		if err != nil {
			return nil, fmt.Errorf("%s: column %q: %w", path, c.Name(), err)
		}
		s.cols = append(s.cols, c.Name())
		s.conv = append(s.conv, conv)
	}
	if err := CheckColumns(s.cols); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// readerAt returns r as an io.ReaderAt with its size, reading it into
// memory when it is not seekable.
func readerAt(r io.Reader) (io.ReaderAt, int64, error) {
	if ra, ok := r.(interface {
		io.ReaderAt
		io.Seeker
	}); ok {
		size, err := ra.Seek(0, io.SeekEnd)
		return ra, size, err
	}
	data, err := io.ReadAll(r)
	return bytes.NewReader(data), int64(len(data)), err
}

// checkFooter checks the footer's length against the file's size before
// parquet-go allocates a buffer of that length: a corrupt length would
// otherwise make it allocate up to 4 GiB.
func checkFooter(ra io.ReaderAt, size int64) error {
	var tail [8]byte
	if size < 12 {
		return fmt.Errorf("the file is %d bytes long, too short for Parquet", size)
	}
	if _, err := ra.ReadAt(tail[:], size-8); err != nil {
		return err
	}
	if string(tail[4:]) != "PAR1" {
		return fmt.Errorf("the file does not end with the Parquet magic bytes (PAR1); it is truncated or not Parquet")
	}
	if n := int64(binary.LittleEndian.Uint32(tail[:4])); n > size-12 {
		return fmt.Errorf("the footer's length %d exceeds the file's size %d; the file is corrupt", n, size)
	}
	return nil
}

// recoverCorrupt turns a panic of the Parquet decoder, which corrupt input
// can provoke, into an error.
func recoverCorrupt(path string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%s: corrupt Parquet file: %v", path, p)
	}
}

func (s *parquetSpine) Columns() []string     { return s.cols }
func (s *parquetSpine) Len() int64            { return s.file.NumRows() }
func (s *parquetSpine) Position(n int) string { return rowPosition(n) }

func (s *parquetSpine) Next() (_ []any, err error) {
	defer recoverCorrupt(s.path, &err)
	for s.next >= len(s.buf) {
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
	prow := s.buf[s.next]
	s.next++
	s.row++
	row := make([]any, len(s.cols))
	for _, v := range prow {
		c := v.Column()
		if c < 0 || c >= len(row) {
			return nil, &LineError{Path: s.path, Line: s.row, Row: true, Err: fmt.Errorf("value of unknown column %d", c)}
		}
		if !v.IsNull() {
			row[c] = s.conv[c](v)
		}
	}
	return row, nil
}

// fill reads the next batch of rows, starting the next row group when the
// current one is done. The batch may be empty.
func (s *parquetSpine) fill() error {
	if s.rows == nil {
		if len(s.groups) == 0 {
			return io.EOF
		}
		s.rows, s.groups = s.groups[0].Rows(), s.groups[1:]
	}
	n, err := s.rows.ReadRows(s.buf[:cap(s.buf)])
	s.buf, s.next = s.buf[:n], 0
	if errors.Is(err, io.EOF) {
		s.rows.Close()
		s.rows = nil // the next fill starts the next row group
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: reading rows after row %d: %w", s.path, s.row, err)
	}
	return nil
}

// ParquetConverter returns how to turn a flat column's values into Go values.
func ParquetConverter(c *parquet.Column) (func(parquet.Value) any, error) {
	if !c.Leaf() || c.Repeated() {
		return nil, errors.New("nested and repeated columns cannot be spine columns; flatten the spine")
	}
	t := c.Type()
	lt := t.LogicalType()
	switch t.Kind() {
	case parquet.Boolean:
		return func(v parquet.Value) any { return v.Boolean() }, nil
	case parquet.Int32:
		return int32Converter(lt), nil
	case parquet.Int64:
		return int64Converter(t, lt), nil
	case parquet.Int96:
		return func(v parquet.Value) any { return int96Time(v.Int96()) }, nil
	case parquet.Float:
		return func(v parquet.Value) any { return float64(v.Float()) }, nil
	case parquet.Double:
		return func(v parquet.Value) any { return v.Double() }, nil
	case parquet.ByteArray, parquet.FixedLenByteArray:
		if lt != nil {
			if _, ok := lt.Value.(*format.DecimalType); ok {
				return nil, errors.New("decimal columns are not supported; cast to double or string")
			}
		}
		return func(v parquet.Value) any { return string(v.ByteArray()) }, nil
	}
	return nil, fmt.Errorf("unsupported type %s", t)
}

func int32Converter(lt *format.LogicalType) func(parquet.Value) any {
	if lt != nil {
		switch x := lt.Value.(type) {
		case *format.DateType:
			return func(v parquet.Value) any { return time.Unix(int64(v.Int32())*86400, 0).UTC() }
		case *format.DecimalType:
			scale := math.Pow10(int(x.Scale))
			return func(v parquet.Value) any { return float64(v.Int32()) / scale }
		}
	}
	return func(v parquet.Value) any { return int64(v.Int32()) }
}

func int64Converter(t parquet.Type, lt *format.LogicalType) func(parquet.Value) any {
	unit := time.Duration(0)
	if lt != nil {
		switch x := lt.Value.(type) {
		case *format.TimestampType:
			if x.Unit.Value != nil {
				unit = x.Unit.Value.Duration()
			}
		case *format.DecimalType:
			scale := math.Pow10(int(x.Scale))
			return func(v parquet.Value) any { return float64(v.Int64()) / scale }
		}
	} else if ct := t.ConvertedType(); ct != nil {
		switch *ct {
		case deprecated.TimestampMillis:
			unit = time.Millisecond
		case deprecated.TimestampMicros:
			unit = time.Microsecond
		}
	}
	if unit == 0 {
		return func(v parquet.Value) any { return v.Int64() }
	}
	return func(v parquet.Value) any { return unitTime(v.Int64(), unit) }
}

func unitTime(n int64, unit time.Duration) time.Time {
	per := int64(time.Second / unit)
	return time.Unix(n/per, n%per*int64(unit)).UTC()
}

// int96Time decodes the legacy INT96 timestamp (Spark, Impala): nanoseconds
// of the day in the low 8 bytes, the Julian day in the high 4.
func int96Time(i deprecated.Int96) time.Time {
	const julianUnixEpoch = 2440588
	nanos := int64(uint64(i[0]) | uint64(i[1])<<32)
	days := int64(i[2]) - julianUnixEpoch
	return time.Unix(days*86400, nanos).UTC()
}
