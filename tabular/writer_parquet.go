package tabular

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/parquet-go/parquet-go"

	"github.com/featurelog/featurelog/historical"
	"github.com/featurelog/featurelog/schema"
)

const (
	// rowGroupRows is the number of rows per Parquet row group. The writer
	// holds one row group's column chunks in memory; this bounds it.
	rowGroupRows = 1 << 16
	// inferRows is how many rows the writer holds, at most, to find a
	// non-null value, and so a type, for every spine column. Columns still
	// null after that many rows are written as strings.
	inferRows = 1024
	// batchRows is the number of rows handed to the Parquet writer at once.
	batchRows = 256
	// rowsPerWrite is how many rows parquet-go's WriteRows writes to the
	// columns at a time (checking after each whether a page is full):
	// Chunk writes columns as many rows at a time, so that its pages break
	// where Row's do.
	rowsPerWrite = 64
)

// parquetWriter writes a Parquet file with one optional column per result
// column, in result order. Column types come from the features' types and,
// for spine columns, from their first non-null values.
type parquetWriter struct {
	out     io.Writer
	cols    []historical.Column
	types   []schema.Type // per column; Kind Null while a spine column's type is unknown
	seen    []bool        // per column: a non-null value was held (type inference)
	unseen  int           // columns whose type is still unknown
	pending []heldRow     // rows held while types are unknown
	w       *parquet.GenericWriter[any]
	batch   []parquet.Row // rows not yet handed to w
	group   int           // rows in the current row group
	rows    int64
}

type heldRow struct {
	n        int64 // the row's number, from 1
	lead     []any
	features []schema.Value
}

func newParquetWriter(out io.Writer) *parquetWriter { return &parquetWriter{out: out} }

func (p *parquetWriter) Begin(cols []historical.Column) error {
	if err := checkResultColumns(cols); err != nil {
		return err
	}
	p.cols = slices.Clone(cols)
	p.types = make([]schema.Type, len(cols))
	p.seen = make([]bool, len(cols))
	for i, c := range cols {
		p.types[i] = c.Type
		if c.Spine || !c.Type.Valid() {
			p.types[i] = schema.Type{}
			p.unseen++
		}
	}
	if p.unseen == 0 {
		return p.start()
	}
	return nil
}

func (p *parquetWriter) Row(lead []any, features []schema.Value) error {
	if p.cols == nil {
		return errNoBegin
	}
	if err := checkWidth(len(p.cols), lead, features); err != nil {
		return err
	}
	p.rows++
	if p.w != nil {
		return p.write(p.rows, lead, features)
	}
	p.hold(lead, features)
	if p.unseen == 0 || len(p.pending) >= inferRows {
		return p.start()
	}
	return nil
}

// hold keeps a copy of a row until the column types are known.
func (p *parquetWriter) hold(lead []any, features []schema.Value) {
	h := heldRow{n: p.rows, lead: slices.Clone(lead), features: make([]schema.Value, len(features))}
	for i, v := range features {
		h.features[i] = cloneValue(v)
	}
	for i, v := range lead {
		if p.types[i].Kind == schema.Null && !p.seen[i] && !isNull(v) {
			p.seen[i] = true
			p.unseen--
		}
	}
	p.pending = append(p.pending, h)
}

// start fixes the schema from the held rows, opens the Parquet writer and
// writes the held rows.
func (p *parquetWriter) start() error {
	for i := range p.types {
		if p.types[i].Kind == schema.Null {
			p.types[i] = p.infer(i)
		}
	}
	sch, err := p.schema()
	if err != nil {
		return err
	}
	p.w = parquet.NewGenericWriter[any](p.out, sch, parquet.Compression(&parquet.Snappy))
	pending := p.pending
	p.pending = nil
	for _, h := range pending {
		if err := p.write(h.n, h.lead, h.features); err != nil {
			return err
		}
	}
	return nil
}

// infer returns the type of spine column i from the held rows: that of
// its first non-null value, Float64 if integers and floats mix, String if
// every value is null.
func (p *parquetWriter) infer(i int) schema.Type {
	t := schema.Type{}
	for _, h := range p.pending {
		v := h.lead[i]
		if isNull(v) {
			continue
		}
		vt := typeOf(v)
		switch {
		case t.Kind == schema.Null:
			t = vt
		case t.Kind == schema.Int64 && vt.Kind == schema.Float64:
			t = vt
		}
	}
	if t.Kind == schema.Null {
		return schema.ScalarType(schema.String)
	}
	return t
}

func isNull(v any) bool {
	if sv, ok := v.(schema.Value); ok {
		return sv.IsNull()
	}
	return v == nil
}

// typeOf returns the column type a Go value is written as.
func typeOf(v any) schema.Type {
	switch x := v.(type) {
	case int64, int:
		return schema.ScalarType(schema.Int64)
	case float64:
		return schema.ScalarType(schema.Float64)
	case bool:
		return schema.ScalarType(schema.Bool)
	case time.Time:
		return schema.ScalarType(schema.Timestamp)
	case schema.Number:
		if _, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return schema.ScalarType(schema.Int64)
		}
		return schema.ScalarType(schema.Float64)
	case schema.Value:
		if x.Kind == schema.Array {
			elem := schema.String
			if len(x.A) > 0 {
				elem = x.A[0].Kind
			}
			return schema.ArrayOf(elem)
		}
		return schema.ScalarType(x.Kind)
	}
	return schema.ScalarType(schema.String) // strings, raw JSON and anything else
}

// schema builds the file's schema: the columns in result order (a
// parquet.Group sorts its fields by name, so its fields are reordered).
func (p *parquetWriter) schema() (*parquet.Schema, error) {
	g := parquet.Group{}
	for i, c := range p.cols {
		g[c.Name] = parquet.Optional(parquetNode(p.types[i]))
	}
	byName := g.Fields()
	fields := make([]parquet.Field, len(p.cols))
	for i, c := range p.cols {
		j := slices.IndexFunc(byName, func(f parquet.Field) bool { return f.Name() == c.Name })
		if j < 0 {
			return nil, fmt.Errorf("BUG: tabular: column %q lost from the Parquet schema", c.Name)
		}
		fields[i] = byName[j]
	}
	return parquet.NewSchema("featurelog", orderedGroup{Group: g, fields: fields}), nil
}

// orderedGroup is a parquet.Group whose fields keep a given order.
type orderedGroup struct {
	parquet.Group
	fields []parquet.Field
}

func (g orderedGroup) Fields() []parquet.Field { return g.fields }

// parquetNode maps a column type to a Parquet node. Int32 widens to int64
// and Float32 to double, as the HTTP API serves them; arrays are LISTs.
func parquetNode(t schema.Type) parquet.Node {
	switch t.Kind {
	case schema.Int64, schema.Int32:
		return parquet.Int(64)
	case schema.Float64, schema.Float32:
		return parquet.Leaf(parquet.DoubleType)
	case schema.Bool:
		return parquet.Leaf(parquet.BooleanType)
	case schema.Timestamp:
		return parquet.Timestamp(parquet.Nanosecond)
	case schema.Array:
		return parquet.List(parquetNode(schema.ScalarType(t.Elem)))
	}
	return parquet.String()
}

// write converts one row and hands a batch to the Parquet writer when it
// is full, closing the row group every rowGroupRows rows.
func (p *parquetWriter) write(n int64, lead []any, features []schema.Value) error {
	var row parquet.Row
	if k := len(p.batch); k < cap(p.batch) {
		row = p.batch[:k+1][k][:0] // reuse the slice a previous batch left
	}
	var err error
	for i, v := range lead {
		if row, err = p.appendAny(row, n, i, v); err != nil {
			return err
		}
	}
	for i, v := range features {
		if row, err = p.appendAny(row, n, len(lead)+i, v); err != nil {
			return err
		}
	}
	p.batch = append(p.batch, row)
	if len(p.batch) >= batchRows {
		return p.flushBatch()
	}
	return nil
}

func (p *parquetWriter) flushBatch() error {
	if len(p.batch) == 0 {
		return nil
	}
	if _, err := p.w.WriteRows(p.batch); err != nil {
		return fmt.Errorf("tabular: writing Parquet rows: %w", err)
	}
	p.group += len(p.batch)
	p.batch = p.batch[:0]
	if p.group >= rowGroupRows {
		p.group = 0
		if err := p.w.Flush(); err != nil {
			return fmt.Errorf("tabular: writing a Parquet row group: %w", err)
		}
	}
	return nil
}

// appendAny appends column col's value(s) for v.
func (p *parquetWriter) appendAny(row parquet.Row, n int64, col int, v any) (parquet.Row, error) {
	sv, err := toColumn(p.types[col], v)
	if err != nil {
		return row, fmt.Errorf("column %q, row %d: %w", p.cols[col].Name, n, err)
	}
	return appendParquet(row, col, sv), nil
}

// toColumn converts v to a value of column type t.
func toColumn(t schema.Type, v any) (schema.Value, error) {
	if sv, ok := v.(schema.Value); ok {
		if sv.IsNull() || sameColumn(sv.Kind, t.Kind) {
			return sv, nil
		}
		v = sv.Any()
	}
	if v == nil {
		return schema.Value{}, nil
	}
	switch t.Kind {
	case schema.String:
		if s, ok := v.(string); ok {
			return schema.Str(s), nil
		}
		return schema.Str(string(appendText(nil, v))), nil
	case schema.Int64, schema.Int32:
		return toInt(v)
	case schema.Float64, schema.Float32:
		return toFloat(v)
	case schema.Bool:
		if b, ok := v.(bool); ok {
			return schema.BoolVal(b), nil
		}
	case schema.Timestamp:
		return toTime(v)
	}
	return schema.Value{}, mismatch(v, t)
}

func mismatch(v any, t schema.Type) error {
	return fmt.Errorf("a %T value (%s) does not fit the Parquet column's type %s, which the column's first values set", v, appendText(nil, v), t)
}

// sameColumn reports whether a value of kind k is stored as is in a
// column of kind c.
func sameColumn(k, c schema.Kind) bool {
	norm := func(k schema.Kind) schema.Kind {
		switch k {
		case schema.Int32:
			return schema.Int64
		case schema.Float32:
			return schema.Float64
		}
		return k
	}
	return norm(k) == norm(c)
}

func toInt(v any) (schema.Value, error) {
	switch x := v.(type) {
	case int64:
		return schema.Int(x), nil
	case int:
		return schema.Int(int64(x)), nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return schema.Int(int64(x)), nil
		}
	case schema.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return schema.Int(i), nil
		}
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return schema.Int(i), nil
		}
	}
	return schema.Value{}, mismatch(v, schema.ScalarType(schema.Int64))
}

func toFloat(v any) (schema.Value, error) {
	switch x := v.(type) {
	case float64:
		return schema.Float(x), nil
	case int64:
		return schema.Float(float64(x)), nil
	case int:
		return schema.Float(float64(x)), nil
	case schema.Number:
		if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			return schema.Float(f), nil
		}
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
			return schema.Float(f), nil
		}
	}
	return schema.Value{}, mismatch(v, schema.ScalarType(schema.Float64))
}

func toTime(v any) (schema.Value, error) {
	switch x := v.(type) {
	case time.Time:
		return schema.Time(x), nil
	case string:
		if t, err := schema.ParseTimestamp(x); err == nil {
			return schema.Time(t), nil
		}
	case jsontext.Value:
		var s string
		if b, err := jsontext.AppendUnquote(nil, x); err == nil {
			s = string(b)
			if t, err := schema.ParseTimestamp(s); err == nil {
				return schema.Time(t), nil
			}
		}
	}
	return schema.Value{}, mismatch(v, schema.ScalarType(schema.Timestamp))
}

// appendParquet appends the leaf values of v for column col. A flat
// optional column has definition level 1 when present; an optional LIST
// has 0 when null, 1 when empty and 2 for each element.
func appendParquet(row parquet.Row, col int, v schema.Value) parquet.Row {
	switch {
	case v.IsNull():
		return append(row, parquet.NullValue().Level(0, 0, col))
	case v.Kind != schema.Array:
		return append(row, scalarParquet(v).Level(0, 1, col))
	case len(v.A) == 0:
		return append(row, parquet.NullValue().Level(0, 1, col))
	}
	for i, e := range v.A {
		rep := 1
		if i == 0 {
			rep = 0
		}
		row = append(row, scalarParquet(e).Level(rep, 2, col))
	}
	return row
}

func scalarParquet(v schema.Value) parquet.Value {
	switch v.Kind {
	case schema.String:
		return parquet.ByteArrayValue([]byte(v.S))
	case schema.Float64, schema.Float32:
		return parquet.DoubleValue(v.F)
	case schema.Bool:
		return parquet.BooleanValue(v.I != 0)
	}
	return parquet.Int64Value(v.I) // integers and timestamps (Unix nanoseconds)
}

func (p *parquetWriter) Rows() int64 { return p.rows }

func (p *parquetWriter) Close() error {
	if p.cols == nil {
		return nil // Begin never came: nothing to write
	}
	if p.w == nil {
		if err := p.start(); err != nil {
			return err
		}
	}
	if err := p.flushBatch(); err != nil {
		return err
	}
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("tabular: finishing the Parquet file: %w", err)
	}
	return nil
}

// Chunk writes a chunk of rows. Whole row groups are converted column
// by column and encoded on every core at once, then committed in order
// (parquet-go's ConcurrentRowGroupWriter), instead of row by row through
// parquet.Row on one core. The file is byte for byte the one Row would
// write: rows before the column types are known, rows that complete the
// row group the writer has begun, and the chunk's last partial row group
// go through Row; each column is handed to its writer rowsPerWrite rows at
// a time, as parquet-go's WriteRows does with Row's batches, so pages break
// where Row's do.
func (p *parquetWriter) Chunk(c *historical.Chunk) error {
	if p.cols == nil {
		return errNoBegin
	}
	feats := make([]schema.Value, c.Features())
	row := func(r int) error {
		for f := range feats {
			feats[f] = c.Feature(r, f)
		}
		return p.Row(c.Lead[r], feats)
	}
	i, n := 0, c.Len()
	for ; i < n && (p.w == nil || p.group+len(p.batch) != 0); i++ {
		if err := row(i); err != nil {
			return err
		}
	}
	whole := i + (n-i)/rowGroupRows*rowGroupRows
	for _, lead := range c.Lead[i:whole] {
		if err := checkWidth(len(p.cols), lead, feats); err != nil {
			return err
		}
	}
	if err := p.writeGroups(c, i, whole); err != nil {
		return err
	}
	for i = whole; i < n; i++ {
		if err := row(i); err != nil {
			return err
		}
	}
	return nil
}

// writeGroups writes rows [lo, hi) of c, whole row groups, at most one
// group per core in flight, each committed once it and those before it
// are encoded.
func (p *parquetWriter) writeGroups(c *historical.Chunk, lo, hi int) error {
	type group struct {
		rg   *parquet.ConcurrentRowGroupWriter
		done chan error
	}
	var (
		inflight []group
		err      error
	)
	commit := func() error {
		g := inflight[0]
		inflight = inflight[1:]
		if gerr := <-g.done; gerr != nil || err != nil {
			return gerr // after an error, the groups in flight are only waited for
		}
		if _, err := g.rg.Commit(); err != nil {
			return fmt.Errorf("tabular: writing a Parquet row group: %w", err)
		}
		return nil
	}
	first := p.rows + 1 - int64(lo) // the number of c's row 0, for error messages
	for g0 := lo; g0 < hi && err == nil; g0 += rowGroupRows {
		g := group{rg: p.w.BeginRowGroup(), done: make(chan error, 1)}
		inflight = append(inflight, g)
		go func() { g.done <- p.writeGroup(g.rg, c, g0, g0+rowGroupRows, first) }()
		if len(inflight) >= max(1, runtime.GOMAXPROCS(0)) {
			err = commit()
		}
	}
	for len(inflight) > 0 {
		if cerr := commit(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		p.rows += int64(hi - lo)
	}
	return err
}

// writeGroup converts rows [lo, hi) of c column by column and writes them
// to rg, rowsPerWrite rows at a time; first is the number of c's row 0.
func (p *parquetWriter) writeGroup(rg *parquet.ConcurrentRowGroupWriter, c *historical.Chunk, lo, hi int, first int64) error {
	lead := len(p.cols) - c.Features()
	var vals []parquet.Value
	for col, w := range rg.ColumnWriters() {
		for b := lo; b < hi; b += rowsPerWrite {
			vals = vals[:0]
			for r := b; r < min(b+rowsPerWrite, hi); r++ {
				if col < lead {
					var err error
					if vals, err = p.appendAny(vals, first+int64(r), col, c.Lead[r][col]); err != nil {
						return err
					}
				} else {
					vals = appendParquet(vals, col, c.Feature(r, col-lead))
				}
			}
			if _, err := w.WriteRowValues(vals); err != nil {
				return fmt.Errorf("tabular: writing Parquet column %q: %w", p.cols[col].Name, err)
			}
		}
	}
	return nil
}
